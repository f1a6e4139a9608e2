"""`pilotlight drill` and `pilotlight drill-cleanup` end to end through click, in fresh sandboxes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from tests.conftest import REFERENCE, ROOT

SECOND = ROOT / "examples" / "second.yaml"


@pytest.mark.parametrize("plan", [REFERENCE, SECOND], ids=["reference", "second"])
def test_drill_sandbox_json_is_one_document_with_rto_rpo_timeline_and_teardown(plan, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["drill", str(plan), "--sandbox", "--json", "--no-harden",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document; progress went to stderr
    assert doc["kind"] == "drill" and doc["mode"] == "sandbox" and doc["status"] == "SUCCEEDED"
    assert doc["options"] == {"keep": False, "harden": False, "force": False}
    assert doc["rto"]["seconds"] > 0 and doc["rto"]["objective_seconds"] > 0 and "met" in doc["rto"]
    assert 0 < doc["rto"]["less_copy_seconds"] < doc["rto"]["seconds"]
    assert doc["rpo"]["seconds"] is not None and doc["rpo"]["objective_seconds"] > 0
    steps = [s["step"] for s in doc["timeline"]]
    assert steps[:2] == ["Load plan", "Prepare drill"] and "Service restored" in steps and "Harden" not in steps
    drill = doc["drill_id"]
    assert all(name.endswith(f"-drill-{drill}") for name in doc["copies"]["databases"] + doc["copies"]["environments"])
    teardown = doc["teardown"]
    assert teardown["status"] == "SUCCEEDED" and teardown["kept"] is False
    assert teardown["left"] == 0 and teardown["leftovers"] == []
    assert {d["kind"] for d in teardown["deleted"]} >= {"db_instance", "environment"}
    assert all(d["drill"] == drill for d in teardown["deleted"])
    assert "Copy DR replica" in result.stderr


def test_drill_cleanup_sandbox_removes_a_kept_drill() -> None:
    result = CliRunner().invoke(cli, ["drill-cleanup", str(REFERENCE), "--sandbox", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["kept"] is False
    assert {d["kind"] for d in doc["deleted"]} >= {"db_instance", "environment", "dns_record"}
    assert all(d["drill"] == doc["kept_drill"] for d in doc["deleted"])
    assert all(part["left"] == 0 for part in doc["left"])


def test_drill_cleanup_names_a_bad_drill_id() -> None:
    result = CliRunner().invoke(cli, ["drill-cleanup", str(REFERENCE), "--drill", "prod-db"])
    assert result.exit_code == 2
    assert "--drill" in result.output and "is not a drill id" in result.output
