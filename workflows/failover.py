"""The failover workflow: restore service in the DR region first, harden it second.

Order (the critical path is what runs before "service restored"):

1. Guard rails: one run at a time, minimum interval, primary not healthy unless forced; then
   approval when the plan asks for it.
2. Restore, in parallel: each DR replica is promoted (its replication lag is read first: that is
   the RPO) and, only when the plan asks, resized before cutover; each standby Beanstalk
   environment is launched from its DR saved configuration. Each waits in a bounded loop.
3. Cut DNS over as soon as both are ready, then verify: environment Ready/Green, database
   writable, DNS answering with the DR target. Service is restored here.
4. Harden: Multi-AZ first, then resize to the failover class (unless already done).
5. Summary.

Every act finds work already done and answers ``done`` (a promoted database is not promoted
again, a live DR environment is reused), so a failover that stopped midway is resumed by
starting it again. Each AWS call is a Lambda step; each wait is a bounded Wait/Check/Choice loop.
"""

from __future__ import annotations

from typing import Any

from workflows import asl, failover_tiers, failures
from workflows.failover_tiers import (  # noqa: F401 - re-exported: drills and tests use them from here
    AURORA_STEP,
    SCALE_FIRST,
    SCALE_MAX,
    SCALE_POLL,
    SCALE_STEP,
    TABLE_STEP,
    aurora_documents,
    aurora_lag_state,
    capacity_state,
    compute_documents,
)
from workflows.plan import Plan

# Poll cadences: (first wait, interval, checks). The first check comes at about half the operation's
# p50 (none could succeed earlier), then checks come a few seconds apart so the end of the operation
# is noticed within one interval: each is one cheap Describe call, and the interval is what the RTO
# pays on top of AWS's own time. Limits sit well above the p95 durations in the latency table
# (promote 15 min, environment launch 10 min, Multi-AZ 40 min, resize 30 min, Route 53 INSYNC ~1 min).
PROMOTE_FIRST, PROMOTE_POLL, PROMOTE_MAX = 150, 10, 256  # p50 5 min; checks until 45 min
LAUNCH_FIRST, LAUNCH_POLL, LAUNCH_MAX = 150, 10, 256  # p50 5 min; 45 min
# Hardening runs after service is restored: a minute between checks is precise enough there.
MULTI_AZ_FIRST, MULTI_AZ_POLL, MULTI_AZ_MAX = 450, 60, 83  # p50 15 min; 90 min
RESIZE_FIRST, RESIZE_POLL, RESIZE_MAX = 300, 60, 71  # p50 10-20 min; 75 min
DNS_FIRST, DNS_POLL, DNS_MAX = 30, 5, 115  # p50 60 s; 10 min
VERIFY_POLL, VERIFY_MAX = 5, 60  # 5 min
MACHINE_TIMEOUT = 6 * 3600
APPROVAL_TIMEOUT = 4 * 3600  # an unanswered approval request fails the execution

# Step labels (state Comments): the timeline and the RTO figures are read from them.
RESTORE_STEPS = ("Promote DR replica", "Move Aurora writer", "Verify DR table", "Launch DR environment",
                 "Scale DR group", "Repoint DNS", "Verify service")
FAILOVER_MODES = ("auto", "graceful", "ungraceful")
RESTORED_STATE = "ServiceRestored"
# Records mode: where a failed Route 53 change ends the run, with the manual step (error DnsCutoverFailed).
DNS_FAILED_STATE = "DnsCutoverFailed"


