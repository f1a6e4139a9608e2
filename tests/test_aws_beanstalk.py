"""Beanstalk review defects: launch permissions, unreachable endpoints, safe saved-configuration
replacement, bundle access for the instance profile, and failing fast on an environment stuck Red."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from infra import iam as plan_iam
from lambdas import beanstalk, verify
from lambdas.common import Registry, aws_errors, raise_mapped
from lambdas.errors import AwsUnavailable, EnvironmentUnhealthy
from sandbox import Sandbox, adapters_beanstalk, clock
from tests.conftest import history_of_state, outage, run_workflow
from tests.test_adapter_shapes import shape_problems
from workflows.executions import follow
from workflows.plan import PlanError, parse_plan

ACCOUNT = "123456789012"


def _launch_statements(plan: Any) -> list[dict[str, Any]]:
    """The IAM statements of the failover's launch step alone (beanstalk.launch_environment)."""
    reg = Registry("beanstalk")
    reg.actions["launch_environment"] = beanstalk.registry.actions["launch_environment"]
    return plan_iam.statements(reg, plan, account=ACCOUNT)


def _grants(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in s["Action"]]


# -- 2. the launch step may build the environment ---------------------------------------------------

def test_launch_grants_what_beanstalk_builds_the_environment_with(reference_plan: Any) -> None:
    plan, dr = reference_plan, reference_plan.dr_region
    statements = _launch_statements(plan)
    arn = f"arn:aws:{{}}:{dr}:{ACCOUNT}:{{}}"

    def resources(action: str) -> set[str]:
        return {r for s in _grants(statements, action) for r in s["Resource"]}

    assert resources("cloudformation:CreateStack") == {arn.format("cloudformation", "stack/awseb-e-*")}
    assert arn.format("cloudformation", "stack/awseb-e-*") in resources("cloudformation:DescribeStackEvents")
    assert resources("autoscaling:CreateAutoScalingGroup") == {
        arn.format("autoscaling", "autoScalingGroup:*:autoScalingGroupName/awseb-e-*"),
        arn.format("autoscaling", "launchConfiguration:*:launchConfigurationName/awseb-e-*")}
    assert resources("cloudwatch:PutMetricAlarm") == {arn.format("cloudwatch", "alarm:awseb-e-*")}
    assert arn.format("elasticloadbalancing", "loadbalancer/*awseb-*") in resources(
        "elasticloadbalancing:CreateLoadBalancer")
    (tagging,) = _grants(statements, "elasticloadbalancing:AddTags")
    assert "elasticloadbalancing:CreateAction" in json.dumps(tagging["Condition"])
    # Security groups only in the plan's DR VPC; the VPC itself for CreateSecurityGroup.
    vpc = arn.format("ec2", f"vpc/{plan.environments[0].dr_network.vpc_id}")
    groups = _grants(statements, "ec2:AuthorizeSecurityGroupIngress")
    assert [s["Condition"] for s in groups] == [{"ArnEquals": {"ec2:Vpc": [vpc]}}]
    assert resources("ec2:CreateSecurityGroup") == {vpc, arn.format("ec2", "security-group/*")}
    (run,) = _grants(statements, "ec2:RunInstances")
    assert run["Condition"] == {"ArnLike": {"ec2:LaunchTemplate": arn.format("ec2", "launch-template/*")}}
    assert {arn.format("ec2", f"subnet/{s}") for s in plan.environments[0].dr_network.subnets} <= set(
        run["Resource"])
    (tags,) = _grants(statements, "ec2:CreateTags")
    assert "ec2:CreateAction" in tags["Condition"]["StringEquals"]
    # The source bundle copy, and Beanstalk's own storage bucket in the DR region.
    assert f"arn:aws:s3:::{plan.dr_bundle_bucket}/*" in resources("s3:GetObject")
    assert resources("s3:PutObject") == {f"arn:aws:s3:::elasticbeanstalk-{dr}-{ACCOUNT}/*"}
    # PassRole: the plan's service role to Beanstalk, the instance profile's role to EC2, nothing else.
    passes = {(tuple(s["Resource"]), s["Condition"]["StringEquals"]["iam:PassedToService"])
              for s in _grants(statements, "iam:PassRole")}
    assert passes == {((f"arn:aws:iam::{ACCOUNT}:role/aws-elasticbeanstalk-service-role",),
                       "elasticbeanstalk.amazonaws.com"),
                      ((f"arn:aws:iam::{ACCOUNT}:role/aws-elasticbeanstalk-ec2-role",), "ec2.amazonaws.com")}


