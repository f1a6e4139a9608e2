"""One synth of the reference plan per test session (CDK synth through jsii takes seconds)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from workflows.plan import Plan, load_plan

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "examples" / "reference.yaml"
ACCOUNT = "123456789012"


@pytest.fixture(scope="session")
def plan() -> Plan:
    return load_plan(REFERENCE)


@pytest.fixture(scope="session")
def synthesized(plan: Plan, tmp_path_factory: pytest.TempPathFactory):
    from infra import app

    started = time.monotonic()
    result = app.synthesize(plan, tmp_path_factory.mktemp("cdk") / "cdk.out")
    result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    print(f"\nsynth of {REFERENCE.name}: {result.seconds:.1f} s")  # type: ignore[attr-defined]
    return result


@pytest.fixture(scope="session")
def dr(synthesized, plan: Plan) -> Template:
    from infra.stacks import dr_stack_name

    return Template(synthesized.templates[dr_stack_name(plan)], plan.dr_region)


# How CloudFormation forms the ARN of each resource type the stacks reference.
_ARN_FORMATS = {
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{FunctionName}",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{StateMachineName}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{TopicName}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{LogGroupName}:*",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{lid}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{lid}",
}


class Template:
    """A synthesized template with just enough of CloudFormation's intrinsics to read values."""

    def __init__(self, body: dict[str, Any], region: str, account: str = ACCOUNT) -> None:
        self.body, self.region, self.account = body, region, account
        self.resources: dict[str, dict[str, Any]] = body["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == cfn_type}

    def props(self, lid: str) -> dict[str, Any]:
        return self.resources[lid].get("Properties", {})

    # Values ---------------------------------------------------------------------------------

    def _pseudo(self, name: str) -> str:
        return {"AWS::Partition": "aws", "AWS::AccountId": self.account, "AWS::Region": self.region,
                "AWS::URLSuffix": "amazonaws.com"}[name]

    def _arn(self, lid: str) -> str:
        res = self.resources[lid]
        if res["Type"] not in _ARN_FORMATS:
            raise KeyError(f"no ARN model for {res['Type']}")
        return _ARN_FORMATS[res["Type"]].format(region=self.region, account=self.account, lid=lid,
                                                **res.get("Properties", {}))

    def _ref(self, name: str) -> str:
        if name.startswith("AWS::"):
            return self._pseudo(name)
        t = self.resources[name]["Type"]
        if t in ("AWS::StepFunctions::StateMachine", "AWS::SNS::Topic"):
            return self._arn(name)
        return name

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                assert attr == "Arn", attr
                return self._arn(lid)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Sub":
                import re

                text, variables = (arg, {}) if isinstance(arg, str) else arg

                def sub(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name in variables:
                        return str(self.resolve(variables[name]))
                    if name.endswith(".Arn"):
                        return self._arn(name[:-4])
                    return str(self._ref(name))

                return re.sub(r"\$\{([^!][^}]*)\}", sub, text)
        return {k: self.resolve(v) for k, v in value.items()}


# Helpers the infra test modules share -------------------------------------------------------------------


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def lambda_functions(dr: Template) -> dict[str, tuple[str, dict]]:
    """Function name -> (logical id, properties)."""
    return {r["Properties"]["FunctionName"]: (lid, r["Properties"])
            for lid, r in dr.of_type("AWS::Lambda::Function").items()}


def function_role_statements(dr: Template) -> dict[str, list[dict]]:
    """Service -> resolved statements of its function's role."""
    out: dict[str, list[dict]] = {}
    for name, (_, props) in lambda_functions(dr).items():
        role_lid = props["Role"]["Fn::GetAtt"][0]
        statements = []
        for policy in dr.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_lid} in policy["Properties"]["Roles"]:
                statements += dr.resolve(policy["Properties"]["PolicyDocument"]["Statement"])
        out[props["Handler"].split(".")[1]] = statements
        assert not dr.props(role_lid).get("ManagedPolicyArns"), f"{name}: no managed policies"
    return out


def nag_rows(out_dir: Path) -> list[dict[str, str]]:
    """Every row of the cdk-nag AwsSolutions reports written to ``out_dir``."""
    import csv

    rows = []
    for report in sorted(out_dir.glob("AwsSolutions-*-NagReport.csv")):
        with report.open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows
