"""The failover's steps for the data and compute tiers beside RDS and Beanstalk: Aurora Global Database,
DynamoDB global tables and EC2 Auto Scaling groups (state builders :mod:`workflows.failover` and
:mod:`workflows.drill` assemble).

Each is a dict of states for one Map item (``$.aurora``, ``$.table``, ``$.group``, with ``$.dr_region``,
``$.primary_region`` and ``$.rpo_minutes`` selected beside it), ending in a Pass that shapes the item's result.
"""

from __future__ import annotations

from typing import Any

from workflows import asl
from workflows.plan import Plan

# Aurora Global Database: a managed switchover or failover takes 1-2 min (p50 ~1 min); an instance for a
# headless secondary ~10 min (as creating an RDS instance).
WRITER_FIRST, WRITER_POLL, WRITER_MAX = 30, 5, 180  # checks until 15 min
INSTANCE_FIRST, INSTANCE_POLL, INSTANCE_MAX = 300, 10, 256  # p50 ~10 min; checks until 47 min
READERS_FIRST, READERS_POLL, READERS_MAX = 300, 60, 60  # after service is restored; 65 min
# The new writer's class change after service is restored (as the RDS resize: p50 10-20 min; 75 min).
RESIZE_FIRST, RESIZE_POLL, RESIZE_MAX = 300, 60, 71
AURORA_STEP = "Move Aurora writer"
SCALE_STEP = "Scale DR group"
# Auto Scaling: instances launched, in service and healthy in their target groups (EC2 launch, boot and
# health checks): a few minutes. Checks from half the p50, every 10 s, until 30 min.
SCALE_FIRST, SCALE_POLL, SCALE_MAX = 90, 10, 171
TABLE_STEP = "Verify DR table"


def compute_documents(plan: Plan) -> list[dict[str, Any]]:
    return [{
        "name": g.name,
        "dr_group_name": g.dr_group_name,
        "dr_launch_template": g.dr_launch_template,
        "subnets": list(g.dr_network.subnets),
        "capacity": g.failover_capacity.model_dump(),
        "max_size": g.max_size,
        "target_group_arns": list(g.dr_target_group_arns),
    } for g in plan.compute]


def aurora_documents(plan: Plan) -> list[dict[str, Any]]:
    return [{
        "global_cluster": db.global_cluster_identifier,
        "identifier": db.identifier,
        "dr_cluster": db.dr_cluster_identifier,
        "dr_instance_class": db.dr_instance_class,
        "failover_instance_class": db.failover_instance_class,
        "failover_readers": db.failover_readers,
        "ungraceful": db.ungraceful,
    } for db in plan.aurora_databases]


def aurora_lag_state(next_state: str, cluster: str = "$.aurora.dr_cluster") -> asl.State:
    """The secondary's lag just before the writer moves: the RPO a failover with data loss accepts."""
    # Evidence, not a gate (as the RDS lag): a metric that cannot be read does not hold the failover.
    return asl.evidence_task(AURORA_STEP, "aurora", "global_lag",
                             {"region.$": "$.dr_region", "dr_cluster.$": cluster, "rpo_minutes.$": "$.rpo_minutes"},
                             result_path="$.rpo", next_state=next_state)


