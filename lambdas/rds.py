"""RDS steps: promote the DR replica, harden it (Multi-AZ, instance class), report its state; make and
remove the isolated copies a drill rehearses those steps on.

Every action reads the current state first, so a retried or re-run step converges instead of
failing on "already done" (a promoted replica is not promoted again, a class already set is
not modified again).

The actions are registered here; what the drill actions do is in :mod:`lambdas.rds_drill`, and the reads
by identifier (and the facts a report shows of an instance) in :mod:`lambdas.rds_describe`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from lambdas import rds_drill
from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotReady
from lambdas.rds_describe import SERVING as SERVING
from lambdas.rds_describe import describe_instance as describe_instance
from lambdas.rds_describe import describe_snapshot as describe_snapshot
from lambdas.rds_describe import facts as facts
from lambdas.rds_describe import require_instance
from lambdas.rds_describe import security_groups_of as security_groups_of
from lambdas.rds_describe import serving as serving
from lambdas.rds_describe import subnet_group_of as subnet_group_of
from lambdas.rds_drill import copy_method as copy_method

registry = Registry("rds")
handler = registry.handler

_DESCRIBE = ["rds:DescribeDBInstances"]
# What failover steps act on: the live DR replica, or a drill's copy of it (a drill promotes and hardens
# its copy with the very same steps; infra/iam.py scopes "drill_db" to names with "-drill-").
_DR_DB = ("db", "drill_db")


def _poll(done: bool, attempt: int, db: dict[str, Any]) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, "db": facts(db)}


@registry.action("promote_replica", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource=_DR_DB)
def promote_replica(region: str, identifier: str, backup_retention_days: int = 7) -> dict[str, Any]:
    """Promote the DR read replica to a standalone instance (no-op when it already is one).

    A replica that is busy (e.g. a promotion started by an earlier run is still in progress) is not
    an error: the loop polls, and :func:`check_promoted` promotes it if it comes back a replica.
    """
    rds = client("rds", region)
    db = require_instance(rds, identifier, region)
    if not db.get("ReadReplicaSourceDBInstanceIdentifier"):
        return {"done": serving(db), "attempt": 0, "promoted_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") != "available":
        return {"done": False, "attempt": 0, "promoted_now": False, "db": facts(db)}
    return {"done": False, "attempt": 0, "promoted_now": True, "db": _promote(rds, identifier, backup_retention_days)}


def _promote(rds: Any, identifier: str, backup_retention_days: int) -> dict[str, Any]:
    try:
        out = rds.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=backup_retention_days)
    except ClientError as exc:
        raise_mapped(exc, f"promote {identifier}")
    return facts(out["DBInstance"])


@registry.action("check_promoted", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource=_DR_DB)
def check_promoted(region: str, identifier: str, attempt: int = 0, backup_retention_days: int = 7) -> dict[str, Any]:
    """Done when the instance no longer replicates from a source and accepts connections (:func:`serving`).

    ``backing-up`` counts as done: the promotion is over and the first automated backup that follows
    it does not keep clients out, so the cutover does not wait for it (hardening does).

    An instance that is available but still a replica was busy when the act looked (another change,
    not a promotion): it is promoted now, so the loop converges instead of waiting for nothing.
    """
    rds = client("rds", region)
    db = require_instance(rds, identifier, region)
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    if db.get("DBInstanceStatus") == "available" and source:
        return {"done": False, "attempt": attempt + 1, "promoted_now": True,
                "db": _promote(rds, identifier, backup_retention_days)}
    return _poll(serving(db), attempt + 1, db)


# Waiting out these states is the poll loop's business, not a retry's: the first backup after a
# promotion can take longer than the Task retry budget, and its check makes the change afterwards.
_DEFER_WHILE = ("backing-up",)


def _modify(region: str, identifier: str, **changes: Any) -> dict[str, Any]:
    rds = client("rds", region)
    db = require_instance(rds, identifier, region)
    if db.get("ReadReplicaSourceDBInstanceIdentifier"):
        raise PreconditionFailed(f"{identifier} is still a read replica; promote it first")
    wanted = {k: v for k, v in changes.items() if db.get(k) != v}
    if not wanted:
        done = db.get("DBInstanceStatus") == "available" and not db.get("PendingModifiedValues")
        return {"done": done, "attempt": 0, "modified_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") in _DEFER_WHILE:
        # Deferred: the check makes the change once the instance is available (see _check).
        return {"done": False, "attempt": 0, "modified_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") != "available":
        raise ResourceNotReady(f"{identifier} is {db.get('DBInstanceStatus')}, cannot modify yet")
    return {"done": False, "attempt": 0, "modified_now": True, "db": _apply_modify(rds, identifier, wanted)}


def _apply_modify(rds: Any, identifier: str, wanted: dict[str, Any]) -> dict[str, Any]:
    try:
        out = rds.modify_db_instance(DBInstanceIdentifier=identifier, ApplyImmediately=True, **wanted)
    except ClientError as exc:
        raise_mapped(exc, f"modify {identifier}")
    return facts(out["DBInstance"])


def _check(region: str, identifier: str, attempt: int, **wanted: Any) -> dict[str, Any]:
    return converge(region, identifier, attempt + 1, **wanted)


def converge(region: str, identifier: str, attempt: int, **wanted: Any) -> dict[str, Any]:
    """Done when the instance is available with the wanted values and nothing pending.

    A change the act deferred (the instance was busy with a backup) is made here once the instance is
    available with nothing pending, so the loop converges instead of waiting for nothing. Also what an
    Aurora writer's resize is (lambdas/aurora.py): the instance is then found in its cluster.
    """
    rds = client("rds", region)
    db = require_instance(rds, identifier, region)
    missing = {k: v for k, v in wanted.items() if db.get(k) != v}
    idle = db.get("DBInstanceStatus") == "available" and not db.get("PendingModifiedValues")
    if idle and missing:
        return {"done": False, "attempt": attempt, "modified_now": True,
                "db": _apply_modify(rds, identifier, missing)}
    return {**_poll(idle and not missing, attempt, db), "modified_now": False}


@registry.action("enable_multi_az", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource=_DR_DB)
def enable_multi_az(region: str, identifier: str) -> dict[str, Any]:
    """Turn on Multi-AZ (no downtime); skipped when already on."""
    return _modify(region, identifier, MultiAZ=True)


@registry.action("check_multi_az", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource=_DR_DB)
def check_multi_az(region: str, identifier: str, attempt: int = 0) -> dict[str, Any]:
    return _check(region, identifier, attempt, MultiAZ=True)


@registry.action("resize", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource=_DR_DB)
def resize(region: str, identifier: str, instance_class: str) -> dict[str, Any]:
    """Change the instance class to the plan's failover class; skipped when already that class."""
    return _modify(region, identifier, DBInstanceClass=instance_class)


