"""Drill copies of the DR replica, the DR bucket probe, and their teardown, against the sandbox.

- A drill copies the live DR replica (a cascading read replica where RDS allows one, else a snapshot
  restored to a new instance) under a name that carries its id; the live replica is never modified.
- The teardown removes what a selected drill left (instances, snapshots, objects), and nothing else:
  not another drill's, not the live replica, not a protected identifier, whatever its tags. It finds the
  databases by their tags (Resource Groups Tagging API) and the names of the drills' copies, and reads
  each by identifier: run as the RDS function's role, which may not list the region's instances.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import iam as plan_iam
from lambdas import drill
from lambdas import rds as rds_steps
from lambdas import s3 as s3_steps
from lambdas.errors import PreconditionFailed, ResourceNotFound
from sandbox import Sandbox, clock
from sandbox.iam_enforce import Enforcer
from sandbox.latency import duration
from tests.conftest import REFERENCE
from workflows import render
from workflows.plan import Plan, load_plan

SECOND = REFERENCE.parent / "second.yaml"


def _drill(n: int, hours_ago: float = 0.0) -> str:
    """The id of a drill that started ``hours_ago``; ``n`` (unique in this file) makes its last two digits."""
    started = drill.drill_id("arn:aws:states:us-west-2:123456789012:execution:drill:x", clock.now() - hours_ago * 3600)
    return f"{started[:-2]}{n:02x}"


def _describe(region: str, ident: str) -> dict[str, Any]:
    return boto3.client("rds", region_name=region).describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]


def _identity(db: dict[str, Any]) -> tuple[Any, ...]:
    """What a drill must never change on the live replica."""
    return (db["DBInstanceClass"], db.get("ReadReplicaSourceDBInstanceIdentifier"), db["DBInstanceStatus"],
            db["MultiAZ"], db["BackupRetentionPeriod"], db["DBSubnetGroup"]["DBSubnetGroupName"],
            sorted(g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]), db.get("TagList"))


def _copy_args(plan: Plan, drill_id: str) -> dict[str, Any]:
    db = plan.databases[0]
    return {"region": plan.dr_region, "plan": plan.name, "drill_id": drill_id, "source": db.dr_replica_identifier,
            "identifier": drill.drill_name(db.dr_replica_identifier, drill_id, drill.DB_NAME_LIMIT),
            "subnet_group": db.dr_network.subnet_group, "security_groups": list(db.dr_network.security_groups)}


@contextlib.contextmanager
def _as_rds_role(sb: Sandbox, plan: Plan) -> Iterator[None]:
    """Calls made inside are checked against the policy infra/iam.py generates for the plan's RDS function."""
    name = render.function_name(plan, "rds")
    sb.iam.attach(name, plan_iam.statements(plan_iam.registry_for("rds"), plan, account=sb.account_id,
                                            extra={"topic": [], "key": []}))
    denied = len(sb.iam.denials)
    with sb.iam.acting_as(name):
        yield
    assert sb.iam.denials[denied:] == []


def _until_copied(args: dict[str, Any]) -> dict[str, Any]:
    """Poll check_drill_copy every minute of modeled time until it is done (as the drill's loop does)."""
    return clock.wait_until(lambda: (out := rds_steps.check_drill_copy(**args))["done"] and out, timeout=4 * 3600,
                            step=60, what="drill copy available")


def test_copy_method_follows_what_rds_allows() -> None:
    def method(engine: str, version: str, backups: int, replica: bool = True) -> str:
        return rds_steps.copy_method({"Engine": engine, "EngineVersion": version, "BackupRetentionPeriod": backups,
                                      "ReadReplicaSourceDBInstanceIdentifier": "arn:aws:rds:x" if replica else None})

    assert method("postgres", "16.3", 7) == "read_replica"
    assert method("postgres", "14.1", 1) == "read_replica"
    assert method("postgres", "16.3", 0) == "read_replica"  # RDS may refuse it: see the fallback test
    assert method("postgres", "13.12", 7) == "snapshot"  # no cascading replicas before 14.1
    assert method("mysql", "8.0.36", 7) == "read_replica"
    assert method("mysql", "8.0.36", 0) == "snapshot"
    assert method("mariadb", "10.11.8", 0) == "snapshot"
    assert method("oracle-ee", "19.0", 7) == "snapshot"
    assert method("postgres", "13.12", 7, replica=False) == "read_replica"  # a standalone source
    assert method("postgres", "13.12", 0, replica=False) == "snapshot"


