"""Shared handler plumbing: the action registry, client creation and AWS error mapping."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambdas.errors import (
    AccessDenied,
    AwsUnavailable,
    InvalidRequest,
    PilotLightError,
    ResourceNotFound,
    ResourceNotReady,
    Throttled,
)

LOG = logging.getLogger("pilotlight")

# botocore's own retries stay on (standard mode); what is left after them becomes a workflow Retry.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})

Handler = Callable[..., dict[str, Any]]
# A resource kind, several kinds (an IAM action that authorizes on more than one resource type, such
# as ec2:CreateImage on the instance, the new image and its snapshots), or those per permission.
Kinds = str | tuple[str, ...] | dict[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Action:
    """A step a workflow can call: a plain function plus the IAM actions it needs."""

    name: str
    func: Handler
    permissions: tuple[str, ...]
    resource: Kinds = "*"  # resource kind(s), or permission -> kind(s)
    doc: str = ""

    def resource_for(self, permission: str) -> tuple[str, ...]:
        """The kinds of resource (see infra/iam.py) a permission is granted on; ``("*",)`` when none."""
        kinds = self.resource if isinstance(self.resource, str | tuple) else self.resource.get(permission, "*")
        return (kinds,) if isinstance(kinds, str) else tuple(kinds)


@dataclass
class Registry:
    service: str
    actions: dict[str, Action] = field(default_factory=dict)

    def action(
        self, name: str, *, permissions: list[str], resource: Kinds = "*"
    ) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            if name in self.actions:
                raise ValueError(f"action {self.service}.{name} registered twice")
            self.actions[name] = Action(name, func, tuple(permissions), resource, (func.__doc__ or "").strip())
            return func

        return register

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Lambda entry point: dispatch on ``event['action']``; errors propagate by class name."""
        name = event.get("action")
        if name not in self.actions:
            raise InvalidRequest(f"{self.service}: unknown action {name!r}; known: {sorted(self.actions)}")
        args = {k: v for k, v in event.items() if k != "action"}
        started = time.monotonic()
        request_id = getattr(context, "aws_request_id", None)
        try:
            try:
                result = self.actions[name].func(**args)
            except CONNECTION_ERRORS as exc:
                # A call the action did not map itself (an endpoint that cannot be reached is not a
                # ClientError): still retryable, under the name the workflows retry.
                raise unavailable(exc, f"{self.service}.{name}") from exc
        except PilotLightError as exc:
            _log(self.service, name, request_id, started, error=type(exc).__name__, message=str(exc))
            raise
        _log(self.service, name, request_id, started)
        return result


def _log(service: str, action: str, request_id: str | None, started: float, **extra: Any) -> None:
    # One JSON line per invocation; arguments are not logged (they can carry names users consider sensitive).
    record = {"service": service, "action": action, "request_id": request_id,
              "ms": round((time.monotonic() - started) * 1000, 1), **extra}
    LOG.info(json.dumps(record, default=str))


# For calls that may go to an impaired region (e.g. reading the primary's alarms during a
# failover): fail fast rather than hold the critical path.
_FAST_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10)


def client(service: str, region: str, *, fast: bool = False) -> Any:
    """A boto3 client with parameter validation on (botocore's default) and standard retries."""
    return boto3.client(service, region_name=region, config=_FAST_CONFIG if fast else _CLIENT_CONFIG)


_NOT_READY = {"InvalidDBInstanceState", "InvalidDBInstanceStateFault", "IncorrectState", "PriorRequestNotComplete",
              "InvalidParameterCombination_NotReady", "OperationAborted", "InvalidChangeBatch_Pending"}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
              "SlowDown", "RequestThrottled"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"}


# Connect and read timeouts, refused or dropped connections: botocore raises these (BotoCoreError, not
# ClientError) once its own retries are spent. The endpoint may answer on the next attempt: retryable.
CONNECTION_ERRORS: tuple[type[BotoCoreError], ...] = (
    ConnectTimeoutError,
    ReadTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
)


def unavailable(exc: BaseException, what: str) -> AwsUnavailable:
    """The retryable error for an endpoint that could not be reached (connect/read timeout, refused)."""
    return AwsUnavailable(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Map whatever an AWS call raises to the pilotlight error class, ``what`` naming the call::

        with aws_errors(f"describe {name}"):
            eb.describe_environments(...)

    A ClientError goes through :func:`raise_mapped`; a connection or read timeout becomes AwsUnavailable.
    """
    try:
        yield
    except ClientError as exc:
        raise_mapped(exc, what)
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, what) from exc


def raise_mapped(exc: ClientError | BotoCoreError, what: str) -> None:
    """Re-raise an AWS error as the pilotlight error class the workflows retry or catch by name.

    Takes a ClientError or one of :data:`CONNECTION_ERRORS` (an endpoint that could not be reached).
    """
    if not isinstance(exc, ClientError):
        if isinstance(exc, CONNECTION_ERRORS):
            raise unavailable(exc, what) from exc
        raise exc
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = f"{what}: {code}: {error.get('Message', '')}"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _NOT_READY:
        raise ResourceNotReady(message) from exc
    if code in _THROTTLED:
        raise Throttled(message) from exc
    if code in _DENIED:
        raise AccessDenied(message) from exc
    if code.endswith("NotFound") or code.endswith("NotFoundFault") or code in {"NoSuchHostedZone", "NoSuchBucket"}:
        raise ResourceNotFound(message) from exc
    if status >= 500:
        raise AwsUnavailable(message) from exc
    raise InvalidRequest(message) from exc


def fmt_duration(seconds: float | None) -> str:
    """``12m05s`` / ``1h02m03s`` (``-`` for none): how the CLI, the reports and the widget write durations."""
    if seconds is None:
        return "-"
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def region_of_lambda(default: str | None = None) -> str:
    return os.environ.get("AWS_REGION") or default or "us-east-1"
