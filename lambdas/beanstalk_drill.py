"""Drill helpers of the Beanstalk steps (:mod:`lambdas.beanstalk` registers the actions that use them).

- :func:`endpoints`: the endpoint addresses of RDS instances, which the DR replacements of environment
  properties (:func:`lambdas.beanstalk.dr_replacements`) and a drill's database copies' hosts derive from.
- The drill launch rewrite: :func:`check_drill_names` refuses a drill copy under a production name, and
  :func:`drill_settings` points a drill's copy of the DR environment at the drill's database copies, never
  at the live DR replica or the primary (``launch_environment`` with ``drill``).
- The drill teardown: :func:`remove_environments` terminates what is left of the selected drills'
  environment copies (``remove_drill_environments``, ``check_drill_environments_removed``), with the IAM
  permissions Beanstalk uses to delete what an environment built (:data:`ENVIRONMENT_TEARDOWN`).

Plain functions only: this module never imports :mod:`lambdas.beanstalk`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill as drill_lib
from lambdas.beanstalk_config import drill_overrides
from lambdas.common import CONNECTION_ERRORS, aws_errors, client, raise_mapped, unavailable
from lambdas.errors import AwsUnavailable, PreconditionFailed, Throttled


def endpoints(rds: Any, identifiers: list[str]) -> dict[str, str]:
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


# -- drill launch: the copy's names and its settings -------------------------------------------------


def check_drill_names(drill: dict[str, Any], environment: str, cname_prefix: str) -> None:
    """A drill's copies carry its id in their names: never launch one under a production name."""
    ident = drill.get("id", "")
    if not drill_lib.is_drill_id(ident):
        raise PreconditionFailed(f"{ident!r} is not a drill id")
    for what, name in (("environment", environment), ("CNAME prefix", cname_prefix)):
        if drill_lib.id_in_name(name) != ident:
            raise PreconditionFailed(f"drill {ident}: {what} {name!r} is not a drill copy's name for it")
    for db in drill.get("databases") or []:
        if drill_lib.id_in_name(db["copy"]) != ident:
            raise PreconditionFailed(f"drill {ident}: database {db['copy']!r} is not a drill copy's name for it")


