"""The failover's canary write and read in each new Aurora writer through the RDS Data API.

lambdas/canary.py ``verify_aurora`` (a check per DR cluster: ok, skipped where the HTTP endpoint is off, or failing
with why), the sandbox's Data API (sandbox/adapters_aurora_data.py: answers in botocore's shape, rows in a real
PostgreSQL database per cluster) and the failover of examples/fitness-global.yaml, whose verification now writes
through the Data API before service is restored.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox, postgres
from sandbox.seed import DB_PASSWORD
from tests.conftest import ROOT, run_workflow
from tests.test_adapter_shapes import shape_problems
from workflows import failover
from workflows.plan import Plan, load_plan

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL server binaries are not installed (/usr/lib/postgresql)")

FITNESS = ROOT / "examples" / "fitness-global.yaml"
REGION = "eu-west-1"
CHECK = "canary write (Data API)"


@pytest.fixture(scope="module")
def fitness() -> Plan:
    """The example's data tier and DNS only (its compute is rehearsed in tests/test_architectures.py)."""
    return load_plan(FITNESS).model_copy(update={"compute": [], "topology": "pilot-light"})


def _cluster(name: str = "orders", engine: str = "aurora-postgresql", **extra: Any) -> dict[str, Any]:
    rds = boto3.client("rds", region_name=REGION)
    doc = rds.create_db_cluster(DBClusterIdentifier=name, Engine=engine, MasterUsername="app",
                                MasterUserPassword=DB_PASSWORD, **extra)["DBCluster"]
    rds.create_db_instance(DBInstanceIdentifier=f"{name}-1", DBClusterIdentifier=name, Engine=engine,
                           DBInstanceClass="db.r6g.large")
    return doc


def _secret(name: str = "pilotlight/orders/master", password: str = DB_PASSWORD) -> str:
    sm = boto3.client("secretsmanager", region_name=REGION)
    return sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": password}))["ARN"]


def _checks(result: Any) -> list[dict[str, Any]]:
    return result.output["restored"]["aurora_data"]


# -- the sandbox's Data API ---------------------------------------------------------------------------------------


def test_the_data_api_needs_the_http_endpoint_and_answers_in_botocores_shape() -> None:
    model = boto3.session.Session().client("rds-data", region_name=REGION).meta.service_model
    execute = model.operation_model("ExecuteStatement")
    with Sandbox(latency="none") as sb:
        arn = _cluster()["DBClusterArn"]
        secret = _secret()
        rds = boto3.client("rds", region_name=REGION)
        data = boto3.client("rds-data", region_name=REGION)
        call = {"resourceArn": arn, "secretArn": secret, "database": "postgres"}
        assert rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]["HttpEndpointEnabled"] is False
        with pytest.raises(ClientError) as off:
            data.execute_statement(**call, sql="SELECT 1")
        assert off.value.response["Error"]["Code"] == "HttpEndpointNotEnabledException"

        assert rds.enable_http_endpoint(ResourceArn=arn)["HttpEndpointEnabled"] is True
        assert rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]["HttpEndpointEnabled"] is True
        answers = [
            data.execute_statement(**call, sql="CREATE TABLE t (id text PRIMARY KEY, n bigint, x float8, b boolean, "
                                              "at timestamptz, note text)"),
            data.execute_statement(**call, sql="INSERT INTO t VALUES (:id, :n, :x, :b, :at, :note)", parameters=[
                {"name": "id", "value": {"stringValue": "r1"}}, {"name": "n", "value": {"longValue": 42}},
                {"name": "x", "value": {"doubleValue": 1.5}}, {"name": "b", "value": {"booleanValue": True}},
                {"name": "at", "value": {"stringValue": "2026-01-02 03:04:05.123456"}, "typeHint": "TIMESTAMP"},
                {"name": "note", "value": {"isNull": True}}]),
            data.execute_statement(**call, sql="SELECT id, n, x, b, at, note FROM t", includeResultMetadata=True),
        ]
        for answer in answers:
            body = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
            assert shape_problems(execute, body) == ""
        assert answers[1]["numberOfRecordsUpdated"] == 1
        assert answers[2]["records"] == [[{"stringValue": "r1"}, {"longValue": 42}, {"doubleValue": 1.5},
                                          {"booleanValue": True}, {"stringValue": "2026-01-02 03:04:05.123456"},
                                          {"isNull": True}]]
        assert [c["name"] for c in answers[2]["columnMetadata"]] == ["id", "n", "x", "b", "at", "note"]
        # The rows are in the cluster's own PostgreSQL database.
        assert sb.aurora_data.query(REGION, "orders", "SELECT id, n FROM t") == [["r1", 42]]

        with pytest.raises(ClientError) as bad_sql:
            data.execute_statement(**call, sql="SELECT * FROM missing_table")
        assert bad_sql.value.response["Error"]["Code"] == "DatabaseErrorException"
        assert "missing_table" in bad_sql.value.response["Error"]["Message"]
        wrong = _secret("wrong", password="not-the-password")
        with pytest.raises(ClientError) as refused:
            data.execute_statement(**{**call, "secretArn": wrong}, sql="SELECT 1")
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert "not-the-password" not in str(refused.value)

        assert rds.disable_http_endpoint(ResourceArn=arn)["HttpEndpointEnabled"] is False
        with pytest.raises(ClientError) as again:
            data.execute_statement(**call, sql="SELECT 1")
        assert again.value.response["Error"]["Code"] == "HttpEndpointNotEnabledException"
        with pytest.raises(ClientError) as unknown:
            rds.enable_http_endpoint(ResourceArn=arn.replace("orders", "nothing"))
        assert unknown.value.response["Error"]["Code"] == "DBClusterNotFoundFault"


