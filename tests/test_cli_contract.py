"""What every command promises: one JSON document with --json (an error document when it fails), the
documented exit codes, help that says what the workflow does, and an answer in well under a second."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli import cli
from tests.conftest import REFERENCE, ROOT

# Every command that takes --json and needs AWS without --sandbox.
AWS_JSON_COMMANDS = [
    ["failover", str(REFERENCE)],
    ["readiness", str(REFERENCE)],
    ["replicate", str(REFERENCE)],
    ["drill", str(REFERENCE)],
    ["drill-cleanup", str(REFERENCE)],
    ["approve", str(REFERENCE)],
    ["abort", str(REFERENCE)],
    ["status", str(REFERENCE)],
    ["history", str(REFERENCE)],
]


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _one_error_document(result, exit_code: int) -> dict:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)  # raises unless stdout is exactly one JSON document
    assert set(doc["error"]) == {"code", "message", "exit"} and doc["error"]["exit"] == exit_code
    assert doc["error"]["message"]
    return doc


@pytest.mark.parametrize("args", AWS_JSON_COMMANDS, ids=lambda a: a[0])
def test_json_command_without_credentials_prints_an_error_document(no_credentials, args):
    result = CliRunner().invoke(cli, [*args, "--json"])
    doc = _one_error_document(result, 4)
    assert doc["error"]["code"] == "PreconditionNotMet" and "credentials" in doc["error"]["message"]
    assert "credentials" in result.stderr  # the person at the terminal reads it too


@pytest.mark.parametrize("args", AWS_JSON_COMMANDS, ids=lambda a: a[0])
def test_json_command_with_a_usage_error_prints_an_error_document(args):
    result = CliRunner().invoke(cli, [*args, "--json", "--no-such-option"])
    doc = _one_error_document(result, 2)
    assert doc["error"]["code"] == "NoSuchOption" and "--no-such-option" in doc["error"]["message"]


def test_json_invalid_plan_error_document_lists_the_problems(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("~\n")
    for args in (["validate", str(bad)], ["demo", "--plan", str(bad)]):
        doc = _one_error_document(CliRunner().invoke(cli, [*args, "--json"]), 3)
        assert doc["error"]["code"] == "InvalidPlan"
        assert doc["problems"] == ["(plan): the document is null (~), expected a mapping of plan fields"]


def test_an_aws_error_no_command_handled_is_reported_not_a_traceback(monkeypatch):
    from botocore.exceptions import ClientError

    class Refusing:
        class exceptions:  # noqa: N801 - the client's attribute
            class StateMachineDoesNotExist(Exception):
                pass

        def list_executions(self, **_):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad ARN"}}, "ListExecutions")

    monkeypatch.setattr("commands.operate.aws_machine", lambda *a: (Refusing(), "arn:machine"))
    result = CliRunner().invoke(cli, ["status", str(REFERENCE), "--json"])
    doc = _one_error_document(result, 1)
    assert "ValidationException: bad ARN (ListExecutions)" in doc["error"]["message"]
    plain = CliRunner().invoke(cli, ["status", str(REFERENCE)])
    assert plain.exit_code == 1 and "ValidationException" in plain.stderr and plain.exception is not None
    assert isinstance(plain.exception, SystemExit)


def test_a_command_without_json_keeps_click_usage_errors():
    result = CliRunner().invoke(cli, ["render", str(REFERENCE), "--json"])
    assert result.exit_code == 2 and result.stdout == "" and "No such option" in result.stderr


# -- help says what the code does -----------------------------------------------------------------------


def _top_level_order(definition: dict) -> list[tuple[str, str]]:
    """Every transition (from step, to step) between the top-level states, by their step labels; the way out
    to the failure record (which ends the run) is not a phase."""
    from workflows.asl import RECORD_STEP

    states = definition["States"]
    edges = []
    for state in states.values():
        targets = [state.get("Next"), state.get("Default"), *(c["Next"] for c in state.get("Choices", []))]
        targets += [c["Next"] for c in state.get("Catch", [])]
        edges += [(state["Comment"], states[t]["Comment"]) for t in targets if t]
    return [(a, b) for a, b in edges if RECORD_STEP not in (a, b)]


def _nested_labels(state: dict) -> set[str]:
    inner = [b["States"] for b in state.get("Branches", [])]
    if "ItemProcessor" in state:
        inner.append(state["ItemProcessor"]["States"])
    labels: set[str] = set()
    for states in inner:
        for child in states.values():
            labels.add(child["Comment"])
            labels |= _nested_labels(child)
    return labels


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_failover_runs_its_phases_in_the_order_the_help_gives(example):
    from workflows import failover
    from workflows.asl import RECORD_STEP
    from workflows.failover_steps import PHASES, phase_of
    from workflows.plan import load_plan

    definition = failover.build(load_plan(example))
    for before, after in _top_level_order(definition):
        assert phase_of(after) >= phase_of(before), f"{after!r} runs after {before!r}"
    for state in definition["States"].values():
        if state["Comment"] == RECORD_STEP:
            continue
        phase = PHASES[phase_of(state["Comment"])]
        assert _nested_labels(state) <= set(phase.within), (state["Comment"], _nested_labels(state))


def test_failover_help_lists_the_phases_in_order():
    from workflows.failover_steps import PHASES

    text = CliRunner().invoke(cli, ["failover", "--help"], terminal_width=400).stdout
    places = [text.index(f"{i}. {phase.title}: ") for i, phase in enumerate(PHASES, start=1)]
    assert places == sorted(places)
    assert text.index("Repoint DNS: ") < text.index("Harden: ")  # service first, hardening after traffic moved


# -- start-up --------------------------------------------------------------------------------------------

HEAVY = ("boto3", "botocore.session", "moto", "aws_cdk", "matplotlib", "jinja2", "starlette", "pydantic")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('imported:', *(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.rsplit("imported:", 1)[1].split()


def test_help_imports_no_aws_sdk_nor_plan_model():
    assert _imported_after("import cli") == []


def test_validate_reads_the_plan_without_the_aws_sdk():
    code = f"import cli\ncli.cli.main(['validate', {str(REFERENCE)!r}], standalone_mode=False)"
    assert _imported_after(code) == ["pydantic"]


def test_the_report_directory_default_is_the_reports_one():
    import reports
    from commands.common import DEFAULT_REPORT_DIR

    assert str(reports.DEFAULT_REPORT_DIR) == DEFAULT_REPORT_DIR


def test_known_regions_are_botocores():
    import boto3

    from workflows.plan_types import known_regions

    session = boto3.session.Session()
    expected = {r for partition in ("aws", "aws-us-gov", "aws-cn") for service in ("ec2", "rds", "states")
                for r in session.get_available_regions(service, partition_name=partition)}
    assert expected <= known_regions() and "us-east-1" in known_regions()
