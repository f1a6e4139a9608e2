"""Elastic Beanstalk as the sandbox needs it, on top of moto's thin model.

moto 5.2 keeps applications and environments (without configuration, version label or
platform) and has no configuration templates, application versions, environment resources,
health or termination. The sandbox keeps that state itself (:mod:`sandbox.adapters_beanstalk_store`:
the store, the termination lifecycle and the checks); this module answers those operations from
``before-call`` handlers, completes moto's ``DescribeEnvironments``/``DescribeApplications``
answers (which also ignore their filters), and installs the hooks (:func:`install`, :func:`uninstall`).
Validation follows what Beanstalk refuses in AWS: read-only options, a template or version that does
not exist, an AMI, subnet or security group of another region, a platform ARN of another region, a
source bundle in another region.

Health: an environment is Green once Ready unless a test forces another colour with
:func:`force_health` (e.g. Red with its causes, as enhanced health reports a failing application);
``DateUpdated`` is when the environment was first seen Ready (the end of its launch). Creating the
first environment also creates Beanstalk's default service role and instance profile, as the
console does (``sandbox/adapters_iam.py``).

Termination: ``TerminateEnvironment`` holds an environment ``Terminating`` (health Grey) for its
modeled duration, then ``Terminated``: ``DescribeEnvironments`` lists it only while deleted ones are
included (``IncludeDeleted``, true by default), its name and tags are gone from moto (so the name can
be launched again) and the other operations no longer find it. Tags given to ``CreateEnvironment``
are moto's (``ListTagsForResource``), with the ``elasticbeanstalk:environment-name`` and
``elasticbeanstalk:environment-id`` tags Beanstalk adds to every environment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import adapters_beanstalk_store as store
from sandbox import adapters_iam, clock, responses

# Other modules (sandbox.iam_enforce, tests) use these through this module: re-exported. The state itself is
# read as ``store.STORE`` (install() replaces it); ``adapters_beanstalk.STORE`` still names the current one.
from sandbox.adapters_beanstalk_store import TERMINATE_SECONDS as TERMINATE_SECONDS
from sandbox.adapters_beanstalk_store import (
    EnvState,
    Refused,
    app_exists,
    check_platform,
    default_options,
    derived_options,
    eb_backend,
    ec2_backend,
    env_named,
    health_of,
    invalid,
    merge,
    now,
    platform_arn,
    s3_backend,
    settle,
    validate_options,
)
from sandbox.adapters_beanstalk_store import clear_health as clear_health
from sandbox.adapters_beanstalk_store import environment_of as environment_of
from sandbox.adapters_beanstalk_store import force_health as force_health


def __getattr__(name: str) -> Any:
    """``STORE``: the state the sandbox's Beanstalk holds now (it lives in :mod:`sandbox.adapters_beanstalk_store`)."""
    if name == "STORE":
        return store.STORE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        "DateCreated": created or now(),
        "DateUpdated": now(),
        "OptionSettings": [dict(o) for o in options],
    }
    if template:
        out["TemplateName"] = template
    if environment:
        out["EnvironmentName"] = environment
    if description:
        out["Description"] = description
    return {k: v for k, v in out.items() if v is not None}


