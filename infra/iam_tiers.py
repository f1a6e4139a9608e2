"""Resource kinds of the data and compute tiers (DynamoDB global tables, Aurora Global Database, EC2 Auto
Scaling), as functions of an :class:`infra.iam_arns._Arns`. :mod:`infra.iam` adds :data:`RESOURCE_KINDS` to its
own; this module never imports :mod:`infra.iam`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.iam_arns import Scoped, _Arns

RESOURCE_KINDS: dict[str, Callable[[_Arns], list[str]]] = {}


# -- DynamoDB global tables (lambdas/dynamodb.py, lambdas/readiness_dynamodb.py) -----------------------------
# Tables are named by the plan: table/<name> in the primary region (the table replicate adds a replica to) and
# in the DR region (the replica: created by DynamoDB with the caller's CreateTable, CreateTableReplica and item
# permissions there, then written and read by the failover and drills). DynamoDB creates the replication
# service-linked role with the caller's iam:CreateServiceLinkedRole on the first global table of the account.
def _table_arns(arns: _Arns, regions: tuple[str, ...]) -> list[str]:
    return [arns._arn("dynamodb", r, f"table/{t.name}") for r in regions for t in arns.plan.tables]


def _global_table(arns: _Arns) -> list[str]:
    """The plan's DynamoDB tables in the primary and DR regions (the table and its DR replica)."""
    return _table_arns(arns, (arns.plan.primary_region, arns.plan.dr_region))


def _source_table(arns: _Arns) -> list[str]:
    """The plan's DynamoDB tables in the primary region (UpdateTable adds their DR replica)."""
    return _table_arns(arns, (arns.plan.primary_region,))


def _dr_table(arns: _Arns) -> list[str]:
    """The DR replicas of the plan's DynamoDB tables (created with the caller's permissions; failover writes)."""
    return _table_arns(arns, (arns.plan.dr_region,))


def _replication_slr(arns: _Arns) -> list[str | Scoped]:
    """DynamoDB's replication service-linked role, created on the account's first global table."""
    if not arns.plan.tables:
        return []
    role = (f"arn:{arns.partition}:iam::{arns.account}:role/aws-service-role/replication.dynamodb.amazonaws.com/"
            "AWSServiceRoleForDynamoDBReplication")
    return [Scoped((role,), {"StringEquals": {"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"}})]


# The SSM parameters (DR region) the failover sets to the DR region: the application's write region.
def _write_region_parameter(arns: _Arns) -> list[str]:
    """The plan's write-region SSM parameters in the DR region (set to the DR region by the failover)."""
    return [arns._arn("ssm", arns.plan.dr_region, "parameter" + ("" if n.startswith("/") else "/") + n)
            for n in arns.plan.write_region_parameters]


RESOURCE_KINDS.update({"table": _global_table, "source_table": _source_table, "dr_table": _dr_table,
                       "replication_slr": _replication_slr, "write_region_parameter": _write_region_parameter})


# -- Aurora Global Database (lambdas/aurora.py, lambdas/readiness_aurora.py) ----------------------------------
# The plan's global clusters (account-level ARNs: no region), the primary clusters (read by the failover's probe;
# their roles change in a switchover or failover), the DR clusters and their instances <dr_cluster>-<n>, the DR DB
# subnet groups and the default parameter and option groups the DR cluster and its instances are created with, the
# DR-region keys of encrypted DR clusters, and a drill's copies <prefix>-drill-<id> (cluster, its instance, the
# snapshot a headless DR cluster is copied through).
def _aurora_global_cluster(arns: _Arns) -> list[str]:
    return [f"arn:{arns.partition}:rds::{arns.account}:global-cluster:{d.global_cluster_identifier}"
            for d in arns.plan.aurora_databases]


def _aurora_primary_cluster(arns: _Arns) -> list[str]:
    return [arns._arn("rds", arns.plan.primary_region, f"cluster:{d.identifier}") for d in arns.plan.aurora_databases]


def _aurora_dr_cluster(arns: _Arns) -> list[str]:
    return [arns._dr("rds", f"cluster:{d.dr_cluster_identifier}") for d in arns.plan.aurora_databases]


def _aurora_dr_instance(arns: _Arns) -> list[str]:
    return [arns._dr("rds", f"db:{d.dr_cluster_identifier}-*") for d in arns.plan.aurora_databases]


def _aurora_subnet_group(arns: _Arns) -> list[str]:
    names = sorted({d.dr_network.subnet_group.lower() for d in arns.plan.aurora_databases})
    return [arns._dr("rds", f"subgrp:{n}") for n in names]


