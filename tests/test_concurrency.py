"""Races on the worst day, run on the real state machines in the sandbox and judged through the AWS APIs.

Exactly one failover of a plan acts, whatever starts alongside it: two alarm triggers within a second,
a failover and a drill started together, a readiness run during a failover. The others refuse or report,
and say so: a named error in the execution (``AlreadyRunning``, ``DrillRefused``, ``PreemptedByFailover``)
or the readiness status ``FAILOVER_IN_PROGRESS``.

"Acted" is read from Step Functions (which executions scheduled a Task past the guard rails, and with what
input), RDS (the live DR replica promoted once), Elastic Beanstalk (one DR environment) and Route 53.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from lambdas import drill as names
from lambdas.readiness_report import FAILOVER_IN_PROGRESS, NOT_READY, parameter_name
from sandbox import clock
from workflows.executions import follow
from workflows.plan import Plan, parse_plan
from workflows.readiness import failover_sha256

ALARM_EVENT = {
    "version": "0", "id": "1", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
    "account": "123456789012", "region": "us-east-1",
    "detail": {"alarmName": "shop-prod-5xx-high", "state": {"value": "ALARM"}},
}
OPERATOR = {"source": "pilotlight failover", "approved_by": "oncall"}


def _automatic(plan: Plan) -> Plan:
    data = plan.model_dump(exclude_none=True)
    data["triggers"] = {**data["triggers"], "failover": "automatic"}
    return parse_plan(data)


@pytest.fixture
def estate(sandbox, reference_plan):
    sandbox.seed(reference_plan)
    sandbox.build_pilot_light(reference_plan)
    return sandbox, reference_plan


@pytest.fixture
def automatic_estate(sandbox, reference_plan):
    plan = _automatic(reference_plan)
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    return sandbox, plan


def _sfn(plan: Plan) -> Any:
    return boto3.client("stepfunctions", region_name=plan.dr_region)


def _start_together(sb, plan: Plan, runs: list[tuple[str, dict[str, Any]]], gap: float = 0.0) -> list[str]:
    """Start ``(workflow, input)`` executions at one modeled instant, or ``gap`` modeled seconds apart (each
    execution meanwhile runs as far as it gets in that time)."""
    if gap:
        arns = []
        for i, (workflow, execution_input) in enumerate(runs):
            if i:
                clock.sleep(gap)
            arns.append(sb.start(plan, workflow, execution_input))
        return arns
    with clock.hold():
        return [sb.start(plan, workflow, execution_input) for workflow, execution_input in runs]


def _history(plan: Plan, arn: str) -> list[dict[str, Any]]:
    sfn = _sfn(plan)
    events, kwargs = [], {}
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs = {"nextToken": page["nextToken"]}


def _entered(plan: Plan, arn: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in _history(plan, arn) if e["type"].endswith("StateEntered")]


def _lambda_calls(plan: Plan, arn: str) -> list[dict[str, Any]]:
    """The payload of every Lambda Task the execution scheduled, as its history records it."""
    out = []
    for event in _history(plan, arn):
        if event["type"] == "LambdaFunctionScheduled":
            out.append(json.loads(event["lambdaFunctionScheduledEventDetails"]["input"]))
        elif (event.get("taskScheduledEventDetails") or {}).get("resourceType") == "lambda":
            out.append(json.loads(event["taskScheduledEventDetails"]["parameters"]).get("Payload") or {})
    return out


# What an execution refused by the guard rails may still run: the guard itself and the failure record.
REFUSED_ACTIONS = {"check", "record_failure"}


def _promotions_of(plan: Plan, arn: str, identifier: str) -> int:
    return sum(1 for p in _lambda_calls(plan, arn)
               if p.get("action") == "promote_replica" and p.get("identifier") == identifier)


def _replica_source(plan: Plan) -> str | None:
    db = boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)["DBInstances"][0]
    return db.get("ReadReplicaSourceDBInstanceIdentifier")


def _dr_environments(plan: Plan) -> list[str]:
    env = plan.environments[0]
    found = boto3.client("elasticbeanstalk", region_name=plan.dr_region).describe_environments(
        ApplicationName=env.application, IncludeDeleted=False)["Environments"]
    return sorted(e["EnvironmentName"] for e in found if e["Status"] not in ("Terminating", "Terminated")
                  and names.id_in_name(e["EnvironmentName"]) is None)


def _record_value(plan: Plan) -> str:
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)[
        "ResourceRecordSets"]
    return next(s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name)["ResourceRecords"][0]["Value"]


def _assert_failed_over_once(sb, plan: Plan, winner: str, others: list[str]) -> None:
    """The winner promoted the live DR replica and moved DNS; no other execution acted at all."""
    replica = plan.databases[0].dr_replica_identifier
    assert _promotions_of(plan, winner, replica) >= 1
    for arn in others:
        assert _promotions_of(plan, arn, replica) == 0
    assert sb.lambdas.invocations["rds.promote_replica"] == _promotions_of(plan, winner, replica)
    assert _replica_source(plan) is None
    assert _dr_environments(plan) == [plan.environments[0].dr_environment_name]
    assert _record_value(plan) == plan.dns_dr_target


# 1. Two (or three) alarm triggers for the same plan within a second ----------------------------------------


@pytest.mark.parametrize("count,gap", [(2, 0.0), (3, 0.4)], ids=["same-instant", "within-a-second"])
def test_alarm_triggers_within_a_second_fail_over_exactly_once(automatic_estate, count, gap):
    sb, plan = automatic_estate
    sb.simulate_disaster(plan)
    arns = _start_together(sb, plan, [("failover", ALARM_EVENT)] * count, gap=gap)
    sfn = _sfn(plan)
    results = {arn: follow(sfn, arn, poll_seconds=0.05, timeout_seconds=600) for arn in arns}

    assert sorted(r.status for r in results.values()) == ["FAILED"] * (count - 1) + ["SUCCEEDED"]
    (winner,) = [arn for arn, r in results.items() if r.status == "SUCCEEDED"]
    described = {arn: sfn.describe_execution(executionArn=arn) for arn in arns}
    # The oldest by (start date, execution ARN) is the one that acted.
    assert winner == min(arns, key=lambda a: (described[a]["startDate"], a))
    losers = [arn for arn in arns if arn != winner]
    for arn in losers:
        assert described[arn]["error"] == "AlreadyRunning"
        assert described[winner]["name"] in described[arn]["cause"] and "without acting" in described[arn]["cause"]
        assert results[arn].failed_step == "Guard rails"
        assert "Restore" not in _entered(plan, arn)
        assert {p["action"] for p in _lambda_calls(plan, arn)} <= REFUSED_ACTIONS
    _assert_failed_over_once(sb, plan, winner, losers)


def test_an_execution_not_listed_yet_still_loses_to_an_older_one(automatic_estate):
    """ListExecutions is eventually consistent: the newest execution may be missing from it, even to itself."""
    sb, plan = automatic_estate
    sb.simulate_disaster(plan)

    def hide_the_newest(parsed: dict[str, Any], **_: Any) -> None:
        executions = parsed.get("executions") or []
        if len(executions) > 1:
            newest = max(executions, key=lambda e: (e["startDate"], e["executionArn"]))
            executions.remove(newest)

    events = boto3.DEFAULT_SESSION.events
    events.register("after-call.sfn.ListExecutions", hide_the_newest, unique_id="test-lagging-list")
    try:
        arns = _start_together(sb, plan, [("failover", OPERATOR)] * 2, gap=0.2)
        sfn = _sfn(plan)
        results = [follow(sfn, arn, poll_seconds=0.05, timeout_seconds=600) for arn in arns]
    finally:
        events.unregister("after-call.sfn.ListExecutions", unique_id="test-lagging-list")

    assert [(r.status, r.error) for r in results] == [("SUCCEEDED", None), ("FAILED", "AlreadyRunning")]
    _assert_failed_over_once(sb, plan, arns[0], arns[1:])


def _claim_holder(plan: Plan) -> str | None:
    from lambdas import guard

    item = boto3.client("dynamodb", region_name=plan.dr_region).get_item(
        TableName=guard.claim_table(plan.name), Key={"plan": {"S": plan.name}}, ConsistentRead=True).get("Item")
    return item["execution"]["S"] if item else None


def test_two_failovers_that_never_list_each_other_still_act_once_by_the_claim(automatic_estate):
    """The worst case of an eventually consistent ListExecutions: two runs started together, neither ever listed
    (not even to itself). Both pass the oldest-wins rule; the conditional write to the claim table lets one act.
    A later failover takes over the claim of the ended one."""
    sb, plan = automatic_estate
    sb.simulate_disaster(plan)

    def list_nobody(parsed: dict[str, Any], **_: Any) -> None:
        parsed["executions"] = []

    events = boto3.DEFAULT_SESSION.events
    events.register("after-call.sfn.ListExecutions", list_nobody, unique_id="test-empty-list")
    try:
        arns = _start_together(sb, plan, [("failover", ALARM_EVENT)] * 2)
        sfn = _sfn(plan)
        results = {arn: follow(sfn, arn, poll_seconds=0.05, timeout_seconds=600) for arn in arns}
    finally:
        events.unregister("after-call.sfn.ListExecutions", unique_id="test-empty-list")

    assert sorted(r.status for r in results.values()) == ["FAILED", "SUCCEEDED"]
    (winner,) = [arn for arn, r in results.items() if r.status == "SUCCEEDED"]
    (loser,) = [arn for arn in arns if arn != winner]
    assert results[loser].error == "AlreadyRunning"
    assert "holds the plan's failover claim" in results[loser].cause
    assert winner.rsplit(":", 1)[-1] in results[loser].cause
    assert {p["action"] for p in _lambda_calls(plan, loser)} <= REFUSED_ACTIONS
    _assert_failed_over_once(sb, plan, winner, [loser])
    assert _claim_holder(plan) == winner

    # The winner has ended: the next failover (an operator's) takes its claim over.
    again = follow(_sfn(plan), sb.start(plan, "failover", {**OPERATOR, "force": True}), poll_seconds=0.05,
                   timeout_seconds=600)
    assert again.error != "AlreadyRunning", again.cause
    assert _claim_holder(plan) == again.execution_arn


def test_a_refused_trigger_does_not_hold_back_the_next_one(automatic_estate):
    """The minimum interval counts runs that acted: an alarm refused a minute ago (primary still healthy) must
    not make the real outage's run TooSoon."""
    sb, plan = automatic_estate
    sfn = _sfn(plan)
    refused = follow(sfn, sb.start(plan, "failover", ALARM_EVENT), poll_seconds=0.05)
    assert (refused.status, refused.error) == ("FAILED", "PrimaryHealthy")
    clock.sleep(60)
    sb.simulate_disaster(plan)

    run = follow(sfn, sb.start(plan, "failover", ALARM_EVENT), poll_seconds=0.05, timeout_seconds=600)

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    _assert_failed_over_once(sb, plan, run.execution_arn, [refused.execution_arn])


