"""Cross-account plans: the plan's `accounts`, the role the functions assume with an external id, its IAM.

The external id lives in an SSM SecureString parameter the plan names (never in the plan, the ASL, the template,
an error message or a log line); the functions assume the plan's role for the region a client is made for.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from infra import iam as plan_iam
from lambdas import common
from lambdas.errors import AccessDenied, AssumeRoleDenied, Misconfigured
from sandbox import responses
from sandbox.iam_enforce import Enforcer
from tests.conftest import REFERENCE
from workflows import plan_accounts, render
from workflows.plan import PlanError, load_plan, parse_plan
from workflows.plan_accounts import ENV

ACCOUNT = "123456789012"  # the sandbox's (moto's default) account: an assumed role there sees the seeded estate
PRIMARY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pilotlight-primary"
DR_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pilotlight-dr"
PRIMARY_PARAMETER = "/pilotlight/shop/primary-external-id"
DR_PARAMETER = "/pilotlight/shop/dr-external-id"
EXTERNAL_ID = "Ext-7f3a9c:shop@dr"  # a value no message, log line or template may contain
DR_EXTERNAL_ID = "dr-ext-id-42"


def _doc(accounts: Any) -> dict[str, Any]:
    doc = yaml.safe_load(REFERENCE.read_text())
    doc["accounts"] = accounts
    return doc


def _cross_account_plan(dr: bool = True):
    accounts = {"primary": {"role_arn": PRIMARY_ROLE, "external_id_parameter": PRIMARY_PARAMETER}}
    if dr:
        accounts["dr"] = {"role_arn": DR_ROLE, "external_id_parameter": DR_PARAMETER}
    return parse_plan(_doc(accounts))


# (a) The plan ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accounts", "expected"), [
    ({"primary": {"role_arn": "arn:aws:iam::1111:role/x", "external_id_parameter": "/p"}},
     "accounts.primary.role_arn: must be an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>"),
    ({"dr": {"role_arn": "arn:aws:iam::111111111111:user/x", "external_id_parameter": "/p"}},
     "accounts.dr.role_arn: must be an IAM role ARN"),
    ({"primary": {"role_arn": "arn:aws:iam::111111111111:role/x", "external_id_parameter": "/p", "region": "x"}},
     "accounts.primary.region: unknown field"),
    ({"primary": {"role_arn": "arn:aws:iam::111111111111:role/x", "external_id": "Ext-7f3a9c"}},
     "accounts.primary.external_id: unknown field"),
    ({"primary": {"role_arn": "arn:aws:iam::111111111111:role/x"}},
     "accounts.primary.external_id_parameter: required field is missing"),
    ({"primary": {"role_arn": "arn:aws:iam::111111111111:role/x", "external_id_parameter": "/aws/x"}},
     "accounts.primary.external_id_parameter: '/aws/x': SSM reserves names"),
    ({"primary": {"role_arn": "arn:aws:iam::111111111111:role/x", "external_id_parameter": "no spaces"}},
     "accounts.primary.external_id_parameter: 'no spaces' is not an SSM parameter name"),
    ({"primary": {"role_arn": 111111111111, "external_id_parameter": "/p"}},
     "accounts.primary.role_arn: expected a string"),
    ({"staging": {"role_arn": "arn:aws:iam::111111111111:role/x", "external_id_parameter": "/p"}},
     "accounts.staging: unknown field"),
    ({}, "accounts: give primary, dr or both"),
])
def test_accounts_are_validated_strictly_naming_the_field(accounts, expected):
    with pytest.raises(PlanError) as exc:
        parse_plan(_doc(accounts))
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems
    assert "Ext-7f3a9c" not in str(exc.value) or "external_id: unknown field" in expected


def test_a_plan_without_accounts_acts_in_the_functions_own_account(reference_plan):
    assert reference_plan.accounts is None
    assert plan_accounts.environment(reference_plan) == {}
    assert plan_accounts.statements(reference_plan, account=ACCOUNT) == []


def test_the_environment_names_roles_and_parameters_never_an_external_id():
    plan = _cross_account_plan()
    env = plan_accounts.environment(plan)
    assert set(env) == {ENV} and ENV == common.ACCOUNTS_ENV
    sts_region, roles = common._accounts(env[ENV])  # what the functions read is what infra writes
    assert sts_region == plan.dr_region
    assert {r: (v.role_arn, v.external_id_parameter) for r, v in roles.items()} == {
        plan.primary_region: (PRIMARY_ROLE, PRIMARY_PARAMETER), plan.dr_region: (DR_ROLE, DR_PARAMETER)}
    # The workflows are the same with or without accounts: nothing of it reaches the ASL.
    assert render.render_all(plan) == render.render_all(load_plan(REFERENCE))


def test_every_step_function_may_assume_exactly_the_plan_roles_and_read_their_parameters():
    plan = _cross_account_plan()
    for service in sorted(render.services_used(plan)):
        statements = plan_iam.statements(plan_iam.registry_for(service), plan, account=ACCOUNT,
                                         extra={"topic": [], "key": []})
        assume = [s for s in statements if "sts:AssumeRole" in s["Action"]]
        assert assume == [{"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": [DR_ROLE, PRIMARY_ROLE]}]
        read = [s for s in statements if s["Action"] == ["ssm:GetParameter"] and "external-id" in str(s)]
        assert read[0]["Resource"] == [f"arn:aws:ssm:{plan.dr_region}:{ACCOUNT}:parameter{p}"
                                       for p in (DR_PARAMETER, PRIMARY_PARAMETER)]
    widget = plan_iam.statements(plan_iam.registry_for("widget"), plan, account=ACCOUNT)
    assert not any("sts:AssumeRole" in s["Action"] for s in widget)


def test_the_sandbox_checker_authorizes_assume_role_on_the_role_arn():
    plan = _cross_account_plan(dr=False)
    rds = plan_iam.statements(plan_iam.registry_for("rds"), plan, account=ACCOUNT, extra={"topic": []})
    enforcer = Enforcer(ACCOUNT)
    assert enforcer.resources("sts", "AssumeRole", {"RoleArn": PRIMARY_ROLE}, plan.dr_region) == [PRIMARY_ROLE]
    context = {"aws:RequestedRegion": plan.dr_region}
    assert enforcer.allowed(rds, "sts:AssumeRole", PRIMARY_ROLE, context)
    assert not enforcer.allowed(rds, "sts:AssumeRole", DR_ROLE, context)
    assert not enforcer.allowed(rds, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin", context)


# (b) The client ------------------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch):
    """moto, the two parameters, and a record of every AssumeRole request (URL and parameters)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "pilotlight-shop-rds")
    common.forget_assumed_roles()
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-west-2")
        ssm.put_parameter(Name=PRIMARY_PARAMETER, Value=EXTERNAL_ID, Type="SecureString")
        ssm.put_parameter(Name=DR_PARAMETER, Value=DR_EXTERNAL_ID, Type="SecureString")
        calls: list[dict[str, Any]] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            calls.append({"url": params["url"], **params["body"]})

        events = boto3._get_default_session().events
        events.register("before-call.sts.AssumeRole", record, unique_id="test-cross-account-record")
        try:
            yield calls
        finally:
            events.unregister("before-call.sts.AssumeRole", unique_id="test-cross-account-record")
            common.forget_assumed_roles()


