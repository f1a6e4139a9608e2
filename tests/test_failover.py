"""Functional tests: the failover state machine, executed in the sandbox, end state read through AWS APIs."""

from __future__ import annotations

import boto3
import pytest

from sandbox import clock
from tests.conftest import history_of_state, outage, run_workflow
from tests.replicate_helpers import dr_copies
from workflows import failover
from workflows.plan import parse_plan


def _db(plan, identifier):
    return boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=identifier)["DBInstances"][0]


def _record(plan):
    r53 = boto3.client("route53")
    sets = r53.list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)["ResourceRecordSets"]
    return next(s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name)


def test_failover_promotes_hardens_and_repoints_dns(sandbox, reference_plan):
    plan = reference_plan
    outage(sandbox, plan)
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
    assert not any("shop-db-dr" in r for r in primary.get("ReadReplicaDBInstanceIdentifiers", []))
    # The standby environment runs, Green, on the saved configuration's AMI and the replicated version.
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    (env,) = eb.describe_environments(EnvironmentNames=["shop-dr"])["Environments"]
    assert (env["Status"], env["Health"], env["VersionLabel"]) == ("Ready", "Green", "v1")
    assert env["CNAME"] == "shop-dr.us-west-2.elasticbeanstalk.com"
    (settings,) = eb.describe_configuration_settings(ApplicationName="shop", EnvironmentName="shop-dr")[
        "ConfigurationSettings"]
    (saved,) = eb.describe_configuration_settings(ApplicationName="shop", TemplateName="pilotlight-shop-shop-prod")[
        "ConfigurationSettings"]
    image = {o["OptionName"]: o.get("Value") for o in settings["OptionSettings"]
             if o["Namespace"] == "aws:autoscaling:launchconfiguration"}["ImageId"]
    assert image == {o["OptionName"]: o.get("Value") for o in saved["OptionSettings"]
                     if o["Namespace"] == "aws:autoscaling:launchconfiguration"}["ImageId"]
    assert image.startswith("ami-") and dr_copies(plan, "shop-prod")[0]["ImageId"] == image
    record = _record(plan)
    assert record["ResourceRecords"] == [{"Value": "shop-dr.us-west-2.elasticbeanstalk.com"}]
    assert record["TTL"] == 60


def test_failover_restores_in_parallel_then_hardens_and_models_time(sandbox, reference_plan):
    outage(sandbox, reference_plan)
    result = run_workflow(sandbox, reference_plan, "failover")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    steps = {s.name: s for s in result.steps}
    promote, launch = steps["Promote DR replica"], steps["Launch DR environment"]
    dns, verify, restored = steps["Repoint DNS"], steps["Verify service"], steps["Service restored"]
    multi_az, resize = steps["Enable Multi-AZ"], steps["Resize to failover class"]
    # Critical path in parallel: both start before either ends.
    assert launch.start < promote.end and promote.start < launch.end
    # DNS as soon as both are ready; verified; then hardened, Multi-AZ first.
    assert dns.start >= max(promote.end, launch.end)
    assert verify.start >= dns.end and restored.start >= verify.end
    assert multi_az.start >= restored.start and resize.start >= multi_az.end
    # p50 latency model: promote 5 min, launch 5 min, Route 53 INSYNC 1 min, Multi-AZ 15, resize 20.
    assert promote.duration >= 5 * 60 and launch.duration >= 5 * 60 and dns.duration >= 60
    assert multi_az.duration >= 15 * 60 and resize.duration >= 20 * 60
    assert result.restored_at == restored.start < result.duration
    assert result.output["restored"]["checks"] and all(c["ok"] for c in result.output["restored"]["checks"])
    # RPO evidence: the replica's lag read just before promotion.
    (db,) = result.output["restore"]["databases"]
    assert db["rpo"]["lag_seconds"] is not None and db["rpo"]["rpo_seconds"] == 5 * 60


def test_retryable_error_is_retried_by_the_state_machine(sandbox, reference_plan):
    plan = reference_plan
    outage(sandbox, plan)
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
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    # The plan now names a DR replica that does not exist (the pilot light has gone out).
    data = plan.model_dump()
    data["databases"][0]["dr_replica_identifier"] = "shop-db-gone"
    plan = parse_plan(data)
    sandbox.deploy(plan)
    sandbox.simulate_disaster(plan)

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "FAILED"
    assert result.error == "ResourceNotFound"
    assert "shop-db-gone does not exist in us-west-2" in result.cause
    assert result.failed_state == "PromoteReplica"
    assert result.failed_step == "Promote DR replica"
    # Terminal errors are not retried.
    assert history_of_state(result, "PromoteReplica") == ["LambdaFunctionFailed"]
    # DNS was not touched.
    assert _record(plan)["ResourceRecords"][0]["Value"].startswith("shop-prod.us-east-1.")


def test_a_second_failover_converges_without_acting_again(sandbox, reference_plan):
    plan = reference_plan
    outage(sandbox, plan)
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
    # The healthy DR environment is reused, not launched again.
    assert any('"launched_now": false' in o for o in outputs) and not any('"launched_now": true' in o for o in outputs)
    envs = boto3.client("elasticbeanstalk", region_name=plan.dr_region).describe_environments()["Environments"]
    assert [e["EnvironmentName"] for e in envs if e["EnvironmentName"] == "shop-dr"] == ["shop-dr"]


