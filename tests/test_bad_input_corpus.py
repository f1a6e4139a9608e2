"""The bad-input corpus (tests/bad_input_corpus.py), run as a user runs pilotlight: a subprocess per case, asserting
the exit code, the message and that no traceback is printed. Events go to the handlers, as Lambda delivers them."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambdas import errors
from tests.bad_input_corpus import BAD_COMMANDS, BAD_EVENTS, BAD_PLANS
from tests.conftest import REFERENCE, ROOT

# Every command that reads a plan file, and whether it takes --json.
PLAN_COMMANDS = [
    (["validate", "{plan}"], True),
    (["render", "{plan}", "-o", "{dir}/asl"], False),
    (["failover", "{plan}"], True),
    (["failover", "{plan}", "--sandbox"], True),
    (["readiness", "{plan}"], True),
    (["replicate", "{plan}", "--sandbox"], True),
    (["drill", "{plan}"], True),
    (["drill-cleanup", "{plan}"], True),
    (["approve", "{plan}"], True),
    (["abort", "{plan}"], True),
    (["status", "{plan}"], True),
    (["history", "{plan}"], True),
    (["report", "latest", "{plan}"], False),
    (["synth", "{plan}", "-o", "{dir}/cdk.out"], False),
    (["deploy", "{plan}"], False),
    (["console", "{plan}"], False),
    (["demo", "--plan", "{plan}"], True),
]


def _env(tmp_path: Path) -> dict[str, str]:
    """No AWS credentials anywhere: a command that needs AWS stops at once, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def pilotlight(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)


def _fill(args: list[str], plan: Path | str, tmp_path: Path) -> list[str]:
    return [a.format(plan=plan, dir=tmp_path) for a in args]


def test_the_corpus_has_what_the_issue_asks_for():
    assert len(BAD_PLANS) >= 60
    assert len(BAD_EVENTS) + len(BAD_COMMANDS) >= 20
    assert len({c.id for c in BAD_PLANS}) == len(BAD_PLANS)


@pytest.mark.parametrize("case", BAD_PLANS, ids=lambda c: c.id)
def test_bad_plan_exits_3_naming_what_is_wrong(tmp_path, case):
    path = tmp_path / "plan.yaml"
    path.write_bytes(case.content)
    run = pilotlight(["validate", str(path)], tmp_path)
    assert run.returncode == 3, (run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if case.fragment in line]
    assert lines and all(line.startswith(f"{path}: ") for line in lines), run.stderr
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize(("args", "takes_json"), PLAN_COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, list)
                         else None)
def test_every_command_that_reads_a_plan_refuses_a_bad_one_alike(tmp_path, args, takes_json):
    path = tmp_path / "plan.yaml"
    path.write_bytes(next(c for c in BAD_PLANS if c.id == "duplicate_top_level_key").content)
    run = pilotlight(_fill(args, path, tmp_path), tmp_path)
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert f"{path}: (yaml): line 4, column 1: duplicate key 'name'" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    if takes_json:
        run = pilotlight([*_fill(args, path, tmp_path), "--json"], tmp_path)
        doc = json.loads(run.stdout)  # exactly one document
        assert run.returncode == 3
        assert doc["error"]["code"] == "InvalidPlan" and doc["error"]["exit"] == 3
        assert doc["problems"] == ["(yaml): line 4, column 1: duplicate key 'name' (first given at line 3; a plan "
                                   "names each field once)"]


@pytest.mark.parametrize("case", BAD_COMMANDS, ids=lambda c: c.id)
def test_bad_command_line_names_the_mistake(tmp_path, case):
    run = pilotlight(_fill(case.args, REFERENCE, tmp_path), tmp_path)
    assert run.returncode == case.exit_code, (run.stdout, run.stderr)
    assert case.fragment in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


@pytest.mark.parametrize("case", BAD_EVENTS, ids=lambda c: c.id)
def test_bad_event_raises_a_named_error_before_acting(monkeypatch, case):
    for name in [k for k in os.environ if k.startswith("PILOTLIGHT_")]:
        monkeypatch.delenv(name)
    for name, value in (case.env or {}).items():
        monkeypatch.setenv(name, value)
    # Nothing may reach AWS: the event is refused before the action runs. The module is imported before the
    # patches: imported under them, its `from lambdas.common import client` would keep the failing stand-in
    # after this test (the patch's undo restores what it found), and a later test's workflow would call it.
    module = importlib.import_module(f"lambdas.{case.module}")
    monkeypatch.setattr("lambdas.common.client", lambda *a, **k: pytest.fail("the step called AWS"))
    monkeypatch.setattr(module, "client", lambda *a, **k: pytest.fail("the step called AWS"), raising=False)
    handler = module.handler
    with pytest.raises(errors.PilotLightError) as raised:
        handler(case.event, None)
    assert type(raised.value).__name__ == case.error
    assert case.error in errors.ALL_ERROR_NAMES  # a name the workflows' Retry/Catch can refer to
    assert case.fragment in str(raised.value)
