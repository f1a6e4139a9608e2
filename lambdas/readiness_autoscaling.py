"""Readiness checks of an EC2 Auto Scaling group (``kind: asg`` items of the readiness workflow).

- ``dr-launch-template``: the DR launch template exists; its default version launches an available AMI in the DR
  region that is the DR copy (``pilotlight:source-ami`` tag) of the primary template's current AMI (its age is
  evidence, not a limit: the primary's image is the user's build and may rightly stay the same for weeks);
- ``dr-group``: the DR group exists on the DR template ($Default), its subnets exist (with their zones), and its
  min and desired capacity are at least the plan's pilot size;
- ``asg-vcpu-quota``: the DR region's On-Demand standard vCPU quota (L-1216C47A) covers what runs there now plus
  the instances the failover adds to reach its capacity (lambdas/autoscaling.py ``failover_capacity``);
- ``dr-target-groups``: each of the plan's DR target groups exists (only when the plan names some).

Each check only reads; the result shape is lambdas/readiness_report.py ``result``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas import ami, autoscaling
from lambdas.common import CONNECTION_ERRORS, aws_errors, client, raise_mapped
from lambdas.readiness_report import NOT_READY, READY, UNKNOWN, now, result

# What the readiness check action needs for these checks (merged into lambdas/readiness.py ``check``). All are
# reads without resource-level permissions (ec2:Describe*, autoscaling:Describe*, elasticloadbalancing:Describe*,
# cloudwatch:GetMetricStatistics) or, for GetServiceQuota, granted on "*" as lambdas/readiness.py does.
PERMISSIONS: list[str] = ["ec2:DescribeLaunchTemplateVersions", "ec2:DescribeImages", "ec2:DescribeSubnets",
                          "ec2:DescribeInstances", "ec2:DescribeInstanceTypes",
                          "autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetGroups",
                          "servicequotas:GetServiceQuota", "cloudwatch:GetMetricStatistics"]
RESOURCES: dict[str, str | tuple[str, ...]] = {}

EC2_VCPU_QUOTA = ("ec2", "L-1216C47A")  # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances
STANDARD_FAMILIES = set("acdhimrtz")


def _resource(item: dict[str, Any]) -> str:
    return item.get("resource") or item["name"]


def _image(ec2: Any, image_id: str) -> dict[str, Any] | None:
    try:
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable",
                                             "InvalidAMIID.Malformed"):
            return None
        raise_mapped(exc, f"describe {image_id}")
    return found[0] if found else None


def _primary_image(ctx: dict[str, Any], item: dict[str, Any]) -> tuple[str | None, str | None]:
    """The primary template's current AMI, or None and why it could not be read."""
    try:
        version = autoscaling.default_version(client("ec2", ctx["primary_region"], fast=True), item["launch_template"])
    except Exception as exc:  # noqa: BLE001 - the primary region may be down: the check still says what it can
        return None, f"{type(exc).__name__}: {exc}"
    if version is None:
        return None, f"launch template {item['launch_template']} does not exist in {ctx['primary_region']}"
    return (version.get("LaunchTemplateData") or {}).get("ImageId"), None