def _configure(monkeypatch, plan=None) -> None:
    monkeypatch.setenv(ENV, plan_accounts.environment(plan or _cross_account_plan())[ENV])


def _access_key(client: Any) -> str:
    return client._request_signer._credentials.access_key


def test_without_accounts_no_sts_call_is_made(aws):
    for region in ("us-east-1", "us-west-2"):
        assert _access_key(common.client("rds", region)) == os.environ["AWS_ACCESS_KEY_ID"]
    assert aws == []


def test_the_role_of_the_region_is_assumed_once_per_role_with_the_external_id(aws, monkeypatch):
    _configure(monkeypatch)
    primary = [common.client("ec2", "us-east-1"), common.client("rds", "us-east-1", fast=True)]
    dr = [common.client("rds", "us-west-2"), common.client("elasticbeanstalk", "us-west-2")]
    assert [(c["RoleArn"], c["ExternalId"]) for c in aws] == [(PRIMARY_ROLE, EXTERNAL_ID), (DR_ROLE, DR_EXTERNAL_ID)]
    for call in aws:
        # The function's own credentials, at the DR region's regional STS endpoint; the shortest session.
        assert call["url"] == "https://sts.us-west-2.amazonaws.com/"
        assert call["RoleSessionName"] == "pilotlight-shop-rds" and call["DurationSeconds"] == 900
    assert len({_access_key(c) for c in primary}) == 1 and len({_access_key(c) for c in dr}) == 1
    assert _access_key(primary[0]) != _access_key(dr[0])
    assert _access_key(primary[0]).startswith("ASIA")  # temporary credentials, not the function's own
    # The assumed session acts in the role's account.
    sts = boto3.client("sts", region_name="us-east-1", **common.assumed_keys("ec2", "us-east-1"))
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/pilotlight-primary/" \
                                               "pilotlight-shop-rds"


