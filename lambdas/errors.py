"""Error classes raised by the handlers.

Step Functions sees the class name as the error name (``errorType``), so ``Retry`` and ``Catch``
in the workflows refer to these names; a test checks every ``ErrorEquals`` name exists here.
"""

from __future__ import annotations


class PilotLightError(Exception):
    """Root of every error a pilotlight step raises on purpose."""


class RetryableError(PilotLightError):
    """The step may succeed if run again later; workflows retry these with backoff."""


class TerminalError(PilotLightError):
    """Running the step again will not help; the workflow fails with this error and cause."""


class ResourceNotReady(RetryableError):
    """The resource is in a state that refuses the action for now (e.g. modifying)."""


class Throttled(RetryableError):
    """AWS throttled the call after botocore's own retries."""


class AwsUnavailable(RetryableError):
    """An AWS endpoint answered with a server-side error, or could not be reached (connect or read timeout)."""


class PreconditionFailed(TerminalError):
    """The world is not as the step requires (e.g. the DR replica is missing)."""


class ResourceNotFound(TerminalError):
    """A resource the plan names does not exist."""


class AccessDenied(TerminalError):
    """The function's role may not perform the call."""


class InvalidRequest(TerminalError):
    """AWS rejected the request's parameters."""


class PrimaryHealthy(TerminalError):
    """A failover was asked for while every trigger alarm of the plan is OK (use --force)."""


class AlreadyRunning(TerminalError):
    """Another failover execution of the same plan is running; a second one is not queued."""


class TooSoon(TerminalError):
    """An automatic failover came within the plan's minimum interval of the previous one."""


class Aborted(TerminalError):
    """An operator aborted the failover while it waited for approval."""


class DrillRefused(TerminalError):
    """A drill was asked for while a failover or another drill of the plan runs, or while readiness is
    NOT_READY on what the drill copies (a database, a saved configuration; --force overrides that)."""


class EnvironmentUnhealthy(TerminalError):
    """A launched environment stayed Ready with health Red past its grace period (its causes in the message)."""


class ServiceNotVerified(TerminalError):
    """The restored service did not pass its checks (an HTTP probe, a canary write) within the bounded attempts."""


class ReadBackMismatch(TerminalError):
    """The marker item read back from a DynamoDB DR replica (strongly consistent) is not the one just written."""


class HeartbeatNotWritten(TerminalError):
    """Replicate could not write its heartbeat row to a primary database (unreachable from the function's
    network, credentials refused, or the write refused); the message says which, never the credentials."""


def _subclasses(root: type) -> list[type]:
    out = []
    for cls in root.__subclasses__():
        out += [cls, *_subclasses(cls)]
    return out


RETRYABLE = _subclasses(RetryableError)
TERMINAL = _subclasses(TerminalError)
# Refusals by the guard rails: the CLI reports them as "precondition not met" (exit 4).
GUARD_ERRORS = [PrimaryHealthy, AlreadyRunning, TooSoon]
ALL_ERROR_NAMES = {cls.__name__ for cls in [PilotLightError, RetryableError, TerminalError, *RETRYABLE, *TERMINAL]}


class DnsCutoverFailed(TerminalError):
    """Route 53 refused or failed the records-mode cutover after the DR database was promoted; the
    message is the manual step (the record, the value to set) for the operator."""


# Appended after the lists above were built (appended here to keep edits to this module append-only).
TERMINAL.append(DnsCutoverFailed)
ALL_ERROR_NAMES.add(DnsCutoverFailed.__name__)


class InvalidInput(InvalidRequest):
    """The step's input is not what it takes: the execution input, an EventBridge event or a Lambda payload
    lacks a field, has one the step does not take, or has a value of the wrong type. Raised before the step
    acts, so nothing was changed."""


class Misconfigured(TerminalError):
    """An environment variable the function reads (set by the deployment) is missing or malformed."""


class MalformedData(TerminalError):
    """A step met data it could not read (a field missing from an event or an AWS answer, a value of another
    type than expected); the message names the step, the exception and the field."""


for _cls in (InvalidInput, Misconfigured, MalformedData):
    TERMINAL.append(_cls)
    ALL_ERROR_NAMES.add(_cls.__name__)


class AssumeRoleDenied(AccessDenied):
    """A cross-account plan's role could not be assumed (sts:AssumeRole refused): the role's trust policy does
    not admit the function's role, or the external id (never shown) is not the one it requires; the message
    names the role and the SSM parameter holding the external id."""


TERMINAL.append(AssumeRoleDenied)
ALL_ERROR_NAMES.add(AssumeRoleDenied.__name__)


class FailbackRefused(TerminalError):
    """A failback was asked for when it cannot go ahead: the primary region does not answer, the live site is not
    the DR one (no failover since the last failback), or a failover, drill or failback of the plan is running."""


class FailbackBackedOff(TerminalError):
    """Moving traffic back in weighted steps met a plan alarm in ALARM: traffic went back to the DR site."""


class DataCheckFailed(TerminalError):
    """After promotion, the primary database does not hold what the DR database held when writes stopped."""


# The lists above, rebuilt with every class of this module (those defined after them included).
RETRYABLE[:] = _subclasses(RetryableError)
TERMINAL[:] = _subclasses(TerminalError)
ALL_ERROR_NAMES.update(cls.__name__ for cls in (*RETRYABLE, *TERMINAL))
