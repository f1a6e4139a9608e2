"""The rendered ASL: committed copy is current, lints clean, parses in moto's interpreter, names real errors."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from statelint.config import Config
from statelint.linter import Linter

import lambdas
from lambdas.errors import ALL_ERROR_NAMES
from sandbox import Sandbox
from tests.conftest import REFERENCE, ROOT
from workflows import asl, render
from workflows.plan import load_plan

COMMITTED = ROOT / "asl" / "reference"
# Every example plan's workflows are linted and parsed; the ones with their rendering committed (asl/<plan
# file's stem>/, the reference plan's in asl/reference/) must match it.
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
COMMITTED_EXAMPLES = {p: ROOT / "asl" / ("reference" if p == REFERENCE else p.stem) for p in EXAMPLES
                      if (ROOT / "asl" / ("reference" if p == REFERENCE else p.stem)).is_dir()}
# Every lambdas/<service>.py with a registry is a Lambda function a Task may call.
REGISTRIES = {
    m.name: module.registry
    for m in pkgutil.iter_modules(lambdas.__path__)
    if hasattr(module := importlib.import_module(f"lambdas.{m.name}"), "registry")
}


@pytest.fixture(scope="module")
def rendered():
    return render.render_all(load_plan(REFERENCE))


@pytest.fixture(scope="module", params=EXAMPLES, ids=lambda p: p.stem)
def example(request):
    plan = load_plan(request.param)
    return request.param, plan, render.render_all(plan)


def _substituted(plan, text: str) -> str:
    subs = {
        asl.function_key(s): f"arn:aws:lambda:{plan.dr_region}:123456789012:function:{render.function_name(plan, s)}"
        for s in render.services_used(plan)
    }
    return asl.substitute(text, subs)


def test_committed_asl_is_current(example):
    source, _, rendered = example
    committed = COMMITTED_EXAMPLES.get(source)
    if committed is None:
        pytest.skip(f"{source.name}: no committed rendering")
    for name, text in rendered.items():
        path = committed / f"{name}.asl.json"
        assert path.exists(), f"{path} missing: run `make render`"
        assert path.read_text() == text, f"{path} is stale: run `make render` and commit"
    assert {p.name for p in committed.glob("*.asl.json")} == {f"{n}.asl.json" for n in rendered}


def test_the_reference_and_global_plans_have_committed_renderings():
    assert {p.stem for p in COMMITTED_EXAMPLES} >= {"reference", "fitness-global", "ecommerce", "fastest-region",
                                                    "bookstore"}


def test_rendered_asl_passes_statelint(example):
    _, plan, rendered = example
    for name, text in rendered.items():
        problems = Linter.validate(_substituted(plan, text), Config([], False, False))
        assert problems == [], f"{name}: {problems}"


def test_rendered_asl_parses_in_motos_interpreter(example):
    _, plan, rendered = example
    for text in rendered.values():
        program, _ = AmazonStateLanguageParser.parse(_substituted(plan, text))
        assert program is not None


def test_every_error_name_in_retry_and_catch_exists(example):
    for text in example[2].values():
        definition = json.loads(text)
        for name, state in asl.iter_states(definition["States"]):
            for rule in state.get("Retry", []) + state.get("Catch", []):
                for error in rule["ErrorEquals"]:
                    assert error in ALL_ERROR_NAMES or error.startswith(("Lambda.", "States.")), (name, error)


def test_every_task_calls_a_registered_action(example):
    for text in example[2].values():
        for name, state in asl.iter_states(json.loads(text)["States"]):
            if state["Type"] != "Task":
                continue
            if state["Resource"].endswith(".waitForTaskToken"):  # the Lambda only publishes; a human answers
                function, params = state["Parameters"]["FunctionName"], state["Parameters"]["Payload"]
            else:
                function, params = state["Resource"], state["Parameters"]
                assert state["TimeoutSeconds"] <= 900  # Lambda's own limit
            service = function.removeprefix("${").removesuffix("FunctionArn}").lower()
            assert params["action"] in REGISTRIES[service].actions, name
            assert state["Retry"], name


def test_every_wait_loop_is_bounded(example):
    for text in example[2].values():
        definition = json.loads(text)
        assert definition["TimeoutSeconds"] > 0
        states = dict(asl.iter_states(definition["States"]))
        for name, state in states.items():
            if state["Type"] != "Wait":
                continue
            check = states[state["Next"]]
            choice = states[check["Next"]]
            limits = [c for c in choice["Choices"] if "NumericGreaterThanEquals" in c]
            limit = states[limits[0]["Next"]] if limits else {}
            if limit.get("Next") == asl.RECORD_STATE:  # a top-level wait ends through the failure record
                assert limit["Result"]["Error"] == "WaitTimedOut" and states[asl.FAILED_STATE]["Type"] == "Fail"
            elif limit.get("Type") == "Task":  # a step that names what is still wrong, caught into the record
                assert any(c["Next"] == asl.RECORD_STATE for c in limit.get("Catch", [])), name
            else:
                assert limits and limit["Type"] == "Fail", name
            assert name in (choice["Default"], *(c["Next"] for c in choice["Choices"])), name


def test_every_registered_action_declares_permissions():
    for service, registry in REGISTRIES.items():
        for action in registry.actions.values():
            # Only a step that makes no AWS call (the report) may declare none.
            if "client(" in inspect.getsource(action.func):
                assert action.permissions, f"{service}.{action.name}"
            assert all(":" in p for p in action.permissions)


def test_sandbox_deploys_exactly_the_rendered_definition(rendered):
    plan = load_plan(REFERENCE)
    import boto3

    with Sandbox() as sb:
        arns = sb.deploy(plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        for name, arn in arns.items():
            deployed = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
            assert deployed == asl.substitute(asl.compact(rendered[name]), sb.substitutions(plan))


def test_render_command_writes_every_workflow(tmp_path):
    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["render", str(REFERENCE), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert Path(tmp_path / "failover.asl.json").read_text() == (COMMITTED / "failover.asl.json").read_text()


def test_iam_doc_is_current():
    from infra import iam_doc

    assert (ROOT / "docs" / "iam.md").read_text() == iam_doc.render_markdown(), "run `make docs`"


def test_every_retry_backs_off_with_full_jitter_and_a_cap(example):
    for text in example[2].values():
        for name, state in asl.iter_states(json.loads(text)["States"]):
            for rule in state.get("Retry", []):
                assert rule["JitterStrategy"] == "FULL" and rule["MaxDelaySeconds"] >= rule["IntervalSeconds"], name


def test_the_documented_worst_case_retry_time_is_the_policys():
    worst = asl.worst_case_retry_seconds()
    assert worst == {"waits": 375.0, "attempts": 14, "total": 2055.0}
    documented = (ROOT / "docs" / "sandbox.md").read_text()
    assert f"**{worst['total']:g} s ({worst['total'] / 60:.1f} min) at most**" in documented


def test_every_workflow_ends_a_caught_failure_through_its_record(example):
    for workflow, text in example[2].items():
        states = json.loads(text)["States"]
        assert states[asl.FAILED_STATE]["ErrorPath"] == "$.error.Error", workflow
        assert states[asl.RECORD_STATE]["Parameters"]["action"] == "record_failure", workflow
        for name, state in states.items():
            if state["Type"] in ("Parallel", "Map") or (state["Type"] == "Task" and name not in (
                    "GuardRails", "AwaitApproval", "PrepareDrill", "DnsCutoverFailed", "Preconditions",
                    asl.RECORD_STATE)):
                assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), (workflow, name)
            assert state["Type"] != "Fail" or name in (asl.FAILED_STATE, asl.UNRECORDED_STATE), (workflow, name)
