"""The readiness workflow run for real in the sandbox: every check breaks on its own, and only it.

One sandbox per module holds the replicated reference estate. Each breaking test breaks one thing
through the AWS APIs (or the sandbox's model of AWS), runs the readiness state machine, and puts the
thing back in a ``finally`` so the next test starts from an all-READY estate.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from cli import cli
from sandbox import Sandbox, clock
from sandbox.adapters_quotas import EC2_ON_DEMAND_STANDARD_VCPUS, KNOWN
from tests.conftest import REFERENCE
from tests.replicate_helpers import dr_copies, run
from workflows import asl, failover
from workflows.executions import follow, transitions
from workflows.plan import Plan, load_plan
from workflows.readiness import failover_sha256


@pytest.fixture(scope="module")
def estate() -> Iterator[tuple[Sandbox, Plan]]:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        run(sb, plan)
        yield sb, plan


def readiness(sb: Sandbox, plan: Plan, execution_input: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the deployed readiness state machine to its end; its output (the report document)."""
    arn = sb.start(plan, "readiness", execution_input or {"source": "test"})
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    result = follow(sfn, arn, poll_seconds=0.05, timeout_seconds=60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return {**result.output, "_transitions": transitions(result.events)}


def not_ready_only(out: dict[str, Any], check: str, resource: str) -> dict[str, Any]:
    """Assert that exactly (check, resource) is NOT_READY and every other check READY; that result."""
    statuses = {(c["check"], c["resource"]): c["status"] for c in out["checks"]}
    others = {k: v for k, v in statuses.items() if k != (check, resource)}
    assert statuses.get((check, resource)) == "NOT_READY", out["checks"]
    assert set(others.values()) == {"READY"}, [c for c in out["checks"] if c["status"] != "READY"]
    assert out["status"] == "NOT_READY" and out["ready"] == out["total"] - 1
    return next(c for c in out["checks"] if (c["check"], c["resource"]) == (check, resource))


def test_a_freshly_replicated_estate_is_all_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    out = readiness(sb, plan)
    assert out["status"] == "READY" and out["score"] == 1.0, [c for c in out["checks"] if c["status"] != "READY"]
    assert {c["check"] for c in out["checks"]} == {
        "dr-ami", "saved-configuration", "app-version", "dr-replica", "dr-db-network", "az2-replica", "s3-replication",
        "s3-versioning", "s3-canary", "dns-record", "ec2-capacity", "rds-capacity", "failover-definition",
        "permissions"}
    # 3 per environment, 3 per database, 3 per bucket pair, DNS, 2 quotas, failover, and the permissions of the
    # failover's 7 functions (the report function records a failure; the canary function writes to the database).
    assert out["total"] == 23
    by = {(c["check"], c["resource"]): c for c in out["checks"]}
    (copy,) = dr_copies(plan, "shop-prod")
    assert by[("dr-ami", "shop-prod")]["evidence"]["image_id"] == copy["ImageId"]
    assert by[("dr-replica", "shop-db-dr")]["evidence"]["lag_seconds"] == 2.0
    assert by[("ec2-capacity", plan.dr_region)]["evidence"]["failover_vcpus"] == 8  # MaxSize 4 x t3.small


def test_one_task_per_plan_item_keeps_transitions_at_items_plus_three(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    out = readiness(sb, plan)
    items = len(plan.environments) + len(plan.databases) + len(plan.buckets) + 1 + 1 + 1  # dns, capacity, failover
    items += 7  # the permissions of each function the failover uses
    assert out["_transitions"] == items + 3


def test_a_stale_dr_ami_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    (copy,) = dr_copies(plan, "shop-prod")
    created = {t["Key"]: t["Value"] for t in copy["Tags"]}["pilotlight:created-at"]
    stale = (clock.datetime_now() - dt.timedelta(hours=plan.ami.max_age_hours + 6)).isoformat(timespec="seconds")
    ec2.create_tags(Resources=[copy["ImageId"]], Tags=[{"Key": "pilotlight:created-at", "Value": stale}])
    try:
        out = readiness(sb, plan)
    finally:
        ec2.create_tags(Resources=[copy["ImageId"]], Tags=[{"Key": "pilotlight:created-at", "Value": created}])
    check = not_ready_only(out, "dr-ami", "shop-prod")
    assert copy["ImageId"] in check["reason"] and "shop-prod" in check["reason"]
    assert check["evidence"]["age_hours"] > plan.ami.max_age_hours


def _saved(plan: Plan) -> tuple[Any, str, dict[str, Any]]:
    """The DR saved configuration of the plan's first environment: client, name, settings."""
    env = plan.environments[0]
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    name = f"pilotlight-{plan.name}-{env.name}"
    saved = eb.describe_configuration_settings(ApplicationName=env.application, TemplateName=name)[
        "ConfigurationSettings"][0]
    return eb, name, saved


def _recreate(eb: Any, plan: Plan, name: str, platform_arn: str, options: list[dict[str, Any]]) -> None:
    application = plan.environments[0].application
    eb.delete_configuration_template(ApplicationName=application, TemplateName=name)
    eb.create_configuration_template(ApplicationName=application, TemplateName=name, PlatformArn=platform_arn,
                                     OptionSettings=options)


def test_a_drifted_saved_configuration_names_the_option(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    env = plan.environments[0]
    eb, name, saved = _saved(plan)

    def recreate(options: list[dict[str, Any]]) -> None:
        _recreate(eb, plan, name, saved["PlatformArn"], options)

    drifted = [dict(o, Value="staging") if o["OptionName"] == "APP_ENV" else o for o in saved["OptionSettings"]]
    recreate(drifted)
    try:
        out = readiness(sb, plan)
    finally:
        recreate(saved["OptionSettings"])
    check = not_ready_only(out, "saved-configuration", env.name)
    assert name in check["reason"] and "APP_ENV" in check["reason"]
    assert check["evidence"]["differences"] == [
        "aws:elasticbeanstalk:application:environment:APP_ENV: saved 'staging', primary implies 'production'"]


def test_a_saved_db_host_that_is_not_the_dr_replica_is_drift(estate: tuple[Sandbox, Plan]) -> None:
    """Endpoints are compared by form (replica identifier, DR region), without an RDS call."""
    sb, plan = estate
    env = plan.environments[0]
    eb, name, saved = _saved(plan)
    host = next(o["Value"] for o in saved["OptionSettings"] if o["OptionName"] == "DB_HOST")
    assert f".{plan.dr_region}.rds.amazonaws.com" in host
    wrong = host.replace(f".{plan.dr_region}.", f".{plan.primary_region}.")

    def recreate(options: list[dict[str, Any]]) -> None:
        _recreate(eb, plan, name, saved["PlatformArn"], options)

    recreate([dict(o, Value=wrong) if o["OptionName"] == "DB_HOST" else o for o in saved["OptionSettings"]])
    try:
        out = readiness(sb, plan)
    finally:
        recreate(saved["OptionSettings"])
    check = not_ready_only(out, "saved-configuration", env.name)
    assert "DB_HOST" in check["reason"]


def test_a_deleted_dr_replica_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    db = plan.databases[0]
    rds = boto3.client("rds", region_name=plan.dr_region)
    source_arn = boto3.client("rds", region_name=plan.primary_region).describe_db_instances(
        DBInstanceIdentifier=db.identifier)["DBInstances"][0]["DBInstanceArn"]
    rds.delete_db_instance(DBInstanceIdentifier=db.dr_replica_identifier, SkipFinalSnapshot=True)
    try:
        out = readiness(sb, plan)
    finally:
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=db.dr_replica_identifier, SourceDBInstanceIdentifier=source_arn,
            DBInstanceClass=db.replica_instance_class, SourceRegion=plan.primary_region,
            DBSubnetGroupName=db.dr_network.subnet_group, VpcSecurityGroupIds=list(db.dr_network.security_groups))
        _wait_available(rds, db.dr_replica_identifier)
    check = not_ready_only(out, "dr-replica", db.dr_replica_identifier)
    assert check["reason"] == f"replica {db.dr_replica_identifier} does not exist in {plan.dr_region}"
    assert readiness(sb, plan)["status"] == "READY"  # recreated with the same endpoint: nothing else drifted


def _wait_available(rds: Any, identifier: str) -> None:
    clock.wait_until(
        lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["DBInstanceStatus"]
        == "available", timeout=3600, step=30, what=f"{identifier} available")


def test_replica_lag_above_the_rpo_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    replica = plan.databases[0].dr_replica_identifier
    sb.latency.replica_lag_overrides[replica] = plan.objectives.rpo_minutes * 60 + 120.0
    try:
        out = readiness(sb, plan)
    finally:
        sb.latency.replica_lag_overrides.pop(replica)
    check = not_ready_only(out, "dr-replica", replica)
    assert replica in check["reason"] and "above the RPO of 300 s" in check["reason"]
    assert out["metrics"]["ReplicaLagSeconds"] == 420.0


def test_a_disabled_replication_rule_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    pair = plan.buckets[0]
    s3 = boto3.client("s3", region_name=plan.primary_region)
    config = s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]
    disabled = {**config, "Rules": [{**r, "Status": "Disabled"} for r in config["Rules"]]}
    s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration=disabled)
    try:
        out = readiness(sb, plan)
    finally:
        s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration=config)
    check = not_ready_only(out, "s3-replication", f"{pair.source} -> {pair.destination}")
    assert pair.source in check["reason"] and "Disabled" in check["reason"]


