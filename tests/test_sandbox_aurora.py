"""Aurora Global Database in the sandbox: switchover, failover, detaching a secondary, lag metrics."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox, clock
from sandbox.latency import duration

PRIMARY, DR = "us-east-1", "us-west-2"
GLOBAL = "orders-global"


def build(ready: bool = True) -> dict[str, Any]:
    """A global cluster: a primary cluster in us-east-1 and a secondary in us-west-2, one instance each.

    ``ready``: let modeled time run until the secondary and the instances are available (the latency model
    holds them ``creating``; the west instance is available with its cluster)."""
    east, west = boto3.client("rds", region_name=PRIMARY), boto3.client("rds", region_name=DR)
    east.create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine="aurora-postgresql", EngineVersion="15.4")
    primary = east.create_db_cluster(DBClusterIdentifier="orders-east", Engine="aurora-postgresql",
                                     EngineVersion="15.4", MasterUsername="app", MasterUserPassword="secret-pass-1",
                                     GlobalClusterIdentifier=GLOBAL)["DBCluster"]
    east.create_db_instance(DBInstanceIdentifier="orders-east-1", DBClusterIdentifier="orders-east",
                            Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    secondary = west.create_db_cluster(DBClusterIdentifier="orders-west", Engine="aurora-postgresql",
                                       EngineVersion="15.4", GlobalClusterIdentifier=GLOBAL)["DBCluster"]
    west.create_db_instance(DBInstanceIdentifier="orders-west-1", DBClusterIdentifier="orders-west",
                            Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    if ready:
        clock.advance(max(duration("rds.create_aurora_secondary"), duration("rds.create_aurora_instance")))
    return {"east": east, "west": west, "primary": primary["DBClusterArn"], "secondary": secondary["DBClusterArn"]}


def at(when: float) -> None:
    """Let modeled time run to ``when``."""
    clock.advance(max(0.0, when - clock.now()))


def members(client: Any) -> dict[str, dict[str, Any]]:
    (gc,) = client.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"]
    return {m["DBClusterArn"]: m for m in gc["GlobalClusterMembers"]}


def global_cluster(client: Any) -> dict[str, Any]:
    return client.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]


def test_switchover_moves_the_writer_in_modeled_time() -> None:
    with Sandbox():
        w = build()
        before = members(w["west"])
        assert before[w["primary"]]["IsWriter"] and before[w["primary"]]["Readers"] == [w["secondary"]]
        assert not before[w["secondary"]]["IsWriter"]
        assert before[w["secondary"]]["SynchronizationStatus"] == "connected"
        start = clock.now()
        answer = w["east"].switchover_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                                     TargetDbClusterIdentifier=w["secondary"])["GlobalCluster"]
        assert answer["FailoverState"] == {"Status": "pending", "FromDbClusterArn": w["primary"],
                                           "ToDbClusterArn": w["secondary"], "IsDataLossAllowed": False}
        at(start + 30)
        meanwhile = global_cluster(w["west"])
        assert meanwhile["Status"] == "switching-over"
        assert meanwhile["FailoverState"]["Status"] == "switching-over"
        assert members(w["west"])[w["primary"]]["IsWriter"]  # not yet
        # A second operation while one is under way is refused.
        with pytest.raises(ClientError) as err:
            w["east"].switchover_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                                TargetDbClusterIdentifier=w["secondary"])
        assert err.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
        # An observer polling every 5 modeled seconds sees the writer move when the modeled switchover ends.
        clock.wait_until(lambda: members(w["west"])[w["secondary"]]["IsWriter"], timeout=600, step=5,
                         what="the secondary to be the writer")
        assert clock.now() - start == pytest.approx(duration("rds.global_switchover"), abs=5)
        after = global_cluster(w["west"])
        assert "FailoverState" not in after and after["Status"] == "available"
        by_arn = {m["DBClusterArn"]: m for m in after["GlobalClusterMembers"]}
        assert by_arn[w["secondary"]]["IsWriter"] and by_arn[w["secondary"]]["Readers"] == [w["primary"]]
        assert not by_arn[w["primary"]]["IsWriter"]
        assert by_arn[w["primary"]]["SynchronizationStatus"] == "connected"  # RPO 0: nothing to resync


def test_failover_with_data_loss_rebuilds_the_old_primary_as_a_secondary() -> None:
    with Sandbox():
        w = build()
        start = clock.now()
        answer = w["west"].failover_global_cluster(GlobalClusterIdentifier=GLOBAL, AllowDataLoss=True,
                                                   TargetDbClusterIdentifier=w["secondary"])["GlobalCluster"]
        assert answer["FailoverState"]["IsDataLossAllowed"] is True
        at(start + 30)
        assert global_cluster(w["west"])["FailoverState"]["Status"] == "failing-over"
        done = start + duration("rds.global_failover")
        at(done)
        after = members(w["west"])
        assert after[w["secondary"]]["IsWriter"]
        assert not after[w["primary"]]["IsWriter"]
        assert after[w["primary"]]["SynchronizationStatus"] == "pending-resync"
        at(done + duration("rds.global_failover"))
        assert members(w["west"])[w["primary"]]["SynchronizationStatus"] == "connected"


def test_failover_refuses_bad_requests() -> None:
    with Sandbox():
        w = build()
        other = w["west"].create_db_cluster(DBClusterIdentifier="lonely", Engine="aurora-postgresql",
                                            MasterUsername="app", MasterUserPassword="secret-pass-1")["DBCluster"]

        def code(**kwargs: Any) -> str:
            with pytest.raises(ClientError) as err:
                w["west"].failover_global_cluster(**{"GlobalClusterIdentifier": GLOBAL, **kwargs})
            return str(err.value.response["Error"]["Code"])

        assert code(TargetDbClusterIdentifier=other["DBClusterArn"]) == "InvalidGlobalClusterStateFault"
        assert code(TargetDbClusterIdentifier=w["primary"]) == "InvalidGlobalClusterStateFault"  # already the writer
        assert code(TargetDbClusterIdentifier=w["secondary"].replace("orders-west", "nope")) == "DBClusterNotFoundFault"
        assert code(TargetDbClusterIdentifier=w["secondary"], AllowDataLoss=True,
                    Switchover=True) == "InvalidParameterCombination"
        assert code(GlobalClusterIdentifier="nope", TargetDbClusterIdentifier=w["secondary"]) == \
            "GlobalClusterNotFoundFault"
        with pytest.raises(ClientError) as err:
            w["west"].describe_global_clusters(GlobalClusterIdentifier="nope")
        assert err.value.response["Error"]["Code"] == "GlobalClusterNotFoundFault"
        # A headless secondary (no instance) cannot become the writer.
        w["west"].delete_db_instance(DBInstanceIdentifier="orders-west-1", SkipFinalSnapshot=True)
        assert code(TargetDbClusterIdentifier=w["secondary"]) == "InvalidDBClusterStateFault"


def test_remove_from_global_makes_a_standalone_writable_cluster() -> None:
    with Sandbox():
        w = build()
        with pytest.raises(ClientError) as err:  # the writer goes last
            w["east"].remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=w["primary"])
        assert err.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
        answer = w["west"].remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                                      DbClusterIdentifier=w["secondary"])["GlobalCluster"]
        assert [m["DBClusterArn"] for m in answer["GlobalClusterMembers"]] == [w["primary"]]
        assert list(members(w["east"])) == [w["primary"]]
        (cluster,) = w["west"].describe_db_clusters(DBClusterIdentifier="orders-west")["DBClusters"]
        assert "GlobalClusterIdentifier" not in cluster
        assert cluster["Status"] == "available"
        assert [m["IsClusterWriter"] for m in cluster["DBClusterMembers"]] == [True]
        # No lag metrics for a standalone cluster.
        cw = boto3.client("cloudwatch", region_name=DR)
        now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        assert not cw.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag", StartTime=now - dt.timedelta(minutes=5),
            EndTime=now, Period=60, Statistics=["Maximum"],
            Dimensions=[{"Name": "DBClusterIdentifier", "Value": "orders-west"}])["Datapoints"]


def test_lag_metrics_are_readable_for_a_secondary() -> None:
    with Sandbox() as sb:
        build()
        cw = boto3.client("cloudwatch", region_name=DR)
        now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        for metric in ("AuroraGlobalDBReplicationLag", "AuroraGlobalDBRPOLag"):
            points = cw.get_metric_statistics(
                Namespace="AWS/RDS", MetricName=metric, StartTime=now - dt.timedelta(minutes=5), EndTime=now,
                Period=60, Statistics=["Maximum", "Average"],
                Dimensions=[{"Name": "DBClusterIdentifier", "Value": "orders-west"}])["Datapoints"]
            assert len(points) == 5
            assert {p["Unit"] for p in points} == {"Milliseconds"}
            assert {p["Maximum"] for p in points} == {80.0}
        sb.aurora.lag_overrides[("AuroraGlobalDBRPOLag", "orders-west")] = 4000.0
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraGlobalDBRPOLag", StartTime=now - dt.timedelta(minutes=2),
            EndTime=now, Period=60, Statistics=["Maximum"],
            Dimensions=[{"Name": "DBClusterIdentifier", "Value": "orders-west"}])["Datapoints"]
        assert {p["Maximum"] for p in points} == {4000.0}
        # The writer has none.
        assert not boto3.client("cloudwatch", region_name=PRIMARY).get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag", StartTime=now - dt.timedelta(minutes=5),
            EndTime=now, Period=60, Statistics=["Maximum"],
            Dimensions=[{"Name": "DBClusterIdentifier", "Value": "orders-east"}])["Datapoints"]


def test_create_global_cluster_from_an_existing_cluster_keeps_it_the_writer() -> None:
    with Sandbox():
        east = boto3.client("rds", region_name=PRIMARY)
        arn = east.create_db_cluster(DBClusterIdentifier="solo", Engine="aurora-mysql", MasterUsername="app",
                                     MasterUserPassword="secret-pass-1")["DBCluster"]["DBClusterArn"]
        gc = east.create_global_cluster(GlobalClusterIdentifier="g2", SourceDBClusterIdentifier=arn)["GlobalCluster"]
        assert gc["GlobalClusterMembers"][0]["IsWriter"]
        cluster = east.describe_db_clusters(DBClusterIdentifier="solo")["DBClusters"][0]
        assert cluster["GlobalClusterIdentifier"] == "g2"


# -- creation times (sandbox/latency.py): moto makes clusters, instances and snapshots available at once ---------


def cluster_status(client: Any, ident: str) -> str:
    return str(client.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]["Status"])


def instance_status(client: Any, ident: str) -> str:
    return str(client.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"])


def snapshot_status(client: Any, ident: str) -> str:
    return str(client.describe_db_cluster_snapshots(
        DBClusterSnapshotIdentifier=ident)["DBClusterSnapshots"][0]["Status"])


def waited(start: float, predicate: Any, what: str) -> float:
    """Modeled seconds from ``start`` until ``predicate`` holds, polled every 5 modeled seconds."""
    clock.wait_until(predicate, timeout=4 * 3600, step=5, what=what)
    return clock.now() - start


def test_a_new_aurora_instance_is_creating_for_the_modeled_time() -> None:
    with Sandbox():
        w = build()
        start = clock.now()
        answer = w["west"].create_db_instance(DBInstanceIdentifier="orders-west-2", DBClusterIdentifier="orders-west",
                                              Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
        assert answer["DBInstance"]["DBInstanceStatus"] == "creating"
        assert instance_status(w["west"], "orders-west-2") == "creating"
        with pytest.raises(ClientError) as err:  # nothing can be changed meanwhile
            w["west"].modify_db_instance(DBInstanceIdentifier="orders-west-2", DBInstanceClass="db.r6g.xlarge",
                                         ApplyImmediately=True)
        assert err.value.response["Error"]["Code"] == "InvalidDBInstanceState"
        elapsed = waited(start, lambda: instance_status(w["west"], "orders-west-2") == "available",
                         "the reader to be available")
        assert elapsed == pytest.approx(duration("rds.create_aurora_instance"), abs=5)


def test_a_new_secondary_is_creating_and_not_connected_for_the_modeled_time() -> None:
    with Sandbox():
        start = clock.now()
        w = build(ready=False)
        assert cluster_status(w["west"], "orders-west") == "creating"
        # The instance added meanwhile is available no earlier than its cluster.
        assert instance_status(w["west"], "orders-west-1") == "creating"
        entry = members(w["west"])[w["secondary"]]
        assert not entry["IsWriter"] and "SynchronizationStatus" not in entry
        with pytest.raises(ClientError) as err:  # not a switchover target yet
            w["east"].switchover_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                                TargetDbClusterIdentifier=w["secondary"])
        assert err.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
        with pytest.raises(ClientError) as err:
            w["west"].modify_db_cluster(DBClusterIdentifier="orders-west", EnableGlobalWriteForwarding=True)
        assert err.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
        elapsed = waited(start, lambda: cluster_status(w["west"], "orders-west") == "available",
                         "the secondary to be available")
        assert elapsed == pytest.approx(duration("rds.create_aurora_secondary"), abs=5)
        assert members(w["west"])[w["secondary"]]["SynchronizationStatus"] == "connected"
        assert instance_status(w["west"], "orders-west-1") == "available"
        # The primary (its writer instance created at the same time) was available long before.
        assert instance_status(w["east"], "orders-east-1") == "available"


def test_an_aurora_clone_is_creating_for_the_modeled_time() -> None:
    with Sandbox():
        w = build()
        start = clock.now()
        answer = w["west"].restore_db_cluster_to_point_in_time(
            DBClusterIdentifier="orders-copy", SourceDBClusterIdentifier="orders-west", RestoreType="copy-on-write",
            UseLatestRestorableTime=True)["DBCluster"]
        assert answer["Status"] == "creating"
        assert cluster_status(w["west"], "orders-copy") == "creating"
        elapsed = waited(start, lambda: cluster_status(w["west"], "orders-copy") == "available",
                         "the clone to be available")
        assert elapsed == pytest.approx(duration("rds.clone_aurora_cluster"), abs=5)


def test_an_aurora_cluster_snapshot_is_creating_for_the_modeled_time() -> None:
    with Sandbox():
        w = build()
        start = clock.now()
        answer = w["west"].create_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap",
                                                      DBClusterIdentifier="orders-west")["DBClusterSnapshot"]
        assert answer["Status"] == "creating" and answer["PercentProgress"] == 0
        assert snapshot_status(w["west"], "orders-snap") == "creating"
        with pytest.raises(ClientError) as err:  # nothing can be restored from it yet
            w["west"].restore_db_cluster_from_snapshot(DBClusterIdentifier="orders-copy",
                                                       SnapshotIdentifier="orders-snap", Engine="aurora-postgresql")
        assert err.value.response["Error"]["Code"] == "InvalidDBClusterSnapshotStateFault"
        elapsed = waited(start, lambda: snapshot_status(w["west"], "orders-snap") == "available",
                         "the snapshot to be available")
        assert elapsed == pytest.approx(duration("rds.create_aurora_snapshot"), abs=5)


def test_a_cluster_restored_from_a_snapshot_is_creating_for_the_modeled_time() -> None:
    with Sandbox():
        w = build()
        w["west"].create_db_cluster_snapshot(DBClusterSnapshotIdentifier="orders-snap",
                                             DBClusterIdentifier="orders-west")
        at(clock.now() + duration("rds.create_aurora_snapshot"))
        start = clock.now()
        answer = w["west"].restore_db_cluster_from_snapshot(DBClusterIdentifier="orders-copy",
                                                            SnapshotIdentifier="orders-snap",
                                                            Engine="aurora-postgresql")["DBCluster"]
        assert answer["Status"] == "creating"
        assert "GlobalClusterIdentifier" not in answer
        assert cluster_status(w["west"], "orders-copy") == "creating"
        elapsed = waited(start, lambda: cluster_status(w["west"], "orders-copy") == "available",
                         "the restored cluster to be available")
        assert elapsed == pytest.approx(duration("rds.restore_aurora_snapshot"), abs=5)
