"""The failback workflow: back to the primary region once it answers, then the pilot light re-armed.

Order:

1. Preconditions: the primary region answers, the live site is the DR one (the last failover succeeded, no
   failback since), no failover, drill or other failback of the plan runs. Otherwise ``FailbackRefused``.
2. Re-protect, in parallel, with the DR site serving: each stale primary kept under another name
   (``<id>-stale-<stamp>``) and ``<id>`` made again as a cross-region read replica of the live DR database,
   waited for until its lag is within the RPO; the primary environment Ready and Green (reused); each DR
   bucket replicating back to its primary bucket, what was written during the outage copied.
3. Cutover back, once approved (the approver stops the application's writes first): a marker row written in
   each DR database and every table counted; the reverse replica waited for until it shows them; promoted (its
   lag then is the switch back's RPO); the counts checked in the promoted primary (``DataCheckFailed`` leaves
   traffic on the DR site); DNS moved back (in weighted steps watching the plan's alarms, where the plan
   routes by weight); verified as users see it (HTTP probes, a canary write). Downtime: from the approval to
   verified service.
4. Re-arm: the promoted DR database retired (renamed), the DR environment terminated, the reverse S3 rules
   removed; the plan's replicate workflow run to its end (the DR replica, AMIs, saved configurations made
   again in the original direction); the retired DR database deleted with a final snapshot once the new DR
   replica is available.
5. Summary.

Every act reads first, so a failback that stopped midway is resumed by starting it again: the names it gives
(``<id>-stale-<stamp>``, ``<dr>-retired-<stamp>``) carry the stamp of the failover it undoes, the same for
every run of it.
"""

from __future__ import annotations

from typing import Any

from workflows import asl, failback_dns, failback_s3, failures
from workflows.failover import (
    PROMOTE_FIRST,
    PROMOTE_MAX,
    PROMOTE_POLL,
    branch,
    parallel,
    plan_document,
    verify_states,
)
from workflows.plan import Plan

MACHINE_TIMEOUT = 12 * 3600
APPROVAL_TIMEOUT = 24 * 3600  # a failback waits for its window; an unanswered request fails the execution
# A new cross-region replica: its creation takes about as long as the snapshot of the source plus the copy.
REVERSE_FIRST, REVERSE_POLL, REVERSE_MAX = 600, 60, 240  # checks until 4 h
RENAME_FIRST, RENAME_POLL, RENAME_MAX = 60, 15, 120  # a rename reboots the instance: minutes; 30 min
LAG_POLL, LAG_MAX = 60, 240  # until the reverse replica is within the RPO: 4 h
ENV_POLL, ENV_MAX = 30, 120  # the primary environment Ready and Green: 1 h
DRAIN_POLL, DRAIN_MAX = 10, 180  # the marker row reaching the reverse replica: 30 min
TERMINATE_FIRST, TERMINATE_POLL, TERMINATE_MAX = 120, 30, 120  # Beanstalk terminate: minutes; 1 h
REPLICATE_FIRST, REPLICATE_POLL, REPLICATE_MAX = 300, 60, 360  # replicate with a new DR replica: 6 h
DELETE_FIRST, DELETE_POLL, DELETE_MAX = 300, 60, 120  # delete with a final snapshot: 2 h

BEFORE_APPROVING = ("stop the application's writes on the DR site (maintenance page or read-only mode): the "
                    "failback then waits for the reverse replica to show the last write before promoting it")
# Step labels (state Comments): the timeline and the figures are read from them.
SWITCH_STEP = "Stop writes"
RESTORED_STATE = "ServiceRestored"


def covers(plan: Plan) -> bool:
    """Whether the failback covers every tier of ``plan``: RDS databases, Beanstalk environments, S3 buckets and
    DNS. A plan with an Aurora global database, DynamoDB global tables or Auto Scaling groups gets no failback
    workflow (moving part of an application back would split it between the regions)."""
    return not (plan.aurora_databases or plan.tables or plan.compute) and bool(
        plan.rds_databases or plan.environments or plan.buckets)


def document(plan: Plan) -> dict[str, Any]:
    """The failover's plan document, with what the way back needs: the primary target and the buckets."""
    doc = plan_document(plan)
    if "dns" in doc:
        doc["dns"]["primary_target"] = plan.dns_primary_target
    doc["databases"] = [{**d, "credentials_secret": db.credentials_secret_name, "engine": db.engine}
                        for d, db in zip(doc["databases"], plan.rds_databases, strict=True)]
    doc["buckets"] = [{"source": b.source, "destination": b.destination} for b in plan.buckets]
    return doc