def plan_document(plan: Plan) -> dict[str, Any]:
    """What of the plan the workflow needs, baked into the definition (so a plan change shows as a diff)."""
    doc: dict[str, Any] = {
        "name": plan.name,
        "primary_region": plan.primary_region,
        "dr_region": plan.dr_region,
        "objectives": {"rto_minutes": plan.objectives.rto_minutes, "rpo_minutes": plan.objectives.rpo_minutes},
        "databases": [
            {
                "identifier": db.identifier,
                "dr_replica_identifier": db.dr_replica_identifier,
                "failover_instance_class": db.failover_instance_class,
                "multi_az_on_failover": db.multi_az_on_failover,
                "resize_before_cutover": db.resize_before_cutover,
            }
            for db in plan.rds_databases
        ],
        "environments": [
            {
                "name": env.name,
                "application": env.application,
                "dr_environment": env.dr_environment_name,
                "cname_prefix": env.cname_prefix,
            }
            for env in plan.environments
        ],
    }
    if plan.aurora_databases:
        doc["aurora"] = aurora_documents(plan)
    if plan.compute:
        doc["compute"] = compute_documents(plan)
    if plan.tables:
        doc["tables"] = [{"name": t.name, "write_region_parameter": (t.write_region_setting.ssm_parameter
                                                                      if t.write_region_setting else None)}
                         for t in plan.tables]
    if plan.dns is not None:
        doc["dns"] = {
            "hosted_zone_id": plan.dns.hosted_zone_id,
            "record_name": plan.dns.record_name,
            "record_type": plan.dns.record_type,
            "ttl": plan.dns.ttl,
            "target": plan.dns_dr_target,
            "cutover": plan.dns.cutover,
        }
        if plan.dns.cutover == "records" and plan.routing_records:
            doc["dns"]["routing"] = plan.dns.routing
    return doc


def _resize_loop(name: str, next_state: str) -> dict[str, asl.State]:
    params = {
        "region.$": "$.dr_region",
        "identifier.$": "$.db.dr_replica_identifier",
        "instance_class.$": "$.db.failover_instance_class",
    }
    return asl.poll_loop(
        name,
        "Resize to failover class",
        service="rds",
        act=("resize", params),
        check=("check_resized", params),
        interval_seconds=RESIZE_POLL,
        first_wait_seconds=RESIZE_FIRST,
        max_attempts=RESIZE_MAX,
        next_state=next_state,
        what="instance class change",
    )


def _restore_database_states(
    rpo_minutes: int, *, lag_of: str = "$.db.dr_replica_identifier", before_promote: tuple[str, dict[str, asl.State]]
    | None = None, lag_step: str = "Promote DR replica",
) -> dict[str, asl.State]:
    """Per database, on the critical path: read the lag (RPO), promote, resize only if asked to.

    ``$.db.dr_replica_identifier`` is what is promoted and resized; ``lag_of`` is the replica whose lag
    is the RPO. A drill reads the live replica's lag, makes its copy (``before_promote``: the first
    state's name and the states, ending in ``PromoteReplica``) and promotes the copy.
    """
    region = {"region.$": "$.dr_region", "identifier.$": "$.db.dr_replica_identifier"}
    after_lag = before_promote[0] if before_promote else "PromoteReplica"
    states: dict[str, asl.State] = {
        # The lag is evidence, not a gate: a metric that cannot be read must not delay promotion.
        "MeasureLag": asl.evidence_task(
            lag_step, "rds", "replica_lag",
            {"region.$": "$.dr_region", "identifier.$": lag_of, "rpo_minutes": rpo_minutes},
            result_path="$.rpo", next_state=after_lag),
    }
    if before_promote:
        states.update(before_promote[1])
    states.update(
        asl.poll_loop(
            "PromoteReplica",
            "Promote DR replica",
            service="rds",
            act=("promote_replica", region),
            check=("check_promoted", region),
            interval_seconds=PROMOTE_POLL,
            first_wait_seconds=PROMOTE_FIRST,
            max_attempts=PROMOTE_MAX,
            next_state="ResizeFirst?",
            what="replica promotion",
        )
    )
    states["ResizeFirst?"] = {
        "Type": "Choice",
        "Comment": "Promote DR replica",
        "Choices": [{"Variable": "$.db.resize_before_cutover", "BooleanEquals": True, "Next": "ResizeBeforeCutover"}],
        "Default": "DatabaseRestored",
    }
    states.update(_resize_loop("ResizeBeforeCutover", "DatabaseRestored"))
    states["DatabaseRestored"] = asl.end_pass(
        "Promote DR replica",
        {
            "identifier.$": "$.db.dr_replica_identifier",
            "source.$": "$.db.identifier",
            "rpo.$": "$.rpo",
            "db.$": "$.poll.db",
        },
    )
    return states