# -- PostgreSQL 16: a cascading replica of the DR replica -------------------------------------------------


@pytest.fixture(scope="class")
def postgres() -> Iterator[tuple[Sandbox, Plan]]:
    """The reference estate's pilot light: a PostgreSQL 16 DR replica (created with backups disabled)."""
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=True)
        yield sb, plan


class TestPostgresCopy:
    def test_the_copy_is_a_cascading_replica_and_the_live_replica_is_untouched(
        self, postgres: tuple[Sandbox, Plan]
    ) -> None:
        sb, plan = postgres
        args = _copy_args(plan, _drill(1, 1))
        source = args["source"]
        before = _identity(_describe(plan.dr_region, source))
        started = clock.now()

        out = rds_steps.create_drill_copy(**args)
        assert (out["done"], out["attempt"], out["method"], out["snapshot"]) == (False, 0, "read_replica", None)
        assert out["db"]["status"] == "creating" and out["db"]["replica_source"] == source
        again = rds_steps.create_drill_copy(**args)  # a retried act creates nothing more
        assert again["method"] == "read_replica" and again["db"]["identifier"] == args["identifier"]
        assert rds_steps.check_drill_copy(**args, attempt=3)["attempt"] == 4

        done = _until_copied(args)
        assert clock.now() - started == pytest.approx(duration("rds.create_replica_in_region"), abs=60)
        assert done["db"]["status"] == "available" and done["db"]["replica_source"] == source
        # In the source's region, so in its subnet group; with the plan's security groups; tagged.
        assert done["db"]["subnet_group"] == args["subnet_group"]
        assert done["db"]["security_groups"] == sorted(args["security_groups"])
        copy = _describe(plan.dr_region, args["identifier"])
        assert drill.tag_value(copy["TagList"], drill.DRILL_TAG) == args["drill_id"]
        assert drill.tag_value(copy["TagList"], drill.PLAN_TAG) == plan.name
        assert not copy.get("PubliclyAccessible")

        # The drill then promotes its copy with the failover's own step: the live replica stays a replica.
        assert rds_steps.promote_replica(plan.dr_region, args["identifier"])["promoted_now"] is True
        clock.wait_until(lambda: rds_steps.check_promoted(plan.dr_region, args["identifier"])["done"],
                         timeout=3600, step=30, what="copy promoted")
        assert _identity(_describe(plan.dr_region, source)) == before
        key = ("rds", plan.dr_region, source)
        assert not [p for p in sb.latency.phases if p.key == key and p.start >= started]

    def test_a_source_that_is_busy_is_waited_for(self, postgres: tuple[Sandbox, Plan]) -> None:
        sb, plan = postgres
        args = _copy_args(plan, _drill(2, 2))
        busy = sb.latency.hold(("rds", plan.dr_region, args["source"]), "rds.multi_az", "modifying")
        try:
            out = rds_steps.create_drill_copy(**args)
            assert (out["done"], out["db"], out["snapshot"], out["source_status"]) == (False, None, None, "modifying")
            assert rds_steps.describe_instance(boto3.client("rds", region_name=plan.dr_region),
                                               args["identifier"]) is None
        finally:
            clock.wait_until(lambda: sb.latency.busy(("rds", plan.dr_region, args["source"])) is None,
                             timeout=busy.until - clock.now() + 60, step=60, what="source idle")
        assert rds_steps.check_drill_copy(**args)["db"]["status"] == "creating"  # then the check creates it

    def test_a_cascade_rds_refuses_for_backups_falls_back_to_a_snapshot(self, postgres: tuple[Sandbox, Plan]) -> None:
        sb, plan = postgres
        args = _copy_args(plan, _drill(3, 3))
        # As RDS answers a replica of a source without automated backups (the DR replica has none).
        sb.faults.inject("rds", "CreateDBInstanceReadReplica", "InvalidDBInstanceState",
                         "Automated backups are not enabled for this DB instance. To enable automated backups, use "
                         "ModifyDBInstance to set the backup retention period to a non-zero value.")
        out = rds_steps.create_drill_copy(**args)
        assert (out["method"], out["snapshot"], out["snapshot_status"]) == ("snapshot", args["identifier"], "creating")
        clock.sleep(duration("rds.create_snapshot"))
        later = rds_steps.check_drill_copy(**args)  # the loop goes on with the snapshot, not with a new cascade
        assert (later["method"], later["db"]["status"]) == ("snapshot", "creating")
        assert later["db"]["subnet_group"] == args["subnet_group"]

    @pytest.mark.parametrize("name", ["source", "not_a_drill_name", "another_drills_name", "bad_id"])
    def test_a_copy_name_that_is_not_the_drills_is_refused(self, postgres: tuple[Sandbox, Plan], name: str) -> None:
        _, plan = postgres
        args = _copy_args(plan, _drill(4, 4))
        rds = boto3.client("rds", region_name=plan.dr_region)
        count = len(rds.describe_db_instances()["DBInstances"])
        if name == "source":
            args["identifier"] = args["source"]
        elif name == "not_a_drill_name":
            args["identifier"] = f"{args['source']}-copy"
        elif name == "another_drills_name":
            args["identifier"] = drill.drill_name(args["source"], _drill(5, 5), drill.DB_NAME_LIMIT)
        else:
            args["drill_id"] = "not-an-id"
        with pytest.raises(PreconditionFailed):
            rds_steps.create_drill_copy(**args)
        assert len(rds.describe_db_instances()["DBInstances"]) == count
        snapshots = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
        assert args["identifier"] not in {s["DBSnapshotIdentifier"] for s in snapshots}

    def test_a_missing_source_is_not_found(self, postgres: tuple[Sandbox, Plan]) -> None:
        _, plan = postgres
        args = _copy_args(plan, _drill(6, 6))
        args["source"] = "no-such-replica"
        with pytest.raises(ResourceNotFound):
            rds_steps.create_drill_copy(**args)

    # -- S3: the DR bucket ---------------------------------------------------------------------------

    def test_the_probe_reads_the_replicated_canary_and_leaves_no_version(self, postgres: tuple[Sandbox, Plan]) -> None:
        _, plan = postgres
        pair = plan.buckets[0]
        s3_steps.ensure_replication(plan.name, plan.primary_region, plan.dr_region, pair.source, pair.destination)
        canary = s3_steps.put_canary(plan.primary_region, pair.source)["key"]
        clock.sleep(duration("s3.replicate") + 45)  # replicated after 15 s, then 45 s old
        drill_id = _drill(7, 7)
        out = s3_steps.drill_probe(plan.dr_region, plan.name, drill_id, pair.destination)
        assert out["ok"] is True and out["deleted"] is True and out["read_back"] is True, out
        assert out["canary"] == {"key": canary, "age_seconds": pytest.approx(45, abs=2)}
        assert out["wrote"] == f"pilotlight-drill/{drill_id}/probe.json" and out["detail"] == []
        listed = boto3.client("s3", region_name=plan.dr_region).list_object_versions(
            Bucket=pair.destination, Prefix=drill.S3_PREFIX)
        assert not listed.get("Versions") and not listed.get("DeleteMarkers")

    def test_the_probe_without_a_canary_says_so(self, postgres: tuple[Sandbox, Plan]) -> None:
        _, plan = postgres
        s3 = boto3.client("s3", region_name=plan.dr_region)
        bucket = "shop-empty-usw2"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": plan.dr_region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        out = s3_steps.drill_probe(plan.dr_region, plan.name, _drill(8, 8), bucket)
        assert (out["ok"], out["canary"], out["deleted"]) == (False, None, True)
        assert "no canary" in out["detail"][0]
        assert not s3.list_object_versions(Bucket=bucket).get("Versions")

    def test_remove_drill_objects_removes_every_version_of_the_selected_drill_only(
        self, postgres: tuple[Sandbox, Plan]
    ) -> None:
        _, plan = postgres
        bucket = plan.buckets[1].destination
        s3 = boto3.client("s3", region_name=plan.dr_region)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        mine, other = _drill(9, 9), _drill(10, 10)
        for key in (f"pilotlight-drill/{mine}/a.json", f"pilotlight-drill/{mine}/b.json",
                    f"pilotlight-drill/{other}/a.json", "pilotlight-drill/not-a-drill/a.json", "orders/1.json"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"1")
        s3.put_object(Bucket=bucket, Key=f"pilotlight-drill/{mine}/a.json", Body=b"2")  # a second version
        s3.delete_object(Bucket=bucket, Key=f"pilotlight-drill/{mine}/b.json")  # a delete marker

        out = s3_steps.remove_drill_objects(plan.dr_region, plan.name, [bucket, "no-such-bucket"], {"ids": [mine]})
        assert (out["done"], out["left"], out["missing"]) == (True, 0, ["no-such-bucket"])
        assert len(out["deleted"]) == 4 and {d["drill"] for d in out["deleted"]} == {mine}
        assert {d["id"] for d in out["deleted"]} == {f"s3://{bucket}/pilotlight-drill/{mine}/a.json",
                                                     f"s3://{bucket}/pilotlight-drill/{mine}/b.json"}
        listed = s3.list_object_versions(Bucket=bucket)
        left = sorted(v["Key"] for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])])
        kept = ["orders/1.json", "pilotlight-drill/not-a-drill/a.json", f"pilotlight-drill/{other}/a.json"]
        assert left == sorted(kept)
        again = s3_steps.remove_drill_objects(plan.dr_region, plan.name, [bucket], {"ids": [mine]})
        assert (again["done"], again["deleted"]) == (True, [])