def _db_loop(name: str, step: str, act: str, check: str, params: dict[str, Any], first: int, poll: int,
             most: int, next_state: str, what: str) -> dict[str, asl.State]:
    return asl.poll_loop(name, step, service="failback", act=(act, params), check=(check, params),
                         interval_seconds=poll, first_wait_seconds=first, max_attempts=most, next_state=next_state,
                         what=what)


def _reprotect_database_states() -> dict[str, asl.State]:
    stale = {"region.$": "$.primary_region", "identifier.$": "$.db.identifier", "stamp.$": "$.stamp",
             "dr_region.$": "$.dr_region", "dr_identifier.$": "$.db.dr_replica_identifier"}
    states = _db_loop("RetireStale", "Retire stale primary", "retire_stale", "check_stale_retired", stale,
                      RENAME_FIRST, RENAME_POLL, RENAME_MAX, "ReverseReplica", "stale primary rename")
    states.update(_db_loop("ReverseReplica", "Reverse replica", "reverse_replica", "check_reverse_replica",
                           {**stale, "plan.$": "$.plan"}, REVERSE_FIRST, REVERSE_POLL, REVERSE_MAX, "Switched?",
                           "reverse replica creation"))
    # A re-run after the switch back: the reverse replica is the promoted primary already (no lag to wait for).
    states["Switched?"] = {"Type": "Choice", "Comment": "Reverse replica",
                           "Choices": [{"Variable": "$.poll.switched", "BooleanEquals": True,
                                        "Next": "AlreadySwitched"}], "Default": "ReverseLag"}
    states["AlreadySwitched"] = asl.end_pass("Reverse replica", {"identifier.$": "$.db.identifier",
                                                                 "switched": True})
    lag = {"region.$": "$.primary_region", "identifier.$": "$.db.identifier", "rpo_minutes.$": "$.rpo_minutes"}
    states.update(asl.poll_loop("ReverseLag", "Reverse replica lag", service="failback",
                                act=("check_reverse_lag", lag), check=("check_reverse_lag", lag),
                                interval_seconds=LAG_POLL, max_attempts=LAG_MAX, next_state="Reprotected",
                                what="reverse replica lag within the RPO"))
    states["Reprotected"] = asl.end_pass("Reverse replica lag", {"identifier.$": "$.db.identifier",
                                                                 "lag.$": "$.poll.lag", "switched": False})
    return states


def _environment_states() -> dict[str, asl.State]:
    params = {"region.$": "$.primary_region", "application.$": "$.env.application", "name.$": "$.env.name"}
    states = asl.poll_loop("PrimaryEnvironment", "Primary environment", service="failback",
                           act=("primary_environment", params), check=("primary_environment", params),
                           interval_seconds=ENV_POLL, max_attempts=ENV_MAX, next_state="EnvironmentBack",
                           what="primary environment Ready and Green")
    states["EnvironmentBack"] = asl.end_pass("Primary environment", {"name.$": "$.env.name",
                                                                     "environment.$": "$.poll.environment"})
    return states


def _map(step: str, items: str, item: str, start: str, states: dict[str, asl.State],
         result_path: str | None = None, next_state: str | None = None) -> asl.State:
    state: dict[str, Any] = {
        "Type": "Map",
        "Comment": step,
        "ItemsPath": items,
        "ItemSelector": {f"{item}.$": "$$.Map.Item.Value", "plan.$": "$.plan.name",
                         "primary_region.$": "$.plan.primary_region", "dr_region.$": "$.plan.dr_region",
                         "stamp.$": "$.pre.stamp", "rpo_minutes.$": "$.plan.objectives.rpo_minutes"},
        "MaxConcurrency": 0,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": states},
    }
    if next_state:
        state.update(ResultPath=result_path, Next=next_state)
    else:
        state["End"] = True
    return state


