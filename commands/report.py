"""``pilotlight report`` and ``pilotlight history``: reports of past drills and failovers, read from AWS.

Both read the deployed state machines' executions (``commands.common.aws_machine``), so they work for any
execution the caller may read, long after it ran; inside a sandbox they read the sandbox's. The report is
built by ``reports.build`` from the execution's history and output only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from commands.common import Precondition, aws_machine, emit_json, load

_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}

if TYPE_CHECKING:
    from workflows.plan import Plan


def machines(plan: Plan, profile: str | None, region: str | None) -> tuple[Any, dict[str, str]]:
    """The Step Functions client and the ARNs of the plan's drill, failover and (when it has one) failback state
    machines."""
    from reports.model import machine_arn
    from workflows import render

    sfn, drill = aws_machine(plan, profile, region, "drill")
    known = {"drill": drill, "failover": machine_arn(drill, plan, "failover")}
    if "failback" in render.workflows_of(plan):
        known["failback"] = machine_arn(drill, plan, "failback")
    return sfn, known


def _exists(sfn: Any, arn: str) -> bool:
    import botocore.exceptions

    try:
        sfn.describe_execution(executionArn=arn)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
            return False
        raise
    return True


def resolve(sfn: Any, plan: Plan, known: dict[str, str], execution: str) -> str:
    """The ARN of EXECUTION: an execution ARN or name of the plan's drill or failover machine, or ``latest``."""
    if execution == "latest":
        newest: list[dict[str, Any]] = []
        for arn in known.values():
            try:
                newest += sfn.list_executions(stateMachineArn=arn, maxResults=1)["executions"]
            except sfn.exceptions.StateMachineDoesNotExist:
                continue
        if not newest:
            raise Precondition(f"no drill or failover of plan {plan.name} has run (or they are not deployed)")
        return max(newest, key=lambda e: e["startDate"])["executionArn"]
    if execution.startswith("arn:"):
        machine = execution.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
        if ":execution:" not in execution or machine not in known.values():
            raise click.BadParameter(f"{execution} is not an execution of plan {plan.name}'s drill or failover "
                                     "state machine", param_hint="EXECUTION")
        if not _exists(sfn, execution):
            raise click.BadParameter(f"no execution {execution}", param_hint="EXECUTION")
        return execution
    for machine in known.values():
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + execution
        if _exists(sfn, arn):
            return arn
    raise click.BadParameter(f"no drill or failover of plan {plan.name} is named {execution!r}",
                             param_hint="EXECUTION")


def save_reports(sfn: Any, execution_arn: str, plan: Plan, report_dir: str | Path, *,
                 formats: tuple[str, ...] | None = None, session: Any = None) -> dict[str, Any]:
    """Build the execution's report, write it under ``report_dir`` and, given an AWS ``session`` (not in the
    sandbox), copy it to the plan's reports bucket: ``{"files": {format: path}, "uploaded": [s3 URIs],
    "note": why nothing was copied, or None}``."""
    import reports

    doc = reports.build(sfn, execution_arn, plan)
    paths = reports.write(doc, report_dir, formats=formats or reports.FORMATS)
    saved: dict[str, Any] = {"files": {fmt: str(path) for fmt, path in paths.items()}, "uploaded": [], "note": None}
    if session is not None:
        account = doc["state_machine_arn"].split(":")[4]
        outcome = reports.upload(paths, doc, session, account, plan.dr_region)
        if isinstance(outcome, str):
            saved["note"] = outcome
        else:
            saved["uploaded"] = outcome
    return saved


@click.command("report")
@click.argument("execution")
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default=None,
              help="Output format (default: from the -o file's suffix, else md).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the report to FILE instead of stdout.")