def test_launch_grants_no_mutation_on_a_bare_wildcard_and_stay_in_the_dr_region(reference_plan: Any) -> None:
    plan = reference_plan
    for statement in _launch_statements(plan):
        mutating = [a for a in statement["Action"] if plan_iam.is_mutating(a)]
        if not mutating:
            continue
        assert "*" not in statement["Resource"] or statement.get("Condition"), statement
        for resource in statement["Resource"]:
            service, region = resource.split(":")[2:4]
            if "*" in resource and service not in ("s3", "iam", "elasticbeanstalk"):
                # Every wildcard is confined to the DR region and the account (AMIs carry no account).
                assert region == plan.dr_region, (mutating, resource)
                assert f":{ACCOUNT}:" in resource or "::image/" in resource, (mutating, resource)


def test_plan_roles_name_what_the_launch_may_pass(reference_plan: Any) -> None:
    data = reference_plan.model_dump()
    data["environments"][0].update(service_role="shop-eb-service", instance_profile="shop-web",
                                   instance_profile_role="shop-web-role")
    plan = parse_plan(data)
    passes = {r for s in _grants(_launch_statements(plan), "iam:PassRole") for r in s["Resource"]}
    assert passes == {f"arn:aws:iam::{ACCOUNT}:role/shop-eb-service", f"arn:aws:iam::{ACCOUNT}:role/shop-web-role"}
    bad = {**data["environments"][0], "service_role": "no spaces allowed"}
    with pytest.raises(PlanError) as err:
        parse_plan({**data, "environments": [bad]})
    assert any(p.startswith("environments[0].service_role: ") for p in err.value.problems), err.value.problems
    long = {**data["environments"][0], "instance_profile": "p" * 70, "instance_profile_role": None}
    with pytest.raises(PlanError) as err:
        parse_plan({**data, "environments": [long]})
    assert any(p.startswith("environments[0].instance_profile_role: required") for p in err.value.problems)


# -- 6. an endpoint that cannot be reached is retryable ---------------------------------------------

def test_connection_errors_map_to_aws_unavailable() -> None:
    for exc in (ConnectTimeoutError(endpoint_url="https://eb"), ReadTimeoutError(endpoint_url="https://eb"),
                EndpointConnectionError(endpoint_url="https://eb")):
        with pytest.raises(AwsUnavailable, match="describe x"):
            raise_mapped(exc, "describe x")
        with pytest.raises(AwsUnavailable, match=type(exc).__name__), aws_errors("describe x"):
            raise exc
    # A handler that lets one escape still answers with the retryable name.
    reg = Registry("fake")

    @reg.action("boom", permissions=[])
    def boom() -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://elasticbeanstalk.us-west-2.amazonaws.com")

    with pytest.raises(AwsUnavailable, match="fake.boom: EndpointConnectionError"):
        reg.handler({"action": "boom"})


