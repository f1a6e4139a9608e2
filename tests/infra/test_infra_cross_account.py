"""A cross-account plan synthesizes with sts:AssumeRole on exactly the plan's roles, and no external id.

One synth of the reference plan with ``accounts`` (CDK synth through jsii takes seconds), shared by this module.
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ACCOUNT, REFERENCE, Template, as_list, lambda_functions, nag_rows

from workflows import plan_accounts
from workflows.plan import parse_plan

PRIMARY_ROLE = "arn:aws:iam::111111111111:role/pilotlight-primary"
DR_ROLE = "arn:aws:iam::222222222222:role/pilotlight-dr"
PARAMETERS = ("/pilotlight/shop/primary-external-id", "/pilotlight/shop/dr-external-id")


@pytest.fixture(scope="module")
def cross_account(tmp_path_factory: pytest.TempPathFactory):
    from infra import app
    from infra.stacks import dr_stack_name

    doc = yaml.safe_load(REFERENCE.read_text())
    doc["accounts"] = {"primary": {"role_arn": PRIMARY_ROLE, "external_id_parameter": PARAMETERS[0]},
                       "dr": {"role_arn": DR_ROLE, "external_id_parameter": PARAMETERS[1]}}
    plan = parse_plan(doc)
    result = app.synthesize(plan, tmp_path_factory.mktemp("cdk") / "cdk.out")
    return plan, result, Template(result.templates[dr_stack_name(plan)], plan.dr_region)


def _role_statements(dr: Template) -> dict[str, list[dict]]:
    """Service -> resolved statements of its function's role, including the OverflowPolicyN managed policies CDK
    moves statements into past IAM's inline size (the Beanstalk function's role)."""
    out = {}
    for _, props in lambda_functions(dr).values():
        role = {"Ref": props["Role"]["Fn::GetAtt"][0]}
        out[props["Handler"].split(".")[1]] = [
            statement for policy in [*dr.of_type("AWS::IAM::Policy").values(),
                                     *dr.of_type("AWS::IAM::ManagedPolicy").values()]
            if role in policy["Properties"].get("Roles", [])
            for statement in dr.resolve(policy["Properties"]["PolicyDocument"]["Statement"])]
    return out


def test_assume_role_is_granted_on_exactly_the_plan_roles(cross_account):
    plan, _, dr = cross_account
    statements = _role_statements(dr)
    assert set(statements) >= {"rds", "beanstalk", "ami", "widget"}
    for service, granted in statements.items():
        assume = [s for s in granted if "sts:AssumeRole" in as_list(s["Action"])]
        if service == "widget":  # acts only on what the deployment owns
            assert assume == [], service
            continue
        assert len(assume) == 1, (service, assume)
        assert as_list(assume[0]["Action"]) == ["sts:AssumeRole"]
        assert sorted(as_list(assume[0]["Resource"])) == [PRIMARY_ROLE, DR_ROLE], service
        assert "Condition" not in assume[0]
        reads = [s for s in granted if as_list(s["Action"]) == ["ssm:GetParameter"]
                 and any("external-id" in r for r in as_list(s["Resource"]))]
        assert sorted(as_list(reads[0]["Resource"])) == sorted(
            f"arn:aws:ssm:{plan.dr_region}:{ACCOUNT}:parameter{p}" for p in PARAMETERS), service


def test_the_functions_get_role_arns_and_parameter_names_only(cross_account):
    plan, result, dr = cross_account
    expected = plan_accounts.environment(plan)[plan_accounts.ENV]
    for name, (_, props) in lambda_functions(dr).items():
        variables = props["Environment"]["Variables"]
        if name.endswith("-widget"):
            assert plan_accounts.ENV not in variables
        else:
            assert variables[plan_accounts.ENV] == expected, name
    doc = json.loads(expected)
    assert doc == {"sts_region": plan.dr_region, "regions": {
        plan.primary_region: {"role_arn": PRIMARY_ROLE, "external_id_parameter": PARAMETERS[0]},
        plan.dr_region: {"role_arn": DR_ROLE, "external_id_parameter": PARAMETERS[1]}}}
    # Nothing in any template names an external id, nor resolves one from a secret at deploy time.
    text = json.dumps(result.templates)
    assert "ExternalId" not in text and "resolve:ssm" not in text and "resolve:secretsmanager" not in text
    # The grants add no cfn-lint error and no cdk-nag finding (no wildcard: exact role and parameter ARNs). The
    # whole templates' cleanliness is tests/infra/test_infra_checks.py's.
    ours = ("sts:AssumeRole", "external-id", "pilotlight-primary", "pilotlight-dr")
    assert [e for e in result.errors if any(o in e[2] for o in ours)] == []
    assert [r for r in nag_rows(result.out_dir)
            if r["Compliance"] == "Non-Compliant" and any(o in json.dumps(r) for o in ours)] == []
