"""Aurora Global Database switchover, failover, detaching and lag metrics, which moto 5.2 lacks or gets wrong.

moto 5.2 keeps global clusters (in its us-east-1 backend, visible from every region) and adds a cluster
created with ``GlobalClusterIdentifier`` as a member (the first one the writer). What this module adds:

- **SwitchoverGlobalCluster** and **FailoverGlobalCluster** (moto: not implemented). The request is
  checked as Aurora checks it (unknown global cluster: ``GlobalClusterNotFoundFault``; unknown target
  cluster: ``DBClusterNotFoundFault``; a target that is not a secondary of this global cluster, or an
  operation already under way: ``InvalidGlobalClusterStateFault``; a target without a DB instance to
  become the writer: ``InvalidDBClusterStateFault``; ``AllowDataLoss`` together with ``Switchover``:
  ``InvalidParameterCombination``). It is answered with the global cluster as it is then. While the
  operation runs (``rds.global_switchover`` / ``rds.global_failover`` modeled seconds) the global
  cluster shows ``FailoverState`` (``pending`` for the first seconds, then ``switching-over`` or
  ``failing-over``; ``FromDbClusterArn``, ``ToDbClusterArn``, ``IsDataLossAllowed``) and the same
  status. When it ends the target is the writer (``IsWriter``) and the old writer a reader (secondary).
  A switchover synchronizes every secondary first (RPO 0). After a failover with data loss the old
  primary stays a member and is rebuilt as a secondary: ``SynchronizationStatus`` ``pending-resync``
  for one more failover duration, then ``connected`` (Aurora rebuilds it when its region is back; the
  sandbox has no regional outage of RDS, so it is back at once).
- **RemoveFromGlobalCluster**: moto only removes it from the calling region's view and leaves the
  cluster thinking it is a member (and read-only). Here a secondary is detached from any region and
  becomes a standalone, writable cluster (no ``GlobalClusterIdentifier``). The writer can only be
  removed as the last member (``InvalidGlobalClusterStateFault``), as in Aurora.
- **CreateGlobalCluster** from ``SourceDBClusterIdentifier``: moto leaves the source a non-writer with
  the global cluster's ARN as its ``GlobalClusterIdentifier``; here it is the writer, with the name.
- **DescribeGlobalClusters** answers only the named global cluster (``GlobalClusterNotFoundFault`` if
  none) and shows ``SynchronizationStatus`` for secondaries, except for one the latency model still holds
  ``creating`` (sandbox/latency.py ``rds.create_aurora_secondary``): it has none until it is available.
  Such a cluster, or one without an available DB instance, is refused as a switchover or failover target
  (``InvalidDBClusterStateFault``) and answers no lag metrics.
- **Write forwarding**: moto ignores ``ModifyDBCluster`` ``EnableGlobalWriteForwarding``. Here a secondary's
  request is kept: ``DescribeDBClusters`` shows ``GlobalWriteForwardingRequested`` and
  ``GlobalWriteForwardingStatus`` (``enabled`` at once: the ``enabling`` phase is not modeled; ``disabled``
  for a secondary without it), and so does the global cluster's member entry.
- **Clones** (``RestoreDBClusterToPointInTime`` ``RestoreType=copy-on-write``) and clusters restored from a
  snapshot (``RestoreDBClusterFromSnapshot``) of a global cluster's member: moto makes the new cluster a member
  of the global cluster too; here it is standalone and writable, as in Aurora. A clone of a cluster without a
  DB instance is refused (``InvalidDBClusterStateFault``: Aurora clones only a cluster with an instance), and
  restoring a snapshot of a secondary (created without a master password) no longer fails inside moto.
- **CloudWatch** ``AWS/RDS`` ``AuroraGlobalDBReplicationLag`` and ``AuroraGlobalDBRPOLag`` (dimension
  ``DBClusterIdentifier``, milliseconds) answer one datapoint per period of ``GetMetricStatistics``
  for a cluster that is a connected secondary now: a steady lag (``World.replication_lag_ms``,
  ``World.rpo_lag_ms``, or a per-cluster override). Its history is not kept: a former secondary has none.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from botocore.utils import parse_timestamp
from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

# Seconds an operation shows ``pending`` (the clusters are being verified) before it switches/fails over.
PENDING_SECONDS = 5.0
_LAG_METRICS = {"AuroraGlobalDBReplicationLag", "AuroraGlobalDBRPOLag"}


@dataclass
class Operation:
    kind: str  # "switchover" | "failover"
    from_arn: str
    to_arn: str
    start: float
    until: float
    data_loss: bool


@dataclass
class World:
    latency: Any = None  # sandbox.latency.LatencyModel (None: operations take no modeled time)
    replication_lag_ms: float = 80.0
    rpo_lag_ms: float = 80.0
    lag_overrides: dict[tuple[str, str], float] = field(default_factory=dict)  # (metric, cluster id) -> ms
    operations: dict[str, Operation] = field(default_factory=dict)  # global cluster id -> operation under way
    resync: dict[str, float] = field(default_factory=dict)  # cluster ARN -> when it is connected again
    write_forwarding: set[str] = field(default_factory=set)  # ARNs of secondaries that asked for it
    lock: threading.RLock = field(default_factory=threading.RLock)

    def creating(self, cluster: Any) -> bool:
        """The cluster is still being created (the latency model holds it ``creating``)."""
        return self.latency is not None and self.latency.cluster_busy(cluster.region,
                                                                      cluster.db_cluster_identifier) is not None

    def available_instances(self, cluster: Any) -> list[Any]:
        """The cluster's DB instances that are available (none the latency model still holds)."""
        if self.latency is None:
            return _instances(cluster)
        return [db for db in _instances(cluster)
                if self.latency.busy(("rds", cluster.region, db.db_instance_identifier)) is None]

    def seconds(self, kind: str) -> float:
        if self.latency is None:
            return 0.0
        return float(self.latency.delay(kind)()) + (self.latency.skew if self.latency.enabled else 0.0)

    # -- state ---------------------------------------------------------------------------------
    def settle(self) -> None:
        """Finish the operations whose modeled time has passed (in moto's model)."""
        now = clock.now()
        with self.lock:
            for ident, op in list(self.operations.items()):
                if op.until > now:
                    continue
                del self.operations[ident]
                gc = _global_clusters().get(ident)
                if gc is None:
                    continue
                for member in gc.members:
                    member.is_writer = member.db_cluster_arn == op.to_arn
                if op.data_loss:
                    self.resync[op.from_arn] = op.until + self.seconds("rds.global_failover")
            for arn, until in list(self.resync.items()):
                if until <= now:
                    del self.resync[arn]

    def doc(self, gc: Any) -> dict[str, Any]:
        """The global cluster as DescribeGlobalClusters answers it (botocore's shape)."""
        op = self.operations.get(gc.global_cluster_identifier)
        members = []
        for m in gc.members:
            entry: dict[str, Any] = {"DBClusterArn": m.db_cluster_arn, "IsWriter": bool(m.is_writer)}
            if m.is_writer:
                entry["Readers"] = [r.db_cluster_arn for r in gc.members if not r.is_writer]
            else:
                entry["Readers"] = []
                entry["GlobalWriteForwardingStatus"] = ("enabled" if m.db_cluster_arn in self.write_forwarding
                                                        else "disabled")
                if m.db_cluster_arn in self.resync:
                    entry["SynchronizationStatus"] = "pending-resync"
                elif not self.creating(m):
                    # A secondary being created has no synchronization status yet (botocore's enum has only
                    # connected and pending-resync); it is connected once available.
                    entry["SynchronizationStatus"] = "connected"
            members.append(entry)
        out: dict[str, Any] = {
            "GlobalClusterIdentifier": gc.global_cluster_identifier,
            "GlobalClusterResourceId": gc.global_cluster_resource_id,
            "GlobalClusterArn": gc.global_cluster_arn,
            "Status": gc.status,
            "Engine": gc.engine,
            "EngineVersion": gc.engine_version,
            "StorageEncrypted": bool(gc.storage_encrypted),
            "DeletionProtection": bool(gc.deletion_protection),
            "GlobalClusterMembers": members,
            "Endpoint": gc.endpoint,
        }
        if op is not None:
            status = _op_status(op)
            out["Status"] = status
            out["FailoverState"] = {"Status": status, "FromDbClusterArn": op.from_arn, "ToDbClusterArn": op.to_arn,
                                    "IsDataLossAllowed": op.data_loss}
        return out

    # -- handlers ------------------------------------------------------------------------------
    def before_any(self, **_: Any) -> None:
        self.settle()

    def _begin(self, context: dict[str, Any], kind: str, data_loss: bool) -> Any:
        found = _named(context, "TargetDbClusterIdentifier")
        if not isinstance(found, _Named):
            return found  # the error answer
        ident, gc, target = found
        with self.lock:
            if ident in self.operations:
                return responses.error("InvalidGlobalClusterStateFault",
                                       f"Global cluster {ident} is already in a switchover or failover operation.")
            writer = next((m for m in gc.members if m.is_writer), None)
            if target not in gc.members or target is writer:
                return responses.error(
                    "InvalidGlobalClusterStateFault",
                    f"The cluster {target.db_cluster_arn} is not a secondary cluster of global cluster {ident}.")
            if self.creating(target):
                return responses.error(
                    "InvalidDBClusterStateFault",
                    f"The cluster {target.db_cluster_arn} is not available (it is creating).")
            if not self.available_instances(target):
                return responses.error(
                    "InvalidDBClusterStateFault",
                    f"The cluster {target.db_cluster_arn} has no available DB instance to promote to the writer.")
            now = clock.now()
            seconds = self.seconds("rds.global_failover" if kind == "failover" else "rds.global_switchover")
            op = Operation(kind, writer.db_cluster_arn if writer is not None else "", target.db_cluster_arn, now,
                           now + seconds, data_loss)
            self.operations[ident] = op
            if self.latency is not None and seconds > 0:
                self.latency.phases.append(_phase(ident, op))
            self.settle()  # a zero-length operation (latency off) is done at once
            return responses.ok({"GlobalCluster": self.doc(gc)})

    def before_switchover(self, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        return self._begin(context, "switchover", False)

    def before_failover(self, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        p = responses.api_params(context)
        allow, switchover = p.get("AllowDataLoss"), p.get("Switchover")
        if allow and switchover:
            return responses.error("InvalidParameterCombination",
                                   "Specify either AllowDataLoss or Switchover, not both.")
        return self._begin(context, "failover" if allow else "switchover", bool(allow))

    def before_remove(self, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        found = _named(context, "DbClusterIdentifier")
        if not isinstance(found, _Named):
            return found  # the error answer
        ident, gc, cluster = found
        with self.lock:
            if cluster not in gc.members:
                return responses.error(
                    "InvalidGlobalClusterStateFault",
                    f"The cluster {cluster.db_cluster_arn} is not a member of global cluster {ident}.")
            if ident in self.operations:
                return responses.error("InvalidGlobalClusterStateFault",
                                       f"Global cluster {ident} is in a switchover or failover operation.")
            if cluster.is_writer and len(gc.members) > 1:
                return responses.error(
                    "InvalidGlobalClusterStateFault",
                    f"The primary cluster {cluster.db_cluster_arn} can be removed only after every secondary.")
            gc.members.remove(cluster)
            cluster.global_cluster_identifier = None
            cluster.is_writer = True  # a standalone cluster: its writer instance takes writes
            self.resync.pop(cluster.db_cluster_arn, None)
            return responses.ok({"GlobalCluster": self.doc(gc)})

    def before_describe(self, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        ident = str(responses.api_params(context).get("GlobalClusterIdentifier") or "").lower()
        if ident and ident not in _global_clusters():
            return _not_found(ident)
        return None

    def after_describe(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        ident = str(responses.api_params(context).get("GlobalClusterIdentifier") or "").lower()
        with self.lock:
            parsed["GlobalClusters"] = [self.doc(gc) for name, gc in _global_clusters().items()
                                        if not ident or name.lower() == ident]

    def after_create_global(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                            **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        ident = str(p.get("GlobalClusterIdentifier", "")).lower()
        gc = _global_clusters().get(ident)
        if gc is None or not p.get("SourceDBClusterIdentifier"):
            return
        for member in gc.members:
            member.global_cluster_identifier = gc.global_cluster_identifier
        if gc.members and not any(m.is_writer for m in gc.members):
            gc.members[0].is_writer = True
        parsed["GlobalCluster"] = self.doc(gc)

    def after_get_metric_statistics(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                                    **_: Any) -> None:
        p = responses.api_params(context)
        if http_response.status_code >= 300 or parsed.get("Datapoints"):
            return
        if p.get("Namespace") != "AWS/RDS" or p.get("MetricName") not in _LAG_METRICS:
            return
        self.settle()
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions") or []}
        cluster = _cluster(str(dims.get("DBClusterIdentifier", "")), context.get("client_region", ""))
        if cluster is None or not self.connected_secondary(cluster):
            return
        metric = str(p["MetricName"])
        default = self.replication_lag_ms if metric == "AuroraGlobalDBReplicationLag" else self.rpo_lag_ms
        value = float(self.lag_overrides.get((metric, cluster.db_cluster_identifier), default))
        start, end = _time(p.get("StartTime")), min(_time(p.get("EndTime")), clock.now())
        period = max(int(p.get("Period") or 60), 1)
        points = []
        at = start
        while at < end and len(points) < 1440:
            point: dict[str, Any] = {"Timestamp": dt.datetime.fromtimestamp(at, dt.UTC), "Unit": "Milliseconds"}
            for stat in p.get("Statistics") or ["Average"]:
                point[stat] = value if stat != "SampleCount" else float(max(period // 60, 1))
            points.append(point)
            at += period
        parsed["Datapoints"] = points
        parsed["Label"] = metric

    # -- write forwarding, clones and restores (moto: ignored / made members of the global cluster) ----
    def after_modify_cluster(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                             **_: Any) -> None:
        p = responses.api_params(context)
        if http_response.status_code >= 300 or "EnableGlobalWriteForwarding" not in p:
            return
        cluster = _cluster(str(p.get("DBClusterIdentifier", "")), context.get("client_region", ""))
        if cluster is None:
            return
        with self.lock:
            if p["EnableGlobalWriteForwarding"]:
                self.write_forwarding.add(cluster.db_cluster_arn)
            else:
                self.write_forwarding.discard(cluster.db_cluster_arn)
            cluster._global_write_forwarding_requested = bool(p["EnableGlobalWriteForwarding"])
        self._show_forwarding(parsed.get("DBCluster") or {})

    def _show_forwarding(self, doc: dict[str, Any]) -> None:
        arn = doc.get("DBClusterArn")
        if not arn or not doc.get("GlobalClusterIdentifier"):
            doc.pop("GlobalWriteForwardingStatus", None)
            return
        cluster = _cluster(arn, "")
        if cluster is None or cluster.is_writer:
            doc.pop("GlobalWriteForwardingStatus", None)
            return
        on = arn in self.write_forwarding
        doc["GlobalWriteForwardingStatus"] = "enabled" if on else "disabled"
        doc["GlobalWriteForwardingRequested"] = on

    def after_describe_clusters(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        with self.lock:
            for doc in parsed.get("DBClusters") or []:
                self._show_forwarding(doc)

    def before_clone(self, context: dict[str, Any], **_: Any) -> Any:
        self.settle()
        p = responses.api_params(context)
        if p.get("RestoreType") != "copy-on-write":
            return None
        source = _cluster(str(p.get("SourceDBClusterIdentifier", "")), context.get("client_region", ""))
        if source is not None and not _instances(source):
            return responses.error(
                "InvalidDBClusterStateFault",
                f"Cannot clone DB cluster {source.db_cluster_identifier}: it has no DB instance.")
        return None

    def before_restore_snapshot(self, context: dict[str, Any], **_: Any) -> None:
        # moto copies the source cluster's settings, and a secondary has no master password to copy.
        from moto.rds.models import DBCluster

        p = responses.api_params(context)
        backend = _rds()[context.get("client_region", "")]
        snap = backend.cluster_snapshots.get(str(p.get("SnapshotIdentifier", "")))
        source = getattr(snap, "cluster", None)
        if isinstance(source, DBCluster):
            source.__dict__.setdefault("_master_user_password", None)

    def after_restore(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """A clone or a restored cluster is standalone and writable, never a member of the source's global cluster."""
        if http_response.status_code >= 300:
            return
        doc = parsed.get("DBCluster") or {}
        cluster = _cluster(str(doc.get("DBClusterArn", "")), "")
        if cluster is None:
            return
        with self.lock:
            for gc in _global_clusters().values():
                if cluster in gc.members:
                    gc.members.remove(cluster)
            cluster.global_cluster_identifier = None
            cluster.is_writer = True
            cluster._global_write_forwarding_requested = False
        doc.pop("GlobalClusterIdentifier", None)
        doc.pop("GlobalWriteForwardingStatus", None)

    def connected_secondary(self, cluster: Any) -> bool:
        with self.lock:
            if cluster.db_cluster_arn in self.resync or cluster.is_writer or self.creating(cluster):
                return False
            return any(cluster in gc.members for gc in _global_clusters().values())


def _op_status(op: Operation) -> str:
    if clock.now() < op.start + min(PENDING_SECONDS, (op.until - op.start) / 2):
        return "pending"
    return "failing-over" if op.data_loss else "switching-over"


def _phase(ident: str, op: Operation) -> Any:
    from sandbox.latency import Phase

    return Phase(("rds", "global", ident), f"rds.global_{op.kind}",
                 "failing-over" if op.data_loss else "switching-over", op.start, op.until)


class _Named(NamedTuple):
    ident: str
    global_cluster: Any
    cluster: Any


def _named(context: dict[str, Any], cluster_param: str) -> Any:
    """The global cluster and DB cluster a request names, or the error AWS answers when one is missing."""
    p = responses.api_params(context)
    ident = str(p.get("GlobalClusterIdentifier", "")).lower()
    gc = _global_clusters().get(ident)
    if gc is None:
        return _not_found(ident)
    cluster_id = str(p.get(cluster_param, ""))
    cluster = _cluster(cluster_id, context.get("client_region", ""))
    if cluster is None:
        return responses.error("DBClusterNotFoundFault", f"DBCluster {cluster_id} not found.", 404)
    return _Named(ident, gc, cluster)


def _not_found(ident: str) -> Any:
    return responses.error("GlobalClusterNotFoundFault", f"Global cluster {ident} not found.", 404)


def _time(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return parse_timestamp(value).timestamp()


def _rds() -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[DEFAULT_ACCOUNT_ID]


def _global_clusters() -> Any:
    # moto keeps every global cluster in its us-east-1 backend (moto/rds/responses.py, global_backend).
    return _rds()["us-east-1"].global_clusters


def _cluster(ident: str, region: str) -> Any:
    """The DB cluster named by ARN (any region) or by identifier (the calling region)."""
    if ident.startswith("arn:"):
        parts = ident.split(":")
        if len(parts) < 7 or parts[5] != "cluster":
            return None
        region, ident = parts[3], parts[6]
    if not region or not ident:
        return None
    return _rds()[region].clusters.get(ident.lower())


def _instances(cluster: Any) -> list[Any]:
    backend = _rds()[cluster.region]
    return [db for db in backend.databases.values()
            if (getattr(db, "db_cluster_identifier", None) or "").lower() == cluster.db_cluster_identifier]


_world: World | None = None


def handlers(w: World) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for op in ("SwitchoverGlobalCluster", "FailoverGlobalCluster", "RemoveFromGlobalCluster",
               "DescribeGlobalClusters", "CreateGlobalCluster", "ModifyDBCluster", "RestoreDBClusterToPointInTime",
               "RestoreDBClusterFromSnapshot"):
        out.append((f"before-parameter-build.rds.{op}", responses.stash_api_params))
    out += [
        ("before-parameter-build.cloudwatch.GetMetricStatistics", responses.stash_api_params),
        ("before-call.rds.SwitchoverGlobalCluster", w.before_switchover),
        ("before-call.rds.FailoverGlobalCluster", w.before_failover),
        ("before-call.rds.RemoveFromGlobalCluster", w.before_remove),
        ("before-call.rds.DescribeGlobalClusters", w.before_describe),
        ("after-call.rds.DescribeGlobalClusters", w.after_describe),
        ("after-call.rds.CreateGlobalCluster", w.after_create_global),
        ("before-call.rds.DescribeDBClusters", w.before_any),
        ("before-call.rds.DescribeDBInstances", w.before_any),
        ("before-call.rds.DeleteDBCluster", w.before_any),
        ("after-call.cloudwatch.GetMetricStatistics", w.after_get_metric_statistics),
        ("after-call.rds.ModifyDBCluster", w.after_modify_cluster),
        ("after-call.rds.DescribeDBClusters", w.after_describe_clusters),
        ("before-call.rds.RestoreDBClusterToPointInTime", w.before_clone),
        ("after-call.rds.RestoreDBClusterToPointInTime", w.after_restore),
        ("before-call.rds.RestoreDBClusterFromSnapshot", w.before_restore_snapshot),
        ("after-call.rds.RestoreDBClusterFromSnapshot", w.after_restore),
    ]
    return out


def install(events: Any, latency: Any = None) -> World:
    global _world
    _world = World(latency=latency)
    responses.hook(events, handlers(_world), "aurora")
    return _world


def uninstall(events: Any) -> None:
    if _world is None:
        return
    responses.unhook(events, handlers(_world), "aurora")
