"""Small builders for ASL shapes used by every workflow, written once.

Task resources are ``${<Service>FunctionArn}`` placeholders; CDK (``definition_substitutions``)
and the sandbox fill them with the same substitution, so both run the same JSON.
"""

from __future__ import annotations

import json
from typing import Any

State = dict[str, Any]

# Errors the Lambda service itself raises; always worth retrying quickly.
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# A function that ended without returning (killed, out of memory, timed out): Step Functions names it
# Lambda.Unknown. Its AWS call may have been made; every step reads the current state first, so running it
# again converges. Retried a couple of times only: a function that dies every time needs a person.
LAMBDA_UNKNOWN = "Lambda.Unknown"
# Our retryable classes (lambdas/errors.py).
RETRYABLE_ERRORS = ["ResourceNotReady", "Throttled", "AwsUnavailable"]

# Every retrier backs off exponentially with FULL jitter (each wait drawn between 0 and the computed interval,
# so many executions retrying one throttled API do not come back in step) and a MaxDelaySeconds cap, so the
# time a Task can spend retrying is bounded: see worst_case_retry_seconds.
STANDARD_RETRY: list[dict[str, Any]] = [
    {"ErrorEquals": LAMBDA_SERVICE_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0,
     "MaxDelaySeconds": 30, "JitterStrategy": "FULL"},
    {"ErrorEquals": [LAMBDA_UNKNOWN], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2.0,
     "MaxDelaySeconds": 10, "JitterStrategy": "FULL"},
    {
        "ErrorEquals": RETRYABLE_ERRORS,
        "IntervalSeconds": 10,
        "MaxAttempts": 5,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 120,
        "JitterStrategy": "FULL",
    },
]

TASK_TIMEOUT_SECONDS = 120


def lambda_service_retry(attempts: int, interval: int = 2) -> list[dict[str, Any]]:
    """Retry only the Lambda service's own errors (a step that must not be run twice, or whose failure is
    handled by a Catch): the same back-off, jitter and cap as :data:`STANDARD_RETRY`."""
    return [{"ErrorEquals": LAMBDA_SERVICE_ERRORS, "IntervalSeconds": interval, "MaxAttempts": attempts,
             "BackoffRate": 2.0, "MaxDelaySeconds": 30, "JitterStrategy": "FULL"}]


def retry_delays(retrier: dict[str, Any]) -> list[float]:
    """The longest wait before each retry a retrier allows (FULL jitter draws each between 0 and this)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds")
    out = []
    for attempt in range(retrier.get("MaxAttempts", 3)):
        delay = interval * rate**attempt
        out.append(float(min(delay, cap) if cap is not None else delay))
    return out


def worst_case_retry_seconds(retry: list[dict[str, Any]] | None = None,
                             timeout_seconds: int = TASK_TIMEOUT_SECONDS) -> dict[str, float]:
    """The longest a Task with this Retry can take before it fails: every retrier spent (each counts its own
    attempts), each wait at its cap, each attempt running to the Task's timeout.

    ``waits``: the back-offs alone; ``attempts``: the invocations; ``total``: waits + attempts x timeout.
    """
    retry = STANDARD_RETRY if retry is None else retry
    waits = sum(sum(retry_delays(r)) for r in retry)
    attempts = 1 + sum(r.get("MaxAttempts", 3) for r in retry)
    return {"waits": waits, "attempts": attempts, "total": waits + attempts * timeout_seconds}


def function_placeholder(service: str) -> str:
    return "${" + service.capitalize() + "FunctionArn}"


NOTIFICATION_TOPIC = "${NotificationTopicArn}"
NOTIFICATION_TOPIC_KEY = "NotificationTopicArn"


def function_key(service: str) -> str:
    """The substitution key for a service's function, e.g. ``RdsFunctionArn``."""
    return service.capitalize() + "FunctionArn"


def services_called(definition: dict[str, Any]) -> set[str]:
    """The Lambda services (``lambdas/<service>.py``) a definition's placeholders name."""
    return {key.removesuffix("FunctionArn").lower() for key in placeholders(definition) if key.endswith("FunctionArn")}


