"""The report of a drill or failover execution, built from its execution history and output only.

Nothing here reads hand-kept state (SSM, local files) or the resources themselves: every figure comes
from Step Functions (DescribeExecution, GetExecutionHistory, ListExecutions), so a report can be rebuilt
for any past execution, by anyone who may read the plan's executions, and gives the same answer each time.

- Timeline: the steps ``workflows.executions.Follower`` reads (the states sharing a step label).
- RTO: start to the ``Service restored`` step (``Result.restored_at``); drills also less the copy
  (``workflows.drill_audit.figures``).
- RPO: ``restore.databases[].rpo.lag_seconds`` of the output; for an execution that failed (no output),
  the ``rpo`` the replica-lag states wrote, read from their exits in the history. Beside it, the data-loss
  window of each promoted database from the canary checks (``restored.data[].heartbeat``).
- Probes: the HTTP checks of the verification round that restored service (``restored.checks``); for an
  execution that failed, those of the last round its history holds.
- Canary writes: the row each promoted database (or drill copy) was written and read back with, by SQL
  (``restored.data``) or through the RDS Data API in a new Aurora writer (``restored.aurora_data``); for an
  execution that failed, those of the last round of each its history holds.
- Resources: the identifiers each step's Task states were scheduled with (the Lambda input, or the
  ``Payload`` of an ``arn:aws:states:::lambda:invoke`` task).
- Critical path: :data:`CRITICAL_PATH_RULE`.
- Readiness at start: the drill's own reading (``output.drill.readiness``); for a failover, the last
  SUCCEEDED run of the plan's readiness state machine that ended before the failover started.
- Teardown (drills): the teardown execution EventBridge started for the drill, found by its input (the
  drill's status-change event names the drill's execution ARN).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from reports.schema import Report
from workflows.executions import RESTORED_STEP, Follower, Result
from workflows.plan import Plan

CRITICAL_PATH_RULE = (
    "Walk back from 'Service restored': the previous step on the path is the one whose own activity ended last "
    "at or before the current step's own activity began (ties: the one that began later). A step's own activity "
    "spans the states carrying its label other than Parallel and Map states, so container steps that only span "
    "their children ('Restore', 'Harden') are skipped, and a step whose Map state opens before a sibling step "
    "(a drill's 'Promote DR replica' around its 'Copy DR replica') counts from its first state of its own."
)

# Scheduled-task input keys whose value is the id of a resource the task acts on or reads.
_RESOURCE_KEYS = ("identifier", "dr_environment", "name", "record_name", "zone_id", "hosted_zone_id", "bucket",
                  "dr_cluster", "global_cluster", "table", "parameter", "clone")
# Keys holding a list (or one object) of resources: string items are ids; in object items, the key naming it.
_RESOURCE_LISTS = {"environments": "dr_environment", "databases": "dr_replica_identifier", "dns_record": "name",
                   "buckets": None, "alarms": "name"}
_CONTAINER_EVENTS = ("MapState", "ParallelState")
# How far back (execution pages of 100) to look for the readiness run before a failover or a drill's teardown.
_MAX_PAGES = 10


class NotAReportableExecution(ValueError):
    """The execution is not one of the plan's drills or failovers."""


def kind_of(plan: Plan, state_machine_arn: str) -> str:
    from workflows import render  # imports every builder and the lambdas (boto3): only when needed

    name = state_machine_arn.rsplit(":", 1)[-1]
    for kind in ("drill", "failover", "failback"):
        if name == render.state_machine_name(plan, kind):
            return kind
    raise NotAReportableExecution(f"{name} is not the drill, failover or failback state machine of plan {plan.name}")


def machine_arn(any_machine_arn: str, plan: Plan, workflow: str) -> str:
    """The ARN of the plan's ``workflow`` state machine, in the same region and account as ``any_machine_arn``."""
    from workflows import render

    return any_machine_arn.rsplit(":", 1)[0] + ":" + render.state_machine_name(plan, workflow)


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- reading the history -------------------------------------------------------------------------


