"""Beanstalk steps: keep a DR saved configuration and the running application version in the DR region,
and launch the standby environment from them in a failover.

How a primary configuration is made regional, and which saved configuration a failover launches
from, is in :mod:`lambdas.beanstalk_config`. The application version's source bundle is copied to
the plan's DR bucket, whose policy lets the environment's instance-profile role read it (the
default instance profile reads only ``elasticbeanstalk-*`` buckets).

A drill launches an isolated copy of the DR environment (:func:`launch_environment` with ``drill``):
its own name and CNAME, the drill's tags, and its environment properties pointed at the drill's
database copies, never at the live DR replica or the primary. Its teardown terminates what is left
(:func:`remove_drill_environments`). How a drill's copy is named, pointed at the database copies and
torn down is in :mod:`lambdas.beanstalk_drill`; this module registers the actions that use it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from lambdas import beanstalk_drill
from lambdas import drill as drill_lib
from lambdas.beanstalk_access import grant_bundle_read, instance_profile_of, instance_profile_roles

# ENV_PROPERTIES ... settable are used through this module by lambdas/readiness.py: re-exported.
from lambdas.beanstalk_config import ENV_PROPERTIES as ENV_PROPERTIES
from lambdas.beanstalk_config import LAUNCH as LAUNCH
from lambdas.beanstalk_config import (
    describe_template,
    dr_option_settings,
    dr_platform_arn,
    find_template,
    option_key,
    read_template,
    staging_template_name,
    template_name,
    version_of_template,
)
from lambdas.beanstalk_config import option_drift as option_drift
from lambdas.beanstalk_config import settable as settable
from lambdas.common import CONNECTION_ERRORS, Registry, aws_errors, client, raise_mapped
from lambdas.errors import EnvironmentUnhealthy, PreconditionFailed, ResourceNotFound

registry = Registry("beanstalk")
handler = registry.handler


def _ensure_application(eb: Any, application: str, region: str) -> None:
    try:
        if not eb.describe_applications(ApplicationNames=[application])["Applications"]:
            eb.create_application(ApplicationName=application, Description="pilotlight DR copy")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidParameterValue":  # created concurrently
            raise_mapped(exc, f"create application {application} in {region}")


def _environment(eb: Any, environment: str, region: str) -> dict[str, Any]:
    try:
        envs = eb.describe_environments(EnvironmentNames=[environment], IncludeDeleted=False)["Environments"]
    except ClientError as exc:
        raise_mapped(exc, f"describe {environment}")
    if not envs:
        raise ResourceNotFound(f"environment {environment} does not exist in {region}")
    return envs[0]


def dr_replacements(
    primary_region: str, dr_region: str, databases: list[dict[str, str]] | None, buckets: list[dict[str, str]] | None
) -> tuple[dict[str, str], list[str]]:
    """Primary value -> DR value inside environment properties (DB endpoints, bucket names).

    Also returns the primary endpoints whose DR replica has no endpoint (missing or not yet created):
    their properties cannot be made regional yet.
    """
    replacements: dict[str, str] = {}
    unresolved: list[str] = []
    # One filtered call per region, not one per database: a plan with many databases stays cheap.
    primary = beanstalk_drill.endpoints(client("rds", primary_region), [db["identifier"] for db in databases or []])
    dr = beanstalk_drill.endpoints(client("rds", dr_region), [db["dr_replica_identifier"] for db in databases or []])
    for db in databases or []:
        old, new = primary.get(db["identifier"]), dr.get(db["dr_replica_identifier"])
        if old and new:
            replacements[old] = new
        elif old:
            unresolved.append(old)
    for pair in buckets or []:
        replacements[pair["source"]] = pair["destination"]
    return replacements, unresolved


def _bundle_access(eb: Any, s3: Any, application: str, environment: str, bucket: str) -> dict[str, Any]:
    """Grant the environment's instance-profile role read access to the bundle copies; what was done."""
    with aws_errors(f"read configuration of {environment}"):
        settings = eb.describe_configuration_settings(ApplicationName=application, EnvironmentName=environment)
    profile = instance_profile_of(settings["ConfigurationSettings"][0])
    roles = instance_profile_roles(profile)
    if not roles:
        raise PreconditionFailed(f"instance profile {profile} of {environment} has no role")
    status = grant_bundle_read(s3, bucket, roles)
    return {"status": status, "bucket": bucket, "instance_profile": profile,
            "roles": [r.rsplit("/", 1)[-1] for r in roles]}