def _restore_environment_states(extra_launch: dict[str, Any] | None = None) -> dict[str, asl.State]:
    launch = {
        "region.$": "$.dr_region",
        "plan.$": "$.plan",
        "application.$": "$.env.application",
        "environment.$": "$.env.name",
        "dr_environment.$": "$.env.dr_environment",
        "cname_prefix.$": "$.env.cname_prefix",
        **(extra_launch or {}),
    }
    check = {
        "region.$": "$.dr_region",
        "application.$": "$.env.application",
        "dr_environment.$": "$.env.dr_environment",
    }
    states = asl.poll_loop(
        "LaunchEnvironment",
        "Launch DR environment",
        service="beanstalk",
        act=("launch_environment", launch),
        check=("check_environment", check),
        interval_seconds=LAUNCH_POLL,
        first_wait_seconds=LAUNCH_FIRST,
        max_attempts=LAUNCH_MAX,
        next_state="EnvironmentRestored",
        what="DR environment launch",
    )
    states["EnvironmentRestored"] = asl.end_pass(
        "Launch DR environment", {"name.$": "$.env.dr_environment", "environment.$": "$.poll.environment"}
    )
    return states


def _map(comment: str, items: str, item: str, start: str, states: dict[str, asl.State],
         extra_selector: dict[str, str] | None = None) -> asl.State:
    return {
        "Type": "Map",
        "Comment": comment,
        "ItemsPath": items,
        "ItemSelector": {item + ".$": "$$.Map.Item.Value", "dr_region.$": "$.plan.dr_region", "plan.$": "$.plan.name",
                         **(extra_selector or {})},
        "MaxConcurrency": 0,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": states},
        "End": True,
    }


def parallel(comment: str, branches: list[tuple[str, asl.State]], result_path: str, next_state: str) -> asl.State:
    """A Parallel state of ``(key, branch)`` pairs whose result is ``{key: branch output}``."""
    return {
        "Type": "Parallel",
        "Comment": comment,
        "Branches": [branch for _, branch in branches],
        "ResultSelector": {f"{key}.$": f"$[{i}]" for i, (key, _) in enumerate(branches)},
        "ResultPath": result_path,
        "Next": next_state,
    }


def branch(name: str, state: asl.State) -> asl.State:
    return {"StartAt": name, "States": {name: state}}


def restore_branches(plan: Plan, items: str = "$.plan", *, extra_selector: dict[str, str] | None = None,
                     before_promote: tuple[str, dict[str, asl.State]] | None = None, lag_of: str | None = None,
                     lag_step: str | None = None, extra_launch: dict[str, Any] | None = None,
                     db_map_step: str = "Promote DR replica", aurora_states: dict[str, asl.State] | None = None,
                     aurora_start: str = "MeasureGlobalLag", tables_states: dict[str, asl.State] | None = None,
                     tables_start: str = "TableLatency", aurora_map_step: str = AURORA_STEP,
                     compute_states: dict[str, asl.State] | None = None, compute_start: str = "FailoverCapacity",
                     compute_map_step: str = SCALE_STEP) -> list[tuple[str, asl.State]]:
    """The restore's branches: databases promoted (and resized if asked), environments launched.

    ``items``: where the database and environment items are (``$.plan`` for the failover; a drill's
    own copies for a drill), and what a drill adds (see :func:`_restore_database_states`); a drill
    brings its own Aurora and table states (copies, not the live secondary).
    """
    out: list[tuple[str, asl.State]] = []
    if plan.aurora_databases:
        out.append(("aurora", branch("Aurora", _map(
            aurora_map_step, f"{items}.aurora", "aurora", aurora_start,
            aurora_states or failover_tiers.restore_aurora_states(),
            {"primary_region.$": "$.plan.primary_region", "rpo_minutes.$": "$.plan.objectives.rpo_minutes",
             **({"mode.$": "$.options.mode"} if aurora_states is None else {}), **(extra_selector or {})}))))
    if plan.tables:
        out.append(("tables", branch("Tables", _map(
            TABLE_STEP, f"{items}.tables", "table", tables_start,
            tables_states or failover_tiers.restore_table_states(),
            {"primary_region.$": "$.plan.primary_region", "rpo_minutes.$": "$.plan.objectives.rpo_minutes",
             **(extra_selector or {})}))))
    if plan.compute:
        out.append(("compute", branch("Compute", _map(
            compute_map_step, f"{items}.compute", "group", compute_start,
            compute_states or failover_tiers.restore_compute_states(),
            {"primary_region.$": "$.plan.primary_region", **(extra_selector or {})}))))
    if plan.rds_databases:
        db_states = _restore_database_states(
            plan.objectives.rpo_minutes, before_promote=before_promote,
            **({"lag_of": lag_of} if lag_of else {}), **({"lag_step": lag_step} if lag_step else {}))
        out.append(("databases", branch("Databases", _map(db_map_step, f"{items}.databases", "db",
                                                          "MeasureLag", db_states, extra_selector))))
    if plan.environments:
        out.append(("environments", branch("Environments", _map(
            "Launch DR environment", f"{items}.environments", "env", "LaunchEnvironment",
            _restore_environment_states(extra_launch), extra_selector))))
    return out


