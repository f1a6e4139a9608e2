"""Aurora Global Database steps: keep the DR cluster a secondary of the global cluster (replicate), move the
writer to it (failover), harden it, and make and remove the isolated copies a drill rehearses on.

The plan's database (``kind: aurora-global``) has a global cluster, a primary (writer) cluster in the
primary region and a secondary cluster in the DR region (``dr_cluster``). Every action reads the current
state first, so a retried or re-run step converges instead of failing on "already done".

Cluster instances are named ``<dr_cluster>-<n>`` (``-1`` the writer the pilot light keeps, or that the
failover adds to a headless secondary). A drill's copy of the DR cluster is ``<dr_cluster>-drill-<id>``
(cut so that its instance ``<copy>-1`` still fits RDS's 63 characters), tagged with the drill and the plan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from lambdas import rds as rds_steps
from lambdas.aurora_cluster import AVAILABLE as AVAILABLE
from lambdas.aurora_cluster import (
    FAILED,
    available_instances,
    create_instance,
    member_names,
    writer_of,
)
from lambdas.aurora_cluster import cluster_facts as cluster_facts
from lambdas.aurora_cluster import describe_cluster as describe_cluster
from lambdas.aurora_cluster import describe_global as describe_global
from lambdas.aurora_cluster import instances as instances
from lambdas.aurora_cluster import member as member
from lambdas.aurora_cluster import next_instance_name as next_instance_name
from lambdas.aurora_cluster import require_cluster as require_cluster
from lambdas.aurora_drill import CLONE_NAME_LIMIT as CLONE_NAME_LIMIT
from lambdas.aurora_drill import IDENTIFIER_LIMIT as IDENTIFIER_LIMIT
from lambdas.aurora_drill import INSTANCE_SUFFIX as INSTANCE_SUFFIX
from lambdas.aurora_drill import clone_name as clone_name
from lambdas.aurora_drill import describe_cluster_snapshot as describe_cluster_snapshot
from lambdas.aurora_drill import drill_clone, remove_clones
from lambdas.common import CONNECTION_ERRORS, Registry, aws_errors, client, raise_mapped
from lambdas.errors import PilotLightError, PreconditionFailed, ResourceNotReady

registry = Registry("aurora")
handler = registry.handler

# What a headless secondary costs at failover: creating its first instance (Aurora: about 10 minutes).
HEADLESS_RTO_NOTE = ("headless: the failover adds a DB instance to the DR cluster before it can take writes "
                     "(about 10 minutes more RTO)")
# Tags on what replicate creates (the DR cluster and its instances).
MANAGED_TAG = "pilotlight:global-cluster"


def _managed_tags(global_cluster: str) -> list[dict[str, str]]:
    return [{"Key": MANAGED_TAG, "Value": global_cluster}]


# -- replicate: keep the DR cluster a secondary of the global cluster ---------------------------------

_CLUSTER_READ = ["rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:DescribeGlobalClusters"]
_SECONDARY_PERMISSIONS = ["rds:CreateDBCluster", "rds:CreateDBInstance", "rds:ModifyDBCluster",
                          "rds:AddTagsToResource", "kms:CreateGrant", "kms:DescribeKey", *_CLUSTER_READ]
_SECONDARY_RESOURCES: dict[str, str | tuple[str, ...]] = {
    # The DR cluster joins the global cluster, in the plan's DR DB subnet group, with the default cluster
    # parameter group of its engine.
    "rds:CreateDBCluster": ("aurora_dr_cluster", "aurora_global_cluster", "aurora_subnet_group",
                            "aurora_parameter_group"),
    # Its instance <dr_cluster>-<n> (an Aurora instance also authorizes on its cluster).
    "rds:CreateDBInstance": ("aurora_dr_instance", "aurora_dr_cluster", "aurora_parameter_group"),
    "rds:ModifyDBCluster": "aurora_dr_cluster",
    "rds:AddTagsToResource": ("aurora_dr_cluster", "aurora_dr_instance"),
    # An encrypted global cluster: the DR cluster's storage is encrypted with the plan's DR-region key.
    "kms:CreateGrant": "aurora_dr_key",
    "kms:DescribeKey": "aurora_dr_key",
    "rds:DescribeDBClusters": "aurora_dr_cluster",
    "rds:DescribeDBInstances": "aurora_dr_instance",
    "rds:DescribeGlobalClusters": "aurora_global_cluster",
}


def _secondary_drift(cluster: dict[str, Any], global_cluster: str, gc: dict[str, Any] | None) -> list[str]:
    if gc is None:
        return [f"global cluster {global_cluster} does not exist"]
    entry = member(gc, cluster["DBClusterArn"])
    if entry is None or (cluster.get("GlobalClusterIdentifier") or "").lower() != global_cluster.lower():
        where = f"in {cluster['GlobalClusterIdentifier']}" if cluster.get("GlobalClusterIdentifier") else "standalone"
        return [f"{cluster['DBClusterIdentifier']} exists but is not a member of global cluster {global_cluster} "
                f"(it is {where}); "
                "an existing cluster cannot join a global cluster: delete or rename it (after keeping what you "
                "need of it) and run replicate again to create the secondary, or name another dr_cluster_identifier"]
    return []


@registry.action("ensure_secondary", permissions=_SECONDARY_PERMISSIONS, resource=_SECONDARY_RESOURCES)
def ensure_secondary(primary_region: str, region: str, global_cluster: str, identifier: str, dr_cluster: str,
                     engine: str, instance_class: str, headless: bool, write_forwarding: bool,
                     subnet_group: str, security_groups: list[str], kms_key_id: str | None = None) -> dict[str, Any]:
    """Create the DR cluster as a secondary of ``global_cluster`` when missing (and its instance, and write
    forwarding, once it is available: :func:`check_secondary` finishes what cannot be done yet).

    A cluster that exists under the name but is not a member is reported as ``drift`` (AWS cannot add an
    existing cluster to a global cluster) and left alone.
    """
    rds = client("rds", region)
    resource = f"aurora secondary {dr_cluster} ({region})"
    gc = describe_global(rds, global_cluster)
    if gc is None:
        raise PreconditionFailed(f"global cluster {global_cluster} does not exist; create it from {identifier} in "
                                 f"{primary_region} first (CreateGlobalCluster with SourceDBClusterIdentifier)")
    # A plan's deliberate choice, not drift: noted in the record (replicate's summary shows it), not flagged.
    notes = [HEADLESS_RTO_NOTE] if headless else []
    want = {"instance_class": instance_class, "headless": bool(headless), "write_forwarding": bool(write_forwarding)}
    cluster = describe_cluster(rds, dr_cluster)
    if cluster is None:
        params: dict[str, Any] = {
            "DBClusterIdentifier": dr_cluster, "GlobalClusterIdentifier": global_cluster,
            "Engine": gc.get("Engine") or engine, "EngineVersion": gc.get("EngineVersion"),
            "DBSubnetGroupName": subnet_group.lower(),  # RDS stores subnet group names lower-case
            "VpcSecurityGroupIds": list(security_groups), "Tags": _managed_tags(global_cluster),
        }
        if not params["EngineVersion"]:
            params.pop("EngineVersion")
        if gc.get("StorageEncrypted"):
            if not kms_key_id:
                raise PreconditionFailed(f"global cluster {global_cluster} is encrypted; a KMS key in {region} is "
                                         f"needed for {dr_cluster} (dr_kms_key_id)")
            params.update(KmsKeyId=kms_key_id, StorageEncrypted=True)
        elif kms_key_id:
            params["KmsKeyId"] = kms_key_id
        try:
            out = rds.create_db_cluster(**params)["DBCluster"]
        except ClientError as exc:
            raise_mapped(exc, f"create secondary cluster {dr_cluster} of {global_cluster}")
        changes = [f"created {dr_cluster} in {global_cluster}"]
        if not headless:
            changes.append(f"{dr_cluster}-1 ({instance_class}) once the cluster is available")
        if write_forwarding:
            changes.append("write forwarding once the cluster is available")
        record = {"resource": resource, "status": "created", "changes": changes, "notes": notes, "want": want}
        return {"done": False, "attempt": 0, "cluster": cluster_facts(out), "record": record}
    drift = _secondary_drift(cluster, global_cluster, gc)
    if drift:
        record = {"resource": resource, "status": "drift", "drift": drift, "changes": [], "notes": notes,
                  "want": want}
        return {"done": True, "attempt": 0, "cluster": cluster_facts(cluster), "record": record}
    changes = _converge_secondary(rds, cluster, global_cluster, want)
    record = {"resource": resource, "status": "updated" if changes else "unchanged", "changes": changes,
              "notes": notes, "want": want}
    drift = rds_steps.network_drift({"DBSubnetGroup": {"DBSubnetGroupName": cluster.get("DBSubnetGroup")},
                                     "VpcSecurityGroups": cluster.get("VpcSecurityGroups")},
                                    subnet_group, security_groups)
    if drift:
        # Where it runs is fixed at creation: reported, not changed (as lambdas/rds.py ensure_replica does).
        record.update(status="drift", drift=drift)
    found = instances(rds, cluster)
    done = _secondary_ready(cluster, gc, found, want)
    return {"done": done and not changes, "attempt": 0, "cluster": cluster_facts(cluster, found), "record": record}


def _converge_secondary(rds: Any, cluster: dict[str, Any], global_cluster: str, want: dict[str, Any]) -> list[str]:
    """Add what the available secondary lacks (an instance, write forwarding); the changes made."""
    if cluster.get("Status") != AVAILABLE:
        return []
    changes = []
    names = member_names(cluster)
    if not want.get("headless") and not names and want.get("instance_class"):
        name = next_instance_name(cluster["DBClusterIdentifier"], names)
        create_instance(rds, cluster, name, want["instance_class"], _managed_tags(global_cluster))
        changes.append(f"created instance {name} ({want['instance_class']})")
    if want.get("write_forwarding") and cluster.get("GlobalWriteForwardingStatus") not in ("enabled", "enabling"):
        with aws_errors(f"enable write forwarding on {cluster['DBClusterIdentifier']}"):
            rds.modify_db_cluster(DBClusterIdentifier=cluster["DBClusterIdentifier"], EnableGlobalWriteForwarding=True)
        changes.append("enabled write forwarding")
    return changes


def _secondary_ready(cluster: dict[str, Any], gc: dict[str, Any] | None, found: list[dict[str, Any]],
                     want: dict[str, Any]) -> bool:
    entry = member(gc, cluster["DBClusterArn"])
    connected = entry is not None and (entry.get("IsWriter") or entry.get("SynchronizationStatus",
                                                                          "connected") == "connected")
    ready = cluster.get("Status") == AVAILABLE and connected
    if not want.get("headless"):
        ready = ready and bool(available_instances(found))
    if want.get("write_forwarding"):
        ready = ready and cluster.get("GlobalWriteForwardingStatus") == "enabled"
    return ready


@registry.action("check_secondary", permissions=_SECONDARY_PERMISSIONS, resource=_SECONDARY_RESOURCES)
def check_secondary(region: str, global_cluster: str, dr_cluster: str, record: dict[str, Any] | None = None,
                    attempt: int = 0, headless: bool = False, instance_class: str | None = None,
                    write_forwarding: bool | None = None) -> dict[str, Any]:
    """Done when the DR cluster is available, a connected member of the global cluster and (unless headless)
    has an available instance (and write forwarding on when wanted). What :func:`ensure_secondary` could not
    do while the cluster was being created (its instance, write forwarding) is done here once it is available.
    A cluster in drift is not waited for: the record says why."""
    record = dict(record or {})
    recorded = record.get("want") or {}
    want = {**recorded, "headless": bool(headless) or bool(recorded.get("headless"))}
    if instance_class:
        want["instance_class"] = instance_class
    if write_forwarding is not None:
        want["write_forwarding"] = bool(write_forwarding)
    rds = client("rds", region)
    cluster = require_cluster(rds, dr_cluster, region)
    if record.get("status") == "drift":
        return {"done": True, "attempt": attempt + 1, "cluster": cluster_facts(cluster), "record": record}
    if cluster.get("Status") in FAILED:
        raise PreconditionFailed(f"DR cluster {dr_cluster} is {cluster.get('Status')}; it will not become available")
    gc = describe_global(rds, global_cluster)
    changes = _converge_secondary(rds, cluster, global_cluster, want)
    if changes:
        record["changes"] = [*(record.get("changes") or []), *changes]
        if record.get("status") == "unchanged":
            record["status"] = "updated"
    found = instances(rds, cluster)
    done = not changes and _secondary_ready(cluster, gc, found, want)
    return {"done": done, "attempt": attempt + 1, "cluster": cluster_facts(cluster, found), "record": record}


_LAG_METRICS = ("AuroraGlobalDBRPOLag", "AuroraGlobalDBReplicationLag")


def _lag_points(region: str, dr_cluster: str) -> tuple[str | None, list[dict[str, Any]]]:
    cw = client("cloudwatch", region)
    end = dt.datetime.now(dt.UTC)
    for metric in _LAG_METRICS:
        with aws_errors(f"read {metric} of {dr_cluster}"):
            points = cw.get_metric_statistics(
                Namespace="AWS/RDS", MetricName=metric,
                Dimensions=[{"Name": "DBClusterIdentifier", "Value": dr_cluster}],
                StartTime=end - dt.timedelta(minutes=5), EndTime=end, Period=60, Statistics=["Maximum"],
            )["Datapoints"]
        if points:
            return metric, points
    return None, []


@registry.action("global_lag", permissions=["cloudwatch:GetMetricStatistics"], resource="*")
def global_lag(region: str, dr_cluster: str, rpo_minutes: int) -> dict[str, Any]:
    """The secondary's lag behind the primary against the plan's RPO: CloudWatch ``AuroraGlobalDBRPOLag``
    (``AuroraGlobalDBReplicationLag`` when there is none; milliseconds), worst of the last 5 minutes, in seconds.
    Same answer as lambdas/rds.py ``replica_lag``."""
    metric, points = _lag_points(region, dr_cluster)
    resource = f"global lag {dr_cluster} ({region})"
    rpo = rpo_minutes * 60
    if not points:
        record = {"resource": resource, "status": "unknown", "lag_seconds": None, "rpo_seconds": rpo}
        return {"identifier": dr_cluster, "lag_seconds": None, "rpo_seconds": rpo, "status": "UNKNOWN",
                "record": record}
    lag = max(p["Maximum"] for p in points) / 1000.0
    ok = lag <= rpo
    record = {"resource": resource, "status": "verified" if ok else "drift", "lag_seconds": lag, "rpo_seconds": rpo,
              "metric": metric}
    return {"identifier": dr_cluster, "lag_seconds": lag, "rpo_seconds": rpo,
            "status": "WITHIN_RPO" if ok else "ABOVE_RPO", "record": record, "metric": metric}


# -- failover: move the writer to the DR cluster --------------------------------------------------------

_FAILOVER_READ = {"rds:DescribeDBClusters": ("aurora_dr_cluster", "aurora_primary_cluster"),
                  "rds:DescribeDBInstances": "aurora_dr_instance",
                  "rds:DescribeGlobalClusters": "aurora_global_cluster"}


@registry.action("choose_mode", permissions=_CLUSTER_READ, resource=_FAILOVER_READ)
def choose_mode(primary_region: str, region: str, global_cluster: str, identifier: str, dr_cluster: str,
                mode: str = "auto") -> dict[str, Any]:
    """``graceful`` (a switchover, RPO 0) when the primary region answers and its cluster and the global cluster
    are available, else ``ungraceful``. A forced mode is kept (a graceful switchover without the primary
    fails with AWS's own error at the switch)."""
    if mode not in ("auto", "graceful", "ungraceful"):
        raise PreconditionFailed(f"mode must be auto, graceful or ungraceful, not {mode!r}")
    answered, reason = False, ""
    try:
        primary = describe_cluster(client("rds", primary_region, fast=True), identifier)
        answered = True
        if primary is None:
            reason = f"primary cluster {identifier} does not exist in {primary_region}"
        elif primary.get("Status") != AVAILABLE:
            reason = f"primary cluster {identifier} in {primary_region} is {primary.get('Status')}"
    except Exception as exc:  # noqa: BLE001 - any failure to answer means the primary region is not usable
        why = str(exc) if isinstance(exc, PilotLightError) else f"{type(exc).__name__}: {exc}"
        reason = f"the primary region {primary_region} did not answer ({why})"
    if answered and not reason:
        gc = describe_global(client("rds", region), global_cluster)
        if gc is None:
            reason = f"global cluster {global_cluster} does not exist"
        elif gc.get("Status") != AVAILABLE:
            reason = f"global cluster {global_cluster} is {gc.get('Status')}"
        else:
            reason = (f"primary cluster {identifier} in {primary_region} and global cluster {global_cluster} are "
                      "available: a switchover loses no data")
    healthy = answered and reason.endswith("loses no data")
    chosen = mode if mode != "auto" else ("graceful" if healthy else "ungraceful")
    if mode != "auto":
        reason = f"{mode} asked for; " + reason
    return {"mode": chosen, "requested": mode, "reason": reason, "primary_answered": answered}


_WRITER_INSTANCE_PERMISSIONS = ["rds:CreateDBInstance", "rds:AddTagsToResource", "rds:DescribeDBClusters",
                                "rds:DescribeDBInstances"]
_WRITER_INSTANCE_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "rds:CreateDBInstance": ("aurora_dr_instance", "aurora_dr_cluster", "aurora_parameter_group"),
    "rds:AddTagsToResource": "aurora_dr_instance",
    "rds:DescribeDBClusters": "aurora_dr_cluster",
    "rds:DescribeDBInstances": "aurora_dr_instance",
}