def _template_check(ctx: dict[str, Any], item: dict[str, Any], version: dict[str, Any] | None) -> dict[str, Any]:
    dr, name, resource = ctx["dr_region"], item["dr_launch_template"], _resource(item)
    if version is None:
        return result("dr-launch-template", resource, NOT_READY,
                      f"launch template {name} does not exist in {dr}: replicate creates it")
    image_id = (version.get("LaunchTemplateData") or {}).get("ImageId")
    evidence: dict[str, Any] = {"template": name, "version": version.get("VersionNumber"), "image_id": image_id}
    image = _image(client("ec2", dr), image_id) if image_id else None
    if image is None or image.get("State") != "available":
        state = image.get("State") if image else "missing"
        return result("dr-launch-template", resource, NOT_READY, f"{name} version {version.get('VersionNumber')} "
                      f"launches {image_id or 'no AMI'}, which is {state} in {dr}", **evidence)
    source = ami._tags(image).get(ami.TAG_SOURCE)
    age = (now() - ami.created_at(image)).total_seconds() / 3600
    evidence.update(source_image=source, age_hours=round(age, 2))
    current, why = _primary_image(ctx, item)
    evidence["primary_image"] = current
    if current is not None and source != current:
        return result("dr-launch-template", resource, NOT_READY, f"{name} launches {image_id}, a copy of "
                      f"{source or 'no pilotlight-copied image'}, but {item['launch_template']} in "
                      f"{ctx['primary_region']} now launches {current}: replicate copies it", **evidence)
    # No age limit here: the primary template's image is the user's build, which may rightly stay the same for
    # weeks; what matters is that the DR template launches the copy of the image the primary launches now.
    if current is None:
        return result("dr-launch-template", resource, UNKNOWN, f"{name} launches {image_id} ({age:.1f} h old), but "
                      f"the primary template could not be read to compare: {why}", **evidence)
    return result("dr-launch-template", resource, READY, f"{name} launches {image_id}, the DR copy of {current} "
                  f"(copied {age:.1f} h ago)", **evidence)


def _group_check(ctx: dict[str, Any], item: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Any]:
    dr, name, resource = ctx["dr_region"], item["dr_group_name"], _resource(item)
    pilot = int(item.get("pilot_size") or 0)
    if group is None:
        return result("dr-group", resource, NOT_READY, f"Auto Scaling group {name} does not exist in {dr}: "
                      "replicate creates it", pilot_size=pilot)
    spec = autoscaling._template_of(group)
    subnets = autoscaling._subnets(group)
    evidence: dict[str, Any] = {"template": spec.get("LaunchTemplateName"), "version": spec.get("Version"),
                                "min": group.get("MinSize"), "desired": group.get("DesiredCapacity"),
                                "max": group.get("MaxSize"), "subnets": subnets, "pilot_size": pilot}
    problems = []
    if spec.get("LaunchTemplateName") != item["dr_launch_template"] or spec.get("Version") not in ("$Default", None):
        problems.append(f"launches {spec.get('LaunchTemplateName')} {spec.get('Version')}, not "
                        f"{item['dr_launch_template']} $Default")
    wanted = sorted(item.get("subnets") or [])
    ids = sorted(set(subnets) | set(wanted))
    with aws_errors(f"describe subnets of {name}"):
        found = {s["SubnetId"]: s.get("AvailabilityZone") for s in client("ec2", dr).describe_subnets(
            Filters=[{"Name": "subnet-id", "Values": ids}])["Subnets"]} if ids else {}
    evidence["zones"] = {s: found.get(s) for s in subnets}
    missing = [s for s in subnets if s not in found]
    if missing:
        problems.append(f"subnets {', '.join(missing)} do not exist")
    if wanted and subnets != wanted:
        problems.append(f"subnets {', '.join(subnets) or 'none'}, plan says {', '.join(wanted)}")
    if int(group.get("MinSize", 0)) < pilot or int(group.get("DesiredCapacity", 0)) < pilot:
        problems.append(f"min {group.get('MinSize')} / desired {group.get('DesiredCapacity')} below the pilot size "
                        f"of {pilot}")
    if problems:
        return result("dr-group", resource, NOT_READY, f"{name} in {dr}: " + "; ".join(problems), **evidence)
    zones = sorted({z for z in evidence["zones"].values() if z})
    return result("dr-group", resource, READY, f"{name} in {dr} launches {item['dr_launch_template']} in "
                  f"{len(subnets)} subnets ({', '.join(zones)}), {group.get('DesiredCapacity')} desired "
                  f"(pilot size {pilot})", **evidence)


def _quota(region: str) -> float:
    with aws_errors(f"read quota {EC2_VCPU_QUOTA[0]}/{EC2_VCPU_QUOTA[1]} in {region}"):
        return float(client("service-quotas", region).get_service_quota(
            ServiceCode=EC2_VCPU_QUOTA[0], QuotaCode=EC2_VCPU_QUOTA[1])["Quota"]["Value"])
    return 0.0


