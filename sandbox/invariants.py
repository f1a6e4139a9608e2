"""Safety invariants: what no run of any workflow may do, whatever fails on the way.

Take a :class:`Baseline` before a run, then :func:`check` after it (and :func:`watch_dns` during it); each
returns the violations it finds, as sentences (an empty list: every invariant holds):

1. the primary database is never modified or deleted by replicate, readiness or a drill;
2. the live DR replica is never deleted, and never promoted by a drill;
3. DNS never points at a target that is not Ready/Green: the record's answer after the run, and every value a
   Route 53 change sets during it (:func:`watch_dns`);
4. no drill-tagged resource outlives its drill (checked once the drill's teardown has ended);
5. no AMI referenced by a DR saved configuration or a DR launch template is pruned;
6. every S3 object (every version) of the plan's buckets written before the run is still there.

Everything is read through boto3, as an operator would; nothing here changes the sandbox.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from lambdas import drill as drill_names
from workflows.plan import Plan

# What "modified" means for a database: the settings a workflow could change.
_DB_FIELDS = ("DBInstanceStatus", "DBInstanceClass", "MultiAZ", "AllocatedStorage", "BackupRetentionPeriod",
              "Engine", "EngineVersion", "PubliclyAccessible", "ReadReplicaSourceDBInstanceIdentifier")
# The workflows that must leave the primary database as it is (the failover does not reach it either, but an
# operator's failback may).
_PRIMARY_READ_ONLY = ("replicate", "readiness", "drill", "drill-teardown", "failover")
_DRILL_WORKFLOWS = ("drill", "drill-teardown")


def _db(region: str, identifier: str) -> dict[str, Any] | None:
    try:
        (db,) = boto3.client("rds", region_name=region).describe_db_instances(
            DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "DBInstanceNotFound":
            return None
        raise
    return db


def _db_fields(db: dict[str, Any]) -> dict[str, Any]:
    return {k: db.get(k) for k in _DB_FIELDS} | {"Pending": sorted(db.get("PendingModifiedValues") or {})}


def _objects(region: str, bucket: str) -> set[tuple[str, str, str]]:
    s3 = boto3.client("s3", region_name=region)
    out: set[tuple[str, str, str]] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions") or []:
            out.add((bucket, version["Key"], str(version.get("VersionId"))))
    return out


@dataclass
class Baseline:
    """What the world looked like before the run."""

    primary: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicas: set[str] = field(default_factory=set)  # the live DR replicas that existed
    objects: set[tuple[str, str, str]] = field(default_factory=set)


def baseline(plan: Plan) -> Baseline:
    out = Baseline()
    for d in plan.rds_databases:
        db = _db(plan.primary_region, d.identifier)
        if db is not None:
            out.primary[d.identifier] = _db_fields(db)
        if _db(plan.dr_region, d.dr_replica_identifier) is not None:
            out.replicas.add(d.dr_replica_identifier)
    for pair in plan.buckets:
        out.objects |= _objects(plan.primary_region, pair.source)
        out.objects |= _objects(plan.dr_region, pair.destination)
    return out


def _environment_by_cname(target: str) -> dict[str, Any] | None:
    """The Beanstalk environment a ``<prefix>.<region>.elasticbeanstalk.com`` target names, if any."""
    target = target.rstrip(".").lower()
    if not target.endswith(".elasticbeanstalk.com"):
        return None
    region = target.split(".")[-3]
    for env in boto3.client("elasticbeanstalk", region_name=region).describe_environments(
            IncludeDeleted=False)["Environments"]:
        if (env.get("CNAME") or "").lower() == target:
            return env
    return None


def target_problem(target: str) -> str | None:
    """Why ``target`` may not receive traffic (None: it is a Ready/Green environment, or not a Beanstalk one)."""
    if not target.rstrip(".").lower().endswith(".elasticbeanstalk.com"):
        return None
    env = _environment_by_cname(target)
    if env is None:
        return f"{target} names no running environment"
    if (env["Status"], env.get("Health")) != ("Ready", "Green"):
        return f"{target} is environment {env['EnvironmentName']} {env['Status']}/{env.get('Health')}"
    return None


class DnsWatch:
    """Every value a Route 53 change sets on the plan's record during the run, with the target's state then."""

    def __init__(self, plan: Plan, outside: Any) -> None:
        self.plan = plan
        self.outside = outside  # () -> context: the watch's own reads are not the function's calls
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        if self.plan.dns is None:
            return
        name = self.plan.dns.record_name.rstrip(".").lower()
        for change in (params.get("ChangeBatch") or {}).get("Changes") or []:
            record = change.get("ResourceRecordSet") or {}
            if change.get("Action") == "DELETE" or record.get("Name", "").rstrip(".").lower() != name:
                continue
            if record.get("Weight") == 0 or record.get("Failover") == "SECONDARY":
                continue  # carries no traffic while the primary record is healthy
            for value in [r["Value"] for r in record.get("ResourceRecords") or []]:
                with self.outside():
                    problem = target_problem(value)
                if problem:
                    with self._lock:
                        self.problems.append(f"DNS: a change set {name} to {problem}")


def watch_dns(sb: Any, plan: Plan) -> DnsWatch:
    """Watch the Route 53 changes the functions of sandbox ``sb`` make from now on."""
    watch = DnsWatch(plan, sb.lambdas.outside)
    sb._events.register("before-parameter-build.route53.ChangeResourceRecordSets", watch,
                    unique_id=f"pilotlight-invariant-dns-{id(watch)}")
    return watch


def unwatch_dns(sb: Any, watch: DnsWatch) -> None:
    sb._events.unregister("before-parameter-build.route53.ChangeResourceRecordSets",
                      unique_id=f"pilotlight-invariant-dns-{id(watch)}")


def _dns_answer(plan: Plan) -> list[str]:
    if plan.dns is None:
        return []
    answer = boto3.client("route53").test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id,
                                                     RecordName=plan.dns.record_name,
                                                     RecordType=plan.dns.record_type)
    return list(answer.get("RecordData") or [])


def _drill_leftovers(plan: Plan) -> list[str]:
    region = plan.dr_region
    out = []
    rds = boto3.client("rds", region_name=region)
    tagged = [(kind, item) for kind, items in (
        ("instance", rds.describe_db_instances()["DBInstances"]),
        ("snapshot", rds.describe_db_snapshots()["DBSnapshots"]),
        ("cluster", rds.describe_db_clusters()["DBClusters"])) for item in items]
    for kind, item in tagged:
        tags = {t["Key"]: t["Value"] for t in item.get("TagList") or []}
        if drill_names.DRILL_TAG in tags:
            name = item.get("DBInstanceIdentifier") or item.get("DBSnapshotIdentifier") or item.get(
                "DBClusterIdentifier")
            out.append(f"RDS {kind} {name} of drill {tags[drill_names.DRILL_TAG]}")
    protected = {n for e in plan.environments for n in (e.name, e.dr_environment_name)}
    for env in boto3.client("elasticbeanstalk", region_name=region).describe_environments(
            IncludeDeleted=False)["Environments"]:
        if env["EnvironmentName"] not in protected and env["Status"] != "Terminated":
            out.append(f"environment {env['EnvironmentName']} ({env['Status']})")
    if plan.compute:
        for group in boto3.client("autoscaling", region_name=region).describe_auto_scaling_groups()[
                "AutoScalingGroups"]:
            if any(t["Key"] == drill_names.DRILL_TAG for t in group.get("Tags") or []):
                out.append(f"Auto Scaling group {group['AutoScalingGroupName']}")
    if plan.dns is not None:
        sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)[
            "ResourceRecordSets"]
        out += [f"record {s['Name']}" for s in sets if s["Name"].startswith(drill_names.RECORD_PREFIX)]
    s3 = boto3.client("s3", region_name=region)
    for pair in plan.buckets:
        listed = s3.list_objects_v2(Bucket=pair.destination, Prefix=drill_names.S3_PREFIX).get("Contents") or []
        out += [f"object s3://{pair.destination}/{o['Key']}" for o in listed]
    return out


def _referenced_images(plan: Plan) -> list[tuple[str, str]]:
    """(what refers to it, AMI id) for each DR saved configuration and DR launch template."""
    from lambdas.beanstalk_config import template_name

    out = []
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    for env in plan.environments:
        name = template_name(plan.name, env.name)
        try:
            (settings,) = eb.describe_configuration_settings(ApplicationName=env.application,
                                                             TemplateName=name)["ConfigurationSettings"]
        except ClientError:
            continue  # not saved yet: nothing refers to an image
        for option in settings.get("OptionSettings") or []:
            if option.get("OptionName") == "ImageId" and option.get("Value"):
                out.append((f"saved configuration {name}", option["Value"]))
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    for group in plan.compute:
        try:
            versions = ec2.describe_launch_template_versions(LaunchTemplateName=group.dr_launch_template)[
                "LaunchTemplateVersions"]
        except ClientError:
            continue
        out += [(f"launch template {group.dr_launch_template} v{v['VersionNumber']}", v["LaunchTemplateData"][
            "ImageId"]) for v in versions if v.get("DefaultVersion") and v["LaunchTemplateData"].get("ImageId")]
    return out


def check(plan: Plan, workflow: str, before: Baseline, *, drill_over: bool = False,
          watch: DnsWatch | None = None) -> list[str]:
    """The violations after a run of ``workflow`` (``drill_over``: its teardown has ended too)."""
    problems: list[str] = []
    if workflow in _PRIMARY_READ_ONLY:
        for identifier, fields in before.primary.items():
            db = _db(plan.primary_region, identifier)
            if db is None:
                problems.append(f"primary database {identifier} was deleted by {workflow}")
            elif _db_fields(db) != fields:
                changed = {k: (fields[k], v) for k, v in _db_fields(db).items() if fields.get(k) != v}
                problems.append(f"primary database {identifier} was modified by {workflow}: {changed}")
    for d in plan.rds_databases:
        replica = _db(plan.dr_region, d.dr_replica_identifier)
        if replica is None and d.dr_replica_identifier in before.replicas:
            problems.append(f"live DR replica {d.dr_replica_identifier} was deleted by {workflow}")
        elif (replica is not None and workflow in _DRILL_WORKFLOWS
              and not replica.get("ReadReplicaSourceDBInstanceIdentifier")):
            problems.append(f"live DR replica {d.dr_replica_identifier} was promoted by {workflow}")
    for value in _dns_answer(plan):
        problem = target_problem(value)
        if problem:
            problems.append(f"DNS: {plan.dns.record_name if plan.dns else ''} answers {problem}")
    if watch is not None:
        problems += watch.problems
    if drill_over:
        problems += [f"drill resource outlived its drill: {what}" for what in _drill_leftovers(plan)]
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    for what, image in _referenced_images(plan):
        found = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image]}])["Images"]
        if not found or found[0].get("State") not in ("available", "pending"):
            problems.append(f"AMI {image} referenced by {what} was pruned")
    now: set[tuple[str, str, str]] = set()
    for pair in plan.buckets:
        now |= _objects(plan.primary_region, pair.source) | _objects(plan.dr_region, pair.destination)
    lost = sorted(before.objects - now)
    if lost:
        problems.append(f"S3 objects written before the run are gone: {lost[:5]}" + (" ..." if len(lost) > 5 else ""))
    return problems