def drill_settings(
    region: str, drill: dict[str, Any], options: list[dict[str, Any]], template: str
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The OptionSettings overrides that point a drill's environment at its database copies, and a summary.

    A copy may not exist yet, but every RDS endpoint of an account in a region is
    ``<identifier>.<account-and-region id>.<region>.rds.amazonaws.com``: the copy's host is its identifier
    followed by what follows the live replica's identifier in the live replica's host. The live replicas'
    hosts and the primaries' (those that can be read: the primary region may be the one that is down) are
    production; a setting still naming one once the overrides apply is refused.
    """
    ident, databases = drill["id"], list(drill.get("databases") or [])
    live = endpoints(client("rds", region), [db["live"] for db in databases])
    copies: dict[str, str] = {}
    production: dict[str, str] = {}
    for db in databases:
        host = live.get(db["live"])
        if not host or "." not in host:
            raise PreconditionFailed(
                f"drill {ident}: the live DR replica {db['live']} has no endpoint in {region}, so its copy "
                f"{db['copy']}'s host cannot be derived from it"
            )
        copies[host] = db["copy"].lower() + host[host.index("."):]
        production[host] = f"the live DR replica {db['live']}"
    unchecked: list[str] = []
    by_region: dict[str, list[str]] = defaultdict(list)
    for db in databases:
        by_region[db["primary_region"]].append(db["identifier"])
    for primary_region, identifiers in sorted(by_region.items()):
        try:
            primaries = endpoints(client("rds", primary_region, fast=True), identifiers)
        except (AwsUnavailable, Throttled, *CONNECTION_ERRORS):
            unchecked += identifiers  # the primary region may be what is down; what is known is still checked
            continue
        production.update({h: f"the primary {i} ({primary_region})" for i, h in primaries.items()})
        unchecked += [i for i in identifiers if i not in primaries]
    overrides, problems = drill_overrides(options, copies=copies, production=production)
    if problems:
        raise PreconditionFailed(
            f"drill {ident}: saved configuration {template} would still reach production: {'; '.join(problems)}. "
            "A drill never points at production; make the setting an environment property naming the DR replica's "
            "endpoint (replicate does it for the plan's databases)"
        )
    summary = {"id": ident, "copies": {db["copy"]: copies[live[db["live"]]] for db in databases},
               "rewritten": [o["OptionName"] for o in overrides], "primaries_unchecked": sorted(unchecked)}
    return overrides, summary


# -- drill teardown: terminate the drills' environment copies ---------------------------------------

# TerminateEnvironment (TerminateResources=True) makes Beanstalk delete the environment's CloudFormation stack,
# and the stack what it built, with the caller's permissions, as CreateEnvironment builds it with them: the
# delete side of lambdas.beanstalk.ENVIRONMENT_BUILD (AWSElasticBeanstalkService's AllowOperations and its
# CloudFormation and log-group statements list them). IAM action -> resource kinds, as ENVIRONMENT_BUILD says
# (infra/iam.py says how each is scoped and why; "*" only for reads AWS authorizes on "*" alone).
ENVIRONMENT_TEARDOWN: dict[str, str | tuple[str, ...]] = {
    **dict.fromkeys(("cloudformation:DeleteStack", "cloudformation:DescribeStacks",
                     "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResource",
                     "cloudformation:DescribeStackResources", "cloudformation:ListStackResources",
                     "cloudformation:GetTemplate"), "eb_stack"),
    # The group is scaled to zero and deleted with its policies, scheduled actions and launch configuration.
    **dict.fromkeys(("autoscaling:UpdateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup",
                     "autoscaling:DeleteLaunchConfiguration", "autoscaling:DeletePolicy",
                     "autoscaling:DeleteScheduledAction", "autoscaling:SuspendProcesses",
                     "autoscaling:DetachInstances", "autoscaling:TerminateInstanceInAutoScalingGroup"),
                    "eb_autoscaling"),
    **dict.fromkeys(("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
                     "autoscaling:DescribeScalingActivities", "autoscaling:DescribeAutoScalingInstances",
                     "autoscaling:DescribeScheduledActions", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
                     "ec2:DescribeAddresses", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                     "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
                     "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetHealth",
                     "logs:DescribeLogGroups"), "*"),
    "ec2:TerminateInstances": "eb_instance",
    **dict.fromkeys(("ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"),
                    "eb_security_group"),
    **dict.fromkeys(("ec2:DeleteLaunchTemplate", "ec2:DeleteLaunchTemplateVersions"), "eb_launch_template"),
    # A single-instance environment's Elastic IP, taken from its instance (as ENVIRONMENT_BUILD associates it).
    "ec2:DisassociateAddress": ("eb_elastic_ip", "eb_instance"),
    "ec2:ReleaseAddress": "eb_elastic_ip",
    **dict.fromkeys(("elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup",
                     "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeregisterTargets",
                     "elasticloadbalancing:DeregisterInstancesFromLoadBalancer"), "eb_load_balancer"),
    **dict.fromkeys(("cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"), "eb_alarm"),
    # Streamed logs are deleted with the environment when its configuration says so (DeleteOnTerminate).
    "logs:DeleteLogGroup": "eb_log_group",
}

# The permissions and resource kinds of the teardown actions (remove_drill_environments and its check).
TEARDOWN_PERMISSIONS = [
    "elasticbeanstalk:DescribeEnvironments",
    "elasticbeanstalk:ListTagsForResource",
    "elasticbeanstalk:TerminateEnvironment",
    *ENVIRONMENT_TEARDOWN,
]
TEARDOWN_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "elasticbeanstalk:DescribeEnvironments": "drill_environment",
    "elasticbeanstalk:ListTagsForResource": "drill_environment",
    "elasticbeanstalk:TerminateEnvironment": "drill_environment",
    **ENVIRONMENT_TEARDOWN,
}


def remove_environments(
    region: str, plan: str, drills: dict[str, Any], protected: list[str] | None, attempt: int,
    before: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One pass of the teardown (``lambdas.beanstalk.remove_drill_environments`` says what it does); ``before``
    is what the loop's earlier calls terminated."""
    eb = client("elasticbeanstalk", region)
    deleted: list[dict[str, Any]] = []
    remaining: list[dict[str, Any]] = []
    for env, ident in _drill_environments(eb, plan, drills, {p.lower() for p in protected or []}):
        name, status = env["EnvironmentName"], env.get("Status", "")
        item: dict[str, Any] = {"kind": "environment", "id": name, "drill": ident}
        if status == "Terminated":
            continue
        # Only a Ready environment can be terminated (Beanstalk refuses it while an operation is in progress:
        # Launching, Updating, Aborting, ...); the others, and those Terminating, are waited for.
        if status == "Ready":
            outcome, reason = _terminate(eb, name)
            if outcome == "gone":
                continue
            if outcome == "terminating":
                deleted.append(dict(item))
                status = "Terminating"
            else:
                item["reason"] = reason
        remaining.append({**item, "status": status})
    return {"done": not remaining, "attempt": attempt, "deleted": [*(before or []), *deleted], "deleted_now": deleted,
            "remaining": remaining, "left": len(remaining)}


def _drill_environments(
    eb: Any, plan: str, drills: dict[str, Any], protected: set[str]
) -> list[tuple[dict[str, Any], str]]:
    """The environments of the selected drills of ``plan``, with their drill ids: the id in the name and the
    drill tag must agree, and the plan tag must name ``plan``."""
    found: list[tuple[dict[str, Any], str]] = []
    params: dict[str, Any] = {"IncludeDeleted": False}
    while True:
        with aws_errors("describe environments"):
            page = eb.describe_environments(**params)
        for env in page.get("Environments") or []:
            name = env.get("EnvironmentName", "")
            ident = drill_lib.id_in_name(name)
            if ident is None or name.lower() in protected or not drill_lib.selected(ident, drills):
                continue
            tags = _tags(eb, env)
            if tags is None:
                continue  # gone since it was listed
            if drill_lib.tag_value(tags, drill_lib.DRILL_TAG) == ident and drill_lib.tag_value(
                    tags, drill_lib.PLAN_TAG) == plan:
                found.append((env, ident))
        if not page.get("NextToken"):
            return found
        params["NextToken"] = page["NextToken"]


def _tags(eb: Any, env: dict[str, Any]) -> list[dict[str, str]] | None:
    try:
        return eb.list_tags_for_resource(ResourceArn=env["EnvironmentArn"]).get("ResourceTags") or []
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise_mapped(exc, f"read the tags of {env.get('EnvironmentName')}")
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, f"read the tags of {env.get('EnvironmentName')}") from exc
    return None


def _terminate(eb: Any, name: str) -> tuple[str, str]:
    """Terminate ``name`` with its resources: ``("terminating", "")``, ``("gone", reason)`` when it no longer
    exists, or ``("busy", reason)`` when Beanstalk refuses it in its current state (the next check retries)."""
    try:
        eb.terminate_environment(EnvironmentName=name, TerminateResources=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == "InvalidParameterValue" and "No Environment found" in message:
            return "gone", message
        if code == "InvalidParameterValue":  # e.g. "... is in an invalid state for this operation. Must be Ready."
            return "busy", message
        raise_mapped(exc, f"terminate {name}")
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, f"terminate {name}") from exc
    return "terminating", ""
