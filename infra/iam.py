"""Least-privilege IAM computed from the handlers' declarations and the plan's resources.

Every action in ``lambdas/<service>.py`` declares the IAM actions it needs and the *kind* of
resource it works on (``resource="db"``). This module turns a service's registry plus a plan
into IAM statements whose resources are the ARNs of the plan's own resources of that kind.

Rules:

- A mutating action (anything not ``Describe*``/``List*``/``Get*``/``Head*``) is granted only on
  the ARNs of its declared kind. A mutating action with no kind is refused at synth time
  (:class:`PermissionsError`), except the few AWS actions that have no resource type at all,
  which are granted on ``*`` narrowed by a condition (``UNSCOPED_WITH_CONDITION``).
- A read-only action is scoped like a mutating one, unless AWS does not support resource-level
  permissions for it (``NO_RESOURCE_LEVEL``); then it gets ``*``.
- An unknown kind is an error naming this module, so a new handler cannot silently widen access.

The kinds' ARN builders are in :mod:`infra.iam_arns` (``Scoped``, ``_Arns``) and, for the data and compute
tiers (DynamoDB, Aurora, Auto Scaling), :mod:`infra.iam_tiers`; :data:`RESOURCE_KINDS` gathers both.

This module does not import aws_cdk: it returns plain IAM JSON, so it is testable on its own.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from collections.abc import Callable
from typing import Any

from infra import iam_tiers
from infra.iam_arns import Scoped as Scoped
from infra.iam_arns import _Arns as _Arns
from workflows.plan import Plan

__all__ = [
    "METRICS_NAMESPACE",
    "NO_RESOURCE_LEVEL",
    "RESOURCE_KINDS",
    "UNSCOPED_WITH_CONDITION",
    "PermissionsError",
    "Scoped",
    "is_mutating",
    "registry_for",
    "resource_arns",
    "statements",
]

METRICS_NAMESPACE = "pilotlight"

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet")

# Read-only actions that AWS authorizes only on "*" (no resource types in the service
# authorization reference). Patterns are fnmatch-style.
NO_RESOURCE_LEVEL: tuple[str, ...] = (
    "ec2:Describe*",
    "elasticbeanstalk:ListAvailableSolutionStacks",
    "elasticbeanstalk:ListPlatformVersions",
    "elasticbeanstalk:DescribeAccountAttributes",
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics",
    "cloudwatch:DescribeAlarmsForMetric",
    "route53:ListHostedZones",
    "route53:ListHealthChecks",
    "route53:GetHealthCheckCount",
    "route53:TestDNSAnswer",
    "s3:ListAllMyBuckets",
    "sts:GetCallerIdentity",
    "states:ListStateMachines",
    "sns:ListTopics",
    "tag:GetResources",
    "rds:DescribeDBEngineVersions",
    "rds:DescribeOrderableDBInstanceOptions",
    "rds:DescribeAccountAttributes",
    "rds:DescribeEvents",
    # What creating a Beanstalk environment reads (Auto Scaling, load balancers, log groups): list-level.
    "autoscaling:Describe*",
    "elasticloadbalancing:Describe*",
    "logs:DescribeLogGroups",
)

# Mutating actions that have no resource type at all: the only possible Resource is "*", so
# they are granted with a condition that narrows them to what pilotlight owns. An action that also
# names a kind for such a permission gets it only when the plan has resources of that kind.
UNSCOPED_WITH_CONDITION: dict[str, dict[str, dict[str, str]]] = {
    "cloudwatch:PutMetricData": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
    # No resource type and no service condition key (the request carries no tags). Route 53 is a global
    # service signed in us-east-1; the condition keeps the grant to that endpoint, and the action is
    # granted only to plans with the health_check cutover (kind `healthcheck`).
    "route53:CreateHealthCheck": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}},
}

# Actions whose verb is not one of the read prefixes but whose access level is Read in the service
# authorization reference.
READ_ONLY: frozenset[str] = frozenset({"route53:TestDNSAnswer", "iam:SimulatePrincipalPolicy"})


class PermissionsError(ValueError):
    """A handler declaration that cannot be turned into least-privilege IAM."""


def as_values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def is_mutating(iam_action: str) -> bool:
    verb = iam_action.split(":", 1)[1]
    return not verb.startswith(_READ_PREFIXES) and iam_action not in READ_ONLY


def no_resource_level(iam_action: str) -> bool:
    return any(fnmatch.fnmatchcase(iam_action, pattern) for pattern in NO_RESOURCE_LEVEL)


RESOURCE_KINDS: dict[str, Callable[[_Arns], list[str]]] = {
    name: getattr(_Arns, name)
    for name in (
        "db", "source_db", "dr_subnet_group", "hostedzone", "change", "healthcheck", "image", "snapshot", "environment",
        "source_environment", "application", "configurationtemplate", "applicationversion", "platform",
        "solutionstack", "bucket", "object", "alarm", "health_alarm", "statemachine", "instance", "dr_key",
        "replication_role", "bundle_bucket", "bundle_object", "source_bundle_object", "canary_object", "ssm_parameter",
        "source_key", "source_object", "function", "function_role",
        "eb_stack", "eb_autoscaling", "eb_alarm", "eb_load_balancer", "eb_load_balancer_tagging", "eb_security_group",
        "eb_vpc", "eb_launch_template", "eb_run_instances", "eb_ec2_tagging", "eb_elastic_ip", "eb_instance",
        "eb_log_group",
        "eb_storage_bucket", "eb_storage_object", "instance_profile", "instance_role", "eb_passed_role",
        "drill_db", "drill_db_snapshot", "drill_environment", "drill_object", "drill_execution",
        "drill_statemachine", "teardown_statemachine", "failover_statemachine", "plan_execution", "report_object",
    )
}
# The data and compute tiers' kinds (DynamoDB, Aurora, Auto Scaling): infra/iam_tiers.py.
RESOURCE_KINDS.update(iam_tiers.RESOURCE_KINDS)


def resource_arns(
    plan: Plan, kind: str, *, account: str, partition: str = "aws", extra: dict[str, list[str]] | None = None
) -> list[str | Scoped]:
    """ARNs of the plan's resources of ``kind``; ``extra`` adds kinds the deployment owns (e.g. ``topic``)."""
    if extra and kind in extra:
        return list(extra[kind])
    if kind not in RESOURCE_KINDS:
        known = sorted(set(RESOURCE_KINDS) | set(extra or {}))
        raise PermissionsError(
            f"unknown resource kind {kind!r}; known kinds: {', '.join(known)} (add it to infra/iam.py RESOURCE_KINDS)"
        )
    return RESOURCE_KINDS[kind](_Arns(plan, account, partition))


