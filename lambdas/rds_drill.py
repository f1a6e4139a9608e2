"""The drill side of the RDS steps (:mod:`lambdas.rds` registers the actions that use these functions).

- :func:`drill_copy`: a drill's isolated copy of the live DR replica, ``<replica>-drill-<id>`` (a read replica
  of it, or a snapshot of it restored), for ``create_drill_copy`` and ``check_drill_copy``.
- :func:`remove_databases`: the drill teardown of those copies and snapshots (``remove_drill_databases``,
  ``check_drill_databases_removed``); :func:`tagged_drill_resources` also finds the Aurora drills' leftovers.

Plain functions only: this module never imports :mod:`lambdas.rds`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.common import aws_errors, client, raise_mapped
from lambdas.errors import PreconditionFailed
from lambdas.rds_describe import describe_instance, describe_snapshot, facts, require_instance

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
    RDS refuses the cascade for that reason, :func:`lambdas.rds.create_drill_copy` falls back to the snapshot.
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


def drill_copy(region: str, plan: str, drill_id: str, source: str, identifier: str, subnet_group: str,
               security_groups: list[str], attempt: int) -> dict[str, Any]:
    """The drill's copy ``identifier`` of ``source``: made, or restored from the drill's snapshot, as far as it can be
    now (``create_drill_copy`` at ``attempt`` 0, ``check_drill_copy`` after)."""
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
    src = require_instance(rds, source, region)
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


def remove_databases(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None,
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