def restore_aurora_states() -> dict[str, asl.State]:
    """Per Aurora Global Database: lag (RPO), mode, a writer-capable instance, move the writer, confirm.

    The mode is the execution input's ``mode`` (``pilotlight failover --mode``) or ``auto``: a managed
    switchover (RPO 0) when the primary region answers, a failover with data loss (or detaching the
    secondary) when it does not.
    """
    cluster = {"region.$": "$.dr_region", "dr_cluster.$": "$.aurora.dr_cluster"}
    states: dict[str, asl.State] = {
        "MeasureGlobalLag": aurora_lag_state("ChooseMode"),
        "ChooseMode": asl.task(
            AURORA_STEP, "aurora", "choose_mode",
            {"primary_region.$": "$.primary_region", "region.$": "$.dr_region",
             "global_cluster.$": "$.aurora.global_cluster", "identifier.$": "$.aurora.identifier",
             "dr_cluster.$": "$.aurora.dr_cluster", "mode.$": "$.mode"},
            result_path="$.mode_choice", next_state="EnsureWriterInstance"),
    }
    states.update(asl.poll_loop(
        "EnsureWriterInstance", AURORA_STEP, service="aurora",
        act=("ensure_writer_instance", {**cluster, "instance_class.$": "$.aurora.dr_instance_class"}),
        check=("check_writer_instance", {**cluster, "instance_class.$": "$.aurora.dr_instance_class"}),
        interval_seconds=INSTANCE_POLL, first_wait_seconds=INSTANCE_FIRST, max_attempts=INSTANCE_MAX,
        next_state="SwitchWriter", what="writer-capable instance in the DR cluster"))
    global_cluster = {**cluster, "global_cluster.$": "$.aurora.global_cluster"}
    states.update(asl.poll_loop(
        "SwitchWriter", AURORA_STEP, service="aurora",
        act=("switch_writer", {**global_cluster, "mode.$": "$.mode_choice.mode",
                               "ungraceful.$": "$.aurora.ungraceful"}),
        check=("check_writer", {**global_cluster, "method.$": "$.poll.method", "rpo.$": "$.rpo"}),
        interval_seconds=WRITER_POLL, first_wait_seconds=WRITER_FIRST, max_attempts=WRITER_MAX,
        next_state="ConfirmWriter", what="Aurora writer move"))
    # One more check whatever the loop saw (an act that found the work done skips the loop's checks): the
    # writer, the old primary and the RPO accepted come from the same answer.
    states["ConfirmWriter"] = asl.task(
        AURORA_STEP, "aurora", "check_writer", {**global_cluster, "method.$": "$.poll.method", "rpo.$": "$.rpo"},
        result_path="$.writer", next_state="WriterMoved")
    states["WriterMoved"] = asl.end_pass(AURORA_STEP, {
        "identifier.$": "$.aurora.dr_cluster", "source.$": "$.aurora.identifier", "kind": "aurora-global",
        "mode.$": "$.mode_choice", "method.$": "$.writer.method", "rpo.$": "$.writer.rpo",
        "cluster.$": "$.writer.cluster", "old_primary.$": "$.writer.old_primary"})
    return states


# The canary in each new Aurora writer (lambdas/canary.py verify_aurora) checks every 5 s for 5 min, as the
# other service checks (workflows/failover.py VERIFY_POLL, VERIFY_MAX).
AURORA_VERIFY_POLL, AURORA_VERIFY_MAX = 5, 60
AURORA_VERIFY_STATE = "VerifyAuroraData"


def aurora_canary_params(plan: Plan) -> dict[str, Any]:
    """The Data API canary's parameters: each DR cluster the failover made the writer, with its engine and the plan's
    credentials secret (used when the cluster has no RDS-managed secret)."""
    return {
        "region": plan.dr_region,
        "clusters": [{"dr_cluster": d.dr_cluster_identifier, "engine": d.engine,
                      "credentials_secret": d.credentials_secret_name} for d in plan.aurora_databases],
        "execution.$": "$$.Execution.Id",
    }


def aurora_canary_states(params: dict[str, Any], next_state: str, name: str = AURORA_VERIFY_STATE
                         ) -> dict[str, asl.State]:
    """A canary write and read in each new Aurora writer through the RDS Data API, until all pass (a cluster without
    the HTTP endpoint passes as skipped); its checks go to ``$.aurora_checks``. The caller adds ``<name>TimedOut``
    (where spent checks end the run, naming the failing ones)."""
    states = asl.poll_loop(name, "Verify service", service="canary", act=("verify_aurora", params),
                           check=("verify_aurora", params), interval_seconds=AURORA_VERIFY_POLL,
                           max_attempts=AURORA_VERIFY_MAX, next_state="AuroraDataVerified",
                           what="Aurora canary write (Data API)")
    states["AuroraDataVerified"] = {"Type": "Pass", "Comment": "Verify service",
                                    "Parameters": {"checks.$": "$.poll.checks"}, "ResultPath": "$.aurora_checks",
                                    "Next": next_state}
    return states


def capacity_state(next_state: str, step: str = SCALE_STEP) -> asl.State:
    """The DR group's failover capacity: the plan's number, or its share of the primary's recent peak."""
    return asl.task(step, "autoscaling", "failover_capacity",
                    {"primary_region.$": "$.primary_region", "region.$": "$.dr_region", "name.$": "$.group.name",
                     "capacity.$": "$.group.capacity"},
                    result_path="$.capacity", next_state=next_state)