# -- the Lambda action --------------------------------------------------------------------------------------------


def test_verify_aurora_writes_and_reads_skips_without_the_endpoint_and_never_returns_the_secret() -> None:
    from lambdas import canary

    with Sandbox(latency="none") as sb:
        _cluster("orders", EnableHttpEndpoint=True)
        _cluster("archive")
        _secret()
        _secret("pilotlight/archive/master")
        items = [{"dr_cluster": "orders", "engine": "aurora-postgresql",
                  "credentials_secret": "pilotlight/orders/master"},
                 {"dr_cluster": "archive", "engine": "aurora-postgresql",
                  "credentials_secret": "pilotlight/archive/master"}]
        out = canary.verify_aurora(REGION, items, execution="exec-1")
        assert out["done"] and out["attempt"] == 0
        wrote, skipped = out["checks"]
        assert (wrote["check"], wrote["resource"], wrote["ok"], wrote.get("skipped")) == (CHECK, "orders", True, None)
        assert sb.aurora_data.query(REGION, "orders", "SELECT id, execution FROM pilotlight_canary") == [
            [wrote["row"], "exec-1"]]
        assert skipped["ok"] and skipped["skipped"] and "HTTP endpoint" in skipped["detail"]
        assert DB_PASSWORD not in json.dumps(out)

        # A secret that is not there: a failing check naming it (the poll asks again), not a failed step.
        missing = canary.verify_aurora(REGION, [{**items[0], "credentials_secret": "nope"}], attempt=3)
        assert not missing["done"] and missing["attempt"] == 4
        assert "credentials secret nope" in missing["checks"][0]["detail"]
        # Another engine's canary is spelt for it; an unknown one is skipped with why.
        other = canary.verify_aurora(REGION, [{**items[0], "engine": "aurora-other"}])
        assert other["checks"][0]["skipped"] and "aurora-other" in other["checks"][0]["detail"]


def test_the_failover_verifies_aurora_with_the_data_api_before_service_is_restored(fitness: Plan) -> None:
    states = failover.build(fitness)["States"]
    assert states["VerifyService"]["Parameters"]["action"] == "verify_aurora"
    assert states["AuroraDataVerified"]["Next"] == "VerifyProbes"
    assert states["VerifyProbesDone?"]["Choices"][0]["Next"] == failover.RESTORED_STATE
    assert "aurora_data.$" in states[failover.RESTORED_STATE]["Parameters"]
    payload = states["VerifyService"]["Parameters"]
    assert payload["clusters"] == [{"dr_cluster": "fitness-apse1", "engine": "aurora-postgresql",
                                    "credentials_secret": "pilotlight/fitness-use1/master"}]


