"""Building answers that botocore accepts from a ``before-call`` handler."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.awsrequest import AWSResponse


def ok(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200, "HTTPHeaders": {}})
    return AWSResponse("https://sandbox.pilotlight", 200, {}, None), parsed


def error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return AWSResponse("https://sandbox.pilotlight", status, {}, None), parsed


def request_params(params: dict[str, Any]) -> dict[str, Any]:
    """API parameters of a query-protocol request as seen by ``before-call`` (the form body)."""
    body = params.get("body")
    return body if isinstance(body, dict) else {}


# Adapters that answer after the call read the request's API parameters from its context;
# one ``before-parameter-build`` handler keeps them there for every adapter.
API_PARAMS = "pilotlight_api"


def stash_api_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[API_PARAMS] = dict(params)


def api_params(context: dict[str, Any]) -> dict[str, Any]:
    return context.get(API_PARAMS) or {}


# Every adapter hooks a list of (event, handler) pairs into botocore under ids of its own, and takes them
# out again on uninstall: written once here.
Hooks = list[tuple[str, Any]]


def hook(events: Any, hooks: Hooks, name: str, *, where: str = "") -> None:
    """Register ``hooks`` under ids ``pilotlight-<name>-<event>``; ``where``: ``first``, ``last`` or the middle."""
    register = {"first": events.register_first, "last": events.register_last}.get(where, events.register)
    for event, handler in hooks:
        register(event, handler, unique_id=f"pilotlight-{name}-{event}")


def unhook(events: Any, hooks: Hooks, name: str) -> None:
    for event, _ in hooks:
        events.unregister(event, unique_id=f"pilotlight-{name}-{event}")


def no_delay() -> float:
    return 0.0


def delay_of(latency: Any, kind: str) -> Any:
    """The modeled duration of ``kind`` under a latency model, or none without one."""
    return latency.delay(kind) if latency is not None else no_delay
