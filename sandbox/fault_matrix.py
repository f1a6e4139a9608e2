"""The fault matrix: every mutating AWS operation a workflow calls x every fault kind, run for real.

The operations are not listed by hand: a clean run of each workflow in the sandbox records the calls its
functions make (:func:`record_calls`), and those whose IAM action mutates (``infra.iam.is_mutating``) are the
rows. Each cell then

1. takes the invariants' baseline (sandbox/invariants.py) and injects the fault (sandbox/faults.py), counted
   from the start of the run: the first call of the operation fails (``AccessDenied``: every call, so it
   stays denied whatever is retried);
2. runs the real state machine (a drill with its teardown, as EventBridge starts it);
3. clears the fault and, where the workflow failed, runs it again clean (failover: again, which resumes;
   replicate and readiness: again; drill: the teardown of that drill, as ``pilotlight drill-cleanup`` does);
4. judges: the faulted run succeeded or failed with a named error (never ``States.Runtime``), every
   invariant holds, and the end state equals the clean run's (:func:`end_state`).

A cell is ``recovered`` (the faulted run succeeded), ``failed-clean`` (it failed with a named error and the
re-run converged) or ``VIOLATED`` (anything else, with the reasons).

Set-up is shared where a run leaves the estate as it found it: drill cells run one after another in one
sandbox (each cell's re-run restores the clean state the next starts from). Replicate, readiness and failover
cells each get an estate of their own (:data:`OWN_ESTATE`), built in the state the clean reference run met.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from sandbox import Sandbox, invariants
from sandbox.faults import KINDS
from workflows.executions import Result, follow
from workflows.plan import Plan

WORKFLOWS = ("replicate", "readiness", "drill", "failover")
# Per cell, the throttling error the service itself answers with.
_THROTTLE = {"ec2": "RequestLimitExceeded", "lambda": "TooManyRequestsException"}
# The kinds of a row; "Throttle" becomes the service's own throttling code.
MATRIX_KINDS = ("Throttle", "ServiceUnavailable", "InternalFailure", "ReadTimeout", "ConnectionError", "Crash",
                "AccessDenied")
RECOVERED, FAILED_CLEAN, VIOLATED = "recovered", "failed-clean", "VIOLATED"
RUN_TIMEOUT = 600.0  # wall seconds for one run to end, far above any clean run


@dataclass(frozen=True)
class Operation:
    workflow: str
    service: str  # boto3 client name
    operation: str


@dataclass
class Cell:
    op: Operation
    kind: str  # a sandbox/faults.py kind
    outcome: str = ""
    error: str | None = None
    hits: int = 0
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def spec(self) -> str:
        when = "x10000" if self.kind == "AccessDenied" else "1"
        return f"{self.op.service}:{self.op.operation}:{self.kind}:{when}"


def kind_for(service: str, matrix_kind: str) -> str:
    if matrix_kind == "Throttle":
        return _THROTTLE.get(service, "Throttling")
    assert matrix_kind in KINDS, matrix_kind
    return matrix_kind


# -- recording the calls of a clean run ------------------------------------------------------------------------


@contextmanager
def record_calls(sb: Sandbox) -> Iterator[set[tuple[str, str]]]:
    """Collect (boto3 client name, operation) of every call the functions make while the block runs."""
    calls: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def seen(model: Any, **_: Any) -> None:
        if sb.lambdas.in_function():
            with lock:
                calls.add((model.service_model.service_name, model.name))

    sb._events.register("before-call", seen, unique_id="pilotlight-matrix-record")
    try:
        yield calls
    finally:
        sb._events.unregister("before-call", unique_id="pilotlight-matrix-record")


def mutating(calls: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The calls whose IAM action changes something (Describe/List/Get and the like are not)."""
    from infra.iam import is_mutating
    from sandbox.iam_enforce import iam_action

    session = boto3.session.Session()
    out = []
    for service, operation in sorted(calls):
        event_name = session._session.get_service_model(service).service_id.hyphenize()
        if service == "lambda" or not is_mutating(iam_action(event_name, operation)):
            continue
        out.append((service, operation))
    return out


# -- the end state a run converges to --------------------------------------------------------------------------


