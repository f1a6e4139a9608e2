"""Guard rails of the failover state machine, executed in the sandbox."""

from __future__ import annotations

import time

import boto3
import pytest

from sandbox import clock
from tests.conftest import run_workflow
from workflows import failover
from workflows.executions import NothingToAnswer, answer_approval, pending_approval_token, snapshot

ALARM_EVENT = {
    "version": "0", "id": "1", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
    "account": "123456789012", "region": "us-east-1",
    "detail": {"alarmName": "shop-prod-5xx-high", "state": {"value": "ALARM"}},
}


def _is_replica(plan) -> bool:
    db = boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier="shop-db-dr")["DBInstances"][0]
    return bool(db.get("ReadReplicaSourceDBInstanceIdentifier"))


def _record_value(plan) -> str:
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)[
        "ResourceRecordSets"]
    return next(s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name)["ResourceRecords"][0]["Value"]


@pytest.fixture
def estate(sandbox, reference_plan):
    sandbox.seed(reference_plan)
    sandbox.build_pilot_light(reference_plan)
    return sandbox, reference_plan


def _wait_for_approval_request(sandbox, plan, arn, timeout=20.0):
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending_approval_token(sfn, arn):
            return sfn
        time.sleep(0.05)
    raise AssertionError("the execution never asked for approval")


def test_failover_is_refused_while_the_primary_is_healthy(estate):
    sandbox, plan = estate  # alarms are OK: no outage
    result = run_workflow(sandbox, plan, "failover")
    assert result.status == "FAILED"
    assert result.error == "PrimaryHealthy"
    assert "every trigger alarm is OK" in result.cause and "--force" in result.cause
    assert _is_replica(plan)


def test_force_overrides_a_healthy_primary(estate):
    sandbox, plan = estate
    result = run_workflow(sandbox, plan, "failover",
                          {"source": "pilotlight failover", "force": True, "approved_by": "test"})
    assert result.status == "SUCCEEDED"
    assert result.output["guard"]["forced"] is True
    assert not _is_replica(plan)


def test_alarm_triggered_failover_waits_for_approval_then_resumes(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)
    arn = sandbox.start(plan, "failover", ALARM_EVENT)
    sfn = _wait_for_approval_request(sandbox, plan, arn)
    clock.advance(3 * 3600)  # three modeled hours with nobody answering: still waiting
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    assert _is_replica(plan)  # nothing acted before approval

    answered = answer_approval(sfn, sandbox.state_machine_arn(plan, "failover"), approve=True, who="oncall")

    assert answered == arn
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    result = snapshot(sfn, arn)
    assert result.status == "SUCCEEDED"
    assert not _is_replica(plan)
    assert result.output["guard"]["automatic"] is True


def test_an_unanswered_approval_times_out_without_acting(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)
    arn = sandbox.start(plan, "failover", ALARM_EVENT)
    sfn = _wait_for_approval_request(sandbox, plan, arn)
    asked = clock.now()

    clock.advance(failover.APPROVAL_TIMEOUT + 60)

    result = snapshot(sfn, arn)
    assert result.status == "FAILED"
    assert result.error == "States.Timeout"
    assert result.failed_step == "Await approval"
    assert result.duration == pytest.approx(failover.APPROVAL_TIMEOUT, abs=10)  # the guard steps before it
    assert clock.now() >= asked + failover.APPROVAL_TIMEOUT
    assert _is_replica(plan)
    assert sandbox.lambdas.invocations["rds.promote_replica"] == 0