def _writer_instance(region: str, dr_cluster: str, instance_class: str, attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    cluster = require_cluster(rds, dr_cluster, region)
    found = instances(rds, cluster)
    created = None
    if not found:
        if cluster.get("Status") != AVAILABLE:
            raise ResourceNotReady(f"DR cluster {dr_cluster} is {cluster.get('Status')}; no instance can be added yet")
        created = next_instance_name(dr_cluster, member_names(cluster))
        create_instance(rds, cluster, created, instance_class)
        found = instances(rds, require_cluster(rds, dr_cluster, region))
    done = bool(available_instances(found))
    return {"done": done, "attempt": attempt, "created": created, "cluster": cluster_facts(cluster, found)}


@registry.action("ensure_writer_instance", permissions=_WRITER_INSTANCE_PERMISSIONS,
                 resource=_WRITER_INSTANCE_RESOURCES)
def ensure_writer_instance(region: str, dr_cluster: str, instance_class: str) -> dict[str, Any]:
    """Give a headless DR cluster its first instance (``<dr_cluster>-1``), which becomes its writer."""
    return _writer_instance(region, dr_cluster, instance_class, 0)


@registry.action("check_writer_instance", permissions=_WRITER_INSTANCE_PERMISSIONS,
                 resource=_WRITER_INSTANCE_RESOURCES)
def check_writer_instance(region: str, dr_cluster: str, instance_class: str, attempt: int = 0) -> dict[str, Any]:
    """Done when the DR cluster has an available instance."""
    return _writer_instance(region, dr_cluster, instance_class, attempt + 1)


_SWITCH_PERMISSIONS = ["rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster", "rds:RemoveFromGlobalCluster",
                       *_CLUSTER_READ]
_SWITCH_RESOURCES: dict[str, str | tuple[str, ...]] = {
    # The operations authorize on the global cluster and on the clusters whose roles change.
    "rds:SwitchoverGlobalCluster": ("aurora_global_cluster", "aurora_dr_cluster", "aurora_primary_cluster"),
    "rds:FailoverGlobalCluster": ("aurora_global_cluster", "aurora_dr_cluster", "aurora_primary_cluster"),
    "rds:RemoveFromGlobalCluster": ("aurora_global_cluster", "aurora_dr_cluster"),
    **_FAILOVER_READ,
}
# FailoverGlobalCluster refused because the global cluster cannot do it now: detach instead.
_UNUSABLE = ("InvalidGlobalClusterStateFault", "GlobalClusterNotFoundFault")


def _method_for(mode: str, ungraceful: str) -> str:
    if mode == "graceful":
        return "switchover"
    return "detach" if ungraceful == "detach" else "failover"


@registry.action("switch_writer", permissions=_SWITCH_PERMISSIONS, resource=_SWITCH_RESOURCES)
def switch_writer(region: str, global_cluster: str, dr_cluster: str, mode: str,
                  ungraceful: str = "failover") -> dict[str, Any]:
    """Make the DR cluster the writer: SwitchoverGlobalCluster (graceful), FailoverGlobalCluster with
    AllowDataLoss (ungraceful, ``failover``) or RemoveFromGlobalCluster (ungraceful, ``detach``; also when
    the global cluster refuses the failover). Nothing is done when it already is the writer or standalone,
    or when the operation is already under way (a re-run)."""
    rds = client("rds", region)
    cluster = require_cluster(rds, dr_cluster, region)
    arn = cluster["DBClusterArn"]
    method = _method_for(mode, ungraceful)
    base = {"attempt": 0, "global_cluster": global_cluster, "cluster": cluster_facts(cluster)}
    if not cluster.get("GlobalClusterIdentifier"):
        return {**base, "done": True, "method": "detach", "note": f"{dr_cluster} is already standalone"}
    gc = describe_global(rds, global_cluster)
    entry = member(gc, arn)
    state = (gc or {}).get("FailoverState") or {}
    if state.get("ToDbClusterArn") == arn:
        return {**base, "done": False, "method": "failover" if state.get("IsDataLossAllowed") else "switchover",
                "note": f"a {state.get('Status')} operation to {dr_cluster} is already under way"}
    if entry is not None and entry.get("IsWriter") and not state:
        return {**base, "done": True, "method": method, "note": f"{dr_cluster} is already the writer"}
    fallback = None
    if method == "switchover":
        with aws_errors(f"switch over {global_cluster} to {dr_cluster}"):
            rds.switchover_global_cluster(GlobalClusterIdentifier=global_cluster, TargetDbClusterIdentifier=arn)
    elif method == "failover":
        try:
            rds.failover_global_cluster(GlobalClusterIdentifier=global_cluster, TargetDbClusterIdentifier=arn,
                                        AllowDataLoss=True)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _UNUSABLE:
                raise_mapped(exc, f"fail over {global_cluster} to {dr_cluster}")
            fallback = (f"FailoverGlobalCluster refused ({exc.response['Error']['Code']}: "
                        f"{exc.response['Error'].get('Message', '')}); detaching {dr_cluster} instead")
            method = "detach"
        except CONNECTION_ERRORS as exc:
            raise_mapped(exc, f"fail over {global_cluster} to {dr_cluster}")
    if method == "detach":
        with aws_errors(f"detach {dr_cluster} from {global_cluster}"):
            rds.remove_from_global_cluster(GlobalClusterIdentifier=global_cluster, DbClusterIdentifier=arn)
    out = {**base, "done": False, "method": method}
    if fallback:
        out["fallback"] = fallback
    return out


def _old_primary(gc: dict[str, Any] | None, arn: str) -> dict[str, Any] | None:
    if not gc:
        return None
    state = gc.get("FailoverState") or {}
    others = [m for m in gc.get("GlobalClusterMembers") or [] if m.get("DBClusterArn") != arn]
    old = next((m for m in others if m.get("DBClusterArn") == state.get("FromDbClusterArn")), None)
    old = old or next((m for m in others if m.get("IsWriter")), None) or (others[0] if others else None)
    if old is None:
        return None
    return {"arn": old["DBClusterArn"], "is_writer": bool(old.get("IsWriter")),
            "synchronization_status": old.get("SynchronizationStatus")}


def _rpo(dr_cluster: str, method: str, rpo: Any) -> dict[str, Any]:
    measured = rpo.get("lag_seconds") if isinstance(rpo, dict) else None
    out: dict[str, Any] = {"identifier": dr_cluster, "measured_lag_seconds": measured,
                           "rpo_seconds": rpo.get("rpo_seconds") if isinstance(rpo, dict) else None,
                           "method": method}
    if isinstance(rpo, dict) and "Error" in rpo:
        out["error"] = f"{rpo.get('Error')}: {rpo.get('Cause')}"
    if method == "switchover":
        # A switchover synchronizes every secondary before the roles change: nothing is lost.
        out.update(lag_seconds=0, status="WITHIN_RPO")
    else:
        status = rpo.get("status") if isinstance(rpo, dict) and measured is not None else "UNKNOWN"
        out.update(lag_seconds=measured, status=status or "UNKNOWN")
    return out


@registry.action("check_writer", permissions=_CLUSTER_READ, resource=_FAILOVER_READ)
def check_writer(region: str, global_cluster: str, dr_cluster: str, method: str, rpo: Any = None,
                 attempt: int = 0) -> dict[str, Any]:
    """Done when the DR cluster is the writer of the global cluster with no operation under way (switchover,
    failover) or standalone and available (detach), and its writer instance is available. ``rpo`` is the
    ``global_lag`` answer read before the switch (or the error it failed with): the data a failover or a
    detach may have lost; a switchover loses none."""
    rds = client("rds", region)
    cluster = require_cluster(rds, dr_cluster, region)
    arn = cluster["DBClusterArn"]
    found = instances(rds, cluster)
    writer = writer_of(found)
    writer_ok = writer is not None and writer.get("DBInstanceStatus") == AVAILABLE
    old = None
    if not cluster.get("GlobalClusterIdentifier"):
        method = "detach"  # standalone: detached (asked for, or after a refused failover)
        done = cluster.get("Status") == AVAILABLE and writer_ok
    else:
        gc = describe_global(rds, global_cluster)
        entry = member(gc, arn)
        idle = not (gc or {}).get("FailoverState")
        done = bool(entry and entry.get("IsWriter")) and idle and cluster.get("Status") == AVAILABLE and writer_ok
        old = _old_primary(gc, arn)
    return {"done": done, "attempt": attempt + 1, "method": method, "cluster": cluster_facts(cluster, found),
            "old_primary": old, "rpo": _rpo(dr_cluster, method, rpo)}


# -- harden: the new writer's class, readers ----------------------------------------------------------

_HARDEN_PERMISSIONS = ["rds:ModifyDBInstance", "rds:CreateDBInstance", "rds:AddTagsToResource",
                       "rds:DescribeDBClusters", "rds:DescribeDBInstances"]
_HARDEN_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "rds:ModifyDBInstance": "aurora_dr_instance",
    **_WRITER_INSTANCE_RESOURCES,
}