def _harden_database_states() -> dict[str, asl.State]:
    region = {"region.$": "$.dr_region", "identifier.$": "$.db.dr_replica_identifier"}
    states: dict[str, asl.State] = {
        "MultiAzWanted?": {
            "Type": "Choice",
            "Comment": "Enable Multi-AZ",
            "Choices": [{"Variable": "$.db.multi_az_on_failover", "BooleanEquals": True, "Next": "EnableMultiAz"}],
            "Default": "Resize",
        }
    }
    states.update(
        asl.poll_loop(
            "EnableMultiAz",
            "Enable Multi-AZ",
            service="rds",
            act=("enable_multi_az", region),
            check=("check_multi_az", region),
            interval_seconds=MULTI_AZ_POLL,
            first_wait_seconds=MULTI_AZ_FIRST,
            max_attempts=MULTI_AZ_MAX,
            next_state="Resize",
            what="Multi-AZ conversion",
        )
    )
    states.update(_resize_loop("Resize", "DatabaseHardened"))
    states["DatabaseHardened"] = asl.end_pass(
        "Resize to failover class", {"identifier.$": "$.db.dr_replica_identifier", "db.$": "$.poll.db"}
    )
    return states


def _guard_states(plan: Plan, first: str) -> dict[str, asl.State]:
    alarms = [{"name": a.name, "region": a.region or plan.primary_region} for a in plan.triggers.alarms]
    approval = plan.triggers.failover == "approval"
    states: dict[str, asl.State] = {
        "GuardRails": asl.task(
            "Guard rails",
            "guard",
            "check",
            {
                "state_machine_arn.$": "$$.StateMachine.Id",
                "execution_arn.$": "$$.Execution.Id",
                "alarms": alarms,
                "min_interval_minutes": plan.triggers.min_interval_minutes,
                "trigger.$": "$.trigger",
                "region": plan.dr_region,
                "plan": plan.name,  # a failover that goes ahead stops the plan's running drill
            },
            result_path="$.guard",
            next_state="NeedsApproval?" if approval else first,
        )
    }
    if approval:
        # A failover started by an operator (CLI) carries its approval; an alarm-triggered one waits.
        states["NeedsApproval?"] = {
            "Type": "Choice",
            "Comment": "Guard rails",
            "Choices": [{"Variable": "$.guard.approved", "BooleanEquals": True, "Next": first}],
            "Default": "AwaitApproval",
        }
        states["AwaitApproval"] = {
            "Type": "Task",
            "Comment": "Await approval",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": asl.function_placeholder("guard"),
                "Payload": {
                    "action": "request_approval",
                    "token.$": "$$.Task.Token",
                    "topic_arn": asl.NOTIFICATION_TOPIC,
                    "plan": plan.name,
                    "execution_arn.$": "$$.Execution.Id",
                    "region": plan.dr_region,
                },
            },
            "TimeoutSeconds": APPROVAL_TIMEOUT,
            "ResultPath": "$.approval",
            "Retry": asl.lambda_service_retry(3),
            "Next": first,
        }
    return states


def _verify_params(plan: Plan) -> dict[str, Any]:
    params: dict[str, Any] = {
        "region": plan.dr_region,
        "environments": [
            {"application": e.application, "dr_environment": e.dr_environment_name} for e in plan.environments
        ],
        "databases": [d.dr_replica_identifier for d in plan.rds_databases],
        "probe": plan.probes.model_dump(),
    }
    if plan.dns is not None:
        params["dns_record"] = {
            "zone_id": plan.dns.hosted_zone_id,
            "name": plan.dns.record_name,
            "record_type": plan.dns.record_type,
            "target": plan.dns_dr_target,
            "mode": plan.dns.cutover,
            **({"routing": plan.dns.routing} if plan.routing_records and plan.dns.cutover == "records" else {}),
        }
    return params


