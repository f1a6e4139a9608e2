"""Guard rails before a failover acts, and the human approval step.

- only one failover of a plan at a time: of the running executions, the oldest wins and the others stop
  with ``AlreadyRunning``. "Oldest" is a total order, (start date, execution ARN), so two executions
  started in the same millisecond (two alarms of one outage) still agree on exactly one winner. An
  execution reads its own start date with DescribeExecution, which is strongly consistent: ListExecutions
  is eventually consistent and may not list an execution started a moment ago, not even to itself;
- and, because two runs started together may each not be listed to the other, the run that passes every
  rail then *claims* the plan (:func:`claim`): a conditional write to the plan's item in a DynamoDB table of the
  deployment, which is atomic and strongly consistent. A run that finds the claim held by a failover still
  RUNNING stops with ``AlreadyRunning``; a claim whose failover has ended is taken over;
- an automatic (alarm-triggered) run within ``min_interval_minutes`` of a previous run (one started
  before it, that was not itself refused by these rails or aborted before acting) is refused;
- refused while every trigger alarm is OK, unless forced (no trigger alarms: health unknown, allowed);
- a failover that passes these pre-empts a running drill of the plan: the drill is stopped (error
  ``PreemptedByFailover``), and its end starts the drill teardown; the failover does not wait for it;
- ``request_approval`` publishes the task token to the plan's SNS topic; ``pilotlight approve``
  or ``pilotlight abort`` answer it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas import drill as drills
from lambdas.common import CONNECTION_ERRORS, Registry, aws_errors, client, raise_mapped
from lambdas.errors import GUARD_ERRORS, Aborted, AlreadyRunning, InvalidInput, PrimaryHealthy, TooSoon

registry = Registry("guard")
handler = registry.handler


def is_automatic(trigger: dict[str, Any]) -> bool:
    """An EventBridge alarm event, as the alarm rule delivers it."""
    return trigger.get("source") == "aws.cloudwatch" or trigger.get("detail-type") == "CloudWatch Alarm State Change"


def _alarm_states(alarms: list[dict[str, str]]) -> list[dict[str, Any]]:
    by_region: dict[str, list[str]] = {}
    for alarm in alarms:
        by_region.setdefault(alarm["region"], []).append(alarm["name"])
    states = []
    for region, names in sorted(by_region.items()):
        try:
            found = client("cloudwatch", region, fast=True).describe_alarms(AlarmNames=names)["MetricAlarms"]
            seen = {a["AlarmName"]: a["StateValue"] for a in found}
        except (ClientError, BotoCoreError) as exc:
            # A region in trouble may not answer: that is no evidence of health.
            seen = {name: f"UNREADABLE ({type(exc).__name__})" for name in names}
        states += [{"name": n, "region": region, "state": seen.get(n, "MISSING")} for n in names]
    return states


# Errors of a previous run that never acted: refused by these rails, or aborted while it awaited approval.
_NOT_ACTED = frozenset({*(cls.__name__ for cls in GUARD_ERRORS), Aborted.__name__})


def _epoch(moment: Any) -> float:
    """Epoch seconds of a start date (a datetime, aware or naive UTC, as botocore parses it)."""
    if hasattr(moment, "timestamp"):  # a datetime (duck-typed: the sandbox patches this module's class)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(moment)


def order(execution: dict[str, Any]) -> tuple[float, str]:
    """The total order the oldest-wins rule uses: start date, then execution ARN (unique per execution)."""
    return _epoch(execution["startDate"]), execution["executionArn"]


def _myself(sfn: Any, execution_arn: str, listed: list[dict[str, Any]]) -> dict[str, Any]:
    """This execution as ListExecutions shows it, or from DescribeExecution when it is not listed yet."""
    me = next((e for e in listed if e["executionArn"] == execution_arn), None)
    if me is not None:
        return me
    with aws_errors(f"describe failover {execution_arn.rsplit(':', 1)[-1]}"):
        found = sfn.describe_execution(executionArn=execution_arn)
    return {"executionArn": execution_arn, "name": found["name"], "startDate": found["startDate"]}


def _acted(sfn: Any, execution: dict[str, Any]) -> bool:
    """Whether a previous run got past the guard rails (one that failed there, or was aborted, did not act)."""
    if execution.get("status") not in ("FAILED", "ABORTED"):
        return True
    with aws_errors(f"describe failover {execution['name']}"):
        error = sfn.describe_execution(executionArn=execution["executionArn"]).get("error")
    return error not in _NOT_ACTED


MODES = ("auto", "graceful", "ungraceful")


def trigger_problem(trigger: dict[str, Any], alarms: list[dict[str, str]]) -> str | None:
    """What is wrong with a failover's input, or None: an alarm event must be one of this plan's trigger alarms
    entering ALARM (not another plan's, not a malformed or an OK event); ``force`` must be a boolean and
    ``mode`` one of :data:`MODES` (``"yes"`` would otherwise read as true and an unknown mode as auto)."""
    if "force" in trigger and not isinstance(trigger["force"], bool):
        return f"force must be true or false, got {trigger['force']!r}"
    if "mode" in trigger and trigger["mode"] not in MODES:
        return f"mode must be one of {', '.join(MODES)}, got {trigger['mode']!r}"
    if not is_automatic(trigger):
        return None
    detail = trigger.get("detail")
    name = detail.get("alarmName") if isinstance(detail, dict) else None
    state = detail.get("state") if isinstance(detail, dict) else None
    value = state.get("value") if isinstance(state, dict) else None
    if not isinstance(name, str) or not isinstance(value, str):
        return "an alarm event without detail.alarmName and detail.state.value (a malformed EventBridge event)"
    mine = sorted({a["name"] for a in alarms})
    if name not in mine:
        return (f"alarm {name} is not one of this plan's trigger alarms ({', '.join(mine) or 'none'}): an event "
                "meant for another plan, or a rule left from an older plan")
    if value != "ALARM":
        return f"alarm {name} entered {value}, not ALARM: only an alarm going off starts a failover"
    return None


# -- the claim: one failover acts even when neither of two runs lists the other ---------------------------------
# A table of the deployment (infra/claim.py) in the DR region, one item per plan: {plan, execution, claimed_at}.
# PutItem with a condition is atomic and GetItem with ConsistentRead strongly consistent (DynamoDB API reference),
# so of two runs that each passed the oldest-wins rule, exactly one writes the item. DynamoDB in the DR region is
# what the failover depends on anyway; where the table cannot be reached (a deployment older than it, an outage of
# DynamoDB itself) the oldest-wins rule stands alone and the output says so: a lock never holds back a failover.
CLAIM_ATTEMPTS = 3
CLAIM_KEY = "plan"  # the table's partition key (infra/claim.py, and the sandbox's copy of the table)


def claim_table(plan: str) -> str:
    """The claim table's name (one per plan: its IAM grant is that one table)."""
    return f"pilotlight-{plan}-claim"


def _holder_running(sfn: Any, holder: str) -> bool:
    try:
        return sfn.describe_execution(executionArn=holder)["status"] == "RUNNING"
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False  # a claim left by a state machine deleted since
        raise_mapped(exc, f"describe failover {holder.rsplit(':', 1)[-1]}")


def _unclaimed(table: str, exc: Exception, what: str) -> dict[str, Any]:
    why = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
    return {"held": False, "table": table, "took_over": None,
            "reason": f"{why}: the claim {what}; the oldest-wins rule alone decided"}


def claim(sfn: Any, plan: str, region: str, execution_arn: str) -> dict[str, Any]:
    """Claim the plan for this failover, or raise ``AlreadyRunning`` naming the running failover that holds it.

    The first write is conditioned on no item; a claim held by a failover that is no longer RUNNING is taken over
    with a write conditioned on that failover's ARN, so two takers still leave one holder. A retried step of the
    same execution finds its own claim. Returns ``{"held", "table", "took_over"}``, or ``held: false`` with the
    reason when the table could not be used."""
    ddb = client("dynamodb", region, own=True)
    table = claim_table(plan)
    key = {CLAIM_KEY: {"S": plan}}
    item = {**key, "execution": {"S": execution_arn}, "claimed_at": {"S": datetime.now(UTC).isoformat()}}
    holder: str | None = None
    for _ in range(CLAIM_ATTEMPTS):
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(#key)", "ExpressionAttributeNames": {"#key": CLAIM_KEY}}
            if holder is None else
            {"ConditionExpression": "#execution = :holder", "ExpressionAttributeNames": {"#execution": "execution"},
             "ExpressionAttributeValues": {":holder": {"S": holder}}})
        try:
            ddb.put_item(TableName=table, Item=item, **condition)
            return {"held": True, "table": table, "took_over": holder}
        except (ClientError, *CONNECTION_ERRORS) as exc:
            if not (isinstance(exc, ClientError)
                    and exc.response["Error"]["Code"] == "ConditionalCheckFailedException"):
                return _unclaimed(table, exc, "was not made")
        try:
            found = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, *CONNECTION_ERRORS) as exc:
            return _unclaimed(table, exc, "could not be read")
        holder = (found or {}).get("execution", {}).get("S")
        if holder == execution_arn:
            return {"held": True, "table": table, "took_over": None}  # this execution's retried step
        if holder is not None and _holder_running(sfn, holder):
            raise AlreadyRunning(f"failover {holder.rsplit(':', 1)[-1]} holds the plan's failover claim ({table}) "
                                 "and is running; this one stops without acting")
    raise AlreadyRunning(f"the plan's failover claim ({table}) changed hands {CLAIM_ATTEMPTS} times while this "
                         "failover tried to take it; this one stops without acting")


