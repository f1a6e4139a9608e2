"""Aurora Global Database steps (lambdas/aurora.py, lambdas/readiness_aurora.py) against the sandbox.

The actions are invoked as the deployed function, under the IAM policy infra/iam.py generates for it (the
enforcing sandbox refuses what the policy does not grant), so the resource kinds are proven with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import iam as plan_iam
from lambdas import aurora, drill
from lambdas.common import Registry
from lambdas.readiness_aurora import PERMISSIONS, RESOURCES, check_aurora
from sandbox import Sandbox, clock, seed_aurora
from sandbox.outage_api import region_unreachable
from workflows import render
from workflows.plan import Plan, parse_plan

PRIMARY, DR = "us-east-1", "us-west-2"
GLOBAL, EAST, WEST = "orders-global", "orders-east", "orders-west"


def make_plan(**db: Any) -> Plan:
    return parse_plan({
        "name": "orders", "primary_region": PRIMARY, "dr_region": DR,
        "objectives": {"rto_minutes": 15, "rpo_minutes": 5},
        "databases": [{"kind": "aurora-global", "global_cluster_identifier": GLOBAL, "identifier": EAST,
                       "dr_cluster_identifier": WEST,
                       "dr_network": {"subnet_group": "orders-db-dr", "security_groups": ["sg-0d1a2b3c4d5e6f751"]},
                       "dr_instance_class": "db.r6g.large", **db}],
    }, "plan.yaml")


class Estate:
    def __init__(self, sb: Sandbox, plan: Plan) -> None:
        self.sb, self.plan = sb, plan
        self.db = plan.aurora_databases[0]
        self.function = render.function_name(plan, "aurora")
        sb.lambdas.register(self.function, "aurora")
        sb.iam.attach(self.function, plan_iam.statements(plan_iam.registry_for("aurora"), plan,
                                                         account=sb.account_id, extra={"topic": []}))
        # The readiness function's grants for these checks (lambdas/readiness_aurora.py PERMISSIONS/RESOURCES).
        readiness = Registry("readiness-aurora")
        readiness.action("check", permissions=PERMISSIONS, resource=RESOURCES)(check_aurora)
        self.readiness = f"pilotlight-{plan.name}-readiness-aurora"
        sb.iam.attach(self.readiness, plan_iam.statements(readiness, plan, account=sb.account_id, extra={}))
        self.rds = boto3.client("rds", region_name=DR)

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        """Invoke the action as the deployed function (its IAM enforced); AWS-side errors raise."""
        out = boto3.client("lambda", region_name=DR).invoke(
            FunctionName=self.function, Payload=json.dumps({"action": action, **params}))
        payload = json.loads(out["Payload"].read())
        if out.get("FunctionError"):
            raise RuntimeError(f"{payload['errorType']}: {payload['errorMessage']}")
        return payload

    def poll(self, act: str, check: str, params: dict[str, Any], check_params: dict[str, Any] | None = None,
             step: float = 30, limit: int = 200) -> dict[str, Any]:
        """The workflows' poll loop: act, then check every ``step`` modeled seconds until done."""
        out = self.call(act, **params)
        while not out["done"]:
            assert out["attempt"] < limit, out
            clock.advance(step)
            out = self.call(check, **{**(check_params or params), "attempt": out["attempt"]})
        return out

    def replicate(self) -> dict[str, Any]:
        db = self.db
        params = {"primary_region": PRIMARY, "region": DR, "global_cluster": GLOBAL, "identifier": EAST,
                  "dr_cluster": WEST, "engine": db.engine, "instance_class": db.dr_instance_class,
                  "headless": db.headless, "write_forwarding": db.write_forwarding,
                  "subnet_group": db.dr_network.subnet_group, "security_groups": list(db.dr_network.security_groups)}
        first = self.call("ensure_secondary", **params)
        out = first
        while not out["done"]:
            clock.advance(30)
            out = self.call("check_secondary", region=DR, global_cluster=GLOBAL, dr_cluster=WEST,
                            record=out["record"], attempt=out["attempt"], headless=db.headless)
        return out

    def cluster(self, name: str = WEST) -> dict[str, Any]:
        return self.rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]

    def members(self) -> dict[str, dict[str, Any]]:
        (gc,) = self.rds.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"]
        return {m["DBClusterArn"].rsplit(":", 1)[-1]: m for m in gc["GlobalClusterMembers"]}

    def readiness_checks(self) -> dict[str, dict[str, Any]]:
        item = {"kind": "aurora", "resource": EAST, "global_cluster": GLOBAL, "identifier": EAST, "dr_cluster": WEST,
                "dr_instance_class": self.db.dr_instance_class, "headless": self.db.headless,
                "write_forwarding": self.db.write_forwarding,
                "failover_instance_class": self.db.failover_instance_class}
        ctx = {"primary_region": PRIMARY, "dr_region": DR, "rpo_minutes": 5}
        with self.sb.iam.acting_as(self.readiness):
            return {c["check"]: c for c in check_aurora(ctx, item)}