# 2. A failover and a drill started together ----------------------------------------------------------------


@pytest.mark.parametrize("first", ["failover", "drill"])
def test_a_failover_and_a_drill_started_together_leave_one_failover_and_no_drill(estate, first):
    sb, plan = estate
    sb.simulate_disaster(plan)
    drill_input = {"source": "test", "keep": False, "harden": False, "force": False}
    runs = [("failover", OPERATOR), ("drill", drill_input)]
    arns = dict(zip([w for w, _ in runs] if first == "failover" else ["drill", "failover"],
                    _start_together(sb, plan, runs if first == "failover" else runs[::-1]), strict=True))
    sfn = _sfn(plan)
    failover = follow(sfn, arns["failover"], poll_seconds=0.05, timeout_seconds=900)
    drill = follow(sfn, arns["drill"], poll_seconds=0.05, timeout_seconds=900)

    assert failover.status == "SUCCEEDED", (failover.error, failover.cause)
    # The drill either refused to start (it saw the failover) or was stopped by it (the failover saw it first).
    described = sfn.describe_execution(executionArn=arns["drill"])
    assert (drill.status, drill.error) in {("FAILED", "DrillRefused"), ("ABORTED", names.PREEMPTED)}
    if drill.status == "FAILED":
        assert "failover" in described["cause"] and failover.execution_arn.rsplit(":", 1)[-1] in described["cause"]
    else:
        stopped = [p["execution"] for p in failover.output["guard"]["preempted_drills"]]
        assert stopped == [described["name"]]
    # The drill never touched the live DR replica, and its teardown (started by its end) leaves nothing.
    assert _promotions_of(plan, arns["drill"], plan.databases[0].dr_replica_identifier) == 0
    drill_id = names.drill_id(arns["drill"], described["startDate"])
    teardown = sb.state_machine_arn(plan, "drill-teardown")
    clock.wait_until(lambda: any(d.event["detail"]["executionArn"] == arns["drill"]
                                 for d in sb.eventbridge.started(teardown)), timeout=120, step=1,
                     what="the drill's teardown")
    teardown_arn = next(d.result for d in sb.eventbridge.started(teardown)
                        if d.event["detail"]["executionArn"] == arns["drill"])
    assert follow(sfn, teardown_arn, poll_seconds=0.05, timeout_seconds=3600).status == "SUCCEEDED"
    from workflows import drill_audit

    assert drill_audit.leftovers(plan, drill_id) == []
    _assert_failed_over_once(sb, plan, arns["failover"], [arns["drill"]])


