"""Drill helpers of the Aurora steps (:mod:`lambdas.aurora` registers the actions that use them).

- :func:`drill_clone`: a drill's isolated, writable copy of the live DR cluster, ``<dr_cluster>-drill-<id>``
  (an Aurora clone, or a cluster snapshot restored when the DR cluster is headless), and its instance
  ``<copy>-1`` (``create_drill_clone``, ``check_drill_clone``), with the RDS Data API on when the live DR cluster
  has it (the drill's canary writes through it).
- :func:`remove_clones`: the drill teardown of those copies and snapshots (``remove_drill_clusters``,
  ``check_drill_clusters_removed``).

Plain functions only: this module never imports :mod:`lambdas.aurora`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.aurora_cluster import (
    AVAILABLE,
    FAILED,
    INSTANCE_NOT_FOUND,
    NOT_FOUND,
    available_instances,
    cluster_facts,
    create_instance,
    describe_cluster,
    instances,
    member_names,
    require_cluster,
)
from lambdas.common import client, raise_mapped
from lambdas.errors import PreconditionFailed
from lambdas.rds_describe import describe_instance, describe_one
from lambdas.rds_drill import tagged_drill_resources

# RDS identifiers (clusters and instances) are at most 63 characters; a drill copy's name leaves room for
# the "-1" of its instance.
IDENTIFIER_LIMIT = 63
INSTANCE_SUFFIX = "-1"
CLONE_NAME_LIMIT = IDENTIFIER_LIMIT - len(INSTANCE_SUFFIX)


def clone_name(dr_cluster: str, drill_id: str) -> str:
    """The drill's copy of ``dr_cluster``: ``<dr_cluster>-drill-<id>``, short enough for its instance ``-1``."""
    return drill.drill_name(dr_cluster, drill_id, CLONE_NAME_LIMIT)


def describe_cluster_snapshot(rds: Any, identifier: str) -> dict[str, Any] | None:
    return describe_one(lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier),
                        "DBClusterSnapshots", ("DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"),
                        f"describe cluster snapshot {identifier}")


def _tagged_for(resource: dict[str, Any], plan: str, drill_id: str, what: str) -> None:
    tags = resource.get("TagList")
    if tags is None:
        return
    found = (drill.tag_value(tags, drill.DRILL_TAG), drill.tag_value(tags, drill.PLAN_TAG))
    if found != (drill_id, plan):
        raise PreconditionFailed(f"{what} exists but is tagged {drill.DRILL_TAG}={found[0]!r}, {drill.PLAN_TAG}="
                                 f"{found[1]!r}, not this drill's ({drill_id}, {plan}): it is left alone")


def _clone_result(done: bool, attempt: int, name: str, method: str, cluster: dict[str, Any] | None,
                  found: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, "clone": name, "method": method,
            "cluster": cluster_facts(cluster, found) if cluster is not None else None, **extra}


def _data_api_as_source(rds: Any, copy: dict[str, Any], dr_cluster: str, region: str) -> bool | None:
    """The copy's RDS Data API (HTTP endpoint) on when the live DR cluster's is: a clone or a restored snapshot does
    not inherit it (RDS: off by default), and the drill's canary writes through it. Whether it is on; None while
    RDS refuses it for an operation in progress (the poll asks again)."""
    if copy.get("HttpEndpointEnabled"):
        return True
    if not require_cluster(rds, dr_cluster, region).get("HttpEndpointEnabled"):
        return False
    try:
        return bool(rds.enable_http_endpoint(ResourceArn=copy["DBClusterArn"]).get("HttpEndpointEnabled"))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("InvalidResourceStateFault", "InvalidDBClusterStateFault"):
            return None
        raise_mapped(exc, f"enable the RDS Data API on drill copy {copy.get('DBClusterIdentifier')}")


