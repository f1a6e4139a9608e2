"""What a workflow records when it ends on a terminal error (workflows/asl.py ``record_failures``).

Each workflow names the resources it acts on; the record (``report.record_failure``) reads each one's state
when the error is caught: the RDS instances, the Beanstalk environments and the DNS record of the plan. The
other tiers' last known states are in the outputs of their steps, in the execution's history.
"""

from __future__ import annotations

from typing import Any

from workflows import asl
from workflows.plan import Plan


def resources(plan: Plan, workflow: str) -> list[dict[str, Any]]:
    """The resources of ``plan`` whose state a failed ``workflow`` reports."""
    out: list[dict[str, Any]] = []
    if workflow in ("replicate", "drill"):  # replicate reads and copies the primary; a drill must leave it as it is
        out += [{"kind": "database", "region": plan.primary_region, "name": d.identifier} for d in plan.rds_databases]
    if workflow in ("replicate", "failover", "drill"):  # a drill copies the live replica and must leave it as it is
        out += [{"kind": "database", "region": plan.dr_region, "name": d.dr_replica_identifier}
                for d in plan.rds_databases]
    if workflow == "failover":
        out += [{"kind": "environment", "region": plan.dr_region, "application": e.application,
                 "name": e.dr_environment_name} for e in plan.environments]
    if workflow == "failback":  # both sides of every database and environment it moves
        for db in plan.rds_databases:
            out += [{"kind": "database", "region": plan.primary_region, "name": db.identifier},
                    {"kind": "database", "region": plan.dr_region, "name": db.dr_replica_identifier}]
        for env in plan.environments:
            out += [{"kind": "environment", "region": plan.primary_region, "application": env.application,
                     "name": env.name},
                    {"kind": "environment", "region": plan.dr_region, "application": env.application,
                     "name": env.dr_environment_name}]
    if workflow in ("failover", "drill", "failback") and plan.dns is not None:
        out.append({"kind": "record", "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
                    "record_type": plan.dns.record_type})
    return out


def add_record(states: dict[str, asl.State], plan: Plan, workflow: str, *, skip: tuple[str, ...] = (),
               drill_path: str | None = None, list_input: tuple[str, ...] = ()) -> None:
    """Catch the workflow's terminal errors into its failure record (see :func:`workflows.asl.record_failures`)."""
    asl.record_failures(states, workflow, plan.name, plan.dr_region, resources(plan, workflow), skip=skip,
                        drill_path=drill_path, list_input=list_input)