# -- MySQL: the DR replica has no automated backups, so the copy is restored from a snapshot --------------


@pytest.fixture(scope="class")
def mysql() -> Iterator[tuple[Sandbox, Plan]]:
    plan = load_plan(SECOND)
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=True)
        yield sb, plan


def _tagged_copy(plan: Plan, name_drill: str, tag_drill: str | None = None, tag_plan: str | None = None,
                 snapshot: bool = False) -> str:
    """A drill copy (or snapshot) of the DR replica made directly, tagged as the drill would (or not)."""
    db = plan.databases[0]
    ident = drill.drill_name(db.dr_replica_identifier, name_drill, drill.DB_NAME_LIMIT)
    tags = drill.tags(tag_plan or plan.name, tag_drill or name_drill)
    rds = boto3.client("rds", region_name=plan.dr_region)
    if snapshot:
        rds.create_db_snapshot(DBSnapshotIdentifier=ident, DBInstanceIdentifier=db.dr_replica_identifier, Tags=tags)
    else:
        rds.create_db_instance_read_replica(DBInstanceIdentifier=ident, DBInstanceClass=db.replica_instance_class,
                                            SourceDBInstanceIdentifier=db.dr_replica_identifier, Tags=tags)
    return ident


@contextlib.contextmanager
def _calls(service: str, *operations: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every ``service`` call of ``operations`` made inside (botocore's event name)."""
    seen: list[dict[str, Any]] = []
    events = boto3.DEFAULT_SESSION.events

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    names = [f"provide-client-params.{service}.{op}" for op in operations]
    for name in names:
        events.register(name, record, unique_id=f"test-calls-{name}")
    try:
        yield seen
    finally:
        for name in names:
            events.unregister(name, unique_id=f"test-calls-{name}")


@contextlib.contextmanager
def _not_indexed_yet(*arns: str) -> Iterator[None]:
    """The tagging index does not list ``arns`` yet (it is eventually consistent: a resource tagged seconds ago
    may be missing from GetResources' answers)."""
    events = boto3.DEFAULT_SESSION.events
    event = "after-call.resource-groups-tagging-api.GetResources"

    def hide(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ResourceTagMappingList"] = [m for m in parsed.get("ResourceTagMappingList") or []
                                            if m.get("ResourceARN") not in arns]

    events.register(event, hide, unique_id="test-not-indexed-yet")
    try:
        yield
    finally:
        events.unregister(event, unique_id="test-not-indexed-yet")


def _present(plan: Plan) -> tuple[set[str], set[str]]:
    rds = boto3.client("rds", region_name=plan.dr_region)
    return ({d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]},
            {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]})


