"""Drills: the real drill and teardown state machines in the sandbox, judged through the AWS APIs.

Every drill here ends with nothing of it left in any service (databases, snapshots, environments,
DNS records, S3 objects under its prefix) and production as it was: the primary and the live DR
replica (identifiers, status, class, replication source), the production record, the primary
environment, and no DR environment (a pilot light has none running).

One sandbox for the module: every drill removes what it made, so the next starts from the same
estate. The test where a failover pre-empts a drill changes production and runs last.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from commands.drill import drill_input, sandbox_drill, teardown_summary
from lambdas import drill as names
from sandbox import Sandbox, clock
from tests.conftest import REFERENCE, run_workflow
from workflows import drill_audit
from workflows.executions import follow
from workflows.plan import Plan, load_plan


@pytest.fixture(scope="module")
def estate() -> Iterator[tuple[Sandbox, Plan]]:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        yield sb, plan


def production(plan: Plan) -> dict[str, Any]:
    """What a drill must never change, read through the AWS APIs."""
    db = plan.databases[0]

    def instance(region: str, identifier: str) -> dict[str, Any]:
        found = boto3.client("rds", region_name=region).describe_db_instances(
            DBInstanceIdentifier=identifier)["DBInstances"][0]
        return {k: found.get(k) for k in ("DBInstanceIdentifier", "DBInstanceStatus", "DBInstanceClass", "MultiAZ",
                                          "ReadReplicaSourceDBInstanceIdentifier")}

    eb_dr = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    eb_primary = boto3.client("elasticbeanstalk", region_name=plan.primary_region)
    env = plan.environments[0]
    r53 = boto3.client("route53", region_name="us-east-1")
    records = r53.list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)["ResourceRecordSets"]
    return {
        "primary": instance(plan.primary_region, db.identifier),
        "dr_replica": instance(plan.dr_region, db.dr_replica_identifier),
        "dr_environment": [e["Status"] for e in eb_dr.describe_environments(
            EnvironmentNames=[env.dr_environment_name], IncludeDeleted=False)["Environments"]],
        "primary_environment": [(e["Status"], e["CNAME"], e.get("VersionLabel")) for e in
                                eb_primary.describe_environments(EnvironmentNames=[env.name])["Environments"]],
        "records": sorted(json.dumps(r, sort_keys=True) for r in records),
    }


def run_drill(sb: Sandbox, plan: Plan, **options: Any) -> tuple[Any, str, Any]:
    payload = drill_input("test", keep=options.get("keep", False), harden=options.get("harden", False),
                          force=options.get("force", False))
    return sandbox_drill(sb, plan, payload, None)


def test_a_drill_restores_service_on_copies_measures_it_and_leaves_nothing(estate) -> None:
    sb, plan = estate
    before = production(plan)
    result, drill, teardown = run_drill(sb, plan, harden=True)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    # Service was restored on the copies: verification passed on the drill's own names.
    checks = result.output["restored"]["checks"] + result.output["drill_record"] + result.output["restored"]["data"]
    assert {c["check"] for c in checks} == {"environment", "http probe", "database", "dns", "canary write"}
    assert all(c["ok"] for c in checks)
    assert all(names.id_in_name(c["resource"]) == drill or c["check"] in ("dns", "http probe") for c in checks)
    assert result.restored_at is not None
    figures = drill_audit.figures(plan, result)
    assert figures["rto"]["seconds"] == round(result.restored_at, 1) and figures["rto"]["copy_seconds"] > 0
    assert figures["rpo"]["per_database"] == {plan.databases[0].dr_replica_identifier: figures["rpo"]["seconds"]}
    # Hardening ran on the copy: Multi-AZ and the failover class.
    hardened = result.output["drill"]["databases"][0]
    assert hardened["dr_replica_identifier"].endswith(f"-drill-{drill}")
    # The teardown EventBridge started removed every kind of resource the drill made.
    assert teardown is not None and teardown.status == "SUCCEEDED", (teardown and teardown.cause)
    summary = teardown_summary(teardown, drill_audit.leftovers(plan, drill))
    assert {d["kind"] for d in summary["deleted"]} >= {"db_instance", "environment", "dns_record"}
    assert all(d["drill"] == drill for d in summary["deleted"])
    assert summary["left"] == 0, summary["leftovers"]
    assert production(plan) == before


def test_a_drill_that_fails_mid_launch_is_torn_down(estate) -> None:
    sb, plan = estate
    before = production(plan)
    fault = sb.faults.inject("elastic-beanstalk", "CreateEnvironment", "InsufficientPrivilegesException",
                             "injected: the launch fails", times=None, status=403)
    try:
        result, drill, teardown = run_drill(sb, plan)
    finally:
        sb.faults.clear()
    assert fault.hits >= 1
    assert result.status == "FAILED" and result.failed_step == "Launch DR environment"
    # The database copy was under way when the drill failed: the teardown waits for it and deletes it.
    assert teardown is not None and teardown.status == "SUCCEEDED", (teardown and teardown.cause)
    deleted = teardown_summary(teardown, [])["deleted"]
    assert {d["kind"] for d in deleted} >= {"db_instance"}
    assert drill_audit.leftovers(plan, drill) == []
    assert production(plan) == before


def test_an_aborted_drill_is_torn_down(estate) -> None:
    sb, plan = estate
    before = production(plan)
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    arn = sb.start(plan, "drill", drill_input("test", keep=False, harden=False, force=False))
    drill = names.drill_id(arn, sfn.describe_execution(executionArn=arn)["startDate"])
    copy = names.drill_name(plan.databases[0].dr_replica_identifier, drill, names.DB_NAME_LIMIT)
    rds = boto3.client("rds", region_name=plan.dr_region)
    # Mid-way: the copy exists (being created) and the drill environment is launching.
    clock.wait_until(lambda: any(d["DBInstanceIdentifier"] == copy for d in rds.describe_db_instances()["DBInstances"]),
                     timeout=1800, what="the drill's database copy")
    # `pilotlight status` shows the running drill, read from its execution.
    from click.testing import CliRunner

    from cli import cli

    shown = CliRunner().invoke(cli, ["status", str(REFERENCE), "--json"])
    assert shown.exit_code == 0, shown.output
    running = json.loads(shown.stdout)["drill"]
    assert running["drill_id"] == drill and running["status"] == "RUNNING"
    assert "Copy DR replica" in [s["step"] for s in running["timeline"]]
    sfn.stop_execution(executionArn=arn, error="OperatorAbort", cause="test: abort mid-way")
    machine = sb.state_machine_arn(plan, "drill-teardown")
    clock.wait_until(lambda: sb.eventbridge.started(machine) and any(
        d.event["detail"]["executionArn"] == arn for d in sb.eventbridge.started(machine)), timeout=60,
        what="the teardown of the aborted drill")
    teardown_arn = next(d.result for d in sb.eventbridge.started(machine) if d.event["detail"]["executionArn"] == arn)
    teardown = follow(sfn, teardown_arn, poll_seconds=0.05)
    assert teardown.status == "SUCCEEDED", teardown.cause
    assert teardown.output["targets"]["drill_status"] == "ABORTED"
    assert drill_audit.leftovers(plan, drill) == []
    assert production(plan) == before


def test_a_kept_drill_stays_until_cleanup_and_the_sweep_spares_running_drills(estate) -> None:
    sb, plan = estate
    result, drill, teardown = run_drill(sb, plan, keep=True)
    assert result.status == "SUCCEEDED"
    assert teardown.output["kept"] is True
    left = drill_audit.leftovers(plan, drill)
    assert {x["kind"] for x in left} >= {"db_instance", "environment", "dns_record"}
    # A sweep with a limit longer than the drill's age removes nothing.
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    young = follow(sfn, sb.start(plan, "drill-teardown", {"sweep": True, "older_than_hours": 48}), poll_seconds=0.05)
    assert young.status == "SUCCEEDED" and teardown_summary(young, [])["deleted"] == []
    assert drill_audit.leftovers(plan, drill) == left
    # drill-cleanup --drill removes it.
    cleanup = follow(sfn, sb.start(plan, "drill-teardown", {"drill_id": drill}), poll_seconds=0.05)
    assert cleanup.status == "SUCCEEDED", cleanup.cause
    assert drill_audit.leftovers(plan, drill) == []


def test_a_drill_is_refused_while_readiness_is_not_ready_on_the_database_unless_forced(estate) -> None:
    sb, plan = estate
    ssm = boto3.client("ssm", region_name=plan.dr_region)
    from lambdas.readiness_report import parameter_name

    last = {"plan": plan.name, "status": "NOT_READY", "score": 0.9, "ready": 9, "total": 10, "at": "now",
            "execution": "x", "not_ready": [{"check": "dr-replica", "resource": plan.databases[0].identifier,
                                             "status": "NOT_READY", "reason": "lag above the RPO"}]}
    ssm.put_parameter(Name=parameter_name(plan.name), Value=json.dumps(last), Type="String", Overwrite=True)
    try:
        refused, drill, teardown = run_drill(sb, plan)
        assert refused.status == "FAILED" and refused.error == "DrillRefused"
        assert "dr-replica" in refused.cause and "--force" in refused.cause
        assert drill_audit.leftovers(plan, drill) == []
        forced, drill, teardown = run_drill(sb, plan, force=True)
        assert forced.status == "SUCCEEDED", forced.cause
        assert forced.output["drill"]["readiness"]["overridden"] is True
        assert drill_audit.leftovers(plan, drill) == []
    finally:
        ssm.delete_parameter(Name=parameter_name(plan.name))


def test_a_drill_is_refused_while_a_failover_runs(estate) -> None:
    sb, plan = estate
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    # An alarm-less, unapproved failover of a plan that asks for approval waits for it: it is running.
    failover = sb.start(plan, "failover", {"source": "test", "force": True})
    try:
        clock.wait_until(lambda: any(e["type"] == "TaskScheduled" or e["type"] == "TaskStateEntered" and
                                     e["stateEnteredEventDetails"]["name"] == "AwaitApproval"
                                     for e in sfn.get_execution_history(executionArn=failover)["events"]),
                         timeout=60, what="the failover waiting for approval")
        refused, drill, _ = run_drill(sb, plan)
        assert refused.status == "FAILED" and refused.error == "DrillRefused"
        assert "failover" in refused.cause
        assert drill_audit.leftovers(plan, drill) == []
    finally:
        sfn.stop_execution(executionArn=failover, error="Test", cause="test done")
        clock.wait_until(lambda: sfn.describe_execution(executionArn=failover)["status"] != "RUNNING", timeout=60,
                         step=0.5, what="the stopped failover ending")
    assert sfn.describe_execution(executionArn=failover)["status"] == "ABORTED"


def test_a_failover_started_during_a_drill_wins_and_no_drill_resource_remains(estate) -> None:
    sb, plan = estate
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    arn = sb.start(plan, "drill", drill_input("test", keep=True, harden=False, force=False))
    drill = names.drill_id(arn, sfn.describe_execution(executionArn=arn)["startDate"])
    copy = names.drill_name(plan.databases[0].dr_replica_identifier, drill, names.DB_NAME_LIMIT)
    rds = boto3.client("rds", region_name=plan.dr_region)
    clock.wait_until(lambda: any(d["DBInstanceIdentifier"] == copy for d in rds.describe_db_instances()["DBInstances"])
                     or sfn.describe_execution(executionArn=arn)["status"] != "RUNNING",
                     timeout=1800, what="the drill's database copy")
    described = sfn.describe_execution(executionArn=arn)
    assert described["status"] == "RUNNING", (described.get("error"), described.get("cause"))
    # A drill refuses to start while a failover runs; a failover stops a running drill.
    sb.simulate_disaster(plan)
    failover = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test"}, timeout=600)
    assert failover.status == "SUCCEEDED", failover.cause
    assert [p["drill"] for p in failover.output["guard"]["preempted_drills"]] == [drill]
    stopped = sfn.describe_execution(executionArn=arn)
    assert stopped["status"] == "ABORTED" and stopped["error"] == names.PREEMPTED
    # The failover did not wait for the teardown; the teardown ignores --keep for a pre-empted drill.
    machine = sb.state_machine_arn(plan, "drill-teardown")
    teardown_arn = next(d.result for d in sb.eventbridge.started(machine) if d.event["detail"]["executionArn"] == arn)
    teardown = follow(sfn, teardown_arn, poll_seconds=0.05)
    assert teardown.status == "SUCCEEDED" and teardown.output["kept"] is False
    assert drill_audit.leftovers(plan, drill) == []
    # The failover restored production on the plan's own names.
    dr = rds.describe_db_instances(DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)["DBInstances"][0]
    assert not dr.get("ReadReplicaSourceDBInstanceIdentifier")
