"""RDS steps: promote the DR replica, harden it (Multi-AZ, instance class), report its state.

Every action reads the current state first, so a retried or re-run step converges instead of
failing on "already done" (a promoted replica is not promoted again, a class already set is
not modified again).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotFound, ResourceNotReady

registry = Registry("rds")
handler = registry.handler

_DESCRIBE = ["rds:DescribeDBInstances"]


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
    }


def _poll(done: bool, attempt: int, db: dict[str, Any]) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, "db": facts(db)}


@registry.action("promote_replica", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource="db")
def promote_replica(region: str, identifier: str, backup_retention_days: int = 7) -> dict[str, Any]:
    """Promote the DR read replica to a standalone instance (no-op when it already is one).

    A replica that is busy (e.g. a promotion started by an earlier run is still in progress) is not
    an error: the loop polls, and :func:`check_promoted` promotes it if it comes back a replica.
    """
    rds = client("rds", region)
    db = _require(rds, identifier, region)
    if not db.get("ReadReplicaSourceDBInstanceIdentifier"):
        done = db.get("DBInstanceStatus") == "available"
        return {"done": done, "attempt": 0, "promoted_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") != "available":
        return {"done": False, "attempt": 0, "promoted_now": False, "db": facts(db)}
    return {"done": False, "attempt": 0, "promoted_now": True, "db": _promote(rds, identifier, backup_retention_days)}


def _promote(rds: Any, identifier: str, backup_retention_days: int) -> dict[str, Any]:
    try:
        out = rds.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=backup_retention_days)
    except ClientError as exc:
        raise_mapped(exc, f"promote {identifier}")
    return facts(out["DBInstance"])


@registry.action("check_promoted", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource="db")
def check_promoted(region: str, identifier: str, attempt: int = 0, backup_retention_days: int = 7) -> dict[str, Any]:
    """Done when the instance is available and no longer replicates from a source.

    An instance that is available but still a replica was busy when the act looked (another change,
    not a promotion): it is promoted now, so the loop converges instead of waiting for nothing.
    """
    rds = client("rds", region)
    db = _require(rds, identifier, region)
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    if db.get("DBInstanceStatus") == "available" and source:
        return {"done": False, "attempt": attempt + 1, "promoted_now": True,
                "db": _promote(rds, identifier, backup_retention_days)}
    return _poll(db.get("DBInstanceStatus") == "available" and not source, attempt + 1, db)


def _modify(region: str, identifier: str, **changes: Any) -> dict[str, Any]:
    rds = client("rds", region)
    db = _require(rds, identifier, region)
    if db.get("ReadReplicaSourceDBInstanceIdentifier"):
        raise PreconditionFailed(f"{identifier} is still a read replica; promote it first")
    wanted = {k: v for k, v in changes.items() if db.get(k) != v}
    if not wanted:
        done = db.get("DBInstanceStatus") == "available" and not db.get("PendingModifiedValues")
        return {"done": done, "attempt": 0, "modified_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") != "available":
        raise ResourceNotReady(f"{identifier} is {db.get('DBInstanceStatus')}, cannot modify yet")
    try:
        out = rds.modify_db_instance(DBInstanceIdentifier=identifier, ApplyImmediately=True, **wanted)
    except ClientError as exc:
        raise_mapped(exc, f"modify {identifier}")
    return {"done": False, "attempt": 0, "modified_now": True, "db": facts(out["DBInstance"])}


def _check(region: str, identifier: str, attempt: int, **wanted: Any) -> dict[str, Any]:
    db = _require(client("rds", region), identifier, region)
    done = (
        db.get("DBInstanceStatus") == "available"
        and not db.get("PendingModifiedValues")
        and all(db.get(k) == v for k, v in wanted.items())
    )
    return _poll(done, attempt + 1, db)


@registry.action("enable_multi_az", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
def enable_multi_az(region: str, identifier: str) -> dict[str, Any]:
    """Turn on Multi-AZ (no downtime); skipped when already on."""
    return _modify(region, identifier, MultiAZ=True)


@registry.action("check_multi_az", permissions=_DESCRIBE, resource="db")
def check_multi_az(region: str, identifier: str, attempt: int = 0) -> dict[str, Any]:
    return _check(region, identifier, attempt, MultiAZ=True)


@registry.action("resize", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
def resize(region: str, identifier: str, instance_class: str) -> dict[str, Any]:
    """Change the instance class to the plan's failover class; skipped when already that class."""
    return _modify(region, identifier, DBInstanceClass=instance_class)


