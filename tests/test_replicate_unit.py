"""The replicate definition, the configuration rewrite, the plan fields and the summary table."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas import errors
from lambdas.beanstalk import dr_option_settings, dr_platform_arn
from lambdas.report import summarise_replicate
from sandbox import Sandbox, clock
from workflows import asl, render, replicate
from workflows.plan import PlanError, load_plan, parse_plan

PLANS = ["examples/reference.yaml", "examples/second.yaml"]


@pytest.mark.parametrize("path", PLANS)
def test_replicate_is_registered_and_renders(path: str) -> None:
    plan = load_plan(path)
    text = render.render_all(plan)["replicate"]
    definition = json.loads(text)
    assert definition["States"]["Replicate"]["Type"] == "Parallel"
    assert {
        "AmiFunctionArn",
        "BeanstalkFunctionArn",
        "RdsFunctionArn",
        "S3FunctionArn",
        "ReportFunctionArn",
    } <= asl.placeholders(definition)


@pytest.mark.parametrize("path", PLANS)
def test_every_error_name_in_replicate_exists(path: str) -> None:
    definition = replicate.build(load_plan(path))
    names = set()
    for _, state in asl.iter_states(definition["States"]):
        for rule in state.get("Retry", []) + state.get("Catch", []):
            names.update(rule["ErrorEquals"])
    ours = {n for n in names if not n.startswith(("States.", "Lambda."))}
    assert ours and ours <= errors.ALL_ERROR_NAMES


@pytest.mark.parametrize("path", PLANS)
def test_every_wait_loop_is_bounded_and_ends_in_a_named_failure(path: str) -> None:
    definition = replicate.build(load_plan(path))
    assert definition["TimeoutSeconds"] > 0
    states = dict(asl.iter_states(definition["States"]))
    waits = [name for name, state in states.items() if state["Type"] == "Wait"]
    assert waits
    for name in waits:
        choice = states[states[states[name]["Next"]]["Next"]]
        limits = [c for c in choice["Choices"] if "NumericGreaterThanEquals" in c]
        assert limits and limits[0]["Variable"] == "$.poll.attempt", name
        assert states[limits[0]["Next"]]["Type"] == "Fail", name
        assert choice["Default"] == name


def test_plans_without_environments_skip_the_image_branches() -> None:
    plan = parse_plan(
        {
            "name": "data",
            "primary_region": "us-east-1",
            "dr_region": "us-west-2",
            "objectives": {"rto_minutes": 10, "rpo_minutes": 5},
            "buckets": [{"source": "data-use1", "destination": "data-usw2"}],
        }
    )
    definition = replicate.build(plan)
    assert [b["StartAt"] for b in definition["States"]["Replicate"]["Branches"]] == ["Buckets"]
    assert "Configurations" not in definition["States"]


def test_ami_key_outside_the_dr_region_is_rejected_with_its_path() -> None:
    data = {
        "name": "x-app",
        "primary_region": "us-east-1",
        "dr_region": "us-west-2",
        "objectives": {"rto_minutes": 10, "rpo_minutes": 5},
        "buckets": [{"source": "a-use1", "destination": "a-usw2"}],
        "ami": {"dr_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/abc"},
    }
    with pytest.raises(PlanError) as info:
        parse_plan(data)
    assert any(p.startswith("ami.dr_kms_key_id:") for p in info.value.problems)


NETWORK = {
    "vpc_id": "vpc-0d1a2b3c4d5e6f701",
    "subnets": ["subnet-0d1a2b3c4d5e6f711"],
    "elb_subnets": ["subnet-0d1a2b3c4d5e6f721"],
    "security_groups": ["sg-0d1a2b3c4d5e6f731"],
    "key_name": None,
    "certificate_arns": {"arn:aws:acm:us-east-1:1:certificate/p": "arn:aws:acm:us-west-2:1:certificate/d"},
}
PRIMARY = [
    {"Namespace": "aws:cloudformation:template:parameter", "OptionName": "EnvironmentVariables", "Value": "A=b"},
    {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "ImageId", "Value": "ami-0aaaaaaaaaaaaaaaa"},
    {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "EC2KeyName", "Value": "prod-key"},
    {"Namespace": "aws:ec2:vpc", "OptionName": "Subnets", "Value": "subnet-0bbbbbbbbbbbbbbbb"},
    {
        "Namespace": "aws:elbv2:listener:443",
        "OptionName": "SSLCertificateArns",
        "Value": "arn:aws:acm:us-east-1:1:certificate/p",
    },
    {
        "Namespace": "aws:elasticbeanstalk:application:environment",
        "OptionName": "DB_HOST",
        "Value": "db.abc.us-east-1.rds.amazonaws.com",
    },
    {
        "Namespace": "aws:elasticbeanstalk:application:environment",
        "OptionName": "QUEUE",
        "Value": "https://sqs.us-east-1.amazonaws.com/1/jobs",
    },
]


def test_rewrite_drops_read_only_options_and_maps_regional_values() -> None:
    options, flags = dr_option_settings(
        PRIMARY,
        primary_region="us-east-1",
        image_id="ami-0ccccccccccccccccc"[:21],
        network=NETWORK,
        replacements={"db.abc.us-east-1.rds.amazonaws.com": "db-dr.abc.us-west-2.rds.amazonaws.com"},
    )
    got = {(o["Namespace"], o["OptionName"]): o["Value"] for o in options}
    assert ("aws:cloudformation:template:parameter", "EnvironmentVariables") not in got
    assert got[("aws:autoscaling:launchconfiguration", "ImageId")].startswith("ami-0cccc")
    assert got[("aws:ec2:vpc", "Subnets")] == "subnet-0d1a2b3c4d5e6f711"
    assert got[("aws:elbv2:listener:443", "SSLCertificateArns")] == "arn:aws:acm:us-west-2:1:certificate/d"
    assert got[("aws:elasticbeanstalk:application:environment", "DB_HOST")].endswith("us-west-2.rds.amazonaws.com")
    assert ("aws:autoscaling:launchconfiguration", "EC2KeyName") not in got
    assert any("EC2KeyName" in f for f in flags)
    assert any(f.startswith("aws:elasticbeanstalk:application:environment:QUEUE") for f in flags)


def test_platform_arn_moves_to_the_dr_region() -> None:
    arn = "arn:aws:elasticbeanstalk:us-east-1::platform/Python 3.11 running on 64bit Amazon Linux 2023/4.3.0"
    assert dr_platform_arn(arn, "eu-central-1").split(":")[3] == "eu-central-1"


def test_configuration_straight_from_the_primary_is_refused_in_dr() -> None:
    plan = load_plan("examples/reference.yaml")
    env = plan.environments[0]
    with Sandbox(latency="none") as sb:
        sb.seed(plan, pilot_light=False)
        primary = boto3.client("elasticbeanstalk", region_name=plan.primary_region)
        dr = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
        settings = primary.describe_configuration_settings(ApplicationName=env.application, EnvironmentName=env.name)[
            "ConfigurationSettings"
        ][0]
        dr.create_application(ApplicationName=env.application)
        with pytest.raises(dr.exceptions.ClientError, match="read-only"):
            dr.create_configuration_template(
                ApplicationName=env.application,
                TemplateName="raw",
                SolutionStackName=settings["SolutionStackName"],
                OptionSettings=settings["OptionSettings"],
            )
        writable = [o for o in settings["OptionSettings"] if o["Namespace"] != "aws:cloudformation:template:parameter"]
        with pytest.raises(dr.exceptions.ClientError, match="ami-"):
            dr.create_configuration_template(
                ApplicationName=env.application,
                TemplateName="raw",
                SolutionStackName=settings["SolutionStackName"],
                OptionSettings=writable,
            )


def test_summary_table_lists_every_record() -> None:
    out = summarise_replicate(
        "shop",
        {
            "a": [
                {"record": {"resource": "ami ami-1 (us-west-2)", "status": "created"}},
                {"record": {"resource": "canary a -> b", "status": "failed", "cause": '{"errorMessage": "boom"}'}},
            ]
        },
    )
    assert out["counts"]["created"] == 1 and not out["ok"]
    table = replicate.replicate_summary_table(out)
    assert "ami ami-1 (us-west-2)" in table and "boom" in table
    assert table.splitlines()[-1] == "plan shop: 1 failed, 1 created"


def test_an_environment_from_the_saved_configuration_launches_in_modeled_time() -> None:
    plan = load_plan("examples/reference.yaml")
    env = plan.environments[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        eb = boto3.client("elasticbeanstalk", region_name=plan.primary_region)
        eb.create_configuration_template(
            ApplicationName=env.application,
            TemplateName="t1",
            SolutionStackName="64bit Amazon Linux 2023 v4.3.0 running Python 3.11",
        )
        out = eb.create_environment(
            ApplicationName=env.application, EnvironmentName="shop-new", TemplateName="t1", VersionLabel="v1"
        )
        assert out["Status"] == "Launching"
        assert eb.describe_environments(EnvironmentNames=["shop-new"])["Environments"][0]["Status"] == "Launching"
        health = eb.describe_environment_health(EnvironmentName="shop-new", AttributeNames=["All"])
        assert (health["Status"], health["Color"]) == ("Launching", "Grey")
        started = clock.now()
        ready = clock.wait_until(
            lambda: (e := eb.describe_environments(EnvironmentNames=["shop-new"])["Environments"][0])["Status"]
            == "Ready" and e, timeout=900, step=10, what="shop-new Ready")
        assert clock.now() - started == 300  # the modeled launch at p50, polled every 10 s
        assert ready["Health"] == "Green" and ready["VersionLabel"] == "v1"
        health = eb.describe_environment_health(EnvironmentName="shop-new", AttributeNames=["All"])
        assert (health["Status"], health["Color"]) == ("Ready", "Green")