def test_other_regions_and_the_deployments_own_services_use_the_functions_credentials(aws, monkeypatch):
    _configure(monkeypatch, _cross_account_plan(dr=False))
    own = os.environ["AWS_ACCESS_KEY_ID"]  # the function's own credentials (moto's, here)
    assert _access_key(common.client("rds", "us-west-2")) == own  # no dr side: the functions' account
    assert _access_key(common.client("ec2", "eu-west-1")) == own
    for service in ("stepfunctions", "sns", "lambda", "iam", "route53", "sts"):
        assert _access_key(common.client(service, "us-east-1")) == own, service
    assert aws == []


def test_credentials_are_renewed_two_minutes_before_they_expire(aws, monkeypatch):
    _configure(monkeypatch)
    common.client("ec2", "us-east-1")
    (_, expires), = common._ROLE_CREDENTIALS.values()
    monkeypatch.setattr(common, "_now", lambda: expires - 121)
    common.client("ec2", "us-east-1")
    assert len(aws) == 1
    monkeypatch.setattr(common, "_now", lambda: expires - 119)
    common.client("ec2", "us-east-1")
    assert len(aws) == 2 and aws[1]["ExternalId"] == EXTERNAL_ID


def _refuse(code: str, message: str):
    def answer(**_: Any) -> Any:
        return responses.error(code, message, 403)

    return answer


def test_a_refused_assume_role_is_a_named_error_naming_the_role_not_the_external_id(aws, monkeypatch, caplog):
    _configure(monkeypatch)
    events = boto3._get_default_session().events
    message = (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/pilotlight-shop-rds-role/pilotlight-shop-rds is not "
               f"authorized to perform: sts:AssumeRole on resource: {PRIMARY_ROLE}")
    events.register("before-call.sts.AssumeRole", _refuse("AccessDenied", message), unique_id="test-refuse")
    caplog.set_level(logging.DEBUG, logger="pilotlight")
    try:
        with pytest.raises(AssumeRoleDenied) as exc:
            common.client("ec2", "us-east-1")
    finally:
        events.unregister("before-call.sts.AssumeRole", unique_id="test-refuse")
    text = str(exc.value)
    assert isinstance(exc.value, AccessDenied)  # still an AccessDenied to code that catches that
    assert PRIMARY_ROLE in text and PRIMARY_PARAMETER in text and "external id" in text
    assert EXTERNAL_ID not in text and EXTERNAL_ID not in caplog.text
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    # The next client asks again (the external id may have been rotated since): and succeeds.
    assert _access_key(common.client("ec2", "us-east-1")).startswith("ASIA")