def _state_of(events: list[dict[str, Any]]) -> dict[int, str]:
    """Event id -> name of the state the event belongs to (following previousEventId back to its entry)."""
    by_id = {e["id"]: e for e in events}
    out: dict[int, str] = {}
    for event in events:
        chain, node = [], event
        while node is not None and node["id"] not in out and not node["type"].endswith("StateEntered"):
            chain.append(node["id"])
            node = by_id.get(node.get("previousEventId", 0))
        if node is None:
            continue
        name = out.get(node["id"]) or node["stateEnteredEventDetails"]["name"]
        out[node["id"]] = name
        for eid in chain:
            out[eid] = name
    return out


def _scheduled_input(event: dict[str, Any]) -> Any:
    if event["type"] == "LambdaFunctionScheduled":
        return _loads((event.get("lambdaFunctionScheduledEventDetails") or {}).get("input"))
    if event["type"] == "TaskScheduled":
        params = _loads((event.get("taskScheduledEventDetails") or {}).get("parameters"))
        if isinstance(params, dict) and isinstance(params.get("Payload"), dict):
            return params["Payload"]
        return params
    return None


def _resource_ids(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    out: list[str] = []
    for key in _RESOURCE_KEYS:
        if isinstance(payload.get(key), str):
            out.append(payload[key])
    for key, inner in _RESOURCE_LISTS.items():
        value = payload.get(key)
        for item in value if isinstance(value, list) else [value] if isinstance(value, dict) else []:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and inner and isinstance(item.get(inner), str):
                out.append(item[inner])
    return out


def step_resources(events: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, list[str]]:
    """Step label -> the resource ids its Task states were scheduled with, in first-seen order."""
    states = _state_of(events)
    out: dict[str, list[str]] = {}
    for event in events:
        if event["type"] not in ("LambdaFunctionScheduled", "TaskScheduled") or event["id"] not in states:
            continue
        label = labels.get(states[event["id"]], states[event["id"]])
        seen = out.setdefault(label, [])
        seen.extend(r for r in _resource_ids(_scheduled_input(event)) if r not in seen)
    return out


def own_activity(events: list[dict[str, Any]], labels: dict[str, str], t0: float) -> dict[str, tuple[float, float]]:
    """Step label -> (first entry, last entry or exit) of its states other than Parallel and Map, in seconds."""
    out: dict[str, tuple[float, float]] = {}
    for event in events:
        kind = event["type"]
        if not (kind.endswith("StateEntered") or kind.endswith("StateExited")) or kind.startswith(_CONTAINER_EVENTS):
            continue
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}
        label = labels.get(details.get("name"), details.get("name"))
        at = event["timestamp"].timestamp() - t0 if isinstance(event["timestamp"], datetime) else \
            float(event["timestamp"]) - t0
        start, end = out.get(label, (at, at))
        out[label] = (min(start, at), max(end, at))
    return out


def critical_path(activity: dict[str, tuple[float, float]], restored: str = RESTORED_STEP) -> list[str]:
    """The steps on the path to ``restored``, first to last (:data:`CRITICAL_PATH_RULE`)."""
    if restored not in activity:
        return []
    path = [restored]
    begin = activity[restored][0]
    epsilon = 1e-3  # timestamps are milliseconds
    while True:
        candidates = [(end, start, label) for label, (start, end) in activity.items()
                      if label not in path and end <= begin + epsilon and start <= begin + epsilon]
        if not candidates:
            break
        _, begin, label = max(candidates, key=lambda c: (c[0], c[1]))
        path.append(label)
    return path[::-1]


def _exited_outputs(events: list[dict[str, Any]]) -> list[Any]:
    """State outputs in the order the states exited."""
    return [_loads(e["stateExitedEventDetails"].get("output")) for e in events
            if e["type"].endswith("StateExited") and e.get("stateExitedEventDetails")]


