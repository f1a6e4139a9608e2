"""`pilotlight readiness --sandbox --json` through click: one JSON document, exit codes 0 and 4.

Kept apart from tests/test_readiness.py: the command opens its own sandbox, which must not nest
inside that module's shared one.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from sandbox import adapters_quotas
from tests.conftest import REFERENCE


def test_readiness_sandbox_json_exits_0_when_every_check_is_ready() -> None:
    result = CliRunner().invoke(cli, ["readiness", str(REFERENCE), "--sandbox", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one document; progress went to stderr
    assert doc["status"] == "READY" and doc["score"] == 1.0 and doc["mode"] == "sandbox"
    assert len(doc["checks"]) == doc["total"] == 23  # with the report and canary functions' permissions
    assert "Readiness checks" in result.stderr


def test_readiness_sandbox_exits_4_and_names_the_check_when_one_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    key = adapters_quotas.EC2_ON_DEMAND_STANDARD_VCPUS
    monkeypatch.setitem(adapters_quotas.KNOWN, key, (*adapters_quotas.KNOWN[key][:3], 2.0))
    result = CliRunner().invoke(cli, ["readiness", str(REFERENCE), "--sandbox", "--json"])
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "NOT_READY"
    assert [(c["check"], c["status"]) for c in doc["checks"] if c["status"] != "READY"] == [
        ("ec2-capacity", "NOT_READY")]
    human = CliRunner().invoke(cli, ["readiness", str(REFERENCE), "--sandbox"])
    assert human.exit_code == 4
    assert any(line.startswith("ec2-capacity ") and " us-west-2 " in line for line in human.output.splitlines())
    assert "plan shop: NOT_READY, score 22/23" in human.output


def test_readiness_help_lists_the_checks_and_exit_codes() -> None:
    out = " ".join(CliRunner().invoke(cli, ["readiness", "--help"]).output.split())
    assert "READY / NOT_READY / UNKNOWN" in out and "Exit 0 when every check is READY, 4" in out
