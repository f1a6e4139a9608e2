"""Functional tests: the failover state machine, executed in the sandbox, end state read through AWS APIs."""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import history_of_state, run_workflow


def _db(plan, identifier):
    return boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=identifier)["DBInstances"][0]


def _record(plan):
    r53 = boto3.client("route53")
    sets = r53.list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)["ResourceRecordSets"]
    return next(s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name)


def test_failover_promotes_hardens_and_repoints_dns(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)
    assert _db(plan, "shop-db-dr")["ReadReplicaSourceDBInstanceIdentifier"]
    assert _record(plan)["ResourceRecords"][0]["Value"].startswith("shop-prod.us-east-1.")

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    db = _db(plan, "shop-db-dr")
    assert "ReadReplicaSourceDBInstanceIdentifier" not in db
    assert db["DBInstanceStatus"] == "available"
    assert db["MultiAZ"] is True
    assert db["DBInstanceClass"] == "db.r6g.large"
    primary = boto3.client("rds", region_name=plan.primary_region).describe_db_instances(
        DBInstanceIdentifier="shop-db")["DBInstances"][0]
    assert not primary.get("ReadReplicaDBInstanceIdentifiers")
    record = _record(plan)
    assert record["ResourceRecords"] == [{"Value": "shop-dr.us-west-2.elasticbeanstalk.com"}]
    assert record["TTL"] == 60


def test_failover_follows_the_restore_then_harden_order_and_models_time(sandbox, reference_plan):
    sandbox.seed(reference_plan)
    sandbox.deploy(reference_plan)
    sandbox.simulate_disaster(reference_plan)
    result = run_workflow(sandbox, reference_plan, "failover")
    steps = {s.name: s for s in result.steps}
    order = ["Promote DR replica", "Enable Multi-AZ", "Resize to failover class", "Repoint DNS"]
    starts = [steps[name].start for name in order]
    assert starts == sorted(starts)
    # p50 latency model: promote 5 min, Multi-AZ 15 min, resize 20 min, Route 53 INSYNC 1 min.
    # The model holds each resource at least that long; the loops can only add poll time.
    assert steps["Promote DR replica"].duration >= 5 * 60
    assert steps["Enable Multi-AZ"].duration >= 15 * 60
    assert steps["Resize to failover class"].duration >= 20 * 60
    assert steps["Repoint DNS"].duration >= 60
    assert result.duration >= sum(steps[n].duration for n in order)


def test_retryable_error_is_retried_by_the_state_machine(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)
    fault = sandbox.faults.inject("rds", "PromoteReadReplica", "InvalidDBInstanceState",
                                  "Database instance is not in available state.", times=2)

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "SUCCEEDED"
    assert fault.hits == 2
    assert history_of_state(result, "PromoteReplica") == [
        "LambdaFunctionFailed", "LambdaFunctionFailed", "LambdaFunctionSucceeded"]
    failed = [e["lambdaFunctionFailedEventDetails"] for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert {f["error"] for f in failed} == {"ResourceNotReady"}
    assert "InvalidDBInstanceState" in failed[0]["cause"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in _db(plan, "shop-db-dr")


def test_terminal_error_ends_the_execution_with_its_name_and_cause(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan, pilot_light=False)  # no DR replica: nothing to promote
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "FAILED"
    assert result.error == "ResourceNotFound"
    assert "shop-db-dr does not exist in us-west-2" in result.cause
    assert result.failed_state == "PromoteReplica"
    assert result.failed_step == "Promote DR replica"
    # Terminal errors are not retried.
    assert history_of_state(result, "PromoteReplica") == ["LambdaFunctionFailed"]
    # DNS was not touched.
    assert _record(plan)["ResourceRecords"][0]["Value"].startswith("shop-prod.us-east-1.")


def test_a_second_failover_converges_without_acting_again(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)
    assert run_workflow(sandbox, plan, "failover").status == "SUCCEEDED"
    calls_before = dict(sandbox.lambdas.invocations)

    again = run_workflow(sandbox, plan, "failover")

    assert again.status == "SUCCEEDED"
    outputs = [e["lambdaFunctionSucceededEventDetails"]["output"] for e in again.events
               if e["type"] == "LambdaFunctionSucceeded"]
    assert any('"promoted_now": false' in o for o in outputs)
    assert not any('"promoted_now": true' in o or '"modified_now": true' in o or '"changed": true' in o
                   for o in outputs)
    assert not any(e["type"] == "WaitStateEntered" for e in again.events)
    assert sandbox.lambdas.invocations["rds.promote_replica"] == calls_before["rds.promote_replica"] + 1


def test_wait_loop_gives_up_after_its_attempts_with_a_named_error(sandbox, reference_plan, monkeypatch):
    from sandbox import latency

    plan = reference_plan
    monkeypatch.setitem(latency.DURATIONS, "route53.change", (10**7, 10**7))  # never INSYNC
    sandbox.seed(plan)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)
    result = run_workflow(sandbox, plan, "failover", timeout=180)
    assert result.status == "FAILED"
    assert result.error == "WaitTimedOut"
    assert "Route 53 change not done after 60 checks" in result.cause
    assert result.failed_step == "Repoint DNS"


@pytest.mark.parametrize("multi_az", [False])
def test_multi_az_step_is_skipped_when_the_plan_says_so(sandbox, reference_plan, multi_az):
    data = reference_plan.model_dump()
    data["databases"][0]["multi_az_on_failover"] = multi_az
    from workflows.plan import parse_plan

    plan = parse_plan(data)
    sandbox.seed(plan)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)
    result = run_workflow(sandbox, plan, "failover")
    assert result.status == "SUCCEEDED"
    db = _db(plan, "shop-db-dr")
    assert db["MultiAZ"] is False and db["DBInstanceClass"] == "db.r6g.large"
    assert "Enable Multi-AZ" not in {s.name for s in result.steps if s.duration and s.duration > 60}