def _resize(region: str, dr_cluster: str, instance_class: str | None, attempt: int) -> dict[str, Any]:
    if not instance_class:
        return {"done": True, "attempt": attempt, "modified_now": False, "skipped": "no failover_instance_class"}
    rds = client("rds", region)
    writer = writer_of(instances(rds, require_cluster(rds, dr_cluster, region)))
    if writer is None:
        raise PreconditionFailed(f"DR cluster {dr_cluster} has no DB instance to resize")
    # The writer is an instance like any other: resized as lambdas/rds.py converges an instance's class.
    out = rds_steps.converge(region, writer["DBInstanceIdentifier"], attempt, DBInstanceClass=instance_class)
    out["writer"] = out.pop("db")
    return out


@registry.action("resize_writer", permissions=_HARDEN_PERMISSIONS, resource=_HARDEN_RESOURCES)
def resize_writer(region: str, dr_cluster: str, instance_class: str | None = None) -> dict[str, Any]:
    """Resize the DR cluster's writer instance to the plan's failover class (none: done at once)."""
    return _resize(region, dr_cluster, instance_class, 0)


@registry.action("check_writer_resized", permissions=_HARDEN_PERMISSIONS, resource=_HARDEN_RESOURCES)
def check_writer_resized(region: str, dr_cluster: str, instance_class: str | None = None,
                         attempt: int = 0) -> dict[str, Any]:
    """Done when the writer is available with the class and nothing pending (resizes it if it was busy)."""
    return _resize(region, dr_cluster, instance_class, attempt + 1)


