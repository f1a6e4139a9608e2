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


@registry.action("promote_replica", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource="db")
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


@registry.action("check_promoted", permissions=["rds:PromoteReadReplica", *_DESCRIBE], resource="db")
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
    """Done when the instance is available with the wanted values and nothing pending.

    A change the act deferred (the instance was busy with a backup) is made here once the instance is
    available with nothing pending, so the loop converges instead of waiting for nothing.
    """
    rds = client("rds", region)
    db = _require(rds, identifier, region)
    missing = {k: v for k, v in wanted.items() if db.get(k) != v}
    idle = db.get("DBInstanceStatus") == "available" and not db.get("PendingModifiedValues")
    if idle and missing:
        return {"done": False, "attempt": attempt + 1, "modified_now": True,
                "db": _apply_modify(rds, identifier, missing)}
    return _poll(idle and not missing, attempt + 1, db)


@registry.action("enable_multi_az", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
def enable_multi_az(region: str, identifier: str) -> dict[str, Any]:
    """Turn on Multi-AZ (no downtime); skipped when already on."""
    return _modify(region, identifier, MultiAZ=True)


@registry.action("check_multi_az", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
def check_multi_az(region: str, identifier: str, attempt: int = 0) -> dict[str, Any]:
    return _check(region, identifier, attempt, MultiAZ=True)


@registry.action("resize", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
def resize(region: str, identifier: str, instance_class: str) -> dict[str, Any]:
    """Change the instance class to the plan's failover class; skipped when already that class."""
    return _modify(region, identifier, DBInstanceClass=instance_class)


@registry.action("check_resized", permissions=["rds:ModifyDBInstance", *_DESCRIBE], resource="db")
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


# -- readiness: the DR replica's network ---------------------------------------------------------

NETWORK_CHECK = "dr-db-network"
NETWORK_PERMISSIONS = ["rds:DescribeDBSubnetGroups", "ec2:DescribeSecurityGroups"]


def _subnet_group(rds: Any, name: str) -> dict[str, Any] | None:
    try:
        found = rds.describe_db_subnet_groups(DBSubnetGroupName=name.lower())["DBSubnetGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"):
            return None
        raise_mapped(exc, f"describe DB subnet group {name}")
    return found[0] if found else None


def _security_groups(ec2: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The named security groups that exist, by id (a filter, so a missing one is absent, not an error)."""
    try:
        pages = ec2.get_paginator("describe_security_groups").paginate(
            Filters=[{"Name": "group-id", "Values": list(ids)}])
        return {g["GroupId"]: g for page in pages for g in page["SecurityGroups"]}
    except ClientError as exc:
        raise_mapped(exc, f"describe security groups {', '.join(ids)}")
    return {}


def network_check(region: str, identifier: str, network: dict[str, Any]) -> dict[str, Any]:
    """Readiness of the DR replica's network: one check result (readiness's shape) for ``identifier``.

    NOT_READY when the plan's DB subnet group or a security group does not exist in ``region``, when a
    security group is in another VPC than the subnet group, or when the existing replica is not in that
    subnet group with those security groups (drift: replicate does not move a replica). A missing
    replica is the dr-replica check's business; the network is judged on its own then.
    """
    name, wanted = network["subnet_group"], sorted(network["security_groups"])
    group = _subnet_group(client("rds", region), name)
    found = _security_groups(client("ec2", region), wanted)
    evidence: dict[str, Any] = {"subnet_group": name, "vpc_id": (group or {}).get("VpcId"),
                                "security_groups": wanted}
    problems = []
    if group is None:
        problems.append(f"DB subnet group {name} does not exist in {region}")
    missing = [g for g in wanted if g not in found]
    if missing:
        problems.append(f"security group{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"{'do' if len(missing) > 1 else 'does'} not exist in {region}")
    if group is not None:
        elsewhere = sorted(f"{g} ({s.get('VpcId')})" for g, s in found.items() if s.get("VpcId") != group.get("VpcId"))
        if elsewhere:
            problems.append(f"security groups {', '.join(elsewhere)} are not in {group.get('VpcId')}, the VPC of "
                            f"subnet group {name}")
    db = describe_instance(client("rds", region), identifier)
    if db is not None:
        evidence.update(replica_subnet_group=subnet_group_of(db), replica_security_groups=security_groups_of(db))
        problems += [f"replica {identifier} has drifted: {d}" for d in network_drift(db, name, wanted)]
    if problems:
        return {"check": NETWORK_CHECK, "resource": identifier, "status": "NOT_READY",
                "reason": "; ".join(problems), "evidence": evidence}
    where = f"{identifier} is in it" if db is not None else f"{identifier} does not exist yet"
    return {"check": NETWORK_CHECK, "resource": identifier, "status": "READY",
            "reason": f"DB subnet group {name} ({evidence['vpc_id']}) and security groups {', '.join(wanted)} exist "
                      f"in {region}; {where}", "evidence": evidence}
