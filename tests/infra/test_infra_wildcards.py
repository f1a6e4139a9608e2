"""No mutating IAM action on ``Resource: "*"``, in the synthesized templates of every example plan.

Every statement of every policy in every stack (the plan's functions, the state machines, the trigger and
teardown rules, the widget) is read as CloudFormation would deploy it. An action granted on ``*`` must be in
``infra.iam.WILDCARD_ACTIONS`` (the one table of exceptions, with why, that docs/iam.md prints); a mutating
one only as AWS requires it: narrowed by a condition, or the state machines' own logging and tracing.

One synth per plan, shared by this module's tests (CDK synth through jsii takes seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import as_list

from infra import iam as plan_iam
from workflows.plan import load_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLANS = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.fixture(scope="module", params=PLANS)
def templates(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from infra import app

    plan = load_plan(EXAMPLES / request.param)
    return app.synthesize(plan, tmp_path_factory.mktemp("cdk") / "cdk.out").templates


def _policies(template: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(logical id, policy document, roles it is attached to) of every IAM policy in the template."""
    resources = template["Resources"]
    out = []
    for lid, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = [r["Ref"] for r in props.get("Roles", []) if isinstance(r, dict) and "Ref" in r]
            out.append((lid, props["PolicyDocument"], roles))
        elif res["Type"] == "AWS::IAM::Role":
            out += [(f"{lid}/{p.get('PolicyName')}", p["PolicyDocument"], [lid]) for p in props.get("Policies", [])]
    return out


def _trusted(template: dict[str, Any], role: str) -> set[str]:
    """The service principals that may assume ``role``."""
    doc = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
    return {p for s in doc["Statement"] for p in as_list((s.get("Principal") or {}).get("Service", []))}


def _wildcard_grants(templates: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], set[str]]]:
    """(stack, policy, statement, trusted principals) of every Allow statement with ``*`` among its resources."""
    out = []
    for stack, template in templates.items():
        for lid, doc, roles in _policies(template):
            for statement in as_list(doc["Statement"]):
                assert "NotResource" not in statement and "NotAction" not in statement, (stack, lid, statement)
                if statement.get("Effect") == "Allow" and "*" in as_list(statement.get("Resource", [])):
                    principals = set().union(*(_trusted(template, r) for r in roles)) if roles else set()
                    out.append((stack, lid, statement, principals))
    return out


def test_no_mutating_action_is_granted_on_every_resource(templates):
    found = _wildcard_grants(templates)
    assert found, "every stack reads something AWS authorizes on '*' only"
    for stack, lid, statement, principals in found:
        for action in as_list(statement["Action"]):
            assert "*" not in action.split(":", 1)[0] and action.split(":", 1)[1] != "*", (stack, lid, action)
            entry = plan_iam.wildcard_reason(action)
            assert entry is not None, f"{stack} {lid}: {action} on '*' is not in infra.iam.WILDCARD_ACTIONS"
            kind, _ = entry
            if not plan_iam.is_mutating(action):
                continue
            assert kind in ("condition", "service"), f"{stack} {lid}: mutating {action} on '*'"
            if kind == "condition":
                assert statement.get("Condition") == plan_iam.UNSCOPED_WITH_CONDITION[action], (stack, lid, action)
            else:
                assert principals == {"states.amazonaws.com"}, (stack, lid, action, principals)


def test_every_exception_says_why_and_how_it_is_granted():
    assert set(plan_iam.WILDCARD_KINDS) == {"read", "list", "condition", "service"}
    for pattern, (kind, why) in plan_iam.WILDCARD_ACTIONS.items():
        assert kind in plan_iam.WILDCARD_KINDS and len(why) > 20, pattern
        if kind in ("read", "list"):
            assert not plan_iam.is_mutating(pattern), pattern
    assert {a for a, (k, _) in plan_iam.WILDCARD_ACTIONS.items() if k == "condition"} == set(
        plan_iam.UNSCOPED_WITH_CONDITION)


def test_a_read_only_action_on_every_resource_must_be_listed():
    from lambdas.common import Registry

    registry = Registry("example")
    registry.action("scan", permissions=["kinesis:ListStreams"], resource="*")(lambda: {})
    with pytest.raises(plan_iam.PermissionsError, match="WILDCARD_ACTIONS"):
        plan_iam.statements(registry, load_plan(EXAMPLES / "reference.yaml"), account="123456789012")