def _readers(region: str, dr_cluster: str, count: int, instance_class: str | None, attempt: int) -> dict[str, Any]:
    if not count:
        return {"done": True, "attempt": attempt, "created": [], "skipped": "no failover_readers"}
    rds = client("rds", region)
    cluster = require_cluster(rds, dr_cluster, region)
    found = instances(rds, cluster)
    writer = writer_of(found)
    if writer is None:
        raise PreconditionFailed(f"DR cluster {dr_cluster} has no writer instance to add readers to")
    created = []
    names = member_names(cluster)
    for _ in range(max(0, 1 + count - len(names))):
        name = next_instance_name(dr_cluster, names)
        create_instance(rds, cluster, name, instance_class or writer["DBInstanceClass"])
        names.append(name)
        created.append(name)
    if created:
        found = instances(rds, require_cluster(rds, dr_cluster, region))
    done = not created and len(found) >= 1 + count and len(available_instances(found)) == len(found)
    return {"done": done, "attempt": attempt, "created": created, "cluster": cluster_facts(cluster, found)}


@registry.action("add_readers", permissions=_HARDEN_PERMISSIONS, resource=_HARDEN_RESOURCES)
def add_readers(region: str, dr_cluster: str, count: int, instance_class: str | None = None) -> dict[str, Any]:
    """Add reader instances ``<dr_cluster>-<n>`` until the cluster has the writer and ``count`` readers."""
    return _readers(region, dr_cluster, count, instance_class, 0)


