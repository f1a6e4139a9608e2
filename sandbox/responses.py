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
