"""EC2 Auto Scaling steps (lambdas/autoscaling.py, lambdas/readiness_autoscaling.py) against the sandbox.

The actions are invoked as the deployed function, under the IAM policy infra/iam.py generates for it (the
enforcing sandbox refuses what the policy does not grant), so the resource kinds are proven with them. The AMI copy
is made by the ami function (lambdas/ami.py copy_image, the group's name as its ``environment``), as replicate does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import iam as plan_iam
from lambdas import autoscaling, drill
from lambdas.common import Registry
from lambdas.readiness_autoscaling import PERMISSIONS, RESOURCES, check_group
from sandbox import Sandbox, clock, seed_autoscaling
from sandbox.adapters_autoscaling import ASG_LAUNCH, TARGET_HEALTHY
from workflows import render
from workflows.plan import Plan, parse_plan

PRIMARY, DR = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"
NAME, DR_NAME, TEMPLATE, DR_TEMPLATE = "web-use1", "web-usw2", "web", "web-dr"
SUBNETS = ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012"]
SGS = ["sg-0a1b2c3d4e5f60021"]
TG = f"arn:aws:elasticloadbalancing:{DR}:{ACCOUNT}:targetgroup/web-usw2/0a1b2c3d4e5f6003"
DRILL_ID = "d0abcdef1"


def make_plan(topology: str = "pilot-light", **group: Any) -> Plan:
    return parse_plan({
        "name": "shop", "primary_region": PRIMARY, "dr_region": DR, "topology": topology,
        "objectives": {"rto_minutes": 30, "rpo_minutes": 15},
        "compute": [{"name": NAME, "launch_template": TEMPLATE, "dr_group_name": DR_NAME,
                     "dr_launch_template": DR_TEMPLATE,
                     "dr_network": {"subnets": SUBNETS, "security_groups": SGS},
                     "failover_capacity": {"instances": 3}, "dr_target_group_arns": [TG], **group}],
    }, "plan.yaml")


class Estate:
    def __init__(self, sb: Sandbox, plan: Plan) -> None:
        self.sb, self.plan = sb, plan
        self.group = plan.compute[0]
        self.functions = {}
        for service in ("autoscaling", "ami"):
            name = render.function_name(plan, service)
            sb.lambdas.register(name, service)
            sb.iam.attach(name, plan_iam.statements(plan_iam.registry_for(service), plan, account=sb.account_id,
                                                    extra={"topic": []}))
            self.functions[service] = name
        readiness = Registry("readiness-autoscaling")
        readiness.action("check", permissions=PERMISSIONS, resource=RESOURCES)(check_group)
        self.readiness = f"pilotlight-{plan.name}-readiness-asg"
        sb.iam.attach(self.readiness, plan_iam.statements(readiness, plan, account=sb.account_id, extra={}))
        self.asg = boto3.client("autoscaling", region_name=DR)
        self.ec2 = boto3.client("ec2", region_name=DR)

    def call(self, action: str, service: str = "autoscaling", **params: Any) -> dict[str, Any]:
        """Invoke the action as the deployed function (its IAM enforced); AWS-side errors raise."""
        out = boto3.client("lambda", region_name=DR).invoke(
            FunctionName=self.functions[service], Payload=json.dumps({"action": action, **params}))
        payload = json.loads(out["Payload"].read())
        if out.get("FunctionError"):
            raise RuntimeError(f"{payload['errorType']}: {payload['errorMessage']}")
        return payload

    def poll(self, act: str, check: str, params: dict[str, Any], check_params: dict[str, Any] | None = None,
             step: float = 30, limit: int = 200, service: str = "autoscaling") -> dict[str, Any]:
        """The workflows' poll loop: act, then check every ``step`` modeled seconds until done."""
        out = self.call(act, service, **params)
        while not out["done"]:
            assert out["attempt"] < limit, out
            clock.advance(step)
            extra = {k: out[k] for k in ("deleted",) if k in out}
            out = self.call(check, service, **{**(check_params or params), **extra, "attempt": out["attempt"]})
        return out

    # -- replicate, as workflows/replicate.py runs it --------------------------------------------------
    def copy_image(self) -> str:
        template = self.call("template_image", region=PRIMARY, launch_template=TEMPLATE)
        params = {"source_region": PRIMARY, "region": DR, "plan": self.plan.name, "environment": NAME,
                  "image_id": template["image_id"]}
        copy = self.call("copy_image", "ami", **params)
        while not copy["done"]:
            clock.advance(300)
            copy = self.call("check_image", "ami", region=DR, image_id=copy["image_id"], attempt=copy["attempt"])
        return copy["image_id"]

    def ensure_template(self, image_id: str) -> dict[str, Any]:
        return self.call("ensure_launch_template", primary_region=PRIMARY, region=DR, plan=self.plan.name,
                         launch_template=TEMPLATE, dr_launch_template=DR_TEMPLATE, image_id=image_id,
                         security_groups=SGS, instance_profile=self.group.instance_profile)["record"]

    def ensure_group(self) -> dict[str, Any]:
        g = self.group
        return self.call("ensure_group", region=DR, plan=self.plan.name, dr_group_name=DR_NAME,
                         dr_launch_template=DR_TEMPLATE, subnets=SUBNETS, pilot_size=g.pilot_size,
                         max_size=g.max_size, target_group_arns=[TG])["record"]

    def replicate(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        image_id = self.copy_image()
        return image_id, self.ensure_template(image_id), self.ensure_group()

    def described(self, name: str = DR_NAME) -> dict[str, Any] | None:
        found = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        return found[0] if found else None

    def readiness_checks(self, **ctx: Any) -> dict[str, dict[str, Any]]:
        g = self.group
        item = {"kind": "asg", "resource": NAME, "name": NAME, "launch_template": TEMPLATE,
                "dr_group_name": DR_NAME, "dr_launch_template": DR_TEMPLATE, "subnets": SUBNETS,
                "pilot_size": g.pilot_size, "capacity": g.failover_capacity.model_dump(),
                "target_group_arns": [TG]}
        context = {"primary_region": PRIMARY, "dr_region": DR, "plan": self.plan.name, "ami_max_age_hours": 24,
                   **ctx}
        with self.sb.iam.acting_as(self.readiness):
            return {c["check"]: c for c in check_group(context, item)}


@pytest.fixture
def estate(request: pytest.FixtureRequest) -> Iterator[Estate]:
    plan = make_plan(**getattr(request, "param", {}))
    with Sandbox() as sb:
        sb.seed(plan)
        yield Estate(sb, plan)
        assert sb.iam.denials == [], sb.iam.denials


WARM = {"topology": "warm-standby", "pilot_size": 2}


# -- replicate ------------------------------------------------------------------------------------------

def test_replicate_copies_the_template_onto_the_dr_ami_and_maps_what_is_regional(estate: Estate) -> None:
    image_id, record, _ = estate.replicate()
    assert record["status"] == "created" and record["version"] == 1 and record["image_id"] == image_id
    # The primary's key pair does not exist in the DR region: dropped, with a flag.
    assert any("key pair web-use1-key" in f for f in record["flags"])
    (version,) = estate.ec2.describe_launch_template_versions(
        LaunchTemplateName=DR_TEMPLATE, Versions=["$Default"])["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["ImageId"] == image_id and data["InstanceType"] == "t3.medium"
    assert data["SecurityGroupIds"] == SGS and "KeyName" not in data
    assert data["IamInstanceProfile"] == {"Name": "web-use1-instance"}  # the primary's: the plan names none
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    tags = estate.ec2.describe_launch_templates(LaunchTemplateNames=[DR_TEMPLATE])["LaunchTemplates"][0]["Tags"]
    assert {"Key": "pilotlight:plan", "Value": "shop"} in tags
    # A re-run changes nothing; a new primary AMI makes a new default version.
    assert estate.ensure_template(image_id)["status"] == "unchanged"
    newer = estate.ensure_template("ami-0123456789abcdef0")
    assert newer["status"] == "updated" and newer["version"] == 2 and newer["changed"] == ["ImageId"]
    described = estate.ec2.describe_launch_templates(LaunchTemplateNames=[DR_TEMPLATE])["LaunchTemplates"][0]
    assert described["DefaultVersionNumber"] == 2


@pytest.mark.parametrize("estate", [{**WARM, "instance_profile": "web-dr-instance"}], indirect=True)
def test_the_plan_instance_profile_replaces_the_primary_one(estate: Estate) -> None:
    _, record, _ = estate.replicate()
    (version,) = estate.ec2.describe_launch_template_versions(
        LaunchTemplateName=DR_TEMPLATE, Versions=["$Default"])["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["IamInstanceProfile"] == {"Name": "web-dr-instance"}
    assert record["status"] == "created"


def test_a_pilot_light_group_runs_nothing_and_collects_its_metric(estate: Estate) -> None:
    _, _, record = estate.replicate()
    assert record["status"] == "created" and (record["min"], record["desired"], record["max"]) == (0, 0, 1)
    group = estate.described()
    assert group is not None and group["DesiredCapacity"] == 0 and group["Instances"] == []
    assert group["LaunchTemplate"]["LaunchTemplateName"] == DR_TEMPLATE
    assert group["LaunchTemplate"]["Version"] == "$Default"
    assert sorted(group["VPCZoneIdentifier"].split(",")) == SUBNETS and group["TargetGroupARNs"] == [TG]
    assert [m["Metric"] for m in group["EnabledMetrics"]] == ["GroupInServiceInstances"]
    assert {"pilotlight:plan": "shop"}.items() <= {t["Key"]: t["Value"] for t in group["Tags"]}.items()
    assert estate.ensure_group()["status"] == "unchanged"


@pytest.mark.parametrize("estate", [WARM], indirect=True)
def test_a_warm_standby_group_is_never_scaled_down(estate: Estate) -> None:
    _, _, record = estate.replicate()
    assert record["desired"] == 2
    estate.asg.update_auto_scaling_group(AutoScalingGroupName=DR_NAME, MinSize=5, MaxSize=6, DesiredCapacity=5)
    again = estate.ensure_group()
    assert again["status"] == "drift" and "runs 5 instances, above its pilot size" in again["drift"][0]
    group = estate.described()
    assert group is not None and (group["MinSize"], group["DesiredCapacity"]) == (5, 5)
    # Below its pilot size, on another template and missing a subnet: corrected.
    estate.asg.update_auto_scaling_group(AutoScalingGroupName=DR_NAME, MinSize=0, DesiredCapacity=1,
                                         VPCZoneIdentifier=SUBNETS[0])
    fixed = estate.ensure_group()
    assert fixed["status"] == "updated", fixed
    group = estate.described()
    assert group is not None and (group["MinSize"], group["DesiredCapacity"]) == (2, 2)
    assert sorted(group["VPCZoneIdentifier"].split(",")) == SUBNETS


# -- failover ---------------------------------------------------------------------------------------------

def test_failover_capacity_by_number(estate: Estate) -> None:
    out = estate.call("failover_capacity", primary_region=PRIMARY, region=DR, name=NAME,
                      capacity={"instances": 3})
    assert out == {"desired": 3, "basis": "instances", "reason": "the plan's fixed 3 instances", "primary_max": None}


def test_failover_capacity_by_percent_of_the_primary_peak(estate: Estate) -> None:
    capacity = {"percent_of_primary": 50, "lookback_hours": 24, "minimum": 2}
    out = estate.call("failover_capacity", primary_region=PRIMARY, region=DR, name=NAME, capacity=capacity)
    assert out["primary_max"] == seed_autoscaling.PRIMARY_PEAK and out["desired"] == 3
    assert out["basis"] == "percent_of_primary"
    # The peak three hours ago is outside a one-hour lookback: 50% of 4, raised to the minimum of 3.
    out = estate.call("failover_capacity", primary_region=PRIMARY, region=DR, name=NAME,
                      capacity={**capacity, "lookback_hours": 1, "minimum": 3})
    assert out["primary_max"] == 4 and out["desired"] == 3 and "minimum of 3" in out["reason"]


def test_failover_capacity_falls_back_to_the_minimum_without_the_primary(estate: Estate) -> None:
    capacity = {"percent_of_primary": 100, "lookback_hours": 24, "minimum": 2}
    with estate.sb.region_unreachable(PRIMARY, "cloudwatch"):
        out = estate.call("failover_capacity", primary_region=PRIMARY, region=DR, name=NAME, capacity=capacity)
    assert out["desired"] == 2 and out["basis"] == "minimum" and out["primary_max"] is None
    assert f"the primary region {PRIMARY} did not answer" in out["reason"]
    # A group without datapoints: the minimum too, saying so.
    out = estate.call("failover_capacity", primary_region=PRIMARY, region=DR, name="other", capacity=capacity)
    assert out["basis"] == "minimum" and "no GroupInServiceInstances datapoints" in out["reason"]


def test_scale_and_check_wait_for_the_modeled_launch_and_health_checks(estate: Estate) -> None:
    estate.replicate()
    start = clock.now()
    first = estate.call("scale_group", region=DR, dr_group_name=DR_NAME, desired=3)
    assert first["done"] is False and first["in_service"] == 0 and first["scaled"]["desired"] == [0, 3]
    group = estate.described()
    assert group is not None and {i["LifecycleState"] for i in group["Instances"]} == {"Pending"}
    params = {"region": DR, "dr_group_name": DR_NAME, "desired": 3, "target_group_arns": [TG]}
    seen_initial = False
    out = estate.call("check_group", **params)
    while not out["done"]:
        clock.advance(15)
        out = estate.call("check_group", **{**params, "attempt": out["attempt"]})
        if out["in_service"] == 3 and out["healthy_targets"][TG] < 3:
            seen_initial = True
    elapsed = clock.now() - start
    assert out["in_service"] == 3 and out["healthy_targets"] == {TG: 3}
    assert seen_initial  # InService, registered, still in its initial health checks
    assert ASG_LAUNCH[0] + TARGET_HEALTHY[0] <= elapsed <= ASG_LAUNCH[0] + TARGET_HEALTHY[0] + 30
    health = boto3.client("elbv2", region_name=DR).describe_target_health(TargetGroupArn=TG)
    assert {h["TargetHealth"]["State"] for h in health["TargetHealthDescriptions"]} == {"healthy"}
    # Never lowered: a smaller capacity leaves the group at 3.
    again = estate.call("scale_group", region=DR, dr_group_name=DR_NAME, desired=1)
    assert again["scaled"]["desired"] == [3, 3]


# -- drill -------------------------------------------------------------------------------------------------

def test_drill_group_name_fits_the_limit() -> None:
    long = "g" * 255
    name = autoscaling.drill_group_name(long, DRILL_ID)
    assert len(name) == autoscaling.GROUP_NAME_LIMIT and drill.id_in_name(name) == DRILL_ID
    assert autoscaling.drill_group_name(DR_NAME, DRILL_ID) == f"{DR_NAME}-drill-{DRILL_ID}"


@pytest.mark.parametrize("estate", [WARM], indirect=True)
def test_a_drill_group_runs_beside_the_dr_group_and_the_teardown_removes_only_it(estate: Estate) -> None:
    estate.replicate()
    before = estate.described()
    params = {"region": DR, "plan": "shop", "drill_id": DRILL_ID, "dr_group_name": DR_NAME,
              "dr_launch_template": DR_TEMPLATE, "subnets": SUBNETS, "desired": 3}
    out = estate.poll("create_drill_group", "check_drill_group", params)
    name = f"{DR_NAME}-drill-{DRILL_ID}"
    assert out["group"] == name and out["in_service"] == 3
    copy = estate.described(name)
    assert copy is not None and copy["TargetGroupARNs"] == [] and copy["LaunchTemplate"]["Version"] == "$Default"
    tags = {t["Key"]: t["Value"] for t in copy["Tags"]}
    assert tags == {"pilotlight:drill": DRILL_ID, "pilotlight:plan": "shop"}
    # The production target group never sees the drill's instances.
    health = boto3.client("elbv2", region_name=DR).describe_target_health(TargetGroupArn=TG)
    drill_ids = {i["InstanceId"] for i in copy["Instances"]}
    assert not drill_ids & {h["Target"]["Id"] for h in health["TargetHealthDescriptions"]}
    removal = {"region": DR, "plan": "shop", "drills": {"ids": [DRILL_ID]}, "protected": [NAME, DR_NAME],
               "dr_groups": [DR_NAME]}
    gone = estate.poll("remove_drill_groups", "check_drill_groups_removed", removal)
    assert gone["deleted"] == [{"kind": "autoscaling_group", "id": name, "drill": DRILL_ID}]
    assert gone["remaining"] == [] and estate.described(name) is None
    after = estate.described()
    assert after is not None and after["DesiredCapacity"] == before["DesiredCapacity"] == 2
    # A sweep finds nothing left.
    swept = estate.call("remove_drill_groups", region=DR, plan="shop",
                        drills={"sweep": {"running": [], "older_than_seconds": 0}}, dr_groups=[DR_NAME])
    assert swept["deleted"] == [] and swept["done"]


def test_the_teardown_never_touches_a_group_not_tagged_as_the_drill(estate: Estate) -> None:
    estate.replicate()
    name = f"{DR_NAME}-drill-{DRILL_ID}"
    # Named like a drill copy, tagged with the plan but another drill id: not the drill's.
    estate.asg.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": DR_TEMPLATE, "Version": "$Default"},
        MinSize=0, MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=SUBNETS[0],
        Tags=[{"Key": "pilotlight:plan", "Value": "shop", "PropagateAtLaunch": True},
              {"Key": "pilotlight:drill", "Value": "d0zzzzzz1", "PropagateAtLaunch": True}])
    out = estate.call("remove_drill_groups", region=DR, plan="shop", drills={"ids": [DRILL_ID]},
                      dr_groups=[DR_NAME])
    assert out["deleted"] == [] and estate.described(name) is not None


# -- readiness --------------------------------------------------------------------------------------------

def test_readiness_is_ready_after_replicate(estate: Estate) -> None:
    estate.replicate()
    checks = estate.readiness_checks()
    assert {c: r["status"] for c, r in checks.items()} == {
        "dr-launch-template": "READY", "dr-group": "READY", "asg-vcpu-quota": "READY", "dr-target-groups": "READY"}
    quota = checks["asg-vcpu-quota"]["evidence"]
    assert quota["failover_vcpus"] == 3 * 2 and quota["vcpus_per_instance"] == 2


def test_readiness_is_not_ready_before_replicate(estate: Estate) -> None:
    checks = estate.readiness_checks()
    assert checks["dr-launch-template"]["status"] == "NOT_READY"
    assert "does not exist" in checks["dr-launch-template"]["reason"]
    assert checks["dr-group"]["status"] == "NOT_READY" and "does not exist" in checks["dr-group"]["reason"]
    assert checks["asg-vcpu-quota"]["status"] == "UNKNOWN"


def test_readiness_flags_a_template_on_a_stale_ami(estate: Estate) -> None:
    image_id, _, _ = estate.replicate()
    # The primary template moves to a new AMI: the DR template still launches the copy of the old one.
    primary = boto3.client("ec2", region_name=PRIMARY)
    newer = primary.copy_image(SourceImageId=estate.call("template_image", region=PRIMARY,
                                                         launch_template=TEMPLATE)["image_id"],
                               SourceRegion=PRIMARY, Name="web-app-v2")["ImageId"]
    primary.create_launch_template_version(LaunchTemplateName=TEMPLATE, SourceVersion="1",
                                           LaunchTemplateData={"ImageId": newer})
    primary.modify_launch_template(LaunchTemplateName=TEMPLATE, DefaultVersion="2")
    check = estate.readiness_checks()["dr-launch-template"]
    assert check["status"] == "NOT_READY" and f"now launches {newer}" in check["reason"]
    # Back on the first image, a month later: the copy is old but it is the copy of what the primary launches,
    # so the template is ready (a golden image may rightly stay the same for weeks; ami.max_age_hours is about
    # images replicate creates from running Beanstalk instances).
    primary.modify_launch_template(LaunchTemplateName=TEMPLATE, DefaultVersion="1")
    clock.advance(30 * 24 * 3600)
    check = estate.readiness_checks()["dr-launch-template"]
    assert check["status"] == "READY", check
    assert check["evidence"]["image_id"] == image_id and check["evidence"]["age_hours"] >= 720


def test_readiness_flags_a_missing_group_a_small_quota_and_a_missing_target_group(estate: Estate) -> None:
    estate.replicate()
    estate.sb.set_quota(DR, "ec2", "L-1216C47A", 4)
    boto3.client("elbv2", region_name=DR).delete_target_group(TargetGroupArn=TG)
    estate.asg.delete_auto_scaling_group(AutoScalingGroupName=DR_NAME, ForceDelete=True)
    checks = estate.readiness_checks()
    assert checks["dr-group"]["status"] == "NOT_READY" and "does not exist" in checks["dr-group"]["reason"]
    quota = checks["asg-vcpu-quota"]
    assert quota["status"] == "NOT_READY" and "quota in us-west-2 is 4" in quota["reason"]
    assert checks["dr-target-groups"]["status"] == "NOT_READY" and TG in checks["dr-target-groups"]["reason"]


# -- IAM ------------------------------------------------------------------------------------------------

def test_the_policy_keeps_other_groups_and_templates_out_of_reach(estate: Estate) -> None:
    estate.replicate()
    with pytest.raises(RuntimeError, match="AccessDenied: .*autoscaling:UpdateAutoScalingGroup on resource: "
                                           f"arn:aws:autoscaling:{PRIMARY}:{ACCOUNT}:autoScalingGroup:.*{NAME}"):
        estate.call("scale_group", region=PRIMARY, dr_group_name=NAME, desired=10)
    estate.sb.iam.denials.clear()
    statements = plan_iam.statements(plan_iam.registry_for("autoscaling"), estate.plan, account=ACCOUNT,
                                     extra={"topic": []})
    allowed, region = estate.sb.iam.allowed, {"aws:RequestedRegion": DR}
    group = f"arn:aws:autoscaling:{DR}:{ACCOUNT}:autoScalingGroup:1234:autoScalingGroupName/"
    assert allowed(statements, "autoscaling:UpdateAutoScalingGroup", group + DR_NAME, region)
    assert not allowed(statements, "autoscaling:DeleteAutoScalingGroup", group + DR_NAME, region)
    assert allowed(statements, "autoscaling:DeleteAutoScalingGroup", group + f"{DR_NAME}-drill-{DRILL_ID}", region)
    assert not allowed(statements, "autoscaling:UpdateAutoScalingGroup", group + "someone-else", region)
    # No mutating action on "*".
    unscoped = [a for s in statements if s["Resource"] == ["*"] for a in s["Action"]]
    assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in unscoped), unscoped
    # The DR launch template is changed only when tagged with the plan; drill groups carry no target group.
    template = next(s for s in statements if "ec2:ModifyLaunchTemplate" in s["Action"])
    assert template["Condition"] == {"StringEquals": {"aws:ResourceTag/pilotlight:plan": "shop"}}
    drills = next(s for s in statements if "autoscaling:DeleteAutoScalingGroup" in s["Action"])
    assert drills["Condition"]["Null"] == {"autoscaling:TargetGroupARNs": "true"}


def test_the_autoscaling_adapter_answers_match_botocore_output_shapes(estate: Estate) -> None:
    from tests.test_adapter_shapes import Recorder, shape_problems

    checked = {"autoscaling": ["DescribeAutoScalingGroups"], "elbv2": ["DescribeTargetHealth"]}
    recorder = Recorder(checked)
    boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-asg-shape-recorder")
    try:
        estate.replicate()
        estate.call("scale_group", region=DR, dr_group_name=DR_NAME, desired=2)
        for _ in range(3):
            estate.call("check_group", region=DR, dr_group_name=DR_NAME, desired=2, target_group_arns=[TG])
            clock.advance(100)
    finally:
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-asg-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    assert not [(s, op) for s, ops in checked.items() for op in ops if (s, op) not in names], names
    problems = [f"{s}.{op}: {p}" for s, op, model, parsed in recorder.seen if (p := shape_problems(model, parsed))]
    assert not problems, "\n".join(problems[:10])
