"""Functional tests of the global data tiers: Aurora Global Database and DynamoDB global tables.

Each runs the real state machines in the sandbox (replicate, readiness, drill and its teardown,
failover) on the example plans and judges the end state through the AWS APIs: which region writes,
what became of the old primary, the RPO the run reports, and that a drill leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from commands.drill import drill_input, sandbox_drill, teardown_summary
from sandbox import Sandbox
from tests.conftest import ROOT, run_workflow
from workflows import drill_audit
from workflows.plan import Plan, load_plan

FITNESS = ROOT / "examples" / "fitness-global.yaml"
ECOMMERCE = ROOT / "examples" / "ecommerce.yaml"


def _global(plan: Plan, index: int = 0) -> dict[str, Any]:
    db = plan.aurora_databases[index]
    rds = boto3.client("rds", region_name=plan.dr_region)
    (gc,) = rds.describe_global_clusters(GlobalClusterIdentifier=db.global_cluster_identifier)["GlobalClusters"]
    return gc


def _cluster(plan: Plan, region: str, identifier: str) -> dict[str, Any]:
    rds = boto3.client("rds", region_name=region)
    return rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]


def _members(plan: Plan) -> dict[str, dict[str, Any]]:
    """Cluster identifier -> its global cluster membership."""
    return {m["DBClusterArn"].rsplit(":", 1)[-1]: m for m in _global(plan)["GlobalClusterMembers"]}


def _instances(region: str, cluster: str) -> list[dict[str, Any]]:
    rds = boto3.client("rds", region_name=region)
    return [{k: d.get(k) for k in ("DBInstanceIdentifier", "DBInstanceClass", "DBInstanceStatus")}
            for d in rds.describe_db_instances()["DBInstances"] if d.get("DBClusterIdentifier") == cluster]


def _readiness(sb: Sandbox, plan: Plan) -> dict[str, Any]:
    result = run_workflow(sb, plan, "readiness", {"source": "test"})
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return result.output


def _not_ready(output: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["check"], c["resource"], c["status"], c["reason"]) for c in output["checks"] if c["status"] != "READY"]


def _drill_leaves_nothing(sb: Sandbox, plan: Plan) -> Any:
    result, drill, teardown = sandbox_drill(sb, plan, drill_input("test", keep=False, harden=True, force=False), None)
    assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
    assert teardown is not None and teardown.status == "SUCCEEDED", (teardown and teardown.cause)
    summary = teardown_summary(teardown, drill_audit.leftovers(plan, drill))
    assert summary["left"] == 0, summary["leftovers"]
    return result, drill, summary


def _data_tier(path: Any) -> Plan:
    """The example's data tier and DNS only (its compute is rehearsed in tests/test_architectures.py)."""
    return load_plan(path).model_copy(update={"compute": [], "topology": "pilot-light"})


@pytest.fixture(scope="module")
def fitness() -> Plan:
    return _data_tier(FITNESS)


@pytest.fixture(scope="module")
def ecommerce() -> Plan:
    return _data_tier(ECOMMERCE)


def test_aurora_global_replicate_ready_drill_then_graceful_switchover(fitness: Plan) -> None:
    plan, db = fitness, fitness.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(plan)
        replicated = sb.build_pilot_light(plan)
        assert replicated["ok"], replicated
        # The DR cluster is a connected secondary with a writer-capable instance.
        members = _members(plan)
        assert members[db.identifier]["IsWriter"] and not members[db.dr_cluster_identifier]["IsWriter"]
        assert members[db.dr_cluster_identifier]["SynchronizationStatus"] == "connected"
        assert [i["DBInstanceClass"] for i in _instances(plan.dr_region, db.dr_cluster_identifier)] == [
            db.dr_instance_class]

        ready = _readiness(sb, plan)
        assert _not_ready(ready) == [] and ready["status"] == "READY"
        assert {"global-membership", "global-lag", "dr-writer"} <= {c["check"] for c in ready["checks"]}

        before = (_members(plan), _instances(plan.dr_region, db.dr_cluster_identifier))
        drilled, drill, summary = _drill_leaves_nothing(sb, plan)
        clone = drilled.output["restore"]["aurora"][0]
        assert clone["source"] == db.dr_cluster_identifier and clone["identifier"].endswith(f"-drill-{drill}")
        assert {d["kind"] for d in summary["deleted"]} >= {"db_cluster"}
        # The live secondary and the global cluster are as they were.
        assert (_members(plan), _instances(plan.dr_region, db.dr_cluster_identifier)) == before

        # The primary region answers: the failover chooses a managed switchover, RPO 0.
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        moved = result.output["restore"]["aurora"][0]
        assert moved["mode"]["mode"] == "graceful" and moved["method"] == "switchover"
        assert moved["rpo"]["lag_seconds"] == 0
        members = _members(plan)
        assert members[db.dr_cluster_identifier]["IsWriter"]
        # The old primary is demoted to a secondary of the global cluster, still replicating.
        assert not members[db.identifier]["IsWriter"]
        assert members[db.identifier]["SynchronizationStatus"] == "connected"
        # Hardened: the writer on the failover class, and the reader the plan asks for.
        classes = sorted(i["DBInstanceClass"] for i in _instances(plan.dr_region, db.dr_cluster_identifier))
        assert len(classes) == 1 + db.failover_readers and db.failover_instance_class in classes
        assert result.restored_at is not None


