"""The failover workflow: promote the DR replica(s), harden them, repoint DNS, summarise.

Order: guard rails (one run at a time, minimum interval, primary not healthy unless forced)
-> approval when the plan asks for it -> promote -> wait until available -> enable Multi-AZ
-> resize -> DNS.
Each AWS call is a Lambda step; each wait is a bounded Wait/Check/Choice loop.
"""

from __future__ import annotations

from typing import Any

from workflows import asl
from workflows.plan import Plan

# Poll intervals and attempt limits. Limits sit well above the p95 durations in the latency
# table (promote 15 min, Multi-AZ 40 min, resize 30 min, Route 53 INSYNC ~1 min).
PROMOTE_POLL, PROMOTE_MAX = 30, 90  # 45 min
MULTI_AZ_POLL, MULTI_AZ_MAX = 60, 90  # 90 min
RESIZE_POLL, RESIZE_MAX = 60, 75  # 75 min
DNS_POLL, DNS_MAX = 10, 60  # 10 min
MACHINE_TIMEOUT = 6 * 3600
APPROVAL_TIMEOUT = 4 * 3600  # an unanswered approval request fails the execution


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
            }
            for db in plan.databases
        ],
    }
    if plan.dns is not None:
        doc["dns"] = {
            "hosted_zone_id": plan.dns.hosted_zone_id,
            "record_name": plan.dns.record_name,
            "record_type": plan.dns.record_type,
            "ttl": plan.dns.ttl,
            "target": plan.dns_dr_target,
        }
    return doc


def _database_states() -> dict[str, asl.State]:
    region = {"region.$": "$.dr_region", "identifier.$": "$.db.dr_replica_identifier"}
    states: dict[str, asl.State] = {}
    states.update(
        asl.poll_loop(
            "PromoteReplica",
            "Promote DR replica",
            service="rds",
            act=("promote_replica", region),
            check=("check_promoted", region),
            interval_seconds=PROMOTE_POLL,
            max_attempts=PROMOTE_MAX,
            next_state="MultiAzWanted?",
            what="replica promotion",
        )
    )
    states["MultiAzWanted?"] = {
        "Type": "Choice",
        "Comment": "Enable Multi-AZ",
        "Choices": [{"Variable": "$.db.multi_az_on_failover", "BooleanEquals": True, "Next": "EnableMultiAz"}],
        "Default": "Resize",
    }
    states.update(
        asl.poll_loop(
            "EnableMultiAz",
            "Enable Multi-AZ",
            service="rds",
            act=("enable_multi_az", region),
            check=("check_multi_az", region),
            interval_seconds=MULTI_AZ_POLL,
            max_attempts=MULTI_AZ_MAX,
            next_state="Resize",
            what="Multi-AZ conversion",
        )
    )
    resize = {**region, "instance_class.$": "$.db.failover_instance_class"}
    states.update(
        asl.poll_loop(
            "Resize",
            "Resize to failover class",
            service="rds",
            act=("resize", resize),
            check=("check_resized", resize),
            interval_seconds=RESIZE_POLL,
            max_attempts=RESIZE_MAX,
            next_state="DatabaseReady",
            what="instance class change",
        )
    )
    states["DatabaseReady"] = {
        "Type": "Pass",
        "Comment": "Resize to failover class",
        "Parameters": {"source.$": "$.db.identifier", "db.$": "$.poll.db"},
        "End": True,
    }
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
            "Retry": [{"ErrorEquals": asl.LAMBDA_SERVICE_ERRORS, "IntervalSeconds": 2, "MaxAttempts": 3,
                       "BackoffRate": 2.0}],
            "Next": first,
        }
    return states


def build(plan: Plan) -> dict[str, Any]:
    states: dict[str, asl.State] = {}
    first = "Databases" if plan.databases else ("RepointDns" if plan.dns else "Summary")
    states["LoadPlan"] = {
        "Type": "Pass",
        "Comment": "Load plan",
        "Parameters": {"plan": plan_document(plan), "trigger.$": "$"},
        "Next": "GuardRails",
    }
    states.update(_guard_states(plan, first))
    after_db = "RepointDns" if plan.dns else "Summary"
    if plan.databases:
        states["Databases"] = {
            "Type": "Map",
            "Comment": "Databases",
            "ItemsPath": "$.plan.databases",
            "ItemSelector": {"db.$": "$$.Map.Item.Value", "dr_region.$": "$.plan.dr_region"},
            "MaxConcurrency": 0,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "PromoteReplica",
                "States": _database_states(),
            },
            "ResultPath": "$.databases",
            "Next": after_db,
        }
    if plan.dns:
        dns = {
            "zone_id.$": "$.plan.dns.hosted_zone_id",
            "name.$": "$.plan.dns.record_name",
            "record_type.$": "$.plan.dns.record_type",
        }
        states.update(
            asl.poll_loop(
                "RepointDns",
                "Repoint DNS",
                service="dns",
                act=("upsert_record", {**dns, "ttl.$": "$.plan.dns.ttl", "value.$": "$.plan.dns.target"}),
                check=("check_change", {"change_id.$": "$.poll.change_id"}),
                interval_seconds=DNS_POLL,
                max_attempts=DNS_MAX,
                next_state="Summary",
                what="Route 53 change",
            )
        )
    summary: dict[str, Any] = {"plan.$": "$.plan.name", "dr_region.$": "$.plan.dr_region", "guard.$": "$.guard"}
    if plan.databases:
        summary["databases.$"] = "$.databases"
    if plan.dns:
        summary["dns"] = {"record.$": "$.plan.dns.record_name", "target.$": "$.plan.dns.target"}
    states["Summary"] = {"Type": "Pass", "Comment": "Summary", "Parameters": summary, "End": True}
    return asl.machine(f"pilotlight failover for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)
