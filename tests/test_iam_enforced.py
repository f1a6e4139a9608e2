"""The sandbox enforces each function's IAM: the policy infra/iam.py generates is what the handlers get."""

from __future__ import annotations

import json

import boto3
import pytest

from infra import iam as plan_iam
from sandbox import Sandbox
from sandbox.iam_enforce import Enforcer
from workflows import render


@pytest.fixture(scope="module")
def replicated(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan)
        summary = sb.build_pilot_light(reference_plan)
        yield sb, reference_plan, summary


def test_replicate_runs_within_every_function_policy(replicated):
    sb, plan, summary = replicated
    # The saved configuration rewrites the primary's DB endpoint, so it reads the primary instance:
    # its role must grant rds:DescribeDBInstances there, not only on the DR replica.
    assert summary["ok"], summary
    assert sb.iam.denials == []
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    (template,) = eb.describe_applications(ApplicationNames=["shop"])["Applications"][0]["ConfigurationTemplates"]
    assert template.startswith("pilotlight-shop-")


def test_a_call_outside_the_role_is_denied_as_aws_denies_it(replicated):
    sb, plan, _ = replicated
    # The failover's resize may touch the DR replicas only: the primary instance is not its to resize.
    out = boto3.client("lambda", region_name=plan.dr_region).invoke(
        FunctionName=render.function_name(plan, "rds"),
        Payload=json.dumps({"action": "resize", "region": plan.primary_region, "identifier": "shop-db",
                            "instance_class": "db.r6g.large"}))
    payload = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "AccessDenied"
    assert "not authorized to perform: rds:ModifyDBInstance on resource: " \
           f"arn:aws:rds:{plan.primary_region}:{sb.account_id}:db:shop-db" in payload["errorMessage"]
    assert sb.iam.denials[-1]["action"] == "rds:ModifyDBInstance"


def _policy(plan, service):
    return plan_iam.statements(plan_iam.registry_for(service), plan, account="123456789012", extra={"topic": []})


def test_the_engine_scopes_by_resource_region_and_condition(reference_plan):
    enforcer = Enforcer("123456789012")
    rds = _policy(reference_plan, "rds")
    dr = "arn:aws:rds:us-west-2:123456789012:db:shop-db-dr"
    region = {"aws:RequestedRegion": "us-west-2"}
    assert enforcer.allowed(rds, "rds:PromoteReadReplica", dr, region)
    assert not enforcer.allowed(rds, "rds:PromoteReadReplica", dr.replace("shop-db-dr", "other"), region)
    assert not enforcer.allowed(rds, "rds:DeleteDBInstance", dr, region)
    # A listing without an identifier needs db:* in the region, which no pilotlight role holds.
    assert not enforcer.allowed(rds, "rds:DescribeDBInstances", "arn:aws:rds:us-west-2:123456789012:db:*", region)
    readiness = _policy(reference_plan, "readiness")
    assert enforcer.allowed(readiness, "cloudwatch:PutMetricData", None, {"cloudwatch:namespace": "pilotlight"})
    assert not enforcer.allowed(readiness, "cloudwatch:PutMetricData", None, {"cloudwatch:namespace": "AWS/RDS"})


def test_launching_an_environment_needs_what_beanstalk_does_as_the_caller(reference_plan):
    enforcer = Enforcer("123456789012")
    beanstalk = _policy(reference_plan, "beanstalk")
    region = {"aws:RequestedRegion": "us-west-2"}
    for action in ("cloudformation:CreateStack", "autoscaling:CreateAutoScalingGroup", "ec2:RunInstances",
                   "elasticloadbalancing:CreateLoadBalancer", "iam:PassRole"):
        assert enforcer.allowed(beanstalk, action, None, region), action
