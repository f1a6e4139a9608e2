"""The failover and demo commands, end to end through click."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import cli
from reports.schema import Rpo
from tests.conftest import REFERENCE


def test_failover_sandbox_json_is_one_document_with_the_modeled_rto():
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document; progress went to stderr
    assert doc["status"] == "SUCCEEDED"
    assert doc["mode"] == "sandbox"
    assert doc["rto"]["modeled"] is True
    assert doc["rto"]["objective_minutes"] == 15
    # Restored (verified) before hardening: promote 5 min and launch 5 min in parallel, DNS 1 min at p50.
    assert 6 <= doc["rto"]["minutes"] < doc["rto"]["hardened_minutes"]
    assert doc["rto"]["met"] is True
    # RTO and RPO are objects of their own; the RPO has the shape of a drill's and a report's.
    assert "rpo" not in doc["rto"]
    assert doc["rpo"]["objective_seconds"] == 5 * 60 and doc["rpo"]["seconds"] is not None
    assert Rpo.model_validate(doc["rpo"]).met is True
    assert doc["pilot_light"]["status"] == "SUCCEEDED" and doc["pilot_light"]["counts"]["created"] > 0
    assert [s["step"] for s in doc["timeline"]][:3] == ["Load plan", "Guard rails", "Restore"]
    assert doc["output"]["guard"]["primary_health"] == "in_alarm"
    assert doc["output"]["hardened"][0]["db"]["instance_class"] == "db.r6g.large"
    assert "Promote DR replica" in result.stderr


def test_failover_human_output_shows_progress_timeline_and_rto():
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox"])
    assert result.exit_code == 0, result.output
    assert "▶ Promote DR replica" in result.output
    assert "✓ Repoint DNS" in result.output
    assert "Timeline (modeled time)" in result.output
    assert "Modeled RTO:" in result.output
    assert "to verified service" in result.output and "s of writes at risk (shop-db-dr " in result.output


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

    original = core.Sandbox.simulate_disaster

    def disaster_and_a_refused_launch(self, plan):
        self.faults.inject("elastic-beanstalk", "CreateEnvironment", "InsufficientPrivilegesException",
                           "cannot launch instances (injected)", status=403, times=None)
        return original(self, plan)

    monkeypatch.setattr(core.Sandbox, "simulate_disaster", disaster_and_a_refused_launch)
    result = CliRunner().invoke(cli, ["failover", str(REFERENCE), "--sandbox"])
    assert result.exit_code == 1
    assert "at step 'Launch DR environment'" in result.output
    assert "InvalidRequest: launch shop-dr from pilotlight-shop-shop-prod: InsufficientPrivilegesException" in (
        result.output)


def test_replicate_sandbox_reports_what_it_built():
    result = CliRunner().invoke(cli, ["replicate", str(REFERENCE), "--sandbox"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "saved configuration shop/pilotlight-shop-shop-prod" in result.output
    assert "plan shop:" in result.output


def test_replicate_sandbox_json_is_one_document():
    result = CliRunner().invoke(cli, ["replicate", str(REFERENCE), "--sandbox", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["output"]["ok"] is True
    assert doc["output"]["counts"]["created"] == 8 and doc["output"]["failed"] == []
