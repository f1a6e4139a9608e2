"""The latency model: resources take the time AWS takes, in modeled time.

moto makes every resource ready at once. ``after-call`` handlers note when an operation starts a
long-running change; until its modeled duration has passed, ``Describe*`` answers show the
resource as AWS does meanwhile (status ``modifying``, old values, ``PendingModifiedValues``) and
conflicting calls are refused with ``InvalidDBInstanceState``. Durations are the published p50
(or p95) figures in docs/sandbox.md, in modeled seconds on the sandbox's virtual clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

# Modeled seconds per operation: (p50, p95).
DURATIONS: dict[str, tuple[float, float]] = {
    # One Task state's Lambda invocation: Step Functions schedules it, a warm function makes its
    # AWS calls and answers (a cold start is the p95). Every step costs this much modeled time.
    "lambda.invoke": (0.2, 1.0),
    "rds.promote": (300, 900),
    # The first automated backup after a promotion that enables backups (every read replica is created
    # with backups disabled: CreateDBInstanceReadReplica API reference). The instance shows
    # `backing-up` and serves meanwhile: storage I/O is suspended only "briefly while the backup process
    # initializes (typically under a few seconds)" (RDS User Guide, "Managing automated backups"). Its
    # duration "is a function of the amount of changes to the database since the previous backup"
    # (PromoteReadReplica API reference); with none before, it is a full snapshot ("The first snapshot
    # of a DB instance contains the data for the full database", RDS User Guide, "Introduction to
    # backups"). No figure is published: 10 min is our p50 for the reference's 100 GB, and 1 h the p95
    # (AWS's database blog on incremental snapshots: full backups of terabyte databases "could take
    # several hours").
    "rds.first_backup": (600, 3600),
    "rds.multi_az": (900, 2400),
    "rds.modify_class_multi_az": (1200, 1800),
    "rds.modify_class_single_az": (600, 900),
    "rds.create_replica": (1200, 2700),
    # A read replica in its source's region (the second-AZ replica, a drill's copy of the DR replica): RDS
    # "takes a snapshot of the source DB instance and creates a read-only instance from the snapshot" (RDS
    # User Guide, "Working with DB instance read replicas"), with no copy across regions. No figure is
    # published: 15 min p50, 45 min p95 (size-dependent, as the cross-region figure).
    "rds.create_replica_in_region": (900, 2700),
    # A manual snapshot of an instance without automated backups (a drill snapshots the DR replica, which
    # has none): the first snapshot of an instance is full ("The first snapshot of a DB instance contains
    # the data for the full database", RDS User Guide, "Introduction to backups"), so the same figures as
    # the first backup after a promotion (rds.first_backup).
    "rds.create_snapshot": (600, 3600),
    # RestoreDBInstanceFromDBSnapshot -> available: a new instance whose volume is loaded from the snapshot
    # in the background (lazy loading: it serves before every block is loaded, RDS User Guide, "Restoring
    # to a DB instance"). No figure is published: 15 min p50, 30 min p95, as for creating an instance.
    "rds.restore_snapshot": (900, 1800),
    # Aurora Global Database SwitchoverGlobalCluster / FailoverGlobalCluster, from the call to the target being
    # the writer. The API reference says only that the database "is unavailable for a short time while the primary
    # and selected secondary clusters are assuming their new roles" (API_SwitchoverGlobalCluster); the Aurora User
    # Guide ("Using switchover or failover in Amazon Aurora Global Database") puts the RTO "in the order of minutes"
    # and AWS's DR workshop (wellarchitectedlabs.com, Aurora failover) promotes a secondary "in under a minute".
    # 1 min p50, 2 min p95 for both (a failover skips the synchronization but AWS gives no separate figure).
    "rds.global_switchover": (60, 120),
    "rds.global_failover": (60, 120),
    # CreateDBInstance into an Aurora cluster (a writer for a headless secondary, a reader, a drill copy's
    # instance) -> available. No data is copied: "all the Aurora Replicas ... share the same underlying
    # volume" (Aurora User Guide, "Amazon Aurora DB clusters"), so only the compute is provisioned. AWS
    # publishes no figure ("The replica becomes available in a few minutes" is a blog's; the Aurora User
    # Guide's headless-cluster page only says the instance must be added before the cluster serves). 10 min
    # p50, as lambdas/aurora.py's HEADLESS_RTO_NOTE tells users, 20 min p95 (a large class, a busy AZ).
    "rds.create_aurora_instance": (600, 1200),
    # CreateDBCluster with GlobalClusterIdentifier in another region -> available: Aurora builds the
    # secondary's cluster volume from the primary's across regions ("Adding an AWS Region to an Amazon Aurora
    # global database", Aurora User Guide), so the time grows with the volume's size. No figure is published:
    # 20 min p50 for a small volume, as a cross-region RDS replica (rds.create_replica), 2 h p95 for a large
    # one (as dynamodb.create_replica, the other cross-region copy of a whole data set).
    "rds.create_aurora_secondary": (1200, 7200),
    # RestoreDBClusterToPointInTime RestoreType=copy-on-write (an Aurora clone) -> the cluster available
    # (its instance is rds.create_aurora_instance). The clone shares the source's pages: "designed to be fast
    # and cost-effective ... faster and more space-efficient than physically copying the data using other
    # techniques, such as restoring a snapshot" (Aurora User Guide, "Cloning a volume for an Amazon Aurora DB
    # cluster"), whatever the size. No figure is published: 5 min p50, 15 min p95.
    "rds.clone_aurora_cluster": (300, 900),
    # RestoreDBClusterFromSnapshot (a drill's copy of a headless secondary) -> the cluster available. Unlike an
    # RDS instance restore there is no lazy loading: "the cluster downloads data from Amazon S3 to the storage
    # nodes ... before the data becomes available", and restore time is "non-linear" in the size (AWS Knowledge
    # Center, "aurora-mysql-snapshot-restore-options"). No figure is published: 20 min p50, 1 h p95.
    "rds.restore_aurora_snapshot": (1200, 3600),
    # CreateDBClusterSnapshot (a drill snapshots a headless secondary, which cannot be cloned) -> available:
    # "The amount of time it takes to create a DB cluster snapshot varies with the size of your databases"
    # and the cluster must be available (Aurora User Guide, "Creating a DB cluster snapshot"). No figure is
    # published; Aurora's storage backs up continuously, so a manual snapshot is far quicker than a first RDS
    # snapshot (rds.create_snapshot): 5 min p50, 30 min p95.
    "rds.create_aurora_snapshot": (300, 1800),
    "route53.change": (60, 90),
    # A datum reaches a 60 s standard-resolution alarm and is evaluated when its period closes:
    # up to one period, plus ingestion, more when the datum lands early in the period.
    "cloudwatch.alarm_evaluation": (60, 120),
    # Route 53's health checkers reacting to the state of the alarm a CLOUDWATCH_METRIC check watches
    # (Route 53 docs: detection 30 s p50 at 10 s x 3, 90 s p95 at 30 s x 3).
    "route53.health_check": (30, 90),
    "ec2.create_image": (600, 1200),
    "ec2.copy_image": (900, 3000),
    "beanstalk.create_environment": (300, 600),
    # Terminating an environment: CloudFormation deletes the stack (instances, load balancer, security
    # groups); about 4 minutes for a small environment, up to 10 with a load balancer draining.
    "beanstalk.terminate_environment": (240, 600),
    "s3.replicate": (15, 900),
    # DynamoDB global tables (2019.11.21): UpdateTable ReplicaUpdates Create -> the replica ACTIVE. AWS
    # publishes no figure; adding a replica "can take from minutes to hours" with the table's size (the
    # existing items are copied first), and real additions exceed 30 min (aws-cdk issue #10249: CDK's
    # replica custom resource had to raise its 30-minute timeout). 15 min p50 for a small table, 2 h p95.
    "dynamodb.create_replica": (900, 7200),
    # ReplicaUpdates Delete -> the replica gone: no figure is published; a table deletion, not a copy.
    "dynamodb.delete_replica": (300, 900),
    # An item written to one replica appearing in the others: "usually propagated to all replica tables
    # within a second" (DynamoDB Developer Guide, global tables: how it works); ReplicationLatency (ms)
    # shows a few seconds at the tail, more with distance or a degraded region. 1 s p50, 5 s p95.
    "dynamodb.replicate": (1.0, 5.0),
    # EC2 Auto Scaling: from the call that launches an instance to the group showing it InService (EC2 boots it,
    # Auto Scaling moves it on). AWS publishes no figure; the EC2 Auto Scaling User Guide ("Set the health check
    # grace period") defaults the console's grace period, the time it gives a new instance to start, to 300 s:
    # that is the p95. 90 s p50 for an instance without lifecycle hooks.
    "autoscaling.launch_instance": (90.0, 300.0),
    # From InService (registered in its target group) to `healthy`: HealthyThresholdCount consecutive checks
    # every HealthCheckIntervalSeconds, 5 x 30 s by default for instance targets (CreateTargetGroup API
    # reference): 150 s p50; 300 s p95 for an application that fails its first checks while it warms up.
    "elb.target_healthy": (150.0, 300.0),
}


def duration(kind: str, profile: str = "p50") -> float:
    p50, p95 = DURATIONS[kind]
    return p95 if profile == "p95" else p50


@dataclass
class Busy:
    kind: str
    until: float  # modeled time
    status: str
    shown: dict[str, Any] = field(default_factory=dict)  # attributes as AWS shows them meanwhile
    pending: dict[str, Any] = field(default_factory=dict)
    then: Busy | None = None  # the phase that follows when this one ends (e.g. promotion -> first backup)


@dataclass(frozen=True)
class Phase:
    """One in-between state a resource was held in, for tests and reports: [start, until) in modeled time."""

    key: tuple[str, str, str]
    kind: str
    status: str
    start: float
    until: float


class LatencyModel:
    def __init__(self, profile: str = "p50") -> None:
        self.profile = profile
        self.enabled = True
        # Modeled seconds every long-running change takes beyond its profile's figure (benchmarks use it
        # to show what polling costs when AWS does not finish on a round number).
        self.skew = 0.0
        # What CloudWatch's ReplicaLag shows for an available replica (modeled seconds behind its source).
        self.replica_lag_seconds = 2.0
        # Per replica identifier, a lag other than the default (e.g. one replica falling behind).
        self.replica_lag_overrides: dict[str, float] = {}
        self._busy: dict[tuple[str, str, str], Busy] = {}
        self._lock = threading.Lock()
        # Every phase a resource was held in, in the order they were modeled.
        self.phases: list[Phase] = []

    # -- bookkeeping -------------------------------------------------------------------------
    def hold(self, key: tuple[str, str, str], kind: str, status: str, not_before: float = 0.0,
             **attrs: Any) -> Busy:
        """Hold ``key`` in ``status`` for ``kind``'s duration (and at least until ``not_before``, modeled time)."""
        busy = Busy(kind, max(clock.now() + duration(kind, self.profile) + self.skew, not_before), status, **attrs)
        with self._lock:
            previous = self._current(key)
            if previous is not None:
                # A second change queued behind the first finishes after it.
                busy.until = previous.until + (busy.until - clock.now())
                busy.shown = {**busy.shown, **previous.shown}
                busy.pending = {**previous.pending, **busy.pending}
            self._busy[key] = busy
            self.phases.append(Phase(key, kind, status, clock.now(), busy.until))
        return busy

    def then(self, key: tuple[str, str, str], after: Busy, kind: str, status: str, **attrs: Any) -> Busy:
        """Hold ``key`` in a second phase once ``after`` ends (its own duration from then)."""
        nxt = Busy(kind, after.until + duration(kind, self.profile) + self.skew, status, **attrs)
        with self._lock:
            after.then = nxt
            self.phases.append(Phase(key, kind, status, after.until, nxt.until))
        return nxt

    def _current(self, key: tuple[str, str, str]) -> Busy | None:
        """The phase ``key`` is in now (the lock is held); ended phases give way to the next or to nothing."""
        entry = self._busy.get(key)
        while entry is not None and entry.until <= clock.now():
            entry = entry.then
        if entry is None:
            self._busy.pop(key, None)
        else:
            self._busy[key] = entry
        return entry

    def delay(self, kind: str) -> Callable[[], float]:
        """Modeled seconds ``kind`` takes under this model (its profile); 0 when off."""
        return lambda: duration(kind, self.profile) if self.enabled else 0.0

    def busy(self, key: tuple[str, str, str]) -> Busy | None:
        with self._lock:
            return self._current(key)

    # -- hooks -------------------------------------------------------------------------------
    def install(self, events: Any) -> None:
        for event, handler in self._handlers():
            events.register(event, handler, unique_id=f"pilotlight-latency-{event}")

    def uninstall(self, events: Any) -> None:
        for event, _ in self._handlers():
            events.unregister(event, unique_id=f"pilotlight-latency-{event}")

    def _handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-call.rds.ModifyDBInstance", self._refuse_while_busy),
            ("before-call.rds.PromoteReadReplica", self._before_promote),
            ("after-call.rds.PromoteReadReplica", self._after_promote),
            ("after-call.rds.ModifyDBInstance", self._after_modify),
            ("after-call.rds.CreateDBInstanceReadReplica", self._after_create_replica),
            ("after-call.rds.RestoreDBInstanceFromDBSnapshot", self._after_restore),
            ("after-call.rds.DescribeDBInstances", self._describe_db_instances),
            ("after-call.rds.DeleteDBInstance", self._after_delete_instance),
            ("after-call.rds.CreateDBSnapshot", self._after_create_snapshot),
            ("after-call.rds.DescribeDBSnapshots", self._describe_db_snapshots),
            ("before-call.rds.RestoreDBInstanceFromDBSnapshot", self._refuse_while_snapshot_busy),
            ("before-call.rds.DeleteDBSnapshot", self._refuse_while_snapshot_busy),
            ("after-call.rds.DeleteDBSnapshot", self._after_delete_snapshot),
            ("after-call.rds.CreateDBInstance", self._after_create_instance),
            ("before-call.rds.CreateDBClusterSnapshot", self._refuse_while_cluster_busy),
            ("before-call.rds.RestoreDBClusterToPointInTime", self._refuse_while_cluster_busy),
            ("before-call.rds.ModifyDBCluster", self._refuse_while_cluster_busy),
            ("after-call.rds.CreateDBCluster", self._after_create_cluster),
            ("before-parameter-build.rds.RestoreDBClusterToPointInTime", responses.stash_api_params),
            ("after-call.rds.RestoreDBClusterToPointInTime", self._after_restore_cluster),
            ("after-call.rds.RestoreDBClusterFromSnapshot", self._after_restore_cluster),
            ("after-call.rds.DescribeDBClusters", self._describe_db_clusters),
            ("after-call.rds.DeleteDBCluster", self._after_delete_cluster),
            ("after-call.rds.CreateDBClusterSnapshot", self._after_create_cluster_snapshot),
            ("after-call.rds.DescribeDBClusterSnapshots", self._describe_db_cluster_snapshots),
            ("before-call.rds.RestoreDBClusterFromSnapshot", self._refuse_while_cluster_snapshot_busy),
            ("before-call.rds.DeleteDBClusterSnapshot", self._refuse_while_cluster_snapshot_busy),
            ("after-call.rds.DeleteDBClusterSnapshot", self._after_delete_cluster_snapshot),
            ("after-call.ec2.CreateImage", self._after_create_image),
            ("after-call.ec2.CopyImage", self._after_copy_image),
            ("after-call.ec2.DescribeImages", self._describe_images),
            ("after-call.elastic-beanstalk.CreateEnvironment", self._after_create_environment),
            ("after-call.elastic-beanstalk.DescribeEnvironments", self._describe_environments),
            ("after-call.elastic-beanstalk.DescribeEnvironmentHealth", self._describe_environment_health),
            ("before-parameter-build.cloudwatch.GetMetricStatistics", responses.stash_api_params),
            ("after-call.cloudwatch.GetMetricStatistics", self._replica_lag),
            ("after-call.route53.ChangeResourceRecordSets", self._after_change),
            ("after-call.route53.GetChange", self._get_change),
        ]

    # RDS --------------------------------------------------------------------------------------
    def _refuse_while_busy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        if not self.enabled:
            return None
        ident = responses.request_params(params).get("DBInstanceIdentifier", "")
        busy = self.busy(("rds", context.get("client_region", ""), ident))
        if busy is not None:
            return responses.error(
                "InvalidDBInstanceState",
                f"Database instance is not in available state (it is {busy.status}).",
            )
        return None

    def _before_promote(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        """Refused while busy; otherwise note whether the replica had automated backups before."""
        refused = self._refuse_while_busy(params, context)
        if refused is not None or not self.enabled:
            return refused
        from moto.rds.models import rds_backends

        request = responses.request_params(params)
        db = rds_backends[DEFAULT_ACCOUNT_ID][context.get("client_region", "")].databases.get(
            request.get("DBInstanceIdentifier", ""))
        if db is not None:
            # PromoteReadReplica's BackupRetentionPeriod defaults to 1; a positive value enables backups.
            context["pilotlight_backups"] = (int(db.backup_retention_period or 0),
                                             int(request.get("BackupRetentionPeriod", 1)))
        return None

    def _after_promote(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        db = parsed["DBInstance"]
        source = db.get("ReadReplicaSourceDBInstanceIdentifier")
        key = ("rds", context["client_region"], db["DBInstanceIdentifier"])
        busy = self.hold(key, "rds.promote", "modifying", shown={"ReadReplicaSourceDBInstanceIdentifier": source})
        # A replica that had no automated backups and gets them with the promotion takes its first
        # backup (a full one) as soon as the promotion ends.
        before, after = context.get("pilotlight_backups") or (None, 0)
        if before == 0 and after > 0:
            self.then(key, busy, "rds.first_backup", "backing-up")
        _apply(db, busy)

    def _after_modify(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        db = parsed["DBInstance"]
        before = context.get("pilotlight_before") or {}
        region = context["client_region"]
        shown: dict[str, Any] = {}
        pending: dict[str, Any] = {}
        kinds: list[str] = []
        if "MultiAZ" in before and before["MultiAZ"] != db.get("MultiAZ"):
            shown["MultiAZ"], pending["MultiAZ"] = before["MultiAZ"], db.get("MultiAZ")
            kinds.append("rds.multi_az")
        if "DBInstanceClass" in before and before["DBInstanceClass"] != db.get("DBInstanceClass"):
            shown["DBInstanceClass"], pending["DBInstanceClass"] = before["DBInstanceClass"], db["DBInstanceClass"]
            kinds.append("rds.modify_class_multi_az" if before.get("MultiAZ") else "rds.modify_class_single_az")
        key = ("rds", region, db["DBInstanceIdentifier"])
        busy = None
        for kind in kinds:
            busy = self.hold(key, kind, "modifying", shown=dict(shown), pending=dict(pending))
        if busy:
            _apply(db, busy)

    def _after_create_replica(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        db = parsed["DBInstance"]
        region = context["client_region"]
        source = str(db.get("ReadReplicaSourceDBInstanceIdentifier") or "")
        cross_region = source.startswith("arn:") and source.split(":")[3] != region
        key = ("rds", region, db["DBInstanceIdentifier"])
        busy = self.hold(key, "rds.create_replica" if cross_region else "rds.create_replica_in_region", "creating")
        _apply(db, busy)

    def _after_restore(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        db = parsed["DBInstance"]
        busy = self.hold(("rds", context["client_region"], db["DBInstanceIdentifier"]), "rds.restore_snapshot",
                         "creating")
        _apply(db, busy)

    def _after_delete_instance(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        """moto deletes at once (no ``deleting`` phase is modeled); what the instance was doing ends with it."""
        if http_response.status_code < 300:
            self._drop(("rds", context["client_region"], parsed["DBInstance"]["DBInstanceIdentifier"]))

    # A manual snapshot is `creating` until its modeled duration has passed; meanwhile it cannot be
    # restored or deleted (InvalidDBSnapshotState, as RDS answers). moto makes it available at once.
    def _after_create_snapshot(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        snap = parsed["DBSnapshot"]
        busy = self.hold(("rds_snapshot", context["client_region"], snap["DBSnapshotIdentifier"]),
                         "rds.create_snapshot", "creating")
        _apply_snapshot(snap, busy)

    def _describe_db_snapshots(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for snap in parsed.get("DBSnapshots", []):
            busy = self.busy(("rds_snapshot", context.get("client_region", ""), snap["DBSnapshotIdentifier"]))
            if busy:
                _apply_snapshot(snap, busy)

    def _refuse_while_snapshot_busy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        if not self.enabled:
            return None
        ident = responses.request_params(params).get("DBSnapshotIdentifier", "")
        busy = self.busy(("rds_snapshot", context.get("client_region", ""), ident))
        if busy is not None:
            return responses.error("InvalidDBSnapshotState",
                                   f"Snapshot {ident} is not available (it is {busy.status}).")
        return None

    def _after_delete_snapshot(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if http_response.status_code < 300:
            self._drop(("rds_snapshot", context["client_region"], parsed["DBSnapshot"]["DBSnapshotIdentifier"]))

    def _drop(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._busy.pop(key, None)

    def _describe_db_instances(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for db in parsed.get("DBInstances", []):
            busy = self.busy(("rds", context.get("client_region", ""), db["DBInstanceIdentifier"]))
            if busy:
                _apply(db, busy)

    # Aurora: clusters, their instances and cluster snapshots are `creating` until their modeled time has passed
    # (moto makes them available at once). Clusters are keyed ("rds_cluster", region, identifier), cluster
    # snapshots ("rds_cluster_snapshot", ...), Aurora instances as other instances ("rds", ...).
    def cluster_busy(self, region: str, ident: str) -> Busy | None:
        return self.busy(("rds_cluster", region, _ident(ident)))

    def _after_create_instance(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        """An Aurora instance (one with a DBClusterIdentifier); other CreateDBInstance calls are not modeled."""
        if not self.enabled or http_response.status_code >= 300:
            return
        db = parsed["DBInstance"]
        if not db.get("DBClusterIdentifier"):
            return
        region = context["client_region"]
        # Added to a cluster that is still being created, it is available no earlier than its cluster.
        cluster = self.cluster_busy(region, db["DBClusterIdentifier"])
        busy = self.hold(("rds", region, db["DBInstanceIdentifier"]), "rds.create_aurora_instance", "creating",
                         not_before=cluster.until if cluster else 0.0)
        _apply(db, busy)

    def _refuse_while_cluster_busy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        """A cluster not available yet cannot be snapshotted, cloned or modified (InvalidDBClusterStateFault)."""
        if not self.enabled:
            return None
        p = responses.request_params(params)
        ident = str(p.get("SourceDBClusterIdentifier") or p.get("DBClusterIdentifier") or "")
        busy = self.cluster_busy(context.get("client_region", ""), ident)
        if busy is not None:
            return responses.error("InvalidDBClusterStateFault",
                                   f"DB cluster {_ident(ident)} is not in available state (it is {busy.status}).")
        return None

    def _after_create_cluster(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        """A secondary cluster of a global cluster (a member that is not its writer); a standalone or primary
        cluster (which seeding creates with the model off) is not modeled."""
        from moto.rds.models import rds_backends

        if not self.enabled or http_response.status_code >= 300:
            return
        doc = parsed["DBCluster"]
        region = context["client_region"]
        cluster = rds_backends[DEFAULT_ACCOUNT_ID][region].clusters.get(_ident(doc["DBClusterIdentifier"]))
        if cluster is None or not cluster.global_cluster_identifier or cluster.is_writer:
            return
        busy = self.hold(("rds_cluster", region, _ident(doc["DBClusterIdentifier"])), "rds.create_aurora_secondary",
                         "creating")
        doc["Status"] = busy.status

    def _after_restore_cluster(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        doc = parsed["DBCluster"]
        # RestoreDBClusterFromSnapshot and a full-copy point-in-time restore copy the data; a clone does not.
        clone = responses.api_params(context).get("RestoreType") == "copy-on-write"
        busy = self.hold(("rds_cluster", context["client_region"], _ident(doc["DBClusterIdentifier"])),
                         "rds.clone_aurora_cluster" if clone else "rds.restore_aurora_snapshot", "creating")
        doc["Status"] = busy.status

    def _describe_db_clusters(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for doc in parsed.get("DBClusters", []):
            busy = self.cluster_busy(context.get("client_region", ""), doc.get("DBClusterIdentifier", ""))
            if busy:
                doc["Status"] = busy.status

    def _after_delete_cluster(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if http_response.status_code < 300:
            self._drop(("rds_cluster", context["client_region"], _ident(parsed["DBCluster"]["DBClusterIdentifier"])))

    def _after_create_cluster_snapshot(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        snap = parsed["DBClusterSnapshot"]
        key = ("rds_cluster_snapshot", context["client_region"], _ident(snap["DBClusterSnapshotIdentifier"]))
        busy = self.hold(key, "rds.create_aurora_snapshot", "creating")
        _apply_snapshot(snap, busy)

    def _describe_db_cluster_snapshots(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for snap in parsed.get("DBClusterSnapshots", []):
            busy = self.busy(("rds_cluster_snapshot", context.get("client_region", ""),
                              _ident(snap["DBClusterSnapshotIdentifier"])))
            if busy:
                _apply_snapshot(snap, busy)

    def _refuse_while_cluster_snapshot_busy(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        if not self.enabled:
            return None
        p = responses.request_params(params)
        ident = _ident(str(p.get("SnapshotIdentifier") or p.get("DBClusterSnapshotIdentifier") or ""))
        busy = self.busy(("rds_cluster_snapshot", context.get("client_region", ""), ident))
        if busy is not None:
            return responses.error("InvalidDBClusterSnapshotStateFault",
                                   f"Cluster snapshot {ident} is not available (it is {busy.status}).")
        return None

    def _after_delete_cluster_snapshot(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if http_response.status_code < 300:
            self._drop(("rds_cluster_snapshot", context["client_region"],
                        _ident(parsed["DBClusterSnapshot"]["DBClusterSnapshotIdentifier"])))

    # EC2 images -------------------------------------------------------------------------------
    def _after_create_image(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if self.enabled and http_response.status_code < 300:
            self.hold(("ec2", context["client_region"], parsed["ImageId"]), "ec2.create_image", "pending")

    def _after_copy_image(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self.enabled and http_response.status_code < 300:
            self.hold(("ec2", context["client_region"], parsed["ImageId"]), "ec2.copy_image", "pending")

    def _describe_images(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for image in parsed.get("Images", []):
            if self.busy(("ec2", context.get("client_region", ""), image.get("ImageId", ""))):
                image["State"] = "pending"

    # Beanstalk: a new environment is Launching (health Grey) until it is Ready -----------------
    def _after_create_environment(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if self.enabled and http_response.status_code < 300:
            key = ("beanstalk", context["client_region"], parsed["EnvironmentName"])
            busy = self.hold(key, "beanstalk.create_environment", "Launching")
            parsed["Status"], parsed["Health"] = busy.status, "Grey"

    def _describe_environments(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        for env in parsed.get("Environments", []):
            busy = self.busy(("beanstalk", context.get("client_region", ""), env.get("EnvironmentName", "")))
            if busy:
                env["Status"], env["Health"] = busy.status, "Grey"

    def _describe_environment_health(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.enabled or "EnvironmentName" not in parsed:
            return
        if self.busy(("beanstalk", context.get("client_region", ""), parsed["EnvironmentName"])):
            # While launching, enhanced health has no data yet (Grey, Pending), as Beanstalk reports it.
            parsed.update(Status="Launching", Color="Grey", HealthStatus="Pending")

    # CloudWatch: RDS publishes ReplicaLag for each replica once it replicates -----------------
    def _replica_lag(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        from moto.rds.models import rds_backends

        p = responses.api_params(context)
        if http_response.status_code >= 300 or parsed.get("Datapoints"):
            return
        if p.get("Namespace") != "AWS/RDS" or p.get("MetricName") != "ReplicaLag":
            return
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions") or []}
        region = context.get("client_region", "")
        ident = dims.get("DBInstanceIdentifier", "")
        db = rds_backends[DEFAULT_ACCOUNT_ID][region].databases.get(ident)
        if db is None or not db.source_db_instance_identifier or self.busy(("rds", region, ident)):
            return
        point: dict[str, Any] = {"Timestamp": p.get("EndTime"), "Unit": "Seconds"}
        for stat in p.get("Statistics") or ["Maximum"]:
            point[stat] = float(self.replica_lag_overrides.get(ident, self.replica_lag_seconds))
        parsed["Datapoints"] = [point]
        parsed.setdefault("Label", "ReplicaLag")

    # Route 53 ---------------------------------------------------------------------------------
    def _after_change(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self.enabled or http_response.status_code >= 300:
            return
        info = parsed["ChangeInfo"]
        busy = self.hold(("route53", "global", info["Id"].rsplit("/", 1)[-1]), "route53.change", "PENDING")
        info["Status"] = busy.status

    def _get_change(self, parsed: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        info = parsed.get("ChangeInfo", {})
        if self.busy(("route53", "global", info.get("Id", "").rsplit("/", 1)[-1])):
            info["Status"] = "PENDING"


def _ident(ident: str) -> str:
    """A DB cluster's or cluster snapshot's identifier as RDS stores it (lower-case), from a name or an ARN."""
    return ident.rsplit(":", 1)[-1].lower() if ident.startswith("arn:") else ident.lower()


def _apply(db: dict[str, Any], busy: Busy) -> None:
    db["DBInstanceStatus"] = busy.status
    db.update(busy.shown)
    if busy.pending:
        db["PendingModifiedValues"] = {**db.get("PendingModifiedValues", {}), **busy.pending}


def _apply_snapshot(snap: dict[str, Any], busy: Busy) -> None:
    snap["Status"] = busy.status
    snap["PercentProgress"] = 0  # progress is not modeled: 0 until it is available (100)


def snapshot_before_modify(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Remember MultiAZ and class before a ModifyDBInstance, so the model can show the old values."""
    from moto.rds.models import rds_backends

    ident = responses.request_params(params).get("DBInstanceIdentifier", "")
    region = context.get("client_region", "")
    db = rds_backends[DEFAULT_ACCOUNT_ID][region].databases.get(ident)
    if db is not None:
        context["pilotlight_before"] = {"MultiAZ": bool(db.multi_az), "DBInstanceClass": db.db_instance_class}
