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
    """Promote the DR read replica to a standalone instance (no-op when it already is one)."""
    rds = client("rds", region)
    db = _require(rds, identifier, region)
    if not db.get("ReadReplicaSourceDBInstanceIdentifier"):
        done = db.get("DBInstanceStatus") == "available"
        return {"done": done, "attempt": 0, "promoted_now": False, "db": facts(db)}
    if db.get("DBInstanceStatus") != "available":
        raise ResourceNotReady(f"{identifier} is {db.get('DBInstanceStatus')}, cannot promote yet")
    try:
        out = rds.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=backup_retention_days)
    except ClientError as exc:
        raise_mapped(exc, f"promote {identifier}")
    return {"done": False, "attempt": 0, "promoted_now": True, "db": facts(out["DBInstance"])}


@registry.action("check_promoted", permissions=_DESCRIBE, resource="db")
def check_promoted(region: str, identifier: str, attempt: int = 0) -> dict[str, Any]:
    """Done when the instance is available and no longer replicates from a source."""
    db = _require(client("rds", region), identifier, region)
    done = db.get("DBInstanceStatus") == "available" and not db.get("ReadReplicaSourceDBInstanceIdentifier")
    return _poll(done, attempt + 1, db)


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