@registry.action("check_resized", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource=_DR_DB)
def check_resized(region: str, identifier: str, instance_class: str, attempt: int = 0) -> dict[str, Any]:
    return _check(region, identifier, attempt, DBInstanceClass=instance_class)


# -- replicate: keep the read replicas present ----------------------------------------------------


def network_drift(db: dict[str, Any], subnet_group: str | None, security_groups: list[str] | None) -> list[str]:
    """How a replica's DB subnet group and VPC security groups differ from the plan's (empty: they match)."""
    drift = []
    actual_group = subnet_group_of(db)
    if subnet_group and (actual_group or "").lower() != subnet_group.lower():
        drift.append(f"subnet group {actual_group or 'none (default VPC)'}, plan says {subnet_group}")
    actual_groups = security_groups_of(db)
    if security_groups and actual_groups != sorted(security_groups):
        drift.append(f"security groups {', '.join(actual_groups) or 'none'}, "
                     f"plan says {', '.join(sorted(security_groups))}")
    return drift


@registry.action(
    "ensure_replica",
    permissions=["rds:CreateDBInstanceReadReplica", "kms:CreateGrant", "kms:DescribeKey", *_DESCRIBE],
    # The new replica (DR, or the second-AZ one in the primary region), the source it reads from and,
    # for the cross-region replica, the DR DB subnet group it is created in.
    resource={"rds:CreateDBInstanceReadReplica": ("db", "source_db", "dr_subnet_group"), "kms:CreateGrant": "dr_key",
              "kms:DescribeKey": "dr_key", **{p: ("db", "source_db") for p in _DESCRIBE}},
)
def ensure_replica(
    source_region: str,
    region: str,
    source: str,
    identifier: str,
    instance_class: str,
    kms_key_id: str | None = None,
    availability_zone: str | None = None,
    subnet_group: str | None = None,
    security_groups: list[str] | None = None,
) -> dict[str, Any]:
    """Create the read replica of ``source`` when missing; report drift when it exists but differs.

    A cross-region replica is created in the plan's DR DB subnet group with its VPC security groups
    (without them RDS puts it in the region's default VPC). An in-region replica takes the source's
    subnet group: RDS refuses one there (DBSubnetGroupNotAllowedFault), so ``subnet_group`` is ignored.
    """
    rds = client("rds", region)
    resource = f"replica {identifier} ({region})"
    cross_region = source_region != region
    if not cross_region:
        subnet_group = security_groups = None
    db = describe_instance(rds, identifier)
    if db is not None:
        drift = []
        if (db.get("ReadReplicaSourceDBInstanceIdentifier") or "").rsplit(":", 1)[-1] != source:
            drift.append(f"replicates from {db.get('ReadReplicaSourceDBInstanceIdentifier')!r}, not {source}")
        if db.get("DBInstanceClass") != instance_class:
            drift.append(f"class {db.get('DBInstanceClass')}, plan says {instance_class}")
        if availability_zone and db.get("AvailabilityZone") != availability_zone:
            drift.append(f"zone {db.get('AvailabilityZone')}, plan says {availability_zone}")
        drift += network_drift(db, subnet_group, security_groups)
        record = {"resource": resource, "status": "drift" if drift else "unchanged", "drift": drift}
        done = db.get("DBInstanceStatus") == "available"
        return {"done": done, "attempt": 0, "db": facts(db), "record": record}
    src = require_instance(client("rds", source_region), source, source_region)
    params: dict[str, Any] = {"DBInstanceIdentifier": identifier, "DBInstanceClass": instance_class,
                              "PubliclyAccessible": False}
    if availability_zone:
        params["AvailabilityZone"] = availability_zone
    if not cross_region:
        params["SourceDBInstanceIdentifier"] = source
    else:
        params["SourceDBInstanceIdentifier"] = src["DBInstanceArn"]
        params["SourceRegion"] = source_region
        if subnet_group:
            params["DBSubnetGroupName"] = subnet_group.lower()  # RDS stores subnet group names lower-case
        if security_groups:
            params["VpcSecurityGroupIds"] = list(security_groups)
        if src.get("StorageEncrypted"):
            if not kms_key_id:
                raise PreconditionFailed(f"{source} is encrypted; a KMS key in {region} is needed for {identifier}")
            params["KmsKeyId"] = kms_key_id
    try:
        out = rds.create_db_instance_read_replica(**params)
    except ClientError as exc:
        raise_mapped(exc, f"create replica {identifier}")
    record = {"resource": resource, "status": "created", "encrypted": bool(params.get("KmsKeyId"))}
    if params.get("DBSubnetGroupName"):
        record["subnet_group"] = params["DBSubnetGroupName"]
    return {"done": False, "attempt": 0, "db": facts(out["DBInstance"]), "record": record}