def restore_compute_states() -> dict[str, asl.State]:
    """Per Auto Scaling group: its failover capacity, then the DR group scaled to it, in service and healthy."""
    states: dict[str, asl.State] = {"FailoverCapacity": capacity_state("ScaleGroup")}
    states.update(asl.poll_loop(
        "ScaleGroup", SCALE_STEP, service="autoscaling",
        act=("scale_group", {"region.$": "$.dr_region", "dr_group_name.$": "$.group.dr_group_name",
                             "desired.$": "$.capacity.desired", "max_size.$": "$.group.max_size"}),
        check=("check_group", {"region.$": "$.dr_region", "dr_group_name.$": "$.group.dr_group_name",
                               "desired.$": "$.capacity.desired", "target_group_arns.$": "$.group.target_group_arns"}),
        interval_seconds=SCALE_POLL, first_wait_seconds=SCALE_FIRST, max_attempts=SCALE_MAX,
        next_state="GroupScaled", what="DR group capacity in service"))
    states["GroupScaled"] = asl.end_pass(SCALE_STEP, {"group.$": "$.group.dr_group_name", "capacity.$": "$.capacity",
                                                      "in_service.$": "$.poll.in_service"})
    return states


def table_latency_state(next_state: str) -> asl.State:
    """The table's replication latency into the DR region (the RPO). Published in the primary region, which
    may be the one failing: evidence, never a gate."""
    return asl.evidence_task(TABLE_STEP, "dynamodb", "replication_latency",
                             {"primary_region.$": "$.primary_region", "region.$": "$.dr_region",
                              "table.$": "$.table.name", "rpo_minutes.$": "$.rpo_minutes", "fast": True},
                             result_path="$.rpo", next_state=next_state)


def restore_table_states() -> dict[str, asl.State]:
    """Per global table: its replication latency (the RPO), a write and a read in the DR region, and the
    application's write-region parameter moved to the DR region when the plan names one."""
    states: dict[str, asl.State] = {
        "TableLatency": table_latency_state("VerifyTable"),
        "VerifyTable": asl.task(
            TABLE_STEP, "dynamodb", "verify_write_read",
            {"region.$": "$.dr_region", "table.$": "$.table.name", "marker.$": "$$.Execution.Name"},
            result_path="$.verified", next_state="WriteRegion?"),
        "WriteRegion?": {
            "Type": "Choice", "Comment": TABLE_STEP,
            "Choices": [{"Variable": "$.table.write_region_parameter", "IsNull": False, "Next": "SetWriteRegion"}],
            "Default": "TableRestored",
        },
        "SetWriteRegion": asl.task(
            TABLE_STEP, "dynamodb", "set_write_region",
            {"region.$": "$.dr_region", "parameter.$": "$.table.write_region_parameter", "value.$": "$.dr_region"},
            result_path="$.write_region", next_state="TableRestored"),
        "TableRestored": asl.end_pass(TABLE_STEP, {
            "table.$": "$.table.name", "rpo.$": "$.rpo", "verified.$": "$.verified"}),
    }
    return states


def harden_aurora_states() -> dict[str, asl.State]:
    cluster = {"region.$": "$.dr_region", "dr_cluster.$": "$.aurora.dr_cluster"}
    states = asl.poll_loop(
        "ResizeWriter", "Resize to failover class", service="aurora",
        act=("resize_writer", {**cluster, "instance_class.$": "$.aurora.failover_instance_class"}),
        check=("check_writer_resized", {**cluster, "instance_class.$": "$.aurora.failover_instance_class"}),
        interval_seconds=RESIZE_POLL, first_wait_seconds=RESIZE_FIRST, max_attempts=RESIZE_MAX,
        next_state="AddReaders", what="writer instance class change")
    states.update(asl.poll_loop(
        "AddReaders", "Add Aurora readers", service="aurora",
        act=("add_readers", {**cluster, "count.$": "$.aurora.failover_readers",
                             "instance_class.$": "$.aurora.failover_instance_class"}),
        check=("check_readers", {**cluster, "count.$": "$.aurora.failover_readers"}),
        interval_seconds=READERS_POLL, first_wait_seconds=READERS_FIRST, max_attempts=READERS_MAX,
        next_state="AuroraHardened", what="Aurora readers"))
    states["AuroraHardened"] = asl.end_pass("Add Aurora readers", {"identifier.$": "$.aurora.dr_cluster",
                                                                   "readers.$": "$.poll"})
    return states