def records_loop(name: str, step: str, dns: str, next_state: str, *, plan: str | None = None
                 ) -> dict[str, asl.State]:
    """UPSERT the record described at ``dns`` (zone, name, type, TTL, target) and wait until it is INSYNC.

    With ``plan`` (records mode with routing records): evacuate the plan's primary routing record instead
    (lambdas/dns.py ``evacuate_records``)."""
    record = {"zone_id.$": f"{dns}.hosted_zone_id", "name.$": f"{dns}.record_name",
              "record_type.$": f"{dns}.record_type"}
    act = (("evacuate_records", {**record, "plan": plan, "routing.$": f"{dns}.routing"}) if plan else
           ("upsert_record", {**record, "ttl.$": f"{dns}.ttl", "value.$": f"{dns}.target"}))
    return asl.poll_loop(
        name,
        step,
        service="dns",
        act=act,
        check=("check_change", {"change_id.$": "$.poll.change_id"}),
        interval_seconds=DNS_POLL,
        first_wait_seconds=DNS_FIRST,
        max_attempts=DNS_MAX,
        next_state=next_state,
        what="Route 53 change",
    )


def data_params(plan: Plan, restored: str = "$.restore.databases") -> dict[str, Any]:
    """The canary write's parameters: each database the plan promotes, and where the restore's results are."""
    return {
        "region": plan.dr_region,
        "databases": [{"identifier": d.dr_replica_identifier, "engine": d.engine,
                       "credentials_secret": d.credentials_secret_name, "heartbeat_column": d.heartbeat_column}
                      for d in plan.rds_databases],
        "restored.$": restored,
        "execution.$": "$$.Execution.Id",
    }


def _not_verified(name: str) -> asl.State:
    """Where a verification loop ends when its checks are spent: the failing checks, named, as the error."""
    # It always fails, with ServiceNotVerified; only the Lambda service's own errors are retried.
    return {**asl.task("Verify service", "verify", "not_verified", {"loop": name, "checks.$": "$.poll.checks"},
                       result_path=None, next_state=None, retry=False), "Retry": asl.lambda_service_retry(3)}


def verify_states(verify: dict[str, Any], after_restored: str, data: dict[str, Any] | None = None, *,
                  aurora: dict[str, Any] | None = None) -> dict[str, asl.State]:
    """Verify until every check passes, then mark service restored (the RTO is read from that state).

    With ``data`` (the plan has RDS databases): first a canary write in each promoted database (lambdas/canary.py,
    in the DR VPC); with ``aurora`` (the plan has Aurora Global Databases): a canary write and read in each new
    Aurora writer through the RDS Data API (workflows/failover_tiers.py); then the control-plane checks and HTTP
    probes. Checks still failing when the attempts are spent end the run with ``ServiceNotVerified`` naming them."""
    states: dict[str, asl.State] = {}
    probes = "VerifyProbes" if data or aurora else "VerifyService"
    aurora_loop = failover_tiers.AURORA_VERIFY_STATE if data else "VerifyService"
    if data:
        states.update(asl.poll_loop("VerifyService", "Verify service", service="canary",
                                    act=("verify_databases", data), check=("verify_databases", data),
                                    interval_seconds=VERIFY_POLL, max_attempts=VERIFY_MAX, next_state="DataVerified",
                                    what="canary write"))
        states["VerifyServiceTimedOut"] = _not_verified("VerifyService")
        states["DataVerified"] = {"Type": "Pass", "Comment": "Verify service",
                                  "Parameters": {"checks.$": "$.poll.checks"}, "ResultPath": "$.data_checks",
                                  "Next": aurora_loop if aurora else probes}
    if aurora:
        states.update(failover_tiers.aurora_canary_states(aurora, probes, aurora_loop))
        states[f"{aurora_loop}TimedOut"] = _not_verified(aurora_loop)
    states.update(asl.poll_loop(
        probes,
        "Verify service",
        service="verify",
        act=("verify_service", verify),
        check=("verify_service", verify),
        interval_seconds=VERIFY_POLL,
        max_attempts=VERIFY_MAX,
        next_state=RESTORED_STATE,
        what="service verification",
    ))
    states[f"{probes}TimedOut"] = _not_verified(probes)
    restored = {"at.$": "$$.State.EnteredTime", "checks.$": "$.poll.checks"}
    if data:
        restored["data.$"] = "$.data_checks.checks"
    if aurora:
        restored["aurora_data.$"] = "$.aurora_checks.checks"
    states[RESTORED_STATE] = {
        "Type": "Pass",
        "Comment": "Service restored",
        "Parameters": restored,
        "ResultPath": "$.restored",
        "Next": after_restored,
    }
    return states