def newest_dr_image(region: str, plan: str, environment: str) -> str:
    from lambdas import ami

    ec2 = client("ec2", region)
    copies = [i for i in ami.images(ec2, plan, environment, "copy") if i.get("State") == "available"]
    if not copies:
        raise PreconditionFailed(f"no available AMI copy of {environment} in {region} yet")
    return max(copies, key=ami.created_at)["ImageId"]


@registry.action(
    "copy_app_version",
    permissions=[
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeApplicationVersions",
        "elasticbeanstalk:CreateApplicationVersion",
        "elasticbeanstalk:CreateApplication",
        "elasticbeanstalk:DescribeApplications",
        "s3:GetObject",
        "s3:PutObject",
        "s3:CreateBucket",
        "s3:ListBucket",
        # The bucket policy that lets the environment's instance-profile role read the copies.
        "elasticbeanstalk:DescribeConfigurationSettings",
        "iam:GetInstanceProfile",
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
    ],
    resource={
        "elasticbeanstalk:DescribeEnvironments": "source_environment",
        "elasticbeanstalk:DescribeConfigurationSettings": "source_environment",
        "iam:GetInstanceProfile": "instance_profile",
        "s3:GetBucketPolicy": "bundle_bucket",
        "s3:PutBucketPolicy": "bundle_bucket",
        "elasticbeanstalk:DescribeApplicationVersions": "applicationversion",
        "elasticbeanstalk:CreateApplicationVersion": "applicationversion",
        "elasticbeanstalk:CreateApplication": "application",
        "elasticbeanstalk:DescribeApplications": "application",
        "s3:GetObject": ("source_bundle_object", "bundle_object"),
        "s3:PutObject": "bundle_object",
        "s3:CreateBucket": "bundle_bucket",
        "s3:ListBucket": "bundle_bucket",
    },
)
def copy_app_version(
    primary_region: str, dr_region: str, application: str, environment: str, bucket: str
) -> dict[str, Any]:
    """Make the environment's running version available in the DR region (bundle copied to a DR bucket),
    readable by the environment's instance-profile role (the bucket's policy grants it)."""
    out = _copy_version(primary_region, dr_region, application, environment, bucket)
    eb, s3 = client("elasticbeanstalk", primary_region), client("s3", dr_region)
    access = _bundle_access(eb, s3, application, environment, bucket)
    record = {**out["record"], "bundle_access": access}
    if record["status"] == "unchanged" and access["status"] != "unchanged":
        record["status"] = "updated"  # the version was there; its bundle became readable
        record["changes"] = [f"bundle read access {access['status']} for {', '.join(access['roles'])}"]
    return {**out, "record": record}


