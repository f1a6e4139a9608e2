"""`pilotlight synth` and `pilotlight deploy` as the CLI will call them (click's CliRunner)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REFERENCE

from infra import commands
from workflows.plan import PlanError, load_plan

BAD_PLAN = """\
name: Shop
primary_region: us-east-1
dr_region: us-east-1
objectives: {rto_minutes: 15, rpo_minutes: 5}
databases:
  - identifier: shop-db
    dr_replica_identifier: shop-db-dr
    replica_instance_class: db.t3.medium
    failover_instance_class: large
"""


@pytest.fixture
def bad_plan(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_PLAN)
    return path


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def test_synth_on_a_bad_plan_prints_the_validate_lines_and_exits_3(bad_plan, tmp_path):
    with pytest.raises(PlanError) as info:
        load_plan(bad_plan)
    result = _runner().invoke(commands.synth, [str(bad_plan), "-o", str(tmp_path / "out")])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [f"{bad_plan}: {line}" for line in info.value.problems]
    assert any(line.startswith("databases[0].failover_instance_class:") for line in info.value.problems)
    assert not (tmp_path / "out").exists()


def test_synth_writes_the_templates(monkeypatch, synthesized, tmp_path):
    from infra import app

    calls = []

    def fake(plan, out_dir):
        calls.append((plan.name, Path(out_dir)))
        return synthesized

    monkeypatch.setattr(app, "synthesize", fake)
    result = _runner().invoke(commands.synth, [str(REFERENCE), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert calls == [("shop", tmp_path / "out")]
    for name in synthesized.templates:
        assert name in result.stdout


def test_synth_fails_when_cdk_nag_has_findings(monkeypatch, synthesized):
    from infra import app

    broken = app.Synthesized(
        out_dir=synthesized.out_dir,
        templates=synthesized.templates,
        errors=[("pilotlight-shop-dr", "/Dr/X", "AwsSolutions-SNS3: no SSL")],
    )
    monkeypatch.setattr(app, "synthesize", lambda plan, out: broken)
    result = _runner().invoke(commands.synth, [str(REFERENCE)])
    assert result.exit_code == 1
    assert "AwsSolutions-SNS3" in result.stderr


def test_deploy_without_the_cdk_cli_is_a_precondition_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(commands.shutil, "which", lambda name: None)
    result = _runner().invoke(commands.deploy, [str(REFERENCE)])
    assert result.exit_code == 4
    assert "npm install -g aws-cdk" in result.stderr


def test_deploy_without_credentials_stops_before_running_cdk(monkeypatch, tmp_path):
    monkeypatch.setattr(commands.shutil, "which", lambda name: "/nonexistent/cdk")
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")

    def no_synth(*a, **k):
        raise AssertionError("must not synthesize without credentials")

    monkeypatch.setattr(commands, "_synthesize", no_synth)
    result = _runner().invoke(commands.deploy, [str(REFERENCE)])
    assert result.exit_code == 4
    assert "no usable AWS credentials" in result.stderr


def test_deploy_runs_cdk_on_the_synthesized_assembly(monkeypatch, synthesized, tmp_path):
    log = tmp_path / "args"
    cdk = tmp_path / "cdk"
    cdk.write_text(f'#!/bin/sh\necho "$@" > {log}\n')
    cdk.chmod(cdk.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(commands, "caller_identity", lambda profile, region: {"Account": "123456789012", "Arn": "me"})
    monkeypatch.setattr(commands, "_synthesize", lambda plan, out: synthesized)
    result = _runner().invoke(commands.deploy, [str(REFERENCE), "--profile", "dr", "--require-approval", "never"])
    assert result.exit_code == 0, result.output
    args = log.read_text().split()
    assert args[:2] == ["deploy", "--app"] and args[2].endswith("cdk.out")
    assert args[3:] == ["--all", "--require-approval", "never", "--profile", "dr"]