def test_abort_during_approval_leaves_production_untouched(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)
    before = _record_value(plan)
    arn = sandbox.start(plan, "failover", ALARM_EVENT)
    sfn = _wait_for_approval_request(sandbox, plan, arn)

    answer_approval(sfn, sandbox.state_machine_arn(plan, "failover"), approve=False, who="oncall",
                    reason="false alarm")

    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    result = snapshot(sfn, arn)
    assert result.status == "FAILED"
    assert result.error == "Aborted"
    # (moto's SendTaskFailure drops the cause; AWS records "aborted by oncall: false alarm".)
    assert _is_replica(plan)
    assert _record_value(plan) == before
    assert sandbox.lambdas.invocations["rds.promote_replica"] == 0
    with pytest.raises(NothingToAnswer):
        answer_approval(sfn, sandbox.state_machine_arn(plan, "failover"), approve=True, who="x")


def test_a_second_concurrent_trigger_is_rejected_not_queued(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)
    first = sandbox.start(plan, "failover", ALARM_EVENT)
    sfn = _wait_for_approval_request(sandbox, plan, first)

    second = run_workflow(sandbox, plan, "failover")

    assert second.status == "FAILED"
    assert second.error == "AlreadyRunning"
    assert first.rsplit(":", 1)[-1] in second.cause
    assert sfn.describe_execution(executionArn=first)["status"] == "RUNNING"
    assert _is_replica(plan)


def test_automatic_runs_respect_the_minimum_interval(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)
    first = run_workflow(sandbox, plan, "failover")
    assert first.status == "SUCCEEDED"

    again = run_workflow(sandbox, plan, "failover", ALARM_EVENT)

    assert again.status == "FAILED"
    assert again.error == "TooSoon"
    assert "minimum interval is 60 min" in again.cause


def test_cli_maps_a_refusal_to_exit_4(reference_plan, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    from sandbox import core
    from tests.conftest import REFERENCE

    monkeypatch.setattr(core.Sandbox, "simulate_disaster", lambda self, plan: [])  # primary stays healthy
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox"])
    assert result.exit_code == 4
    assert "PrimaryHealthy" in result.output


def test_a_trigger_that_is_not_this_plans_alarm_going_off_is_refused_before_anything_acts(estate):
    sandbox, plan = estate
    sandbox.simulate_disaster(plan)  # the plan's own alarms are in ALARM: only the input is wrong
    detail = ALARM_EVENT["detail"]
    bad = {
        "another plan's alarm": ({**ALARM_EVENT, "detail": {**detail, "alarmName": "other-app-5xx"}},
                                 "alarm other-app-5xx is not one of this plan's trigger alarms"),
        "an alarm returning to OK": ({**ALARM_EVENT, "detail": {**detail, "state": {"value": "OK"}}},
                                     "entered OK, not ALARM"),
        "a malformed event": ({**ALARM_EVENT, "detail": {"alarm": "x"}}, "a malformed EventBridge event"),
        "force as a string": ({"source": "pilotlight failover", "force": "yes", "approved_by": "test"},
                              "force must be true or false, got 'yes'"),
        "an unknown mode": ({"source": "pilotlight failover", "mode": "fast", "approved_by": "test"},
                            "mode must be one of auto, graceful, ungraceful"),
    }
    for what, (trigger, message) in bad.items():
        result = run_workflow(sandbox, plan, "failover", trigger)
        assert (result.status, result.error) == ("FAILED", "InvalidInput"), what
        assert message in result.cause, (what, result.cause)
    assert _is_replica(plan) and _record_value(plan) != plan.dns_dr_target


def test_a_claim_table_that_cannot_be_reached_never_holds_the_failover_back(estate):
    """The claim is a lock of the deployment's: without its table (a stack older than it, DynamoDB in trouble) the
    oldest-wins rule decides alone, and the guard's output says so."""
    from lambdas import guard

    sandbox, plan = estate
    boto3.client("dynamodb", region_name=plan.dr_region).delete_table(TableName=guard.claim_table(plan.name))
    try:
        result = run_workflow(sandbox, plan, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        claim = result.output["guard"]["claim"]
        assert claim["held"] is False and claim["reason"].startswith("ResourceNotFoundException")
        assert not _is_replica(plan)
    finally:
        sandbox._claim_table(plan)
