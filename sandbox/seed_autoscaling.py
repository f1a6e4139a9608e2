"""The plan's EC2 Auto Scaling groups as they run before pilotlight is deployed.

For each ``compute`` group, in the primary region: a VPC with two subnets and a security group, a key pair, an
instance profile, the application's AMI (imaged from an instance there), the launch template (t3.medium, the key
pair, the profile, IMDSv2 required) and the group running :data:`PRIMARY_INSTANCES` instances InService, with
GroupInServiceInstances metrics collection enabled and a day of datapoints in CloudWatch (AWS/AutoScaling,
AutoScalingGroupName; a peak of :data:`PRIMARY_PEAK` three hours ago). In the DR region: the plan's subnets (one
per zone), security groups and target groups under the plan's own ids and ARNs, and the plan's instance profile.
No key pair is made in the DR region, so the DR template drops it (a flag). The DR template and group are
replicate's to create (lambdas/autoscaling.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any
from unittest import mock

import boto3

from sandbox import clock
from sandbox import seed as base
from workflows.plan import Plan

INSTANCE_TYPE = "t3.medium"
PRIMARY_INSTANCES = 4
PRIMARY_PEAK = 6
METRIC_PERIOD = 600  # one GroupInServiceInstances datum per 10 minutes over the last day


def seed(plan: Plan) -> dict[str, Any]:
    """Create the primary groups and the DR network (instantly; call it inside the sandbox's seeding)."""
    created: dict[str, Any] = {"groups": [], "launch_templates": [], "images": [], "dr_network": {}}
    if not plan.compute:
        return created
    primary = plan.primary_region
    ec2 = boto3.client("ec2", region_name=primary)
    asg = boto3.client("autoscaling", region_name=primary)
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    group_id = ec2.create_security_group(GroupName=f"{plan.name}-compute", Description="app instances",
                                         VpcId=vpc)["GroupId"]
    base_image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for group in plan.compute:
        profile = _instance_profile(group.instance_profile or f"{group.name}-instance")
        ec2.create_key_pair(KeyName=f"{group.name}-key")
        builder = ec2.run_instances(ImageId=base_image, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                                    SubnetId=subnets[0])["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=builder, Name=f"{group.name}-app-v1", NoReboot=True)["ImageId"]
        ec2.terminate_instances(InstanceIds=[builder])
        ec2.create_launch_template(LaunchTemplateName=group.launch_template, LaunchTemplateData={
            "ImageId": image_id, "InstanceType": INSTANCE_TYPE, "KeyName": f"{group.name}-key",
            "SecurityGroupIds": [group_id], "IamInstanceProfile": {"Name": profile},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": group.name}]}]})
        asg.create_auto_scaling_group(
            AutoScalingGroupName=group.name,
            LaunchTemplate={"LaunchTemplateName": group.launch_template, "Version": "$Default"},
            MinSize=2, MaxSize=PRIMARY_PEAK + 2, DesiredCapacity=PRIMARY_INSTANCES, VPCZoneIdentifier=",".join(subnets))
        asg.enable_metrics_collection(AutoScalingGroupName=group.name, Metrics=["GroupInServiceInstances"],
                                      Granularity="1Minute")
        put_in_service_history(primary, group.name)
        created["groups"].append(group.name)
        created["launch_templates"].append(group.launch_template)
        created["images"].append(image_id)
    created["dr_network"] = seed_dr_network(plan)
    return created


def put_in_service_history(region: str, name: str, hours: int = 24, level: int = PRIMARY_INSTANCES,
                           peak: int = PRIMARY_PEAK, peak_hours_ago: float = 3.0) -> int:
    """GroupInServiceInstances datapoints for ``name`` over the last ``hours``: ``level``, ``peak`` once."""
    cw = boto3.client("cloudwatch", region_name=region)
    end = clock.datetime_now()
    stamps = [end - dt.timedelta(seconds=s) for s in range(METRIC_PERIOD, hours * 3600 + 1, METRIC_PERIOD)]
    peak_at = min(stamps, key=lambda t: abs((end - t).total_seconds() - peak_hours_ago * 3600))
    data = [{"MetricName": "GroupInServiceInstances", "Dimensions": [{"Name": "AutoScalingGroupName", "Value": name}],
             "Timestamp": t, "Value": float(peak if t == peak_at else level), "Unit": "None"} for t in stamps]
    for i in range(0, len(data), 20):
        cw.put_metric_data(Namespace="AWS/AutoScaling", MetricData=data[i:i + 20])
    return len(data)


def _instance_profile(name: str) -> str:
    """An instance profile (global) with a role of the same name, unless it exists."""
    iam = boto3.client("iam")
    try:
        iam.get_instance_profile(InstanceProfileName=name)
        return name
    except iam.exceptions.NoSuchEntityException:
        pass
    trust = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": '
             '"ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def seed_dr_network(plan: Plan) -> dict[str, Any]:
    """The DR subnets, security groups and target groups of the plan's groups, under the plan's ids and ARNs
    (existing ones are kept), and the plan's instance profiles."""
    dr = plan.dr_region
    ec2 = boto3.client("ec2", region_name=dr)
    elb = boto3.client("elbv2", region_name=dr)
    vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": "Name", "Value": f"{plan.name}-compute-dr"}]}])["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    existing_subnets = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    wanted = list(dict.fromkeys(s for g in plan.compute for s in g.dr_network.subnets))
    for i, subnet in enumerate(wanted):
        if subnet not in existing_subnets:
            _subnet(ec2, vpc, subnet, f"10.60.{i}.0/24", zones[i % len(zones)])
    existing_groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    groups = sorted({s for g in plan.compute for s in g.dr_network.security_groups})
    for sg in groups:
        if sg not in existing_groups:
            base._security_group(ec2, vpc, sg, f"{plan.name}-compute-{sg}")
    arns = sorted({a for g in plan.compute for a in g.dr_target_group_arns})
    for arn in arns:
        _target_group(elb, vpc, arn)
    for group in plan.compute:
        if group.instance_profile:
            _instance_profile(group.instance_profile)
    return {"vpc": vpc, "subnets": wanted, "security_groups": groups, "target_groups": arns}


def _subnet(ec2: Any, vpc: str, subnet_id: str, cidr: str, zone: str) -> None:
    """A subnet under the id the plan names (moto mints random ids)."""
    from moto.ec2.models import subnets

    with mock.patch.object(subnets, "random_subnet_id", return_value=subnet_id):
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)


def _target_group(elb: Any, vpc: str, arn: str) -> None:
    """A target group under the ARN the plan names (arn:...:targetgroup/<name>/<id>; moto mints the id)."""
    from moto.elbv2 import models

    name = arn.split(":targetgroup/", 1)[1].split("/", 1)[0]
    try:
        elb.describe_target_groups(TargetGroupArns=[arn])
        return
    except elb.exceptions.TargetGroupNotFoundException:
        pass
    with mock.patch.object(models, "make_arn_for_target_group", return_value=arn):
        elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance",
                                HealthCheckPath="/health")
