"""What verification refuses and measures: a replica that takes no write, a Green environment whose URL answers
500, and the data-loss window measured from heartbeat rows written on the primary through an outage."""

from __future__ import annotations

import datetime as dt

import boto3
import pg8000.native
import pytest

from sandbox import Sandbox, clock, postgres
from tests.conftest import outage, pg_connect, run_workflow

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")


def test_a_replica_refuses_writes_until_promoted(reference_plan):
    with Sandbox() as sb:
        outage(sb, reference_plan)
        conn = pg_connect(sb, reference_plan, reference_plan.dr_region, "shop-db-dr")
        with pytest.raises(pg8000.native.DatabaseError, match="read-only transaction"):
            conn.run("CREATE TABLE t (x int)")
        conn.close()


def test_a_green_environment_whose_url_answers_500_is_not_restored(reference_plan):
    with Sandbox() as sb:
        outage(sb, reference_plan)
        sb.web.answer_with(reference_plan.dr_region, "shop-dr", 500)
        result = run_workflow(sb, reference_plan, "failover")
        eb = boto3.client("elasticbeanstalk", region_name=reference_plan.dr_region)
        (env,) = eb.describe_environments(EnvironmentNames=["shop-dr"])["Environments"]
    assert (env["Status"], env["Health"]) == ("Ready", "Green")
    assert result.status == "FAILED"
    assert result.error == "ServiceNotVerified"
    assert "http probe http://shop-dr.us-west-2.elasticbeanstalk.com/: answered 500, expected 200" in result.cause
    assert "Service restored" not in {s.name for s in result.steps}


def test_the_data_loss_window_from_heartbeats_matches_the_modeled_lag(reference_plan):
    lag, interval = 90.0, 20.0
    with Sandbox() as sb:
        sb.seed(reference_plan)
        sb.build_pilot_light(reference_plan)
        sb.latency.replica_lag_overrides["shop-db-dr"] = lag
        conn = pg_connect(sb, reference_plan, reference_plan.primary_region, "shop-db")
        conn.run("CREATE TABLE IF NOT EXISTS pilotlight_heartbeat (beat_at timestamptz NOT NULL)")
        conn.close()
        beats: list[dt.datetime] = []
        writing = [True]

        def beat() -> None:
            if not writing[0]:
                return
            # The application keeps writing on the primary, every `interval` modeled seconds, outage or not.
            c = pg_connect(sb, reference_plan, reference_plan.primary_region, "shop-db")
            at = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
            c.run("INSERT INTO pilotlight_heartbeat (beat_at) VALUES (:at)", at=at)
            c.close()
            beats.append(at)
            clock.call_later(interval, beat)

        beat()
        clock.sleep(5 * interval)
        sb.simulate_disaster(reference_plan)
        result = run_workflow(sb, reference_plan, "failover")
        writing[0] = False
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    (check,) = result.output["restored"]["data"]
    window = check["heartbeat"]["data_loss_seconds"]
    assert lag <= window <= lag + interval, check["heartbeat"]
    (db,) = result.output["restore"]["databases"]
    assert db["rpo"]["lag_seconds"] == lag