def test_aurora_ungraceful_failover_when_the_primary_region_does_not_answer(fitness: Plan) -> None:
    plan, db = fitness, fitness.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        with sb.region_unreachable(plan.primary_region, "rds"):
            result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        moved = result.output["restore"]["aurora"][0]
        assert moved["mode"]["mode"] == "ungraceful" and not moved["mode"]["primary_answered"]
        assert moved["method"] == "failover"
        # The RPO accepted is the lag read just before (the sandbox's steady 80 ms).
        assert moved["rpo"]["lag_seconds"] == pytest.approx(0.08, abs=0.05)
        members = _members(plan)
        assert members[db.dr_cluster_identifier]["IsWriter"] and not members[db.identifier]["IsWriter"]


def test_aurora_forced_ungraceful_detach_makes_the_dr_cluster_standalone(fitness: Plan) -> None:
    db = fitness.aurora_databases[0].model_copy(update={"ungraceful": "detach"})
    plan = fitness.model_copy(update={"databases": [db]})
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test", "force": True,
                                                     "mode": "ungraceful"})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        moved = result.output["restore"]["aurora"][0]
        assert (moved["mode"]["mode"], moved["method"]) == ("ungraceful", "detach")
        assert moved["rpo"]["lag_seconds"] is not None
        # Detached: the DR cluster is standalone and writable; the old primary stays the global writer.
        assert db.dr_cluster_identifier not in _members(plan)
        assert not _cluster(plan, plan.dr_region, db.dr_cluster_identifier).get("GlobalClusterIdentifier")
        assert _members(plan)[db.identifier]["IsWriter"]


def test_ecommerce_tables_and_aurora_fail_over_and_drill_leaves_nothing(ecommerce: Plan) -> None:
    plan = ecommerce
    parameter = plan.tables[1].write_region_setting.ssm_parameter
    with Sandbox() as sb:
        sb.seed(plan)
        replicated = sb.build_pilot_light(plan)
        assert replicated["ok"], replicated
        for table in plan.tables:
            dr = boto3.client("dynamodb", region_name=plan.dr_region).describe_table(TableName=table.name)["Table"]
            assert dr["TableStatus"] == "ACTIVE"
        ready = _readiness(sb, plan)
        assert _not_ready(ready) == []
        assert {"table-replica", "table-replication-latency", "table-capacity", "write-forwarding"} <= {
            c["check"] for c in ready["checks"]}

        drilled, drill, summary = _drill_leaves_nothing(sb, plan)
        assert [t["table"] for t in drilled.output["restore"]["tables"]] == [t.name for t in plan.tables]

        ssm = boto3.client("ssm", region_name=plan.dr_region)
        assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == plan.primary_region
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        # Orders now write in the DR region; every table took a write and a read there.
        assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == plan.dr_region
        tables = {t["table"]: t for t in result.output["restore"]["tables"]}
        assert set(tables) == {t.name for t in plan.tables}
        assert all(t["verified"]["read_back"] and t["verified"]["deleted"] for t in tables.values())
        assert all(t["rpo"]["lag_seconds"] is not None for t in tables.values())
        # The catalogue's writer is the DR cluster.
        assert _members(plan)[plan.aurora_databases[0].dr_cluster_identifier]["IsWriter"]
        # No marker item of the failover or the drill is left in any table.
        for table in plan.tables:
            items = boto3.client("dynamodb", region_name=plan.dr_region).scan(TableName=table.name)["Items"]
            assert not [i for i in items if any("pilotlight" in str(v) for v in i.values())]


def test_readiness_names_what_is_wrong_with_the_data_tiers(ecommerce: Plan) -> None:
    plan = ecommerce
    db = plan.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        rds = boto3.client("rds", region_name=plan.dr_region)
        dr_arn = _cluster(plan, plan.dr_region, db.dr_cluster_identifier)["DBClusterArn"]
        # The secondary leaves the global cluster; one table loses its DR replica.
        rds.remove_from_global_cluster(GlobalClusterIdentifier=db.global_cluster_identifier, DbClusterIdentifier=dr_arn)
        boto3.client("dynamodb", region_name=plan.primary_region).update_table(
            TableName=plan.tables[0].name, ReplicaUpdates=[{"Delete": {"RegionName": plan.dr_region}}])
        problems = {(check, resource): reason for check, resource, status, reason in _not_ready(_readiness(sb, plan))
                    if status == "NOT_READY"}
        assert ("global-membership", db.identifier) in problems, problems
        assert db.dr_cluster_identifier in problems[("global-membership", db.identifier)]
        assert ("table-replica", plan.tables[0].name) in problems, problems


def test_failover_cli_mode_moves_the_aurora_writer_as_asked(fitness: Plan, tmp_path: Any) -> None:
    import json

    import yaml
    from click.testing import CliRunner

    from cli import cli
    from tests.conftest import REFERENCE

    path = tmp_path / "fitness-data.yaml"
    path.write_text(yaml.safe_dump(fitness.model_dump(mode="json")))
    result = CliRunner().invoke(cli, ["failover", str(path), "--sandbox", "--mode", "ungraceful", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (moved,) = doc["output"]["restore"]["aurora"]
    assert (moved["mode"]["requested"], moved["mode"]["mode"], moved["method"]) == ("ungraceful", "ungraceful",
                                                                                    "failover")
    assert doc["rpo"]["per_database"] == {fitness.aurora_databases[0].dr_cluster_identifier:
                                                 moved["rpo"]["lag_seconds"]}
    # A plan without an Aurora Global Database has no writer to move: --mode is a usage error (exit 2).
    refused = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox", "--mode", "graceful"])
    assert refused.exit_code == 2 and "has none" in refused.output