@registry.action("check_readers", permissions=_HARDEN_PERMISSIONS, resource=_HARDEN_RESOURCES)
def check_readers(region: str, dr_cluster: str, count: int, attempt: int = 0,
                  instance_class: str | None = None) -> dict[str, Any]:
    """Done when the cluster has 1 + ``count`` instances, all available (adds any still missing)."""
    return _readers(region, dr_cluster, count, instance_class, attempt + 1)


# -- drills: an isolated, writable copy of the DR cluster -----------------------------------------------
#
# A drill rehearses the failover on a copy of the live secondary, never on it: ``<dr_cluster>-drill-<id>``
# in the DR region, tagged with the drill and the plan, standalone and writable, with one instance.
#
# The copy is an Aurora clone (RestoreDBClusterToPointInTime with RestoreType copy-on-write): a new cluster
# sharing the source's storage pages, fast and cheap whatever the size, in the source's region. Aurora
# clones only a cluster that has at least one DB instance ("You can't create a clone from an Aurora DB
# cluster without DB instances": Aurora User Guide, "Limitations of Aurora cloning"); the cloning
# limitations do not exclude a global database's secondary (the clone is a standalone cluster, not a member).
# A headless secondary has no instance, so its copy is made the long way: a manual cluster snapshot
# (CreateDBClusterSnapshot) restored to the copy (RestoreDBClusterFromSnapshot) once available.
# The naming (:func:`clone_name`), the making and the teardown of the copies are in :mod:`lambdas.aurora_drill`.