@pytest.fixture
def estate(request: pytest.FixtureRequest) -> Iterator[Estate]:
    plan = make_plan(**getattr(request, "param", {}))
    with Sandbox() as sb:
        seed_aurora.seed(plan)
        yield Estate(sb, plan)
        assert sb.iam.denials == [], sb.iam.denials


# -- replicate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estate", [{"write_forwarding": True}], indirect=True)
def test_replicate_makes_a_connected_secondary_with_an_instance(estate: Estate) -> None:
    out = estate.replicate()
    assert out["record"]["status"] == "created"
    assert out["record"]["resource"] == f"aurora secondary {WEST} ({DR})"
    cluster = estate.cluster()
    assert cluster["GlobalClusterIdentifier"] == GLOBAL and cluster["Status"] == "available"
    assert cluster["DBSubnetGroup"] == "orders-db-dr"
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == ["sg-0d1a2b3c4d5e6f751"]
    assert cluster["GlobalWriteForwardingStatus"] == "enabled"
    assert [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]] == [f"{WEST}-1"]
    member = estate.members()[WEST]
    assert not member["IsWriter"] and member["SynchronizationStatus"] == "connected"
    assert member["GlobalWriteForwardingStatus"] == "enabled"
    # A re-run changes nothing.
    again = estate.call("ensure_secondary", primary_region=PRIMARY, region=DR, global_cluster=GLOBAL, identifier=EAST,
                        dr_cluster=WEST, engine="aurora-postgresql", instance_class="db.r6g.large", headless=False,
                        write_forwarding=True, subnet_group="orders-db-dr", security_groups=["sg-0d1a2b3c4d5e6f751"])
    assert again["done"] and again["record"]["status"] == "unchanged" and again["record"]["changes"] == []
    checks = estate.readiness_checks()
    assert {name: c["status"] for name, c in checks.items()} == {
        "global-membership": "READY", "global-lag": "READY", "dr-writer": "READY", "write-forwarding": "READY"}


@pytest.mark.parametrize("estate", [{"headless": True}], indirect=True)
def test_a_headless_secondary_records_the_rto_it_costs(estate: Estate) -> None:
    out = estate.replicate()
    assert out["record"]["notes"] == [aurora.HEADLESS_RTO_NOTE] and not out["record"].get("flags")
    assert "10 minutes more RTO" in aurora.HEADLESS_RTO_NOTE
    assert estate.cluster()["DBClusterMembers"] == []
    check = estate.readiness_checks()["dr-writer"]
    assert check["status"] == "READY" and "about 10 minutes more RTO" in check["reason"]
    # The failover adds the writer first.
    added = estate.poll("ensure_writer_instance", "check_writer_instance",
                        {"region": DR, "dr_cluster": WEST, "instance_class": "db.r6g.large"})
    assert [(i["identifier"], i["status"]) for i in added["cluster"]["instances"]] == [(f"{WEST}-1", "available")]


def test_an_existing_cluster_outside_the_global_cluster_is_drift(estate: Estate) -> None:
    estate.rds.create_db_cluster(DBClusterIdentifier=WEST, Engine="aurora-postgresql", MasterUsername="app",
                                 MasterUserPassword="secret-pass-1")
    out = estate.replicate()
    assert out["record"]["status"] == "drift"
    (cause,) = out["record"]["drift"]
    assert "is not a member of global cluster orders-global (it is standalone)" in cause
    assert "cannot join a global cluster" in cause and "delete or rename it" in cause
    check = estate.readiness_checks()["global-membership"]
    assert check["status"] == "NOT_READY"
    assert check["reason"].startswith(f"secondary {WEST} in {DR} is not a member of global cluster {GLOBAL}")


