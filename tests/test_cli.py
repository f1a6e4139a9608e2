"""The failover and demo commands, end to end through click."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli
from tests.conftest import REFERENCE


def test_failover_sandbox_json_is_one_document_with_the_modeled_rto():
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox", "--json", "--scale", "600"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document; progress went to stderr
    assert doc["status"] == "SUCCEEDED"
    assert doc["mode"] == "sandbox"
    assert doc["rto"]["modeled"] is True
    assert doc["rto"]["objective_minutes"] == 15
    assert doc["rto"]["minutes"] >= 41  # 5 + 15 + 20 + 1 min at p50, hardening before DNS
    assert doc["rto"]["met"] is False
    assert [s["step"] for s in doc["timeline"]][:3] == ["Load plan", "Guard rails", "Databases"]
    assert doc["output"]["guard"]["primary_health"] == "in_alarm"
    assert doc["output"]["databases"][0]["db"]["instance_class"] == "db.r6g.large"
    assert "Promote DR replica" in result.stderr


def test_failover_human_output_shows_progress_timeline_and_rto():
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox", "--scale", "600"])
    assert result.exit_code == 0, result.output
    assert "▶ Promote DR replica" in result.output
    assert "✓ Repoint DNS" in result.output
    assert "Timeline (modeled time)" in result.output
    assert "Modeled RTO:" in result.output


def test_demo_runs_the_reference_failover():
    result = CliRunner().invoke(cli, ["demo", "--scale", "600"])
    assert result.exit_code == 0, result.output
    assert "Timeline (modeled time)" in result.output
    assert "Modeled RTO:" in result.output


def test_failover_on_invalid_plan_exits_3(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(REFERENCE.read_text().replace("dr_region: us-west-2", "dr_region: us-east-1"))
    result = CliRunner().invoke(cli, ["failover", str(bad), "--sandbox"])
    assert result.exit_code == 3
    assert "dr_region: must differ from primary_region" in result.output


def test_failover_without_credentials_is_a_clear_precondition_error(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE)])
    assert result.exit_code == 4
    assert "no usable AWS credentials" in result.output
    assert "Traceback" not in result.output


def test_failed_failover_exits_1_naming_the_step_and_cause(monkeypatch):
    from sandbox import core

    original = core.Sandbox.seed
    monkeypatch.setattr(core.Sandbox, "seed", lambda self, plan, pilot_light=True: original(self, plan, pilot_light=False))
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox", "--scale", "600"])
    assert result.exit_code == 1
    assert "at step 'Promote DR replica'" in result.output
    assert "ResourceNotFound: DB instance shop-db-dr does not exist in us-west-2" in result.output