def test_a_refusal_inside_a_handler_ends_the_step_with_that_name(aws, monkeypatch):
    _configure(monkeypatch)
    events = boto3._get_default_session().events
    events.register("before-call.sts.AssumeRole", _refuse("AccessDenied", "not authorized"), unique_id="test-refuse")
    try:
        with pytest.raises(AssumeRoleDenied, match="pilotlight-primary"):
            _step()
    finally:
        events.unregister("before-call.sts.AssumeRole", unique_id="test-refuse")


def _step() -> None:
    registry = common.Registry("test")

    @registry.action("describe", permissions=["ec2:DescribeImages"])
    def describe() -> dict[str, Any]:
        common.client("ec2", "us-east-1").describe_images(Owners=["self"])
        return {}

    registry.handler({"action": "describe"})


def test_sts_disabled_in_the_region_and_a_bad_parameter_are_misconfigurations(aws, monkeypatch):
    _configure(monkeypatch)
    events = boto3._get_default_session().events
    events.register("before-call.sts.AssumeRole", _refuse("RegionDisabledException", "STS is not activated"),
                    unique_id="test-refuse")
    try:
        with pytest.raises(Misconfigured, match="STS is not activated in us-west-2"):
            common.client("ec2", "us-east-1")
    finally:
        events.unregister("before-call.sts.AssumeRole", unique_id="test-refuse")
    common.forget_assumed_roles()
    boto3.client("ssm", region_name="us-west-2").put_parameter(Name=PRIMARY_PARAMETER, Value="x y", Overwrite=True,
                                                               Type="SecureString")
    with pytest.raises(Misconfigured, match="not an external id STS accepts") as exc:
        common.client("ec2", "us-east-1")
    assert "x y" not in str(exc.value)
    boto3.client("ssm", region_name="us-west-2").delete_parameter(Name=PRIMARY_PARAMETER)
    with pytest.raises(Misconfigured, match=f"ssm:GetParameter {PRIMARY_PARAMETER}.*no such parameter"):
        common.client("ec2", "us-east-1")
    monkeypatch.setenv(ENV, "{not json")
    with pytest.raises(Misconfigured, match=ENV):
        common.client("ec2", "us-east-1")


# (c) A workflow in the sandbox -------------------------------------------------------------------------------


def test_replicate_runs_cross_account_in_the_sandbox(monkeypatch):
    from sandbox import Sandbox

    plan = _cross_account_plan()
    monkeypatch.setenv(ENV, plan_accounts.environment(plan)[ENV])
    common.forget_assumed_roles()
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    with Sandbox() as sb:
        ssm = boto3.client("ssm", region_name=plan.dr_region)
        ssm.put_parameter(Name=PRIMARY_PARAMETER, Value=EXTERNAL_ID, Type="SecureString")
        ssm.put_parameter(Name=DR_PARAMETER, Value=DR_EXTERNAL_ID, Type="SecureString")
        events = boto3._get_default_session().events
        events.register("before-parameter-build.sts.AssumeRole", record, unique_id="test-cross-account-sandbox")
        try:
            sb.seed(plan)
            summary = sb.build_pilot_light(plan)
        finally:
            events.unregister("before-parameter-build.sts.AssumeRole", unique_id="test-cross-account-sandbox")
            common.forget_assumed_roles()
        assert summary["ok"], summary
        assert sb.iam.denials == []  # sts:AssumeRole and ssm:GetParameter were within every function's policy
    by_role = {c["RoleArn"]: c for c in calls}
    assert set(by_role) == {PRIMARY_ROLE, DR_ROLE}
    assert by_role[PRIMARY_ROLE]["ExternalId"] == EXTERNAL_ID and by_role[DR_ROLE]["ExternalId"] == DR_EXTERNAL_ID
    # Cached per role: a handful of calls for a whole replicate run, not one per client.
    assert len(calls) == 2, [c["RoleArn"] for c in calls]
    assert json.dumps(summary, default=str).find(EXTERNAL_ID) == -1