# The Service Authorization Reference lists the cluster parameter group (cluster-pg*) and the option group (og*) as
# required resource types of rds:CreateDBCluster, rds:RestoreDBClusterToPointInTime and
# rds:RestoreDBClusterFromSnapshot (and pg, og as resource types of rds:CreateDBInstance): a cluster created without
# naming them gets its engine's defaults, default.<family> (cluster-pg:, pg:) and default:<engine>-<version> (og:).
def _aurora_parameter_group(arns: _Arns) -> list[str]:
    if not arns.plan.aurora_databases:
        return []
    return [arns._dr("rds", "cluster-pg:default.*"), arns._dr("rds", "pg:default.*"), arns._dr("rds", "og:default:*")]


def _aurora_dr_key(arns: _Arns) -> list[str | Scoped]:
    out: list[str | Scoped] = []
    aliases: list[str] = []
    for key in sorted({d.dr_kms_key_id for d in arns.plan.aurora_databases if d.dr_kms_key_id}):
        if key.startswith("alias/"):
            aliases.append(key)
        elif key.startswith("arn:") and ":alias/" in key:
            aliases.append("alias/" + key.split(":alias/", 1)[1])
        else:
            out.append(key if key.startswith("arn:") else arns._dr("kms", f"key/{key}"))
    if aliases:
        out.append(Scoped((arns._dr("kms", "key/*"),), {"ForAnyValue:StringEquals": {"kms:ResourceAliases": aliases}}))
    return out


# The master user's credentials the failover's Data API canary runs with (lambdas/canary.py verify_aurora): the
# plan's secret in the DR region (Secrets Manager appends a random suffix to a secret's ARN), and the secrets RDS
# manages for clusters there (MasterUserSecret, named rds!cluster-<uuid> by RDS).
def _aurora_secret(arns: _Arns) -> list[str]:
    """The Aurora master credentials in the DR region: the plan's secret, and the secrets RDS manages for clusters."""
    dbs = arns.plan.aurora_databases
    out = [arns._dr("secretsmanager", f"secret:{n}-??????") for n in sorted({d.credentials_secret_name for d in dbs})]
    if dbs:
        out.append(arns._dr("secretsmanager", "secret:rds!cluster-*"))
    return out


def _aurora_drill(arns: _Arns, resource: str) -> list[str]:
    from lambdas import aurora

    return sorted({arns._dr("rds", f"{resource}:{drill_prefix}*") for drill_prefix in
                   (arns._drill_prefix(d.dr_cluster_identifier, aurora.CLONE_NAME_LIMIT)
                    for d in arns.plan.aurora_databases)})


RESOURCE_KINDS.update({
    "aurora_global_cluster": _aurora_global_cluster, "aurora_primary_cluster": _aurora_primary_cluster,
    "aurora_dr_cluster": _aurora_dr_cluster, "aurora_dr_instance": _aurora_dr_instance,
    "aurora_subnet_group": _aurora_subnet_group, "aurora_parameter_group": _aurora_parameter_group,
    "aurora_dr_key": _aurora_dr_key, "aurora_secret": _aurora_secret,
    "aurora_drill_cluster": lambda arns: _aurora_drill(arns, "cluster"),
    "aurora_drill_instance": lambda arns: _aurora_drill(arns, "db"),
    "aurora_drill_snapshot": lambda arns: _aurora_drill(arns, "cluster-snapshot"),
})


# -- EC2 Auto Scaling (lambdas/autoscaling.py, lambdas/readiness_autoscaling.py) -------------------------------
# The plan's DR groups (autoScalingGroup:<uuid minted at creation>:autoScalingGroupName/<name>) and a drill's copies
# <dr group>-drill-<id>. Create/Update of a DR group is narrowed to the plan's DR subnets and target groups
# (autoscaling:VPCZoneIdentifiers, autoscaling:TargetGroupARNs; ForAllValues: a request that names none passes), and
# a drill group can carry no target group at all (Null), so a drill never registers in the production load balancer.
# Launch templates: EC2 names them by the id minted at creation (launch-template/<id>), never by name, so
# launch-template/* in the DR region narrowed by the pilotlight:plan tag replicate puts on the DR template (request
# tag at creation, resource tag for new versions and the default version). Auto Scaling launches with the caller's
# ec2:RunInstances when a group is created or updated on a launch template: new instances, volumes and interfaces
# (ids minted at launch), the plan's DR subnets and security groups, the DR AMI copies (image/*: ids per copy) and
# key pairs (key-pair/*: the primary template's key name is not in the plan), only from a DR launch template
# (ec2:LaunchTemplate); tags only as RunInstances creates them. iam:PassRole: the instance profile names its role,
# which the plan does not name, so role/* passed to EC2 only (iam:PassedToService). The AWSServiceRoleForAutoScaling
# service-linked role, created on the account's first group.
def _asg_arn(arns: _Arns, name: str) -> str:
    return arns._dr("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{name}")


