"""The EventBridge rules of a plan, as plain data (no aws_cdk): CDK (``infra/stacks.py``) deploys
them and the sandbox (``sandbox/triggers.py``) creates them from these very functions.

- **Failover trigger** (DR region), one rule per alarm region: the plan's trigger alarms of that
  region entering ALARM start the failover state machine; the alarm event itself is the input.
- **Forwarding** (each other alarm region): the same pattern, sent to the DR region's default event
  bus. A cross-Region delivery keeps the event as it is, ``region`` included, so the DR rule of
  that region matches ``(alarm name, region)`` exactly.
- **Drill teardown** (DR region): an execution of the drill state machine that ends in any way
  (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) starts the drill teardown with the event as its input. An
  aborted or timed-out execution runs no Catch, so the teardown cannot be a step of the drill itself.
- **Failure notification** (DR region): an execution of the failover, replicate or readiness
  state machine that ends FAILED, TIMED_OUT or ABORTED publishes a notice to the plan's topic.

Event shapes follow the AWS documentation: "CloudWatch Alarm State Change" (source
``aws.cloudwatch``, ``detail.alarmName``, ``detail.state.value``) and "Step Functions Execution
Status Change" (source ``aws.states``, ``detail.stateMachineArn``, ``detail.status``,
``detail.error``, ``detail.cause``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from workflows.plan import Plan

ALARM_SOURCE = "aws.cloudwatch"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
EXECUTION_SOURCE = "aws.states"
EXECUTION_DETAIL_TYPE = "Step Functions Execution Status Change"
# Workflows whose unsuccessful ends are notified, and the statuses that are.
NOTIFIED_WORKFLOWS = ("failover", "replicate", "readiness", "drill", "drill-teardown", "failback")
NOTIFIED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


# Alarm trigger --------------------------------------------------------------------------------


def alarm_regions(plan: Plan) -> dict[str, list[str]]:
    """Region -> names of the plan's trigger alarms there (an alarm's region defaults to the primary)."""
    out: dict[str, list[str]] = {}
    for alarm in plan.triggers.alarms:
        out.setdefault(alarm.region or plan.primary_region, []).append(alarm.name)
    return {region: sorted(set(names)) for region, names in sorted(out.items())}


def forwarded_regions(plan: Plan) -> dict[str, list[str]]:
    """The alarm regions other than the DR region: each gets a rule forwarding to the DR default bus."""
    return {region: names for region, names in alarm_regions(plan).items() if region != plan.dr_region}


def alarm_event_pattern(region: str, names: list[str]) -> dict[str, Any]:
    """The EventBridge pattern (JSON form) of the named alarms in ``region`` entering ALARM."""
    return {
        "source": [ALARM_SOURCE],
        "detail-type": [ALARM_DETAIL_TYPE],
        "region": [region],
        "detail": {"alarmName": list(names), "state": {"value": ["ALARM"]}},
    }


def failover_rule_name(plan: Plan, region: str) -> str:
    """The DR-region rule that starts the failover on the plan's alarms in ``region``."""
    return f"pilotlight-{plan.name}-failover-{region}"


def forward_rule_name(plan: Plan) -> str:
    """The rule, in an alarm region other than the DR region, that forwards the alarms to the DR bus."""
    return f"pilotlight-{plan.name}-forward-alarms"


def event_bus_arn(region: str, account: str, partition: str = "aws", name: str = "default") -> str:
    return f"arn:{partition}:events:{region}:{account}:event-bus/{name}"


def rule_arn(region: str, account: str, name: str, partition: str = "aws") -> str:
    """A rule on the default bus (what ``aws:SourceArn`` names when the rule invokes a target)."""
    return f"arn:{partition}:events:{region}:{account}:rule/{name}"


# Drill teardown -------------------------------------------------------------------------------

DRILL_END_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def drill_teardown_rule_name(plan: Plan) -> str:
    return f"pilotlight-{plan.name}-drill-teardown"


def drill_end_pattern(drill_state_machine_arn: str) -> dict[str, Any]:
    """Executions of the drill state machine ending, whatever the end."""
    return {
        "source": [EXECUTION_SOURCE],
        "detail-type": [EXECUTION_DETAIL_TYPE],
        "detail": {"stateMachineArn": [drill_state_machine_arn], "status": list(DRILL_END_STATUSES)},
    }


# Failure notification -------------------------------------------------------------------------


def notify_rule_name(plan: Plan) -> str:
    return f"pilotlight-{plan.name}-notify-failures"


def notified_workflows(workflows: Iterable[str]) -> list[str]:
    """Of the deployed workflows, those whose failures are notified, in a stable order."""
    present = set(workflows)
    return [w for w in NOTIFIED_WORKFLOWS if w in present]


def execution_status_pattern(state_machine_arns: list[str]) -> dict[str, Any]:
    """Executions of the given state machines ending FAILED, TIMED_OUT or ABORTED."""
    return {
        "source": [EXECUTION_SOURCE],
        "detail-type": [EXECUTION_DETAIL_TYPE],
        "detail": {"stateMachineArn": list(state_machine_arns), "status": list(NOTIFIED_STATUSES)},
    }


# Values the notice takes from the event (EventBridge JSON paths, dot notation).
FAILURE_INPUT_PATHS = {
    "execution": "$.detail.name",
    "execution_arn": "$.detail.executionArn",
    "state_machine": "$.detail.stateMachineArn",
    "status": "$.detail.status",
    "error": "$.detail.error",
    "cause": "$.detail.cause",
    "region": "$.region",
    "time": "$.time",
}


def failure_notification_input(plan: Plan) -> dict[str, Any]:
    """The input transformer of the failure notice (``InputPathsMap`` and ``InputTemplate``).

    The template is a JSON object whose values are placeholders outside quotes, so EventBridge
    inserts each value as JSON: an error cause full of quotes and newlines (a Lambda error is a JSON
    document) stays a valid string. Only the subject line puts values inside a string, and only
    values that cannot hold a quote (an execution name, a status).
    """
    fields: list[tuple[str, str]] = [
        ("subject", json.dumps(f"pilotlight {plan.name}: execution <execution> ended <status>")),
        ("plan", json.dumps(plan.name)),
        ("execution", "<execution>"),
        ("status", "<status>"),
        ("error", "<error>"),
        ("cause", "<cause>"),
        ("execution_arn", "<execution_arn>"),
        ("state_machine", "<state_machine>"),
        ("region", "<region>"),
        ("time", "<time>"),
        # No angle brackets in constant text: EventBridge reads <...> as a placeholder and cannot escape it.
        ("next", json.dumps(f"`pilotlight status` with the plan file of {plan.name} shows the steps; the "
                            "execution's history in the Step Functions console shows every event")),
    ]
    template = "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in fields) + "}"
    return {"InputPathsMap": dict(FAILURE_INPUT_PATHS), "InputTemplate": template}