# 3. A readiness run during a failover ------------------------------------------------------------------------


def _readiness(sb, plan: Plan) -> Any:
    arn = sb.start(plan, "readiness", {"source": "test", "expected_failover_sha256": failover_sha256(plan)})
    return follow(_sfn(plan), arn, poll_seconds=0.05, timeout_seconds=600)


def test_readiness_during_a_failover_reports_it_in_progress_and_keeps_the_last_score(estate):
    sb, plan = estate
    before = _readiness(sb, plan)
    assert before.status == "SUCCEEDED" and before.output["status"] == "READY"
    ssm = boto3.client("ssm", region_name=plan.dr_region)
    kept = ssm.get_parameter(Name=parameter_name(plan.name))["Parameter"]
    sb.simulate_disaster(plan)
    failover_arn = sb.start(plan, "failover", OPERATOR)
    sfn = _sfn(plan)
    # Mid-failover: the replica promotion has begun (what readiness would otherwise call a broken replica).
    clock.wait_until(lambda: "PromoteReplicaCheck" in _entered(plan, failover_arn), timeout=900, step=5,
                     what="the failover promoting the replica")

    during = _readiness(sb, plan)

    assert during.status == "SUCCEEDED"
    out = during.output
    assert out["status"] == FAILOVER_IN_PROGRESS
    assert out["failover"]["execution_arn"] == failover_arn
    assert failover_arn.rsplit(":", 1)[-1] in out["reason"]
    assert not [c for c in out["checks"] if c["status"] == NOT_READY]
    assert out["notified"] is False and out["metrics"] == {}
    # The last scored result is the one before the failover; the failover goes on undisturbed.
    assert ssm.get_parameter(Name=parameter_name(plan.name))["Parameter"]["Version"] == kept["Version"]
    result = follow(sfn, failover_arn, poll_seconds=0.05, timeout_seconds=900)
    assert result.status == "SUCCEEDED"
    _assert_failed_over_once(sb, plan, failover_arn, [during.execution_arn])