@registry.action(
    "check",
    permissions=["cloudwatch:DescribeAlarms", "states:ListExecutions", "states:DescribeExecution",
                 "states:StopExecution", "dynamodb:PutItem", "dynamodb:GetItem"],
    resource={"cloudwatch:DescribeAlarms": "alarm", "states:ListExecutions": "statemachine",
              "states:DescribeExecution": "failover_execution", "states:StopExecution": "drill_execution",
              "dynamodb:PutItem": "claim_table", "dynamodb:GetItem": "claim_table"},
)
def check(
    state_machine_arn: str,
    execution_arn: str,
    alarms: list[dict[str, str]],
    min_interval_minutes: int,
    trigger: dict[str, Any],
    region: str,
    plan: str | None = None,
) -> dict[str, Any]:
    problem = trigger_problem(trigger, alarms)
    if problem:
        raise InvalidInput(f"the failover's input is refused before anything acts: {problem}")
    sfn = client("stepfunctions", region)
    try:
        running = sfn.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING")["executions"]
        recent = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=20)["executions"]
    except ClientError as exc:
        raise_mapped(exc, "list failover executions")
    mine = order(_myself(sfn, execution_arn, running + recent))
    older = sorted((e for e in running if e["executionArn"] != execution_arn and order(e) < mine), key=order)
    if older:
        raise AlreadyRunning(f"failover {older[0]['name']} is already running (started first); this one stops "
                             "without acting")
    automatic = is_automatic(trigger)
    if automatic and min_interval_minutes > 0:
        now = datetime.now(UTC)
        for e in recent:
            # Only a previous run counts: two alarms of one outage start two runs at once; the younger stops
            # as AlreadyRunning, and must not make the older one TooSoon. Nor does a run that never acted.
            if e["executionArn"] == execution_arn or order(e) > mine:
                continue
            age = (now.timestamp() - _epoch(e["startDate"])) / 60
            if age < min_interval_minutes and _acted(sfn, e):
                raise TooSoon(
                    f"previous failover {e['name']} started {age:.0f} min ago; "
                    f"the plan's minimum interval is {min_interval_minutes} min"
                )
    states = _alarm_states(alarms)
    forced = bool(trigger.get("force"))
    if states and all(s["state"] == "OK" for s in states) and not forced:
        names = ", ".join(s["name"] for s in states)
        raise PrimaryHealthy(
            f"the primary looks healthy: every trigger alarm is OK ({names}); use --force to fail over anyway"
        )
    health = "unknown" if not states else ("in_alarm" if any(s["state"] == "ALARM" for s in states) else "not_ok")
    preempted = []
    claimed = None
    if plan:
        # Last of the rails: only the run that is about to act claims the plan.
        claimed = claim(sfn, plan, region, execution_arn)
        preempted = _preempt_drills(sfn, drills.machine_arn(state_machine_arn, plan, "drill"), execution_arn)
    return {
        "claim": claimed,
        "preempted_drills": preempted,
        "automatic": automatic,
        "forced": forced,
        "primary_health": health,
        "alarms": states,
        "approved": bool(trigger.get("approved_by")) and not automatic,
    }