def _quota_check(ctx: dict[str, Any], item: dict[str, Any], version: dict[str, Any] | None,
                 group: dict[str, Any] | None) -> dict[str, Any]:
    dr, resource = ctx["dr_region"], _resource(item)
    instance_type = ((version or {}).get("LaunchTemplateData") or {}).get("InstanceType")
    if not instance_type:
        return result("asg-vcpu-quota", resource, UNKNOWN, f"cannot size the failover of {item['dr_group_name']}: "
                      f"no instance type in launch template {item['dr_launch_template']} in {dr}")
    try:
        capacity = autoscaling.failover_capacity(ctx["primary_region"], dr, item["name"], item["capacity"])
    except CONNECTION_ERRORS as exc:  # failover_capacity maps the primary's failures itself; belt and braces
        raise_mapped(exc, "size the failover")
    ec2 = client("ec2", dr)
    with aws_errors(f"describe instances in {dr}"):
        running = [i["InstanceType"] for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
            for r in page["Reservations"] for i in r["Instances"]]
        types = sorted({instance_type} | set(running))
        vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"]
                 for t in ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]}
    standard = instance_type[:1] in STANDARD_FAMILIES
    in_use = sum(vcpus.get(t, 0) for t in running if t[:1] in STANDARD_FAMILIES)
    # What the group runs now is already in use; the failover adds the rest of its capacity.
    running_now = len((group or {}).get("Instances") or [])
    added = max(0, int(capacity["desired"]) - running_now)
    need = added * vcpus.get(instance_type, 0) if standard else 0
    quota = _quota(dr)
    evidence = {"quota_code": EC2_VCPU_QUOTA[1], "quota_vcpus": quota, "in_use_vcpus": in_use,
                "failover_vcpus": need, "instance_type": instance_type, "vcpus_per_instance": vcpus.get(instance_type),
                "failover_capacity": capacity["desired"], "capacity_basis": capacity["basis"],
                "capacity_reason": capacity["reason"], "group_instances_now": running_now}
    if not standard:
        return result("asg-vcpu-quota", resource, READY, f"{instance_type} is not a standard family: "
                      f"L-1216C47A does not limit it (its own family quota is not checked)", **evidence)
    detail = f"{added} x {instance_type} ({vcpus.get(instance_type, 0)} vCPU) to reach {capacity['desired']}"
    if in_use + need > quota:
        return result("asg-vcpu-quota", resource, NOT_READY, f"EC2 on-demand standard vCPU quota in {dr} is "
                      f"{quota:g}; the failover of {item['dr_group_name']} launches {need} vCPUs ({detail}) on top "
                      f"of {in_use} in use", **evidence)
    return result("asg-vcpu-quota", resource, READY, f"{in_use + need:g} of {quota:g} on-demand standard vCPUs in "
                  f"{dr} after the failover launches {need} ({detail})", **evidence)


def _target_groups_check(ctx: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    dr, resource = ctx["dr_region"], _resource(item)
    elb = client("elbv2", dr)
    found, missing = [], []
    for arn in item.get("target_group_arns") or []:
        try:
            elb.describe_target_groups(TargetGroupArns=[arn])
            found.append(arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
                missing.append(arn)
                continue
            raise_mapped(exc, f"describe target group {arn}")
    if missing:
        return result("dr-target-groups", resource, NOT_READY, f"target groups missing in {dr}: "
                      f"{', '.join(missing)}; the DR group cannot register its instances", found=found,
                      missing=missing)
    return result("dr-target-groups", resource, READY, f"{len(found)} target groups exist in {dr}", found=found)


def check_group(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of one Auto Scaling group item."""
    dr = ctx["dr_region"]
    version = autoscaling.default_version(client("ec2", dr), item["dr_launch_template"])
    group = autoscaling.describe_group(client("autoscaling", dr), item["dr_group_name"])
    checks = [_template_check(ctx, item, version), _group_check(ctx, item, group),
              _quota_check(ctx, item, version, group)]
    if item.get("target_group_arns"):
        checks.append(_target_groups_check(ctx, item))
    return checks
