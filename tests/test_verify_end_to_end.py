"""The failover verifies the service as users see it: a real SQL write in the promoted PostgreSQL database, a
real HTTP GET of the DR environment and of the plan's DNS name, and RPO measured from heartbeat rows."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest

from sandbox import Sandbox, postgres, seed
from tests.conftest import outage, pg_connect, run_workflow

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")


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
    # The application reads it at the DR endpoint RDS answers, with the plan's credentials.
    conn = pg_connect(sb, plan, plan.dr_region, "shop-db-dr")
    try:
        assert conn.run("SELECT id FROM pilotlight_canary") == [[check["row"]]]
    finally:
        conn.close()
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


def test_a_server_left_by_a_process_that_ended_is_reaped_and_live_ones_are_not():
    stale, live, new = postgres.Server(), postgres.Server(), postgres.Server()
    try:
        stale.start()
        live.start()
        # The process that started `stale` is gone (killed: no atexit ran): a PID that has ended.
        ended = subprocess.Popen(["true"])
        ended.wait()
        (stale.dir / postgres.OWNER).write_text(f"{ended.pid}", encoding="utf-8")
        stale_dir, postmaster = stale.dir, int((stale.dir / "data" / "postmaster.pid").read_text().split()[0])
        new.start()
        assert not stale_dir.exists()
        with contextlib.suppress(FileNotFoundError):  # gone, or a zombie its parent has not reaped yet
            assert Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        # The server whose owner (this process) is alive still answers.
        conn = live.admin()
        assert conn.run("SELECT 1") == [[1]]
        conn.close()
        assert live.dir.exists() and new.dir.exists()
    finally:
        for server in (stale, live, new):
            server.stop()


def test_the_master_password_stays_out_of_the_failover_output(failed_over):
    sb, plan, result = failed_over
    text = json.dumps(result.output) + json.dumps(result.events, default=str)
    assert seed.DB_PASSWORD not in text