def test_the_plans_credentials_secret_is_validated_and_named() -> None:
    raw = load_plan(FITNESS).model_dump(mode="json", exclude_none=True)
    raw["databases"][0]["credentials_secret"] = "app/fitness"
    assert Plan.model_validate(raw).aurora_databases[0].credentials_secret_name == "app/fitness"
    raw["databases"][0]["credentials_secret"] = "bad secret!"
    with pytest.raises(ValueError, match="credentials_secret"):
        Plan.model_validate(raw)


# -- the failover, end to end -------------------------------------------------------------------------------------


def test_a_drill_writes_in_its_clone_then_the_failover_in_the_new_writer(fitness: Plan) -> None:
    """One sandbox: a drill (kept) writes its canary through the Data API in its clone, whose HTTP endpoint the
    drill enabled as the live DR cluster's is, never in the live DR cluster; then the failover writes in the new
    DR writer."""
    from commands.drill import drill_input, sandbox_drill

    db = fitness.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(fitness)
        assert sb.build_pilot_light(fitness)["ok"]
        drilled, _, _ = sandbox_drill(sb, fitness, drill_input("test", keep=True, harden=False, force=False), None)
        assert drilled.status == "SUCCEEDED", (drilled.failed_step, drilled.error, drilled.cause)
        (check,) = _checks(drilled)
        clone = check["resource"]
        assert clone.startswith(f"{db.dr_cluster_identifier}-drill-") and check["ok"] and not check.get("skipped")
        rds = boto3.client("rds", region_name=fitness.dr_region)
        assert rds.describe_db_clusters(DBClusterIdentifier=clone)["DBClusters"][0]["HttpEndpointEnabled"] is True
        assert sb.aurora_data.query(fitness.dr_region, clone, "SELECT id FROM pilotlight_canary") == [[check["row"]]]
        assert sb.aurora_data.query(fitness.dr_region, db.dr_cluster_identifier, "SELECT 1") == [], \
            "the drill wrote nothing in the live DR cluster"
        assert DB_PASSWORD not in json.dumps(drilled.output)

        result = run_workflow(sb, fitness, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        (check,) = _checks(result)
        assert (check["check"], check["resource"], check["ok"], check.get("skipped")) == (
            CHECK, db.dr_cluster_identifier, True, None)
        rows = sb.aurora_data.query(fitness.dr_region, db.dr_cluster_identifier,
                                    "SELECT id, execution FROM pilotlight_canary")
        assert [r[0] for r in rows] == [check["row"]] and ":execution:" in rows[0][1]
        assert DB_PASSWORD not in json.dumps(result.output)
        assert result.restored_at is not None


def test_a_dr_cluster_without_the_http_endpoint_is_reported_skipped(fitness: Plan) -> None:
    db = fitness.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(fitness)
        assert sb.build_pilot_light(fitness)["ok"]
        rds = boto3.client("rds", region_name=fitness.dr_region)
        arn = rds.describe_db_clusters(DBClusterIdentifier=db.dr_cluster_identifier)["DBClusters"][0]["DBClusterArn"]
        rds.disable_http_endpoint(ResourceArn=arn)
        result = run_workflow(sb, fitness, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        (check,) = _checks(result)
        assert check["ok"] and check["skipped"] and "HTTP endpoint" in check["detail"]


def test_a_refused_data_api_call_ends_the_failover_not_verified(fitness: Plan) -> None:
    db = fitness.aurora_databases[0]
    with Sandbox() as sb:
        sb.seed(fitness)
        assert sb.build_pilot_light(fitness)["ok"]
        sb.inject("rds-data:ExecuteStatement:AccessDenied:x1000")
        result = run_workflow(sb, fitness, "failover", {"source": "test", "approved_by": "test", "force": True})
        assert result.status == "FAILED"
        assert result.error == "ServiceNotVerified", (result.error, result.cause)
        assert f"{CHECK} {db.dr_cluster_identifier}: refused: AccessDenied" in result.cause
        assert "Service restored" not in {s.name for s in result.steps}