def end_state(plan: Plan) -> dict[str, Any]:
    """What the estate looks like, in the terms a run is judged by (no minted ids, no timestamps)."""
    rds = boto3.client("rds", region_name=plan.dr_region)
    out: dict[str, Any] = {}
    for d in plan.rds_databases:
        db = invariants._db(plan.dr_region, d.dr_replica_identifier)
        out[f"db {d.dr_replica_identifier}"] = None if db is None else {
            "status": db["DBInstanceStatus"], "replica": bool(db.get("ReadReplicaSourceDBInstanceIdentifier")),
            "class": db["DBInstanceClass"], "multi_az": db.get("MultiAZ")}
        if d.az2_replica is not None:
            az2 = invariants._db(plan.primary_region, d.az2_replica.identifier)
            out[f"db {d.az2_replica.identifier}"] = None if az2 is None else az2["DBInstanceStatus"]
    out["dr instances"] = len(rds.describe_db_instances()["DBInstances"])
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    live = eb.describe_environments(IncludeDeleted=False)["Environments"]
    out["dr environments"] = sorted((e["EnvironmentName"], e["Status"], e.get("Health")) for e in live
                                    if e["Status"] != "Terminated")
    for env in plan.environments:
        from lambdas.beanstalk_config import template_name

        templates = eb.describe_applications(ApplicationNames=[env.application])["Applications"]
        out[f"saved configuration {env.name}"] = bool(templates) and template_name(plan.name, env.name) in (
            templates[0].get("ConfigurationTemplates") or [])
        versions = eb.describe_application_versions(ApplicationName=env.application)["ApplicationVersions"]
        out[f"versions {env.application}"] = sorted(v["VersionLabel"] for v in versions)
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    images = ec2.describe_images(Owners=["self"])["Images"]
    out["dr images"] = len([i for i in images if i.get("State") == "available"])
    out["dns"] = invariants._dns_answer(plan)
    out["drill leftovers"] = invariants._drill_leftovers(plan)
    s3 = boto3.client("s3", region_name=plan.primary_region)
    for pair in plan.buckets:
        try:
            rules = s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]["Rules"]
        except s3.exceptions.ClientError:
            rules = []
        out[f"replication {pair.source}"] = sorted(r["Destination"]["Bucket"] for r in rules)
    return out


def _comparable(state: dict[str, Any], workflow: str) -> dict[str, Any]:
    # A replicate made at another modeled hour may take a new AMI (max_age_hours) and prune an old one:
    # the count within retention is what converges, not which images.
    if workflow in ("replicate", "drill", "readiness"):
        return {k: v for k, v in state.items() if k != "dr images"}
    return state


# -- running a cell ----------------------------------------------------------------------------------------------


def _follow(sb: Sandbox, plan: Plan, workflow: str, payload: dict[str, Any]) -> Result:
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    return follow(sfn, sb.start(plan, workflow, payload), poll_seconds=0.05, timeout_seconds=RUN_TIMEOUT)


def _run(sb: Sandbox, plan: Plan, workflow: str) -> tuple[Result, Result | None, str | None]:
    """One run of ``workflow``; for a drill also its teardown (and the drill's id)."""
    if workflow == "drill":
        from commands.drill import drill_input, sandbox_drill

        result, drill_id, teardown = sandbox_drill(sb, plan, drill_input("fault matrix", keep=False, harden=False,
                                                                         force=True), None)
        return result, teardown, drill_id
    payload = ({"source": "fault matrix", "approved_by": "fault matrix"} if workflow == "failover"
               else {"source": "fault matrix"})
    return _follow(sb, plan, workflow, payload), None, None


def _named(result: Result | None) -> str | None:
    """Why a run's end is not acceptable (None: it succeeded, or failed with a named error)."""
    if result is None:
        return "the run did not start"
    if result.status == "SUCCEEDED":
        return None
    if result.status != "FAILED" or not result.error or result.error.startswith("States.Runtime"):
        return f"ended {result.status} {result.error}: {result.cause}"
    if "Traceback" in (result.cause or ""):
        return f"a traceback in the cause of {result.error}"
    return None


def _ok(result: Result | None, workflow: str) -> bool:
    if result is None or result.status != "SUCCEEDED":
        return False
    return workflow != "replicate" or bool((result.output or {}).get("ok"))