def _asg_group(arns: _Arns) -> list[str | Scoped]:
    """The plan's DR Auto Scaling groups, only with its DR subnets and target groups."""
    groups = arns.plan.compute
    if not groups:
        return []
    condition = {"ForAllValues:StringEquals": {
        "autoscaling:VPCZoneIdentifiers": sorted({s for g in groups for s in g.dr_network.subnets}),
        "autoscaling:TargetGroupARNs": sorted({t for g in groups for t in g.dr_target_group_arns})}}
    return [Scoped(tuple(sorted(_asg_arn(arns, g.dr_group_name) for g in groups)), condition)]


def _asg_drill_group(arns: _Arns) -> list[str | Scoped]:
    """A drill's copies of the DR groups (<DR group>-drill-<id>), without target groups."""
    from lambdas import autoscaling

    groups = arns.plan.compute
    if not groups:
        return []
    names = sorted({_asg_arn(arns, arns._drill_prefix(g.dr_group_name, autoscaling.GROUP_NAME_LIMIT) + "*")
                    for g in groups})
    return [Scoped(tuple(names), {"Null": {"autoscaling:TargetGroupARNs": "true"}, "ForAllValues:StringEquals": {
        "autoscaling:VPCZoneIdentifiers": sorted({s for g in groups for s in g.dr_network.subnets})}})]


def _asg_template(arns: _Arns, condition: dict[str, Any]) -> list[str | Scoped]:
    return [Scoped((arns._dr("ec2", "launch-template/*"),), condition)] if arns.plan.compute else []


def _asg_new_launch_template(arns: _Arns) -> list[str | Scoped]:
    """The DR launch templates replicate creates, tagged with the plan as they are created."""
    return _asg_template(arns, {"StringEquals": {"aws:RequestTag/pilotlight:plan": arns.plan.name}})


def _asg_launch_template(arns: _Arns) -> list[str | Scoped]:
    """The DR launch templates tagged with the plan (new versions, the default version)."""
    return _asg_template(arns, {"StringEquals": {"aws:ResourceTag/pilotlight:plan": arns.plan.name}})


def _asg_launch_template_tagging(arns: _Arns) -> list[str | Scoped]:
    """Tags on a DR launch template as CreateLaunchTemplate creates it."""
    return _asg_template(arns, {"StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"}})


def _asg_run_instances(arns: _Arns) -> list[str | Scoped]:
    """What Auto Scaling launches with the caller's RunInstances from a DR launch template."""
    groups = arns.plan.compute
    if not groups:
        return []
    out = [arns._dr("ec2", f"{t}/*") for t in ("instance", "volume", "network-interface", "launch-template",
                                                "key-pair")]
    out.append(arns._dr("ec2", "image/*", account=""))
    out += sorted({arns._dr("ec2", f"subnet/{s}") for g in groups for s in g.dr_network.subnets})
    out += sorted({arns._dr("ec2", f"security-group/{s}") for g in groups for s in g.dr_network.security_groups})
    return [Scoped(tuple(out), {"ArnLike": {"ec2:LaunchTemplate": arns._dr("ec2", "launch-template/*")}})]


def _asg_run_tagging(arns: _Arns) -> list[str | Scoped]:
    """Tags on what RunInstances creates, as it creates it."""
    if not arns.plan.compute:
        return []
    made = tuple(arns._dr("ec2", f"{t}/*") for t in ("instance", "volume", "network-interface"))
    return [Scoped(made, {"StringEquals": {"ec2:CreateAction": "RunInstances"}})]


def _asg_passed_role(arns: _Arns) -> list[str | Scoped]:
    """Roles of the DR instances' profiles, passed to EC2 only: the plan's roles, or any role when a group takes
    its profile from the primary template (whose role the plan does not name)."""
    if not arns.plan.compute:
        return []
    roles = [group.instance_role for group in arns.plan.compute]
    names = sorted(set(roles)) if all(roles) else ["*"]
    return [Scoped(tuple(f"arn:{arns.partition}:iam::{arns.account}:role/{name}" for name in names),
                   {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})]


def _asg_service_linked_role(arns: _Arns) -> list[str | Scoped]:
    """AWSServiceRoleForAutoScaling, created on the account's first group."""
    if not arns.plan.compute:
        return []
    role = (f"arn:{arns.partition}:iam::{arns.account}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling")
    return [Scoped((role,), {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}})]


RESOURCE_KINDS.update({
    "asg_group": _asg_group, "asg_drill_group": _asg_drill_group,
    "asg_new_launch_template": _asg_new_launch_template, "asg_launch_template": _asg_launch_template,
    "asg_launch_template_tagging": _asg_launch_template_tagging,
    "asg_run_instances": _asg_run_instances, "asg_run_tagging": _asg_run_tagging,
    "asg_passed_role": _asg_passed_role, "asg_service_linked_role": _asg_service_linked_role,
})