def _point_record(plan: Plan, value: str) -> None:
    assert plan.dns is not None
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=plan.dns.hosted_zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": plan.dns.record_name, "Type": "CNAME", "TTL": plan.dns.ttl,
            "ResourceRecords": [{"Value": value}]}}]},
    )


def test_a_dns_record_pointing_elsewhere_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    assert plan.dns is not None
    _point_record(plan, "parked.example.net")
    try:
        out = readiness(sb, plan)
    finally:
        _point_record(plan, f"shop-prod.{plan.primary_region}.elasticbeanstalk.com")
    check = not_ready_only(out, "dns-record", plan.dns.record_name)
    assert plan.dns.record_name in check["reason"] and "parked.example.net" in check["reason"]


def test_an_ec2_quota_too_low_for_the_failover_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    sb.set_quota(plan.dr_region, *EC2_ON_DEMAND_STANDARD_VCPUS, 4)
    try:
        out = readiness(sb, plan)
    finally:
        sb.set_quota(plan.dr_region, *EC2_ON_DEMAND_STANDARD_VCPUS, KNOWN[EC2_ON_DEMAND_STANDARD_VCPUS][3])
    check = not_ready_only(out, "ec2-capacity", plan.dr_region)
    assert "quota in us-west-2 is 4" in check["reason"] and "8 vCPUs" in check["reason"]


