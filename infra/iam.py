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
  permissions for it (``NO_RESOURCE_LEVEL``) or the step lists a whole region; then it gets ``*``.
- Every action that may get ``*`` is in one table, :data:`WILDCARD_ACTIONS`, with why; a read-only
  action on ``*`` that is not there is refused at synth time.
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

from infra import iam_failback, iam_tiers, vpc
from infra.iam_arns import Scoped as Scoped
from infra.iam_arns import _Arns as _Arns
from workflows import plan_accounts
from workflows.plan import Plan

__all__ = [
    "METRICS_NAMESPACE",
    "NO_RESOURCE_LEVEL",
    "WILDCARD_ACTIONS",
    "RESOURCE_KINDS",
    "UNSCOPED_WITH_CONDITION",
    "PermissionsError",
    "Scoped",
    "is_mutating",
    "registry_for",
    "resource_arns",
    "statements",
    "wildcard_reason",
]

METRICS_NAMESPACE = "pilotlight"

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet")

# Every action the stacks may grant on Resource "*", and why: the one list of exceptions to "a grant names the
# plan's own resources" (docs/iam.md prints it; tests/infra/test_infra_wildcards.py checks every example plan's
# synthesized templates against it). Patterns are fnmatch-style. Kinds:
#   read     read-only, and the Service Authorization Reference lists no resource type for it: AWS authorizes
#            it on "*" alone, so it is granted on "*" wherever a step needs it (NO_RESOURCE_LEVEL);
#   list     read-only; a step lists every resource of the type in a region, which AWS authorizes on "*":
#            granted on "*" only to the steps that declare it so (resource="*");
#   condition  mutating, no resource type: granted on "*" narrowed by a condition (UNSCOPED_WITH_CONDITION);
#   service  granted by CDK to the state machines' roles for their own logging and tracing; no resource type.
WILDCARD_KINDS = ("read", "list", "condition", "service")
_NO_TYPE = "The Service Authorization Reference lists no resource type for it"
WILDCARD_ACTIONS: dict[str, tuple[str, str]] = {
    "ec2:Describe*": ("read", "EC2 Describe actions support no resource-level permissions (AMIs, instances, "
                      "subnets, security groups, key pairs, instance types, launch templates)."),
    "autoscaling:Describe*": ("read", "Auto Scaling Describe actions support no resource-level permissions (what "
                              "Beanstalk reads while it builds the DR environment; the DR groups' capacity)."),
    "elasticloadbalancing:Describe*": ("read", "Elastic Load Balancing Describe actions support no resource-level "
                                       "permissions (the DR environment's load balancer, target health)."),
    "logs:DescribeLogGroups": ("read", f"{_NO_TYPE} (it lists the log groups of the account and region)."),
    "elasticbeanstalk:ListAvailableSolutionStacks": ("read", f"{_NO_TYPE}."),
    "elasticbeanstalk:ListPlatformVersions": ("read", f"{_NO_TYPE}."),
    "elasticbeanstalk:DescribeAccountAttributes": ("read", f"{_NO_TYPE}."),
    "cloudwatch:GetMetricData": ("read", f"{_NO_TYPE}: metrics are not IAM resources."),
    "cloudwatch:GetMetricStatistics": ("read", f"{_NO_TYPE}: metrics are not IAM resources (replica lag, "
                                       "replication latency, capacity)."),
    "cloudwatch:ListMetrics": ("read", f"{_NO_TYPE}: metrics are not IAM resources."),
    "cloudwatch:DescribeAlarmsForMetric": ("read", f"{_NO_TYPE}."),
    "route53:ListHostedZones": ("read", f"{_NO_TYPE}."),
    "route53:ListHealthChecks": ("read", f"{_NO_TYPE} (the failover records' health checks are found by listing)."),
    "route53:GetHealthCheckCount": ("read", f"{_NO_TYPE}."),
    "route53:TestDNSAnswer": ("read", f"{_NO_TYPE} (verification asks Route 53 what it answers for the record)."),
    "s3:ListAllMyBuckets": ("read", f"{_NO_TYPE}."),
    "sts:GetCallerIdentity": ("read", "Needs no permission at all; listed so a grant of it is never a finding."),
    "states:ListStateMachines": ("read", f"{_NO_TYPE}."),
    "sns:ListTopics": ("read", f"{_NO_TYPE}."),
    "tag:GetResources": ("read", f"{_NO_TYPE} (drill teardown and sweep find drill copies by their tags)."),
    "rds:DescribeDBEngineVersions": ("read", f"{_NO_TYPE}."),
    "rds:DescribeOrderableDBInstanceOptions": ("read", f"{_NO_TYPE}."),
    "rds:DescribeAccountAttributes": ("read", f"{_NO_TYPE} (RDS account quotas)."),
    "rds:DescribeEvents": ("read", f"{_NO_TYPE} for a search across sources (promotion and modification events)."),
    "servicequotas:GetServiceQuota": ("list", "Readiness reads the EC2 vCPU and RDS instance quotas of the DR region; "
                                      "quotas are not resources the plan names."),
    "rds:DescribeDBInstances": ("list", "Readiness counts every DB instance of the DR region against its quota; a "
                                "DescribeDBInstances without an identifier is authorized on every instance."),
    "application-autoscaling:DescribeScalableTargets": ("list", "Application Auto Scaling Describe actions support no "
                                                        "resource-level permissions (a global table's capacity)."),
    "cloudwatch:PutMetricData": ("condition", "No resource type; narrowed to the pilotlight namespace by "
                                 "cloudwatch:namespace."),
    "route53:CreateHealthCheck": ("condition", "No resource type and no service condition key; narrowed to the "
                                  "us-east-1 endpoint (aws:RequestedRegion), and only for the health_check cutover."),
    "logs:CreateLogDelivery": ("service", "Step Functions logging to CloudWatch Logs: the log-delivery actions have "
                               "no resource type (AWS documents this policy with Resource \"*\")."),
    "logs:GetLogDelivery": ("service", "Step Functions logging: no resource type."),
    "logs:UpdateLogDelivery": ("service", "Step Functions logging: no resource type."),
    "logs:DeleteLogDelivery": ("service", "Step Functions logging: no resource type."),
    "logs:ListLogDeliveries": ("service", "Step Functions logging: no resource type."),
    "logs:PutResourcePolicy": ("service", "Step Functions logging: the log group's resource policy for vended logs; "
                               "no resource type."),
    "logs:DescribeResourcePolicies": ("service", "Step Functions logging: no resource type."),
    "xray:PutTraceSegments": ("service", "Step Functions X-Ray tracing (cdk-nag AwsSolutions-SF2): no resource type."),
    "xray:PutTelemetryRecords": ("service", "X-Ray tracing: no resource type."),
    "xray:GetSamplingRules": ("service", "X-Ray tracing: no resource type."),
    "xray:GetSamplingTargets": ("service", "X-Ray tracing: no resource type."),
}


