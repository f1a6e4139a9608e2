"""The drill workflow: the failover rehearsed on copies, measured, and the teardown that removes them.

A drill runs the failover's own steps (the builders of :mod:`workflows.failover`, the same Lambda
actions) on copies named and tagged with the drill's id (:mod:`lambdas.drill`):

1. Prepare: refuse while a failover or another drill runs, or while readiness is NOT_READY on a
   database or saved configuration (unless forced); name the copies.
2. Restore, in parallel: per database, read the live DR replica's lag (the RPO), copy it (a
   same-region read replica of it, or a snapshot of it restored where the engine cannot cascade) and
   promote the copy; per environment, launch a drill environment from the DR saved configuration,
   its database endpoint pointed at the copy; per DR bucket, read the newest canary and write and
   delete one object under the drill's prefix.
3. Point a drill record (``drill-<id>.<record>``) at the drill environment, then the failover's
   verification on the copies: a canary write and read in each database copy (each Aurora clone through the
   RDS Data API, its HTTP endpoint enabled as the live DR cluster's is), each drill environment's
   URL requested over HTTP (the plan's ``probes``). The plan's DNS name is not probed (production records
   are not moved). Service restored here: the drill's RTO.
4. Harden the copies as the failover would (Multi-AZ, failover class) unless ``harden: false``.

The live DR replica, the production record, its health checks and alarms, and the DR environment
are never named by a drill step. Teardown is a workflow of its own, started by EventBridge when a
drill ends in any way (an aborted or timed-out execution runs no Catch), by the daily sweep, and by
``pilotlight drill-cleanup``: it removes every resource of the selected drills.
"""

from __future__ import annotations

from typing import Any

from workflows import asl, failover, failover_tiers, failures
from workflows.plan import Plan

MACHINE_TIMEOUT = 6 * 3600
TEARDOWN_TIMEOUT = 3 * 3600
# The copy: a same-region replica (or a restore) takes about as long as creating an instance.
COPY_FIRST, COPY_POLL, COPY_MAX = 300, 15, 240  # p50 ~10 min; checks until 65 min
# Teardown: terminating an environment ~4 min, deleting an instance ~5 min; a copy still being created
# is deleted once it can be, so the limits cover a creation too.
REMOVE_FIRST, REMOVE_POLL, REMOVE_MAX = 60, 30, 120  # checks until 61 min

COPY_STEP = "Copy DR replica"
PREPARE_STEP = "Prepare drill"


def drill_document(plan: Plan) -> dict[str, Any]:
    """The failover's plan document, plus what a drill needs to name and place its copies."""
    doc = failover.plan_document(plan)
    # The canary's view of each database (engine, the plan's credentials secret, heartbeat column), as the failover's.
    canaries = failover.data_params(plan)["databases"]
    for item, db, canary in zip(doc["databases"], plan.rds_databases, canaries, strict=True):
        item.update(subnet_group=db.dr_network.subnet_group, security_groups=list(db.dr_network.security_groups),
                    **{k: canary[k] for k in ("engine", "credentials_secret", "heartbeat_column")})
    for item, adb in zip(doc.get("aurora") or [], plan.aurora_databases, strict=True):
        # The Data API canary's view of the clone (engine, the plan's credentials secret), as the failover's.
        item.update(subnet_group=adb.dr_network.subnet_group, security_groups=list(adb.dr_network.security_groups),
                    engine=adb.engine, credentials_secret=adb.credentials_secret_name)
    doc["buckets"] = [b.destination for b in plan.buckets]
    # Only the record's place: the drill record and its target are the drill's own (lambdas/drill.py copies).
    doc["dns"] = None
    if plan.dns is not None and plan.dns_environment is not None:
        doc["dns"] = {"hosted_zone_id": plan.dns.hosted_zone_id, "record_name": plan.dns.record_name,
                      "record_type": plan.dns.record_type, "ttl": plan.dns.ttl,
                      "environment": plan.dns_environment.name}
    return doc


def _copy_states() -> tuple[str, dict[str, asl.State]]:
    params = {
        "region.$": "$.dr_region",
        "plan.$": "$.plan",
        "drill_id.$": "$.drill",
        "source.$": "$.db.identifier",
        "identifier.$": "$.db.dr_replica_identifier",
        "subnet_group.$": "$.db.subnet_group",
        "security_groups.$": "$.db.security_groups",
    }
    return "CopyDatabase", asl.poll_loop(
        "CopyDatabase",
        COPY_STEP,
        service="rds",
        act=("create_drill_copy", params),
        check=("check_drill_copy", params),
        interval_seconds=COPY_POLL,
        first_wait_seconds=COPY_FIRST,
        max_attempts=COPY_MAX,
        next_state="PromoteReplica",
        what="drill copy of the DR replica",
    )