def _preempt_drills(sfn: Any, drill_machine: str, failover_arn: str) -> list[dict[str, Any]]:
    """Stop every running drill of the plan: a real failover needs the DR region's capacity and quotas.

    Best effort and quick: a drill that cannot be stopped is reported, never a reason to hold the failover.
    Its teardown is started by the drill's end (EventBridge), so the failover does not wait for it.
    """
    out: list[dict[str, Any]] = []
    try:
        running = drills.running_executions(sfn, drill_machine)
    except Exception as exc:  # noqa: BLE001 - never hold a failover for a drill
        return [{"drill": None, "stopped": False, "error": f"{type(exc).__name__}: {exc}"}]
    for execution in running:
        entry = {"execution": execution["name"],
                 "drill": drills.drill_id(execution["executionArn"], execution["startDate"]), "stopped": True}
        try:
            sfn.stop_execution(executionArn=execution["executionArn"], error=drills.PREEMPTED,
                               cause=f"failover {failover_arn.rsplit(':', 1)[-1]} pre-empts the drill")
        except (ClientError, BotoCoreError) as exc:
            entry.update(stopped=False, error=f"{type(exc).__name__}: {exc}")
        out.append(entry)
    return out


@registry.action("request_approval", permissions=["sns:Publish"], resource="topic")
def request_approval(token: str, topic_arn: str, plan: str, execution_arn: str, region: str,
                     workflow: str = "failover", before_approving: str | None = None) -> dict[str, Any]:
    """Publish the approval request; the execution waits until someone approves or aborts. ``before_approving``:
    what the approver does first (a failback: stop the application's writes)."""
    message = {
        "plan": plan,
        "workflow": workflow,
        "execution": execution_arn,
        "requested_at": datetime.now(UTC).isoformat(),
        "approve": f"pilotlight approve <plan file for {plan}>",
        "abort": f"pilotlight abort <plan file for {plan}>",
        "task_token": token,
    }
    if before_approving:
        message["before_approving"] = before_approving
    try:
        out = client("sns", region).publish(
            TopicArn=topic_arn,
            Subject=f"pilotlight: {workflow} of {plan} awaits approval"[:100],
            Message=json.dumps(message, indent=2),
        )
    except ClientError as exc:
        raise_mapped(exc, f"publish approval request to {topic_arn}")
    return {"message_id": out["MessageId"]}