def registry_for(service: str) -> Any:
    """The action registry of ``lambdas/<service>.py``."""
    module = importlib.import_module(f"lambdas.{service}")
    registry = getattr(module, "registry", None)
    if registry is None:
        raise PermissionsError(f"lambdas.{service} has no `registry`")
    return registry


def _group(arns: list[str | Scoped]) -> list[Scoped]:
    """Plain ARNs as one unconditioned scope, followed by the conditioned ones."""
    plain = tuple(a for a in arns if isinstance(a, str))
    return ([Scoped(plain, None)] if plain else []) + [a for a in arns if isinstance(a, Scoped)]  # type: ignore[arg-type]


def statements(
    registry: Any,
    plan: Plan,
    *,
    account: str,
    partition: str = "aws",
    extra: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """IAM policy statements (JSON form) for every action of ``registry``, scoped to ``plan``.

    Statements are merged by resource set and sorted, so the output is stable across runs.
    """
    grants: dict[tuple[tuple[str, ...], str], set[str]] = {}
    conditioned: dict[str, dict[str, Any]] = {}
    for action in registry.actions.values():
        for perm in action.permissions:
            kinds = action.resource_for(perm)
            where = f"{registry.service}.{action.name} ({perm})"
            if perm in UNSCOPED_WITH_CONDITION:
                gated = "*" not in kinds
                if gated and not any(
                    resource_arns(plan, kind, account=account, partition=partition, extra=extra) for kind in kinds
                ):
                    continue  # the plan has nothing this action works on
                conditioned[perm] = UNSCOPED_WITH_CONDITION[perm]
                continue
            if not is_mutating(perm) and ("*" in kinds or no_resource_level(perm)):
                grants.setdefault((("*",), ""), set()).add(perm)
                continue
            if "*" in kinds:
                raise PermissionsError(
                    f"{where}: a mutating action needs a resource kind (Registry.action(resource=...)); "
                    "pilotlight never grants a mutating action on '*'"
                )
            for kind in kinds:
                # An empty list means the plan has nothing of this kind: grant nothing for it.
                for scope in _group(resource_arns(plan, kind, account=account, partition=partition, extra=extra)):
                    if "*" in scope.arns:
                        raise PermissionsError(f"{where}: resource kind {kind!r} resolved to '*'")
                    key = (tuple(sorted(set(scope.arns))), json.dumps(scope.condition, sort_keys=True))
                    grants.setdefault(key, set()).add(perm)
    out: list[dict[str, Any]] = []
    for (resources, condition), perms in sorted(grants.items(), key=lambda kv: (kv[0][0] == ("*",), kv[0])):
        statement: dict[str, Any] = {"Effect": "Allow", "Action": sorted(perms), "Resource": list(resources)}
        if condition not in ("", "null"):
            statement["Condition"] = json.loads(condition)
        out.append(statement)
    for perm, condition in sorted(conditioned.items()):
        out.append({"Effect": "Allow", "Action": [perm], "Resource": ["*"], "Condition": condition})
    return out