_CLONE_PERMISSIONS = ["rds:RestoreDBClusterToPointInTime", "rds:CreateDBClusterSnapshot",
                      "rds:RestoreDBClusterFromSnapshot", "rds:CreateDBInstance", "rds:AddTagsToResource",
                      "rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:DescribeDBClusterSnapshots",
                      "rds:EnableHttpEndpoint", "kms:CreateGrant", "kms:DescribeKey"]
_CLONE_RESOURCES: dict[str, str | tuple[str, ...]] = {
    # The clone (new cluster) of the live DR cluster (its source, only read), in the plan's DR subnet group.
    "rds:RestoreDBClusterToPointInTime": ("aurora_drill_cluster", "aurora_dr_cluster", "aurora_subnet_group",
                                          "aurora_parameter_group"),
    # The snapshot path (a headless DR cluster): a manual snapshot of it, restored to the copy.
    "rds:CreateDBClusterSnapshot": ("aurora_drill_snapshot", "aurora_dr_cluster"),
    "rds:RestoreDBClusterFromSnapshot": ("aurora_drill_cluster", "aurora_drill_snapshot", "aurora_subnet_group",
                                         "aurora_parameter_group"),
    "rds:CreateDBInstance": ("aurora_drill_instance", "aurora_drill_cluster", "aurora_parameter_group"),
    "rds:AddTagsToResource": ("aurora_drill_cluster", "aurora_drill_instance", "aurora_drill_snapshot"),
    "rds:DescribeDBClusters": ("aurora_dr_cluster", "aurora_drill_cluster"),
    "rds:DescribeDBInstances": ("aurora_dr_instance", "aurora_drill_instance"),
    "rds:DescribeDBClusterSnapshots": "aurora_drill_snapshot",
    # The copy's RDS Data API, on when the live DR cluster's is (a clone does not inherit it).
    "rds:EnableHttpEndpoint": "aurora_drill_cluster",
    # An encrypted clone keeps the source's DR-region key (grants made as the caller).
    "kms:CreateGrant": "aurora_dr_key",
    "kms:DescribeKey": "aurora_dr_key",
}


