"""cdk-nag: the suppressions of the DR stack's findings (infra/stacks.py), each with why it is accepted.

:func:`suppress` acknowledges findings on a construct; :func:`scoped_wildcard_reasons` says, for each wildcard
ARN infra.iam grants a plan's function on purpose, why it is there (tables below: what Beanstalk builds, drill
copies, Aurora, Auto Scaling).
"""

from __future__ import annotations

from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra import iam as plan_iam
from lambdas import s3 as s3_steps
from workflows.plan import Plan


def suppress(construct: Construct, *findings: tuple[str, str] | tuple[str, str, list[str]]) -> None:
    """Acknowledge findings ``(rule, reason[, applies_to])`` on ``construct`` and its children."""
    packs = []
    for finding in findings:
        rule, reason, *applies = finding
        if applies:
            packs.append(NagPackSuppression(id=rule, reason=reason, applies_to=applies[0]))
        else:
            packs.append(NagPackSuppression(id=rule, reason=reason))
    NagSuppressions.add_resource_suppressions(construct, packs, apply_to_children=True)


# Resource kinds of what Beanstalk builds when the failover creates the DR environment (infra/iam_arns.py), and why
# each holds a wildcard.
_ENVIRONMENT_BUILD_WILDCARDS = {
    "eb_stack": "Beanstalk names the environment's CloudFormation stack awseb-e-<environment id>-stack; the id is "
    "minted by CreateEnvironment. DR region and account only.",
    "eb_autoscaling": "The environment's Auto Scaling group and launch configuration are named awseb-e-<id>-stack-... "
    "by CloudFormation during the launch; their ARNs carry a uuid minted at creation.",
    "eb_alarm": "The scaling triggers' alarms are named awseb-e-<id>-stack-... during the launch.",
    "eb_load_balancer": "Load balancer, target groups and listeners Beanstalk creates are named awseb-...; ids after "
    "the name are minted at creation. DR region and account only.",
    "eb_security_group": "Security group ids are minted by the launch; narrowed by ec2:Vpc to the plan's DR VPC.",
    "eb_launch_template": "Launch template ARNs name the id minted at creation, never the name; DR region only.",
    "eb_run_instances": "Instances, volumes, network interfaces get ids at launch; RunInstances is narrowed by "
    "ec2:LaunchTemplate to templates in the DR region and to the plan's DR subnets and key pair.",
    "eb_ec2_tagging": "Tags only as the launch creates a resource (ec2:CreateAction condition).",
    "eb_elastic_ip": "A single-instance environment's Elastic IP allocation id is minted per address.",
    "eb_instance": "The environment's instance ids come with the launch; narrowed by its "
    "elasticbeanstalk:environment-name tag.",
    "eb_log_group": "Log groups Beanstalk creates under /aws/elasticbeanstalk/<DR environment>/ when logs stream.",
    "eb_storage_object": "Beanstalk's own storage bucket in the DR region; its keys are Beanstalk's.",
}

# Drill copies are named <DR resource name>-drill-<id>, the id minted per drill (lambdas/drill.py): a prefix is
# the narrowest name that covers them, and it never matches a production name (those never contain -drill-).
_DRILL_WILDCARDS = {
    "drill_db": "A drill's copy of the DR replica is named <replica>-drill-<id>; the id is minted per drill.",
    "drill_db_snapshot": "Where the engine cannot cascade, a drill snapshots the DR replica as "
    "<replica>-drill-<id>; the id is minted per drill.",
    "drill_environment": "A drill's copy of the DR environment is named <DR environment>-drill-<id>; the id is "
    "minted per drill.",
    "drill_object": "A drill writes and a teardown deletes objects only under pilotlight-drill/ in the DR buckets.",
    "drill_execution": "A failover stops the plan's running drill: executions of the drill state machine are named "
    "per run.",
    "failover_execution": "The guard rails read a failover's own start and earlier runs' errors (DescribeExecution): "
    "executions of the failover state machine are named per run.",
    "workflow_execution": "A workflow's failure record reads its own execution's history (GetExecutionHistory) to "
    "name the failed step: executions of the plan's state machines are named per run.",
}