def _map_then(comment: str, items: str, item: str, start: str, states: dict[str, asl.State], result_path: str,
              next_state: str, extra_selector: dict[str, str] | None) -> asl.State:
    """A Map over ``items`` (as :func:`_map`) whose result goes to ``result_path`` before ``next_state``."""
    state = {**_map(comment, items, item, start, states, extra_selector), "ResultPath": result_path,
             "Next": next_state}
    del state["End"]
    return state


def harden_state(items: str, next_state: str, extra_selector: dict[str, str] | None = None) -> asl.State:
    """Multi-AZ, then the failover class, for every database item at ``items``; after service is restored."""
    return _map_then("Harden", items, "db", "MultiAzWanted?", _harden_database_states(), "$.hardened", next_state,
                     extra_selector)


def harden_aurora_state(items: str, next_state: str, extra_selector: dict[str, str] | None = None) -> asl.State:
    """The new writer resized to the failover class, then readers added, for every Aurora item at ``items``."""
    return _map_then("Harden Aurora", items, "aurora", "ResizeWriter", failover_tiers.harden_aurora_states(),
                     "$.hardened_aurora", next_state, extra_selector)


def _flip_states(plan: Plan, next_state: str) -> dict[str, asl.State]:
    """Data-plane cutover: the primary's Route 53 health check follows a DR-region alarm on a metric
    pilotlight publishes; flipping the metric fails the records over. No Route 53 control-plane call on
    the critical path (the records and health check exist already)."""
    flip = {"region": plan.dr_region, "alarm": plan.health_check_alarm}
    return asl.poll_loop(
        "RepointDns",
        "Repoint DNS",
        service="dns",
        act=("flip_primary_health", {**flip, "plan": plan.name}),
        check=("check_flipped", flip),
        interval_seconds=DNS_POLL,
        first_wait_seconds=DNS_FIRST,
        max_attempts=DNS_MAX,
        next_state=next_state,
        what="primary health alarm",
    )


def _mode_states(next_state: str) -> dict[str, asl.State]:
    """``$.options.mode``: the input's ``mode`` (``pilotlight failover --mode``) or ``auto``."""
    return {
        "ModeGiven?": {"Type": "Choice", "Comment": "Load plan",
                       "Choices": [{"Variable": "$.trigger.mode", "IsPresent": True, "Next": "ModeFromInput"}],
                       "Default": "ModeAuto"},
        "ModeFromInput": {"Type": "Pass", "Comment": "Load plan", "Parameters": {"mode.$": "$.trigger.mode"},
                          "ResultPath": "$.options", "Next": next_state},
        "ModeAuto": {"Type": "Pass", "Comment": "Load plan", "Result": {"mode": "auto"}, "ResultPath": "$.options",
                     "Next": next_state},
    }