class TestMysqlCopyAndTeardown:
    def test_the_copy_is_restored_from_a_snapshot_of_the_replica(self, mysql: tuple[Sandbox, Plan]) -> None:
        sb, plan = mysql
        args = _copy_args(plan, _drill(20, 1))
        before = _identity(_describe(plan.dr_region, args["source"]))
        assert before[4] == 0  # the DR replica was created with backups disabled
        started = clock.now()

        # As the RDS function: the snapshot calls are authorized on the drill snapshot's ARN.
        with _as_rds_role(sb, plan):
            out = rds_steps.create_drill_copy(**args)
            assert (out["done"], out["method"], out["snapshot"], out["db"]) == (False, "snapshot", args["identifier"],
                                                                                None)
            assert out["snapshot_status"] == "creating"
            waiting = rds_steps.check_drill_copy(**args)
            assert (waiting["done"], waiting["db"], waiting["snapshot_status"]) == (False, None, "creating")
            clock.sleep(duration("rds.create_snapshot"))
            restoring = rds_steps.check_drill_copy(**args, attempt=1)  # the snapshot is available: restored now
            assert (restoring["attempt"], restoring["method"], restoring["db"]["status"]) == (2, "snapshot",
                                                                                              "creating")
            done = _until_copied(args)
        modeled = duration("rds.create_snapshot") + duration("rds.restore_snapshot")
        assert clock.now() - started == pytest.approx(modeled, abs=60)
        assert (done["method"], done["snapshot"], done["db"]["status"]) == ("snapshot", args["identifier"], "available")
        assert done["db"]["subnet_group"] == args["subnet_group"].lower()
        assert done["db"]["security_groups"] == sorted(args["security_groups"])
        assert (done["db"]["multi_az"], done["db"]["instance_class"]) == (False, before[0])
        copy = _describe(plan.dr_region, args["identifier"])
        assert drill.tag_value(copy["TagList"], drill.DRILL_TAG) == args["drill_id"]
        assert not copy.get("PubliclyAccessible")
        assert _identity(_describe(plan.dr_region, args["source"])) == before

    def test_teardown_removes_the_selected_drills_instances_and_snapshots_only(
        self, mysql: tuple[Sandbox, Plan]
    ) -> None:
        sb, plan = mysql
        live = plan.databases[0].dr_replica_identifier
        mine, other = _drill(11, 11), _drill(12, 12)
        copy, snap = _tagged_copy(plan, mine), _tagged_copy(plan, mine, snapshot=True)
        others = {_tagged_copy(plan, other), _tagged_copy(plan, other, snapshot=True)}
        mislabelled = _tagged_copy(plan, _drill(13, 13), tag_drill=mine)  # its name says one drill, its tag another
        foreign = _tagged_copy(plan, _drill(14, 14), tag_plan="another-plan")
        guarded = _tagged_copy(plan, _drill(15, 15))
        protected = [plan.databases[0].identifier, live, guarded]
        clock.sleep(duration("rds.create_snapshot"))
        sb.faults.inject("rds", "DeleteDBInstance", "InvalidDBInstanceState", "Instance is not available.")
        keep_ids = {"ids": [mine, drill.id_in_name(guarded)]}

        # As the RDS function, whose role may not list the region's instances or snapshots (db:*, snapshot:*).
        with _as_rds_role(sb, plan), _calls("rds", "DescribeDBInstances", "DescribeDBSnapshots") as reads:
            first = rds_steps.remove_drill_databases(plan.dr_region, plan.name, keep_ids, protected)
            # The instance could not be deleted yet: tried again by the check; the snapshot was.
            assert first["deleted"] == [{"kind": "db_snapshot", "id": snap, "drill": mine}]
            assert (first["done"], first["remaining"], first["left"]) == (False, [copy], 1)
            second = rds_steps.check_drill_databases_removed(plan.dr_region, plan.name, keep_ids, protected,
                                                             attempt=0, deleted=first["deleted"])
            assert second["deleted_now"] == [{"kind": "db_instance", "id": copy, "drill": mine}]
            assert second["deleted"] == [*first["deleted"], *second["deleted_now"]]  # the loop's, so far
            assert (second["attempt"], second["remaining"]) == (1, [copy])  # deleting, as AWS shows it
            third = rds_steps.check_drill_databases_removed(plan.dr_region, plan.name, keep_ids, protected,
                                                            attempt=1, deleted=second["deleted"])
        # Each read names one resource, and only what the tags select: the selected drill's copy and snapshot.
        assert all(r.get("DBInstanceIdentifier") or r.get("DBSnapshotIdentifier") for r in reads)
        assert {r.get("DBInstanceIdentifier") or r.get("DBSnapshotIdentifier") for r in reads} == {copy, snap}
        assert (third["done"], third["deleted_now"], third["remaining"], third["left"]) == (True, [], [], 0)
        assert third["deleted"] == second["deleted"]

        instances, snapshots = _present(plan)
        assert copy not in instances and snap not in snapshots
        assert {live, mislabelled, foreign, guarded} <= instances
        assert others <= instances | snapshots

    def test_a_snapshot_still_being_created_is_removed_by_a_later_check(self, mysql: tuple[Sandbox, Plan]) -> None:
        _, plan = mysql
        mine = _drill(16, 16)
        snap = _tagged_copy(plan, mine, snapshot=True)
        first = rds_steps.remove_drill_databases(plan.dr_region, plan.name, {"ids": [mine]})
        assert (first["done"], first["deleted"], first["remaining"]) == (False, [], [snap])
        clock.sleep(duration("rds.create_snapshot"))
        later = rds_steps.check_drill_databases_removed(plan.dr_region, plan.name, {"ids": [mine]}, attempt=4,
                                                        deleted=first["deleted"])
        assert later["deleted"] == later["deleted_now"] == [{"kind": "db_snapshot", "id": snap, "drill": mine}]
        assert (later["done"], later["attempt"]) == (True, 5)

    def test_the_sweep_spares_running_and_recent_drills(self, mysql: tuple[Sandbox, Plan]) -> None:
        sb, plan = mysql
        old, running, recent = _drill(30, 30), _drill(31, 31), _drill(32, 0.1)
        # Tagged with a plan of their own, so that the sweep sees no other test's leftovers.
        names = {d: _tagged_copy(plan, d, tag_plan="swept") for d in (old, running, recent)}
        sweep = {"sweep": {"running": [running], "older_than_seconds": 3600}}
        with _as_rds_role(sb, plan):
            out = rds_steps.remove_drill_databases(plan.dr_region, "swept", sweep, [plan.databases[0].identifier],
                                                   replicas=[plan.databases[0].dr_replica_identifier])
        assert {d["drill"] for d in out["deleted"]} == {old}
        instances, _ = _present(plan)
        assert names[old] not in instances and {names[running], names[recent]} <= instances

    def test_a_copy_the_tagging_index_lacks_is_found_by_its_name(self, mysql: tuple[Sandbox, Plan]) -> None:
        sb, plan = mysql
        live = plan.databases[0].dr_replica_identifier
        mine = _drill(17, 17)
        copy, snap = _tagged_copy(plan, mine), _tagged_copy(plan, mine, snapshot=True)
        clock.sleep(duration("rds.create_snapshot"))
        arn = f"arn:aws:rds:{plan.dr_region}:{sb.account_id}"
        with _not_indexed_yet(f"{arn}:db:{copy}", f"{arn}:snapshot:{snap}"), _as_rds_role(sb, plan):
            # Found by its tags only, the just-made copy is missed ...
            missed = rds_steps.remove_drill_databases(plan.dr_region, plan.name, {"ids": [mine]})
            assert (missed["done"], missed["deleted"]) == (True, [])
            # ... so the teardown of given drills also reads the names their copies of the DR replicas have.
            out = rds_steps.remove_drill_databases(plan.dr_region, plan.name, {"ids": [mine]}, replicas=[live])
        assert out["deleted"] == [{"kind": "db_instance", "id": copy, "drill": mine},
                                  {"kind": "db_snapshot", "id": snap, "drill": mine}]
        instances, snapshots = _present(plan)
        assert copy not in instances and snap not in snapshots and live in instances

    def test_a_copy_found_by_its_name_still_needs_the_drills_tags(self, mysql: tuple[Sandbox, Plan]) -> None:
        sb, plan = mysql
        live = plan.databases[0].dr_replica_identifier
        mine = _drill(18, 18)
        foreign = _tagged_copy(plan, mine, tag_plan="another-plan")  # the drill's name, another plan's tags
        with _as_rds_role(sb, plan):
            out = rds_steps.remove_drill_databases(plan.dr_region, plan.name, {"ids": [mine]}, replicas=[live])
            # A sweep names no drill: it reads no name, only what the tags list.
            swept = rds_steps.remove_drill_databases(plan.dr_region, plan.name,
                                                     {"sweep": {"running": [], "older_than_seconds": 3600 * 1000}},
                                                     replicas=[live])
        assert (out["done"], out["deleted"], swept["deleted"]) == (True, [], [])
        assert foreign in _present(plan)[0]