def test_an_unreachable_endpoint_is_retried_by_the_state_machine(sandbox: Sandbox, reference_plan: Any) -> None:
    plan = reference_plan
    outage(sandbox, plan)
    hits = []

    def unreachable(**_: Any) -> None:
        if not hits:
            hits.append(1)
            raise EndpointConnectionError(endpoint_url=f"https://elasticbeanstalk.{plan.dr_region}.amazonaws.com/")

    sandbox._events.register_first("before-call.elastic-beanstalk.CreateEnvironment", unreachable,
                                   unique_id="test-unreachable")
    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert hits == [1]
    assert history_of_state(result, "LaunchEnvironment") == ["LambdaFunctionFailed", "LambdaFunctionSucceeded"]
    (failed,) = [e["lambdaFunctionFailedEventDetails"] for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert failed["error"] == "AwsUnavailable" and "EndpointConnectionError" in failed["cause"]


def test_verify_counts_an_unreachable_endpoint_as_a_failed_check(sandbox: Sandbox) -> None:
    def timeout(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://rds.us-west-2.amazonaws.com/")

    sandbox._events.register_first("before-call.rds.DescribeDBInstances", timeout, unique_id="test-timeout")
    out = verify.verify_service("us-west-2", databases=["shop-db-dr"], attempt=0)
    assert out["done"] is False and out["attempt"] == 1
    (check,) = out["checks"]
    assert check["ok"] is False and "ReadTimeoutError" in check["detail"] and check["resource"] == "shop-db-dr"


# -- 10. replacing the saved configuration never leaves none ----------------------------------------

def _change_primary_option(plan: Any, value: str) -> None:
    env = adapters_beanstalk.STORE.envs[(plan.primary_region, plan.environments[0].name)]
    env.options = [dict(o, Value=value) if o["OptionName"] == "APP_ENV" else o for o in env.options]


def _saved(plan: Any) -> dict[str, str]:
    """Name -> APP_ENV of the DR saved configurations of the plan's first environment."""
    env = plan.environments[0]
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    names = eb.describe_applications(ApplicationNames=[env.application])["Applications"][0]["ConfigurationTemplates"]
    out = {}
    for name in names:
        settings = eb.describe_configuration_settings(ApplicationName=env.application, TemplateName=name)
        opts = settings["ConfigurationSettings"][0]["OptionSettings"]
        out[name] = next(o["Value"] for o in opts if o["OptionName"] == "APP_ENV")
    return out


def test_a_failed_create_before_the_old_one_is_deleted_keeps_it(sandbox: Sandbox, reference_plan: Any) -> None:
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    stable = beanstalk.template_name(plan.name, plan.environments[0].name)
    assert _saved(plan) == {stable: "production"}
    _change_primary_option(plan, "production-2")
    fault = sandbox.faults.inject("elastic-beanstalk", "CreateConfigurationTemplate",
                                  "TooManyConfigurationTemplatesException", "limit reached (injected)", times=None)

    result = sandbox.run_replicate(plan)

    assert result.status == "SUCCEEDED" and fault.hits >= 1
    assert any(r["resource"] == "Configurations" for r in result.output["failed"])
    assert _saved(plan) == {stable: "production"}  # the old one stays until a new one exists


def test_a_failed_create_after_the_old_one_is_deleted_still_fails_over(sandbox: Sandbox, reference_plan: Any) -> None:
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    env = plan.environments[0]
    stable = beanstalk.template_name(plan.name, env.name)
    staging = beanstalk.staging_template_name(plan.name, env.name)
    _change_primary_option(plan, "production-2")
    calls = []

    def second_create_fails(**_: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first creates the staging copy; the second re-creates the stable name
            from sandbox import responses

            return responses.error("TooManyConfigurationTemplatesException", "limit reached (injected)")
        return None

    sandbox._events.register_first("before-call.elastic-beanstalk.CreateConfigurationTemplate", second_create_fails,
                                   unique_id="test-second-create")
    replicated = sandbox.run_replicate(plan)
    sandbox._events.unregister("before-call.elastic-beanstalk.CreateConfigurationTemplate",
                               unique_id="test-second-create")

    assert replicated.status == "SUCCEEDED" and len(calls) == 2
    assert any(r["resource"] == "Configurations" for r in replicated.output["failed"])
    assert _saved(plan) == {staging: "production-2"}  # the new configuration, under the staging name

    sandbox.simulate_disaster(plan)
    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    launched = [json.loads(e["lambdaFunctionSucceededEventDetails"]["output"]) for e in result.events
                if e["type"] == "LambdaFunctionSucceeded" and '"launched_now": true' in
                e["lambdaFunctionSucceededEventDetails"]["output"]]
    assert [o["template"] for o in launched] == [staging]
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    settings = eb.describe_configuration_settings(ApplicationName=env.application,
                                                  EnvironmentName=env.dr_environment_name)["ConfigurationSettings"][0]
    assert {o["OptionName"]: o.get("Value") for o in settings["OptionSettings"]}["APP_ENV"] == "production-2"

    # The next replicate converges: the stable name holds the new configuration, the staging copy is gone.
    again = sandbox.run_replicate(plan)
    assert again.status == "SUCCEEDED" and not again.output.get("failed"), again.output.get("failed")
    assert _saved(plan) == {stable: "production-2"}


# -- 12. the DR instance profile's role may read the bundle bucket ----------------------------------

def _readiness(sandbox: Sandbox, plan: Any) -> dict[str, Any]:
    arn = sandbox.start(plan, "readiness", {"source": "test"})
    result = follow(boto3.client("stepfunctions", region_name=plan.dr_region), arn, poll_seconds=0.05,
                    timeout_seconds=60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return {(c["check"], c["resource"]): c for c in result.output["checks"]}


def test_replicate_lets_the_instance_profile_read_the_bundles_and_readiness_checks_it(
    sandbox: Sandbox, reference_plan: Any
) -> None:
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    s3 = boto3.client("s3", region_name=plan.dr_region)
    role = f"arn:aws:iam::{sandbox.account_id}:role/aws-elasticbeanstalk-ec2-role"
    policy = json.loads(s3.get_bucket_policy(Bucket=plan.dr_bundle_bucket)["Policy"])
    (statement,) = [s for s in policy["Statement"] if s["Principal"] == {"AWS": [role]}]
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == f"arn:aws:s3:::{plan.dr_bundle_bucket}/*"

    ready = _readiness(sandbox, plan)[("app-version", "shop-prod")]
    assert ready["status"] == "READY", ready
    assert ready["evidence"]["access"]["allowed_by"] == "bucket policy"

    # Without the bucket policy the default instance profile reads only elasticbeanstalk-* buckets.
    s3.delete_bucket_policy(Bucket=plan.dr_bundle_bucket)
    check = _readiness(sandbox, plan)[("app-version", "shop-prod")]
    assert check["status"] == "NOT_READY"
    assert "aws-elasticbeanstalk-ec2-role" in check["reason"] and plan.dr_bundle_bucket in check["reason"]
    assert check["evidence"]["access"]["decision"] == "implicitDeny"

    # The next replicate puts the grant back (a step that converges).
    sandbox.run_replicate(plan)
    assert _readiness(sandbox, plan)[("app-version", "shop-prod")]["status"] == "READY"


def test_simulate_principal_policy_evaluates_a_roles_policies(sandbox: Sandbox, reference_plan: Any) -> None:
    """moto 5.2 has no SimulatePrincipalPolicy; the sandbox answers it for roles from their policies."""
    sandbox.seed(reference_plan)  # the first environment creates Beanstalk's default roles
    iam = boto3.client("iam")
    role = iam.get_instance_profile(InstanceProfileName="aws-elasticbeanstalk-ec2-role")["InstanceProfile"][
        "Roles"][0]["Arn"]
    answers = []

    def record(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        answers.append((model, {k: v for k, v in parsed.items() if k != "ResponseMetadata"}))

    sandbox._events.register("after-call.iam.SimulatePrincipalPolicy", record, unique_id="test-record-simulate")
    out = iam.simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["s3:GetObject", "s3:DeleteBucket"],
        ResourceArns=["arn:aws:s3:::elasticbeanstalk-us-west-2-123456789012/app.zip",
                      "arn:aws:s3:::pilotlight-shop-bundles-us-west-2/app.zip"])["EvaluationResults"]
    decisions = {(r["EvalActionName"], r["EvalResourceName"].split(":::")[1]): r["EvalDecision"] for r in out}
    assert decisions == {
        ("s3:GetObject", "elasticbeanstalk-us-west-2-123456789012/app.zip"): "allowed",
        ("s3:GetObject", "pilotlight-shop-bundles-us-west-2/app.zip"): "implicitDeny",
        ("s3:DeleteBucket", "elasticbeanstalk-us-west-2-123456789012/app.zip"): "implicitDeny",
        ("s3:DeleteBucket", "pilotlight-shop-bundles-us-west-2/app.zip"): "implicitDeny",
    }
    assert not [p for model, parsed in answers if (p := shape_problems(model, parsed))]


# -- 14. an environment stuck Red fails the launch fast ---------------------------------------------

def test_check_environment_gives_a_red_environment_its_grace_then_fails(sandbox: Sandbox, reference_plan: Any) -> None:
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    env = plan.environments[0]
    region, name = plan.dr_region, env.dr_environment_name
    adapters_beanstalk.force_health(region, name, causes=["Following services are not running: web."])
    launched = beanstalk.launch_environment(region, plan.name, env.application, env.name, name, env.cname_prefix)
    assert launched["launched_now"] is True

    def check() -> dict[str, Any]:
        return beanstalk.check_environment(region, env.application, name, attempt=0)

    ready = clock.wait_until(lambda: (c := check())["environment"]["status"] == "Ready" and c, timeout=900, step=10)
    assert ready["done"] is False and ready["environment"]["health"] == "Red"
    clock.sleep(beanstalk.UNHEALTHY_GRACE_SECONDS - 60)
    assert check()["done"] is False  # still within its grace
    clock.sleep(60)
    with pytest.raises(EnvironmentUnhealthy, match="Following services are not running: web"):
        check()
    # A Red that clears in time is not a failure.
    adapters_beanstalk.clear_health(region, name)
    assert check()["done"] is True


def test_a_failover_whose_environment_stays_red_fails_fast_with_the_causes(
    sandbox: Sandbox, reference_plan: Any
) -> None:
    plan = reference_plan
    outage(sandbox, plan)
    causes = ["Following services are not running: web.", "Incorrect application version found on all instances."]
    adapters_beanstalk.force_health(plan.dr_region, plan.environments[0].dr_environment_name, causes=causes)

    result = run_workflow(sandbox, plan, "failover")

    assert result.status == "FAILED"
    assert result.error == "EnvironmentUnhealthy" and result.failed_step == "Launch DR environment"
    assert all(c in result.cause for c in causes)
    # Launch (5 min) + the grace period (5 min) + a check interval: far from the 45-minute wait limit.
    assert result.duration is not None and result.duration < 12 * 60, result.duration
    r53 = boto3.client("route53")
    sets = r53.list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)["ResourceRecordSets"]
    (record,) = [s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name]
    assert record["ResourceRecords"][0]["Value"].startswith("shop-prod.us-east-1.")  # DNS untouched