def _approval_states(plan: Plan, next_state: str) -> dict[str, asl.State]:
    """A run started with its approval (``pilotlight failback --approve``) goes on; any other waits for one."""
    return {
        "NeedsApproval?": {"Type": "Choice", "Comment": "Await approval",
                           "Choices": [{"Variable": "$.trigger.approved_by", "IsPresent": True, "Next": next_state}],
                           "Default": "AwaitApproval"},
        "AwaitApproval": {
            "Type": "Task",
            "Comment": "Await approval",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": asl.function_placeholder("guard"),
                "Payload": {"action": "request_approval", "token.$": "$$.Task.Token",
                            "topic_arn": asl.NOTIFICATION_TOPIC, "plan": plan.name,
                            "execution_arn.$": "$$.Execution.Id", "region": plan.dr_region,
                            "workflow": "failback", "before_approving": BEFORE_APPROVING},
            },
            "TimeoutSeconds": APPROVAL_TIMEOUT,
            "ResultPath": "$.approval",
            "Retry": asl.lambda_service_retry(3),
            "Next": next_state,
        },
    }


def _data_items(plan: Plan, side: str) -> list[dict[str, Any]]:
    out = []
    for db in plan.rds_databases:
        item = {"credentials_secret": db.credentials_secret_name, "engine": db.engine}
        if side == "dr":
            out.append({"identifier": db.dr_replica_identifier, **item})
        else:
            out.append({"identifier": db.identifier, "source": db.dr_replica_identifier, **item})
    return out


def _switch_states(plan: Plan, next_state: str) -> dict[str, asl.State]:
    """Writes stopped (the approval), the marker written, drained to the reverse replica, promoted, checked."""
    states: dict[str, asl.State] = {
        "WritesStopped": {"Type": "Pass", "Comment": SWITCH_STEP, "Parameters": {"at.$": "$$.State.EnteredTime"},
                          "ResultPath": "$.switch", "Next": "DataBefore" if plan.rds_databases else next_state},
    }
    if not plan.rds_databases:
        return states
    states["DataBefore"] = asl.task("Data check", "canary", "data_before",
                                    {"region": plan.dr_region, "databases": _data_items(plan, "dr"),
                                     "execution.$": "$$.Execution.Id"},
                                    result_path="$.data_before", next_state="Drain")
    primary = {"region": plan.primary_region, "databases": _data_items(plan, "primary"),
               "before.$": "$.data_before"}
    states.update(asl.poll_loop("Drain", "Data check", service="canary", act=("data_caught_up", primary),
                                check=("data_caught_up", primary), interval_seconds=DRAIN_POLL,
                                max_attempts=DRAIN_MAX, next_state="PromotePrimary",
                                what="the marker row reaching the reverse replica"))
    lag = {"region.$": "$.primary_region", "identifier.$": "$.db.identifier", "rpo_minutes.$": "$.rpo_minutes"}
    promote = {"region.$": "$.primary_region", "identifier.$": "$.db.identifier"}
    db_states: dict[str, asl.State] = {
        "MeasureLag": asl.evidence_task("Promote primary", "rds", "replica_lag", lag, result_path="$.rpo",
                                        next_state="Promote"),
        **asl.poll_loop("Promote", "Promote primary", service="failback", act=("promote_reverse", promote),
                        check=("check_reverse_promoted", promote), interval_seconds=PROMOTE_POLL,
                        first_wait_seconds=PROMOTE_FIRST, max_attempts=PROMOTE_MAX, next_state="Promoted",
                        what="reverse replica promotion"),
        "Promoted": asl.end_pass("Promote primary", {"identifier.$": "$.db.identifier", "rpo.$": "$.rpo",
                                                     "db.$": "$.poll.db"}),
    }
    states["PromotePrimary"] = _map("Promote primary", "$.plan.databases", "db", "MeasureLag", db_states,
                                    "$.promoted", "Checked?")
    states["Checked?"] = {"Type": "Choice", "Comment": "Data check",
                          "Choices": [{"Variable": "$.switch.resumed", "IsPresent": True, "Next": "CheckedEarlier"}],
                          "Default": "DataAfter"}
    states["CheckedEarlier"] = {"Type": "Pass", "Comment": "Data check",
                                "Result": {"ok": True, "databases": [],
                                           "note": "switched back by an earlier run, whose history has the check"},
                                "ResultPath": "$.data_after", "Next": next_state}
    states["DataAfter"] = asl.task("Data check", "canary", "data_after",
                                   dict(primary), result_path="$.data_after",
                                   next_state=next_state)
    return states