CLONE_STEP = "Clone Aurora secondary"
# A clone (copy-on-write) takes minutes; its instance about as long as any new instance (~10 min).
CLONE_FIRST, CLONE_POLL, CLONE_MAX = 300, 15, 240  # checks until 65 min


def _aurora_states() -> dict[str, asl.State]:
    """Per Aurora Global Database: the live secondary's lag (the RPO), then a clone of it with an instance,
    standalone and writable: the drill's writer. The live secondary and the global cluster are only read."""
    params = {"region.$": "$.dr_region", "plan.$": "$.plan", "drill_id.$": "$.drill",
              "dr_cluster.$": "$.aurora.live_cluster", "instance_class.$": "$.aurora.dr_instance_class",
              "subnet_group.$": "$.aurora.subnet_group", "security_groups.$": "$.aurora.security_groups"}
    states: dict[str, asl.State] = {"MeasureGlobalLag": failover.aurora_lag_state(
        "CloneCluster", cluster="$.aurora.live_cluster")}
    states["MeasureGlobalLag"]["Comment"] = CLONE_STEP
    states.update(asl.poll_loop(
        "CloneCluster", CLONE_STEP, service="aurora", act=("create_drill_clone", params),
        check=("check_drill_clone", params), interval_seconds=CLONE_POLL, first_wait_seconds=CLONE_FIRST,
        max_attempts=CLONE_MAX, next_state="CloneReady", what="drill clone of the Aurora secondary"))
    states["CloneReady"] = asl.end_pass(CLONE_STEP, {
        "identifier.$": "$.aurora.dr_cluster", "source.$": "$.aurora.live_cluster", "kind": "aurora-global",
        "rpo.$": "$.rpo", "cluster.$": "$.poll.cluster"})
    return states


DRILL_GROUP_STEP = "Launch drill group"


def _compute_states() -> dict[str, asl.State]:
    """Per Auto Scaling group: the failover capacity, then a drill group of that size from the DR launch
    template, in service and healthy. The production DR group and its target groups are never named."""
    params = {"region.$": "$.dr_region", "plan.$": "$.plan", "drill_id.$": "$.drill",
              "dr_group_name.$": "$.group.dr_group_name", "dr_launch_template.$": "$.group.dr_launch_template",
              "subnets.$": "$.group.subnets", "desired.$": "$.capacity.desired"}
    states: dict[str, asl.State] = {"FailoverCapacity": failover.capacity_state("LaunchDrillGroup",
                                                                                DRILL_GROUP_STEP)}
    states.update(asl.poll_loop(
        "LaunchDrillGroup", DRILL_GROUP_STEP, service="autoscaling", act=("create_drill_group", params),
        check=("check_drill_group", params), interval_seconds=failover.SCALE_POLL,
        first_wait_seconds=failover.SCALE_FIRST, max_attempts=failover.SCALE_MAX, next_state="DrillGroupReady",
        what="drill group in service"))
    states["DrillGroupReady"] = asl.end_pass(DRILL_GROUP_STEP, {
        "group.$": "$.poll.group", "source.$": "$.group.dr_group_name", "capacity.$": "$.capacity",
        "in_service.$": "$.poll.in_service"})
    return states


def _table_states() -> dict[str, asl.State]:
    """Per global table: the replication latency (the RPO), then a marker item written, read back and
    deleted in the DR replica under the drill's key."""
    states: dict[str, asl.State] = {"TableLatency": failover_tiers.table_latency_state("DrillMarker")}
    states["DrillMarker"] = asl.task(
        failover.TABLE_STEP, "dynamodb", "drill_marker",
        {"region.$": "$.dr_region", "plan.$": "$.plan", "drill_id.$": "$.drill", "table.$": "$.table.name"},
        result_path="$.verified", next_state="TableChecked")
    states["TableChecked"] = asl.end_pass(failover.TABLE_STEP, {"table.$": "$.table.name", "rpo.$": "$.rpo",
                                                                "verified.$": "$.verified"})
    return states


def _probe_branch() -> asl.State:
    probe = asl.task("Probe S3", "s3", "drill_probe", {"region.$": "$.dr_region", "plan.$": "$.plan",
                                                        "drill_id.$": "$.drill", "bucket.$": "$.bucket"},
                     result_path=None, next_state=None)
    probe["ResultPath"] = "$"
    return failover.branch("Buckets", failover._map("Probe S3", "$.drill.buckets", "bucket", "ProbeBucket",
                                                    {"ProbeBucket": probe}, {"drill.$": "$.drill.id"}))


