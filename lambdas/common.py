"""Shared handler plumbing: the action registry, client creation and AWS error mapping."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambdas import redact, typenames
from lambdas.errors import (
    AccessDenied,
    AssumeRoleDenied,
    AwsUnavailable,
    InvalidInput,
    InvalidRequest,
    MalformedData,
    Misconfigured,
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
                               f"{typenames.kind(event, typenames.JSON)}")
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
            problems.append(f"{key} must be {typenames.wanted(hints[key], typenames.JSON)}, "
                            f"got {typenames.kind(value, typenames.JSON)}")
    if problems:
        raise InvalidInput(f"{where}: {'; '.join(problems)}")


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


def client(service: str, region: str, *, fast: bool = False, own: bool = False) -> Any:
    """A boto3 client with parameter validation on (botocore's default) and standard retries.

    In a cross-account plan (:data:`ACCOUNTS_ENV` set by the deployment) a client for a region whose resources
    live in another account acts with the credentials of the role the plan names there (:func:`assumed_keys`);
    without it, nothing more than the client is made (no STS call). ``own``: a resource of the deployment itself
    (the failover claim table) in a service the plan's tiers also use: the function's own credentials.
    """
    import boto3

    keys = {} if own else assumed_keys(service, region)
    return boto3.client(service, region_name=region, config=_client_config(fast), **keys)


# Cross-account plans (workflows/plan_accounts.py) --------------------------------------------------------------
# The deployment sets ACCOUNTS_ENV to JSON {"sts_region": <DR region>, "regions": {<region>: {"role_arn": ...,
# "external_id_parameter": <SSM SecureString name>}}}: role ARNs and a parameter name, never the external id.
ACCOUNTS_ENV = "PILOTLIGHT_ACCOUNTS"
ASSUME_ROLE_SECONDS = 900  # the shortest session STS grants
REFRESH_BEFORE_SECONDS = 120  # credentials are replaced this long before they expire
# Services that act on what the deployment itself owns (its state machines, topic, functions and their roles) or
# that are global (IAM, Route 53, signed in us-east-1 whatever the plan's regions): always the function's own
# credentials, whatever region the client names.
OWN_ACCOUNT_SERVICES = frozenset({"stepfunctions", "sns", "lambda", "sts", "iam", "route53"})
# sts:AssumeRole's ExternalId: 2 to 1224 characters of these (the STS API reference).
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]", re.ASCII)
_ROLE_LOCK = threading.Lock()
_ROLE_CREDENTIALS: dict[str, tuple[dict[str, str], float]] = {}  # role ARN -> (client keys, expires at)
_EXTERNAL_IDS: dict[str, str] = {}  # SSM parameter name -> its value, for the life of the process
_now = time.time


@dataclass(frozen=True)
class _Role:
    role_arn: str
    external_id_parameter: str


@functools.cache
def _accounts(raw: str) -> tuple[str, dict[str, _Role]]:
    """(the DR region, whose STS endpoint is called; region -> role) from :data:`ACCOUNTS_ENV`."""
    try:
        doc = json.loads(raw)
        regions = {str(r): _Role(str(v["role_arn"]), str(v["external_id_parameter"]))
                   for r, v in doc["regions"].items()}
        return str(doc["sts_region"]), regions
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Misconfigured(f"{ACCOUNTS_ENV} is not the JSON the deployment sets ({type(exc).__name__}: {exc})") \
            from None


def assumed_keys(service: str, region: str) -> dict[str, str]:
    """boto3.client keyword arguments with the credentials of the role that owns ``region`` ({} when none does,
    or for :data:`OWN_ACCOUNT_SERVICES`). Made with the function's own credentials by the DR region's STS
    endpoint (botocore's default: regional), cached per role until :data:`REFRESH_BEFORE_SECONDS` before they
    expire. Neither the external id nor the credentials are ever logged or put in an error message."""
    raw = os.environ.get(ACCOUNTS_ENV)
    if not raw or service in OWN_ACCOUNT_SERVICES:
        return {}
    sts_region, roles = _accounts(raw)
    role = roles.get(region)
    if role is None:
        return {}
    with _ROLE_LOCK:
        cached = _ROLE_CREDENTIALS.get(role.role_arn)
        if cached is not None and cached[1] - _now() > REFRESH_BEFORE_SECONDS:
            return cached[0]
        keys, expires = _assume(role, sts_region)
        _ROLE_CREDENTIALS[role.role_arn] = (keys, expires)
        return keys


def forget_assumed_roles() -> None:
    """Drop the cached credentials and external ids (the next client assumes its role again)."""
    with _ROLE_LOCK:
        _ROLE_CREDENTIALS.clear()
        _EXTERNAL_IDS.clear()


def _session_name() -> str:
    """``pilotlight-<function>`` (CloudTrail in the other account shows which function acted), else the plan's."""
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("PILOTLIGHT_PLAN") or ""
    name = name if name.startswith("pilotlight") else f"pilotlight-{name}".rstrip("-")
    return _SESSION_NAME_UNSAFE.sub("-", name)[:64]


def _external_id(role: _Role, sts_region: str) -> str:
    """The external id, from the SSM SecureString parameter the plan names (DR region, own account)."""
    parameter = role.external_id_parameter
    if parameter in _EXTERNAL_IDS:
        return _EXTERNAL_IDS[parameter]
    import boto3

    ssm = boto3.client("ssm", region_name=sts_region, config=_client_config(False))
    what = f"ssm:GetParameter {parameter} (the external id of {role.role_arn})"
    try:
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise Misconfigured(f"{what}: no such parameter in {sts_region}; create it as a SecureString "
                                "(docs/deploy.md)") from None
        raise_mapped(exc, what)
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, what) from exc
    if not isinstance(value, str) or not _EXTERNAL_ID.match(value):
        raise Misconfigured(f"{what}: the value is not an external id STS accepts (2 to 1224 letters, digits or "
                            "+=,.@:/-); the value is not shown")
    _EXTERNAL_IDS[parameter] = value
    return value


def _assume(role: _Role, sts_region: str) -> tuple[dict[str, str], float]:
    import boto3

    external_id = _external_id(role, sts_region)
    sts = boto3.client("sts", region_name=sts_region, config=_client_config(False))
    what = f"sts:AssumeRole {role.role_arn}"
    try:
        credentials = sts.assume_role(RoleArn=role.role_arn, RoleSessionName=_session_name(),
                                      ExternalId=external_id, DurationSeconds=ASSUME_ROLE_SECONDS)["Credentials"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")).replace(external_id, "***")
        if code in _DENIED:
            _EXTERNAL_IDS.pop(role.external_id_parameter, None)  # read it again next time: it may have been rotated
            raise AssumeRoleDenied(
                f"{what}: {code}: the role's trust policy does not admit this function's role with the external id "
                f"in SSM parameter {role.external_id_parameter} (value not shown), or the role does not exist; "
                f"AWS said: {message}") from None
        if code == "RegionDisabledException":
            raise Misconfigured(f"{what}: STS is not activated in {sts_region} for the role's account; activate it "
                                "in that account's IAM account settings") from None
        raise_mapped(exc, what)
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, what) from exc
    keys = {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}
    expiration = credentials["Expiration"]
    expires = expiration.timestamp() if hasattr(expiration, "timestamp") else _now() + ASSUME_ROLE_SECONDS
    LOG.info(json.dumps({"assumed_role": role.role_arn, "session": _session_name(), "seconds": ASSUME_ROLE_SECONDS}))
    return keys, expires


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


def raise_mapped(exc: ClientError | BotoCoreError, what: str) -> NoReturn:
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