def _changed_plan(plan: Plan) -> Plan:
    return plan.model_copy(update={"objectives": plan.objectives.model_copy(update={"rto_minutes": 30})})


def test_a_failover_definition_changed_since_deploy_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    arn = sb.state_machine_arn(plan, "failover")
    deployed = sfn.describe_state_machine(stateMachineArn=arn)
    other = asl.substitute(asl.dumps(failover.build(_changed_plan(plan))), sb.substitutions(plan))
    sfn.update_state_machine(stateMachineArn=arn, definition=other)
    try:
        out = readiness(sb, plan)
    finally:
        sfn.update_state_machine(stateMachineArn=arn, definition=deployed["definition"])
    check = not_ready_only(out, "failover-definition", f"pilotlight-{plan.name}-failover")
    assert "redeploy" in check["reason"]


def test_a_local_plan_changed_but_not_deployed_is_not_ready(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    out = readiness(sb, plan, {"expected_failover_sha256": failover_sha256(_changed_plan(plan))})
    check = not_ready_only(out, "failover-definition", f"pilotlight-{plan.name}-failover")
    assert "changed but not deployed" in check["reason"]
    assert readiness(sb, plan, {"expected_failover_sha256": failover_sha256(plan)})["status"] == "READY"


def test_metrics_are_published_per_plan_in_the_dr_region(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    readiness(sb, plan)
    cw = boto3.client("cloudwatch", region_name=plan.dr_region)
    metrics = cw.list_metrics(Namespace="pilotlight", Dimensions=[{"Name": "Plan", "Value": plan.name}])["Metrics"]
    assert {m["MetricName"] for m in metrics} == {"ReadinessScore", "ReplicaLagSeconds", "AmiAgeHours",
                                                   "NotReadyChecks"}
    end = clock.datetime_now() + dt.timedelta(minutes=1)  # metrics carry modeled time
    points = cw.get_metric_statistics(Namespace="pilotlight", MetricName="ReadinessScore",
                                      Dimensions=[{"Name": "Plan", "Value": plan.name}],
                                      StartTime=end - dt.timedelta(hours=1), EndTime=end, Period=3600,
                                      Statistics=["Minimum"])["Datapoints"]
    assert points and points[0]["Minimum"] <= 100.0


def _notifications(sb: Sandbox, plan: Plan) -> list[tuple[str, str]]:
    from moto.sns.models import sns_backends

    topic = sns_backends[sb.account_id][plan.dr_region].topics[sb.topic_arn(plan)]
    return [(n[2], n[1]) for n in topic.sent_notifications]  # (subject, message)


def test_a_status_change_notifies_the_topic_once(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    assert readiness(sb, plan)["status"] == "READY"
    before = len(_notifications(sb, plan))
    again = readiness(sb, plan)
    assert again["notified"] is False and len(_notifications(sb, plan)) == before

    _point_record(plan, "parked.example.net")
    try:
        broken = readiness(sb, plan)
        repeated = readiness(sb, plan)
    finally:
        _point_record(plan, f"shop-prod.{plan.primary_region}.elasticbeanstalk.com")
    sent = _notifications(sb, plan)
    assert broken["notified"] is True and repeated["notified"] is False and len(sent) == before + 1
    subject, message = sent[-1]
    assert subject == "pilotlight: shop readiness READY -> NOT_READY"
    assert json.loads(message)["not_ready"][0].startswith("dns-record app.shop.example.com: ")

    back = readiness(sb, plan)
    assert back["notified"] is True and back["previous_status"] == "NOT_READY"
    assert _notifications(sb, plan)[-1][0] == "pilotlight: shop readiness NOT_READY -> READY"


def test_status_shows_the_last_readiness_result(estate: tuple[Sandbox, Plan]) -> None:
    sb, plan = estate
    sb.latency.replica_lag_overrides["shop-db-az2"] = 900.0
    try:
        readiness(sb, plan)
    finally:
        sb.latency.replica_lag_overrides.pop("shop-db-az2")
    runner = CliRunner()
    doc = json.loads(runner.invoke(cli, ["status", str(REFERENCE), "--json"]).stdout)
    assert doc["readiness"]["status"] == "NOT_READY" and doc["readiness"]["total"] == 23
    assert doc["readiness"]["not_ready"][0]["check"] == "az2-replica"
    human = runner.invoke(cli, ["status", str(REFERENCE)])
    assert human.exit_code == 0, human.output
    assert "Readiness: NOT_READY (22/23 checks, score 96%)" in human.output
    assert "NOT_READY  az2-replica  shop-db-az2: replica shop-db-az2 lags 900 s" in human.output
    readiness(sb, plan)  # leave the estate READY for whatever runs next