def _verify_params(plan: Plan) -> dict[str, Any]:
    params: dict[str, Any] = {
        "region": plan.primary_region,
        "environments": [{"application": e.application, "dr_environment": e.name} for e in plan.environments],
        "databases": [d.identifier for d in plan.rds_databases],
        "probe": plan.probes.model_dump(),
    }
    if plan.dns is not None:
        params["dns_record"] = {
            "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name, "record_type": plan.dns.record_type,
            "target": plan.dns_primary_target, "mode": plan.dns.cutover,
            **({"routing": plan.dns.routing} if plan.routing_records and plan.dns.cutover == "records" else {}),
        }
    return params


def _data_params(plan: Plan) -> dict[str, Any]:
    return {"region": plan.primary_region,
            "databases": [{"identifier": d.identifier, "engine": d.engine, "credentials_secret":
                           d.credentials_secret_name, "heartbeat_column": d.heartbeat_column}
                          for d in plan.rds_databases],
            "restored.$": "$.promoted", "execution.$": "$$.Execution.Id"}


def _rearm_branches(plan: Plan) -> list[tuple[str, asl.State]]:
    out: list[tuple[str, asl.State]] = []
    if plan.rds_databases:
        params = {"region.$": "$.dr_region", "dr_identifier.$": "$.db.dr_replica_identifier", "stamp.$": "$.stamp",
                  "primary_region.$": "$.primary_region", "identifier.$": "$.db.identifier"}
        states = _db_loop("RetireDr", "Retire DR database", "retire_dr", "check_dr_retired", params, RENAME_FIRST,
                          RENAME_POLL, RENAME_MAX, "DrRetired", "DR database rename")
        states["DrRetired"] = asl.end_pass("Retire DR database", {"retired.$": "$.poll.retired"})
        out.append(("databases", branch("RetireDatabases", _map("Retire DR database", "$.plan.databases", "db",
                                                                "RetireDr", states))))
    if plan.environments:
        params = {"region.$": "$.dr_region", "application.$": "$.env.application",
                  "name.$": "$.env.dr_environment"}
        states = asl.poll_loop("TerminateDr", "Terminate DR environment", service="failback",
                               act=("terminate_dr_environment", params),
                               check=("check_dr_environment_terminated", params), interval_seconds=TERMINATE_POLL,
                               first_wait_seconds=TERMINATE_FIRST, max_attempts=TERMINATE_MAX,
                               next_state="DrTerminated", what="DR environment termination")
        states["DrTerminated"] = asl.end_pass("Terminate DR environment", {"name.$": "$.env.dr_environment"})
        out.append(("environments", branch("TerminateEnvironments", _map(
            "Terminate DR environment", "$.plan.environments", "env", "TerminateDr", states))))
    s3 = failback_s3.rearm_branch(plan)
    if s3:
        out.append(("buckets", s3))
    return out


