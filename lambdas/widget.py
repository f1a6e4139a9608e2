"""The plan's CloudWatch dashboard custom widget: readiness, the running or last drill and failover, the last
drills with their RTO and RPO, and the buttons that start a drill, clean up a kept drill, or approve / abort a
failover waiting for approval. ``pilotlight console`` serves the same page locally (commands/console.py), built
by the same functions and rendered by the same templates (``lambdas/templates/``) with :func:`render`.

How CloudWatch calls it (Amazon CloudWatch User Guide, "Creating a custom widget", "Interactivity in the
custom widget"): the dashboard invokes the function with the widget's parameters and a ``widgetContext``
(dashboard name, account id, time range, ...) and shows the HTML string it returns; ``{"describe": true}``
asks for the widget's documentation (Markdown). JavaScript is removed from the HTML, so each button is an
element followed by ``<cwdb-action action="call" endpoint="<this function>">{json}</cwdb-action>``: a click
(after its ``confirmation``, where there is one) invokes this function again with that JSON plus the
``widgetContext``, and the HTML it returns replaces the widget's content. So a button's event is
``{"action": ..., ...}``: the handler performs it and returns the refreshed widget.

Everything shown is read from AWS each time, never kept by the widget: the readiness result the readiness
workflow keeps in SSM (``/pilotlight/<plan>/readiness``), and the executions of the plan's failover, drill and
drill-teardown state machines (ListExecutions, DescribeExecution, GetExecutionHistory): the current step is the
open state of the history, a drill's RTO and RPO come from its output.

What it may do (its role, from the declarations below through ``infra/iam.py``): start executions of this
plan's drill and drill-teardown state machines only, and answer approval requests (SendTaskSuccess /
SendTaskFailure). The token it answers with is always read from the history of a running execution of the
plan's failover state machine (:mod:`lambdas.approval`), never taken from the event, so a button can answer
only what this plan's failover waits on. Who may press the buttons is who may invoke this function
(``lambda:InvokeFunction`` on its ARN): grant that to the on-call role only.

Configuration (environment, set by the DR stack): ``PILOTLIGHT_PLAN``, ``PILOTLIGHT_REGION``,
``PILOTLIGHT_DRILL_MACHINE_ARN``, ``PILOTLIGHT_TEARDOWN_MACHINE_ARN``, ``PILOTLIGHT_FAILOVER_MACHINE_ARN`` and
``PILOTLIGHT_REPORTS_BUCKET`` (optional: reports are linked there when ``<plan>/<execution>.html`` exists,
otherwise to the execution in the Step Functions console).

Jinja2 and MarkupSafe are not in the Lambda runtime: the DR stack bundles them into the function's asset
(``infra.stacks.stage_lambda_code``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from lambdas import approval, readiness_report
from lambdas import drill as names
from lambdas.common import Registry, client, fmt_duration, raise_mapped
from lambdas.errors import InvalidInput, Misconfigured

LOG = logging.getLogger("pilotlight")
TEMPLATES = Path(__file__).resolve().parent / "templates"
DRILLS_SHOWN = 5
TEARDOWNS_READ = 20

DOCS = """## pilotlight

The DR plan at a glance: the last readiness result, the running (or last) drill and failover with their current
step, the last drills with their RTO and RPO and a link to each report, and buttons to start a drill, clean up
a drill kept with `--keep`, and approve or abort a failover waiting for approval.

### Widget parameters

None: the plan, its region and its state machines come from the function's environment (set by
`pilotlight deploy`).

### Who can press the buttons

