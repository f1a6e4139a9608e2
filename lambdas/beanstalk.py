"""Beanstalk steps: keep a DR saved configuration and the running application version in the DR region.

A primary environment's configuration cannot be replayed in another region as it is: read-only
options are refused, and AMI, VPC, subnets, security groups, key pair, certificates, platform ARN
and environment properties naming primary resources are regional. :func:`dr_option_settings`
rewrites what the plan maps and flags what it cannot.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotFound

registry = Registry("beanstalk")
handler = registry.handler

ENV_PROPERTIES = "aws:elasticbeanstalk:application:environment"
LAUNCH = "aws:autoscaling:launchconfiguration"
VPC = "aws:ec2:vpc"
# Namespaces Beanstalk reports but refuses as input (derived from the other options).
READ_ONLY_NAMESPACES = {"aws:cloudformation:template:parameter"}
# Single options that are reported but not settable.
READ_ONLY_OPTIONS = {("aws:elasticbeanstalk:environment", "EnvironmentType_ReadOnly")}
_ID = re.compile(r"\b(ami|vpc|subnet|sg)-[0-9a-f]{8,17}\b")


def template_name(plan: str, environment: str) -> str:
    """The stable name of an environment's DR saved configuration."""
    return f"pilotlight-{plan}-{environment}"


_VERSION_IN_DESCRIPTION = re.compile(r"; application version (\S+)$")


def describe_template(environment: str, version_label: str | None) -> str:
    """The saved configuration's description; it records the application version to launch with, so a
    failover needs nothing from the primary region."""
    text = f"pilotlight DR configuration of {environment}"
    return f"{text}; application version {version_label}" if version_label else text


def version_of_template(description: str | None) -> str | None:
    match = _VERSION_IN_DESCRIPTION.search(description or "")
    return match.group(1) if match else None


def dr_platform_arn(arn: str | None, dr_region: str) -> str | None:
    if not arn or not arn.startswith("arn:"):
        return arn
    parts = arn.split(":")
    parts[3] = dr_region
    return ":".join(parts)


def dr_option_settings(
    options: list[dict[str, Any]],
    *,
    primary_region: str,
    image_id: str,
    network: dict[str, Any],
    replacements: dict[str, str],
) -> tuple[list[dict[str, str]], list[str]]:
    """The DR option settings for a primary configuration, and what could not be made regional.

    ``replacements`` maps primary values (DB endpoints, bucket names) to their DR counterparts
    inside environment properties. Flags name every remaining value that mentions the primary
    region or a primary resource id.
    """
    subnets = ",".join(network["subnets"])
    elb_subnets = ",".join(network.get("elb_subnets") or network["subnets"])
    groups = ",".join(network["security_groups"])
    certs: dict[str, str] = network.get("certificate_arns") or {}
    fixed = {
        (LAUNCH, "ImageId"): image_id,
        (LAUNCH, "SecurityGroups"): groups,
        (VPC, "VPCId"): network["vpc_id"],
        (VPC, "Subnets"): subnets,
        (VPC, "ELBSubnets"): elb_subnets,
    }
    primary_ids: set[str] = set()
    out: list[dict[str, str]] = []
    flags: list[str] = []
    for opt in options:
        ns, name, value = opt.get("Namespace", ""), opt.get("OptionName", ""), opt.get("Value")
        primary_ids.update(m.group(0) for m in _ID.finditer(value or ""))
        if ns in READ_ONLY_NAMESPACES or (ns, name) in READ_ONLY_OPTIONS or value is None:
            continue
        if (ns, name) in fixed:
            value = fixed[(ns, name)]
        elif (ns, name) == (LAUNCH, "EC2KeyName"):
            if not network.get("key_name"):
                flags.append(f"{ns}:{name}: key pair {value!r} exists only in {primary_region}; dropped")
                continue
            value = network["key_name"]
        elif value in certs:
            value = certs[value]
        elif ns == ENV_PROPERTIES:
            for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
                value = value.replace(old, new)
        setting = {"Namespace": ns, "OptionName": name, "Value": value}
        if opt.get("ResourceName"):
            setting["ResourceName"] = opt["ResourceName"]
        out.append(setting)
    for setting in out:
        value = setting["Value"]
        stale = sorted(i for i in primary_ids if i in value)
        if primary_region in value or stale:
            what = ", ".join(stale) or primary_region
            flags.append(f"{setting['Namespace']}:{setting['OptionName']}: still refers to {what}")
    return out, flags