def drill_clone(region: str, plan: str, drill_id: str, dr_cluster: str, instance_class: str | None,
                subnet_group: str, security_groups: list[str], attempt: int) -> dict[str, Any]:
    if not drill.is_drill_id(drill_id):
        raise PreconditionFailed(f"{drill_id!r} is not a drill id")
    name = clone_name(dr_cluster, drill_id)
    rds = client("rds", region)
    tags = drill.tags(plan, drill_id)
    copy = describe_cluster(rds, name)
    snapshot = describe_cluster_snapshot(rds, name)  # the snapshot path's (a headless DR cluster)
    if snapshot is not None:
        _tagged_for(snapshot, plan, drill_id, f"cluster snapshot {name}")
    method = "snapshot" if snapshot is not None else "clone"
    if copy is not None:
        _tagged_for(copy, plan, drill_id, f"DB cluster {name}")
        if copy.get("Status") in FAILED:
            raise PreconditionFailed(f"drill copy {name} is {copy.get('Status')}; it will not become available")
        found = instances(rds, copy)
        if not found and copy.get("Status") == AVAILABLE:
            source = require_cluster(rds, dr_cluster, region)
            cls = instance_class or next((d.get("DBInstanceClass") for d in instances(rds, source)), None)
            if not cls:
                raise PreconditionFailed(f"no instance class for the drill copy {name}: the plan gives none and "
                                         f"{dr_cluster} has no instance")
            create_instance(rds, copy, name + INSTANCE_SUFFIX, cls, tags)
            found = instances(rds, require_cluster(rds, name, region))
        done = copy.get("Status") == AVAILABLE and bool(found) and len(available_instances(found)) == len(found)
        if not done:
            return _clone_result(done, attempt, name, method, copy, found)
        http = _data_api_as_source(rds, copy, dr_cluster, region)
        return _clone_result(http is not None, attempt, name, method, copy, found, http_endpoint=bool(http))
    source = require_cluster(rds, dr_cluster, region)
    if source.get("Status") != AVAILABLE:
        return _clone_result(False, attempt, name, method, None, source_status=source.get("Status"))
    network: dict[str, Any] = {"DBSubnetGroupName": subnet_group.lower()} if subnet_group else {}
    if security_groups:
        network["VpcSecurityGroupIds"] = list(security_groups)
    if snapshot is not None:
        if snapshot.get("Status") in ("failed", "deleting"):
            raise PreconditionFailed(f"drill snapshot {name} is {snapshot.get('Status')}; no copy can be restored")
        if snapshot.get("Status") != AVAILABLE:
            return _clone_result(False, attempt, name, method, None, snapshot_status=snapshot.get("Status"))
        params = {"DBClusterIdentifier": name, "SnapshotIdentifier": name, "Engine": source["Engine"],
                  "EngineVersion": source.get("EngineVersion"), "Tags": tags, **network}
        if source.get("KmsKeyId"):
            params["KmsKeyId"] = source["KmsKeyId"]
        try:
            out = rds.restore_db_cluster_from_snapshot(**{k: v for k, v in params.items() if v is not None})
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("DBClusterAlreadyExistsFault",):
                raise_mapped(exc, f"restore drill copy {name}")
            return _clone_result(False, attempt, name, method, describe_cluster(rds, name))
        return _clone_result(False, attempt, name, method, out["DBCluster"])
    if not available_instances(instances(rds, source)):
        # Headless (no instance): Aurora cannot clone it; snapshot it and restore the snapshot.
        try:
            out = rds.create_db_cluster_snapshot(DBClusterSnapshotIdentifier=name, DBClusterIdentifier=dr_cluster,
                                                 Tags=tags)["DBClusterSnapshot"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("DBClusterSnapshotAlreadyExistsFault",):
                raise_mapped(exc, f"snapshot {dr_cluster} as {name}")
            out = describe_cluster_snapshot(rds, name) or {"Status": "creating"}
        return _clone_result(False, attempt, name, "snapshot", None, snapshot_status=out.get("Status"))
    try:
        out = rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier=name, SourceDBClusterIdentifier=dr_cluster, RestoreType="copy-on-write",
            UseLatestRestorableTime=True, Tags=tags, **network)["DBCluster"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "DBClusterAlreadyExistsFault":
            raise_mapped(exc, f"clone {dr_cluster} as {name}")
        out = describe_cluster(rds, name)
    return _clone_result(False, attempt, name, "clone", out)


# -- drills: teardown ---------------------------------------------------------------------------------
# As lambdas/rds_drill.py: the leftovers are found by their tags (tag:GetResources) and, for given drills, by the
# names their copies have, then read and deleted by identifier. A copy's instances go first: AWS refuses to
# delete a cluster that still has instances.

_TAGGED_TYPES = {"cluster": "rds:cluster", "cluster-snapshot": "rds:cluster-snapshot"}


def _named(drills: dict[str, Any], dr_clusters: list[str] | None) -> list[str]:
    ids = [i for i in drills.get("ids") or [] if drill.is_drill_id(i)] if "ids" in drills else []
    return sorted({clone_name(c, i) for c in dr_clusters or [] if c for i in ids})


def remove_clones(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None,
                  dr_clusters: list[str] | None, attempt: int, before: list[dict[str, Any]] | None) -> dict[str, Any]:
    rds = client("rds", region)
    keep = {p.lower() for p in protected or [] if p}
    found = tagged_drill_resources(region, plan, drills, keep, _TAGGED_TYPES)
    for name in _named(drills, dr_clusters):
        for kind in found:
            found[kind].setdefault(name.lower(), name)
    deleted: list[dict[str, Any]] = []
    remaining: list[str] = []
    for name in sorted(found["cluster"].values()):
        cluster = describe_cluster(rds, name)
        if cluster is None:
            continue
        ident = cluster["DBClusterIdentifier"]
        owner = drill.owner(ident, cluster.get("TagList"), plan, drills, keep)
        if not owner:
            continue
        if cluster.get("Status") == "deleting":
            remaining.append(ident)
            continue
        busy = False
        for inst in member_names(cluster):
            if inst.lower() in keep:
                busy = True
                continue
            db = describe_instance(rds, inst)
            if db is None:
                continue
            if db.get("DBInstanceStatus") == "deleting":
                busy = True
                continue
            try:
                rds.delete_db_instance(DBInstanceIdentifier=inst, SkipFinalSnapshot=True)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code in INSTANCE_NOT_FOUND:
                    continue
                if code in ("InvalidDBInstanceState", "InvalidDBInstanceStateFault"):
                    busy = True
                    continue
                raise_mapped(exc, f"delete drill DB instance {inst}")
            deleted.append({"kind": "db_instance", "id": inst, "drill": owner})
            busy = True
        if busy and member_names(require_cluster(rds, ident, region)):
            remaining.append(ident)  # the cluster goes once its instances are gone
            continue
        try:
            out = rds.delete_db_cluster(DBClusterIdentifier=ident, SkipFinalSnapshot=True)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in NOT_FOUND:
                continue
            if code in ("InvalidDBClusterStateFault", "InvalidDBClusterState"):
                remaining.append(ident)
                continue
            raise_mapped(exc, f"delete drill DB cluster {ident}")
        deleted.append({"kind": "db_cluster", "id": ident, "drill": owner})
        if (out.get("DBCluster") or {}).get("Status", "deleting") == "deleting":
            remaining.append(ident)
    for name in sorted(found["cluster-snapshot"].values()):
        snap = describe_cluster_snapshot(rds, name)
        if snap is None or snap.get("SnapshotType", "manual") != "manual":
            continue
        ident = snap["DBClusterSnapshotIdentifier"]
        owner = drill.owner(ident, snap.get("TagList"), plan, drills, keep)
        if not owner:
            continue
        if snap.get("Status") not in ("available", "failed"):
            remaining.append(ident)
            continue
        try:
            rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=ident)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("DBClusterSnapshotNotFoundFault",):
                continue
            if code in ("InvalidDBClusterSnapshotStateFault",):
                remaining.append(ident)
                continue
            raise_mapped(exc, f"delete drill cluster snapshot {ident}")
        deleted.append({"kind": "db_cluster_snapshot", "id": ident, "drill": owner})
    remaining = sorted(set(remaining))
    return {"done": not remaining, "attempt": attempt, "deleted": [*(before or []), *deleted], "deleted_now": deleted,
            "remaining": remaining, "left": len(remaining)}
