"""RDS steps: promote the DR replica, harden it (Multi-AZ, instance class), report its state; make and
remove the isolated copies a drill rehearses those steps on.

Every action reads the current state first, so a retried or re-run step converges instead of
failing on "already done" (a promoted replica is not promoted again, a class already set is
not modified again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.common import Registry, aws_errors, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotFound, ResourceNotReady

registry = Registry("rds")
handler = registry.handler

_DESCRIBE = ["rds:DescribeDBInstances"]
# What failover steps act on: the live DR replica, or a drill's copy of it (a drill promotes and hardens
# its copy with the very same steps; infra/iam.py scopes "drill_db" to names with "-drill-").
_DR_DB = ("db", "drill_db")

# A promoted instance serves once it is standalone and in one of these states. With automated backups
# newly enabled by the promotion (a replica is created with backups disabled), RDS takes the first
# backup right after it: the instance shows ``backing-up`` and accepts connections meanwhile (I/O is
# suspended only briefly while a backup initializes: RDS User Guide, "Managing automated backups"),
# so the cutover does not wait for that backup.
SERVING = ("available", "backing-up")


def describe_instance(rds: Any, identifier: str) -> dict[str, Any] | None:
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "DBInstanceNotFound":
            return None
        raise_mapped(exc, f"describe {identifier}")
    return found[0] if found else None


def _require(rds: Any, identifier: str, region: str) -> dict[str, Any]:
    db = describe_instance(rds, identifier)
    if db is None:
        raise ResourceNotFound(f"DB instance {identifier} does not exist in {region}")
    return db


def facts(db: dict[str, Any]) -> dict[str, Any]:
    """The fields reports and checks rely on, JSON-safe."""
    pending = db.get("PendingModifiedValues") or {}
    return {
        "identifier": db["DBInstanceIdentifier"],
        "status": db.get("DBInstanceStatus"),
        "instance_class": db.get("DBInstanceClass"),
        "multi_az": bool(db.get("MultiAZ")),
        "replica_source": db.get("ReadReplicaSourceDBInstanceIdentifier"),
        "endpoint": (db.get("Endpoint") or {}).get("Address"),
        "availability_zone": db.get("AvailabilityZone"),
        "pending": sorted(pending),
        "subnet_group": subnet_group_of(db),
        "security_groups": security_groups_of(db),
    }


def subnet_group_of(db: dict[str, Any]) -> str | None:
    return (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")


def security_groups_of(db: dict[str, Any]) -> list[str]:
    return sorted(g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups") or [] if g.get("VpcSecurityGroupId"))


def serving(db: dict[str, Any]) -> bool:
    """Promoted and accepting connections: standalone, available (or taking its first backup), with an endpoint."""
    return (
        db.get("DBInstanceStatus") in SERVING
        and not db.get("ReadReplicaSourceDBInstanceIdentifier")
        and bool((db.get("Endpoint") or {}).get("Address"))
    )


def _poll(done: bool, attempt: int, db: dict[str, Any]) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, "db": facts(db)}


@registry.action("promote_replica", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource=_DR_DB)
def promote_replica(region: str, identifier: str, backup_retention_days: int = 7) -> dict[str, Any]:
    """Promote the DR read replica to a standalone instance (no-op when it already is one).

    A replica that is busy (e.g. a promotion started by an earlier run is still in progress) is not
    an error: the loop polls, and :func:`check_promoted` promotes it if it comes back a replica.
    """
    rds = client("rds", region)
    db = _require(rds, identifier, region)
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
    db = _require(rds, identifier, region)
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
    db = _require(rds, identifier, region)
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
    db = _require(rds, identifier, region)
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
    src = _require(client("rds", source_region), source, source_region)
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
    db = _require(client("rds", region), identifier, region)
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


# -- drills: isolated copies of the DR replica ------------------------------------------------------
#
# A drill promotes and hardens a copy of the live DR replica, never the replica: the copy is named
# ``<replica>-drill-<id>`` (lambdas.drill.drill_name) and tagged with the drill and the plan, and the
# failover's own steps (promote_replica, enable_multi_az, resize and their checks) are called with its
# name. The live replica is only read (and, on the snapshot path, snapshotted).

# A copy in one of these states will not become available by waiting: the drill fails now rather than
# at the end of its poll budget.
_COPY_FAILED = ("failed", "incompatible-restore", "incompatible-parameters", "incompatible-network",
                "incompatible-option-group", "inaccessible-encryption-credentials", "restore-error", "storage-full",
                "deleting")
_SNAPSHOT_FAILED = ("failed", "deleting")
_CASCADING_POSTGRES = (14, 1)


def _version(text: str | None) -> tuple[int, ...]:
    parts = []
    for part in (text or "").split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def copy_method(db: dict[str, Any]) -> str:
    """How a drill copies ``db``: ``read_replica`` (a read replica of it, promoted by the drill) or ``snapshot``
    (a manual snapshot of it, restored to a new instance).

    A replica (the DR replica) feeds a cascading replica on RDS for PostgreSQL 14.1 and later (RDS User
    Guide, "Using cascading read replicas with RDS for PostgreSQL"), and on MySQL/MariaDB only with
    automated backups turned on ("each source ... must have automated backups turned on"); a standalone
    source always needs them. Other engines, and older versions, are copied through a snapshot.

    The guides also ask for automated backups on a PostgreSQL replica that feeds another ("Creating a read
    replica": the requirement "also applies to a read replica that is the source DB instance for another
    read replica"), and the DR replica is created without (CreateDBInstanceReadReplica API reference). If
    RDS refuses the cascade for that reason, :func:`create_drill_copy` falls back to the snapshot.
    """
    engine = str(db.get("Engine") or "").lower()
    backups = int(db.get("BackupRetentionPeriod") or 0) > 0
    if engine not in ("postgres", "mysql", "mariadb"):
        return "snapshot"
    if engine == "postgres" and db.get("ReadReplicaSourceDBInstanceIdentifier"):
        return "read_replica" if _version(db.get("EngineVersion")) >= _CASCADING_POSTGRES else "snapshot"
    return "read_replica" if backups else "snapshot"


def _require_copy_name(identifier: str, drill_id: str, source: str) -> None:
    """Refuse a copy name that is not this drill's: a drill creates and changes nothing else."""
    if not drill.is_drill_id(drill_id):
        raise PreconditionFailed(f"{drill_id!r} is not a drill id")
    if (identifier or "").lower() == (source or "").lower():
        raise PreconditionFailed(f"the drill copy cannot be {source} itself: the live DR replica is never modified")
    if drill.id_in_name(identifier) != drill_id:
        raise PreconditionFailed(
            f"{identifier!r} is not a copy name of drill {drill_id} (…{drill.SUFFIX}{drill_id}); "
            "a drill never creates or modifies anything else")


def _tagged_for(resource: dict[str, Any], plan: str, drill_id: str, what: str) -> None:
    """An existing copy or snapshot under the copy's name must carry this drill's tags (when AWS lists them)."""
    if "TagList" not in resource:
        return
    tags = resource.get("TagList") or []
    found = (drill.tag_value(tags, drill.DRILL_TAG), drill.tag_value(tags, drill.PLAN_TAG))
    if found != (drill_id, plan):
        raise PreconditionFailed(
            f"{what} exists but is tagged {drill.DRILL_TAG}={found[0]!r}, {drill.PLAN_TAG}={found[1]!r}, not this "
            f"drill's ({drill_id}, {plan}): it is left alone")


def describe_snapshot(rds: Any, identifier: str) -> dict[str, Any] | None:
    try:
        found = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
            return None
        raise_mapped(exc, f"describe snapshot {identifier}")
    return found[0] if found else None


def _copy_result(done: bool, attempt: int, method: str, snapshot: str | None,
                 db: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, "method": method, "snapshot": snapshot,
            "db": facts(db) if db is not None else None, **extra}


def _refused_for_backups(exc: ClientError) -> bool:
    """RDS refused a replica because its source has no automated backups (a cascade it does not allow)."""
    error = exc.response.get("Error", {})
    return (str(error.get("Code")) in ("InvalidDBInstanceState", "InvalidDBInstanceStateFault",
                                       "InvalidParameterCombination")
            and "automated backup" in str(error.get("Message", "")).lower())


def _drill_copy(region: str, plan: str, drill_id: str, source: str, identifier: str, subnet_group: str,
                security_groups: list[str], attempt: int) -> dict[str, Any]:
    _require_copy_name(identifier, drill_id, source)
    rds = client("rds", region)
    tags = drill.tags(plan, drill_id)
    snapshot = describe_snapshot(rds, identifier)
    if snapshot is not None:
        _tagged_for(snapshot, plan, drill_id, f"snapshot {identifier}")
    copy = describe_instance(rds, identifier)
    if copy is not None:
        _tagged_for(copy, plan, drill_id, f"DB instance {identifier}")
        method = "snapshot" if snapshot is not None else "read_replica"
        status = copy.get("DBInstanceStatus")
        if status in _COPY_FAILED:
            raise PreconditionFailed(f"drill copy {identifier} is {status}; it will not become available")
        return _copy_result(status == "available", attempt, method, identifier if snapshot is not None else None, copy)
    src = _require(rds, source, region)
    if snapshot is not None:
        return _restore_when_ready(rds, snapshot, src, identifier, subnet_group, security_groups, tags, attempt)
    if src.get("DBInstanceStatus") != "available":
        # Busy (a change, a backup): nothing can be copied from it yet; the loop polls.
        return _copy_result(False, attempt, copy_method(src), None, None, source_status=src.get("DBInstanceStatus"))
    method = copy_method(src)
    if method == "read_replica":
        try:
            out = rds.create_db_instance_read_replica(
                DBInstanceIdentifier=identifier, SourceDBInstanceIdentifier=source,
                DBInstanceClass=src["DBInstanceClass"], PubliclyAccessible=False, Tags=tags,
                # Same region: no DBSubnetGroupName (RDS refuses one; the replica takes its source's).
                **({"VpcSecurityGroupIds": list(security_groups)} if security_groups else {}),
            )
            return _copy_result(False, attempt, method, None, out["DBInstance"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
                return _copy_result(False, attempt, method, None, describe_instance(rds, identifier))
            if not _refused_for_backups(exc):
                raise_mapped(exc, f"create drill replica {identifier} of {source}")
            # RDS does not cascade from this replica after all: copy it through a snapshot instead.
    try:
        out = rds.create_db_snapshot(DBSnapshotIdentifier=identifier, DBInstanceIdentifier=source, Tags=tags)
        snapshot = out["DBSnapshot"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("DBSnapshotAlreadyExists", "DBSnapshotAlreadyExistsFault"):
            raise_mapped(exc, f"snapshot {source} as {identifier}")
        snapshot = describe_snapshot(rds, identifier) or {"Status": "creating"}
    return _copy_result(False, attempt, "snapshot", identifier, None, snapshot_status=snapshot.get("Status"))


def _restore_when_ready(rds: Any, snapshot: dict[str, Any], src: dict[str, Any], identifier: str,
                        subnet_group: str, security_groups: list[str], tags: list[dict[str, str]],
                        attempt: int) -> dict[str, Any]:
    """Restore the drill's snapshot to the copy once it is available; until then the loop polls."""
    status = snapshot.get("Status")
    if status in _SNAPSHOT_FAILED:
        raise PreconditionFailed(f"drill snapshot {identifier} is {status}; no copy can be restored from it")
    if status != "available":
        return _copy_result(False, attempt, "snapshot", identifier, None, snapshot_status=status,
                            snapshot_progress=snapshot.get("PercentProgress"))
    params: dict[str, Any] = {
        "DBInstanceIdentifier": identifier, "DBSnapshotIdentifier": identifier,
        "DBInstanceClass": src["DBInstanceClass"], "PubliclyAccessible": False, "MultiAZ": False, "Tags": tags,
    }
    if subnet_group:
        params["DBSubnetGroupName"] = subnet_group.lower()  # RDS stores subnet group names lower-case
    if security_groups:
        params["VpcSecurityGroupIds"] = list(security_groups)
    try:
        out = rds.restore_db_instance_from_db_snapshot(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
            return _copy_result(False, attempt, "snapshot", identifier, describe_instance(rds, identifier))
        if exc.response["Error"]["Code"] in ("InvalidDBSnapshotState", "InvalidDBSnapshotStateFault"):
            return _copy_result(False, attempt, "snapshot", identifier, None, snapshot_status=status)
        raise_mapped(exc, f"restore drill copy {identifier}")
    return _copy_result(False, attempt, "snapshot", identifier, out["DBInstance"])


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
    return _drill_copy(region, plan, drill_id, source, identifier, subnet_group, security_groups, 0)


@registry.action("check_drill_copy", permissions=_COPY_PERMISSIONS, resource=_COPY_RESOURCES)
def check_drill_copy(region: str, plan: str, drill_id: str, source: str, identifier: str, subnet_group: str,
                     security_groups: list[str], attempt: int = 0) -> dict[str, Any]:
    """Done when the drill's copy is available; restores it from the drill's snapshot once that is available."""
    return _drill_copy(region, plan, drill_id, source, identifier, subnet_group, security_groups, attempt + 1)


# -- drills: teardown ---------------------------------------------------------------------------------
#
# A teardown finds a drill's leftovers with the Resource Groups Tagging API (GetResources: the DB instances
# and snapshots tagged with the plan and a drill), then reads and deletes each BY IDENTIFIER: listing the
# region's instances or snapshots would need rds:Describe* on db:* / snapshot:*, which no pilotlight role
# holds (tag:GetResources has no resource type: it is granted on "*", and answers with ARNs and tags only).
#
# The tagging index is eventually consistent: a copy created seconds ago may not be in it yet. A teardown of
# given drills (``{"ids": [...]}``) therefore also reads the names those drills' copies have
# (lambdas.drill.drill_name of each DR replica in ``replicas``), so a copy the index does not list yet is
# removed all the same; a sweep finds it on a later run.

_SNAPSHOT_DELETABLE = ("available", "failed")
_TAGGED_TYPES = {"db": "rds:db", "snapshot": "rds:snapshot"}  # the ARN's resource type -> ResourceTypeFilters


def _tags_of(rds: Any, resource: dict[str, Any], arn_key: str) -> list[dict[str, str]]:
    """The resource's tags: Describe* lists them (TagList); ListTagsForResource when an answer has none."""
    if "TagList" in resource:
        return resource.get("TagList") or []
    with aws_errors(f"list tags of {resource.get(arn_key)}"):
        return rds.list_tags_for_resource(ResourceName=resource[arn_key]).get("TagList") or []
    return []


def tagged_drill_resources(region: str, plan: str, drills: dict[str, Any], protected: set[str],
                           types: dict[str, str] = _TAGGED_TYPES) -> dict[str, dict[str, str]]:
    """Identifiers of the plan's drill RDS resources the teardown removes, as the tagging index lists them, per
    ARN resource type of ``types`` (ARN type -> ResourceTypeFilters; default: instances ``db`` and snapshots
    ``snapshot``; lambdas/aurora_drill.py asks for clusters and cluster snapshots): lower-case id -> id."""
    tagging = client("resourcegroupstaggingapi", region)
    with aws_errors(f"find the {', '.join(sorted(types.values()))} resources tagged {drill.PLAN_TAG}={plan}"):
        pages = tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": drill.PLAN_TAG, "Values": [plan]}, {"Key": drill.DRILL_TAG}],
            ResourceTypeFilters=sorted(types.values()))
        mappings = [m for page in pages for m in page.get("ResourceTagMappingList") or []]
    found: dict[str, dict[str, str]] = {kind: {} for kind in types}
    for mapping in mappings:
        # arn:<partition>:rds:<region>:<account>:db:<identifier> (or :snapshot:, :cluster:, ...)
        parts = str(mapping.get("ResourceARN") or "").split(":", 6)
        if len(parts) != 7 or parts[2] != "rds" or parts[5] not in found:
            continue
        if drill.owner(parts[6], mapping.get("Tags"), plan, drills, protected):
            found[parts[5]].setdefault(parts[6].lower(), parts[6])
    return found


def _named(drills: dict[str, Any], replicas: list[str] | None) -> list[str]:
    """The names the copies (and snapshots) of the drills ``{"ids": [...]}`` selects have, per DR replica."""
    ids = [i for i in drills.get("ids") or [] if drill.is_drill_id(i)] if "ids" in drills else []
    return sorted({drill.drill_name(r, i, drill.DB_NAME_LIMIT) for r in replicas or [] if r for i in ids})


def _candidates(region: str, plan: str, drills: dict[str, Any], protected: set[str],
                replicas: list[str] | None) -> tuple[list[str], list[str]]:
    """Identifiers of the instances and of the snapshots to read: the tagged ones and the drills' own names."""
    found = tagged_drill_resources(region, plan, drills, protected)
    for name in _named(drills, replicas):
        for kind in found:
            found[kind].setdefault(name.lower(), name)
    return sorted(found["db"].values()), sorted(found["snapshot"].values())


def _drill_instances(rds: Any, names: list[str], plan: str, drills: dict[str, Any],
                     protected: set[str]) -> list[tuple[dict, str]]:
    out = []
    for name in names:
        db = describe_instance(rds, name)  # None: gone (the tagging index still lists it for a while), or never made
        if db is None:
            continue
        owner = drill.owner(db["DBInstanceIdentifier"], _tags_of(rds, db, "DBInstanceArn"), plan, drills, protected)
        if owner:
            out.append((db, owner))
    return out


def _drill_snapshots(rds: Any, names: list[str], plan: str, drills: dict[str, Any],
                     protected: set[str]) -> list[tuple[dict, str]]:
    out = []
    for name in names:
        snap = describe_snapshot(rds, name)
        if snap is None or snap.get("SnapshotType", "manual") != "manual":
            continue
        owner = drill.owner(snap["DBSnapshotIdentifier"], _tags_of(rds, snap, "DBSnapshotArn"), plan, drills, protected)
        if owner:
            out.append((snap, owner))
    return out


def _remove_drill_databases(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None,
                            replicas: list[str] | None, attempt: int,
                            before: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rds = client("rds", region)
    keep = {p.lower() for p in protected or [] if p}
    instances, snapshots = _candidates(region, plan, drills, keep, replicas)
    deleted: list[dict[str, Any]] = []
    remaining: list[str] = []
    for db, owner in _drill_instances(rds, instances, plan, drills, keep):
        ident = db["DBInstanceIdentifier"]
        if db.get("DBInstanceStatus") == "deleting":
            remaining.append(ident)
            continue
        try:
            out = rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True,
                                         DeleteAutomatedBackups=True)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                continue  # gone since it was read
            if code in ("InvalidDBInstanceState", "InvalidDBInstanceStateFault"):
                remaining.append(ident)  # e.g. still creating: the next check deletes it
                continue
            raise_mapped(exc, f"delete drill DB instance {ident}")
        deleted.append({"kind": "db_instance", "id": ident, "drill": owner})
        if (out.get("DBInstance") or {}).get("DBInstanceStatus", "deleting") == "deleting":
            remaining.append(ident)  # AWS shows it deleting for a few minutes
    for snap, owner in _drill_snapshots(rds, snapshots, plan, drills, keep):
        ident = snap["DBSnapshotIdentifier"]
        if snap.get("Status") not in _SNAPSHOT_DELETABLE:
            remaining.append(ident)  # creating (or deleting): the next check sees it again
            continue
        try:
            rds.delete_db_snapshot(DBSnapshotIdentifier=ident)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
                continue
            if code in ("InvalidDBSnapshotState", "InvalidDBSnapshotStateFault"):
                remaining.append(ident)
                continue
            raise_mapped(exc, f"delete drill DB snapshot {ident}")
        deleted.append({"kind": "db_snapshot", "id": ident, "drill": owner})
    remaining = sorted(set(remaining))
    # ``deleted`` adds this call's deletions to those of the calls before it in the loop (``before``).
    return {"done": not remaining, "attempt": attempt, "deleted": [*(before or []), *deleted], "deleted_now": deleted,
            "remaining": remaining, "left": len(remaining)}


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
    return _remove_drill_databases(region, plan, drills, protected, replicas, 0)


@registry.action("check_drill_databases_removed", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def check_drill_databases_removed(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                                  attempt: int = 0, deleted: list[dict[str, Any]] | None = None,
                                  replicas: list[str] | None = None) -> dict[str, Any]:
    """Done when no selected drill instance or snapshot remains; deletes what could not be deleted before.

    ``deleted`` is what the loop's earlier calls deleted: the answer's ``deleted`` adds this call's to it
    (``deleted_now`` is this call's alone), so the loop's last answer lists everything it deleted.
    """
    return _remove_drill_databases(region, plan, drills, protected, replicas, attempt + 1, deleted)
