"""Failback run for real in the sandbox: refused when there is nothing to undo, resumed after a failure mid-way,
and `pilotlight failback --sandbox --json`. The end state of one failback: tests/test_failback_end_state.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from commands.failback import SANDBOX_ROWS, SANDBOX_TABLE
from lambdas.failback import stale_name
from sandbox import Sandbox, postgres
from tests.conftest import REFERENCE, run_workflow
from tests.test_failback_end_state import APPROVED, _count, _db, _failed_over
from workflows.plan import load_plan

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")

def test_a_failback_with_no_failover_to_undo_is_refused_and_changes_nothing() -> None:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        result = run_workflow(sb, plan, "failback", APPROVED)
        assert result.status == "FAILED" and result.error == "FailbackRefused"
        assert "no failover of the plan has succeeded" in result.cause
        replica = _db(plan.dr_region, plan.rds_databases[0].dr_replica_identifier)
        assert replica is not None and replica.get("ReadReplicaSourceDBInstanceIdentifier")
        assert _db(plan.primary_region, plan.rds_databases[0].identifier) is not None


def test_a_failback_stopped_midway_converges_when_run_again() -> None:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        _failed_over(sb, plan)
        # After the switch back: terminating the DR environment is refused once, so the run ends in the re-arm.
        sb.inject("elasticbeanstalk:TerminateEnvironment:AccessDenied:1")
        first = run_workflow(sb, plan, "failback", APPROVED, timeout=600)
        assert first.status == "FAILED" and first.failed_step == "Terminate DR environment", first.cause
        primary = _db(plan.primary_region, plan.rds_databases[0].identifier)
        assert primary is not None and not primary.get("ReadReplicaSourceDBInstanceIdentifier")
        again = run_workflow(sb, plan, "failback", APPROVED, timeout=600)
        assert again.status == "SUCCEEDED", (again.error, again.failed_state, again.cause)
        assert again.output["switch"].get("resumed") is True  # no second approval, marker or promotion
        db = plan.rds_databases[0]
        # One stale copy, the promoted primary untouched, the rows written in DR still there.
        stamp = again.output["pre"]["stamp"]
        assert _db(plan.primary_region, stale_name(db.identifier, stamp)) is not None
        assert _count(sb, plan, plan.primary_region, db.identifier, SANDBOX_TABLE) == SANDBOX_ROWS
        replica = _db(plan.dr_region, db.dr_replica_identifier)
        assert replica is not None and replica["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{db.identifier}")
        # A third run: the live site is the primary now.
        third = run_workflow(sb, plan, "failback", APPROVED)
        assert third.error == "FailbackRefused" and "already returned to the primary" in third.cause


def test_cli_sandbox_failback_prints_one_json_document() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "failback", str(REFERENCE), "--sandbox", "--json"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["failover"]["status"] == "SUCCEEDED"
    assert doc["downtime"]["seconds"] > 0 and doc["rpo"]["seconds"] is not None
    assert doc["data_check"]["ok"] and doc["data_check"]["databases"][0]["marker_found"]
    assert {b["source"] for b in doc["data_check"]["buckets"]} == {"shop-assets-use1", "shop-uploads-use1"}
