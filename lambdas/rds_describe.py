"""Reading RDS resources by identifier: the describe helpers of :mod:`lambdas.rds`, :mod:`lambdas.rds_drill`,
:mod:`lambdas.aurora_cluster` and :mod:`lambdas.aurora_drill`, and the facts reports and checks read from an
instance.

Every read names one resource (DescribeDBInstances, DescribeDBSnapshots, DescribeDBClusters, ...), never a
listing of the region. Plain functions only: this module imports no action module.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import raise_mapped
from lambdas.errors import ResourceNotFound

# A promoted instance serves once it is standalone and in one of these states. With automated backups
# newly enabled by the promotion (a replica is created with backups disabled), RDS takes the first
# backup right after it: the instance shows ``backing-up`` and accepts connections meanwhile (I/O is
# suspended only briefly while a backup initializes: RDS User Guide, "Managing automated backups"),
# so the cutover does not wait for that backup.
SERVING = ("available", "backing-up")


def describe_one(call: Callable[[], dict[str, Any]], key: str, not_found: Collection[str],
                 what: str) -> dict[str, Any] | None:
    """The resource a Describe* by identifier answers with (the first of the answer's list ``key``), or None when
    AWS answers with one of the error codes ``not_found`` or an empty list; any other AWS error is mapped
    (:func:`lambdas.common.raise_mapped`, ``what`` naming the call)."""
    try:
        found = call()[key]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in not_found:
            return None
        raise_mapped(exc, what)
    return found[0] if found else None


def require(found: dict[str, Any] | None, what: str, region: str) -> dict[str, Any]:
    """``found``, which must exist: ResourceNotFound (``<what> does not exist in <region>``) when it is None."""
    if found is None:
        raise ResourceNotFound(f"{what} does not exist in {region}")
    return found


def describe_instance(rds: Any, identifier: str) -> dict[str, Any] | None:
    return describe_one(lambda: rds.describe_db_instances(DBInstanceIdentifier=identifier), "DBInstances",
                        ("DBInstanceNotFound",), f"describe {identifier}")


def require_instance(rds: Any, identifier: str, region: str) -> dict[str, Any]:
    return require(describe_instance(rds, identifier), f"DB instance {identifier}", region)


def describe_snapshot(rds: Any, identifier: str) -> dict[str, Any] | None:
    return describe_one(lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=identifier), "DBSnapshots",
                        ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"), f"describe snapshot {identifier}")


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