def test_readiness_is_not_ready_above_the_rpo_and_without_a_writer(estate: Estate) -> None:
    estate.replicate()
    estate.sb.aurora.lag_overrides[("AuroraGlobalDBRPOLag", WEST)] = 420_000.0  # 7 min
    lag = estate.call("global_lag", region=DR, dr_cluster=WEST, rpo_minutes=5)
    assert (lag["lag_seconds"], lag["rpo_seconds"], lag["status"]) == (420.0, 300, "ABOVE_RPO")
    assert set(lag) >= {"identifier", "lag_seconds", "rpo_seconds", "status", "record"}
    checks = estate.readiness_checks()
    assert checks["global-lag"]["status"] == "NOT_READY"
    assert checks["global-lag"]["reason"] == f"secondary {WEST} lags 420 s behind {EAST}, above the RPO of 300 s"
    estate.rds.delete_db_instance(DBInstanceIdentifier=f"{WEST}-1", SkipFinalSnapshot=True)
    check = estate.readiness_checks()["dr-writer"]
    assert check["status"] == "NOT_READY"
    assert check["reason"].startswith(f"{WEST} has no DB instance and the plan is not headless")


# -- failover ---------------------------------------------------------------------------------------------


def test_choose_mode_is_graceful_only_when_the_primary_region_answers(estate: Estate) -> None:
    estate.replicate()
    params = {"primary_region": PRIMARY, "region": DR, "global_cluster": GLOBAL, "identifier": EAST,
              "dr_cluster": WEST}
    healthy = estate.call("choose_mode", mode="auto", **params)
    assert healthy["mode"] == "graceful" and healthy["primary_answered"]
    with region_unreachable(estate.sb, PRIMARY, "rds"):
        down = estate.call("choose_mode", mode="auto", **params)
        forced = estate.call("choose_mode", mode="graceful", **params)
    assert down == {"mode": "ungraceful", "requested": "auto", "primary_answered": False, "reason": down["reason"]}
    assert down["reason"].startswith(f"the primary region {PRIMARY} did not answer (describe DB cluster {EAST}: "
                                  "EndpointConnectionError: Could not connect")
    assert forced["mode"] == "graceful" and forced["requested"] == "graceful" and not forced["primary_answered"]


def _switch(estate: Estate, mode: str, ungraceful: str = "failover") -> dict[str, Any]:
    rpo = estate.call("global_lag", region=DR, dr_cluster=WEST, rpo_minutes=5)
    started = estate.call("switch_writer", region=DR, global_cluster=GLOBAL, dr_cluster=WEST, mode=mode,
                          ungraceful=ungraceful)
    out = started
    while not out["done"]:
        clock.advance(10)
        out = estate.call("check_writer", region=DR, global_cluster=GLOBAL, dr_cluster=WEST,
                          method=started["method"], rpo=rpo, attempt=out["attempt"])
    out["started"] = started
    return out


def test_switchover_moves_the_writer_without_data_loss(estate: Estate) -> None:
    estate.replicate()
    out = _switch(estate, "graceful")
    assert out["started"]["method"] == "switchover" and out["method"] == "switchover"
    assert estate.members()[WEST]["IsWriter"] and not estate.members()[EAST]["IsWriter"]
    assert out["rpo"]["lag_seconds"] == 0 and out["rpo"]["status"] == "WITHIN_RPO"
    assert out["rpo"]["measured_lag_seconds"] == pytest.approx(0.08)
    assert out["old_primary"]["arn"].endswith(f":cluster:{EAST}") and not out["old_primary"]["is_writer"]
    assert out["old_primary"]["synchronization_status"] == "connected"
    # A re-run finds it done.
    again = estate.call("switch_writer", region=DR, global_cluster=GLOBAL, dr_cluster=WEST, mode="graceful",
                        ungraceful="failover")
    assert again["done"] and "already the writer" in again["note"]


def test_failover_accepts_the_measured_lag_as_the_rpo(estate: Estate) -> None:
    estate.replicate()
    estate.sb.aurora.lag_overrides[("AuroraGlobalDBRPOLag", WEST)] = 4000.0
    out = _switch(estate, "ungraceful")
    assert out["method"] == "failover"
    assert out["rpo"] == {"identifier": WEST, "lag_seconds": 4.0, "measured_lag_seconds": 4.0, "rpo_seconds": 300,
                          "status": "WITHIN_RPO", "method": "failover"}
    assert out["old_primary"]["synchronization_status"] == "pending-resync"
    assert out["cluster"]["global_cluster"] == GLOBAL


def test_detach_leaves_a_standalone_writable_cluster(estate: Estate) -> None:
    estate.replicate()
    out = _switch(estate, "ungraceful", "detach")
    assert out["method"] == "detach" and out["old_primary"] is None
    assert "GlobalClusterIdentifier" not in estate.cluster()
    assert list(estate.members()) == [EAST]
    assert out["rpo"]["lag_seconds"] == pytest.approx(0.08) and out["rpo"]["method"] == "detach"