@registry.action("create_drill_clone", permissions=_CLONE_PERMISSIONS, resource=_CLONE_RESOURCES)
def create_drill_clone(region: str, plan: str, drill_id: str, dr_cluster: str, instance_class: str | None,
                       subnet_group: str, security_groups: list[str]) -> dict[str, Any]:
    """Start the drill's copy of the live DR cluster (see above; idempotent). The copy is standalone and
    writable; its instance ``<copy>-1`` (``instance_class``, default the DR cluster's) is added once the copy
    is available. The live DR cluster is only read (and, when headless, snapshotted)."""
    return drill_clone(region, plan, drill_id, dr_cluster, instance_class, subnet_group, security_groups, 0)


@registry.action("check_drill_clone", permissions=_CLONE_PERMISSIONS, resource=_CLONE_RESOURCES)
def check_drill_clone(region: str, plan: str, drill_id: str, dr_cluster: str, instance_class: str | None,
                      subnet_group: str, security_groups: list[str], attempt: int = 0) -> dict[str, Any]:
    """Done when the copy and its instance are available; adds the instance (or restores the snapshot) when due."""
    return drill_clone(region, plan, drill_id, dr_cluster, instance_class, subnet_group, security_groups,
                       attempt + 1)


# -- drills: teardown ---------------------------------------------------------------------------------
# As lambdas/rds.py: found by their tags and names, read and deleted by identifier (lambdas/aurora_drill.py).