def run_cell(sb: Sandbox, plan: Plan, cell: Cell, clean: dict[str, Any]) -> Cell:
    """Run one cell in ``sb`` (whose estate is ready for the workflow); see the module's docstring."""
    workflow = cell.op.workflow
    started = time.monotonic()
    before = invariants.baseline(plan)
    watch = invariants.watch_dns(sb, plan)
    fault = sb.inject(cell.spec)
    try:
        first, teardown, drill_id = _run(sb, plan, workflow)
    finally:
        cell.hits = fault.hits
        sb.faults.clear()
    cell.error = first.error
    reasons = [r for r in (_named(first), _named(teardown) if workflow == "drill" else None) if r]
    recovered = _ok(first, workflow) and (workflow != "drill" or _ok(teardown, "drill-teardown"))
    if not recovered:
        if workflow == "drill":
            if drill_id is not None and not _ok(teardown, "drill-teardown"):
                again = _follow(sb, plan, "drill-teardown", {"source": "fault matrix", "drill_id": drill_id})
                if not _ok(again, "drill-teardown"):
                    reasons.append(f"the re-run teardown ended {again.status} {again.error}: {again.cause}")
        else:
            again, _, _ = _run(sb, plan, workflow)
            if not _ok(again, workflow):
                reasons.append(f"the clean re-run ended {again.status} {again.error}: {again.cause}")
    invariants.unwatch_dns(sb, watch)
    reasons += invariants.check(plan, workflow, before, drill_over=workflow == "drill", watch=watch)
    now = end_state(plan)
    if _comparable(now, workflow) != _comparable(clean, workflow):
        diff = {k: (clean.get(k), now.get(k)) for k in set(now) | set(clean) if clean.get(k) != now.get(k)}
        reasons.append(f"end state differs from the clean run's: {diff}")
    if cell.hits == 0:
        reasons.append("the fault never fired (the operation was not called)")
    cell.reasons = reasons
    cell.outcome = VIOLATED if reasons else (RECOVERED if recovered else FAILED_CLEAN)
    cell.seconds = time.monotonic() - started
    return cell


# -- estates -------------------------------------------------------------------------------------------------------


def build_estate(sb: Sandbox, plan: Plan, workflow: str) -> None:
    """The estate a ``workflow`` cell starts from, as the clean reference run met it: the primary as seeded,
    with its pilot light built (replicate run clean) for every workflow but replicate, and the primary failing
    for a failover."""
    sb.seed(plan)
    if workflow == "replicate":
        sb.deploy(plan)
    else:
        sb.build_pilot_light(plan)
    if workflow == "failover":
        sb.simulate_disaster(plan)


def reference_runs(plan: Plan, workflows: tuple[str, ...] = WORKFLOWS
                   ) -> tuple[dict[str, list[Operation]], dict[str, dict[str, Any]]]:
    """Clean runs of every workflow, one after another in one estate as they happen in life (replicate builds
    the pilot light, readiness checks it, a drill rehearses on it, the failover ends it): per workflow, the
    mutating operations its functions call (a drill's include its teardown's) and the end state it leaves."""
    ops: dict[str, list[Operation]] = {}
    clean: dict[str, dict[str, Any]] = {}
    with Sandbox() as sb:
        sb.seed(plan)
        sb.deploy(plan)
        for workflow in WORKFLOWS:
            if workflow == "failover":
                sb.simulate_disaster(plan)
            with record_calls(sb) as calls:
                result, teardown, _ = _run(sb, plan, workflow)
            if not _ok(result, workflow) or (workflow == "drill" and not _ok(teardown, "drill-teardown")):
                raise RuntimeError(f"the clean {workflow} run failed: {result.error}: {result.cause}")
            ops[workflow] = [Operation(workflow, s, o) for s, o in mutating(calls)]
            clean[workflow] = end_state(plan)
    return {w: ops[w] for w in workflows}, {w: clean[w] for w in workflows}


def cells_for(ops: list[Operation], kinds: tuple[str, ...] = MATRIX_KINDS) -> list[Cell]:
    return [Cell(op, kind_for(op.service, k)) for op in ops for k in kinds]


# A replicate cell starts before the pilot light exists, a failover cell ends it, and a readiness run notifies
# only the first time (or when the status changes): each needs an estate of its own.
OWN_ESTATE = ("replicate", "readiness", "failover")


def run_cells(plan: Plan, workflow: str, cells: list[Cell], clean: dict[str, Any],
              on_cell: Callable[[Cell], None] | None = None) -> list[Cell]:
    """Run ``cells`` of one workflow: in one shared estate, or an estate each (:data:`OWN_ESTATE`)."""
    if workflow in OWN_ESTATE:
        for cell in cells:
            with Sandbox() as sb:
                build_estate(sb, plan, workflow)
                run_cell(sb, plan, cell, clean)
            if on_cell:
                on_cell(cell)
        return cells
    with Sandbox() as sb:
        build_estate(sb, plan, workflow)
        for cell in cells:
            run_cell(sb, plan, cell, clean)
            if on_cell:
                on_cell(cell)
    return cells


def summary(cells: list[Cell]) -> dict[str, Any]:
    counts = {o: sum(c.outcome == o for c in cells) for o in (RECOVERED, FAILED_CLEAN, VIOLATED)}
    return {"cells": len(cells), **counts, "passed": counts[RECOVERED] + counts[FAILED_CLEAN],
            "failed": counts[VIOLATED],
            "median_seconds": round(statistics.median(c.seconds for c in cells), 2) if cells else 0.0}