def build(plan: Plan) -> dict[str, Any]:
    states: dict[str, asl.State] = {
        "LoadPlan": {"Type": "Pass", "Comment": "Load plan",
                     "Parameters": {"plan": document(plan), "trigger.$": "$"}, "Next": "Preconditions"},
        "Preconditions": asl.task(
            "Preconditions", "failback", "preconditions",
            {"state_machine_arn.$": "$$.StateMachine.Id", "execution_arn.$": "$$.Execution.Id",
             "region": plan.dr_region, "primary_region": plan.primary_region,
             "databases": [d.identifier for d in plan.rds_databases],
             "environments": [{"application": e.application, "name": e.name} for e in plan.environments]},
            result_path="$.pre", next_state="Reprotect"),
    }
    reprotect: list[tuple[str, asl.State]] = []
    if plan.rds_databases:
        reprotect.append(("databases", branch("ReprotectDatabases", _map(
            "Reverse replica", "$.plan.databases", "db", "RetireStale", _reprotect_database_states()))))
    if plan.environments:
        reprotect.append(("environments", branch("PrimaryEnvironments", _map(
            "Primary environment", "$.plan.environments", "env", "PrimaryEnvironment", _environment_states()))))
    s3 = failback_s3.reprotect_branch(plan)
    if s3:
        reprotect.append(("buckets", s3))
    if not covers(plan):
        raise ValueError(f"plan {plan.name}: the failback covers plans of RDS databases, Beanstalk environments, S3 "
                         "buckets and DNS only")
    states["Reprotect"] = parallel("Re-protect", reprotect, "$.reprotect",
                                   "Resumed" if plan.rds_databases else "NeedsApproval?")
    if plan.rds_databases:
        # Promotion happens for every database after one drain of all: one promoted means an earlier run of this
        # failback was past its approval and data check; the re-run goes on from the promotion.
        states["Resumed"] = {"Type": "Pass", "Comment": "Re-protect",
                             "Parameters": {"first.$": "States.ArrayGetItem($.reprotect.databases, 0)"},
                             "ResultPath": "$.resume", "Next": "Resumed?"}
        states["Resumed?"] = {"Type": "Choice", "Comment": "Re-protect",
                              "Choices": [{"Variable": "$.resume.first.switched", "BooleanEquals": True,
                                           "Next": "SwitchedEarlier"}], "Default": "NeedsApproval?"}
        states["SwitchedEarlier"] = {"Type": "Pass", "Comment": SWITCH_STEP,
                                     "Parameters": {"at.$": "$$.State.EnteredTime", "resumed": True},
                                     "ResultPath": "$.switch", "Next": "PromotePrimary"}
    states.update(_approval_states(plan, "WritesStopped"))
    after_switch = "ReturnDns" if plan.dns else "VerifyService"
    states.update(_switch_states(plan, after_switch))
    if plan.dns:
        states.update(failback_dns.dns_back_states(plan, "ReturnDns", "VerifyService"))
    s3_check = "CheckS3" if plan.buckets else "Rearm"
    states.update(verify_states(_verify_params(plan), s3_check, _data_params(plan) if plan.rds_databases else None))
    if plan.buckets:
        states.update(failback_s3.check_states(plan, "CheckS3", "Rearm"))
    rearm = _rearm_branches(plan)
    after_rearm = "Replicate"
    states["Rearm"] = parallel("Re-arm pilot light", rearm, "$.rearm", after_rearm) if rearm else {
        "Type": "Pass", "Comment": "Re-arm pilot light", "Next": after_rearm}
    replicate = {"state_machine_arn.$": "$$.StateMachine.Id", "region": plan.dr_region,
                 "execution_arn.$": "$$.Execution.Id"}
    after_replicate = "DeleteRetired" if plan.rds_databases else "Summary"
    states.update(asl.poll_loop("Replicate", "Re-arm pilot light", service="failback",
                                act=("start_replicate", replicate), check=("check_replicate", replicate),
                                interval_seconds=REPLICATE_POLL, first_wait_seconds=REPLICATE_FIRST,
                                max_attempts=REPLICATE_MAX, next_state=after_replicate, what="replicate run"))
    if plan.rds_databases:
        params = {"region.$": "$.dr_region", "dr_identifier.$": "$.db.dr_replica_identifier", "stamp.$": "$.stamp",
                  "primary_region.$": "$.primary_region", "identifier.$": "$.db.identifier"}
        delete = _db_loop("Delete", "Delete retired DR database", "delete_retired", "check_retired_deleted", params,
                          DELETE_FIRST, DELETE_POLL, DELETE_MAX, "Deleted", "retired DR database deletion")
        delete["Deleted"] = asl.end_pass("Delete retired DR database", {"retired.$": "$.poll.retired",
                                                                        "final_snapshot.$": "$.poll.final_snapshot"})
        states["DeleteRetired"] = _map("Delete retired DR database", "$.plan.databases", "db", "Delete", delete,
                                       "$.deleted", "Summary")
    summary: dict[str, Any] = {
        "plan.$": "$.plan.name", "primary_region.$": "$.plan.primary_region", "pre.$": "$.pre",
        "reprotect.$": "$.reprotect", "switch.$": "$.switch", "restored.$": "$.restored", "rearm_at.$":
        "$$.State.EnteredTime", "objectives.$": "$.plan.objectives",
    }
    if plan.rds_databases:
        summary.update({"promoted.$": "$.promoted", "data_after.$": "$.data_after", "deleted.$": "$.deleted"})
    if plan.dns:
        summary["dns_back.$"] = "$.dns_back"
    if plan.buckets:
        summary["s3_check.$"] = "$.s3_check"
    states["Summary"] = {"Type": "Pass", "Comment": "Summary", "Parameters": summary, "End": True}
    failures.add_record(states, plan, "failback", skip=("Preconditions", "AwaitApproval"))
    return asl.machine(f"pilotlight failback for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)