def test_a_refused_failover_falls_back_to_detaching(estate: Estate) -> None:
    estate.replicate()
    estate.sb.faults.inject("rds", "FailoverGlobalCluster", "InvalidGlobalClusterStateFault",
                            "The global cluster is not in a valid state")
    out = _switch(estate, "ungraceful")
    assert out["started"]["method"] == "detach"
    assert out["started"]["fallback"].startswith("FailoverGlobalCluster refused (InvalidGlobalClusterStateFault")
    assert "GlobalClusterIdentifier" not in estate.cluster()


def test_check_writer_reports_an_unknown_rpo_when_the_lag_read_failed(estate: Estate) -> None:
    estate.replicate()
    estate.call("switch_writer", region=DR, global_cluster=GLOBAL, dr_cluster=WEST, mode="ungraceful",
                ungraceful="failover")
    clock.advance(300)
    out = estate.call("check_writer", region=DR, global_cluster=GLOBAL, dr_cluster=WEST, method="failover",
                      rpo={"Error": "AwsUnavailable", "Cause": "timeout"})
    assert out["done"]
    assert out["rpo"]["lag_seconds"] is None and out["rpo"]["status"] == "UNKNOWN"
    assert out["rpo"]["error"] == "AwsUnavailable: timeout"


# -- harden -------------------------------------------------------------------------------------------------


def test_harden_resizes_the_writer_and_adds_readers(estate: Estate) -> None:
    estate.replicate()
    _switch(estate, "graceful")
    skipped = estate.call("resize_writer", region=DR, dr_cluster=WEST, instance_class=None)
    assert skipped["done"]
    resized = estate.poll("resize_writer", "check_writer_resized",
                          {"region": DR, "dr_cluster": WEST, "instance_class": "db.r6g.2xlarge"})
    assert resized["writer"]["instance_class"] == "db.r6g.2xlarge"
    assert estate.call("add_readers", region=DR, dr_cluster=WEST, count=0, instance_class=None)["done"]
    readers = estate.poll("add_readers", "check_readers", {"region": DR, "dr_cluster": WEST, "count": 2,
                                                           "instance_class": None},
                          {"region": DR, "dr_cluster": WEST, "count": 2})
    names = sorted(i["identifier"] for i in readers["cluster"]["instances"])
    assert names == [f"{WEST}-1", f"{WEST}-2", f"{WEST}-3"]
    assert {i["instance_class"] for i in readers["cluster"]["instances"]} == {"db.r6g.2xlarge"}


# -- drills -------------------------------------------------------------------------------------------------


def test_clone_name_leaves_room_for_the_instance() -> None:
    name = aurora.clone_name("x" * 63, "d0abcdef1")
    assert len(name + aurora.INSTANCE_SUFFIX) == 63 and name.endswith("-drill-d0abcdef1")


def test_a_drill_clones_the_secondary_and_the_teardown_removes_the_copy(estate: Estate) -> None:
    estate.replicate()
    drill_id = drill.drill_id("arn:aws:states:us-west-2:123456789012:execution:pilotlight-orders-drill:x",
                              clock.now())
    params = {"region": DR, "plan": "orders", "drill_id": drill_id, "dr_cluster": WEST, "instance_class": None,
              "subnet_group": "orders-db-dr", "security_groups": ["sg-0d1a2b3c4d5e6f751"]}
    out = estate.poll("create_drill_clone", "check_drill_clone", params)
    name = aurora.clone_name(WEST, drill_id)
    assert out["clone"] == name and out["method"] == "clone"
    copy = estate.cluster(name)
    assert "GlobalClusterIdentifier" not in copy and copy["Status"] == "available"
    assert [m["IsClusterWriter"] for m in copy["DBClusterMembers"]] == [True]
    assert drill.tag_value(copy["TagList"], drill.DRILL_TAG) == drill_id
    assert list(estate.members()) == [EAST, WEST]  # the live secondary is untouched, the copy is no member
    # A protected name is never touched.
    kept = estate.call("remove_drill_clusters", region=DR, plan="orders", drills={"ids": [drill_id]},
                       protected=[name], dr_clusters=[WEST])
    assert kept["done"] and kept["deleted"] == []
    removed = estate.poll("remove_drill_clusters", "check_drill_clusters_removed",
                          {"region": DR, "plan": "orders", "drills": {"ids": [drill_id]}, "protected": [WEST],
                           "dr_clusters": [WEST]})
    assert [(d["kind"], d["id"]) for d in removed["deleted"]] == [("db_instance", f"{name}-1"), ("db_cluster", name)]
    assert removed["left"] == 0 and removed["remaining"] == []
    assert estate.cluster()["Status"] == "available"
    with pytest.raises(estate.rds.exceptions.DBClusterNotFoundFault):
        estate.cluster(name)


