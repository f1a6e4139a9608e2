"""RDS against the AWS contract: where the DR replica lives, and what a promotion leaves on the critical path.

- The cross-region replica is created in the plan's DR DB subnet group with its VPC security groups
  (without them RDS puts it in the DR region's default VPC, out of the DR environment's reach); the
  plan requires them; readiness reports a missing subnet group or security group, and a replica that
  is not in them.
- A promotion that enables automated backups (replicas have none) is followed by the first backup:
  the instance shows ``backing-up`` for a while and accepts connections meanwhile. The failover cuts
  over without waiting for that backup; hardening waits for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml

from lambdas import rds as rds_steps
from sandbox import Sandbox, clock
from sandbox.latency import duration
from tests.conftest import REFERENCE, outage, run_workflow
from workflows.executions import follow
from workflows.plan import Plan, PlanError, load_plan, parse_plan


def _replica(plan: Plan) -> dict[str, Any]:
    return boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)["DBInstances"][0]


# -- defect 3: the DR replica's network -------------------------------------------------------------


def test_a_plan_database_without_its_dr_network_is_rejected_with_the_field_path() -> None:
    data = yaml.safe_load(REFERENCE.read_text())
    data["databases"][0].pop("dr_network", None)
    with pytest.raises(PlanError) as info:
        parse_plan(data, "plan.yaml")
    (line,) = [p for p in info.value.problems if p.startswith("databases[0].dr_network")]
    assert line.startswith("databases[0].dr_network: required field is missing")
    assert "subnet group" in line and "security groups" in line and "default VPC" in line


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ({"subnet_group": "default", "security_groups": ["sg-0d1a2b3c4d5e6f741"]},
         "databases[0].dr_network.subnet_group: 'default' is RDS's own subnet group"),
        ({"subnet_group": "shop-db-dr", "security_groups": []},
         "databases[0].dr_network.security_groups: List should have at least 1 item"),
        ({"subnet_group": "shop-db-dr", "security_groups": ["sg-1"]},
         "databases[0].dr_network.security_groups[0]: 'sg-1' does not match"),
        ({"subnet_group": "shop-db-dr"}, "databases[0].dr_network.security_groups: required field is missing"),
    ],
    ids=["default_subnet_group", "no_security_group", "bad_security_group_id", "security_groups_missing"],
)
def test_a_bad_dr_network_is_rejected_with_the_field_path(network: dict[str, Any], expected: str) -> None:
    data = yaml.safe_load(REFERENCE.read_text())
    data["databases"][0]["dr_network"] = network
    with pytest.raises(PlanError) as info:
        parse_plan(data, "plan.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


@pytest.fixture(scope="class")
def estate() -> Iterator[tuple[Sandbox, Plan]]:
    """The reference estate with its pilot light built by replicate."""
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        yield sb, plan


def _readiness(sb: Sandbox, plan: Plan) -> dict[str, Any]:
    arn = sb.start(plan, "readiness", {"source": "test"})
    result = follow(boto3.client("stepfunctions", region_name=plan.dr_region), arn, poll_seconds=0.05,
                    timeout_seconds=60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return result.output


def _network_check(out: dict[str, Any], plan: Plan) -> dict[str, Any]:
    ident = plan.databases[0].dr_replica_identifier
    (check,) = [c for c in out["checks"] if (c["check"], c["resource"]) == ("dr-db-network", ident)]
    others = [c for c in out["checks"] if c is not check and c["status"] != "READY"]
    assert not others, others
    return check


class TestDrNetwork:
    """One sandbox for the class (torn down before the promotion tests build their own)."""

    def test_replicate_creates_the_dr_replica_in_the_plans_subnet_group_and_security_groups(
        self, estate: tuple[Sandbox, Plan]
    ) -> None:
        _, plan = estate
        network = plan.databases[0].dr_network
        replica = _replica(plan)
        assert replica["DBSubnetGroup"]["DBSubnetGroupName"] == network.subnet_group
        assert sorted(g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]) == sorted(network.security_groups)
        # The subnet group and the security groups are those of one VPC in the DR region, not its default VPC.
        ec2 = boto3.client("ec2", region_name=plan.dr_region)
        groups = ec2.describe_security_groups(GroupIds=list(network.security_groups))["SecurityGroups"]
        vpc = replica["DBSubnetGroup"]["VpcId"]
        assert {g["VpcId"] for g in groups} == {vpc}
        assert not ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0].get("IsDefault")
        # The in-region AZ2 replica takes its source's network (RDS refuses a subnet group there).
        az2 = boto3.client("rds", region_name=plan.primary_region).describe_db_instances(
            DBInstanceIdentifier=plan.databases[0].az2_replica.identifier)["DBInstances"][0]
        assert az2.get("DBSubnetGroup", {}).get("DBSubnetGroupName") != network.subnet_group

    def test_readiness_is_ready_when_the_dr_network_is_in_place(self, estate: tuple[Sandbox, Plan]) -> None:
        sb, plan = estate
        check = _network_check(_readiness(sb, plan), plan)
        assert check["status"] == "READY", check
        assert check["evidence"]["replica_subnet_group"] == plan.databases[0].dr_network.subnet_group

    def test_readiness_is_not_ready_naming_a_deleted_dr_subnet_group(self, estate: tuple[Sandbox, Plan]) -> None:
        sb, plan = estate
        network = plan.databases[0].dr_network
        rds = boto3.client("rds", region_name=plan.dr_region)
        (group,) = rds.describe_db_subnet_groups(DBSubnetGroupName=network.subnet_group)["DBSubnetGroups"]
        rds.delete_db_subnet_group(DBSubnetGroupName=network.subnet_group)
        try:
            check = _network_check(_readiness(sb, plan), plan)
        finally:
            rds.create_db_subnet_group(DBSubnetGroupName=network.subnet_group,
                                       DBSubnetGroupDescription=group["DBSubnetGroupDescription"],
                                       SubnetIds=[s["SubnetIdentifier"] for s in group["Subnets"]])
        assert check["status"] == "NOT_READY"
        assert check["reason"] == f"DB subnet group {network.subnet_group} does not exist in {plan.dr_region}"

    def test_readiness_is_not_ready_naming_a_deleted_security_group(self, estate: tuple[Sandbox, Plan]) -> None:
        sb, plan = estate
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        (sg,) = plan.databases[0].dr_network.security_groups
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][plan.dr_region]
        (vpc,) = [v for v, groups in backend.groups.items() if sg in groups]
        group = backend.groups[vpc].pop(sg)  # AWS refuses to delete a group in use; take it out of the world
        try:
            check = _network_check(_readiness(sb, plan), plan)
        finally:
            backend.groups[vpc][sg] = group
        assert check["status"] == "NOT_READY"
        assert check["reason"] == f"security group {sg} does not exist in {plan.dr_region}"

    def test_readiness_reports_a_replica_outside_the_plans_subnet_group_as_drift(
        self, estate: tuple[Sandbox, Plan]
    ) -> None:
        sb, plan = estate
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.rds.models import rds_backends

        network = plan.databases[0].dr_network
        rds = boto3.client("rds", region_name=plan.dr_region)
        (group,) = rds.describe_db_subnet_groups(DBSubnetGroupName=network.subnet_group)["DBSubnetGroups"]
        rds.create_db_subnet_group(DBSubnetGroupName="elsewhere", DBSubnetGroupDescription="another VPC's",
                                   SubnetIds=[s["SubnetIdentifier"] for s in group["Subnets"]])
        db = rds_backends[DEFAULT_ACCOUNT_ID][plan.dr_region].databases[plan.databases[0].dr_replica_identifier]
        db.db_subnet_group_name = "elsewhere"
        try:
            check = _network_check(_readiness(sb, plan), plan)
        finally:
            db.db_subnet_group_name = network.subnet_group
            rds.delete_db_subnet_group(DBSubnetGroupName="elsewhere")
        assert check["status"] == "NOT_READY"
        assert check["reason"] == (f"replica {plan.databases[0].dr_replica_identifier} has drifted: subnet group "
                                   f"elsewhere, plan says {network.subnet_group}")

    def test_replicate_reports_the_replica_outside_the_plans_subnet_group_as_drift(
        self, estate: tuple[Sandbox, Plan]
    ) -> None:
        _, plan = estate
        db = plan.databases[0]
        out = rds_steps.ensure_replica(plan.primary_region, plan.dr_region, db.identifier, db.dr_replica_identifier,
                                       db.replica_instance_class, subnet_group="other-group",
                                       security_groups=list(db.dr_network.security_groups))
        assert out["record"]["status"] == "drift"
        assert out["record"]["drift"] == [f"subnet group {db.dr_network.subnet_group}, plan says other-group"]


# -- defect 7: the first backup after promotion is not on the critical path ---------------------------


def test_a_promotion_that_enables_backups_is_followed_by_a_backup_that_accepts_connections(
    reference_plan: Plan,
) -> None:
    plan = reference_plan
    ident = plan.databases[0].dr_replica_identifier
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=True)
        assert _replica(plan)["BackupRetentionPeriod"] == 0  # replicas are created with backups disabled
        started = clock.now()
        out = rds_steps.promote_replica(plan.dr_region, ident, backup_retention_days=7)
        assert out["promoted_now"] and out["db"]["status"] == "modifying"
        clock.wait_until(lambda: _replica(plan)["DBInstanceStatus"] != "modifying", timeout=3600, step=10,
                         what="promotion over")
        db = _replica(plan)
        assert db["DBInstanceStatus"] == "backing-up"
        assert "ReadReplicaSourceDBInstanceIdentifier" not in db and db["Endpoint"]["Address"]
        assert db["BackupRetentionPeriod"] == 7
        assert rds_steps.check_promoted(plan.dr_region, ident)["done"] is True
        assert clock.now() - started == pytest.approx(duration("rds.promote"), abs=10)
        # Meanwhile, a change waits for the backup: the act defers it and the check makes it afterwards.
        assert rds_steps.enable_multi_az(plan.dr_region, ident)["modified_now"] is False
        assert rds_steps.check_multi_az(plan.dr_region, ident)["done"] is False
        clock.wait_until(lambda: _replica(plan)["DBInstanceStatus"] == "available", timeout=3 * 3600, step=10,
                         what="first backup over")
        assert clock.now() - started == pytest.approx(duration("rds.promote") + duration("rds.first_backup"),
                                                      abs=20)
        assert rds_steps.check_multi_az(plan.dr_region, ident)["modified_now"] is True
        assert _replica(plan)["PendingModifiedValues"] == {"MultiAZ": True}


def test_the_failover_cuts_over_while_the_first_backup_runs(sandbox: Sandbox, reference_plan: Plan) -> None:
    plan = reference_plan
    outage(sandbox, plan)
    result = run_workflow(sandbox, plan, "failover")
    assert result.status == "SUCCEEDED", (result.error, result.cause)

    key = ("rds", plan.dr_region, plan.databases[0].dr_replica_identifier)
    (promotion,) = [p for p in sandbox.latency.phases if p.key == key and p.kind == "rds.promote"]
    (backup,) = [p for p in sandbox.latency.phases if p.key == key and p.kind == "rds.first_backup"]
    assert backup.start == promotion.until and backup.until - backup.start == duration("rds.first_backup")
    # Steps are timed from the execution's start; the model's phases on the modeled clock.
    t0 = boto3.client("stepfunctions", region_name=plan.dr_region).describe_execution(
        executionArn=result.execution_arn)["startDate"].timestamp()
    promotion = dataclasses.replace(promotion, start=promotion.start - t0, until=promotion.until - t0)
    backup = dataclasses.replace(backup, start=backup.start - t0, until=backup.until - t0)

    steps = {s.name: s for s in result.steps}
    promote, dns, restored = steps["Promote DR replica"], steps["Repoint DNS"], steps["Service restored"]
    # The promote step ends once the promotion is over, not when the backup is: the cutover does not wait.
    assert promotion.until <= promote.end < backup.until
    assert promote.end - promotion.until <= 15  # noticed within one poll interval (+ Lambda invocations)
    assert dns.start < backup.until and dns.end < backup.until
    assert restored.start < backup.until
    (db,) = result.output["restore"]["databases"]
    assert db["db"]["status"] == "backing-up" and db["db"]["replica_source"] is None
    # Within the plan's RTO, as if there were no backup (before: promote + backup + DNS, over 15 min).
    assert result.restored_at < plan.objectives.rto_minutes * 60
    assert result.restored_at < duration("rds.promote") + duration("rds.first_backup")
    # Hardening waits for the backup and still gets done.
    assert steps["Enable Multi-AZ"].end > backup.until
    final = _replica(plan)
    assert (final["DBInstanceStatus"], final["MultiAZ"], final["DBInstanceClass"]) == ("available", True,
                                                                                        "db.r6g.large")