Whoever may invoke this function (`lambda:InvokeFunction`). The function itself may start only this plan's
drill and drill-teardown state machines and answer only this plan's failover approvals.
"""

# Readiness checks by family, for the summary (a check not listed is a family of its own).
CHECK_FAMILIES: dict[str, tuple[str, ...]] = {
    "Databases": ("dr-replica", "az2-replica", "dr-db-network", "rds-capacity"),
    "Environments": ("dr-ami", "saved-configuration", "app-version", "ec2-capacity"),
    "S3": ("s3-replication", "s3-versioning", "s3-canary"),
    "DNS": ("dns-record",),
    "Workflows": ("failover-definition", "permissions"),
}
_CONTAINERS = ("Parallel", "Map")
# The label of the state that marks service restored (workflows/failover.py RESTORED_STATE's Comment).
RESTORED_STEP = "Service restored"


class Refused(Exception):
    """A button whose action cannot be done now (a drill already running, an unknown drill id, ...)."""


# What the deployment sets (infra/stacks.py); read strictly, so a garbled value is named, not a KeyError.
_PLAN_NAME = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_MACHINE_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class Config:
    """Which plan the page is about, and where its state machines are."""

    plan: str
    region: str
    drill_machine: str
    teardown_machine: str
    failover_machine: str
    reports_bucket: str | None = None

    @classmethod
    def from_environment(cls, env: Any = None) -> Config:
        """The deployment's settings; :class:`Misconfigured` naming each variable that is missing or malformed."""
        env = os.environ if env is None else env
        problems = []

        def read(name: str, pattern: re.Pattern[str], required: bool = True) -> str:
            value = (env.get(name) or "").strip()
            if not value and required:
                problems.append(f"{name} is not set")
            elif value and not pattern.fullmatch(value):
                problems.append(f"{name}={value[:80]!r} is not {pattern.pattern}")
            return value

        config = cls(plan=read("PILOTLIGHT_PLAN", _PLAN_NAME),
                     region=read("PILOTLIGHT_REGION", _REGION, False) or read("AWS_REGION", _REGION, False)
                     or "us-east-1",
                     drill_machine=read("PILOTLIGHT_DRILL_MACHINE_ARN", _MACHINE_ARN),
                     teardown_machine=read("PILOTLIGHT_TEARDOWN_MACHINE_ARN", _MACHINE_ARN),
                     failover_machine=read("PILOTLIGHT_FAILOVER_MACHINE_ARN", _MACHINE_ARN),
                     reports_bucket=read("PILOTLIGHT_REPORTS_BUCKET", _BUCKET, False) or None)
        if problems:
            raise Misconfigured("the widget function's environment: " + "; ".join(problems))
        return config

    def owns_execution(self, machine: str, execution_arn: str) -> bool:
        """Is ``execution_arn`` an execution of ``machine`` (same partition, region, account and name)?"""
        return execution_arn.startswith(machine.replace(":stateMachine:", ":execution:", 1) + ":")


# -- reading ------------------------------------------------------------------------------------------