@click.option("--profile", default=None, help="AWS profile.")
@click.option("--region", default=None, help="Region of the deployed workflows (default: the plan's DR region).")
def report(execution: str, plan: str, fmt: str | None, out: str | None, profile: str | None,
           region: str | None) -> None:
    """Render the report of a past drill or failover of PLAN.

    EXECUTION is an execution ARN or name of the plan's drill or failover state machine, or `latest`
    (the most recent of either). The report is built from the execution's history and output: timeline,
    critical path, RTO and RPO against the objectives, readiness when it started and, for a drill, its
    teardown. Formats: html (one offline page with the timeline chart), md, json (`pilotlight schema
    --report` publishes its schema).
    """
    from reports import build, render_format

    model = load(plan)
    sfn, known = machines(model, profile, region)
    arn = resolve(sfn, model, known, execution)
    fmt = fmt or (_SUFFIXES.get(Path(out).suffix.lower()) if out else None) or "md"
    text = render_format(build(sfn, arn, model), fmt)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(out)
    else:
        click.echo(text, nl=False)


def _verdict(met: bool | None) -> str:
    return "met" if met else "MISSED"


def _history_lines(plan: Plan, doc: dict[str, Any]) -> list[str]:
    from workflows.executions import fmt_duration

    rows = sorted(doc["drills"] + doc["failovers"] + doc["failbacks"], key=lambda r: r["started_at"], reverse=True)
    if not rows:
        return [f"{plan.name}: no drill or failover has run"]
    width = max(len(r["execution_name"]) for r in rows)
    lines = [f"{'kind':8}  {'execution'.ljust(width)}  {'status':9}  {'started':24}  {'RTO':>16}  {'RPO':>12}"]
    for r in rows:
        rto = "-" if r["rto_seconds"] is None else f"{fmt_duration(r['rto_seconds'])} {_verdict(r['rto_met'])}"
        rpo = "-" if r["rpo_seconds"] is None else f"{r['rpo_seconds']:g} s {_verdict(r['rpo_met'])}"
        lines.append(f"{r['kind']:8}  {r['execution_name'].ljust(width)}  {r['status']:9}  {r['started_at']:24}  "
                     f"{rto:>16}  {rpo:>12}")
    t = doc["trend"]
    if t["direction"] == "unknown":
        lines.append(f"Drill RTO trend: unknown ({t['drills']} drill(s) with a measured RTO; 2 needed)")
    else:
        pct = "" if t["change_percent"] is None else f", {t['change_percent']:+g}%"
        before, after = fmt_duration(t["first_half_median_seconds"]), fmt_duration(t["second_half_median_seconds"])
        lines.append(f"Drill RTO trend over the last {t['drills']} drills: {t['direction']} (median {before} -> {after}"
                     f"{pct}; slope {t['slope_seconds_per_drill']:+g} s per drill; objective "
                     f"{plan.objectives.rto_minutes} min)")
    return lines


@click.command("history")
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the newest drills and of the newest failovers to list; the RTO trend is over "
                   "those drills.")
@click.option("--profile", default=None, help="AWS profile.")
@click.option("--region", default=None, help="Region of the deployed workflows (default: the plan's DR region).")
def history(plan: str, as_json: bool, last: int, profile: str | None, region: str | None) -> None:
    """List the past drills and failovers of PLAN (status, start, RTO, RPO) and the trend of the drills' RTO.

    The trend compares the median RTO of the earlier and later halves of the last N drills (improving,
    worsening or steady within 5%) and gives the least-squares slope in seconds per drill.
    """
    from reports import history as past

    model = load(plan)
    sfn, known = machines(model, profile, region)
    found = past.runs(sfn, model, known, last)
    measured = [r["rto_seconds"] for r in reversed(found["drill"]) if r["rto_seconds"] is not None]
    doc = {"plan": model.name, "last": last, "drills": found["drill"], "failovers": found["failover"],
           "failbacks": found.get("failback", []), "trend": past.trend(measured)}
    if as_json:
        emit_json(doc)
    else:
        click.echo("\n".join(_history_lines(model, doc)))
