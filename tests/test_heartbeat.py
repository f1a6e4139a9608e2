"""Replicate writes a heartbeat row to each primary database; the failover measures the data-loss window from the
newest heartbeat the promoted replica holds (or from the application column the plan names instead)."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

from sandbox import Sandbox, clock, postgres, seed
from tests.conftest import REFERENCE, pg_connect, run_workflow
from workflows.plan import parse_plan, read_yaml

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")

HEARTBEAT = "heartbeat shop-db (us-east-1)"


def _beats(sb: Sandbox, region: str, identifier: str) -> list[dt.datetime]:
    rows = sb.databases.query(region, identifier, "SELECT beat_at FROM pilotlight_heartbeat ORDER BY beat_at")
    return [r[0] if r[0].tzinfo else r[0].replace(tzinfo=dt.UTC) for r in rows]


def _record(output: dict, status: str, resource: str) -> dict:
    return next(r for r in output[status] if r["resource"] == resource)


def test_each_replicate_run_writes_a_heartbeat_row_to_the_primary(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan)
        first = sb.build_pilot_light(reference_plan)
        clock.sleep(600)
        second = sb.run_replicate(reference_plan).output
        beats = _beats(sb, reference_plan.primary_region, "shop-db")
    records = [_record(first, "verified", HEARTBEAT), _record(second, "verified", HEARTBEAT)]
    assert [dt.datetime.fromisoformat(r["at"]) for r in records] == beats
    assert beats[1] - beats[0] >= dt.timedelta(seconds=600)
    assert first["ok"] and second["ok"]


def test_the_failover_measures_the_data_loss_window_from_replicates_heartbeat(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan)
        sb.build_pilot_light(reference_plan)
        (beat,) = _beats(sb, reference_plan.primary_region, "shop-db")
        sb.simulate_disaster(reference_plan)
        result = run_workflow(sb, reference_plan, "failover")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    (check,) = result.output["restored"]["data"]
    (db,) = result.output["restore"]["databases"]
    promoted = dt.datetime.fromisoformat(db["rpo"]["at"].replace("Z", "+00:00"))
    assert dt.datetime.fromisoformat(check["heartbeat"]["newest"]) == beat
    assert check["heartbeat"]["data_loss_seconds"] == round((promoted - beat).total_seconds(), 3)


def test_a_plan_naming_an_application_column_gets_no_heartbeat_row_and_the_window_comes_from_it():
    data = read_yaml(REFERENCE.read_text(encoding="utf-8"), str(REFERENCE))
    data["databases"][0]["heartbeat_column"] = "orders.updated_at"
    plan = parse_plan(data)
    with Sandbox() as sb:
        sb.seed(plan)
        written = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        conn = pg_connect(sb, plan, plan.primary_region, "shop-db")  # the application's own write
        conn.run("CREATE TABLE orders (id int, updated_at timestamptz)")
        conn.run("INSERT INTO orders VALUES (1, :at)", at=written)
        conn.close()
        summary = sb.build_pilot_light(plan)
        no_table = sb.databases.query(plan.primary_region, "shop-db",
                                      "SELECT to_regclass('public.pilotlight_heartbeat') IS NULL")
        sb.simulate_disaster(plan)
        result = run_workflow(sb, plan, "failover")
    assert no_table == [[True]]
    assert HEARTBEAT not in json.dumps(summary)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    (check,) = result.output["restored"]["data"]
    assert dt.datetime.fromisoformat(check["heartbeat"]["newest"]) == written


def test_a_heartbeat_the_primary_refuses_is_a_failed_record_and_the_replicas_still_run(reference_plan):
    wrong = "not-the-master-password-7f3a"
    with Sandbox() as sb:
        sb.seed(reference_plan)
        boto3.client("secretsmanager", region_name=reference_plan.primary_region).put_secret_value(
            SecretId=reference_plan.rds_databases[0].credentials_secret_name,
            SecretString=json.dumps({"username": "app", "password": wrong}))
        sb.deploy(reference_plan)
        result = sb.run_replicate(reference_plan)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    failed = _record(result.output, "failed", HEARTBEAT)
    assert failed["error"] == "HeartbeatNotWritten"
    assert "cannot connect" in failed["cause"] and "password authentication failed" in failed["cause"]
    assert _record(result.output, "created", f"replica shop-db-dr ({reference_plan.dr_region})")
    text = json.dumps(result.output) + json.dumps(result.events, default=str)
    assert wrong not in text and seed.DB_PASSWORD not in text