RECORD_STATE = "VerifyDrillRecord"


def not_probed(plan: Plan) -> list[dict[str, str]]:
    """What a drill never requests over HTTP, and why (the drill's output says so beside its probes)."""
    assert plan.dns is not None
    probe = failover._verify_params(plan)["probe"]
    return [{"url": f"{probe['scheme']}://{plan.dns.record_name.rstrip('.')}{probe['path']}",
             "reason": "not probed in a drill: production records are not moved, so the plan's DNS name still "
                       "answers from the primary; the drill record is checked at Route 53 instead"}]


def _verify_states(plan: Plan, record: bool) -> dict[str, asl.State]:
    """The failover's verification (:func:`workflows.failover.verify_states`: same state names, Lambda actions and
    ``ServiceNotVerified``) on the drill's copies only: a canary write and read in each database copy and, through
    the RDS Data API, in each Aurora clone; then each drill environment Ready/Green with its URL answering the plan's
    probe, each copy writable.

    With a drill record (``record``) it is checked first at Route 53 (it answers the drill environment); it is not
    requested over HTTP (a name under the production zone, whose certificate and host rules are production's), and
    the plan's DNS name is not probed at all: a drill does not move it."""
    verify = {"region": plan.dr_region, "environments.$": "$.drill.environments",
              "databases.$": "$.drill.databases", "probe": failover._verify_params(plan)["probe"]}
    data = None
    if plan.rds_databases:
        # The copies (lambdas/drill.py copies: "canary"), never the live DR replica the failover's parameters name.
        data = {k: v for k, v in failover.data_params(plan).items() if k != "databases"}
        data["databases.$"] = "$.drill.canary"
    states: dict[str, asl.State] = {}
    if record:
        check = {"region": plan.dr_region, "dns_record.$": "$.drill.verify_dns"}
        states.update(asl.poll_loop(
            RECORD_STATE, "Verify service", service="verify", act=("verify_service", check),
            check=("verify_service", check), interval_seconds=failover.VERIFY_POLL, max_attempts=failover.VERIFY_MAX,
            next_state="DrillRecordVerified", what="drill record"))
        states[f"{RECORD_STATE}TimedOut"] = failover._not_verified(RECORD_STATE)
        states["DrillRecordVerified"] = {"Type": "Pass", "Comment": "Verify service",
                                         "Parameters": {"checks.$": "$.poll.checks"}, "ResultPath": "$.drill_record",
                                         "Next": "VerifyService"}
    aurora = None
    if plan.aurora_databases:
        # The clones (lambdas/drill.py copies: "aurora"), never the live DR cluster the failover's parameters name.
        aurora = {k: v for k, v in failover_tiers.aurora_canary_params(plan).items() if k != "clusters"}
        aurora["clusters.$"] = "$.drill.aurora"
    states.update(failover.verify_states(verify, "RecordDrill", data, aurora=aurora))
    return states