# Aurora Global Database (infra/iam_tiers.py, the Aurora block): names minted per instance, per drill, or by RDS.
_AURORA_WILDCARDS = {
    "aurora_dr_instance": "The DR cluster's instances are named <DR cluster>-<n>, n chosen when one is added "
    "(a headless cluster's first writer, readers added on failover); DR region and account only.",
    "aurora_parameter_group": "A DR or drill cluster created without naming its parameter and option groups gets its "
    "engine's defaults (default.<family>, default:<engine>-<version>), which CreateDBCluster and the restores "
    "authorize on; only default groups in the DR region.",
    "aurora_drill_cluster": "A drill's copy of the DR cluster is named <DR cluster>-drill-<id>; the id is minted per "
    "drill.",
    "aurora_drill_instance": "The instance of a drill's copy is named <DR cluster>-drill-<id>-1; the id is minted per "
    "drill.",
    "aurora_drill_snapshot": "A headless DR cluster is copied for a drill through a cluster snapshot named "
    "<DR cluster>-drill-<id>; the id is minted per drill.",
    "aurora_secret": "The master user secrets RDS manages for clusters (MasterUserSecret) are named rds!cluster-<uuid> "
    "by RDS; the Data API canary uses only the one DescribeDBClusters names for the DR cluster, in the DR region.",
}
# EC2 Auto Scaling (infra/iam_tiers.py "EC2 Auto Scaling" block explains each wildcard and its narrowing).
_AUTOSCALING_WILDCARDS = {
    "asg_group": "An Auto Scaling group's ARN carries a uuid minted at creation; the plan's DR groups by name, "
    "narrowed to the plan's DR subnets and target groups (autoscaling:VPCZoneIdentifiers, TargetGroupARNs).",
    "asg_drill_group": "A drill's copy of the DR group is named <DR group>-drill-<id> (id minted per drill) and can "
    "carry no target group (Null autoscaling:TargetGroupARNs).",
    "asg_new_launch_template": "EC2 names launch templates by the id minted at creation; CreateLaunchTemplate is "
    "narrowed by aws:RequestTag/pilotlight:plan.",
    "asg_launch_template": "EC2 names launch templates by id; new versions and the default version only on templates "
    "tagged pilotlight:plan=<plan> (aws:ResourceTag).",
    "asg_launch_template_tagging": "Tags only as CreateLaunchTemplate creates the DR template (ec2:CreateAction).",
    "asg_run_instances": "Auto Scaling launches with the caller's RunInstances: instances, volumes and interfaces "
    "(ids minted at launch), the DR AMI copies and the template's key pair, only from a DR launch template "
    "(ec2:LaunchTemplate), in the plan's DR subnets and security groups.",
    "asg_run_tagging": "Tags only as RunInstances creates instances, volumes and interfaces (ec2:CreateAction).",
    "asg_passed_role": "A group takes its instance profile from the primary launch template, whose role the plan "
    "does not name (compute[].instance_profile / instance_profile_role scope it): roles are passed to EC2 only "
    "(iam:PassedToService).",
}

# Failback (infra/iam_failback.py): the names it gives carry the stamp of the failover it undoes.
_FAILBACK_WILDCARDS = {
    "failback_stale_db": "A failback keeps the stale primary renamed <id>-stale-<stamp>, the stamp the start of the "
    "failover it undoes; only that prefix of the plan's primary databases.",
    "failback_retired_db": "A failback retires the promoted DR database as <dr>-retired-<stamp> until the new DR "
    "replica is available; only that prefix of the plan's DR databases.",
    "failback_retired_snapshot": "The retired DR database's final snapshot, <dr>-retired-<stamp>-final.",
    "failback_primary_subnet_group": "The reverse replica takes the stale primary's DB subnet group, read from the "
    "instance (the plan names only the DR side's); used by CreateDBInstanceReadReplica alone, in the primary region.",
    "failback_replicate_execution": "The failback reads the replicate run it starts, named fb-<failback execution>.",
}