def _copy_version(
    primary_region: str, dr_region: str, application: str, environment: str, bucket: str
) -> dict[str, Any]:
    eb = client("elasticbeanstalk", primary_region)
    label = _environment(eb, environment, primary_region).get("VersionLabel")
    if not label:
        raise PreconditionFailed(f"environment {environment} runs no application version")
    resource = f"application version {application}/{label} ({dr_region})"
    dr_eb = client("elasticbeanstalk", dr_region)
    _ensure_application(dr_eb, application, dr_region)
    try:
        existing = dr_eb.describe_application_versions(ApplicationName=application, VersionLabels=[label])
        versions = eb.describe_application_versions(ApplicationName=application, VersionLabels=[label])
    except ClientError as exc:
        raise_mapped(exc, f"describe version {label}")
    if existing["ApplicationVersions"]:
        return {"version_label": label, "record": {"resource": resource, "status": "unchanged"}}
    if not versions["ApplicationVersions"]:
        raise ResourceNotFound(f"application version {label} of {application} does not exist in {primary_region}")
    bundle = versions["ApplicationVersions"][0].get("SourceBundle") or {}
    if not bundle.get("S3Bucket"):
        raise PreconditionFailed(f"application version {label} has no S3 source bundle to copy")
    s3 = client("s3", dr_region)
    key = f"{application}/{bundle['S3Key']}"
    try:
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
                raise
            create: dict[str, Any] = {"Bucket": bucket}
            if dr_region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": dr_region}
            try:
                s3.create_bucket(**create)
            except ClientError as race:
                if race.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":  # another environment's step
                    raise
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bundle["S3Bucket"], "Key": bundle["S3Key"]})
        dr_eb.create_application_version(
            ApplicationName=application,
            VersionLabel=label,
            SourceBundle={"S3Bucket": bucket, "S3Key": key},
            Description=f"pilotlight copy of {label} from {primary_region}",
            Process=False,
        )
    except ClientError as exc:
        # Environments of one application often run the same version: another item got there first.
        if "already exists" in exc.response["Error"].get("Message", ""):
            return {"version_label": label, "record": {"resource": resource, "status": "unchanged"}}
        raise_mapped(exc, f"copy version {label} to {dr_region}")
    return {"version_label": label, "record": {"resource": resource, "status": "created", "bundle": key}}