@registry.action("check_resized", permissions=_DESCRIBE, resource="db")
def check_resized(region: str, identifier: str, instance_class: str, attempt: int = 0) -> dict[str, Any]:
    return _check(region, identifier, attempt, DBInstanceClass=instance_class)


# -- replicate: keep the read replicas present ----------------------------------------------------


@registry.action(
    "ensure_replica",
    permissions=["rds:CreateDBInstanceReadReplica", "kms:CreateGrant", "kms:DescribeKey", *_DESCRIBE],
    # The new replica (DR, or the second-AZ one in the primary region) and the source it reads from.
    resource={"rds:CreateDBInstanceReadReplica": ("db", "source_db"), "kms:CreateGrant": "dr_key",
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
) -> dict[str, Any]:
    """Create the read replica of ``source`` when missing; report drift when it exists but differs."""
    rds = client("rds", region)
    resource = f"replica {identifier} ({region})"
    db = describe_instance(rds, identifier)
    if db is not None:
        drift = []
        if (db.get("ReadReplicaSourceDBInstanceIdentifier") or "").rsplit(":", 1)[-1] != source:
            drift.append(f"replicates from {db.get('ReadReplicaSourceDBInstanceIdentifier')!r}, not {source}")
        if db.get("DBInstanceClass") != instance_class:
            drift.append(f"class {db.get('DBInstanceClass')}, plan says {instance_class}")
        if availability_zone and db.get("AvailabilityZone") != availability_zone:
            drift.append(f"zone {db.get('AvailabilityZone')}, plan says {availability_zone}")
        record = {"resource": resource, "status": "drift" if drift else "unchanged", "drift": drift}
        done = db.get("DBInstanceStatus") == "available"
        return {"done": done, "attempt": 0, "db": facts(db), "record": record}
    src = _require(client("rds", source_region), source, source_region)
    params: dict[str, Any] = {"DBInstanceIdentifier": identifier, "DBInstanceClass": instance_class,
                              "PubliclyAccessible": False}
    if availability_zone:
        params["AvailabilityZone"] = availability_zone
    if source_region == region:
        params["SourceDBInstanceIdentifier"] = source
    else:
        params["SourceDBInstanceIdentifier"] = src["DBInstanceArn"]
        params["SourceRegion"] = source_region
        if src.get("StorageEncrypted"):
            if not kms_key_id:
                raise PreconditionFailed(f"{source} is encrypted; a KMS key in {region} is needed for {identifier}")
            params["KmsKeyId"] = kms_key_id
    try:
        out = rds.create_db_instance_read_replica(**params)
    except ClientError as exc:
        raise_mapped(exc, f"create replica {identifier}")
    record = {"resource": resource, "status": "created", "encrypted": bool(params.get("KmsKeyId"))}
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
    import datetime as dt

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
    if not points:
        record = {"resource": resource, "status": "unknown", "lag_seconds": None, "rpo_seconds": rpo}
        return {"identifier": identifier, "lag_seconds": None, "rpo_seconds": rpo, "status": "UNKNOWN",
                "record": record}
    lag = max(p["Maximum"] for p in points)
    ok = lag <= rpo
    record = {"resource": resource, "status": "verified" if ok else "drift", "lag_seconds": lag, "rpo_seconds": rpo}
    return {"identifier": identifier, "lag_seconds": lag, "rpo_seconds": rpo,
            "status": "WITHIN_RPO" if ok else "ABOVE_RPO", "record": record}