def scoped_wildcard_reasons(plan: Plan) -> dict[str, str]:
    """``Resource::<arn>`` -> why, for the wildcards infra.iam grants ``plan``'s functions on purpose."""
    reasons = {
        "Resource::*": "Only the actions of infra.iam.WILDCARD_ACTIONS get '*', each listed with why: read-only "
        "actions without resource-level permissions, region-wide listings, and conditioned actions without a "
        "resource type (infra.iam.UNSCOPED_WITH_CONDITION); other mutating actions are refused on '*' at synth.",
        "Resource::arn:<AWS::Partition>:route53:::change/*": "Route 53 change ids are minted per request; "
        "change/* is the narrowest ARN GetChange can be granted on.",
        "Resource::arn:<AWS::Partition>:route53:::healthcheck/*": "Health check ids are created per plan "
        "deployment outside this stack; only healthcheck/* can name them ahead.",
    }
    for region in {plan.primary_region, plan.dr_region}:
        reasons[f"Resource::arn:<AWS::Partition>:ec2:{region}::image/*"] = (
            "AMI ids are minted per copy; images are scoped to the plan's two regions."
        )
        reasons[f"Resource::arn:<AWS::Partition>:ec2:{region}::snapshot/*"] = (
            "Snapshot ids are minted per AMI copy; snapshots are scoped to the plan's two regions."
        )
        for env in plan.environments:
            for kind in ("configurationtemplate", "applicationversion"):
                reasons[
                    f"Resource::arn:<AWS::Partition>:elasticbeanstalk:{region}:<AWS::AccountId>:"
                    f"{kind}/{env.application}/*"
                ] = f"Beanstalk {kind}s are named per replication run, inside the plan's application."
        for kind in ("platform", "solutionstack"):
            reasons[f"Resource::arn:<AWS::Partition>:elasticbeanstalk:{region}::{kind}/*"] = (
                f"The {kind} comes from the primary environment's configuration, read at run time."
            )
    for bucket in plan.buckets:
        for name in (bucket.source, bucket.destination):
            reasons[f"Resource::arn:<AWS::Partition>:s3:::{name}/*"] = (
                "Replication checks read objects of the plan's own buckets."
            )
            reasons[f"Resource::arn:<AWS::Partition>:s3:::{name}/{s3_steps.CANARY_PREFIX}*"] = (
                "Replication canaries are named per run; writes and reads are limited to the canary prefix."
            )
    if plan.environments:
        primary = plan.primary_region
        reasons[f"Resource::arn:<AWS::Partition>:ec2:{primary}:<AWS::AccountId>:instance/*"] = (
            "Beanstalk instance ids change with the Auto Scaling group; CreateImage on instance/* is "
            "narrowed by an aws:ResourceTag/elasticbeanstalk:environment-name condition to the plan's environments."
        )
        reasons[f"Resource::arn:<AWS::Partition>:s3:::elasticbeanstalk-{primary}-<AWS::AccountId>/*"] = (
            "Application source bundles are read (never written) from Beanstalk's storage bucket in the "
            "primary region; their keys are chosen by Beanstalk."
        )
        reasons[f"Resource::arn:<AWS::Partition>:s3:::{plan.dr_bundle_bucket}/*"] = (
            "Copies of application source bundles, keyed by application and bundle, in the plan's own DR bucket."
        )
    if plan.rds_databases:
        reasons[f"Resource::arn:<AWS::Partition>:secretsmanager:{plan.dr_region}:<AWS::AccountId>:secret:rds!db-*"] = (
            "The master user secrets RDS manages (MasterUserSecret) are named rds!db-<uuid> by RDS; the canary "
            "reads only the one DescribeDBInstances names for the promoted instance, in the DR region."
        )
    reasons[f"Resource::arn:<AWS::Partition>:kms:{plan.dr_region}:<AWS::AccountId>:key/*"] = (
        "A DR key the plan names by alias: key/* is narrowed by a kms:ResourceAliases condition to that alias."
    )
    reasons[f"Resource::arn:<AWS::Partition>:kms:{plan.primary_region}:<AWS::AccountId>:key/*"] = (
        "CopyImage decrypts an encrypted source image's snapshots with their own keys, which the plan does not "
        "name: key/* in the primary region is narrowed by kms:ViaService to EC2 there."
    )
    # What Beanstalk builds with the failover's permissions when it creates the DR environment: names and
    # ids are minted during the launch (infra/iam_arns.py, infra/iam_tiers.py explain each kind's wildcard and its
    # narrowing).
    for kind, why in {**_ENVIRONMENT_BUILD_WILDCARDS, **_DRILL_WILDCARDS, **_AURORA_WILDCARDS,
                      **_AUTOSCALING_WILDCARDS, **_FAILBACK_WILDCARDS}.items():
        tokens = {"account": "<AWS::AccountId>", "partition": "<AWS::Partition>"}
        for arn in plan_iam.resource_arns(plan, kind, **tokens):
            for resource in (arn.arns if isinstance(arn, plan_iam.Scoped) else (arn,)):
                if "*" in resource:
                    reasons[f"Resource::{resource}"] = why
    return reasons


def vpc_access_findings(plan: Plan) -> list[tuple[str, str, list[str]]]:
    """The wildcards of the canary function's network-interface policy (infra/vpc.py), each with why."""
    eni = f"Resource::arn:<AWS::Partition>:ec2:{plan.dr_region}:<AWS::AccountId>:network-interface/*"
    return [
        ("AwsSolutions-IAM5", "Lambda creates and deletes the canary function's network interfaces with the "
         "function's role and mints their ids: network-interface/* in the DR region and account only; "
         "CreateNetworkInterface is further limited to the plan's canary_network subnets and security groups.",
         [eni]),
        ("AwsSolutions-IAM5", "ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets, which Lambda calls for the "
         "function's interfaces, support no resource-level permissions: '*' is the only resource AWS accepts.",
         ["Resource::*"]),
    ]
