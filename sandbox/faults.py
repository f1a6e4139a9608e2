"""Fault injection: make an AWS operation fail as AWS would, or the Lambda making it die, for chosen calls.

A fault is written ``SERVICE:OPERATION:KIND[:WHEN]`` (``pilotlight demo --inject``, :meth:`Sandbox.inject`):

- ``SERVICE``: the boto3 client name (``rds``, ``ec2``, ``elasticbeanstalk``, ``route53``, ``s3``, ...);
- ``OPERATION``: the API operation as the service model spells it (``PromoteReadReplica``);
- ``KIND``: one of :data:`KINDS` (an AWS error code, ``ReadTimeout``, ``ConnectionError`` or ``Crash``);
- ``WHEN``: ``N``, only the Nth call from now (1-based), or ``xK``, each of the next K calls. Default ``1``.

Calls are counted only when a Lambda function of the plan makes them (the product's calls): the sandbox's own
seeding, a test's or the CLI's reads, and the Step Functions interpreter neither count nor fail. An error
answers the call at once, before botocore's own retries could see it: the fault is what is left once those
are spent. ``Crash`` lets the call succeed and then ends the function before it returns, as an out-of-memory
kill or a function timeout would: the step ran, the workflow does not hear it (Step Functions reports
``Lambda.Unknown``). A fault reaches the clients made after it is injected (the functions make theirs per
invocation).

:meth:`Faults.inject` is the lower-level form for tests that need an error code of their own: it counts every
caller, from now, the next ``times`` calls (None: every call).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from sandbox import responses

_ids = itertools.count()


@dataclass(frozen=True)
class Kind:
    name: str
    how: str  # "error": an AWS error answer; "timeout", "connection": raised by botocore; "crash": after the call
    code: str = ""
    status: int = 0
    doc: str = ""


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("Throttling", "error", "Throttling", 400, "throttled (most query-protocol services)"),
    Kind("RequestLimitExceeded", "error", "RequestLimitExceeded", 503, "throttled (EC2)"),
    Kind("TooManyRequestsException", "error", "TooManyRequestsException", 429,
         "throttled (Lambda, Beanstalk's and Route 53's rate limits)"),
    Kind("ServiceUnavailable", "error", "ServiceUnavailable", 503, "a 5xx: the service is unavailable"),
    Kind("InternalFailure", "error", "InternalFailure", 500, "a 5xx: an internal error of the service"),
    Kind("AccessDenied", "error", "AccessDenied", 403, "the caller's role may not make the call"),
    Kind("ReadTimeout", "timeout", doc="no answer in time: botocore's ReadTimeoutError"),
    Kind("ConnectionError", "connection", doc="the endpoint cannot be reached: botocore's EndpointConnectionError"),
    Kind("Crash", "crash", doc="the call succeeds, then the Lambda function dies before it returns (Lambda.Unknown)"),
)}
# The kinds a workflow is expected to ride out (retried with back-off); the others end the step.
TRANSIENT_KINDS = ("Throttling", "RequestLimitExceeded", "TooManyRequestsException", "ServiceUnavailable",
                   "InternalFailure", "ReadTimeout", "ConnectionError", "Crash")
GRAMMAR = "SERVICE:OPERATION:KIND[:N|:xK]"
_MAX_CALLS = 10_000


class FaultSpecError(ValueError):
    """A fault spec that cannot be used; the message names the part that is wrong."""


class LambdaCrashed(BaseException):  # noqa: N818 - named for what happened, as the runtime reports it
    """The Lambda function died after an AWS call succeeded (out of memory, timed out, killed).

    A BaseException, so no ``except Exception`` in a handler can mistake it for an error to handle: the
    function never reaches its return, and the sandbox's Lambda host answers as the Lambda service does.
    """


@dataclass(frozen=True)
class FaultSpec:
    service: str  # boto3 client name
    event_service: str  # botocore's event name for the service (``elastic-beanstalk``)
    operation: str
    kind: str
    nth: int | None = 1  # only the Nth call from now
    count: int | None = None  # each of the next K calls (when nth is None)

    def __str__(self) -> str:
        when = f"x{self.count}" if self.nth is None else str(self.nth)
        return f"{self.service}:{self.operation}:{self.kind}:{when}"

    def fires_on(self, call: int) -> bool:
        """Does the ``call``-th counted call (1-based) fail?"""
        return call == self.nth if self.nth is not None else call <= (self.count or 0)

    @property
    def last_call(self) -> int:
        return self.nth if self.nth is not None else (self.count or 0)


_SESSION: list[Any] = []


def _botocore_session() -> Any:
    if not _SESSION:
        import botocore.session

        _SESSION.append(botocore.session.get_session())
    return _SESSION[0]


def _close(word: str, options: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def parse_spec(text: str) -> FaultSpec:
    """``SERVICE:OPERATION:KIND[:WHEN]`` -> :class:`FaultSpec`; :class:`FaultSpecError` names the wrong part."""
    parts = text.strip().split(":")
    if len(parts) not in (3, 4) or not all(parts):
        raise FaultSpecError(f"{text!r}: expected {GRAMMAR}, e.g. rds:PromoteReadReplica:Throttling:x2")
    service, operation, kind = parts[:3]
    session = _botocore_session()
    services = session.get_available_services()
    if service not in services:
        aliases = {session.get_service_model(s).service_id.hyphenize(): s for s in ("elasticbeanstalk", "route53",
                                                                                  "autoscaling", "stepfunctions")}
        if service not in aliases:
            raise FaultSpecError(f"{text!r}: SERVICE {service!r} is not an AWS service botocore knows"
                                 f"{_close(service, services)}")
        service = aliases[service]
    model = session.get_service_model(service)
    if operation not in model.operation_names:
        raise FaultSpecError(f"{text!r}: OPERATION {operation!r} is not an operation of {service}"
                             f"{_close(operation, list(model.operation_names))}")
    if kind not in KINDS:
        raise FaultSpecError(f"{text!r}: KIND {kind!r} is not one of {', '.join(KINDS)}")
    nth: int | None = 1
    count: int | None = None
    if len(parts) == 4:
        when = parts[3]
        match = re.fullmatch(r"(x?)([0-9]+)", when)
        if match is None or not 1 <= int(match.group(2)) <= _MAX_CALLS:
            raise FaultSpecError(f"{text!r}: WHEN {when!r} must be N (only the Nth call, 1-based) or xK (the next "
                                 f"K calls), N and K from 1 to {_MAX_CALLS}")
        if match.group(1):
            nth, count = None, int(match.group(2))
        else:
            nth = int(match.group(2))
    return FaultSpec(service, model.service_id.hyphenize(), operation, kind, nth, count)


@dataclass
class Fault:
    event: str
    unique_id: str
    code: str
    message: str
    status: int
    remaining: int | None  # legacy faults: calls still to fail (None: every call)
    hits: int = 0  # calls that failed
    spec: FaultSpec | None = None
    calls: int = 0  # calls counted (spec faults)

    @property
    def done(self) -> bool:
        """No further call will fail."""
        if self.spec is not None:
            return self.calls >= self.spec.last_call
        return self.remaining is not None and self.remaining <= 0


class Faults:
    def __init__(self, events: Any, in_function: Callable[[], bool] = lambda: True) -> None:
        """``in_function``: is the calling thread running a Lambda function of the sandbox? Spec faults count
        only those calls."""
        self._events = events
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._in_function = in_function

    @property
    def active(self) -> list[Fault]:
        return list(self._faults)

    def inject(
        self,
        service: str,
        operation: str,
        code: str,
        message: str = "injected by the sandbox",
        *,
        times: int | None = 1,
        status: int = 400,
    ) -> Fault:
        """``service`` is botocore's event name for it (``rds``, ``route53``, ``elastic-beanstalk``)."""
        fault = Fault(
            f"before-call.{service}.{operation}", f"pilotlight-fault-{next(_ids)}", code, message, status, times
        )

        def fail(**_: Any) -> Any:
            with self._lock:
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        return None
                    fault.remaining -= 1
                fault.hits += 1
            return responses.error(fault.code, fault.message, fault.status)

        self._events.register_first(fault.event, fail, unique_id=fault.unique_id)
        self._faults.append(fault)
        return fault

    def add(self, spec: FaultSpec | str) -> Fault:
        """Inject a fault written as a spec (see the module's docstring); its calls count from now."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        kind = KINDS[spec.kind]
        stage = "after-call" if kind.how == "crash" else "before-call"
        message = f"injected by the sandbox ({spec})"
        fault = Fault(f"{stage}.{spec.event_service}.{spec.operation}", f"pilotlight-fault-{next(_ids)}", kind.code,
                      message, kind.status, None, spec=spec)

        def counted(succeeded: bool = True) -> bool:
            if not succeeded or not self._in_function():
                return False
            with self._lock:
                fault.calls += 1
                fires = spec.fires_on(fault.calls)
                fault.hits += fires
            return fires

        def before(model: Any, context: dict[str, Any], **_: Any) -> Any:
            if not counted():
                return None
            url = f"https://{model.service_model.endpoint_prefix}.{context.get('client_region')}.amazonaws.com/"
            if kind.how == "timeout":
                raise ReadTimeoutError(endpoint_url=url)
            if kind.how == "connection":
                raise EndpointConnectionError(endpoint_url=url)
            return responses.error(fault.code, fault.message, fault.status)

        def after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
            ok = getattr(http_response, "status_code", 200) < 300 and "Error" not in (parsed or {})
            if counted(ok):
                raise LambdaCrashed(f"RequestId: {spec}: Error: Runtime exited with error: signal: killed "
                                    f"(after {spec.operation} succeeded)")

        if stage == "after-call":
            # Last: the latency model and the adapters have recorded the call's effect before the function dies.
            self._events.register_last(fault.event, after, unique_id=fault.unique_id)
        else:
            self._events.register_first(fault.event, before, unique_id=fault.unique_id)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        for fault in self._faults:
            self._events.unregister(fault.event, unique_id=fault.unique_id)
        self._faults.clear()
