"""The failover verifies the service as users see it: a real SQL write in the promoted PostgreSQL database, a
real HTTP GET of the DR environment and of the plan's DNS name, and RPO measured from heartbeat rows."""

from __future__ import annotations

import json

import boto3
import pg8000.native
import pytest

from sandbox import Sandbox, postgres, seed
from tests.conftest import outage, run_workflow
from workflows.plan import Plan

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")


def _connect(sb: Sandbox, plan: Plan, region: str, identifier: str) -> pg8000.native.Connection:
    """As the application does: the endpoint RDS answers, the credentials from the plan's secret."""
    db = boto3.client("rds", region_name=region).describe_db_instances(DBInstanceIdentifier=identifier)[
        "DBInstances"][0]
    secret = json.loads(boto3.client("secretsmanager", region_name=region).get_secret_value(
        SecretId=plan.rds_databases[0].credentials_secret_name)["SecretString"])
    return pg8000.native.Connection(secret["username"], password=secret["password"], host=db["Endpoint"]["Address"],
                                    port=db["Endpoint"]["Port"], database="postgres")


@pytest.fixture(scope="module")
def failed_over(reference_plan):
    with Sandbox() as sb:
        outage(sb, reference_plan)
        result = run_workflow(sb, reference_plan, "failover")
        yield sb, reference_plan, result


def test_the_canary_row_is_in_the_promoted_database(failed_over):
    sb, plan, result = failed_over
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    (check,) = result.output["restored"]["data"]
    assert check["ok"] and check["resource"] == "shop-db-dr"
    rows = sb.databases.query(plan.dr_region, "shop-db-dr", "SELECT id, execution FROM pilotlight_canary")
    assert rows == [[check["row"], result.execution_arn]]
    # Written in the DR database, not copied from the primary: the primary has no canary table.
    assert sb.databases.query(plan.primary_region, "shop-db",
                              "SELECT to_regclass('public.pilotlight_canary') IS NULL") == [[True]]


def test_the_environment_and_the_dns_name_were_requested_over_http(failed_over):
    sb, plan, result = failed_over
    log = sb.web.log_of(plan.dr_region, "shop-dr")
    hosts = [entry["host"] for entry in log]
    assert "shop-dr.us-west-2.elasticbeanstalk.com" in hosts
    assert "app.shop.example.com" in hosts
    assert all(entry["status"] == 200 and entry["path"] == "/" for entry in log)
    probes = [c for c in result.output["restored"]["checks"] if c["check"] == "http probe"]
    assert [p["resource"] for p in probes] == ["http://shop-dr.us-west-2.elasticbeanstalk.com/",
                                               "http://app.shop.example.com/"]
    assert all(p["ok"] and p["status"] == 200 for p in probes)


def test_the_master_password_stays_out_of_the_failover_output(failed_over):
    sb, plan, result = failed_over
    text = json.dumps(result.output) + json.dumps(result.events, default=str)
    assert seed.DB_PASSWORD not in text
