"""Shared handler plumbing: the action registry, client creation and AWS error mapping."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambdas import redact
from lambdas.errors import (
    AccessDenied,
    AwsUnavailable,
    InvalidInput,
    InvalidRequest,
    MalformedData,
    PilotLightError,
    ResourceNotFound,
    ResourceNotReady,
    Throttled,
)

LOG = logging.getLogger("pilotlight")

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
        """Lambda entry point: dispatch on ``event['action']``; errors propagate by class name.

        The event is checked against the action's signature before the action runs: a missing or unknown
        parameter, or a value of another JSON type than the parameter's, is :class:`InvalidInput` naming it,
        so a malformed execution input or event ends the workflow with a named error and nothing changed.
        What the action itself cannot read (a field missing from an event or an AWS answer) is
        :class:`MalformedData`; an AWS error it did not map is mapped here.
        """
        if not isinstance(event, dict):
            raise InvalidInput(f"{self.service}: the event must be a JSON object with an 'action', got "
                               f"{_json_kind(event)}")
        name = event.get("action")
        if not isinstance(name, str) or name not in self.actions:
            raise InvalidInput(f"{self.service}: unknown action {name!r}; known: {sorted(self.actions)}")
        args = {k: v for k, v in event.items() if k != "action"}
        started = time.monotonic()
        request_id = getattr(context, "aws_request_id", None)
        where = f"{self.service}.{name}"
        try:
            action = self.actions[name]
            check_arguments(where, action.func, args)
            try:
                result = action.func(**args)
            except CONNECTION_ERRORS as exc:
                # A call the action did not map itself (an endpoint that cannot be reached is not a
                # ClientError): still retryable, under the name the workflows retry.
                raise unavailable(exc, where) from exc
            except ClientError as exc:
                raise_mapped(exc, where)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                LOG.exception("%s: unreadable data", where)
                raise MalformedData(f"{where}: {type(exc).__name__}: {exc}") from exc
        except PilotLightError as exc:
            # A message may quote a value read from AWS: credentials in a URL are masked (lambdas/redact.py).
            _log(self.service, name, request_id, started, error=type(exc).__name__, message=redact.value(exc))
            raise
        _log(self.service, name, request_id, started)
        return result


def _json_kind(value: Any) -> str:
    """A value's JSON type, as an execution input or event shows it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_JSON_TYPES: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,),
                                            list: (list,), dict: (dict,)}


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` has the JSON type ``annotation`` names (the outer type only; Any and classes pass)."""
    if annotation is Any:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in args)
    if annotation is type(None):
        return value is None
    if typing.get_origin(annotation) is typing.Literal:
        return value in args
    base = typing.get_origin(annotation) or annotation
    kinds = _JSON_TYPES.get(base)
    if kinds is None:
        return True
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


@functools.cache
def _signature(func: Handler) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # an annotation that cannot be resolved is not checked
        hints = {}
    return inspect.signature(func), hints


def check_arguments(where: str, func: Handler, args: dict[str, Any]) -> None:
    """Raise :class:`InvalidInput` unless ``func(**args)`` names its parameters and JSON types right."""
    signature, hints = _signature(func)
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [] if takes_any else sorted(k for k in args if k not in params)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in args
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown {', '.join(unknown)} (takes {', '.join(params) or 'nothing'})")
    for key, value in args.items():
        if key in params and key in hints and not _accepts(hints[key], value):
            problems.append(f"{key} must be {_type_text(hints[key])}, got {_json_kind(value)}")
    if problems:
        raise InvalidInput(f"{where}: {'; '.join(problems)}")


def _type_text(annotation: Any) -> str:
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: "an array",
             dict: "an object", type(None): "null"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    base = typing.get_origin(annotation) or annotation
    return names.get(base, getattr(base, "__name__", str(base)))


def _log(service: str, action: str, request_id: str | None, started: float, **extra: Any) -> None:
    # One JSON line per invocation; arguments are not logged (they can carry names users consider sensitive).
    record = {"service": service, "action": action, "request_id": request_id,
              "ms": round((time.monotonic() - started) * 1000, 1), **extra}
    LOG.info(json.dumps(record, default=str))


@functools.cache
def _client_config(fast: bool) -> Any:
    # boto3 and botocore.config are imported when a client is made, not with this module: the CLI imports
    # the handlers' names and checks (a plan's drill names) without calling AWS.
    from botocore.config import Config

    if fast:
        # For calls that may go to an impaired region (e.g. reading the primary's alarms during a
        # failover): fail fast rather than hold the critical path.
        return Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10)
    # botocore's own retries stay on (standard mode); what is left after them becomes a workflow Retry.
    return Config(retries={"mode": "standard", "max_attempts": 3})


def client(service: str, region: str, *, fast: bool = False) -> Any:
    """A boto3 client with parameter validation on (botocore's default) and standard retries."""
    import boto3

    return boto3.client(service, region_name=region, config=_client_config(fast))


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