@registry.action("check_available", permissions=_DESCRIBE, resource="db")
def check_available(
    region: str, identifier: str, attempt: int = 0, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Done when the instance is available."""
    db = require_instance(client("rds", region), identifier, region)
    return {**_poll(db.get("DBInstanceStatus") == "available", attempt + 1, db), "record": record}


@registry.action("replica_lag", permissions=["cloudwatch:GetMetricStatistics"], resource="*")
def replica_lag(region: str, identifier: str, rpo_minutes: int) -> dict[str, Any]:
    """The replica's lag (CloudWatch ReplicaLag, worst of the last 5 minutes) against the plan's RPO."""
    cw = client("cloudwatch", region)
    end = dt.datetime.now(dt.UTC)
    try:
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="ReplicaLag", Dimensions=[{"Name": "DBInstanceIdentifier",
                                                                        "Value": identifier}],
            StartTime=end - dt.timedelta(minutes=5), EndTime=end, Period=60, Statistics=["Maximum"],
        )["Datapoints"]
    except ClientError as exc:
        raise_mapped(exc, f"read ReplicaLag of {identifier}")
    resource = f"replica lag {identifier} ({region})"
    rpo = rpo_minutes * 60
    # When the lag was read: just before promotion, so the data-loss window is measured from it (lambdas/canary.py).
    at = end.isoformat()
    if not points:
        record = {"resource": resource, "status": "unknown", "lag_seconds": None, "rpo_seconds": rpo}
        return {"identifier": identifier, "lag_seconds": None, "rpo_seconds": rpo, "status": "UNKNOWN",
                "record": record, "at": at}
    lag = max(p["Maximum"] for p in points)
    ok = lag <= rpo
    record = {"resource": resource, "status": "verified" if ok else "drift", "lag_seconds": lag, "rpo_seconds": rpo}
    return {"identifier": identifier, "lag_seconds": lag, "rpo_seconds": rpo,
            "status": "WITHIN_RPO" if ok else "ABOVE_RPO", "record": record, "at": at}


# -- drills: isolated copies of the DR replica (made by lambdas/rds_drill.py) -------------------------


_COPY_PERMISSIONS = ["rds:CreateDBInstanceReadReplica", "rds:CreateDBSnapshot", "rds:RestoreDBInstanceFromDBSnapshot",
                     "rds:AddTagsToResource", "rds:DescribeDBInstances", "rds:DescribeDBSnapshots",
                     "kms:CreateGrant", "kms:DescribeKey"]
_COPY_RESOURCES: dict[str, str | tuple[str, ...]] = {
    # The copy (a replica of the live DR replica, read from it) ...
    "rds:CreateDBInstanceReadReplica": ("drill_db", "db"),
    # ... or a snapshot of the live replica restored to the copy in the plan's DR subnet group.
    "rds:CreateDBSnapshot": ("drill_db_snapshot", "db"),
    "rds:RestoreDBInstanceFromDBSnapshot": ("drill_db", "drill_db_snapshot", "dr_subnet_group"),
    # Tags given on create are added with the caller's rds:AddTagsToResource.
    "rds:AddTagsToResource": ("drill_db", "drill_db_snapshot"),
    "rds:DescribeDBInstances": ("db", "drill_db"),
    "rds:DescribeDBSnapshots": ("drill_db_snapshot",),
    # An encrypted replica's copy is encrypted with the same DR-region key (grants made as the caller).
    "kms:CreateGrant": "dr_key",
    "kms:DescribeKey": "dr_key",
}


@registry.action("create_drill_copy", permissions=_COPY_PERMISSIONS, resource=_COPY_RESOURCES)
def create_drill_copy(region: str, plan: str, drill_id: str, source: str, identifier: str, subnet_group: str,
                      security_groups: list[str]) -> dict[str, Any]:
    """Start the drill's copy ``identifier`` of the live DR replica ``source`` (idempotent).

    ``method`` says how: ``read_replica`` (a read replica of ``source`` in its region, which the drill
    promotes with promote_replica) or ``snapshot`` (a manual snapshot of ``source`` that
    :func:`check_drill_copy` restores to ``identifier`` in ``subnet_group`` once it is available); see
    :func:`copy_method`. Done when the copy exists and is available. A source that is not available
    yet is waited for, not an error; ``source`` itself is only read (and snapshotted).
    """
    return rds_drill.drill_copy(region, plan, drill_id, source, identifier, subnet_group, security_groups, 0)


@registry.action("check_drill_copy", permissions=_COPY_PERMISSIONS, resource=_COPY_RESOURCES)
def check_drill_copy(region: str, plan: str, drill_id: str, source: str, identifier: str, subnet_group: str,
                     security_groups: list[str], attempt: int = 0) -> dict[str, Any]:
    """Done when the drill's copy is available; restores it from the drill's snapshot once that is available."""
    return rds_drill.drill_copy(region, plan, drill_id, source, identifier, subnet_group, security_groups, attempt + 1)


# -- drills: teardown (lambdas/rds_drill.py) -----------------------------------------------------------


_REMOVE_PERMISSIONS = ["tag:GetResources", "rds:DeleteDBInstance", "rds:DeleteDBSnapshot", "rds:DescribeDBInstances",
                       "rds:DescribeDBSnapshots", "rds:ListTagsForResource"]
_REMOVE_RESOURCES: dict[str, str | tuple[str, ...]] = {
    # Finding the leftovers: GetResources has no resource type (infra/iam.py NO_RESOURCE_LEVEL), so it is
    # granted on "*"; it answers with the ARNs and tags of what is tagged with the plan and a drill.
    "tag:GetResources": "*",
    # Everything else names one drill copy or snapshot (<replica>-drill-<id>): never a listing of the region.
    "rds:DeleteDBInstance": "drill_db",
    "rds:DeleteDBSnapshot": "drill_db_snapshot",
    "rds:DescribeDBInstances": ("drill_db",),
    "rds:DescribeDBSnapshots": ("drill_db_snapshot",),
    "rds:ListTagsForResource": ("drill_db", "drill_db_snapshot"),
}


@registry.action("remove_drill_databases", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def remove_drill_databases(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                           replicas: list[str] | None = None) -> dict[str, Any]:
    """Delete every drill DB instance and manual DB snapshot of ``plan`` in ``region`` whose drill is selected.

    A resource is a drill's when its name ends with ``-drill-<id>``, it is tagged with the plan and with
    that same id, and ``drills`` selects the id (lambdas.drill.selected); an identifier in ``protected``
    (the plan's primary, DR replica and second-AZ replica) is never touched, whatever its tags.
    They are found by their tags (Resource Groups Tagging API) and, for ``{"ids": [...]}``, also by the
    names the drills' copies of the DR replicas ``replicas`` have (the tagging index lags a new copy).
    Instances are deleted without a final snapshot; one that cannot be deleted yet (creating) is
    tried again by :func:`check_drill_databases_removed`, as is a snapshot still being created.
    Done when nothing selected remains; ``remaining`` names what is still there (deleting included).
    """
    return rds_drill.remove_databases(region, plan, drills, protected, replicas, 0)


@registry.action("check_drill_databases_removed", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def check_drill_databases_removed(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                                  attempt: int = 0, deleted: list[dict[str, Any]] | None = None,
                                  replicas: list[str] | None = None) -> dict[str, Any]:
    """Done when no selected drill instance or snapshot remains; deletes what could not be deleted before.

    ``deleted`` is what the loop's earlier calls deleted: the answer's ``deleted`` adds this call's to it
    (``deleted_now`` is this call's alone), so the loop's last answer lists everything it deleted.
    """
    return rds_drill.remove_databases(region, plan, drills, protected, replicas, attempt + 1, deleted)