def build(plan: Plan) -> dict[str, Any]:
    selector = {"drill.$": "$.drill.id"}
    branches = failover.restore_branches(
        plan, "$.drill", extra_selector=selector, before_promote=_copy_states(), lag_of="$.db.identifier",
        lag_step=COPY_STEP, extra_launch={"drill.$": "$.env.drill"},
        # The databases' Map opens with the copy: labelled as the copy, the promote step starts when it does.
        db_map_step=COPY_STEP, aurora_states=_aurora_states(), tables_states=_table_states(),
        aurora_map_step=CLONE_STEP, compute_states=_compute_states(), compute_map_step=DRILL_GROUP_STEP)
    if plan.buckets:
        branches.append(("buckets", _probe_branch()))
    cutover = "DrillDns" if plan.dns is not None and plan.dns_environment is not None else "VerifyService"
    states: dict[str, asl.State] = {
        "LoadPlan": {"Type": "Pass", "Comment": "Load plan",
                     "Parameters": {"plan": drill_document(plan), "trigger.$": "$"}, "Next": "PrepareDrill"},
        "PrepareDrill": asl.task(
            PREPARE_STEP, "drill", "start",
            {"plan": plan.name, "region": plan.dr_region, "state_machine_arn.$": "$$.StateMachine.Id",
             "execution_arn.$": "$$.Execution.Id", "started.$": "$$.Execution.StartTime",
             "trigger.$": "$.trigger", "doc.$": "$.plan"},
            result_path="$.drill", next_state="Restore" if branches else cutover),
    }
    if branches:
        states["Restore"] = failover.parallel("Restore", branches, "$.restore", cutover)
    if cutover == "DrillDns":
        states.update(failover.records_loop("DrillDns", "Point drill record", "$.drill.dns", RECORD_STATE))
    states.update(_verify_states(plan, cutover == "DrillDns"))
    hardens = plan.rds_databases or plan.aurora_databases
    states["RecordDrill"] = {
        **asl.task("Service restored", "drill", "record",
                   {"plan": plan.name, "region": plan.dr_region, "started.$": "$$.Execution.StartTime",
                    "restored_at.$": "$.restored.at"},
                   result_path="$.recorded", next_state="HardenWanted?" if hardens else "Summary"),
        # The metric is evidence for the dashboard, not a gate: the drill goes on without it.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.recorded",
                   "Next": "HardenWanted?" if hardens else "Summary"}],
    }
    after_rds = "HardenAurora" if plan.aurora_databases else "Summary"
    if hardens:
        states["HardenWanted?"] = {
            # Labelled with the step before it: a drill run with --no-harden shows no Harden step.
            "Type": "Choice", "Comment": "Service restored",
            "Choices": [{"Variable": "$.drill.options.harden", "BooleanEquals": True,
                         "Next": "Harden" if plan.rds_databases else after_rds}],
            "Default": "Summary",
        }
    if plan.rds_databases:
        states["Harden"] = failover.harden_state("$.drill.databases", after_rds, selector)
    if plan.aurora_databases:
        states["HardenAurora"] = failover.harden_aurora_state("$.drill.aurora", "Summary", selector)
    summary: dict[str, Any] = {
        "plan.$": "$.plan.name",
        "dr_region.$": "$.plan.dr_region",
        "drill.$": "$.drill",
        "restored.$": "$.restored",
        "finished_at.$": "$$.State.EnteredTime",
        "objectives.$": "$.plan.objectives",
    }
    if branches:
        summary["restore.$"] = "$.restore"
    if cutover == "DrillDns":
        summary["drill_record.$"] = "$.drill_record.checks"
    if plan.dns is not None:
        summary["not_probed"] = not_probed(plan)
    states["Summary"] = {"Type": "Pass", "Comment": "Summary", "Parameters": summary, "End": True}
    # A refused drill (PrepareDrill) has made nothing; after it, the record names the drill's copies too.
    failures.add_record(states, plan, "drill", skip=("PrepareDrill",), drill_path="$.drill")
    return asl.machine(f"pilotlight drill for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)


# -- teardown --------------------------------------------------------------------------------------


def teardown_document(plan: Plan) -> dict[str, Any]:
    protected_dbs = sorted({n for d in plan.rds_databases for n in
                            (d.identifier, d.dr_replica_identifier, *([d.az2_replica.identifier] if d.az2_replica
                                                                      else []))})
    doc: dict[str, Any] = {
        "name": plan.name,
        "dr_region": plan.dr_region,
        "protected_databases": protected_dbs,
        # A copy just made may not be in the tagging index yet: it is also looked for by the name it would have.
        "dr_replicas": sorted({d.dr_replica_identifier for d in plan.rds_databases}),
        "protected_environments": sorted({n for e in plan.environments for n in (e.name, e.dr_environment_name)}),
        "buckets": [b.destination for b in plan.buckets],
        "protected_clusters": sorted({n for a in plan.aurora_databases
                                      for n in (a.identifier, a.dr_cluster_identifier)}),
        "dr_clusters": sorted({a.dr_cluster_identifier for a in plan.aurora_databases}),
        "tables": [t.name for t in plan.tables],
        "protected_groups": sorted({n for g in plan.compute for n in (g.name, g.dr_group_name)}),
        "dr_groups": sorted({g.dr_group_name for g in plan.compute}),
    }
    for tier in ("protected_clusters", "dr_clusters", "tables", "protected_groups", "dr_groups"):
        if not doc[tier]:  # only what the plan has: other plans' definitions stay as they were
            del doc[tier]
    if plan.dns is not None:
        doc["dns"] = {"hosted_zone_id": plan.dns.hosted_zone_id, "record_name": plan.dns.record_name}
    return doc


def _remove_loop(name: str, step: str, act: str, check: str, params: dict[str, Any], what: str,
                 service: str) -> asl.State:
    """Delete, then check until nothing selected is left; each check adds what it deleted to ``deleted``."""
    states = asl.poll_loop(name, step, service=service, act=(act, params),
                           check=(check, {**params, "deleted.$": "$.poll.deleted"}),
                           interval_seconds=REMOVE_POLL, first_wait_seconds=REMOVE_FIRST, max_attempts=REMOVE_MAX,
                           next_state=f"{name}Done", what=what)
    states[f"{name}Done"] = asl.end_pass(step, {"deleted.$": "$.poll.deleted", "left.$": "$.poll.left",
                                                "remaining.$": "$.poll.remaining"})
    return {"StartAt": name, "States": states}


def build_teardown(plan: Plan) -> dict[str, Any]:
    base = {"region": plan.dr_region, "plan": plan.name, "drills.$": "$.targets.drills"}
    branches: list[tuple[str, asl.State]] = []
    if plan.environments:
        branches.append(("environments", _remove_loop(
            "RemoveEnvironments", "Remove drill environments", "remove_drill_environments",
            "check_drill_environments_removed", {**base, "protected.$": "$.plan.protected_environments"},
            "drill environment termination", "beanstalk")))
    if plan.rds_databases:
        branches.append(("databases", _remove_loop(
            "RemoveDatabases", "Remove drill databases", "remove_drill_databases", "check_drill_databases_removed",
            {**base, "protected.$": "$.plan.protected_databases", "replicas.$": "$.plan.dr_replicas"},
            "drill database deletion", "rds")))
    if plan.compute:
        branches.append(("groups", _remove_loop(
            "RemoveGroups", "Remove drill groups", "remove_drill_groups", "check_drill_groups_removed",
            {**base, "protected.$": "$.plan.protected_groups", "dr_groups.$": "$.plan.dr_groups"},
            "drill group deletion", "autoscaling")))
    if plan.aurora_databases:
        branches.append(("clusters", _remove_loop(
            "RemoveClusters", "Remove drill clusters", "remove_drill_clusters", "check_drill_clusters_removed",
            {**base, "protected.$": "$.plan.protected_clusters", "dr_clusters.$": "$.plan.dr_clusters"},
            "drill cluster deletion", "aurora")))
    if plan.tables:
        branches.append(("items", failover.branch("RemoveItems", asl.task(
            "Remove drill items", "dynamodb", "remove_drill_items",
            {"region": plan.dr_region, "plan": plan.name, "tables.$": "$.plan.tables",
             "drills.$": "$.targets.drills"}, result_path="$", next_state=None))))
    if plan.dns is not None:
        branches.append(("dns", failover.branch("RemoveRecords", asl.task(
            "Remove drill records", "dns", "remove_drill_records",
            {"zone_id.$": "$.plan.dns.hosted_zone_id", "record_name.$": "$.plan.dns.record_name",
             "drills.$": "$.targets.drills"}, result_path="$", next_state=None))))
    if plan.buckets:
        branches.append(("objects", failover.branch("RemoveObjects", asl.task(
            "Remove drill objects", "s3", "remove_drill_objects",
            {"region": plan.dr_region, "plan": plan.name, "buckets.$": "$.plan.buckets",
             "drills.$": "$.targets.drills"}, result_path="$", next_state=None))))
    states: dict[str, asl.State] = {
        "LoadPlan": {"Type": "Pass", "Comment": "Load plan",
                     "Parameters": {"plan": teardown_document(plan), "request.$": "$"}, "Next": "SelectDrills"},
        "SelectDrills": asl.task(
            "Select drills", "drill", "targets",
            {"plan": plan.name, "region": plan.dr_region, "state_machine_arn.$": "$$.StateMachine.Id",
             "request.$": "$.request", "keep_hours": plan.drills.keep_hours},
            result_path="$.targets", next_state="Kept?"),
        "Kept?": {"Type": "Choice", "Comment": "Select drills",
                  "Choices": [{"Variable": "$.targets.keep", "BooleanEquals": True, "Next": "Kept"}],
                  "Default": "Remove" if branches else "Summary"},
        "Kept": {"Type": "Pass", "Comment": "Kept on request",
                 "Parameters": {"plan.$": "$.plan.name", "kept": True, "targets.$": "$.targets",
                                "how": f"pilotlight drill-cleanup <plan file of {plan.name}> --drill <id>"},
                 "End": True},
    }
    if branches:
        states["Remove"] = failover.parallel("Remove", branches, "$.removed", "Summary")
    states["Summary"] = {"Type": "Pass", "Comment": "Summary",
                         "Parameters": {"plan.$": "$.plan.name", "kept": False, "targets.$": "$.targets",
                                        **({"removed.$": "$.removed"} if branches else {})},
                         "End": True}
    failures.add_record(states, plan, "drill-teardown")
    return asl.machine(f"pilotlight drill teardown for plan {plan.name}", "LoadPlan", states, TEARDOWN_TIMEOUT)