# -- the IAM the sandbox enforces on these calls ---------------------------------------------------------


def test_the_enforcer_checks_snapshots_on_their_arn_and_versioned_deletes_as_delete_object_version() -> None:
    plan = load_plan(REFERENCE)
    enforcer = Enforcer("123456789012")
    policy = plan_iam.statements(plan_iam.registry_for("rds"), plan, account="123456789012",
                                 extra={"topic": [], "key": []})
    region, live = plan.dr_region, plan.databases[0].dr_replica_identifier
    copy = drill.drill_name(live, _drill(40), drill.DB_NAME_LIMIT)
    arn = f"arn:aws:rds:{region}:123456789012"
    ctx = {"aws:RequestedRegion": region}

    def allowed(service: str, operation: str, params: dict[str, Any]) -> bool:
        return all(enforcer.allowed(policy, action, resource, ctx)
                   for action, resource in enforcer.requests(service, operation, params, region))

    # RDS snapshots: on the snapshot's ARN (and the instance's where the call names one).
    assert enforcer.requests("rds", "CreateDBSnapshot", {"DBSnapshotIdentifier": copy, "DBInstanceIdentifier": live},
                             region) == [("rds:CreateDBSnapshot", f"{arn}:snapshot:{copy}"),
                                         ("rds:CreateDBSnapshot", f"{arn}:db:{live}")]
    assert enforcer.requests("rds", "RestoreDBInstanceFromDBSnapshot",
                             {"DBSnapshotIdentifier": copy, "DBInstanceIdentifier": copy}, region) == [
        ("rds:RestoreDBInstanceFromDBSnapshot", f"{arn}:snapshot:{copy}"),
        ("rds:RestoreDBInstanceFromDBSnapshot", f"{arn}:db:{copy}")]
    assert enforcer.requests("rds", "DescribeDBSnapshots", {}, region) == [
        ("rds:DescribeDBSnapshots", f"{arn}:snapshot:*")]
    for operation in ("DeleteDBSnapshot", "DescribeDBSnapshots"):
        assert allowed("rds", operation, {"DBSnapshotIdentifier": copy}), operation
        assert not allowed("rds", operation, {"DBSnapshotIdentifier": f"{live}-manual"}), operation
    assert not allowed("rds", "CreateDBSnapshot", {"DBSnapshotIdentifier": f"{live}-manual",
                                                   "DBInstanceIdentifier": live})
    assert not allowed("rds", "DescribeDBSnapshots", {})  # a listing of the region's snapshots
    assert allowed("rds", "ListTagsForResource", {"ResourceName": f"{arn}:snapshot:{copy}"})
    assert not allowed("rds", "ListTagsForResource", {"ResourceName": f"{arn}:snapshot:{live}-manual"})
    # The teardown finds drill leftovers by tag: tag:GetResources, granted on "*".
    assert enforcer.requests("resource-groups-tagging-api", "GetResources", {}, region) == [("tag:GetResources", None)]
    assert allowed("resource-groups-tagging-api", "GetResources", {"TagFilters": [{"Key": drill.PLAN_TAG}]})

    # S3: a delete that names a version is s3:DeleteObjectVersion, key by key in a batch.
    obj = "arn:aws:s3:::b/k"
    assert enforcer.requests("s3", "DeleteObject", {"Bucket": "b", "Key": "k"}, region) == [("s3:DeleteObject", obj)]
    assert enforcer.requests("s3", "DeleteObject", {"Bucket": "b", "Key": "k", "VersionId": "v1"}, region) == [
        ("s3:DeleteObjectVersion", obj)]
    batch = {"Bucket": "b", "Delete": {"Objects": [{"Key": "k", "VersionId": "v1"}, {"Key": "j"}]}}
    assert enforcer.requests("s3", "DeleteObjects", batch, region) == [("s3:DeleteObjectVersion", obj),
                                                                       ("s3:DeleteObject", "arn:aws:s3:::b/j")]
    s3_policy = [{"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": ["arn:aws:s3:::b/*"]}]
    assert enforcer.allowed(s3_policy, "s3:DeleteObject", obj, ctx)
    assert not enforcer.allowed(s3_policy, "s3:DeleteObjectVersion", obj, ctx)