# Datetimes are duck-typed: the sandbox replaces this module's ``datetime`` class with its clock's.
def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "astimezone"):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return value.timestamp()
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _loads(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def console_url(region: str, execution_arn: str) -> str:
    """The execution in the Step Functions console."""
    return (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/v2/executions/details/{quote(execution_arn, safe='')}")


def report_key(plan: str, execution_name: str) -> str:
    """Where ``pilotlight report`` keeps an execution's HTML report in the plan's reports bucket."""
    return f"{plan}/{execution_name}.html"


def bucket_report_link(s3: Any, config: Config) -> Callable[[dict[str, Any]], str]:
    """Link reports in the plan's reports bucket (the S3 console page of the object) when the object exists,
    else the execution in the Step Functions console."""

    def link(execution: dict[str, Any]) -> str:
        if config.reports_bucket:
            key = report_key(config.plan, execution["name"])
            try:
                s3.head_object(Bucket=config.reports_bucket, Key=key)
            except ClientError:
                pass  # not written (yet): a 404, or a 403 as S3 answers a missing key without ListBucket
            else:
                return (f"https://s3.console.aws.amazon.com/s3/object/{config.reports_bucket}"
                        f"?region={config.region}&prefix={quote(key, safe='')}")
        return console_url(config.region, execution["arn"])

    return link


def read_readiness(ssm: Any, plan: str) -> dict[str, Any]:
    """The last readiness result (as the readiness workflow keeps it in SSM), not-ready checks by family."""
    name = readiness_report.parameter_name(plan)
    try:
        doc = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return {"found": False, "status": "UNKNOWN", "parameter": name, "families": []}
        raise_mapped(exc, f"read {name}")
    except ValueError:
        return {"found": True, "status": "UNREADABLE", "parameter": name, "families": []}
    families: dict[str, list[dict[str, Any]]] = {}
    for check in doc.get("not_ready") or []:
        family = next((f for f, checks in CHECK_FAMILIES.items() if check.get("check") in checks),
                      str(check.get("check")))
        families.setdefault(family, []).append(check)
    score = doc.get("score")
    return {"found": True, "parameter": name, "status": doc.get("status", "UNKNOWN"),
            "score_percent": None if score is None else round(float(score) * 100),
            "ready": doc.get("ready"), "total": doc.get("total"), "at": doc.get("at"),
            "truncated": bool(doc.get("truncated")),
            "families": [{"family": f, "checks": checks} for f, checks in sorted(families.items())]}


def _labels(sfn: Any, machine: str, cache: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
    """State name -> step label (the state's Comment), state name -> type, and label -> its rank in the
    definition (steps that start at the same instant, Parallel branches, are listed in that order)."""
    if machine not in cache:
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
        labels: dict[str, str] = {}
        types: dict[str, str] = {}

        def walk(states: dict[str, Any]) -> None:
            for name, state in states.items():
                labels[name], types[name] = state.get("Comment", name), state["Type"]
                if state["Type"] == "Map":
                    walk((state.get("ItemProcessor") or state.get("Iterator") or {}).get("States", {}))
                elif state["Type"] == "Parallel":
                    for branch in state.get("Branches", []):
                        walk(branch["States"])

        walk(definition.get("States", {}))
        order = {label: i for i, label in enumerate(dict.fromkeys(labels.values()))}
        cache[machine] = (labels, types, order)
    return cache[machine]


def steps_of(events: list[dict[str, Any]], labels: dict[str, str], types: dict[str, str], started: float,
             status: str, order: dict[str, int] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The execution's steps (states sharing a label), when each started and ended, and the current ones
    (labels of states entered and not yet exited, innermost first)."""
    steps: dict[str, dict[str, Any]] = {}
    open_states: dict[str, int] = {}
    for event in events:
        kind = event["type"]
        at = (_epoch(event["timestamp"]) or started) - started
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            label = labels.get(name, name)
            steps.setdefault(label, {"name": label, "start": at, "end": None, "status": "running"})
            open_states[name] = open_states.get(name, 0) + 1
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            open_states[name] = max(open_states.get(name, 0) - 1, 0)
            step = steps.get(labels.get(name, name))
            if step is not None:
                step["end"] = at
    running = {labels.get(n, n) for n, count in open_states.items() if count}
    leaves = [labels.get(n, n) for n, count in open_states.items() if count and types.get(n) not in _CONTAINERS]
    for step in steps.values():
        if step["name"] in running and status == "RUNNING":
            step["status"] = "running"
        elif step["name"] in running:
            step["status"] = "done" if status == "SUCCEEDED" else "stopped"
        else:
            step["status"] = "done"
        step["duration"] = None if step["end"] is None else step["end"] - step["start"]
    current = (list(dict.fromkeys(leaves)) or sorted(running)) if status == "RUNNING" else []
    rank = order or {}
    return sorted(steps.values(), key=lambda s: (s["start"], rank.get(s["name"], len(rank)))), current


def describe(sfn: Any, config: Config, execution: dict[str, Any], *, kind: str, labels_cache: dict[str, Any],
             steps: bool) -> dict[str, Any]:
    """One execution as the page shows it; ``steps``: also read its history (steps, current step, approval)."""
    arn = execution["executionArn"]
    described = sfn.describe_execution(executionArn=arn)
    started = described["startDate"]
    out: dict[str, Any] = {
        "kind": kind, "arn": arn, "name": described["name"], "status": described["status"],
        "started": _iso(started), "stopped": _iso(described.get("stopDate")),
        "duration": None, "error": described.get("error"), "cause": described.get("cause"),
        "input": _loads(described.get("input")) or {}, "output": _loads(described.get("output")),
        "console_url": console_url(config.region, arn), "steps": [], "current": [], "awaiting_approval": False,
    }
    begin, end = _epoch(started), _epoch(described.get("stopDate"))
    if begin is not None and end is not None:
        out["duration"] = end - begin
    if steps:
        events = approval.history(sfn, arn)
        labels, types, order = _labels(sfn, described["stateMachineArn"], labels_cache)
        out["steps"], out["current"] = steps_of(events, labels, types, begin or 0.0, described["status"], order)
        if out["duration"] is None and events:
            out["duration"] = (_epoch(events[-1]["timestamp"]) or 0.0) - (begin or 0.0)
        out["awaiting_approval"] = described["status"] == "RUNNING" and approval.token_in(events) is not None
    return out


def drill_figures(execution: dict[str, Any]) -> dict[str, Any]:
    """A drill's RTO (start to verified service on the copies) and RPO (the live DR replica's lag when it was
    copied), against the objectives its output carries.

    The RPO is in the output only (``restore.databases[].rpo``). The RTO is when its history entered the
    "Service restored" step, the instant its output keeps as ``restored.at`` (``$$.State.EnteredTime``) and
    the one reports and ``pilotlight drill`` measure; read from the history, it is also right in the sandbox,
    whose interpreter stamps the context object's times on the wall clock rather than modeled time."""
    output = execution.get("output") or {}
    restored = next((s["start"] for s in execution.get("steps") or [] if s["name"] == RESTORED_STEP), None)
    rto = None if restored is None else round(restored, 1)
    lags = [(db.get("rpo") or {}).get("lag_seconds") for db in (output.get("restore") or {}).get("databases") or []]
    known = [float(v) for v in lags if v is not None]
    rpo = max(known) if known else None
    objectives = output.get("objectives") or {}
    rto_objective = objectives.get("rto_minutes") and objectives["rto_minutes"] * 60
    rpo_objective = objectives.get("rpo_minutes") and objectives["rpo_minutes"] * 60
    return {"rto_seconds": rto, "rpo_seconds": rpo, "rto_objective_seconds": rto_objective,
            "rpo_objective_seconds": rpo_objective,
            "rto_met": None if rto is None or not rto_objective else rto <= rto_objective,
            "rpo_met": None if rpo is None or not rpo_objective else rpo <= rpo_objective}


def _list(sfn: Any, machine: str, limit: int, **filters: Any) -> list[dict[str, Any]]:
    try:
        return sfn.list_executions(stateMachineArn=machine, maxResults=limit, **filters)["executions"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "StateMachineDoesNotExist":
            return []
        raise_mapped(exc, f"list executions of {machine.rsplit(':', 1)[-1]}")
        raise


def _cleaned_drills(sfn: Any, config: Config) -> tuple[set[str], set[str]]:
    """Drill ids a teardown started with ``{"drill_id": ...}`` removed (SUCCEEDED), and is removing (RUNNING)."""
    done: set[str] = set()
    running: set[str] = set()
    for execution in _list(sfn, config.teardown_machine, TEARDOWNS_READ):
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        drill = (_loads(described.get("input")) or {}).get("drill_id")
        if not isinstance(drill, str):
            continue
        if described["status"] == "SUCCEEDED":
            done.add(drill)
        elif described["status"] == "RUNNING":
            running.add(drill)
    return done, running


def read_state(sfn: Any, ssm: Any, config: Config, *, report_link: Callable[[dict[str, Any]], str],
               limit: int = DRILLS_SHOWN) -> dict[str, Any]:
    """Everything the page shows, read from SSM and Step Functions now."""
    cache: dict[str, Any] = {}
    drills_listed = _list(sfn, config.drill_machine, limit)
    failovers = _list(sfn, config.failover_machine, 1, statusFilter="RUNNING") or _list(
        sfn, config.failover_machine, 1)
    failover = describe(sfn, config, failovers[0], kind="failover", labels_cache=cache, steps=True) \
        if failovers else None
    cleaned, cleaning = _cleaned_drills(sfn, config) if drills_listed else (set(), set())
    drills = []
    for listed in drills_listed:
        # Every drill's history is read for its RTO; the newest is also shown step by step (live while it runs).
        drill = describe(sfn, config, listed, kind="drill", labels_cache=cache, steps=True)
        drill["id"] = names.drill_id(drill["arn"], listed["startDate"])
        drill.update(drill_figures(drill))
        kept = bool(drill["input"].get("keep"))
        drill["kept"] = kept
        drill["cleanup"] = ("done" if drill["id"] in cleaned else "running" if drill["id"] in cleaning else None)
        drill["can_clean_up"] = kept and drill["status"] != "RUNNING" and drill["cleanup"] is None
        drill["report_url"] = report_link(drill) if drill["status"] != "RUNNING" else None
        drills.append(drill)
    running_drill = next((d for d in drills if d["status"] == "RUNNING"), None)
    why_not = None
    if failover is not None and failover["status"] == "RUNNING":
        why_not = f"failover {failover['name']} is running"
    elif running_drill is not None:
        why_not = f"drill {running_drill['id']} is running"
    return {
        "plan": config.plan, "region": config.region, "now": _iso(dt.datetime.now(dt.UTC)),
        "readiness": read_readiness(ssm, config.plan),
        "failover": failover,
        "approval": failover if failover is not None and failover["awaiting_approval"] else None,
        "drill": drills[0] if drills else None,
        "running_drill": running_drill,
        "drills": drills,
        "can_start_drill": why_not is None, "why_not": why_not,
    }


# -- acting ---------------------------------------------------------------------------------------------


def start_drill(sfn: Any, config: Config, *, source: str, requested_by: str) -> str:
    """Start a drill of the plan (the options `pilotlight drill` defaults to); its execution ARN."""
    for machine, what in ((config.failover_machine, "failover"), (config.drill_machine, "drill")):
        running = _list(sfn, machine, 1, statusFilter="RUNNING")
        if running:
            raise Refused(f"a {what} of {config.plan} is running ({running[0]['name']}); a drill starts when "
                          f"none is")
    payload = {"source": source, "keep": False, "harden": True, "force": False, "requested_by": requested_by}
    try:
        return sfn.start_execution(stateMachineArn=config.drill_machine, name=f"drill-{uuid.uuid4().hex[:12]}",
                                   input=json.dumps(payload))["executionArn"]
    except ClientError as exc:
        raise_mapped(exc, f"start a drill of {config.plan}")
        raise


def clean_up(sfn: Any, config: Config, drill_id: Any, *, source: str) -> str:
    """Start the drill teardown for one drill (as ``pilotlight drill-cleanup --drill``); its execution ARN."""
    if not isinstance(drill_id, str) or not names.is_drill_id(drill_id):
        raise Refused(f"{drill_id!r} is not a drill id")
    try:
        return sfn.start_execution(stateMachineArn=config.teardown_machine,
                                   name=f"cleanup-{drill_id}-{uuid.uuid4().hex[:8]}",
                                   input=json.dumps({"source": source, "drill_id": drill_id}))["executionArn"]
    except ClientError as exc:
        raise_mapped(exc, f"start the teardown of drill {drill_id}")
        raise


def answer(sfn: Any, config: Config, execution_arn: Any, *, approve: bool, who: str) -> str:
    """Approve or abort the plan's failover waiting for approval, with the token read from its history.

    Only ``execution_arn``, and only if it is an execution of the plan's failover state machine; returns it."""
    if not isinstance(execution_arn, str) or not config.owns_execution(config.failover_machine, execution_arn):
        raise Refused(f"{execution_arn!r} is not an execution of the failover of {config.plan}")
    try:
        return approval.answer_approval(sfn, config.failover_machine, approve=approve, who=who,
                                        reason="from the dashboard" if not approve else "",
                                        execution_arn=execution_arn)
    except approval.NothingToAnswer as exc:
        raise Refused(f"failover {execution_arn.rsplit(':', 1)[-1]} is not waiting for approval") from exc
    except ClientError as exc:
        raise_mapped(exc, f"answer the approval of {execution_arn.rsplit(':', 1)[-1]}")
        raise


def perform(sfn: Any, config: Config, event: dict[str, Any], *, source: str, who: str) -> dict[str, str]:
    """Do what a button asks (``event["action"]``); the notice the page shows about it.

    A button that cannot be done now is a notice, not an error (the page is refreshed either way); AWS errors
    propagate."""
    action = event.get("action")
    try:
        if action == "start_drill":
            arn = start_drill(sfn, config, source=source, requested_by=who)
            return {"level": "ok", "text": f"Started drill {arn.rsplit(':', 1)[-1]}"}
        if action == "clean_up":
            arn = clean_up(sfn, config, event.get("drill_id"), source=source)
            return {"level": "ok", "text": f"Started the clean-up of drill {event.get('drill_id')}: "
                                           f"{arn.rsplit(':', 1)[-1]}"}
        if action in ("approve", "abort"):
            arn = answer(sfn, config, event.get("execution_arn"), approve=action == "approve", who=who)
            return {"level": "ok", "text": f"{'Approved' if action == 'approve' else 'Aborted'} failover "
                                           f"{arn.rsplit(':', 1)[-1]}"}
    except Refused as exc:
        return {"level": "refused", "text": str(exc)}
    return {"level": "refused", "text": f"unknown action {action!r}"}


# -- rendering ------------------------------------------------------------------------------------------


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = fmt_duration
    return env


def render(view: dict[str, Any], *, mode: str, notice: dict[str, str] | None = None, endpoint: str = "",
           token: str = "", template: str | None = None, **page: Any) -> str:
    """The page: ``mode="widget"`` for the dashboard (buttons are ``<cwdb-action>`` calls of ``endpoint``, no
    script), ``mode="console"`` for ``pilotlight console`` (buttons are forms that post the session ``token``).
    ``template`` picks another template that includes the same panel (the console's page around it, whose
    own values come in ``page``)."""
    if mode not in ("widget", "console"):
        raise ValueError(f"mode must be widget or console, not {mode!r}")
    name = template or ("widget.html.j2" if mode == "widget" else "panel.html.j2")
    return _environment().get_template(name).render(view=view, mode=mode, notice=notice, endpoint=endpoint,
                                                     token=token, **page)


# -- the Lambda function ------------------------------------------------------------------------------------

# The IAM each part needs, for infra/iam.py (which turns kinds into this plan's ARNs). The handler below does
# not dispatch through the registry: a dashboard refresh carries no action.
registry = Registry("widget")


@registry.action(
    "show",
    permissions=["ssm:GetParameter", "states:ListExecutions", "states:DescribeStateMachine",
                 "states:DescribeExecution", "states:GetExecutionHistory", "s3:GetObject"],
    resource={"ssm:GetParameter": "ssm_parameter",
              "states:ListExecutions": ("failover_statemachine", "drill_statemachine", "teardown_statemachine"),
              "states:DescribeStateMachine": ("failover_statemachine", "drill_statemachine"),
              "states:DescribeExecution": "plan_execution", "states:GetExecutionHistory": "plan_execution",
              "s3:GetObject": "report_object"},
)
def show(sfn: Any, ssm: Any, s3: Any, config: Config) -> dict[str, Any]:
    """Read the readiness result, the plan's failover and drills, and where their reports are."""
    return read_state(sfn, ssm, config, report_link=bucket_report_link(s3, config))


registry.action("start_drill", permissions=["states:ListExecutions", "states:StartExecution"],
                resource={"states:ListExecutions": ("failover_statemachine", "drill_statemachine"),
                          "states:StartExecution": "drill_statemachine"})(start_drill)
registry.action("clean_up", permissions=["states:StartExecution"], resource="teardown_statemachine")(clean_up)
# Step Functions authorizes a task token's answer against the state machine whose task issued it; the Service
# Authorization Reference lists no resource type for these actions (infra/iam.py, "failover_statemachine").
registry.action("answer", permissions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                resource="failover_statemachine")(answer)


def _widget_context(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("widgetContext")
    return context if isinstance(context, dict) else {}


def _endpoint(context: Any, event: dict[str, Any], config: Config) -> str:
    """This function's ARN, for the buttons to call back."""
    arn = getattr(context, "invoked_function_arn", None)
    if arn:
        return str(arn)
    account = _widget_context(event).get("accountId", "")
    return f"arn:aws:lambda:{config.region}:{account}:function:{getattr(context, 'function_name', '')}"


def handler(event: dict[str, Any], context: Any = None) -> str:
    """CloudWatch custom widget entry point: the widget's HTML (or its documentation for ``describe``)."""
    if not isinstance(event, dict):
        raise InvalidInput(f"widget: the event must be a JSON object, got {type(event).__name__}")
    if event.get("describe"):
        return DOCS
    started = time.monotonic()
    config = Config.from_environment()
    sfn = client("stepfunctions", config.region)
    notice = None
    if event.get("action"):
        dashboard = _widget_context(event).get("dashboardName") or "a dashboard"
        notice = perform(sfn, config, event, source="cloudwatch-dashboard",
                         who=f"CloudWatch dashboard {dashboard}")
    view = show(sfn, client("ssm", config.region), client("s3", config.region), config)
    html = render(view, mode="widget", notice=notice, endpoint=_endpoint(context, event, config))
    LOG.info(json.dumps({"service": "widget", "action": event.get("action") or "show",
                         "request_id": getattr(context, "aws_request_id", None),
                         "ms": round((time.monotonic() - started) * 1000, 1),
                         **({"notice": notice["level"]} if notice else {})}))
    return html