@registry.action(
    "save_configuration",
    permissions=[
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:CreateConfigurationTemplate",
        "elasticbeanstalk:DeleteConfigurationTemplate",
        "elasticbeanstalk:DescribeApplications",
        "elasticbeanstalk:CreateApplication",
        "rds:DescribeDBInstances",
        "ec2:DescribeImages",
    ],
    resource={
        "elasticbeanstalk:DescribeEnvironments": "source_environment",
        "elasticbeanstalk:DescribeConfigurationSettings": ("source_environment", "configurationtemplate"),
        "elasticbeanstalk:CreateConfigurationTemplate": "configurationtemplate",
        "elasticbeanstalk:DeleteConfigurationTemplate": "configurationtemplate",
        "elasticbeanstalk:DescribeApplications": "application",
        "elasticbeanstalk:CreateApplication": "application",
        # The DB host option is rewritten from the primary's endpoint to the DR replica's: both are read.
        "rds:DescribeDBInstances": ("db", "source_db"),
    },
)
def save_configuration(
    plan: str,
    primary_region: str,
    dr_region: str,
    application: str,
    environment: str,
    network: dict[str, Any],
    image_id: str | None = None,
    databases: list[dict[str, str]] | None = None,
    buckets: list[dict[str, str]] | None = None,
    properties: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create or replace the environment's DR saved configuration; unchanged when it already matches.

    ``properties``: environment properties set to these values in the DR configuration (e.g. the plan's
    write-region property of a global table, ``{"WRITE_REGION": "<DR region>"}``).

    The ImageId is the newest available DR copy of the environment's AMI unless ``image_id`` is given.
    A replacement never leaves the DR region without a saved configuration: the new one is created
    under the staging name, the old one is deleted only once it exists, the new one is then created
    under the stable name and the staging copy deleted. A run stopped anywhere in between leaves one
    that :func:`lambdas.beanstalk_config.find_template` finds (the newest), and the next run converges.
    """
    if not image_id:
        image_id = newest_dr_image(dr_region, plan, environment)
    eb = client("elasticbeanstalk", primary_region)
    env = _environment(eb, environment, primary_region)
    try:
        settings = eb.describe_configuration_settings(ApplicationName=application, EnvironmentName=environment)
    except ClientError as exc:
        raise_mapped(exc, f"read configuration of {environment}")
    current = settings["ConfigurationSettings"][0]
    replacements, _ = dr_replacements(primary_region, dr_region, databases, buckets)
    options, flags = dr_option_settings(
        current.get("OptionSettings") or [],
        primary_region=primary_region,
        image_id=image_id,
        network=network,
        replacements=replacements,
        properties=properties,
    )
    platform = dr_platform_arn(current.get("PlatformArn") or env.get("PlatformArn"), dr_region)
    name, staging = template_name(plan, environment), staging_template_name(plan, environment)
    resource = f"saved configuration {application}/{name} ({dr_region})"
    dr_eb = client("elasticbeanstalk", dr_region)
    _ensure_application(dr_eb, application, dr_region)
    create: dict[str, Any] = {
        "ApplicationName": application,
        "OptionSettings": options,
        "Description": describe_template(environment, env.get("VersionLabel")),
    }
    if platform:
        create["PlatformArn"] = platform
    else:
        create["SolutionStackName"] = current.get("SolutionStackName") or env["SolutionStackName"]

    def matches(saved: dict[str, Any] | None) -> bool:
        return (
            saved is not None
            and option_key(saved.get("OptionSettings") or []) == option_key(options)
            and saved.get("PlatformArn") == platform
            and saved.get("Description") == create["Description"]
        )

    old, pending = read_template(dr_eb, application, name), read_template(dr_eb, application, staging)
    if matches(old):
        status = "unchanged"
    elif old is None:
        # Nothing under the stable name (first run, or a replacement stopped before re-creating it):
        # create it; a staging copy, if any, stays the fallback until this one exists.
        _create_template(dr_eb, create, name)
        status = "created" if pending is None else "updated"
    else:
        if not matches(pending):
            if pending is not None:
                _delete_template(dr_eb, application, staging)  # stale; the stable one still exists
            _create_template(dr_eb, create, staging)
            pending = create
        # The new configuration exists (staging): only now does the old one go.
        _delete_template(dr_eb, application, name)
        _create_template(dr_eb, create, name)
        status = "updated"
    if pending is not None:
        _delete_template(dr_eb, application, staging)  # the stable name holds the same configuration now
    return {
        "template": name,
        "image_id": image_id,
        "flags": flags,
        "record": {"resource": resource, "status": status, "flags": flags},
    }


def _create_template(eb: Any, params: dict[str, Any], name: str) -> None:
    with aws_errors(f"create saved configuration {name}"):
        eb.create_configuration_template(**params, TemplateName=name)


def _delete_template(eb: Any, application: str, name: str) -> None:
    """Delete a saved configuration; one already gone is fine (a re-run)."""
    with aws_errors(f"delete saved configuration {name}"):
        try:
            eb.delete_configuration_template(ApplicationName=application, TemplateName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidParameterValue":
                raise


# -- failover: launch the standby environment from the DR saved configuration ---------------------

_LIVE = ("Launching", "Updating", "Ready")

# CreateEnvironment is built by Beanstalk with the caller's permissions (AdministratorAccess-AWSElasticBeanstalk,
# "Managing Elastic Beanstalk user policies"; AWSElasticBeanstalkService lists the resource operations): a
# CloudFormation stack that creates the Auto Scaling group and its launch template or configuration, security
# groups, the load balancer, scaling alarms and log groups, rolled back with the same permissions when the
# launch fails; Beanstalk reads the source bundle, writes to its storage bucket and passes the service role and
# the instance profile's role. IAM action -> resource kinds (infra/iam.py says how each is scoped and why);
# "*" only for reads AWS authorizes on "*" alone (infra.iam.NO_RESOURCE_LEVEL).
ENVIRONMENT_BUILD: dict[str, str | tuple[str, ...]] = {
    # The environment's tags, passed with CreateEnvironment (a drill's copy carries the drill's).
    "elasticbeanstalk:AddTags": ("environment", "drill_environment"),
    **dict.fromkeys(("cloudformation:CreateStack", "cloudformation:DescribeStacks",
                     "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResource",
                     "cloudformation:DescribeStackResources", "cloudformation:GetTemplate",
                     "cloudformation:ListStackResources"), "eb_stack"),
    **dict.fromkeys(("autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
                     "autoscaling:DeleteAutoScalingGroup", "autoscaling:CreateLaunchConfiguration",
                     "autoscaling:DeleteLaunchConfiguration", "autoscaling:CreateOrUpdateTags",
                     "autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy",
                     "autoscaling:PutNotificationConfiguration", "autoscaling:SuspendProcesses",
                     "autoscaling:ResumeProcesses", "autoscaling:SetDesiredCapacity",
                     "autoscaling:PutScheduledUpdateGroupAction", "autoscaling:DeleteScheduledAction"),
                    "eb_autoscaling"),
    # Reads AWS authorizes on "*" only.
    **dict.fromkeys(("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
                     "autoscaling:DescribeScalingActivities", "autoscaling:DescribeAutoScalingInstances",
                     "autoscaling:DescribeNotificationConfigurations", "autoscaling:DescribeScheduledActions",
                     "autoscaling:DescribeAccountLimits", "ec2:DescribeAccountAttributes",
                     "ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstances",
                     "ec2:DescribeKeyPairs", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                     "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeAddresses",
                     "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
                     "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                     "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
                     "logs:DescribeLogGroups"), "*"),
    **dict.fromkeys(("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"),
                    "eb_alarm"),
    "ec2:CreateSecurityGroup": ("eb_security_group", "eb_vpc"),
    **dict.fromkeys(("ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
                     "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteSecurityGroup"),
                    "eb_security_group"),
    **dict.fromkeys(("ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplate"),
                    "eb_launch_template"),
    "ec2:RunInstances": "eb_run_instances",
    "ec2:CreateTags": "eb_ec2_tagging",
    **dict.fromkeys(("ec2:AllocateAddress", "ec2:ReleaseAddress"), "eb_elastic_ip"),
    "ec2:AssociateAddress": ("eb_elastic_ip", "eb_instance"),
    **dict.fromkeys(("elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
                     "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup",
                     "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
                     "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyLoadBalancerAttributes",
                     "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
                     "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:ConfigureHealthCheck",
                     "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer"), "eb_load_balancer"),
    "elasticloadbalancing:AddTags": "eb_load_balancer_tagging",
    **dict.fromkeys(("logs:CreateLogGroup", "logs:PutRetentionPolicy"), "eb_log_group"),
    "s3:GetObject": ("bundle_object", "eb_storage_object"),  # the source bundle; Beanstalk's copies
    "s3:PutObject": "eb_storage_object",
    **dict.fromkeys(("s3:CreateBucket", "s3:ListBucket"), "eb_storage_bucket"),
    "iam:PassRole": "eb_passed_role",
}


@registry.action(
    "launch_environment",
    permissions=[
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:CreateEnvironment",
        # A drill reads the live DR replica's endpoint (its copy's host derives from it) and the primary's.
        "rds:DescribeDBInstances",
        *ENVIRONMENT_BUILD,
    ],
    resource={
        "elasticbeanstalk:DescribeEnvironments": ("environment", "drill_environment"),
        "elasticbeanstalk:DescribeConfigurationSettings": "configurationtemplate",
        "elasticbeanstalk:CreateEnvironment": (
            "environment",
            "drill_environment",
            "configurationtemplate",
            "applicationversion",
            "application",
        ),
        "rds:DescribeDBInstances": ("db", "source_db"),
        **ENVIRONMENT_BUILD,
    },
)
def launch_environment(
    region: str,
    plan: str,
    application: str,
    environment: str,
    dr_environment: str,
    cname_prefix: str,
    drill: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Launch the DR environment from its saved configuration and recorded version, in the DR region only.

    An environment of that name that is already launching, updating or ready is reused (a resumed
    failover does not launch twice); one that is terminated or terminating is launched again.

    With ``drill`` (``{"id": ..., "databases": [{"primary_region", "identifier", "live", "copy"}]}``) the
    environment is the drill's copy: ``dr_environment`` and ``cname_prefix`` are the drill's names, it
    carries the drill's tags, and every environment property naming the live DR replica's endpoint names
    its copy's instead. A setting that would still reach the live replica or the primary is refused.
    """
    if drill is not None:
        beanstalk_drill.check_drill_names(drill, dr_environment, cname_prefix)
    eb = client("elasticbeanstalk", region)
    try:
        envs = eb.describe_environments(
            ApplicationName=application, EnvironmentNames=[dr_environment], IncludeDeleted=False
        )["Environments"]
    except ClientError as exc:
        raise_mapped(exc, f"describe {dr_environment}")
    live = [e for e in envs if e.get("Status") in _LIVE]
    if live:
        env = live[0]
        return {"done": _ready(env), "attempt": 0, "launched_now": False, "environment": _env_facts(env)}
    # The newest saved configuration: a replacement stopped midway leaves it under the staging name.
    found = find_template(eb, application, plan, environment, newest=True)
    if found is None:
        name = template_name(plan, environment)
        raise PreconditionFailed(
            f"saved configuration {application}/{name} does not exist in {region}; run replicate first"
        )
    name, template = found
    label = version_of_template(template.get("Description"))
    params: dict[str, Any] = {
        "ApplicationName": application,
        "EnvironmentName": dr_environment,
        "CNAMEPrefix": cname_prefix,
        "TemplateName": name,
        "Tags": [{"Key": drill_lib.PLAN_TAG, "Value": plan}],
        "Description": f"pilotlight DR environment of {environment}",
    }
    out: dict[str, Any] = {}
    if drill is not None:
        overrides, out["drill"] = beanstalk_drill.drill_settings(
            region, drill, template.get("OptionSettings") or [], name
        )
        tags = {t["Key"]: t["Value"] for t in [*params["Tags"], *drill_lib.tags(plan, drill["id"])]}
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        params["Description"] = f"pilotlight drill copy of the DR environment of {environment} (drill {drill['id']})"
        if overrides:
            params["OptionSettings"] = overrides
    if label:
        params["VersionLabel"] = label
    with aws_errors(f"launch {dr_environment} from {name}"):
        env = eb.create_environment(**params)
    return {"done": False, "attempt": 0, "launched_now": True, "environment": _env_facts(env),
            "template": name, **out}


# How long an environment may stay Ready with health Red before the launch is given up: enhanced health
# reports Red while the first health checks of new instances come in, so a launch gets this much to recover.
UNHEALTHY_GRACE_SECONDS = 300


@registry.action(
    "check_environment",
    permissions=["elasticbeanstalk:DescribeEnvironments", "elasticbeanstalk:DescribeEnvironmentHealth"],
    # A drill checks its copy as a failover checks the DR environment (DescribeEnvironments answers only
    # with the environments the caller may describe).
    resource=("environment", "drill_environment"),
)
def check_environment(region: str, application: str, dr_environment: str, attempt: int = 0) -> dict[str, Any]:
    """Done when the DR environment is Ready and Green; a launch that ended terminated fails for good, and
    one Ready but Red for longer than :data:`UNHEALTHY_GRACE_SECONDS` fails with its health causes.

    How long it has been Ready is read from the environment itself: ``DateUpdated`` is when its launch
    completed (the last change to it), against the clock of this check (modeled time in the sandbox).
    Stateless, so a resumed failover judges the same way; it needs one more call only while Red.
    """
    eb = client("elasticbeanstalk", region)
    env = _environment(eb, dr_environment, region)
    if env.get("Status") in ("Terminating", "Terminated"):
        raise PreconditionFailed(f"environment {dr_environment} is {env['Status']}: its launch failed")
    facts = _env_facts(env)
    if env.get("Status") == "Ready" and env.get("Health") == "Red":
        red_for = _seconds_since(env.get("DateUpdated"))
        facts["red_for_seconds"] = red_for
        if red_for is not None and red_for >= UNHEALTHY_GRACE_SECONDS:
            causes = _health_causes(eb, dr_environment)
            raise EnvironmentUnhealthy(
                f"environment {dr_environment} in {region} has been Ready with health Red for {red_for:.0f} s "
                f"(its grace is {UNHEALTHY_GRACE_SECONDS} s): " + ("; ".join(causes) or "no causes reported")
            )
    return {"done": _ready(env), "attempt": attempt + 1, "environment": facts}


def _seconds_since(moment: Any) -> float | None:
    if not hasattr(moment, "timestamp"):  # a datetime (duck-typed: the sandbox patches this module's class)
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return max(0.0, dt.datetime.now(dt.UTC).timestamp() - moment.timestamp())


def _health_causes(eb: Any, environment: str) -> list[str]:
    """Enhanced health's causes of the environment's colour; what could not be read says so (the launch fails
    either way, and with its own reason rather than this call's)."""
    try:
        health = eb.describe_environment_health(EnvironmentName=environment,
                                                AttributeNames=["Color", "HealthStatus", "Causes"])
    except ClientError as exc:  # e.g. basic health: no enhanced health to describe
        return [f"health causes not available ({exc.response['Error'].get('Code')})"]
    except CONNECTION_ERRORS as exc:
        return [f"health causes not available ({type(exc).__name__})"]
    causes = [str(c) for c in health.get("Causes") or []]
    status = health.get("HealthStatus")
    return [f"{status}: {c}" for c in causes] if status and causes else causes


def _ready(env: dict[str, Any]) -> bool:
    return env.get("Status") == "Ready" and env.get("Health") == "Green"


def _env_facts(env: dict[str, Any]) -> dict[str, Any]:
    return {
        k: env.get(v)
        for k, v in (
            ("name", "EnvironmentName"),
            ("id", "EnvironmentId"),
            ("status", "Status"),
            ("health", "Health"),
            ("cname", "CNAME"),
            ("version", "VersionLabel"),
        )
    }


# -- drill teardown: terminate the drills' environment copies (lambdas.beanstalk_drill does the work) ----


@registry.action(
    "remove_drill_environments",
    permissions=beanstalk_drill.TEARDOWN_PERMISSIONS,
    resource=beanstalk_drill.TEARDOWN_RESOURCES,
)
def remove_drill_environments(
    region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None
) -> dict[str, Any]:
    """Terminate the environment copies of the selected drills (:func:`lambdas.drill.selected`) in ``region``.

    A copy is an environment whose name ends with a drill id, tagged with the plan and with that same drill
    id; a name in ``protected`` (the plan's production and DR environments) is never touched. Those that are
    Ready are terminated with their resources; those still launching or updating are waited for (Beanstalk
    terminates only a Ready environment), as are those terminating. Done when none is left; ``deleted``
    lists those this call terminated, ``remaining`` those still there with their status (Terminating
    included), ``left`` how many.
    """
    return beanstalk_drill.remove_environments(region, plan, drills, protected, 0)


@registry.action(
    "check_drill_environments_removed",
    permissions=beanstalk_drill.TEARDOWN_PERMISSIONS,
    resource=beanstalk_drill.TEARDOWN_RESOURCES,
)
def check_drill_environments_removed(
    region: str,
    plan: str,
    drills: dict[str, Any],
    protected: list[str] | None = None,
    attempt: int = 0,
    deleted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Done when no selected drill's environment is left; terminates those that became Ready since.

    ``deleted`` is what the loop's earlier calls terminated: the answer's ``deleted`` adds this call's to it
    (``deleted_now`` is this call's alone), so the loop's last answer lists everything it terminated.
    """
    return beanstalk_drill.remove_environments(region, plan, drills, protected, attempt + 1, deleted)
