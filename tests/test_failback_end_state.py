"""Failback run for real in the sandbox: failover, writes on the DR site (real rows in PostgreSQL, S3 objects), the
primary region back, failback; the end state asserted through AWS APIs and the databases themselves."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from commands.failback import SANDBOX_OBJECTS, SANDBOX_ROWS, SANDBOX_TABLE, figures, write_during_outage
from lambdas.failback import final_snapshot_name, stale_name
from sandbox import Sandbox, postgres
from tests.conftest import REFERENCE, outage, pg_connect, run_workflow
from tests.test_readiness import readiness
from workflows.executions import answer_approval, follow, pending_approval_token
from workflows.plan import Plan, load_plan

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")

APPROVED = {"source": "test", "approved_by": "test"}


def _failed_over(sb: Sandbox, plan: Plan) -> dict[str, Any]:
    outage(sb, plan)
    over = run_workflow(sb, plan, "failover", timeout=300)
    assert over.status == "SUCCEEDED", (over.error, over.cause)
    written = write_during_outage(sb, plan)
    sb.recover(plan)
    return written


def _db(region: str, identifier: str) -> dict[str, Any] | None:
    found = boto3.client("rds", region_name=region).describe_db_instances(
        Filters=[{"Name": "db-instance-id", "Values": [identifier]}])["DBInstances"]
    return found[0] if found else None


def _count(sb: Sandbox, plan: Plan, region: str, identifier: str, table: str) -> int:
    conn = pg_connect(sb, plan, region, identifier)
    try:
        return int(conn.run(f"SELECT count(*) FROM {table}")[0][0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def failed_back() -> Any:
    """One sandbox: the reference plan failed over, written to on the DR site, failed back (shared by the asserts)."""
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        written = _failed_over(sb, plan)
        # Started without its approval: it re-protects, then waits; the approval is answered as
        # `pilotlight approve PLAN --workflow failback` answers it.
        arn = sb.start(plan, "failback", {"source": "test"})
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        deadline = time.monotonic() + 300
        while pending_approval_token(sfn, arn) is None:
            assert time.monotonic() < deadline and sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
            time.sleep(0.05)
        reverse = _db(plan.primary_region, plan.rds_databases[0].identifier)
        assert reverse is not None and reverse["ReadReplicaSourceDBInstanceIdentifier"]  # nothing switched yet
        assert answer_approval(sfn, sb.state_machine_arn(plan, "failback"), approve=True, who="oncall") == arn
        result = follow(sfn, arn, poll_seconds=0.05, timeout_seconds=600)
        yield sb, plan, result, written


def test_writes_made_in_the_dr_region_are_in_the_primary_afterwards(failed_back: Any) -> None:
    sb, plan, result, written = failed_back
    assert result.status == "SUCCEEDED", (result.error, result.failed_state, result.cause)
    db = plan.rds_databases[0]
    assert written["rows"] == {db.dr_replica_identifier: SANDBOX_ROWS}
    # Read in PostgreSQL behind the primary's endpoint: the rows written while the DR site served.
    assert _count(sb, plan, plan.primary_region, db.identifier, SANDBOX_TABLE) == SANDBOX_ROWS
    s3 = boto3.client("s3", region_name=plan.primary_region)
    for bucket in plan.buckets:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket.source, Prefix="during-outage/").get("Contents", [])]
        assert len(keys) == SANDBOX_OBJECTS, bucket.source
    figs = figures(plan, result.output)
    assert figs["data_check"]["ok"]
    (check,) = figs["data_check"]["databases"]
    assert check["marker_found"] and {"table": SANDBOX_TABLE, "before": SANDBOX_ROWS, "after": SANDBOX_ROWS} in \
        check["tables"]
    assert figs["downtime"]["seconds"] > 0 and figs["rpo"]["seconds"] == 2.0 and figs["rpo"]["met"]


def test_dns_points_at_the_primary_and_the_primary_serves(failed_back: Any) -> None:
    sb, plan, result, _ = failed_back
    r53 = boto3.client("route53", region_name="us-east-1")
    records = r53.list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)["ResourceRecordSets"]
    (record,) = [r for r in records if r["Name"].rstrip(".") == plan.dns.record_name]
    assert [v["Value"] for v in record["ResourceRecords"]] == [plan.dns_primary_target]
    primary = _db(plan.primary_region, plan.rds_databases[0].identifier)
    assert primary is not None and not primary.get("ReadReplicaSourceDBInstanceIdentifier")
    # The canary write of the verification went to the promoted primary.
    assert _count(sb, plan, plan.primary_region, plan.rds_databases[0].identifier, "pilotlight_canary") >= 3


def test_the_dr_site_is_back_to_a_pilot_light(failed_back: Any) -> None:
    sb, plan, result, _ = failed_back
    db = plan.rds_databases[0]
    replica = _db(plan.dr_region, db.dr_replica_identifier)
    assert replica is not None and replica["DBInstanceClass"] == db.replica_instance_class
    source = replica["ReadReplicaSourceDBInstanceIdentifier"]
    assert source.split(":")[3] == plan.primary_region and source.endswith(f":db:{db.identifier}")
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    envs = eb.describe_environments(EnvironmentNames=[plan.environments[0].dr_environment_name])["Environments"]
    assert all(e["Status"] == "Terminated" for e in envs)
    # The promoted DR database is gone, with a final snapshot.
    stamp = result.output["pre"]["stamp"]
    assert _db(plan.dr_region, f"{db.dr_replica_identifier}-retired-{stamp}") is None
    snaps = boto3.client("rds", region_name=plan.dr_region).describe_db_snapshots(
        DBSnapshotIdentifier=final_snapshot_name(db.dr_replica_identifier, stamp))["DBSnapshots"]
    assert len(snaps) == 1
    out = readiness(sb, plan)
    assert out["status"] == "READY", [c for c in out["checks"] if c["status"] != "READY"]


def test_the_stale_primary_is_kept_and_recoverable(failed_back: Any) -> None:
    sb, plan, result, _ = failed_back
    db = plan.rds_databases[0]
    kept = _db(plan.primary_region, stale_name(db.identifier, result.output["pre"]["stamp"]))
    assert kept is not None and kept["DBInstanceStatus"] == "available"
    # It still holds what it had when the region failed: the heartbeat replicate wrote before the outage.
    assert _count(sb, plan, plan.primary_region, kept["DBInstanceIdentifier"], "pilotlight_heartbeat") >= 1




def test_the_failback_report_has_its_downtime_rpo_and_data_check(failed_back: Any) -> None:
    import reports

    sb, plan, result, _ = failed_back
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    doc = reports.build(sfn, result.execution_arn, plan)
    assert doc["kind"] == "failback" and doc["status"] == "SUCCEEDED"
    assert doc["trigger"]["approved_by"] == "oncall"
    switch = doc["failback"]
    assert switch["downtime_seconds"] == figures(plan, result.output)["downtime"]["seconds"] > 0
    assert switch["data_check_ok"] and not switch["resumed"]
    (db,) = switch["databases"]
    assert {"table": SANDBOX_TABLE, "before": SANDBOX_ROWS, "after": SANDBOX_ROWS} in db["tables"]
    assert doc["rpo"]["seconds"] == 2.0 and doc["rpo"]["per_database"] == {db["identifier"]: 2.0}
    markdown, html = reports.to_markdown(doc), reports.to_html(doc)
    assert "## Switch back" in markdown and f"{db['identifier']}.{SANDBOX_TABLE} rows | 25 | 25 | ok" in markdown
    assert "<h2>Switch back</h2>" in html
    # The canary write of the verification, in the primary database the failback promoted.
    (canary,) = doc["canary_writes"]
    assert (canary["database"], canary["method"], canary["ok"], canary["skipped"]) == (
        plan.rds_databases[0].identifier, "SQL", True, False)
    assert canary["row"] == result.output["restored"]["data"][0]["row"]
    assert "## Canary writes" in markdown and "<h2>Canary writes</h2>" in html