_REMOVE_PERMISSIONS = ["tag:GetResources", "rds:DeleteDBInstance", "rds:DeleteDBCluster",
                       "rds:DeleteDBClusterSnapshot", "rds:DescribeDBClusters", "rds:DescribeDBInstances",
                       "rds:DescribeDBClusterSnapshots"]
_REMOVE_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "tag:GetResources": "*",
    "rds:DeleteDBInstance": "aurora_drill_instance",
    "rds:DeleteDBCluster": "aurora_drill_cluster",
    "rds:DeleteDBClusterSnapshot": "aurora_drill_snapshot",
    "rds:DescribeDBClusters": "aurora_drill_cluster",
    "rds:DescribeDBInstances": "aurora_drill_instance",
    "rds:DescribeDBClusterSnapshots": "aurora_drill_snapshot",
}


@registry.action("remove_drill_clusters", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def remove_drill_clusters(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                          dr_clusters: list[str] | None = None) -> dict[str, Any]:
    """Delete every drill copy of ``plan``'s DR clusters in ``region`` whose drill is selected (its instances
    first, then the cluster, without a final snapshot) and the drill's cluster snapshots; a name in
    ``protected`` is never touched. Same rules and answer as lambdas/rds.py ``remove_drill_databases``."""
    return remove_clones(region, plan, drills, protected, dr_clusters, 0, None)


@registry.action("check_drill_clusters_removed", permissions=_REMOVE_PERMISSIONS, resource=_REMOVE_RESOURCES)
def check_drill_clusters_removed(region: str, plan: str, drills: dict[str, Any], protected: list[str] | None = None,
                                 dr_clusters: list[str] | None = None, deleted: list[dict[str, Any]] | None = None,
                                 attempt: int = 0) -> dict[str, Any]:
    """Done when no selected drill copy remains; deletes what could not be deleted before (a cluster whose
    instances were still deleting)."""
    return remove_clones(region, plan, drills, protected, dr_clusters, attempt + 1, deleted)
