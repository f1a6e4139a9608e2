"""EC2 Auto Scaling steps: keep the DR launch template on the DR copy of the primary's AMI and the DR group at its
pilot size (replicate); size and scale the DR group and wait for its capacity in service and healthy (failover);
run a drill's copy of the group beside it and remove it (drill, teardown).

The DR launch template is the primary template's default version with what is regional mapped to the plan's DR
values (the AMI copy, the DR security groups, the instance profile) and what cannot be mapped dropped with a flag
(a key pair the DR region lacks, subnets of network interfaces, placement). Replicate never scales the DR group
down: capacity above its pilot size is a failover's or an operator's, and is reported, not undone.

Every action reads the current state first, so a retried or re-run step converges.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.common import CONNECTION_ERRORS, Registry, aws_errors, client, raise_mapped
from lambdas.errors import InvalidRequest, PreconditionFailed, ResourceNotFound

registry = Registry("autoscaling")
handler = registry.handler

# Auto Scaling group names are up to 255 characters (CreateAutoScalingGroup API reference).
GROUP_NAME_LIMIT = 255
METRIC = "GroupInServiceInstances"
NAMESPACE = "AWS/AutoScaling"
PLAN_TAG = drill.PLAN_TAG
_TEMPLATE_NOT_FOUND = ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound",
                       "InvalidLaunchTemplateId.Malformed")
# Placement fields that name something of the primary region (a zone, a placement group, a host).
_REGIONAL_PLACEMENT = ("AvailabilityZone", "AvailabilityZoneId", "GroupName", "GroupId", "HostId",
                       "HostResourceGroupArn", "PartitionNumber", "SpreadDomain")
# Network interface fields that name the primary region's subnets, interfaces or addresses.
_REGIONAL_INTERFACE = ("SubnetId", "NetworkInterfaceId", "PrivateIpAddress", "PrivateIpAddresses", "Groups")


def drill_group_name(dr_group_name: str, drill_id: str) -> str:
    """The name of a drill's copy of the DR group: ``<dr group>-drill-<id>``."""
    return drill.drill_name(dr_group_name, drill_id, GROUP_NAME_LIMIT)


# -- reading ---------------------------------------------------------------------------------------

def describe_group(asg: Any, name: str) -> dict[str, Any] | None:
    with aws_errors(f"describe Auto Scaling group {name}"):
        found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return found[0] if found else None


