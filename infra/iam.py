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

This module does not import aws_cdk: it returns plain IAM JSON, so it is testable on its own.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Scoped:
    """ARNs that can only be named with a wildcard, narrowed by an IAM condition.

    Example: Beanstalk's instances get ids at launch, so ``instance/*`` in the primary region is
    narrowed to the plan's environments by their ``elasticbeanstalk:environment-name`` tag.
    """

    arns: tuple[str, ...]
    condition: dict[str, Any] | None


def as_values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def is_mutating(iam_action: str) -> bool:
    verb = iam_action.split(":", 1)[1]
    return not verb.startswith(_READ_PREFIXES) and iam_action not in READ_ONLY


def no_resource_level(iam_action: str) -> bool:
    return any(fnmatch.fnmatchcase(iam_action, pattern) for pattern in NO_RESOURCE_LEVEL)


class _Arns:
    """ARN builders for one plan in one account/partition (account may be a CDK token)."""

    def __init__(self, plan: Plan, account: str, partition: str) -> None:
        self.plan, self.account, self.partition = plan, account, partition

    def _arn(self, service: str, region: str, resource: str, account: str | None = None) -> str:
        acct = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{acct}:{resource}"

    # RDS: the DR replicas are what failover promotes and modifies.
    def db(self) -> list[str]:
        return [self._arn("rds", self.plan.dr_region, f"db:{d.dr_replica_identifier}") for d in self.plan.rds_databases]

    # RDS in the primary region: the sources and their in-region second-AZ replicas.
    def source_db(self) -> list[str]:
        out = []
        for d in self.plan.rds_databases:
            out.append(self._arn("rds", self.plan.primary_region, f"db:{d.identifier}"))
            if d.az2_replica:
                out.append(self._arn("rds", self.plan.primary_region, f"db:{d.az2_replica.identifier}"))
        return out

    # The DR replicas' DB subnet groups (RDS stores their names lower-case); named by CreateDBInstanceReadReplica.
    def dr_subnet_group(self) -> list[str]:
        names = sorted({d.dr_network.subnet_group.lower() for d in self.plan.rds_databases})
        return [self._arn("rds", self.plan.dr_region, f"subgrp:{n}") for n in names]

    def hostedzone(self) -> list[str]:
        return [f"arn:{self.partition}:route53:::hostedzone/{self.plan.dns.hosted_zone_id}"] if self.plan.dns else []

    def change(self) -> list[str]:
        # Change ids are minted by Route 53 per request; the ARN cannot be narrower than this.
        return [f"arn:{self.partition}:route53:::change/*"] if self.plan.dns else []

    # Health check ids are minted by Route 53 at creation; only plans with the health_check cutover have one.
    def healthcheck(self) -> list[str]:
        return [f"arn:{self.partition}:route53:::healthcheck/*"] if self.plan.health_check_cutover else []

    # EC2 images and their snapshots: ids are minted per copy, so scope to the plan's two regions.
    def image(self) -> list[str]:
        regions = (self.plan.primary_region, self.plan.dr_region)
        return ([self._arn("ec2", r, "image/*", account="") for r in regions]
                if self.plan.environments or self.plan.compute else [])

    def snapshot(self) -> list[str]:
        regions = (self.plan.primary_region, self.plan.dr_region)
        return ([self._arn("ec2", r, "snapshot/*", account="") for r in regions]
                if self.plan.environments or self.plan.compute else [])

    # EC2 instances of the plan's primary environments: ids come and go with the Auto Scaling group,
    # so the wildcard is narrowed by the tag Beanstalk puts on every instance it launches.
    def instance(self) -> list[str | Scoped]:
        if not self.plan.environments:
            return []
        names = sorted(e.name for e in self.plan.environments)
        return [Scoped(
            (self._arn("ec2", self.plan.primary_region, "instance/*"),),
            {"StringEquals": {"aws:ResourceTag/elasticbeanstalk:environment-name": names}},
        )]

    # The DR-region KMS keys the plan names (encrypted replicas and image copies). A key named by
    # alias is granted on key/* in the DR region narrowed to keys carrying that alias.
    def dr_key(self) -> list[str | Scoped]:
        keys = sorted({k for k in [self.plan.ami.dr_kms_key_id, *(d.dr_kms_key_id for d in self.plan.rds_databases)]
                       if k})
        out: list[str | Scoped] = []
        aliases: list[str] = []
        for key in keys:
            if key.startswith("alias/"):
                aliases.append(key)
            elif key.startswith("arn:") and ":alias/" in key:
                aliases.append("alias/" + key.split(":alias/", 1)[1])
            elif key.startswith("arn:"):
                out.append(key)
            else:
                out.append(self._arn("kms", self.plan.dr_region, f"key/{key}"))
        if aliases:
            out.append(Scoped(
                (self._arn("kms", self.plan.dr_region, "key/*"),),
                {"ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted(aliases)}},
            ))
        return out

    # The primary-region KMS keys of encrypted source images (their volumes' keys, which the plan does
    # not name): key/* in the primary region, narrowed to use through EC2 there (CopyImage decrypts
    # the source snapshots with them). Only plans that copy encrypted images (ami.dr_kms_key_id) get it.
    def source_key(self) -> list[str | Scoped]:
        if not (self.plan.environments and self.plan.ami.dr_kms_key_id):
            return []
        region = self.plan.primary_region
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return [Scoped(
            (self._arn("kms", region, "key/*"),), {"StringEquals": {"kms:ViaService": f"ec2.{region}.{suffix}"}}
        )]

    # The IAM roles S3 assumes to replicate: the plan's own, or the one replicate creates per plan.
    def replication_role(self) -> list[str]:
        from lambdas import s3

        out = {b.replication_role_arn for b in self.plan.buckets if b.replication_role_arn}
        if any(not b.replication_role_arn for b in self.plan.buckets):
            out.add(f"arn:{self.partition}:iam::{self.account}:role/{s3.role_name(self.plan.name)}")
        return sorted(out)

    # The DR-region bucket that holds copies of the application source bundles.
    def bundle_bucket(self) -> list[str]:
        return [f"arn:{self.partition}:s3:::{self.plan.dr_bundle_bucket}"] if self.plan.environments else []

    def bundle_object(self) -> list[str]:
        return [arn + "/*" for arn in self.bundle_bucket()]

    # Beanstalk keeps source bundles in its per-region storage bucket elasticbeanstalk-<region>-<account>.
    def source_bundle_object(self) -> list[str]:
        if not self.plan.environments:
            return []
        return [f"arn:{self.partition}:s3:::elasticbeanstalk-{self.plan.primary_region}-{self.account}/*"]

    # Replication canaries: only under the canary prefix, in both buckets of every pair.
    def canary_object(self) -> list[str]:
        from lambdas import s3

        return [f"{arn}/{s3.CANARY_PREFIX}*" for arn in self.bucket()]

    def _eb(self, region: str, kind: str, env_names: bool = False, wildcard: bool = False) -> list[str]:
        out: list[str] = []
        for env in self.plan.environments:
            app = env.application
            if env_names:
                name = env.name if region == self.plan.primary_region else env.dr_environment_name
                out.append(self._arn("elasticbeanstalk", region, f"{kind}/{app}/{name}"))
            elif wildcard:
                out.append(self._arn("elasticbeanstalk", region, f"{kind}/{app}/*"))
            else:
                out.append(self._arn("elasticbeanstalk", region, f"{kind}/{app}"))
        return sorted(set(out))

    def environment(self) -> list[str]:
        """The standby environments in the DR region (what failover launches)."""
        return self._eb(self.plan.dr_region, "environment", env_names=True)

    def source_environment(self) -> list[str]:
        return self._eb(self.plan.primary_region, "environment", env_names=True)

    def application(self) -> list[str]:
        return self._eb(self.plan.primary_region, "application") + self._eb(self.plan.dr_region, "application")

    def configurationtemplate(self) -> list[str]:
        return self._eb(self.plan.primary_region, "configurationtemplate", wildcard=True) + self._eb(
            self.plan.dr_region, "configurationtemplate", wildcard=True
        )

    def applicationversion(self) -> list[str]:
        return self._eb(self.plan.primary_region, "applicationversion", wildcard=True) + self._eb(
            self.plan.dr_region, "applicationversion", wildcard=True
        )

    def platform(self) -> list[str]:
        regions = (self.plan.primary_region, self.plan.dr_region)
        return [self._arn("elasticbeanstalk", r, "platform/*", account="") for r in regions]

    def solutionstack(self) -> list[str]:
        regions = (self.plan.primary_region, self.plan.dr_region)
        return [self._arn("elasticbeanstalk", r, "solutionstack/*", account="") for r in regions]

    def bucket(self) -> list[str]:
        names = [n for b in self.plan.buckets for n in (b.source, b.destination)]
        return [f"arn:{self.partition}:s3:::{n}" for n in names]

    def object(self) -> list[str]:
        return [arn + "/*" for arn in self.bucket()]

    # Objects of the source buckets only (replicate reads their ReplicationStatus).
    def source_object(self) -> list[str]:
        return [f"arn:{self.partition}:s3:::{b.source}/*" for b in self.plan.buckets]

    def alarm(self) -> list[str]:
        return [
            self._arn("cloudwatch", a.region or self.plan.primary_region, f"alarm:{a.name}")
            for a in self.plan.triggers.alarms
        ]

    # The DR-region alarm behind the primary's Route 53 health check (health_check cutover only).
    def health_alarm(self) -> list[str]:
        alarm = self.plan.health_check_alarm
        return [self._arn("cloudwatch", self.plan.dr_region, f"alarm:{alarm}")] if alarm else []

    # The plan's SSM parameters in the DR region (the last readiness result), named exactly.
    def ssm_parameter(self) -> list[str]:
        from lambdas import readiness

        return [self._arn("ssm", self.plan.dr_region, "parameter" + readiness.parameter_name(self.plan.name))]

    # The plan's Lambda functions and their roles (readiness simulates the failover's calls with them).
    def function(self) -> list[str]:
        from workflows import render

        return [self._arn("lambda", self.plan.dr_region, f"function:{render.function_name(self.plan, s)}")
                for s in sorted(render.services_used(self.plan))]

    def function_role(self) -> list[str]:
        from workflows import render

        return [f"arn:{self.partition}:iam::{self.account}:role/{render.function_role_name(self.plan, s)}"
                for s in sorted(render.services_used(self.plan))]

    # -- The DR environment, built by Elastic Beanstalk with the caller's permissions ----------------
    # When the failover calls CreateEnvironment, Beanstalk builds the environment as the caller: a
    # CloudFormation stack that creates the Auto Scaling group with its launch template (or launch
    # configuration), security groups, the load balancer, alarms and log groups; Beanstalk reads the
    # source bundle, writes to its storage bucket and passes the service role and the instance profile's
    # role (AdministratorAccess-AWSElasticBeanstalk, AWSElasticBeanstalkService). Names and ids of what it
    # creates are minted during the launch, so each kind below is a wildcard narrowed as far as AWS allows:
    # the DR region and account, the awseb- prefixes Beanstalk names things with, the plan's DR VPC,
    # subnets and key pair, and conditions. Every kind is empty for a plan without environments.
    def _dr(self, service: str, resource: str, account: str | None = None) -> str:
        return self._arn(service, self.plan.dr_region, resource, account)

    # CloudFormation stacks: Beanstalk names them awseb-e-<environment id>-stack, the id minted by CreateEnvironment.
    def eb_stack(self) -> list[str]:
        return [self._dr("cloudformation", "stack/awseb-e-*")] if self.plan.environments else []

    # Auto Scaling group and launch configuration: CloudFormation names them awseb-e-<id>-stack-AWSEB...-<suffix>;
    # the ARN also carries a uuid minted at creation (the first wildcard).
    def eb_autoscaling(self) -> list[str]:
        if not self.plan.environments:
            return []
        return [self._dr("autoscaling", "autoScalingGroup:*:autoScalingGroupName/awseb-e-*"),
                self._dr("autoscaling", "launchConfiguration:*:launchConfigurationName/awseb-e-*")]

    # The scaling triggers' alarms: awseb-e-<id>-stack-AWSEBCloudwatchAlarm{High,Low}-<suffix>.
    def eb_alarm(self) -> list[str]:
        return [self._dr("cloudwatch", "alarm:awseb-e-*")] if self.plan.environments else []

    # Load balancer, target groups, listeners and rules: names start with awseb- (awseb-AWSEB-<suffix> for an
    # application load balancer, loadbalancer/app/awseb-...; awseb-e-<id>-AWSEBLoa-<suffix> for a classic one,
    # loadbalancer/awseb-...); the ids after a name are minted at creation. listener*/ covers listener-rule/.
    def eb_load_balancer(self) -> list[str]:
        if not self.plan.environments:
            return []
        return [self._dr("elasticloadbalancing", r) for r in (
            "loadbalancer/*awseb-*", "targetgroup/awseb-*", "listener*/app/awseb-*")]

    # Tags on those only as they are created (elasticloadbalancing:CreateAction), never on existing ones.
    def eb_load_balancer_tagging(self) -> list[str | Scoped]:
        arns = self.eb_load_balancer()
        creates = ["CreateLoadBalancer", "CreateTargetGroup"]
        return [Scoped(tuple(arns), {"StringEquals": {"elasticloadbalancing:CreateAction": creates}})] if arns else []

    # Security groups Beanstalk creates for instances and load balancer: ids minted at creation, so
    # security-group/* narrowed by ec2:Vpc to the plan's DR VPCs.
    def eb_security_group(self) -> list[str | Scoped]:
        vpcs = self.eb_vpc()
        return [Scoped((self._dr("ec2", "security-group/*"),), {"ArnEquals": {"ec2:Vpc": vpcs}})] if vpcs else []

    # The plan's DR VPCs (CreateSecurityGroup also authorizes on the VPC the group is created in).
    def eb_vpc(self) -> list[str]:
        return sorted({self._dr("ec2", f"vpc/{e.dr_network.vpc_id}") for e in self.plan.environments})

    # Launch templates: an EC2 ARN names a template by the id minted at creation, never by its name.
    def eb_launch_template(self) -> list[str]:
        return [self._dr("ec2", "launch-template/*")] if self.plan.environments else []

    # ec2:RunInstances, which Auto Scaling checks against the caller when a group is created from a launch
    # template: new instances, volumes and network interfaces (ids minted at launch) in the plan's DR subnets,
    # with a DR AMI copy (ids minted per copy), security groups created in the launch and the plan's key pair;
    # only from a launch template in the DR region (ec2:LaunchTemplate, as AWSElasticBeanstalkService grants it).
    def eb_run_instances(self) -> list[str | Scoped]:
        if not self.plan.environments:
            return []
        arns = [self._dr("ec2", f"{t}/*") for t in ("instance", "volume", "network-interface", "security-group",
                                                    "launch-template")]
        arns.append(self._dr("ec2", "image/*", account=""))
        nets = [e.dr_network for e in self.plan.environments]
        arns += sorted({self._dr("ec2", f"subnet/{s}") for n in nets for s in n.subnets})
        arns += sorted({self._dr("ec2", f"key-pair/{n.key_name}") for n in nets if n.key_name})
        return [Scoped(tuple(arns), {"ArnLike": {"ec2:LaunchTemplate": self._dr("ec2", "launch-template/*")}})]

    # Tags written as the launch creates a resource (ec2:CreateAction), never on existing resources.
    def eb_ec2_tagging(self) -> list[str | Scoped]:
        if not self.plan.environments:
            return []
        arns = tuple(self._dr("ec2", f"{t}/*") for t in ("security-group", "launch-template", "instance", "volume",
                                                          "network-interface"))
        creates = ["CreateSecurityGroup", "CreateLaunchTemplate", "RunInstances"]
        return [Scoped(arns, {"StringEquals": {"ec2:CreateAction": creates}})]

    # A single-instance environment gets an Elastic IP (allocation ids minted per address)...
    def eb_elastic_ip(self) -> list[str]:
        return [self._dr("ec2", "elastic-ip/*")] if self.plan.environments else []

    # ...associated with its instance (ids minted at launch), which carries the elasticbeanstalk:environment-name
    # tag of the plan's DR environment.
    # A drill's copy of an environment is named <DR name prefix>-drill-<id> (lambdas/drill.py).
    def eb_instance(self) -> list[str | Scoped]:
        from lambdas import drill

        names = sorted(e.dr_environment_name for e in self.plan.environments)
        if not names:
            return []
        drills = sorted({self._drill_prefix(e.dr_environment_name, drill.ENV_NAME_LIMIT) + "*"
                         for e in self.plan.environments})
        key = "aws:ResourceTag/elasticbeanstalk:environment-name"
        return [Scoped((self._dr("ec2", "instance/*"),), {"StringEquals": {key: names}}),
                Scoped((self._dr("ec2", "instance/*"),), {"StringLike": {key: drills}})]

    # Log groups Beanstalk creates when the configuration streams logs: /aws/elasticbeanstalk/<DR environment>/...
    def eb_log_group(self) -> list[str]:
        from lambdas import drill

        names = [e.dr_environment_name for e in self.plan.environments]
        names += [self._drill_prefix(e.dr_environment_name, drill.ENV_NAME_LIMIT) + "*" for e in self.plan.environments]
        return sorted(self._dr("logs", f"log-group:/aws/elasticbeanstalk/{n}/*") for n in names)

    # Beanstalk's storage bucket in the DR region (created by the first environment there); its keys are Beanstalk's.
    def eb_storage_bucket(self) -> list[str]:
        name = f"elasticbeanstalk-{self.plan.dr_region}-{self.account}"
        return [f"arn:{self.partition}:s3:::{name}"] if self.plan.environments else []

    def eb_storage_object(self) -> list[str]:
        return [arn + "/*" for arn in self.eb_storage_bucket()]

    # The instance profiles the plan's environments run with, and their roles.
    def instance_profile(self) -> list[str]:
        names = sorted({e.instance_profile for e in self.plan.environments})
        return [f"arn:{self.partition}:iam::{self.account}:instance-profile/{n}" for n in names]

    def instance_role(self) -> list[str]:
        names = sorted({e.instance_role for e in self.plan.environments})
        return [f"arn:{self.partition}:iam::{self.account}:role/{n}" for n in names]

    # iam:PassRole: the plan's service roles to Beanstalk only, the instance profiles' roles to EC2 only.
    def eb_passed_role(self) -> list[str | Scoped]:
        services = tuple(sorted({f"arn:{self.partition}:iam::{self.account}:role/{e.service_role}"
                                 for e in self.plan.environments}))
        if not services:
            return []
        return [
            Scoped(services, {"StringEquals": {"iam:PassedToService": "elasticbeanstalk.amazonaws.com"}}),
            Scoped(tuple(self.instance_role()), {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        ]

    # -- Drills: copies named <base>-drill-<id> (lambdas/drill.py), so a prefix names all of them ------
    def _drill_prefix(self, base: str, limit: int) -> str:
        from lambdas import drill

        return drill.name_prefix(base, limit)

    # DB instances (and, in the snapshot fallback, manual snapshots) a drill makes of the DR replicas.
    def drill_db(self) -> list[str]:
        from lambdas import drill

        return sorted({self._dr("rds", f"db:{self._drill_prefix(d.dr_replica_identifier, drill.DB_NAME_LIMIT)}*")
                       for d in self.plan.rds_databases})

    def drill_db_snapshot(self) -> list[str]:
        from lambdas import drill

        return sorted({self._dr("rds", f"snapshot:{self._drill_prefix(d.dr_replica_identifier, drill.DB_NAME_LIMIT)}*")
                       for d in self.plan.rds_databases})

    # The drill copies of the DR environments.
    def drill_environment(self) -> list[str]:
        from lambdas import drill

        return sorted({self._dr("elasticbeanstalk", f"environment/{e.application}/"
                                f"{self._drill_prefix(e.dr_environment_name, drill.ENV_NAME_LIMIT)}*")
                       for e in self.plan.environments})

    # Objects a drill writes (and a teardown deletes) in the DR buckets: only under its prefix.
    def drill_object(self) -> list[str]:
        from lambdas import drill

        return [f"arn:{self.partition}:s3:::{b.destination}/{drill.S3_PREFIX}*" for b in self.plan.buckets]

    # Executions of the plan's drill state machine (a failover stops a running drill).
    def drill_execution(self) -> list[str]:
        from workflows import render

        if "drill" not in render.BUILDERS:
            return []
        return [self._dr("states", f"execution:{render.state_machine_name(self.plan, 'drill')}:*")]

    # -- The dashboard widget (lambdas/widget.py): one state machine each, never the plan's others ---------
    def _machine(self, workflow: str) -> list[str]:
        from workflows import render

        if workflow not in render.BUILDERS:
            return []
        return [self._dr("states", f"stateMachine:{render.state_machine_name(self.plan, workflow)}")]

    # The drill state machine (the widget's "Start drill").
    def drill_statemachine(self) -> list[str]:
        return self._machine("drill")

    # The drill teardown state machine (the widget's "Clean up" of a kept drill).
    def teardown_statemachine(self) -> list[str]:
        return self._machine("drill-teardown")

    # The failover state machine: the widget answers its approval requests. SendTaskSuccess/SendTaskFailure
    # carry only a task token; the Service Authorization Reference lists no resource type for them, but Step
    # Functions authorizes the answer to a callback token against the state machine whose task issued it
    # (AccessDenied names that stateMachine ARN; aws-cdk's StateMachine.grantTaskResponse grants on it), so the
    # grant names this plan's failover state machine only.
    def failover_statemachine(self) -> list[str]:
        return self._machine("failover")

    # Executions of the failover, drill and drill-teardown state machines (names minted per run).
    def plan_execution(self) -> list[str]:
        from workflows import render

        return [self._dr("states", f"execution:{render.state_machine_name(self.plan, w)}:*")
                for w in ("failover", "drill", "drill-teardown") if w in render.BUILDERS]

    # The plan's reports in its reports bucket (reports/store.py: <bucket>/<plan>/<execution>.{json,md,html}).
    def report_object(self) -> list[str]:
        from reports.store import bucket_name

        bucket = bucket_name(self.plan.name, self.account, self.plan.dr_region)
        return [f"arn:{self.partition}:s3:::{bucket}/{self.plan.name}/*"]

    def statemachine(self) -> list[str]:
        """The plan's own state machines (names are fixed, so no reference to the constructs is needed)."""
        from workflows import render

        return [
            self._arn("states", self.plan.dr_region, f"stateMachine:{render.state_machine_name(self.plan, w)}")
            for w in sorted(render.BUILDERS)
        ]


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


def _aurora_drill(arns: _Arns, resource: str) -> list[str]:
    from lambdas import aurora

    return sorted({arns._dr("rds", f"{resource}:{drill_prefix}*") for drill_prefix in
                   (arns._drill_prefix(d.dr_cluster_identifier, aurora.CLONE_NAME_LIMIT)
                    for d in arns.plan.aurora_databases)})


RESOURCE_KINDS.update({
    "aurora_global_cluster": _aurora_global_cluster, "aurora_primary_cluster": _aurora_primary_cluster,
    "aurora_dr_cluster": _aurora_dr_cluster, "aurora_dr_instance": _aurora_dr_instance,
    "aurora_subnet_group": _aurora_subnet_group, "aurora_parameter_group": _aurora_parameter_group,
    "aurora_dr_key": _aurora_dr_key,
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
    """Roles of the DR instances' profiles, passed to EC2 only."""
    if not arns.plan.compute:
        return []
    return [Scoped((f"arn:{arns.partition}:iam::{arns.account}:role/*",),
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