def task(
    step: str,
    service: str,
    action: str,
    params: dict[str, Any],
    *,
    result_path: str | None,
    next_state: str | None,
    retry: bool = True,
) -> State:
    state: State = {
        "Type": "Task",
        "Comment": step,
        "Resource": function_placeholder(service),
        "Parameters": {"action": action, **params},
        "ResultPath": result_path,
        "TimeoutSeconds": TASK_TIMEOUT_SECONDS,
    }
    if retry:
        state["Retry"] = [dict(r) for r in STANDARD_RETRY]
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def evidence_task(step: str, service: str, action: str, params: dict[str, Any], *, result_path: str,
                  next_state: str) -> State:
    """A Task whose result is evidence, not a gate (a replica's lag, the RPO): one quick retry of the Lambda
    service only, and any error is kept at ``result_path`` as the evidence while the run goes on."""
    return {
        **task(step, service, action, params, result_path=result_path, next_state=next_state, retry=False),
        "Retry": lambda_service_retry(1, interval=1),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}],
    }


def poll_loop(
    name: str,
    step: str,
    *,
    service: str,
    act: tuple[str, dict[str, Any]],
    check: tuple[str, dict[str, Any]],
    interval_seconds: int,
    max_attempts: int,
    next_state: str,
    what: str,
    first_wait_seconds: int = 0,
) -> dict[str, State]:
    """Act once, then Choice -> Wait -> Check until done, at most ``max_attempts`` checks.

    The act and check results land in ``$.poll`` (``done``, ``attempt``, details); the check
    receives the attempt count so the Choice can stop an endless wait with a named error. An act
    that finds the work already done answers ``done: true`` and the loop is skipped, so a re-run
    converges without waiting.

    ``first_wait_seconds`` sizes the wait before the first check to the operation (no check is made
    before it could be done); the checks after it come ``interval_seconds`` apart, so a short
    interval finds the end of the operation promptly without a storm of early checks.
    """
    act_action, act_params = act
    check_action, check_params = check
    wait, chk, choice, fail = f"{name}Wait", f"{name}Check", f"{name}Done?", f"{name}TimedOut"
    first = f"{name}FirstWait"
    rules: list[dict[str, Any]] = [
        {"Variable": "$.poll.done", "BooleanEquals": True, "Next": next_state},
        {"Variable": "$.poll.attempt", "NumericGreaterThanEquals": max_attempts, "Next": fail},
    ]
    extra: dict[str, State] = {}
    if first_wait_seconds > 0:
        rules.append({"Variable": "$.poll.attempt", "NumericEquals": 0, "Next": first})
        extra[first] = {"Type": "Wait", "Comment": step, "Seconds": first_wait_seconds, "Next": chk}
    cause = f"{what} not done after {max_attempts} checks {interval_seconds} s apart"
    if first_wait_seconds > 0:
        cause += f" (the first after {first_wait_seconds} s)"
    return {
        name: task(step, service, act_action, act_params, result_path="$.poll", next_state=choice),
        **extra,
        wait: {"Type": "Wait", "Comment": step, "Seconds": interval_seconds, "Next": chk},
        chk: task(
            step,
            service,
            check_action,
            {**check_params, "attempt.$": "$.poll.attempt"},
            result_path="$.poll",
            next_state=choice,
        ),
        choice: {
            "Type": "Choice",
            "Comment": step,
            "Choices": rules,
            "Default": wait,
        },
        fail: {"Type": "Fail", "Comment": step, "Error": "WaitTimedOut", "Cause": cause},
    }


def end_pass(step: str, parameters: dict[str, Any]) -> State:
    """The last state of a Map item or branch: shape what the item reports."""
    return {"Type": "Pass", "Comment": step, "Parameters": parameters, "End": True}


def machine(comment: str, start_at: str, states: dict[str, State], timeout_seconds: int) -> dict[str, Any]:
    return {"Comment": comment, "StartAt": start_at, "TimeoutSeconds": timeout_seconds, "States": states}


def dumps(definition: dict[str, Any]) -> str:
    """Canonical JSON text of a definition: what is committed (indented, so reviews read workflow diffs)."""
    return json.dumps(definition, indent=2, sort_keys=False) + "\n"


def compact(text: str) -> str:
    """The same definition without whitespace: what CDK deploys and the sandbox runs. A template is limited to
    1,000,000 bytes by CloudFormation, and indentation was a third of the DR stack's."""
    return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=False)