def _dig(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _first_in(outputs: list[Any], *path: str) -> Any:
    return next((v for v in (_dig(o, *path) for o in outputs) if v is not None), None)


# -- figures ---------------------------------------------------------------------------------------


def rpo_lags(kind: str, output: Any, events: list[dict[str, Any]]) -> dict[str, float | None]:
    """DR replica (or Aurora DR cluster, or global table) -> the data-loss window in seconds
    (:func:`workflows.drill_audit.output_lags`); for a failed execution, what the lag states wrote."""
    from workflows import drill_audit

    lags = drill_audit.output_lags(kind, output)
    if lags is not None:
        return lags
    lags = {}
    # No output (the execution failed): the lag each replica-lag state wrote to $.rpo.
    for out in _exited_outputs(events):
        rpo = _dig(out, "rpo")
        if isinstance(rpo, dict) and "lag_seconds" in rpo and rpo.get("identifier"):
            lags.setdefault(str(rpo["identifier"]), rpo["lag_seconds"])
    return lags


def _last_checks(events: list[dict[str, Any]], kind: str) -> list[Any]:
    """The newest verification round in the history whose checks include one of ``kind``."""
    for out in reversed(_exited_outputs(events)):
        for path in (("poll", "checks"), ("data_checks", "checks"), ("aurora_checks", "checks")):
            checks = _dig(out, *path)
            if isinstance(checks, list) and any(isinstance(c, dict) and c.get("check") == kind for c in checks):
                return checks
    return []


def probes_of(output: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The HTTP probes of the round that restored service (``restored.checks``), else of the last round made."""
    checks = _dig(output, "restored", "checks")
    if not isinstance(checks, list):
        checks = _last_checks(events, "http probe")
    return [{"url": str(c.get("resource")), "ok": bool(c.get("ok")), "status": c.get("status"),
             "seconds": c.get("seconds"), "detail": c.get("detail")}
            for c in checks if isinstance(c, dict) and c.get("check") == "http probe"]


# The canary checks (lambdas/canary.py) by where ``restored`` holds them, their check name and the report's method.
_CANARY_CHECKS = (("data", "canary write", "SQL"), ("aurora_data", "canary write (Data API)", "RDS Data API"))


def canary_writes_of(output: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The canary writes of the round that restored service (``restored.data``, then ``restored.aurora_data``), else
    of the last round of each kind made. Only the fields of :class:`reports.schema.CanaryWrite` are copied."""
    writes = []
    for key, kind, method in _CANARY_CHECKS:
        checks = _dig(output, "restored", key)
        if not isinstance(checks, list):
            checks = _last_checks(events, kind)
        writes += [{"database": str(c.get("resource")), "method": method, "ok": bool(c.get("ok")),
                    "skipped": bool(c.get("skipped")), "row": _text(c.get("row")), "detail": _text(c.get("detail"))}
                   for c in checks if isinstance(c, dict) and c.get("check") == kind]
    return writes


def data_loss_of(output: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The data-loss windows of the canary checks (``restored.data``), else of the last canary round made."""
    from workflows import drill_audit

    checks = _dig(output, "restored", "data")
    return drill_audit.data_loss(checks if isinstance(checks, list) else _last_checks(events, "canary write"))


def figures(plan: Plan, kind: str, result: Result) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rto, rpo) of the execution, against the plan's objectives."""
    from workflows import drill_audit

    restored = result.restored_at
    objective = plan.objectives.rto_minutes * 60
    rto: dict[str, Any] = {"seconds": _r(restored), "objective_seconds": objective,
                           "met": restored is not None and restored <= objective, "copy_seconds": None,
                           "less_copy_seconds": None, "less_copy_met": None, "hardened_seconds": None}
    if kind == "drill":
        drilled = drill_audit.figures(plan, result)["rto"]
        rto.update({k: drilled[k] for k in ("copy_seconds", "less_copy_seconds", "less_copy_met")})
    elif result.status == "SUCCEEDED":
        rto["hardened_seconds"] = _r(result.duration)
    return rto, drill_audit.rpo_figures(plan, rpo_lags(kind, result.output, result.events),
                                        data_loss_of(result.output, result.events))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def trigger_of(kind: str, execution_input: Any, output: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Who or what started the execution (its input) and, for a failover, who approved it."""
    doc = execution_input if isinstance(execution_input, dict) else {}
    approved = None
    if kind in ("failover", "failback"):
        # The answer to the approval request ($.approval), else the operator's own start (the CLI's input).
        approved = _text(_dig(output, "approval", "approved_by") or
                         _first_in(_exited_outputs(events), "approval", "approved_by") or doc.get("approved_by"))
    if doc.get("detail-type") == "CloudWatch Alarm State Change":
        return {"source": "alarm", "user": None, "alarm": _text(_dig(doc, "detail", "alarmName")),
                "approved_by": approved}
    source = "schedule" if doc.get("trigger") == "schedule" else _text(doc.get("source"))
    return {"source": source, "user": _text(doc.get("requested_by") or doc.get("approved_by")), "alarm": None,
            "approved_by": approved}


# -- readiness and teardown ----------------------------------------------------------------------------


def _not_ready(checks: Any) -> list[dict[str, Any]]:
    out = []
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check.get("status") != "READY":
            out.append({"check": str(check.get("check")), "resource": check.get("resource"),
                        "status": str(check.get("status")), "reason": check.get("reason")})
    return out


def _executions(sfn: Any, state_machine_arn: str, **filters: Any) -> Any:
    """Executions of a state machine, newest first, at most _MAX_PAGES pages (none if it is not deployed)."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 100, **filters}
    for _ in range(_MAX_PAGES):
        try:
            page = sfn.list_executions(**kwargs)
        except sfn.exceptions.StateMachineDoesNotExist:
            return
        yield from sorted(page["executions"], key=lambda e: e["startDate"], reverse=True)
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def readiness_before_failover(sfn: Any, plan: Plan, failover_machine: str, started: datetime) -> dict[str, Any] | None:
    """The last SUCCEEDED readiness run of the plan that ended before ``started``; None if there is none."""
    machine = machine_arn(failover_machine, plan, "readiness")
    for execution in _executions(sfn, machine, statusFilter="SUCCEEDED"):
        stop = execution.get("stopDate")
        if stop is None or stop > started:
            continue
        out = _loads(sfn.describe_execution(executionArn=execution["executionArn"]).get("output")) or {}
        return {"source": "readiness_execution", "status": str(out.get("status") or "UNKNOWN"), "at": out.get("at"),
                "execution_arn": execution["executionArn"], "score": out.get("score"),
                "not_ready": _not_ready(out["checks"] if "checks" in out else out.get("not_ready")),
                "overridden": None}
    return None


def drill_readiness(output: Any, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    readiness = _dig(output, "drill", "readiness")
    if readiness is None:  # a failed drill has no output: what its first step wrote to $.drill
        readiness = _first_in(_exited_outputs(events), "drill", "readiness")
    if not isinstance(readiness, dict):
        return None
    not_ready = [{"check": str(c.get("check")), "resource": c.get("resource"), "status": str(c.get("status")),
                  "reason": c.get("reason")} for c in readiness.get("not_ready") or [] if isinstance(c, dict)]
    return {"source": "drill", "status": str(readiness.get("status") or "UNKNOWN"), "at": readiness.get("at"),
            "execution_arn": readiness.get("execution"), "score": readiness.get("score"), "not_ready": not_ready,
            "overridden": readiness.get("overridden")}


def teardown_of(sfn: Any, plan: Plan, drill_machine: str, drill_arn: str, drill_stop: datetime) -> str | None:
    """The teardown execution EventBridge started when the drill ``drill_arn`` ended (its input is that event).

    Teardowns start after the drill stops, so the search ends at the first one older than that.
    """
    machine = machine_arn(drill_machine, plan, "drill-teardown")
    for execution in _executions(sfn, machine):
        if execution["startDate"].timestamp() < drill_stop.timestamp() - 1:
            return None
        event = _loads(sfn.describe_execution(executionArn=execution["executionArn"]).get("input"))
        if isinstance(event, dict) and _dig(event, "detail", "executionArn") == drill_arn:
            return execution["executionArn"]
    return None


def teardown_report(sfn: Any, arn: str) -> dict[str, Any]:
    described = sfn.describe_execution(executionArn=arn)
    output = _loads(described.get("output")) or {}
    deleted: list[dict[str, Any]] = []
    remaining: list[dict[str, Any]] = []
    left = 0
    for part in (output.get("removed") or {}).values():
        part = part or {}
        deleted += [{"kind": str(d.get("kind")), "id": str(d.get("id")), "drill": d.get("drill")}
                    for d in part.get("deleted") or [] if isinstance(d, dict)]
        for item in part.get("remaining") or []:
            if isinstance(item, dict):
                remaining.append({"kind": item.get("kind"), "id": str(item.get("id")), "status": item.get("status")})
            else:
                remaining.append({"kind": None, "id": str(item), "status": None})
        left += int(part.get("left") or 0)
    start, stop = described["startDate"], described.get("stopDate")
    return {"execution_arn": arn, "execution_name": described["name"], "status": described["status"],
            "started_at": iso(start), "ended_at": iso(stop),
            "duration_seconds": None if stop is None else _r(stop.timestamp() - start.timestamp()),
            "kept": bool(output.get("kept")), "deleted": deleted, "left": left, "remaining": remaining,
            "error": described.get("error"), "cause": described.get("cause")}


# -- the report ---------------------------------------------------------------------------------------


def read(sfn: Any, execution_arn: str) -> tuple[dict[str, Any], Follower, Result]:
    """One look at an execution: its description, the follower that read its history, and the result."""
    follower = Follower(sfn, execution_arn)
    follower.poll()
    described = sfn.describe_execution(executionArn=execution_arn)
    return described, follower, follower.result(described, ended=described["status"] != "RUNNING")


def build(sfn: Any, execution_arn: str, plan: Plan, *, kind: str | None = None) -> dict[str, Any]:
    """The report of a drill or failover execution (:class:`reports.schema.Report`, as JSON-ready data)."""
    described, follower, result = read(sfn, execution_arn)
    machine = described["stateMachineArn"]
    kind = kind or kind_of(plan, machine)
    events = follower.events
    labels = follower.labels
    resources = step_resources(events, labels)
    activity = own_activity(events, labels, follower.t0)
    path = critical_path(activity)
    on_path = set(path)
    steps = []
    for step in result.steps:
        failed = step.status == "failed" and step.name == result.failed_step
        steps.append({"name": step.name, "start_seconds": _r(step.start), "end_seconds": _r(step.end),
                      "duration_seconds": _r(step.duration), "status": step.status,
                      "on_critical_path": step.name in on_path, "resources": resources.get(step.name, []),
                      "error": result.error if failed else None, "cause": result.cause if failed else None})
    rto, rpo = figures(plan, kind, result)
    started, stopped = described["startDate"], described.get("stopDate")
    if stopped is None and described["status"] != "RUNNING" and events:
        stopped = events[-1]["timestamp"]
    execution_input = _loads(described.get("input"))
    drill_id = options = readiness = teardown = None
    if kind == "drill":
        from lambdas import drill as names

        drill_id = names.drill_id(execution_arn, started)
        options = _dig(result.output, "drill", "options") or _first_in(_exited_outputs(events), "drill", "options")
        readiness = drill_readiness(result.output, events)
        if stopped is not None:
            found = teardown_of(sfn, plan, machine, execution_arn, stopped)
            teardown = teardown_report(sfn, found) if found else None
    else:
        readiness = readiness_before_failover(sfn, plan, machine, started)
    switched = None
    if kind == "failback":
        from reports import failback

        switched = failback.switch(plan, result.output)
    doc = {
        "plan": plan.name,
        "kind": kind,
        "execution_arn": execution_arn,
        "execution_name": described["name"],
        "state_machine_arn": machine,
        "drill_id": drill_id,
        "trigger": trigger_of(kind, execution_input, result.output, events),
        "options": {k: bool(options.get(k)) for k in ("keep", "harden", "force")} if isinstance(options, dict)
        else None,
        "started_at": iso(started),
        "ended_at": iso(stopped),
        "duration_seconds": _r(result.duration),
        "status": described["status"],
        "error": described.get("error"),
        "cause": described.get("cause"),
        "failed_step": result.failed_step,
        "rto": rto,
        "rpo": rpo,
        "steps": steps,
        "probes": probes_of(result.output, events),
        "canary_writes": canary_writes_of(result.output, events),
        "critical_path": path,
        "critical_path_rule": CRITICAL_PATH_RULE,
        "readiness_at_start": readiness,
        "teardown": teardown,
        "failback": switched,
    }
    # The model is the contract: a report that does not fit it is a bug here, not in the reader.
    return Report.model_validate(doc).model_dump(mode="json")


def summarize(sfn: Any, execution_arn: str, plan: Plan, kind: str) -> dict[str, Any]:
    """The figures `pilotlight history` lists for one execution (no readiness or teardown look-ups)."""
    described, _, result = read(sfn, execution_arn)
    rto, rpo = figures(plan, kind, result)
    return {"kind": kind, "execution_arn": execution_arn, "execution_name": described["name"],
            "status": described["status"], "started_at": iso(described["startDate"]),
            "ended_at": iso(described.get("stopDate")), "error": described.get("error"),
            "rto_seconds": rto["seconds"], "rto_met": rto["met"], "rto_objective_seconds": rto["objective_seconds"],
            "rpo_seconds": rpo["seconds"], "rpo_met": rpo["met"]}