def default_version(ec2: Any, name: str) -> dict[str, Any] | None:
    """The launch template's default version (LaunchTemplateVersion), or None when the template does not exist."""
    try:
        found = ec2.describe_launch_template_versions(LaunchTemplateName=name, Versions=["$Default"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _TEMPLATE_NOT_FOUND:
            return None
        raise_mapped(exc, f"describe launch template {name}")
    except CONNECTION_ERRORS as exc:
        raise_mapped(exc, f"describe launch template {name}")
    versions = found.get("LaunchTemplateVersions") or []
    return versions[0] if versions else None


def _tag(tags: list[dict[str, Any]] | None, key: str) -> str | None:
    return next((t.get("Value") for t in tags or [] if t.get("Key") == key), None)


def _subnets(group: dict[str, Any]) -> list[str]:
    return sorted(s for s in (group.get("VPCZoneIdentifier") or "").split(",") if s)


def _template_of(group: dict[str, Any]) -> dict[str, Any]:
    return group.get("LaunchTemplate") or ((group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get(
        "LaunchTemplateSpecification") or {}


def in_service(group: dict[str, Any]) -> list[str]:
    """Ids of the group's instances that are InService and Healthy."""
    return sorted(i["InstanceId"] for i in group.get("Instances") or []
                  if i.get("LifecycleState") == "InService" and i.get("HealthStatus", "Healthy") == "Healthy")


# -- replicate: the DR launch template -------------------------------------------------------------

@registry.action("template_image", permissions=["ec2:DescribeLaunchTemplateVersions"])
def template_image(region: str, launch_template: str) -> dict[str, Any]:
    """The primary template's default version: its AMI, version number, instance type and template id."""
    version = default_version(client("ec2", region), launch_template)
    if version is None:
        raise ResourceNotFound(f"launch template {launch_template} does not exist in {region}")
    data = version.get("LaunchTemplateData") or {}
    if not data.get("ImageId"):
        raise PreconditionFailed(f"the default version {version.get('VersionNumber')} of launch template "
                                 f"{launch_template} in {region} names no AMI (ImageId): nothing to copy")
    return {"image_id": data["ImageId"], "version": version.get("VersionNumber"),
            "instance_type": data.get("InstanceType"), "template_id": version.get("LaunchTemplateId")}


def _conform(value: Any, shape: Any) -> Any:
    """``value`` (an answer's shape) cut to the members ``shape`` (a request's) has: a described version's data
    given back as CreateLaunchTemplateVersion's LaunchTemplateData (answers carry read-only fields, e.g.
    MetadataOptions.State, that a request refuses)."""
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _conform(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list" and isinstance(value, list):
        return [_conform(v, shape.member) for v in value]
    return value


def dr_template_data(primary: dict[str, Any], image_id: str, security_groups: list[str],
                     instance_profile: str | None, dr_key_pairs: set[str] | None) -> tuple[dict[str, Any], list[str]]:
    """The DR template's data from the primary default version's, and flags for what was dropped.

    ``dr_key_pairs``: the key pairs the DR region has, of those the primary data names (None: not checked).
    """
    data = {k: v for k, v in primary.items()}
    flags: list[str] = []
    data["ImageId"] = image_id
    data.pop("SecurityGroups", None)  # group names: default-VPC style, regional
    interfaces = [dict(n) for n in data.get("NetworkInterfaces") or []]
    if interfaces:
        dropped = sorted({k for n in interfaces for k in _REGIONAL_INTERFACE if k in n and k != "Groups"})
        if dropped:
            flags.append(f"network interfaces: dropped {', '.join(dropped)} (primary-region values; the group's "
                         "subnets place the instances)")
        for n in interfaces:
            for key in _REGIONAL_INTERFACE:
                n.pop(key, None)
        # Security groups go on the primary interface when the template defines interfaces (EC2 refuses both).
        primary_eni = next((n for n in interfaces if int(n.get("DeviceIndex", 0)) == 0), interfaces[0])
        primary_eni["Groups"] = sorted(security_groups)
        data["NetworkInterfaces"] = interfaces
        data.pop("SecurityGroupIds", None)
    else:
        data["SecurityGroupIds"] = sorted(security_groups)
    if instance_profile:
        data["IamInstanceProfile"] = {"Name": instance_profile}
    key = data.get("KeyName")
    if key and dr_key_pairs is not None and key not in dr_key_pairs:
        data.pop("KeyName")
        flags.append(f"key pair {key} does not exist in the DR region: dropped (import it there to keep SSH access)")
    placement = dict(data.get("Placement") or {})
    regional = sorted(k for k in _REGIONAL_PLACEMENT if k in placement)
    if regional:
        for k in regional:
            placement.pop(k)
        flags.append(f"placement: dropped {', '.join(regional)} (primary-region values)")
        if placement:
            data["Placement"] = placement
        else:
            data.pop("Placement", None)
    for field in ("KernelId", "RamdiskId"):
        if data.get(field):
            flags.append(f"{field} {data.pop(field)} is a primary-region image: dropped")
    reservation = (data.get("CapacityReservationSpecification") or {}).get("CapacityReservationTarget")
    if reservation:
        data.pop("CapacityReservationSpecification")
        flags.append("capacity reservation target of the primary region: dropped")
    return data, flags


def _normalized(data: dict[str, Any], shape: Any) -> dict[str, Any]:
    out = _conform(data, shape)
    # Launch template data tags what a launch creates (instances, volumes, interfaces); the template's own tags
    # are not part of it (moto shows them there: they are left out of the comparison).
    specs = [s for s in out.get("TagSpecifications") or [] if s.get("ResourceType") != "launch-template"]
    if specs:
        out["TagSpecifications"] = specs
    else:
        out.pop("TagSpecifications", None)
    if isinstance(out.get("SecurityGroupIds"), list):
        out["SecurityGroupIds"] = sorted(out["SecurityGroupIds"])
    return out


def _key_pairs(ec2: Any, name: str | None) -> set[str] | None:
    if not name:
        return None
    try:
        return {k["KeyName"] for k in ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]}
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidKeyPair.NotFound":
            return set()
        raise_mapped(exc, f"describe key pair {name}")
    return None


_TEMPLATE_PERMISSIONS = ["ec2:DescribeLaunchTemplateVersions", "ec2:DescribeKeyPairs", "ec2:CreateLaunchTemplate",
                         "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:CreateTags"]
_TEMPLATE_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "ec2:CreateLaunchTemplate": "asg_new_launch_template",
    "ec2:CreateTags": "asg_launch_template_tagging",
    "ec2:CreateLaunchTemplateVersion": "asg_launch_template",
    "ec2:ModifyLaunchTemplate": "asg_launch_template",
}


@registry.action("ensure_launch_template", permissions=_TEMPLATE_PERMISSIONS, resource=_TEMPLATE_RESOURCES)
def ensure_launch_template(primary_region: str, region: str, plan: str, launch_template: str,
                           dr_launch_template: str, image_id: str, security_groups: list[str],
                           instance_profile: str | None = None) -> dict[str, Any]:
    """Keep the DR template's default version equal to the primary's default version mapped to the DR region.

    Created (tagged with the plan) when missing; a new version set as the default when the default differs;
    unchanged otherwise.
    """
    source = default_version(client("ec2", primary_region), launch_template)
    if source is None:
        raise ResourceNotFound(f"launch template {launch_template} does not exist in {primary_region}")
    ec2 = client("ec2", region)
    shape = ec2.meta.service_model.shape_for("RequestLaunchTemplateData")
    primary = _conform(source.get("LaunchTemplateData") or {}, shape)
    wanted, flags = dr_template_data(primary, image_id, security_groups, instance_profile,
                                     _key_pairs(ec2, primary.get("KeyName")))
    wanted = _normalized(wanted, shape)
    resource = f"launch template {dr_launch_template} ({region})"
    current = default_version(ec2, dr_launch_template)
    detail = {"flags": flags, "image_id": image_id, "source_version": source.get("VersionNumber")}
    if current is None:
        with aws_errors(f"create launch template {dr_launch_template}"):
            out = ec2.create_launch_template(
                LaunchTemplateName=dr_launch_template, LaunchTemplateData=wanted,
                VersionDescription=f"pilotlight {plan}: {launch_template} v{source.get('VersionNumber')} "
                                   f"from {primary_region}",
                TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": PLAN_TAG, "Value": plan}]}])
        template = out.get("LaunchTemplate") or {}
        return {"record": {"resource": resource, "status": "created",
                           "version": template.get("DefaultVersionNumber", 1),
                           "template_id": template.get("LaunchTemplateId"), **detail}}
    have = _normalized(current.get("LaunchTemplateData") or {}, shape)
    template_id = current["LaunchTemplateId"]
    if have == wanted:
        return {"record": {"resource": resource, "status": "unchanged", "version": current.get("VersionNumber"),
                           "template_id": template_id, **detail}}
    with aws_errors(f"add a version to launch template {dr_launch_template}"):
        version = ec2.create_launch_template_version(
            LaunchTemplateId=template_id, LaunchTemplateData=wanted,
            VersionDescription=f"pilotlight {plan}: {launch_template} v{source.get('VersionNumber')} "
                               f"from {primary_region}")["LaunchTemplateVersion"]["VersionNumber"]
        ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(version))
    changed = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
    return {"record": {"resource": resource, "status": "updated", "version": version, "template_id": template_id,
                       "previous_version": current.get("VersionNumber"), "changed": changed, **detail}}


# -- replicate: the DR group -----------------------------------------------------------------------

_GROUP_PERMISSIONS = ["autoscaling:DescribeAutoScalingGroups", "autoscaling:CreateAutoScalingGroup",
                      "autoscaling:UpdateAutoScalingGroup", "autoscaling:EnableMetricsCollection",
                      "autoscaling:CreateOrUpdateTags", "autoscaling:AttachLoadBalancerTargetGroups",
                      "autoscaling:DetachLoadBalancerTargetGroups", "ec2:DescribeLaunchTemplateVersions",
                      "ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "iam:CreateServiceLinkedRole"]
# What Auto Scaling does with the caller's permissions when a group is created or updated on a launch template
# (EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling API permissions"): launch its instances (RunInstances in
# the plan's DR subnets and security groups, the DR AMI copies, from a DR launch template), tag them, pass the
# instance profile's role, and create its service-linked role on the account's first group.
_LAUNCH_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "ec2:RunInstances": "asg_run_instances", "ec2:CreateTags": "asg_run_tagging", "iam:PassRole": "asg_passed_role",
    "iam:CreateServiceLinkedRole": "asg_service_linked_role",
}
_GROUP_RESOURCES: dict[str, str | tuple[str, ...]] = {
    **{p: "asg_group" for p in _GROUP_PERMISSIONS if p.startswith("autoscaling:")}, **_LAUNCH_RESOURCES}


def _max_size(pilot_size: int, max_size: int | None) -> int:
    return max_size if max_size else max(pilot_size, 1)


@registry.action("ensure_group", permissions=_GROUP_PERMISSIONS, resource=_GROUP_RESOURCES)
def ensure_group(region: str, plan: str, dr_group_name: str, dr_launch_template: str, subnets: list[str],
                 pilot_size: int, max_size: int | None = None,
                 target_group_arns: list[str] | None = None) -> dict[str, Any]:
    """Create the DR group at its pilot size when missing; correct an existing one (template, subnets, target
    groups, metrics, tag), raising it to the pilot size but never scaling it down."""
    asg = client("autoscaling", region)
    tgs = sorted(target_group_arns or [])
    resource = f"auto scaling group {dr_group_name} ({region})"
    group = describe_group(asg, dr_group_name)
    template = {"LaunchTemplateName": dr_launch_template, "Version": "$Default"}
    top = _max_size(pilot_size, max_size)
    if group is None:
        params: dict[str, Any] = {
            "AutoScalingGroupName": dr_group_name, "LaunchTemplate": template, "MinSize": pilot_size,
            "MaxSize": max(top, pilot_size), "DesiredCapacity": pilot_size, "VPCZoneIdentifier": ",".join(subnets),
            "Tags": [{"Key": PLAN_TAG, "Value": plan, "PropagateAtLaunch": True}],
        }
        if tgs:
            # Instances count as healthy once the load balancer says so, not merely running.
            params.update(TargetGroupARNs=tgs, HealthCheckType="ELB", HealthCheckGracePeriod=300)
        with aws_errors(f"create Auto Scaling group {dr_group_name}"):
            asg.create_auto_scaling_group(**params)
            asg.enable_metrics_collection(AutoScalingGroupName=dr_group_name, Metrics=[METRIC], Granularity="1Minute")
        return {"record": {"resource": resource, "status": "created", "desired": pilot_size, "min": pilot_size,
                           "max": params["MaxSize"], "subnets": sorted(subnets), "target_groups": tgs, "drift": []}}
    changes: list[str] = []
    drift: list[str] = []
    update: dict[str, Any] = {}
    current = _template_of(group)
    if current.get("LaunchTemplateName") != dr_launch_template or current.get("Version") != "$Default":
        update["LaunchTemplate"] = template
        changes.append(f"launch template {current.get('LaunchTemplateName')} {current.get('Version')} -> "
                       f"{dr_launch_template} $Default")
    if _subnets(group) != sorted(subnets):
        update["VPCZoneIdentifier"] = ",".join(subnets)
        changes.append(f"subnets {', '.join(_subnets(group)) or 'none'} -> {', '.join(sorted(subnets))}")
    desired, low = int(group.get("DesiredCapacity", 0)), int(group.get("MinSize", 0))
    high = int(group.get("MaxSize", 0))
    if low < pilot_size:
        update["MinSize"] = pilot_size
        changes.append(f"min {low} -> {pilot_size}")
    if desired < pilot_size:
        update["DesiredCapacity"] = pilot_size
        changes.append(f"desired {desired} -> {pilot_size}")
    elif desired > pilot_size:
        drift.append(f"runs {desired} instances, above its pilot size of {pilot_size}: a failover or an operator "
                     "scaled it (replicate never scales it down)")
    want_max = max(top, desired, pilot_size)
    if high < want_max:
        update["MaxSize"] = want_max
        changes.append(f"max {high} -> {want_max}")
    with aws_errors(f"update Auto Scaling group {dr_group_name}"):
        if update:
            asg.update_auto_scaling_group(AutoScalingGroupName=dr_group_name, **update)
        have_tgs = set(group.get("TargetGroupARNs") or [])
        missing, extra = sorted(set(tgs) - have_tgs), sorted(have_tgs - set(tgs))
        if missing:
            asg.attach_load_balancer_target_groups(AutoScalingGroupName=dr_group_name, TargetGroupARNs=missing)
            changes.append(f"attached target groups {', '.join(missing)}")
        if extra:
            asg.detach_load_balancer_target_groups(AutoScalingGroupName=dr_group_name, TargetGroupARNs=extra)
            changes.append(f"detached target groups {', '.join(extra)} (not in the plan)")
        if METRIC not in {m.get("Metric") for m in group.get("EnabledMetrics") or []}:
            asg.enable_metrics_collection(AutoScalingGroupName=dr_group_name, Metrics=[METRIC], Granularity="1Minute")
            changes.append(f"enabled {METRIC} metrics")
        if _tag(group.get("Tags"), PLAN_TAG) != plan:
            asg.create_or_update_tags(Tags=[{"ResourceId": dr_group_name, "ResourceType": "auto-scaling-group",
                                             "Key": PLAN_TAG, "Value": plan, "PropagateAtLaunch": True}])
            changes.append(f"tagged {PLAN_TAG}={plan}")
    status = "updated" if changes else ("drift" if drift else "unchanged")
    return {"record": {"resource": resource, "status": status, "changes": changes, "drift": drift,
                       "desired": max(desired, pilot_size), "min": max(low, pilot_size),
                       "max": max(high, want_max), "subnets": sorted(subnets), "target_groups": tgs}}


# -- failover -----------------------------------------------------------------------------------------

def _primary_max(primary_region: str, name: str, lookback_hours: int) -> tuple[float | None, str | None]:
    """The primary group's highest GroupInServiceInstances over the lookback, or None and why."""
    end = dt.datetime.now(dt.UTC)
    seconds = lookback_hours * 3600
    # GetMetricStatistics answers at most 1,440 datapoints; a period of a multiple of 60 s.
    period = max(60, math.ceil(seconds / 1440 / 60) * 60)
    try:
        points = client("cloudwatch", primary_region, fast=True).get_metric_statistics(
            Namespace=NAMESPACE, MetricName=METRIC, Dimensions=[{"Name": "AutoScalingGroupName", "Value": name}],
            StartTime=end - dt.timedelta(seconds=seconds), EndTime=end, Period=period,
            Statistics=["Maximum"])["Datapoints"]
    except (ClientError, *CONNECTION_ERRORS) as exc:
        what = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
        return None, f"the primary region {primary_region} did not answer ({what})"
    if not points:
        return None, (f"no {METRIC} datapoints for {name} in {primary_region} over the last {lookback_hours} h "
                      "(metrics collection not enabled on the group?)")
    return max(float(p["Maximum"]) for p in points), None


@registry.action("failover_capacity", permissions=["cloudwatch:GetMetricStatistics"])
def failover_capacity(primary_region: str, region: str, name: str, capacity: dict[str, Any]) -> dict[str, Any]:
    """How many instances the DR group runs after the failover: the plan's number, or its percentage of the
    primary group's peak in-service count over the lookback (at least ``minimum``; ``minimum`` when the primary
    region does not answer or has no data)."""
    if capacity.get("instances"):
        n = int(capacity["instances"])
        return {"desired": n, "basis": "instances", "reason": f"the plan's fixed {n} instances", "primary_max": None}
    percent = capacity.get("percent_of_primary")
    if not percent:
        raise InvalidRequest("failover_capacity needs instances or percent_of_primary")
    minimum = int(capacity.get("minimum", 1))
    hours = int(capacity.get("lookback_hours", 24))
    peak, why = _primary_max(primary_region, name, hours)
    if peak is None:
        return {"desired": minimum, "basis": "minimum", "reason": f"{why}: the plan's minimum of {minimum}",
                "primary_max": None}
    share = math.ceil(float(percent) * peak / 100)
    desired = max(share, minimum)
    reason = (f"{percent}% of {name}'s peak of {peak:g} in-service instances over {hours} h is {share}"
              + (f", raised to the plan's minimum of {minimum}" if desired > share else ""))
    return {"desired": desired, "basis": "percent_of_primary", "reason": reason, "primary_max": peak}


def _require_group(asg: Any, name: str, region: str) -> dict[str, Any]:
    group = describe_group(asg, name)
    if group is None:
        raise ResourceNotFound(f"Auto Scaling group {name} does not exist in {region}")
    return group


def _healthy_targets(region: str, group: dict[str, Any], target_group_arns: list[str]) -> dict[str, int]:
    elb = client("elbv2", region)
    members = {i["InstanceId"] for i in group.get("Instances") or []}
    out = {}
    for arn in target_group_arns:
        with aws_errors(f"describe target health of {arn}"):
            health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        out[arn] = sum(1 for h in health if h["Target"]["Id"] in members
                       and (h.get("TargetHealth") or {}).get("State") == "healthy")
    return out


def _capacity_status(region: str, group: dict[str, Any], desired: int, target_group_arns: list[str] | None,
                     attempt: int) -> dict[str, Any]:
    ready = in_service(group)
    healthy = _healthy_targets(region, group, target_group_arns or [])
    done = len(ready) >= desired and all(n >= desired for n in healthy.values())
    return {"done": done, "attempt": attempt, "in_service": len(ready), "healthy_targets": healthy,
            "desired": desired, "group_desired": group.get("DesiredCapacity"),
            "pending": sum(1 for i in group.get("Instances") or [] if i.get("LifecycleState") != "InService")}


_SCALE_PERMISSIONS = ["autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup",
                      "elasticloadbalancing:DescribeTargetHealth"]
# Only sizes change: no launch template is named, so Auto Scaling checks no launch permission of the caller (its
# service-linked role launches the instances).
_SCALE_RESOURCES: dict[str, str | tuple[str, ...]] = {"autoscaling:UpdateAutoScalingGroup": "asg_group"}


@registry.action("scale_group", permissions=_SCALE_PERMISSIONS, resource=_SCALE_RESOURCES)
def scale_group(region: str, dr_group_name: str, desired: int, max_size: int | None = None,
                target_group_arns: list[str] | None = None) -> dict[str, Any]:
    """Raise the DR group's min and desired capacity to ``desired`` (its max to at least that); never lower them.

    ``done`` only when ``target_group_arns`` is given and the capacity is already there (:func:`check_group`
    otherwise says when it is).
    """
    asg = client("autoscaling", region)
    group = _require_group(asg, dr_group_name, region)
    low, now, high = int(group.get("MinSize", 0)), int(group.get("DesiredCapacity", 0)), int(group.get("MaxSize", 0))
    update = {"MinSize": max(low, desired), "DesiredCapacity": max(now, desired),
              "MaxSize": max(high, desired, max_size or 0)}
    if update != {"MinSize": low, "DesiredCapacity": now, "MaxSize": high}:
        with aws_errors(f"scale Auto Scaling group {dr_group_name} to {desired}"):
            asg.update_auto_scaling_group(AutoScalingGroupName=dr_group_name, **update)
        group = _require_group(asg, dr_group_name, region)
    out = _capacity_status(region, group, desired, target_group_arns, 0)
    if target_group_arns is None:
        out["done"] = False
    return {**out, "scaled": {"min": [low, update["MinSize"]], "desired": [now, update["DesiredCapacity"]],
                              "max": [high, update["MaxSize"]]}}


@registry.action("check_group", permissions=["autoscaling:DescribeAutoScalingGroups",
                                             "elasticloadbalancing:DescribeTargetHealth"])
def check_group(region: str, dr_group_name: str, desired: int, target_group_arns: list[str] | None = None,
                attempt: int = 0) -> dict[str, Any]:
    """Done when ``desired`` instances are InService and Healthy and each target group has ``desired`` healthy
    targets from the group."""
    group = _require_group(client("autoscaling", region), dr_group_name, region)
    return _capacity_status(region, group, desired, target_group_arns, attempt + 1)


# -- drill -------------------------------------------------------------------------------------------

_DRILL_PERMISSIONS = ["autoscaling:DescribeAutoScalingGroups", "autoscaling:CreateAutoScalingGroup",
                      "autoscaling:CreateOrUpdateTags", "ec2:DescribeLaunchTemplateVersions", "ec2:RunInstances",
                      "ec2:CreateTags", "iam:PassRole", "iam:CreateServiceLinkedRole"]
_DRILL_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "autoscaling:CreateAutoScalingGroup": "asg_drill_group", "autoscaling:CreateOrUpdateTags": "asg_drill_group",
    **_LAUNCH_RESOURCES}


def _drill_status(region: str, name: str, desired: int, attempt: int) -> dict[str, Any]:
    group = _require_group(client("autoscaling", region), name, region)
    ready = in_service(group)
    return {"done": len(ready) >= desired, "attempt": attempt, "group": name, "in_service": len(ready),
            "desired": desired}


@registry.action("create_drill_group", permissions=_DRILL_PERMISSIONS, resource=_DRILL_RESOURCES)
def create_drill_group(region: str, plan: str, drill_id: str, dr_group_name: str, dr_launch_template: str,
                       subnets: list[str], desired: int) -> dict[str, Any]:
    """A drill's copy of the DR group: the same DR launch template ($Default) and subnets, no target groups (the
    production load balancer never sees it), tagged with the plan and the drill."""
    if not drill.is_drill_id(drill_id):
        raise InvalidRequest(f"{drill_id!r} is not a drill id")
    name = drill_group_name(dr_group_name, drill_id)
    asg = client("autoscaling", region)
    group = describe_group(asg, name)
    if group is not None:
        tags = group.get("Tags") or []
        if _tag(tags, drill.DRILL_TAG) != drill_id or _tag(tags, PLAN_TAG) != plan:
            raise PreconditionFailed(f"Auto Scaling group {name} exists in {region} but is not tagged as drill "
                                     f"{drill_id} of {plan}: not touched")
        return _drill_status(region, name, desired, 0)
    tags = [{**t, "PropagateAtLaunch": True} for t in drill.tags(plan, drill_id)]
    with aws_errors(f"create drill Auto Scaling group {name}"):
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": dr_launch_template, "Version": "$Default"},
            MinSize=desired, MaxSize=max(desired, 1), DesiredCapacity=desired, VPCZoneIdentifier=",".join(subnets),
            Tags=tags)
    return {**_drill_status(region, name, desired, 0), "done": False}


@registry.action("check_drill_group", permissions=["autoscaling:DescribeAutoScalingGroups"])
def check_drill_group(region: str, plan: str, drill_id: str, dr_group_name: str, dr_launch_template: str,
                      subnets: list[str], desired: int, attempt: int = 0) -> dict[str, Any]:
    """Done when the drill group has ``desired`` instances InService and Healthy."""
    return _drill_status(region, drill_group_name(dr_group_name, drill_id), desired, attempt + 1)


def _remove(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None,
            dr_groups: list[str] | None, attempt: int, before: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    asg = client("autoscaling", region)
    keep = {p.lower() for p in [*(protected or []), *(dr_groups or [])] if p}
    with aws_errors(f"find the Auto Scaling groups tagged {PLAN_TAG}={plan} and {drill.DRILL_TAG}"):
        pages = asg.get_paginator("describe_auto_scaling_groups").paginate(
            Filters=[{"Name": f"tag:{PLAN_TAG}", "Values": [plan]}, {"Name": "tag-key", "Values": [drill.DRILL_TAG]}])
        found = {g["AutoScalingGroupName"]: g for page in pages for g in page["AutoScalingGroups"]}
    ids = [i for i in drills.get("ids") or [] if drill.is_drill_id(i)] if "ids" in drills else []
    named = sorted({drill_group_name(g, i) for g in dr_groups or [] if g for i in ids} - set(found))
    for name in named:  # the tag filter may not list a group created seconds ago
        group = describe_group(asg, name)
        if group is not None:
            found[name] = group
    deleted: list[dict[str, Any]] = []
    remaining: list[str] = []
    for name, group in sorted(found.items()):
        owner = drill.owner(name, group.get("Tags"), plan, drills, keep)
        if owner is None:
            continue
        if group.get("Status") == "Delete in progress":
            remaining.append(name)
            continue
        try:
            asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("ResourceInUse", "ScalingActivityInProgress"):
                remaining.append(name)
                continue
            if code == "ValidationError" and "not found" in str(exc).lower():
                continue
            raise_mapped(exc, f"delete drill Auto Scaling group {name}")
        except CONNECTION_ERRORS as exc:
            raise_mapped(exc, f"delete drill Auto Scaling group {name}")
        deleted.append({"kind": "autoscaling_group", "id": name, "drill": owner})
        if describe_group(asg, name) is not None:
            remaining.append(name)  # AWS shows it "Delete in progress" while it terminates the instances
    remaining = sorted(set(remaining))
    return {"done": not remaining, "attempt": attempt, "deleted": [*(before or []), *deleted], "deleted_now": deleted,
            "remaining": remaining, "left": len(remaining)}


_REMOVE_PERMISSIONS = ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DeleteAutoScalingGroup"]
# ForceDelete terminates the group's instances with Auto Scaling's service-linked role, not the caller's.
_REMOVE_RESOURCES: dict[str, str | tuple[str, ...]] = {"autoscaling:DeleteAutoScalingGroup": "asg_drill_group"}


@registry.action("remove_drill_groups", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def remove_drill_groups(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                        dr_groups: list[str] | None = None) -> dict[str, Any]:
    """Delete (ForceDelete: with their instances) the plan's drill groups whose drill is selected.

    A group is a drill's when its name ends with ``-drill-<id>``, it is tagged with the plan and that id, and
    ``drills`` selects the id (lambdas.drill.selected); a name in ``protected`` or ``dr_groups`` is never touched.
    Found by their tags and, for ``{"ids": [...]}``, by the names those drills' copies of ``dr_groups`` have.
    """
    return _remove(region, plan, drills, protected, dr_groups, 0)


@registry.action("check_drill_groups_removed", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def check_drill_groups_removed(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                               dr_groups: list[str] | None = None, deleted: list[dict[str, Any]] | None = None,
                               attempt: int = 0) -> dict[str, Any]:
    """Done when no selected drill group remains; deletes what could not be deleted before."""
    return _remove(region, plan, drills, protected, dr_groups, attempt + 1, deleted)