def substitute(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    return text


def placeholders(definition: dict[str, Any]) -> set[str]:
    """Substitution keys a definition uses."""
    import re

    return set(re.findall(r"\$\{([A-Za-z0-9]+)\}", json.dumps(definition)))


def iter_states(states: dict[str, State]):
    """Every state, including those nested in Map and Parallel, as (name, state)."""
    for name, state in states.items():
        yield name, state
        if state["Type"] == "Map":
            proc = state.get("ItemProcessor") or state.get("Iterator")
            yield from iter_states(proc["States"])
        elif state["Type"] == "Parallel":
            for branch in state["Branches"]:
                yield from iter_states(branch["States"])


# -- a terminal error, recorded and named -----------------------------------------------------------------------

RECORD_STATE = "RecordFailure"
FAILED_STATE = "Failed"
UNRECORDED_STATE = "FailedUnrecorded"
RECORD_STEP = "Record failure"


def failure_states(workflow: str, plan: str, region: str, resources: list[dict[str, Any]],
                   drill_path: str | None = None) -> dict[str, State]:
    """Where a caught terminal error goes: record the failed state, the error's cause and the state of each
    resource the workflow acts on (``report.record_failure``), then end FAILED with the same error name and
    the record as the cause, which the plan's failure rule sends to its topic. A record that cannot be made
    still ends with the error's name."""
    params: dict[str, Any] = {"plan": plan, "workflow": workflow, "region": region,
                              "execution_arn.$": "$$.Execution.Id", "error.$": "$.error", "resources": resources}
    if drill_path:
        params["drill.$"] = drill_path
    record = task(RECORD_STEP, "report", "record_failure", params, result_path="$.failure", next_state=FAILED_STATE,
                  retry=False)
    record["Retry"] = lambda_service_retry(2)
    record["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.record_error", "Next": UNRECORDED_STATE}]
    return {
        RECORD_STATE: record,
        FAILED_STATE: {"Type": "Fail", "Comment": RECORD_STEP, "ErrorPath": "$.error.Error",
                       "CausePath": "$.failure.text"},
        UNRECORDED_STATE: {"Type": "Fail", "Comment": RECORD_STEP, "ErrorPath": "$.error.Error",
                           "Cause": "the failure could not be recorded; the execution's history shows the failed "
                                    "state and its cause"},
    }


CAUGHT_STATE = "CaughtError"


def record_failures(states: dict[str, State], workflow: str, plan: str, region: str,
                    resources: list[dict[str, Any]], *, skip: tuple[str, ...] = (), drill_path: str | None = None,
                    list_input: tuple[str, ...] = ()) -> None:
    """Give a workflow its failure record (:func:`failure_states`): every top-level Task, Parallel and Map
    (but ``skip``: refusals, states with a record of their own) catches what its retries could not cure, and
    every top-level Fail (a bounded wait that ran out) goes through the record too, keeping its error name.

    ``list_input``: states whose input is not an object (a Map's results), so the error cannot be added to it:
    it replaces the input instead, and the record is made without the rest."""
    for name, state in list(states.items()):
        if name in skip:
            continue
        caught = any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", []))
        if state["Type"] in ("Task", "Parallel", "Map") and not caught:
            catch = ({"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": CAUGHT_STATE} if name in list_input
                     else {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_STATE})
            state["Catch"] = [*state.get("Catch", []), catch]
        elif state["Type"] == "Fail" and "Error" in state:
            # A Fail whose cause is read from the input (CausePath) keeps it: the record carries that text.
            cause = {"Cause.$": state["CausePath"]} if "CausePath" in state else {"Cause": state.get("Cause", "")}
            record: dict[str, Any] = {"Error": state["Error"], **cause, "State": name}
            key = "Parameters" if "CausePath" in state else "Result"
            states[name] = {"Type": "Pass", "Comment": state.get("Comment", name), key: record,
                            "ResultPath": "$.error", "Next": RECORD_STATE}
    states.update(failure_states(workflow, plan, region, resources, drill_path))
    if list_input:
        states[CAUGHT_STATE] = {"Type": "Pass", "Comment": RECORD_STEP, "Parameters": {"error.$": "$"},
                                "Next": RECORD_STATE}
