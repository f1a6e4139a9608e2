"""Elastic Beanstalk as the sandbox needs it, on top of moto's thin model.

moto 5.2 keeps applications and environments (without configuration, version label or
platform) and has no configuration templates, application versions, environment resources,
health or termination. This module keeps that state itself, answers those operations from
``before-call`` handlers, and completes moto's ``DescribeEnvironments``/``DescribeApplications``
answers (which also ignore their filters). Validation follows what Beanstalk refuses in AWS:
read-only options, a template or version that does not exist, an AMI, subnet or security group
of another region, a platform ARN of another region, a source bundle in another region.

Health: an environment is Green once Ready unless a test forces another colour with
:func:`force_health` (e.g. Red with its causes, as enhanced health reports a failing application);
``DateUpdated`` is when the environment was first seen Ready (the end of its launch). Creating the
first environment also creates Beanstalk's default service role and instance profile, as the
console does (``sandbox/adapters_iam.py``).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import adapters_iam, clock, responses

READ_ONLY_NAMESPACES = {"aws:cloudformation:template:parameter"}
_IDS = re.compile(r"\b(ami|vpc|subnet|sg)-[0-9a-f]{8,17}\b")


def _now() -> dt.datetime:
    return clock.datetime_now()  # modeled time in the sandbox, like every other service's timestamps


def platform_arn(region: str, solution_stack: str) -> str:
    """``64bit Amazon Linux 2023 v4.3.0 running Python 3.11`` -> its platform ARN in ``region``."""
    m = re.match(r"64bit (Amazon Linux \d+) v([\d.]+) running (.+)$", solution_stack or "")
    name = f"{m.group(3)} running on 64bit {m.group(1)}/{m.group(2)}" if m else (solution_stack or "unknown")
    return f"arn:aws:elasticbeanstalk:{region}::platform/{name}"


def default_options(region: str) -> list[dict[str, str]]:
    """Options every environment reports besides the ones it was created with."""
    return [
        {"Namespace": "aws:autoscaling:asg", "OptionName": "MinSize", "Value": "1"},
        {"Namespace": "aws:autoscaling:asg", "OptionName": "MaxSize", "Value": "4"},
        {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "InstanceType", "Value": "t3.small"},
        {
            "Namespace": "aws:autoscaling:launchconfiguration",
            "OptionName": "IamInstanceProfile",
            "Value": "aws-elasticbeanstalk-ec2-role",
        },
        {"Namespace": "aws:elasticbeanstalk:environment", "OptionName": "EnvironmentType", "Value": "LoadBalanced"},
        {"Namespace": "aws:elasticbeanstalk:environment", "OptionName": "LoadBalancerType", "Value": "application"},
        {
            "Namespace": "aws:elasticbeanstalk:environment",
            "OptionName": "ServiceRole",
            "Value": "aws-elasticbeanstalk-service-role",
        },
        {"Namespace": "aws:elasticbeanstalk:healthreporting:system", "OptionName": "SystemType", "Value": "enhanced"},
    ]


def derived_options(options: list[dict[str, str]]) -> list[dict[str, str]]:
    """The read-only options Beanstalk derives from the others (and reports back)."""
    props = [o for o in options if o["Namespace"] == "aws:elasticbeanstalk:application:environment"]
    return [
        {
            "Namespace": "aws:cloudformation:template:parameter",
            "OptionName": "EnvironmentVariables",
            "Value": ",".join(f"{o['OptionName']}={o.get('Value', '')}" for o in props),
        },
        {"Namespace": "aws:cloudformation:template:parameter", "OptionName": "InstancePort", "Value": "80"},
    ]


def merge(base: list[dict[str, Any]], over: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = {(o["Namespace"], o["OptionName"], o.get("ResourceName", "")): dict(o) for o in base}
    for o in over:
        out[(o["Namespace"], o["OptionName"], o.get("ResourceName", ""))] = dict(o)
    return list(out.values())


@dataclass
class EnvState:
    application: str
    name: str
    environment_id: str
    version_label: str | None
    solution_stack: str
    platform_arn: str
    cname: str
    options: list[dict[str, Any]]
    created: dt.datetime = field(default_factory=_now)
    ready_at: dt.datetime | None = None  # first seen Ready: AWS's DateUpdated at the end of the launch


@dataclass(frozen=True)
class Health:
    """A health a test forces on an environment once it is Ready (enhanced health's view)."""

    color: str  # Green, Yellow, Red, Grey
    status: str  # Ok, Warning, Degraded, Severe, ...
    causes: tuple[str, ...] = ()


@dataclass
class Store:
    envs: dict[tuple[str, str], EnvState] = field(default_factory=dict)
    templates: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    health: dict[tuple[str, str], Health] = field(default_factory=dict)  # (region, environment name)
    lock: threading.Lock = field(default_factory=threading.Lock)


STORE = Store()


def force_health(region: str, environment: str, color: str = "Red", status: str = "Severe",
                 causes: list[str] | None = None) -> None:
    """Make ``environment`` (now or once launched) report this health when Ready, until cleared."""
    default = ["100.0 % of the requests are failing with HTTP 5xx.",
               "ELB health is failing or not available for all instances."]
    with STORE.lock:
        STORE.health[(region, environment)] = Health(color, status, tuple(default if causes is None else causes))


def clear_health(region: str, environment: str) -> None:
    with STORE.lock:
        STORE.health.pop((region, environment), None)


def _health(region: str, name: str) -> Health:
    return STORE.health.get((region, name)) or Health("Green", "Ok")


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str) -> Refused:
    return Refused("InvalidParameterValue", message)