def describe_configuration_settings(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app = p["ApplicationName"]
    app_exists(region, app)
    if p.get("TemplateName"):
        tpl = store.STORE.templates.get((region, app, p["TemplateName"]))
        if tpl is None:
            raise invalid(f"No Configuration Template named '{app}/{p['TemplateName']}' found.")
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
        env = env_named(region, p)
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
    app_exists(region, app)
    if (region, app, name) in store.STORE.templates:
        raise invalid(f"Configuration Template {name} already exists.")
    options = list(p.get("OptionSettings") or [])
    validate_options(region, options)
    arn = p.get("PlatformArn")
    check_platform(region, arn)
    stack = p.get("SolutionStackName") or ""
    source = p.get("SourceConfiguration") or {}
    if source.get("TemplateName"):
        base = store.STORE.templates.get((region, source.get("ApplicationName") or app, source["TemplateName"]))
        if base is None:
            raise invalid(f"No Configuration Template named '{source['TemplateName']}' found.")
        options, arn, stack = merge(base["options"], options), arn or base["arn"], stack or base["stack"]
    elif p.get("EnvironmentId"):
        env = env_named(region, {"EnvironmentId": p["EnvironmentId"]})
        options, arn, stack = merge(env.options, options), arn or env.platform_arn, stack or env.solution_stack
    if not (arn or stack):
        raise Refused("InvalidParameterCombination", "A platform ARN or solution stack name is required.")
    if arn and not stack:
        stack = arn.split("/", 1)[-1]
    arn = arn or platform_arn(region, stack)
    tpl = {"options": options, "stack": stack, "arn": arn, "description": p.get("Description"), "created": now()}
    with store.STORE.lock:
        store.STORE.templates[(region, app, name)] = tpl
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
    with store.STORE.lock:
        if store.STORE.templates.pop(key, None) is None:
            raise invalid(f"No Configuration Template named '{p['ApplicationName']}/{p['TemplateName']}' found.")
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
    if app not in eb_backend(region).applications:
        if not p.get("AutoCreateApplication"):
            raise invalid(f"No Application named '{app}' found.")
        eb_backend(region).create_application(app)
    if (region, app, label) in store.STORE.versions:
        raise invalid(f"Application Version {label} already exists.")
    bundle = p.get("SourceBundle") or {}
    if bundle:
        bucket = s3_backend().buckets.get(bundle.get("S3Bucket", ""))
        if bucket is None:
            raise invalid(
                f"Unable to download from S3 location (Bucket: {bundle.get('S3Bucket')}): the bucket does not exist."
            )
        if bucket.region_name != region:
            raise invalid(
                f"S3 bucket {bundle['S3Bucket']} is in {bucket.region_name}; the source bundle must be in {region}."
            )
        if bundle.get("S3Key") not in bucket.keys:
            raise invalid(
                f"Unable to download from S3 location (Bucket: {bundle['S3Bucket']}, Key: {bundle.get('S3Key')})."
            )
    v = {
        "bundle": bundle,
        "description": p.get("Description"),
        "created": now(),
        "status": "PROCESSED" if p.get("Process") else "UNPROCESSED",
    }
    with store.STORE.lock:
        store.STORE.versions[(region, app, label)] = v
    return {"ApplicationVersion": _version_description(region, app, label, v)}


def describe_application_versions(region: str, p: dict[str, Any]) -> dict[str, Any]:
    app, labels = p.get("ApplicationName"), p.get("VersionLabels")
    found = [
        _version_description(r, a, label, v)
        for (r, a, label), v in sorted(store.STORE.versions.items(), key=lambda kv: kv[0])
        if r == region and (app is None or a == app) and (not labels or label in labels)
    ]
    return {"ApplicationVersions": found}


def describe_environment_resources(region: str, p: dict[str, Any]) -> dict[str, Any]:
    env = env_named(region, p)
    instances = []
    for reservation in ec2_backend(region).all_reservations():
        for inst in reservation.instances:
            tags = {t["key"]: t["value"] for t in ec2_backend(region).describe_tags(filters={"resource-id": [inst.id]})}
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
    status = env.termination() or status
    out = {
        "EnvironmentName": env.name,
        "EnvironmentId": env.environment_id,
        "ApplicationName": env.application,
        "SolutionStackName": env.solution_stack,
        "PlatformArn": env.platform_arn,
        "EndpointURL": f"awseb-{env.environment_id}.{region}.elb.amazonaws.com",
        "CNAME": env.cname,
        "DateCreated": env.created,
        "DateUpdated": env.terminating_at or env.ready_at or env.created,
        "Status": status,
        "AbortableOperationInProgress": False,
        "Health": "Grey" if status != "Ready" else health_of(region, env.name).color,
        "Tier": {"Name": "WebServer", "Type": "Standard", "Version": "1.0"},
        "EnvironmentArn": f"arn:aws:elasticbeanstalk:{region}:{DEFAULT_ACCOUNT_ID}:environment/"
        f"{env.application}/{env.name}",
    }
    if env.version_label:
        out["VersionLabel"] = env.version_label
    return out


def terminate_environment(region: str, p: dict[str, Any]) -> dict[str, Any]:
    """Terminating now, Terminated once its modeled duration has passed (TerminateResources: the stack and
    what it built go with it; with false Beanstalk would leave them running, which the sandbox does not model)."""
    env = env_named(region, p)
    with store.STORE.lock:
        if env.termination() is not None:
            raise invalid(f"Environment named {env.name} is in an invalid state for this operation. Must be Ready.")
        env.terminating_at = now()
        env.terminated_at = clock.now() + store.terminate_delay()
    return _environment_description(region, env)


def describe_environment_health(region: str, p: dict[str, Any]) -> dict[str, Any]:
    env = env_named(region, p)
    health = health_of(region, env.name)
    instances = dict.fromkeys(("NoData", "Unknown", "Pending", "Ok", "Info", "Warning", "Degraded", "Severe"), 0)
    instances[health.status if health.status in instances else "Ok"] = 1
    return {
        "EnvironmentName": env.name,
        "HealthStatus": health.status,
        "Status": "Ready",
        "Color": health.color,
        "Causes": list(health.causes),
        "InstancesHealth": instances,
        "RefreshedAt": now(),
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
    settle(region)
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
    app_exists(region, app)
    existing = store.STORE.envs.get((region, p.get("EnvironmentName", "")))
    if existing is not None and existing.termination() != "Terminated":
        raise invalid(f"Environment {p['EnvironmentName']} already exists.")
    if p.get("TemplateName") and (region, app, p["TemplateName"]) not in store.STORE.templates:
        raise invalid(f"No Configuration Template named '{app}/{p['TemplateName']}' found.")
    if p.get("VersionLabel") and (region, app, p["VersionLabel"]) not in store.STORE.versions:
        raise invalid(f"No Application Version named '{p['VersionLabel']}' found.")
    validate_options(region, list(p.get("OptionSettings") or []))
    check_platform(region, p.get("PlatformArn"))


def after_create_environment(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code >= 300:
        return
    region = context.get("client_region", "")
    p = responses.api_params(context)
    app = p["ApplicationName"]
    options = default_options(region)
    stack, arn = p.get("SolutionStackName") or "", p.get("PlatformArn") or ""
    if p.get("TemplateName"):
        tpl = store.STORE.templates[(region, app, p["TemplateName"])]
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
    with store.STORE.lock:
        store.STORE.envs[(region, env.name)] = env
        # Beanstalk's own tags on every environment, next to those the request gave (moto keeps those).
        moto_env = eb_backend(region).applications[app].environments.get(env.name)
        if moto_env is not None:
            moto_env.tags.update({"elasticbeanstalk:environment-name": env.name,
                                  "elasticbeanstalk:environment-id": env.environment_id})
    parsed.update(_environment_description(region, env, status="Launching"))
    adapters_iam.ensure_beanstalk_default_roles()


def after_describe_environments(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """The environments the request asks for, from the store (moto ignores the filters, and forgets terminated
    environments); ``MaxRecords``/``NextToken`` page through them."""
    region = context.get("client_region", "")
    p = responses.api_params(context)
    listed = {item.get("EnvironmentName", ""): item for item in parsed.get("Environments", [])}
    include_deleted = p.get("IncludeDeleted", True)  # AWS's default
    deleted_since = _epoch(p.get("IncludedDeletedBackTo"))
    out = []
    for (r, name), env in sorted(store.STORE.envs.items(), key=lambda kv: (kv[1].created, kv[0][1])):
        if r != region:
            continue
        if env.termination() == "Terminated" and (not include_deleted or (
                deleted_since is not None and (env.terminated_at or 0) < deleted_since)):
            continue
        if env.termination() is None and name not in listed:
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
        out.append(_environment_description(region, env, status=(listed.get(name) or {}).get("Status") or "Ready"))
    start = int(p.get("NextToken") or 0)
    size = int(p.get("MaxRecords") or len(out) or 1)
    parsed["Environments"] = out[start:start + size]
    parsed.pop("NextToken", None)
    if start + size < len(out):
        parsed["NextToken"] = str(start + size)


def _epoch(moment: Any) -> float | None:
    """A timestamp parameter as boto3 takes it (datetime, ISO text or epoch seconds), in epoch seconds."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if isinstance(moment, dt.datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    return float(moment)


def settle_environments(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Last on DescribeEnvironments (after the latency model): note when each environment is first seen
    Ready, which AWS reports as DateUpdated, and show a forced health only once it is Ready."""
    region = context.get("client_region", "")
    for item in parsed.get("Environments", []):
        env = store.STORE.envs.get((region, item.get("EnvironmentName", "")))
        if env is None:
            continue
        if env.termination() is not None:  # whatever the latency model held it in before
            item["Status"], item["Health"] = env.termination(), "Grey"
            item["DateUpdated"] = env.terminating_at
            continue
        if item.get("Status") == "Ready":
            if env.ready_at is None:
                env.ready_at = now()
            item["Health"] = health_of(region, env.name).color
        item["DateUpdated"] = env.ready_at or env.created


def after_describe_applications(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    region = context.get("client_region", "")
    names = responses.api_params(context).get("ApplicationNames")
    apps = []
    for app in parsed.get("Applications", []):
        name = app.get("ApplicationName")
        if names and name not in names:
            continue
        app["ConfigurationTemplates"] = sorted(t for r, a, t in store.STORE.templates if r == region and a == name)
        app["Versions"] = sorted(v for r, a, v in store.STORE.versions if r == region and a == name)
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


def install(events: Any, terminate_delay: Any = None) -> None:
    """``terminate_delay``: () -> modeled seconds a termination takes (default: its p50)."""
    store.reset(terminate_delay)
    responses.hook(events, HANDLERS, "eb")
    responses.hook(events, LAST_HANDLERS, "eb-last", where="last")
    adapters_iam.install(events)


def uninstall(events: Any) -> None:
    responses.unhook(events, HANDLERS, "eb")
    responses.unhook(events, LAST_HANDLERS, "eb-last")
    adapters_iam.uninstall(events)