@pytest.mark.parametrize("estate", [{"headless": True}], indirect=True)
def test_a_headless_secondary_is_copied_through_a_snapshot(estate: Estate) -> None:
    estate.replicate()
    drill_id = drill.drill_id("arn:aws:states:us-west-2:123456789012:execution:pilotlight-orders-drill:y",
                              clock.now())
    params = {"region": DR, "plan": "orders", "drill_id": drill_id, "dr_cluster": WEST,
              "instance_class": "db.r6g.large", "subnet_group": "orders-db-dr",
              "security_groups": ["sg-0d1a2b3c4d5e6f751"]}
    out = estate.poll("create_drill_clone", "check_drill_clone", params)
    assert out["method"] == "snapshot"
    name = aurora.clone_name(WEST, drill_id)
    assert "GlobalClusterIdentifier" not in estate.cluster(name)
    removed = estate.poll("remove_drill_clusters", "check_drill_clusters_removed",
                          {"region": DR, "plan": "orders", "drills": {"ids": [drill_id]}, "dr_clusters": [WEST]})
    assert sorted(d["kind"] for d in removed["deleted"]) == ["db_cluster", "db_cluster_snapshot", "db_instance"]


def test_the_policy_keeps_the_primary_cluster_out_of_reach(estate: Estate) -> None:
    estate.replicate()
    # Hardening is granted on the DR cluster and its instances only: the primary's writer is not its to resize.
    with pytest.raises(RuntimeError, match="AccessDenied: .*rds:DescribeDBInstances on resource: "
                                           f"arn:aws:rds:{PRIMARY}:123456789012:db:{EAST}-1"):
        estate.call("resize_writer", region=PRIMARY, dr_cluster=EAST, instance_class="db.r6g.xlarge")
    assert estate.sb.iam.denials[-1]["action"] == "rds:DescribeDBInstances"
    statements = plan_iam.statements(plan_iam.registry_for("aurora"), estate.plan, account="123456789012",
                                     extra={"topic": []})
    region = {"aws:RequestedRegion": DR}
    allowed = estate.sb.iam.allowed
    gc = "arn:aws:rds::123456789012:global-cluster:"
    assert allowed(statements, "rds:FailoverGlobalCluster", gc + GLOBAL, region)
    assert not allowed(statements, "rds:FailoverGlobalCluster", gc + "other", region)
    assert not allowed(statements, "rds:ModifyDBInstance", f"arn:aws:rds:{PRIMARY}:123456789012:db:{EAST}-1",
                       {"aws:RequestedRegion": PRIMARY})
    assert not allowed(statements, "rds:RemoveFromGlobalCluster", f"arn:aws:rds:{PRIMARY}:123456789012:cluster:{EAST}",
                       {"aws:RequestedRegion": PRIMARY})
    assert not allowed(statements, "rds:DeleteDBCluster", f"arn:aws:rds:{DR}:123456789012:cluster:{WEST}", region)
    assert allowed(statements, "rds:DeleteDBCluster", f"arn:aws:rds:{DR}:123456789012:cluster:{WEST}-drill-d0abcdef1",
                   region)
    # No mutating action on "*".
    unscoped = [a for s in statements if s["Resource"] == ["*"] for a in s["Action"]]
    assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in unscoped), unscoped
    estate.sb.iam.denials.clear()


@pytest.mark.parametrize("estate", [{"write_forwarding": True}], indirect=True)
def test_the_aurora_adapter_answers_match_botocore_output_shapes(estate: Estate) -> None:
    from tests.test_adapter_shapes import Recorder, shape_problems

    checked = {"rds": ["ModifyDBCluster", "DescribeDBClusters", "RestoreDBClusterToPointInTime"]}
    recorder = Recorder(checked)
    boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-aurora-shape-recorder")
    try:
        estate.replicate()
        estate.poll("create_drill_clone", "check_drill_clone", {
            "region": DR, "plan": "orders", "drill_id": "d0abcdef1", "dr_cluster": WEST, "instance_class": None,
            "subnet_group": "orders-db-dr", "security_groups": ["sg-0d1a2b3c4d5e6f751"]})
    finally:
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-aurora-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    assert not [(s, op) for s, ops in checked.items() for op in ops if (s, op) not in names]
    problems = [f"{s}.{op}: {p}" for s, op, model, parsed in recorder.seen if (p := shape_problems(model, parsed))]
    assert not problems, "\n".join(problems[:10])