def test_wait_loop_gives_up_after_its_attempts_with_a_named_error(sandbox, reference_plan, monkeypatch):
    from sandbox import latency

    plan = reference_plan
    monkeypatch.setitem(latency.DURATIONS, "route53.change", (10**7, 10**7))  # never INSYNC
    outage(sandbox, plan)
    result = run_workflow(sandbox, plan, "failover", timeout=180)
    assert result.status == "FAILED"
    assert result.error == "WaitTimedOut"
    assert f"Route 53 change not done after {failover.DNS_MAX} checks" in result.cause
    assert result.failed_step == "Repoint DNS"


@pytest.mark.parametrize("multi_az", [False])
def test_multi_az_step_is_skipped_when_the_plan_says_so(sandbox, reference_plan, multi_az):
    data = reference_plan.model_dump()
    data["databases"][0]["multi_az_on_failover"] = multi_az
    from workflows.plan import parse_plan

    plan = parse_plan(data)
    outage(sandbox, plan)
    result = run_workflow(sandbox, plan, "failover")
    assert result.status == "SUCCEEDED"
    db = _db(plan, "shop-db-dr")
    assert db["MultiAZ"] is False and db["DBInstanceClass"] == "db.r6g.large"
    assert "Enable Multi-AZ" not in {s.name for s in result.steps if s.duration and s.duration > 60}


def test_a_failover_stopped_by_a_failed_launch_resumes_from_the_real_state(sandbox, reference_plan):
    plan = reference_plan
    outage(sandbox, plan)
    fault = sandbox.faults.inject("elastic-beanstalk", "CreateEnvironment", "InsufficientPrivilegesException",
                                  "The role cannot launch instances (injected).", status=403, times=1)

    first = run_workflow(sandbox, plan, "failover")

    assert first.status == "FAILED" and fault.hits == 1
    assert first.failed_step == "Launch DR environment" and "injected" in first.cause
    assert _record(plan)["ResourceRecords"][0]["Value"].startswith("shop-prod.us-east-1.")  # DNS untouched
    # The launch fails at the very instant the database branch moves on to its promotion: whether that
    # invocation was sent before the Parallel stopped is a race (on AWS too). One in flight completes.
    clock.sleep(5)
    promoted_first = sandbox.lambdas.invocations["rds.promote_replica"]
    assert promoted_first in (0, 1)

    second = run_workflow(sandbox, plan, "failover")

    assert second.status == "SUCCEEDED", (second.error, second.cause)
    outputs = [e["lambdaFunctionSucceededEventDetails"]["output"] for e in second.events
               if e["type"] == "LambdaFunctionSucceeded"]
    # Promoted exactly once over both runs (a database the first run promoted is not promoted again);
    # the environment is launched once.
    assert sum('"promoted_now": true' in o for o in outputs) == 1 - promoted_first
    assert any('"promoted_now": false' in o for o in outputs) == bool(promoted_first)
    assert sum('"launched_now": true' in o for o in outputs) == 1
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    assert [e["Status"] for e in eb.describe_environments(EnvironmentNames=["shop-dr"])["Environments"]] == ["Ready"]
    assert _record(plan)["ResourceRecords"] == [{"Value": "shop-dr.us-west-2.elasticbeanstalk.com"}]



@pytest.mark.parametrize("routing", [{"routing": "failover"}, {"routing": "latency"},
                                     {"routing": "geolocation", "primary_location": {"continent_code": "NA"}}],
                         ids=["failover", "latency", "geolocation"])
def test_health_check_mode_cuts_over_on_the_data_plane(sandbox, routing):
    from pathlib import Path

    from workflows.plan import load_plan

    data = load_plan(Path(__file__).resolve().parent.parent / "examples" / "health-check.yaml").model_dump()
    data["dns"].update(routing)
    plan = parse_plan(data)
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)  # alarm, health check and routing records, ahead of time
    sandbox.simulate_disaster(plan)
    changes = []
    sandbox._events.register("before-call.route53.ChangeResourceRecordSets", lambda **kw: changes.append(kw))

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert changes == []  # no Route 53 control-plane change on the way
    alarm = boto3.client("cloudwatch", region_name=plan.dr_region).describe_alarms(
        AlarmNames=[plan.health_check_alarm])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    answer = boto3.client("route53").test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id,
                                                     RecordName=plan.dns.record_name, RecordType="CNAME")
    assert answer["RecordData"] == [plan.dns_dr_target]
    dns_check = next(c for c in result.output["restored"]["checks"] if c["check"] == "dns")
    assert dns_check["ok"] and plan.dns_dr_target in dns_check["detail"]
    assert _db(plan, plan.databases[0].dr_replica_identifier)["DBInstanceClass"] == "db.r6g.large"
    steps = {s.name: s for s in result.steps}
    assert steps["Repoint DNS"].start >= steps["Launch DR environment"].end