def build(plan: Plan) -> dict[str, Any]:
    states: dict[str, asl.State] = {}
    branches = restore_branches(plan)
    first = "Restore" if branches else ("RepointDns" if plan.dns else "VerifyService")
    states["LoadPlan"] = {
        "Type": "Pass",
        "Comment": "Load plan",
        "Parameters": {"plan": plan_document(plan), "trigger.$": "$"},
        "Next": "ModeGiven?" if plan.aurora_databases else "GuardRails",
    }
    if plan.aurora_databases:
        states.update(_mode_states("GuardRails"))
    states.update(_guard_states(plan, first))
    cutover = "RepointDns" if plan.dns else "VerifyService"
    # Active-active, data-plane cutover: the surviving region already serves, so the failed one leaves the
    # routing at once (its health check forced unhealthy) while the data tier moves and the group scales:
    # evacuation in parallel, measured in the same Restore step. Elsewhere traffic moves once the DR side
    # is restored.
    evacuate = plan.topology == "active-active" and plan.health_check_cutover and bool(branches)
    if branches:
        # Branch outputs by name: compute, aurora, tables, databases, environments, dns, for what the plan has.
        if evacuate:
            flip_states = _flip_states(plan, "Evacuated")
            flip_states["Evacuated"] = asl.end_pass("Repoint DNS", {"flipped.$": "$.poll"})
            branches = [*branches, ("dns", {"StartAt": "RepointDns", "States": flip_states})]
        states["Restore"] = parallel("Restore", branches, "$.restore", "VerifyService" if evacuate else cutover)
    if plan.health_check_cutover:
        if not evacuate:
            states.update(_flip_states(plan, "VerifyService"))
    elif plan.dns:
        dns = {
            "zone_id.$": "$.plan.dns.hosted_zone_id",
            "name.$": "$.plan.dns.record_name",
            "record_type.$": "$.plan.dns.record_type",
        }
        routed = plan.routing_records
        states.update(records_loop("RepointDns", "Repoint DNS", "$.plan.dns", "VerifyService",
                                   plan=plan.name if routed else None))
        # Route 53's control plane failing (after the retries) must not end the run with a bare AWS
        # error: the database is promoted by now, so the operator gets the record to set by hand.
        for name in ("RepointDns", "RepointDnsCheck"):
            states[name]["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.dns_error",
                                      "Next": DNS_FAILED_STATE}]
        states[DNS_FAILED_STATE] = {
            **asl.task(
                "Repoint DNS",
                "dns",
                "cutover_failed",
                {
                    **dns,
                    "ttl.$": "$.plan.dns.ttl",
                    "value.$": "$.plan.dns.target",
                    "region": plan.dr_region,
                    "error.$": "$.dns_error.Error",
                    "cause.$": "$.dns_error.Cause",
                    "databases": [{"identifier": d.dr_replica_identifier, "source": d.identifier}
                                  for d in plan.rds_databases],
                    "environments": [e.dr_environment_name for e in plan.environments],
                    **({"plan": plan.name, "routing.$": "$.plan.dns.routing"} if routed else {}),
                },
                result_path=None,
                next_state=None,
                retry=False,
            ),
            # It always fails, with DnsCutoverFailed; only the Lambda service's own errors are retried.
            "Retry": asl.lambda_service_retry(3),
        }
    after_harden = "HardenAurora" if plan.aurora_databases else "Summary"
    states.update(verify_states(_verify_params(plan), "Harden" if plan.rds_databases else after_harden,
                                data_params(plan) if plan.rds_databases else None,
                                aurora=failover_tiers.aurora_canary_params(plan) if plan.aurora_databases else None))
    if plan.rds_databases:
        states["Harden"] = harden_state("$.plan.databases", after_harden)
    if plan.aurora_databases:
        states["HardenAurora"] = harden_aurora_state("$.plan.aurora", "Summary")
    summary: dict[str, Any] = {
        "plan.$": "$.plan.name",
        "dr_region.$": "$.plan.dr_region",
        "guard.$": "$.guard",
        "restored.$": "$.restored",
        "hardened_at.$": "$$.State.EnteredTime",
        "objectives.$": "$.plan.objectives",
    }
    if branches:
        summary["restore.$"] = "$.restore"
    if plan.rds_databases:
        summary["hardened.$"] = "$.hardened"
    if plan.aurora_databases:
        summary["hardened_aurora.$"] = "$.hardened_aurora"
    if plan.dns:
        summary["dns"] = {"record.$": "$.plan.dns.record_name", "target.$": "$.plan.dns.target"}
    states["Summary"] = {"Type": "Pass", "Comment": "Summary", "Parameters": summary, "End": True}
    # Refusals (guard rails, approval) end with their own names and touch nothing; the records-mode DNS failure
    # has its own record (the manual step).
    failures.add_record(states, plan, "failover", skip=("GuardRails", "AwaitApproval", DNS_FAILED_STATE))
    return asl.machine(f"pilotlight failover for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)