def _key(settings: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(s["Namespace"], s["OptionName"], s.get("Value", ""), s.get("ResourceName", "")) for s in settings}


def settable(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The options that can be set (what a saved configuration is made of): read-only ones dropped."""
    return [
        o
        for o in options
        if o.get("Namespace") not in READ_ONLY_NAMESPACES
        and (o.get("Namespace"), o.get("OptionName")) not in READ_ONLY_OPTIONS
        and o.get("Value") is not None
    ]


def option_drift(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """One line per option whose value differs between what replicate would save and what is saved.

    Uses the same identity as the "unchanged" test of :func:`save_configuration`, so an option that
    replicate would rewrite is never reported here, and one reported here is one replicate would update.
    """

    def by_option(settings: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
        return {(s["Namespace"], s["OptionName"], s.get("ResourceName", "")): s.get("Value", "") for s in settings}

    want, have = by_option(expected), by_option(actual)
    out = []
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            ns, name, resource = key
            label = f"{ns}:{name}" + (f" ({resource})" if resource else "")
            if key not in have:
                out.append(f"{label}: missing from the saved configuration (primary implies {want[key]!r})")
            elif key not in want:
                out.append(f"{label}: {have[key]!r} is not in the primary configuration")
            else:
                out.append(f"{label}: saved {have[key]!r}, primary implies {want[key]!r}")
    return out


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
    primary = _endpoints(client("rds", primary_region), [db["identifier"] for db in databases or []])
    dr = _endpoints(client("rds", dr_region), [db["dr_replica_identifier"] for db in databases or []])
    for db in databases or []:
        old, new = primary.get(db["identifier"]), dr.get(db["dr_replica_identifier"])
        if old and new:
            replacements[old] = new
        elif old:
            unresolved.append(old)
    for pair in buckets or []:
        replacements[pair["source"]] = pair["destination"]
    return replacements, unresolved


def _endpoints(rds: Any, identifiers: list[str]) -> dict[str, str]:
    """Identifier -> endpoint address of those instances that exist and have one."""
    out: dict[str, str] = {}
    for i in range(0, len(identifiers), 100):  # at most 100 values per filter
        try:
            pages = rds.get_paginator("describe_db_instances").paginate(
                Filters=[{"Name": "db-instance-id", "Values": identifiers[i : i + 100]}]
            )
            for page in pages:
                for db in page["DBInstances"]:
                    address = (db.get("Endpoint") or {}).get("Address")
                    if address:
                        out[db["DBInstanceIdentifier"]] = address
        except ClientError as exc:
            raise_mapped(exc, "describe DB instances")
    return out


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
    ],
    resource={
        "elasticbeanstalk:DescribeEnvironments": "source_environment",
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
    """Make the environment's running version available in the DR region (bundle copied to a DR bucket)."""
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
        "rds:DescribeDBInstances": "db",
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
) -> dict[str, Any]:
    """Create or replace the environment's DR saved configuration; unchanged when it already matches.

    The ImageId is the newest available DR copy of the environment's AMI unless ``image_id`` is given.
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
    )
    platform = dr_platform_arn(current.get("PlatformArn") or env.get("PlatformArn"), dr_region)
    name = template_name(plan, environment)
    resource = f"saved configuration {application}/{name} ({dr_region})"
    dr_eb = client("elasticbeanstalk", dr_region)
    _ensure_application(dr_eb, application, dr_region)
    status = "created"
    try:
        existing = dr_eb.describe_configuration_settings(ApplicationName=application, TemplateName=name)
        old = existing["ConfigurationSettings"][0]
        same_version = old.get("Description") == describe_template(environment, env.get("VersionLabel"))
        if (
            _key(old.get("OptionSettings") or []) == _key(options)
            and old.get("PlatformArn") == platform
            and same_version
        ):
            return {
                "template": name,
                "image_id": image_id,
                "flags": flags,
                "record": {"resource": resource, "status": "unchanged", "flags": flags},
            }
        dr_eb.delete_configuration_template(ApplicationName=application, TemplateName=name)
        status = "updated"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidParameterValue":  # no such template yet
            raise_mapped(exc, f"read saved configuration {name}")
    create: dict[str, Any] = {
        "ApplicationName": application,
        "TemplateName": name,
        "OptionSettings": options,
        "Description": describe_template(environment, env.get("VersionLabel")),
    }
    if platform:
        create["PlatformArn"] = platform
    else:
        create["SolutionStackName"] = current.get("SolutionStackName") or env["SolutionStackName"]
    try:
        dr_eb.create_configuration_template(**create)
    except ClientError as exc:
        raise_mapped(exc, f"create saved configuration {name}")
    return {
        "template": name,
        "image_id": image_id,
        "flags": flags,
        "record": {"resource": resource, "status": status, "flags": flags},
    }


# -- failover: launch the standby environment from the DR saved configuration ---------------------

_LIVE = ("Launching", "Updating", "Ready")


@registry.action(
    "launch_environment",
    permissions=[
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:CreateEnvironment",
    ],
    resource={
        "elasticbeanstalk:DescribeEnvironments": "environment",
        "elasticbeanstalk:DescribeConfigurationSettings": "configurationtemplate",
        "elasticbeanstalk:CreateEnvironment": (
            "environment",
            "configurationtemplate",
            "applicationversion",
            "application",
        ),
    },
)
def launch_environment(
    region: str, plan: str, application: str, environment: str, dr_environment: str, cname_prefix: str
) -> dict[str, Any]:
    """Launch the DR environment from its saved configuration and recorded version, in the DR region only.

    An environment of that name that is already launching, updating or ready is reused (a resumed
    failover does not launch twice); one that is terminated or terminating is launched again.
    """
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
    name = template_name(plan, environment)
    try:
        template = eb.describe_configuration_settings(ApplicationName=application, TemplateName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidParameterValue":
            raise PreconditionFailed(
                f"saved configuration {application}/{name} does not exist in {region}; run replicate first"
            ) from exc
        raise_mapped(exc, f"read saved configuration {name}")
    label = version_of_template(template["ConfigurationSettings"][0].get("Description"))
    params: dict[str, Any] = {
        "ApplicationName": application,
        "EnvironmentName": dr_environment,
        "CNAMEPrefix": cname_prefix,
        "TemplateName": name,
        "Tags": [{"Key": "pilotlight:plan", "Value": plan}],
        "Description": f"pilotlight DR environment of {environment}",
    }
    if label:
        params["VersionLabel"] = label
    try:
        env = eb.create_environment(**params)
    except ClientError as exc:
        raise_mapped(exc, f"launch {dr_environment} from {name}")
    return {"done": False, "attempt": 0, "launched_now": True, "environment": _env_facts(env)}


@registry.action("check_environment", permissions=["elasticbeanstalk:DescribeEnvironments"], resource="environment")
def check_environment(region: str, application: str, dr_environment: str, attempt: int = 0) -> dict[str, Any]:
    """Done when the DR environment is Ready and Green; a launch that ended terminated fails for good."""
    eb = client("elasticbeanstalk", region)
    env = _environment(eb, dr_environment, region)
    if env.get("Status") in ("Terminating", "Terminated"):
        raise PreconditionFailed(f"environment {dr_environment} is {env['Status']}: its launch failed")
    return {"done": _ready(env), "attempt": attempt + 1, "environment": _env_facts(env)}


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
