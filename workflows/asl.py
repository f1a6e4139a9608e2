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
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# Our retryable classes (lambdas/errors.py).
RETRYABLE_ERRORS = ["ResourceNotReady", "Throttled", "AwsUnavailable"]

STANDARD_RETRY: list[dict[str, Any]] = [
    {"ErrorEquals": LAMBDA_SERVICE_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2.0},
    {
        "ErrorEquals": RETRYABLE_ERRORS,
        "IntervalSeconds": 10,
        "MaxAttempts": 5,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 120,
    },
]

TASK_TIMEOUT_SECONDS = 120


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
        "Retry": [{"ErrorEquals": LAMBDA_SERVICE_ERRORS, "IntervalSeconds": 1, "MaxAttempts": 1}],
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
    """Canonical JSON text of a definition: what is committed, deployed and run."""
    return json.dumps(definition, indent=2, sort_keys=False) + "\n"


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
