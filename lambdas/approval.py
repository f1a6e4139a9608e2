"""A failover waiting for approval, read from its execution history, and the answer to it.

Shared by ``pilotlight approve`` / ``abort`` (through ``workflows.executions``), the demo and the dashboard
widget (``lambdas.widget``). It lives in ``lambdas`` because the widget's Lambda asset is this package
alone; it takes a Step Functions client and imports nothing but the standard library.

The task token is always read from the history of a running execution of the plan's failover state machine
(the ``Payload.token`` its ``.waitForTaskToken`` task was scheduled with), never taken from a caller: whoever
may press "approve" can answer only what the plan's failover is waiting on.
"""

from __future__ import annotations

import json
from typing import Any

# The ASL resource of a task that waits for a callback with its token.
WAIT_FOR_TOKEN = "waitForTaskToken"


class NothingToAnswer(Exception):
    """No failover of the plan is waiting for approval."""


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first (GetExecutionHistory, all pages)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def running_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    return sfn.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING")["executions"]


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def token_in(events: list[dict[str, Any]]) -> str | None:
    """The task token of an approval request still open in these history events."""
    token = None
    for event in events:
        if event["type"] == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            if details.get("resource", "").endswith(WAIT_FOR_TOKEN):
                payload = (_loads(details.get("parameters")) or {}).get("Payload") or {}
                token = payload.get("token")
        elif event["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut") and token:
            token = None
    return token


def pending_approval_token(sfn: Any, execution_arn: str) -> str | None:
    """The task token of an approval request the execution is waiting on (from its history)."""
    return token_in(history(sfn, execution_arn))


def answer(sfn: Any, token: str, *, approve: bool, who: str, reason: str = "") -> None:
    if approve:
        sfn.send_task_success(taskToken=token, output=json.dumps({"approved_by": who}))
    else:
        sfn.send_task_failure(taskToken=token, error="Aborted",
                              cause=f"aborted by {who}" + (f": {reason}" if reason else ""))


def answer_approval(sfn: Any, state_machine_arn: str, *, approve: bool, who: str, reason: str = "",
                    execution_arn: str | None = None) -> str:
    """Approve or abort the failover waiting for approval (only ``execution_arn`` when given); returns the
    execution ARN answered."""
    for execution in running_executions(sfn, state_machine_arn):
        if execution_arn is not None and execution["executionArn"] != execution_arn:
            continue
        token = pending_approval_token(sfn, execution["executionArn"])
        if token is None:
            continue
        answer(sfn, token, approve=approve, who=who, reason=reason)
        return execution["executionArn"]
    workflow = "failback" if state_machine_arn.endswith("-failback") else "failover"
    raise NothingToAnswer(f"no {workflow} of this plan is waiting for approval")