def wildcard_reason(iam_action: str) -> tuple[str, str] | None:
    """``(kind, why)`` of the first entry of :data:`WILDCARD_ACTIONS` that matches ``iam_action``, else None."""
    return next((entry for pattern, entry in WILDCARD_ACTIONS.items() if fnmatch.fnmatchcase(iam_action, pattern)),
                None)


# Read-only actions that AWS authorizes only on "*" (no resource types in the service authorization reference).
NO_RESOURCE_LEVEL: tuple[str, ...] = tuple(p for p, (kind, _) in WILDCARD_ACTIONS.items() if kind == "read")

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

# Functions that act only on what the deployment owns (the dashboard widget: its state machines, reports and
# readiness parameter), so never in a cross-account plan's other accounts: no sts:AssumeRole, no PILOTLIGHT_ACCOUNTS.
OWN_ACCOUNT_FUNCTIONS: frozenset[str] = frozenset({"widget"})

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
        "db", "source_db", "dr_subnet_group", "db_secret", "hostedzone", "change", "healthcheck", "image", "snapshot",
        "environment",
        "source_environment", "application", "configurationtemplate", "applicationversion", "platform",
        "solutionstack", "bucket", "object", "alarm", "health_alarm", "statemachine", "instance", "dr_key",
        "replication_role", "bundle_bucket", "bundle_object", "source_bundle_object", "canary_object", "ssm_parameter",
        "source_key", "source_object", "function", "function_role",
        "eb_stack", "eb_autoscaling", "eb_alarm", "eb_load_balancer", "eb_load_balancer_tagging", "eb_security_group",
        "eb_vpc", "eb_launch_template", "eb_run_instances", "eb_ec2_tagging", "eb_elastic_ip", "eb_instance",
        "eb_log_group",
        "eb_storage_bucket", "eb_storage_object", "instance_profile", "instance_role", "eb_passed_role",
        "drill_db", "drill_db_snapshot", "drill_environment", "drill_object", "drill_execution", "failover_execution",
        "drill_statemachine", "teardown_statemachine", "failover_statemachine", "plan_execution", "workflow_execution",
        "report_object", "claim_table",
    )
}
# The data and compute tiers' kinds (DynamoDB, Aurora, Auto Scaling): infra/iam_tiers.py.
RESOURCE_KINDS.update(iam_tiers.RESOURCE_KINDS)
# The canary function's network interfaces in the DR VPC (granted by infra/stacks.py, not by a step): infra/vpc.py.
RESOURCE_KINDS.update(vpc.RESOURCE_KINDS)
# The failback's renamed databases, their final snapshots and the replicate run it starts: infra/iam_failback.py.
RESOURCE_KINDS.update(iam_failback.RESOURCE_KINDS)


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
                if wildcard_reason(perm) is None:
                    raise PermissionsError(
                        f"{where}: a read-only action on '*' must be listed, with why, in infra/iam.py "
                        "WILDCARD_ACTIONS; or give it a resource kind"
                    )
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
    if registry.service not in OWN_ACCOUNT_FUNCTIONS:
        # A cross-account plan: every step function may make clients for either region, so each may assume exactly
        # the plan's roles and read exactly the parameters holding their external ids (workflows/plan_accounts.py).
        out += plan_accounts.statements(plan, account=account, partition=partition)
    return out
