"""ARN builders of the least-privilege IAM (:mod:`infra.iam`): :class:`Scoped` and :class:`_Arns`.

``_Arns`` names the plan's own resources of each resource kind (one method per kind); :mod:`infra.iam_tiers`
adds the kinds of the data and compute tiers as functions of an ``_Arns``. Both are gathered into
``infra.iam.RESOURCE_KINDS``. This module imports neither of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.plan import Plan

__all__ = ["Scoped", "_Arns"]


@dataclass(frozen=True)
class Scoped:
    """ARNs that can only be named with a wildcard, narrowed by an IAM condition.

    Example: Beanstalk's instances get ids at launch, so ``instance/*`` in the primary region is
    narrowed to the plan's environments by their ``elasticbeanstalk:environment-name`` tag.
    """

    arns: tuple[str, ...]
    condition: dict[str, Any] | None


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

    # The master credentials: the plan's secret in each region (Secrets Manager appends a random suffix to a
    # secret's ARN), and the secrets RDS manages for instances in the DR region (named rds!db-<uuid>).
    def db_secret(self) -> list[str]:
        out = []
        for region in (self.plan.primary_region, self.plan.dr_region):
            out += [self._arn("secretsmanager", region, f"secret:{d.credentials_secret_name}-??????")
                    for d in self.plan.rds_databases]
        if self.plan.rds_databases:
            out.append(self._arn("secretsmanager", self.plan.dr_region, "secret:rds!db-*"))
        return out

    def hostedzone(self) -> list[str]:
        return [f"arn:{self.partition}:route53:::hostedzone/{self.plan.dns.hosted_zone_id}"] if self.plan.dns else []

    def change(self) -> list[str]:
        # Change ids are minted by Route 53 per request; the ARN cannot be narrower than this.
        return [f"arn:{self.partition}:route53:::change/*"] if self.plan.dns else []

    # Health check ids are minted by Route 53 at creation; only plans with routing records have some.
    def healthcheck(self) -> list[str]:
        return [f"arn:{self.partition}:route53:::healthcheck/*"] if self.plan.routing_records else []

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

    # Executions of the plan's failover state machine (the guard rails read their own and earlier runs).
    def failover_execution(self) -> list[str]:
        from workflows import render

        if "failover" not in render.BUILDERS:
            return []
        return [self._dr("states", f"execution:{render.state_machine_name(self.plan, 'failover')}:*")]

    # The plan's failover claim table (lambdas/guard.py claim; created by infra/claim.py).
    def claim_table(self) -> list[str]:
        from lambdas import guard

        return [self._dr("dynamodb", f"table/{guard.claim_table(self.plan.name)}")]

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

    # Executions of every workflow of the plan: a failure record reads the history of its own execution.
    def workflow_execution(self) -> list[str]:
        from workflows import render

        return [self._dr("states", f"execution:{render.state_machine_name(self.plan, w)}:*")
                for w in render.workflows_of(self.plan)]

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
            for w in sorted(render.workflows_of(self.plan))
        ]