# -- moto lookups --------------------------------------------------------------------------------
def _eb(region: str) -> Any:
    from moto.elasticbeanstalk.models import eb_backends

    return eb_backends[DEFAULT_ACCOUNT_ID][region]


def _ec2(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def _s3() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _app_exists(region: str, application: str) -> None:
    if application not in _eb(region).applications:
        raise _invalid(f"No Application named '{application}' found.")


def _id_regions(value: str) -> dict[str, str]:
    """Resource ids in ``value`` -> the region where they exist ('' when nowhere in the sandbox)."""
    from moto.ec2.models import ec2_backends

    found: dict[str, str] = {}
    for match in _IDS.finditer(value):
        ident, kind = match.group(0), match.group(1)
        found[ident] = ""
        for region, backend in ec2_backends[DEFAULT_ACCOUNT_ID].items():
            pools = {"ami": backend.amis, "vpc": backend.vpcs, "sg": None, "subnet": None}
            if kind == "sg":
                hit = any(ident in groups for groups in backend.groups.values())
            elif kind == "subnet":
                hit = any(ident in subnets for subnets in backend.subnets.values())
            else:
                hit = ident in pools[kind]
            if hit:
                found[ident] = region
                break
    return found


def validate_options(region: str, options: list[dict[str, Any]]) -> None:
    for opt in options:
        ns, name = opt.get("Namespace", ""), opt.get("OptionName", "")
        if ns in READ_ONLY_NAMESPACES:
            raise _invalid(
                f"Invalid option specification (Namespace: '{ns}', OptionName: '{name}'): "
                "the option is read-only and cannot be set"
            )
    for opt in options:
        ns, name, value = opt.get("Namespace", ""), opt.get("OptionName", ""), opt.get("Value") or ""
        for ident, where in _id_regions(value).items():
            if ident.startswith("ami-") and where != region:
                raise _invalid(
                    f"Invalid option value: '{value}' (Namespace: '{ns}', OptionName: '{name}'): "
                    f"No AMI with ID '{ident}' in region {region}"
                )
            if where and where != region:
                raise _invalid(
                    f"Invalid option value: '{value}' (Namespace: '{ns}', OptionName: '{name}'): "
                    f"'{ident}' does not exist in region {region}"
                )


def _check_platform(region: str, arn: str | None) -> None:
    if arn and arn.split(":")[3] != region:
        raise _invalid(f"Invalid platform ARN '{arn}': not a platform of region {region}")


# -- answers -------------------------------------------------------------------------------------
def _settings_description(
    region: str,
    *,
    application: str,
    options: list[dict[str, Any]],
    stack: str,
    arn: str,
    template: str | None = None,
    environment: str | None = None,
    description: str | None = None,
    created: dt.datetime | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "SolutionStackName": stack,
        "PlatformArn": arn,
        "ApplicationName": application,
        "DeploymentStatus": "deployed" if environment else None,
        "DateCreated": created or _now(),
        "DateUpdated": _now(),
        "OptionSettings": [dict(o) for o in options],
    }
    if template:
        out["TemplateName"] = template
    if environment:
        out["EnvironmentName"] = environment
    if description:
        out["Description"] = description
    return {k: v for k, v in out.items() if v is not None}


def _env_named(region: str, params: dict[str, Any]) -> EnvState:
    name = params.get("EnvironmentName")
    ident = params.get("EnvironmentId")
    for (r, n), env in STORE.envs.items():
        if r == region and (n == name or (ident and env.environment_id == ident)):
            return env
    raise _invalid(f"No Environment found for EnvironmentName = '{name or ident}'.")


def describe_configuration_settings(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app = p["ApplicationName"]
    _app_exists(region, app)
    if p.get("TemplateName"):
        tpl = STORE.templates.get((region, app, p["TemplateName"]))
        if tpl is None:
            raise _invalid(f"No Configuration Template named '{app}/{p['TemplateName']}' found.")
        desc = _settings_description(
            region,
            application=app,
            options=tpl["options"],
            stack=tpl["stack"],
            arn=tpl["arn"],
            template=p["TemplateName"],
            description=tpl.get("description"),
            created=tpl["created"],
        )
    else:
        env = _env_named(region, p)
        options = env.options + derived_options(env.options)
        desc = _settings_description(
            region,
            application=app,
            options=options,
            stack=env.solution_stack,
            arn=env.platform_arn,
            environment=env.name,
            created=env.created,
        )
    return {"ConfigurationSettings": [desc]}


def create_configuration_template(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app, name = p["ApplicationName"], p["TemplateName"]
    _app_exists(region, app)
    if (region, app, name) in STORE.templates:
        raise _invalid(f"Configuration Template {name} already exists.")
    options = list(p.get("OptionSettings") or [])
    validate_options(region, options)
    arn = p.get("PlatformArn")
    _check_platform(region, arn)
    stack = p.get("SolutionStackName") or ""
    source = p.get("SourceConfiguration") or {}
    if source.get("TemplateName"):
        base = STORE.templates.get((region, source.get("ApplicationName") or app, source["TemplateName"]))
        if base is None:
            raise _invalid(f"No Configuration Template named '{source['TemplateName']}' found.")
        options, arn, stack = merge(base["options"], options), arn or base["arn"], stack or base["stack"]
    elif p.get("EnvironmentId"):
        env = _env_named(region, {"EnvironmentId": p["EnvironmentId"]})
        options, arn, stack = merge(env.options, options), arn or env.platform_arn, stack or env.solution_stack
    if not (arn or stack):
        raise Refused("InvalidParameterCombination", "A platform ARN or solution stack name is required.")
    if arn and not stack:
        stack = arn.split("/", 1)[-1]
    arn = arn or platform_arn(region, stack)
    tpl = {"options": options, "stack": stack, "arn": arn, "description": p.get("Description"), "created": _now()}
    with STORE.lock:
        STORE.templates[(region, app, name)] = tpl
    return _settings_description(
        region,
        application=app,
        options=options,
        stack=stack,
        arn=arn,
        template=name,
        description=p.get("Description"),
        created=tpl["created"],
    )


def delete_configuration_template(region: str, p: dict[str, Any]) -> dict[str, Any]:
    key = (region, p["ApplicationName"], p["TemplateName"])
    with STORE.lock:
        if STORE.templates.pop(key, None) is None:
            raise _invalid(f"No Configuration Template named '{p['ApplicationName']}/{p['TemplateName']}' found.")
    return {}


def _version_description(region: str, app: str, label: str, v: dict[str, Any]) -> dict[str, Any]:
    return {
        "ApplicationVersionArn": (
            f"arn:aws:elasticbeanstalk:{region}:{DEFAULT_ACCOUNT_ID}:applicationversion/{app}/{label}"
        ),
        "ApplicationName": app,
        "VersionLabel": label,
        "Description": v.get("description") or "",
        "SourceBundle": dict(v["bundle"]),
        "DateCreated": v["created"],
        "DateUpdated": v["created"],
        "Status": v["status"],
    }


def create_application_version(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app, label = p["ApplicationName"], p["VersionLabel"]
    if app not in _eb(region).applications:
        if not p.get("AutoCreateApplication"):
            raise _invalid(f"No Application named '{app}' found.")
        _eb(region).create_application(app)
    if (region, app, label) in STORE.versions:
        raise _invalid(f"Application Version {label} already exists.")
    bundle = p.get("SourceBundle") or {}
    if bundle:
        bucket = _s3().buckets.get(bundle.get("S3Bucket", ""))
        if bucket is None:
            raise _invalid(
                f"Unable to download from S3 location (Bucket: {bundle.get('S3Bucket')}): the bucket does not exist."
            )
        if bucket.region_name != region:
            raise _invalid(
                f"S3 bucket {bundle['S3Bucket']} is in {bucket.region_name}; the source bundle must be in {region}."
            )
        if bundle.get("S3Key") not in bucket.keys:
            raise _invalid(
                f"Unable to download from S3 location (Bucket: {bundle['S3Bucket']}, Key: {bundle.get('S3Key')})."
            )
    v = {
        "bundle": bundle,
        "description": p.get("Description"),
        "created": _now(),
        "status": "PROCESSED" if p.get("Process") else "UNPROCESSED",
    }
    with STORE.lock:
        STORE.versions[(region, app, label)] = v
    return {"ApplicationVersion": _version_description(region, app, label, v)}


def describe_application_versions(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app, labels = p.get("ApplicationName"), p.get("VersionLabels")
    found = [
        _version_description(r, a, label, v)
        for (r, a, label), v in sorted(STORE.versions.items(), key=lambda kv: kv[0])
        if r == region and (app is None or a == app) and (not labels or label in labels)
    ]
    return {"ApplicationVersions": found}


def describe_environment_resources(region: str, p: dict[str, Any]) -> dict[str, Any]:
    env = _env_named(region, p)
    instances = []
    for reservation in _ec2(region).all_reservations():
        for inst in reservation.instances:
            tags = {t["key"]: t["value"] for t in _ec2(region).describe_tags(filters={"resource-id": [inst.id]})}
            if tags.get("elasticbeanstalk:environment-name") == env.name and inst.state != "terminated":
                instances.append({"Id": inst.id})
    return {
        "EnvironmentResources": {
            "EnvironmentName": env.name,
            "AutoScalingGroups": [{"Name": f"awseb-{env.environment_id}-stack-AWSEBAutoScalingGroup"}],
            "Instances": instances,
            "LaunchConfigurations": [],
            "LaunchTemplates": [],
            "LoadBalancers": [{"Name": f"awseb-{env.environment_id}"[:32]}],
            "Triggers": [],
            "Queues": [],
        }
    }


def _environment_description(region: str, env: EnvState, status: str = "Ready") -> dict[str, Any]:
    out = {
        "EnvironmentName": env.name,
        "EnvironmentId": env.environment_id,
        "ApplicationName": env.application,
        "SolutionStackName": env.solution_stack,
        "PlatformArn": env.platform_arn,
        "EndpointURL": f"awseb-{env.environment_id}.{region}.elb.amazonaws.com",
        "CNAME": env.cname,
        "DateCreated": env.created,
        "DateUpdated": env.ready_at or env.created,
        "Status": status,
        "AbortableOperationInProgress": False,
        "Health": "Grey" if status != "Ready" else _health(region, env.name).color,
        "Tier": {"Name": "WebServer", "Type": "Standard", "Version": "1.0"},
        "EnvironmentArn": f"arn:aws:elasticbeanstalk:{region}:{DEFAULT_ACCOUNT_ID}:environment/"
        f"{env.application}/{env.name}",
    }
    if env.version_label:
        out["VersionLabel"] = env.version_label
    return out


def terminate_environment(region: str, p: dict[str, Any]) -> dict[str, Any]:
    env = _env_named(region, p)
    with STORE.lock:
        STORE.envs.pop((region, env.name), None)
        app = _eb(region).applications.get(env.application)
        if app is not None:
            app.environments.pop(env.name, None)
    return _environment_description(region, env, status="Terminating")


def describe_environment_health(region: str, p: dict[str, Any]) -> dict[str, Any]:
    env = _env_named(region, p)
    health = _health(region, env.name)
    instances = dict.fromkeys(("NoData", "Unknown", "Pending", "Ok", "Info", "Warning", "Degraded", "Severe"), 0)
    instances[health.status if health.status in instances else "Ok"] = 1
    return {
        "EnvironmentName": env.name,
        "HealthStatus": health.status,
        "Status": "Ready",
        "Color": health.color,
        "Causes": list(health.causes),
        "InstancesHealth": instances,
        "RefreshedAt": _now(),
    }


ANSWERS = {
    "DescribeConfigurationSettings": describe_configuration_settings,
    "CreateConfigurationTemplate": create_configuration_template,
    "DeleteConfigurationTemplate": delete_configuration_template,
    "CreateApplicationVersion": create_application_version,
    "DescribeApplicationVersions": describe_application_versions,
    "DescribeEnvironmentResources": describe_environment_resources,
    "TerminateEnvironment": terminate_environment,
    "DescribeEnvironmentHealth": describe_environment_health,
}


# -- hooks ---------------------------------------------------------------------------------------


def before_call(model: Any, context: dict[str, Any], **_: Any) -> Any:
    region = context.get("client_region", "")
    p = responses.api_params(context)
    try:
        if model.name in ANSWERS:
            return responses.ok(ANSWERS[model.name](region, p))
        if model.name == "CreateEnvironment":
            _before_create_environment(region, p)
    except Refused as exc:
        return responses.error(exc.code, str(exc))
    return None


def _before_create_environment(region: str, p: dict[str, Any]) -> None:
    app = p.get("ApplicationName", "")
    _app_exists(region, app)
    if p.get("TemplateName") and (region, app, p["TemplateName"]) not in STORE.templates:
        raise _invalid(f"No Configuration Template named '{app}/{p['TemplateName']}' found.")
    if p.get("VersionLabel") and (region, app, p["VersionLabel"]) not in STORE.versions:
        raise _invalid(f"No Application Version named '{p['VersionLabel']}' found.")
    validate_options(region, list(p.get("OptionSettings") or []))
    _check_platform(region, p.get("PlatformArn"))


def after_create_environment(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code >= 300:
        return
    region = context.get("client_region", "")
    p = responses.api_params(context)
    app = p["ApplicationName"]
    options = default_options(region)
    stack, arn = p.get("SolutionStackName") or "", p.get("PlatformArn") or ""
    if p.get("TemplateName"):
        tpl = STORE.templates[(region, app, p["TemplateName"])]
        options, stack, arn = merge(options, tpl["options"]), stack or tpl["stack"], arn or tpl["arn"]
    options = merge(options, list(p.get("OptionSettings") or []))
    arn = arn or platform_arn(region, stack)
    stack = stack or arn.split("/", 1)[-1]
    env = EnvState(
        application=app,
        name=p["EnvironmentName"],
        environment_id="e-" + uuid.uuid4().hex[:10],
        version_label=p.get("VersionLabel"),
        solution_stack=stack,
        platform_arn=arn,
        cname=f"{(p.get('CNAMEPrefix') or p['EnvironmentName']).lower()}.{region}.elasticbeanstalk.com",
        options=options,
    )
    with STORE.lock:
        STORE.envs[(region, env.name)] = env
    parsed.update(_environment_description(region, env, status="Launching"))
    adapters_iam.ensure_beanstalk_default_roles()


def after_describe_environments(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    region = context.get("client_region", "")
    p = responses.api_params(context)
    out = []
    for item in parsed.get("Environments", []):
        env = STORE.envs.get((region, item.get("EnvironmentName", "")))
        if env is None:
            continue
        if p.get("ApplicationName") and env.application != p["ApplicationName"]:
            continue
        if p.get("EnvironmentNames") and env.name not in p["EnvironmentNames"]:
            continue
        if p.get("EnvironmentIds") and env.environment_id not in p["EnvironmentIds"]:
            continue
        if p.get("VersionLabel") and env.version_label != p["VersionLabel"]:
            continue
        # Health follows the status (Green once Ready); the latency model greys out a launch in progress.
        out.append(_environment_description(region, env, status=item.get("Status") or "Ready"))
    parsed["Environments"] = out


def settle_environments(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Last on DescribeEnvironments (after the latency model): note when each environment is first seen
    Ready, which AWS reports as DateUpdated, and show a forced health only once it is Ready."""
    region = context.get("client_region", "")
    for item in parsed.get("Environments", []):
        env = STORE.envs.get((region, item.get("EnvironmentName", "")))
        if env is None:
            continue
        if item.get("Status") == "Ready":
            if env.ready_at is None:
                env.ready_at = _now()
            item["Health"] = _health(region, env.name).color
        item["DateUpdated"] = env.ready_at or env.created


def after_describe_applications(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    region = context.get("client_region", "")
    names = responses.api_params(context).get("ApplicationNames")
    apps = []
    for app in parsed.get("Applications", []):
        name = app.get("ApplicationName")
        if names and name not in names:
            continue
        app["ConfigurationTemplates"] = sorted(t for r, a, t in STORE.templates if r == region and a == name)
        app["Versions"] = sorted(v for r, a, v in STORE.versions if r == region and a == name)
        apps.append(app)
    parsed["Applications"] = apps


HANDLERS: list[tuple[str, Any]] = [
    ("before-parameter-build.elastic-beanstalk", responses.stash_api_params),
    ("before-call.elastic-beanstalk", before_call),
    ("after-call.elastic-beanstalk.CreateEnvironment", after_create_environment),
    ("after-call.elastic-beanstalk.DescribeEnvironments", after_describe_environments),
    ("after-call.elastic-beanstalk.DescribeApplications", after_describe_applications),
]
# Registered last, so they see what the latency model made of the answer.
LAST_HANDLERS: list[tuple[str, Any]] = [
    ("after-call.elastic-beanstalk.DescribeEnvironments", settle_environments),
]


def install(events: Any) -> None:
    global STORE
    STORE = Store()
    for event, handler in HANDLERS:
        events.register(event, handler, unique_id=f"pilotlight-eb-{event}")
    for event, handler in LAST_HANDLERS:
        events.register_last(event, handler, unique_id=f"pilotlight-eb-last-{event}")
    adapters_iam.install(events)


def uninstall(events: Any) -> None:
    for event, _ in HANDLERS:
        events.unregister(event, unique_id=f"pilotlight-eb-{event}")
    for event, _ in LAST_HANDLERS:
        events.unregister(event, unique_id=f"pilotlight-eb-last-{event}")
    adapters_iam.uninstall(events)
