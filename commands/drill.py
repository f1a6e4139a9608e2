"""``pilotlight drill`` and ``pilotlight drill-cleanup``: rehearse the failover on copies, and remove them.

A drill runs the deployed drill workflow, follows it live, then follows the teardown that EventBridge
starts when the drill ends (whatever the end), and finally lists, service by service, what is left
of the drill (:func:`workflows.drill_audit.leftovers`; 0 unless ``--keep``).
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from commands.common import (
    DEFAULT_REPORT_DIR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PRECONDITION,
    Precondition,
    aws_machine,
    emit_json,
    load,
    pace_text,
    pilot_light_built,
    progress_printer,
    replicate_line,
    sandbox_estate,
    workflow_options,
)

# How long (modeled in the sandbox, wall in AWS) to wait for EventBridge to start the teardown.
TEARDOWN_START_LIMIT = 300.0

if TYPE_CHECKING:
    from workflows.plan import Plan


def drill_input(source: str, *, keep: bool, harden: bool, force: bool) -> dict[str, Any]:
    return {"source": source, "keep": keep, "harden": harden, "force": force, "requested_by": getpass.getuser()}


def _teardown_finder(sfn: Any, plan: Plan, drill_arn: str) -> Callable[[], str | None]:
    """Finds the teardown EventBridge starts for the ended drill ``drill_arn`` (reports.model.teardown_of),
    to be called until it has started."""
    from reports.model import teardown_of

    described = sfn.describe_execution(executionArn=drill_arn)
    return functools.partial(teardown_of, sfn, plan, described["stateMachineArn"], drill_arn, described["stopDate"])


def teardown_summary(result: Any, left: list[dict[str, str]]) -> dict[str, Any]:
    """What the teardown did (from its output) and what is left (listed through the AWS APIs)."""
    output = (result.output or {}) if result is not None else {}
    deleted: list[dict[str, Any]] = []
    for part in (output.get("removed") or {}).values():
        deleted += (part or {}).get("deleted") or []
    summary: dict[str, Any] = {
        "execution_arn": result.execution_arn if result is not None else None,
        "status": result.status if result is not None else "NOT_STARTED",
        "kept": bool(output.get("kept")),
        "deleted": deleted,
        "left": len(left),
        "leftovers": left,
    }
    if result is not None and result.status != "SUCCEEDED":
        summary.update(error=result.error, cause=result.cause)
    return summary


def report(plan: Plan, mode: str, drill_id: str, result: Any, teardown: dict[str, Any],
           extra: dict[str, Any]) -> dict[str, Any]:
    from workflows import drill_audit

    output = result.output or {}
    drill = output.get("drill") or {}
    return {
        "plan": plan.name,
        "mode": mode,
        "kind": "drill",
        "drill_id": drill_id,
        **extra,
        "execution_arn": result.execution_arn,
        "status": result.status,
        "error": result.error,
        "cause": result.cause,
        "failed_step": result.failed_step,
        "duration_seconds": None if result.duration is None else round(result.duration, 1),
        "options": drill.get("options"),
        "readiness_at_start": drill.get("readiness"),
        **drill_audit.figures(plan, result),
        "copies": {"databases": [d["dr_replica_identifier"] for d in drill.get("databases") or []],
                   "environments": [e["dr_environment"] for e in drill.get("environments") or []],
                   "dns_record": (drill.get("dns") or {}).get("record_name"),
                   "s3_prefix": f"pilotlight-drill/{drill_id}/" if plan.buckets else None},
        "timeline": result.to_json()["timeline"],
        "teardown": teardown,
    }


def exit_for(doc: dict[str, Any]) -> int:
    from lambdas.errors import DrillRefused

    if doc["status"] != "SUCCEEDED":
        return EXIT_PRECONDITION if doc["error"] == DrillRefused.__name__ else EXIT_FAILED
    teardown = doc["teardown"]
    if not teardown["kept"] and (teardown["status"] != "SUCCEEDED" or teardown["left"]):
        return EXIT_FAILED
    return EXIT_OK


def print_report(plan: Plan, doc: dict[str, Any], result: Any, as_json: bool) -> None:
    from workflows.executions import fmt_duration, timeline_table

    if as_json:
        emit_json(doc)
        return
    click.echo()
    click.echo(f"Drill {doc['drill_id']} timeline" + (" (modeled time)" if doc["mode"] == "sandbox" else ""))
    click.echo(timeline_table(result))
    click.echo()
    rto, rpo = doc["rto"], doc["rpo"]
    if rto["seconds"] is not None:
        verdict = "within" if rto["met"] else "OVER"
        copy = f" (making the copies took {fmt_duration(rto['copy_seconds'])})" if rto["copy_seconds"] else ""
        click.echo(f"Drill RTO: {fmt_duration(rto['seconds'])} to verified service on the copies{copy}, {verdict} the "
                   f"objective of {plan.objectives.rto_minutes} min")
        if rto["less_copy_seconds"] is not None:
            verdict = "within" if rto["less_copy_met"] else "OVER"
            click.echo(f"  less the copy (a failover moves the live DR database itself): "
                       f"{fmt_duration(rto['less_copy_seconds'])}, {verdict} the objective")
    if rpo["seconds"] is not None:
        verdict = "within" if rpo["met"] else "OVER"
        click.echo(f"Drill RPO: {rpo['seconds']:g} s of writes behind in the DR region when the copies were made, "
                   f"{verdict} the objective of {plan.objectives.rpo_minutes} min")
    if doc["status"] != "SUCCEEDED":
        click.echo(f"Drill {doc['status']} at step '{doc['failed_step']}': {doc['error']}: {doc['cause']}", err=True)
    teardown = doc["teardown"]
    if teardown["kept"]:
        click.echo(f"Kept on request: {len(teardown['leftovers'])} drill resource(s) remain. Remove them with "
                   f"`pilotlight drill-cleanup <plan file> --drill {doc['drill_id']}` (the daily sweep removes them "
                   f"after {plan.drills.keep_hours} h)")
    else:
        kinds: dict[str, int] = {}
        for item in teardown["deleted"]:
            kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
        made = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())) or "nothing"
        click.echo(f"Teardown {teardown['status']}: removed {made}; drill resources left: {teardown['left']}")
        for item in teardown["leftovers"]:
            click.echo(f"  left: {item['kind']} {item['id']}", err=True)


def _print_saved(saved: dict[str, Any] | None, as_json: bool) -> None:
    """Where the drill's reports went (also in the JSON document, under ``reports``)."""
    if saved is None:
        return
    for fmt, path in saved["files"].items():
        click.echo(f"Report ({fmt}): {path}", err=as_json)
    for uri in saved["uploaded"]:
        click.echo(f"Report copied to {uri}", err=as_json)
    if saved["note"]:
        click.echo(f"Note: {saved['note']}", err=as_json)


# -- the sandbox ---------------------------------------------------------------------------------


def _unpaced(sb: Any, plan: Plan, workflow: str, payload: dict[str, Any]) -> Any:
    from workflows.executions import follow

    previous = sb.pace
    sb.set_pace(None)
    try:
        import boto3

        return follow(boto3.client("stepfunctions", region_name=plan.dr_region), sb.start(plan, workflow, payload),
                      poll_seconds=0.02)
    finally:
        sb.set_pace(previous)


def sandbox_drill(sb: Any, plan: Plan, payload: dict[str, Any],
                  progress: Callable[[Any], None] | None) -> tuple[Any, str, Any]:
    """Run a drill in a sandbox whose pilot light is built; its result, id and teardown result (None if
    the teardown did not start)."""
    import boto3

    from lambdas import drill as names
    from sandbox import clock
    from workflows.executions import follow

    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    arn = sb.start(plan, "drill", payload)
    started = sfn.describe_execution(executionArn=arn)["startDate"]
    drill_id = names.drill_id(arn, started)
    if progress is not None:
        click.echo(f"Started drill {drill_id}: {arn.rsplit(':', 1)[-1]}", err=True)
    result = follow(sfn, arn, on_progress=progress)
    try:
        teardown_arn = clock.wait_until(_teardown_finder(sfn, plan, arn), timeout=TEARDOWN_START_LIMIT, step=1.0,
                                        what="the drill teardown EventBridge starts")
    except TimeoutError:
        return result, drill_id, None
    teardown = follow(sfn, teardown_arn, on_progress=progress)
    return result, drill_id, teardown


def run_sandbox_drill(plan: Plan, pace: float | None, as_json: bool, *, keep: bool, harden: bool,
                      force: bool, report_dir: str | None = None) -> int:
    import boto3

    from commands.report import save_reports
    from sandbox import Sandbox
    from workflows import drill_audit
    from workflows.readiness import failover_sha256

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, plan, say, None, source="pilotlight drill --sandbox")
        say(replicate_line(built))
        pilot_light_built(built)
        ready = _unpaced(sb, plan, "readiness", {"source": "pilotlight drill --sandbox",
                                                 "expected_failover_sha256": failover_sha256(plan)})
        say(f"Readiness (as scheduled): {(ready.output or {}).get('status', ready.status)}")
        say(f"Drill {pace_text(sb.pace)}")
        payload = drill_input("pilotlight drill --sandbox", keep=keep, harden=harden, force=force)
        result, drill_id, teardown = sandbox_drill(sb, plan, payload, progress_printer(as_json))
        left = drill_audit.leftovers(plan, drill_id)
        doc = report(plan, "sandbox", drill_id, result, teardown_summary(teardown, left),
                     {"pace": pace, "wall_seconds": round(time.monotonic() - started, 1)})
        if report_dir is not None:
            sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
            doc["reports"] = save_reports(sfn, result.execution_arn, plan, report_dir)
        print_report(plan, doc, result, as_json)
        _print_saved(doc.get("reports"), as_json)
    return exit_for(doc)


# -- AWS -------------------------------------------------------------------------------------------


def run_aws_drill(plan: Plan, profile: str | None, region: str | None, as_json: bool, *, keep: bool,
                  harden: bool, force: bool, report_dir: str | None = None) -> int:
    import boto3

    from commands.report import save_reports
    from lambdas import drill as names
    from workflows import drill_audit
    from workflows.executions import follow

    sfn, machine = aws_machine(plan, profile, region, "drill")
    payload = drill_input("pilotlight drill", keep=keep, harden=harden, force=force)
    try:
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    drill_id = names.drill_id(arn, sfn.describe_execution(executionArn=arn)["startDate"])
    click.echo(f"Started drill {drill_id}: {arn}", err=as_json)
    progress = progress_printer(as_json)
    result = follow(sfn, arn, on_progress=progress, poll_seconds=5)
    deadline, teardown_arn, find = time.monotonic() + TEARDOWN_START_LIMIT, None, _teardown_finder(sfn, plan, arn)
    while teardown_arn is None and time.monotonic() < deadline:
        teardown_arn = find()
        if teardown_arn is None:
            time.sleep(5)
    teardown = follow(sfn, teardown_arn, on_progress=progress, poll_seconds=10) if teardown_arn else None
    left = drill_audit.leftovers(plan, drill_id, boto3.Session(profile_name=profile))
    doc = report(plan, "aws", drill_id, result, teardown_summary(teardown, left), {})
    if report_dir is not None:
        # Kept locally and in the plan's reports bucket (when the DR stack has one).
        doc["reports"] = save_reports(sfn, arn, plan, report_dir, session=boto3.Session(profile_name=profile))
    print_report(plan, doc, result, as_json)
    _print_saved(doc.get("reports"), as_json)
    return exit_for(doc)


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
@click.option("--keep", is_flag=True, help="Leave the drill's copies running; print how to remove them later.")
@click.option("--no-harden", "no_harden", is_flag=True,
              help="Skip Multi-AZ and the failover class on the database copies (saves time and money).")
@click.option("--force", is_flag=True, help="Drill even though readiness is NOT_READY on a database or saved "
                                            "configuration (never while a failover runs).")
@click.option("--report-dir", "report_dir", type=click.Path(file_okay=False), default=DEFAULT_REPORT_DIR,
              show_default=True, help="Write the drill's report (JSON, Markdown, HTML) to DIR/<plan>/; in AWS it "
                                      "is also copied to the plan's reports bucket.")
def drill(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None, pace: float | None,
          keep: bool, no_harden: bool, force: bool, report_dir: str) -> None:
    """Rehearse the failover of PLAN on isolated copies, measure it, and remove the copies.

    Copies the DR replica (a same-region read replica of it, promoted; a restored snapshot where the
    engine cannot cascade), launches a drill environment from the DR saved configuration pointed at
    the copy, points drill-<id>.<record> at it, reads the S3 canary and writes one object, verifies
    as the failover does, and hardens the copy unless --no-harden. Production (the primary, the live
    DR replica, the DR environment, the production record) is never touched. When the drill ends, in
    any way, EventBridge starts the teardown; this command follows it and lists what is left (0
    unless --keep). Refuses (exit 4) while a failover runs. Exit 1 when the drill or its teardown
    failed or left something behind. With --sandbox it is rehearsed in a fresh sandbox. The drill's
    report (timeline, critical path, RTO and RPO, readiness, teardown) is written to --report-dir.
    """
    model = load(plan)
    options = {"keep": keep, "harden": not no_harden, "force": force, "report_dir": report_dir}
    if sandbox:
        code = run_sandbox_drill(model, pace, as_json, **options)
    else:
        code = run_aws_drill(model, profile, region, as_json, **options)
    sys.exit(code)


# -- drill-cleanup ---------------------------------------------------------------------------------


def cleanup_input(drill_id: str | None, older_than: float | None) -> dict[str, Any]:
    from lambdas import drill as names

    if drill_id is not None:
        if not names.is_drill_id(drill_id):
            raise click.BadParameter(f"{drill_id!r} is not a drill id (d + 8 letters and digits, as `pilotlight "
                                     "drill` prints)", param_hint="--drill")
        return {"source": "pilotlight drill-cleanup", "drill_id": drill_id}
    payload: dict[str, Any] = {"source": "pilotlight drill-cleanup", "sweep": True}
    if older_than is not None:
        payload["older_than_hours"] = older_than
    return payload


def print_cleanup(plan: Plan, result: Any, as_json: bool, extra: dict[str, Any]) -> int:
    output = result.output or {}
    summary = teardown_summary(result, [])
    del summary["leftovers"], summary["left"]
    doc = {"plan": plan.name, **extra, **summary, "selected": (output.get("targets") or {}).get("reason"),
           "left": [{"service": k, "left": (v or {}).get("left", 0), "remaining": (v or {}).get("remaining", [])}
                    for k, v in (output.get("removed") or {}).items()]}
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"{doc['selected'] or 'cleanup'}: {result.status}")
        for item in summary["deleted"]:
            click.echo(f"  removed {item['kind']} {item['id']} (drill {item.get('drill')})")
        if not summary["deleted"]:
            click.echo("  nothing to remove")
    left = sum(x["left"] for x in doc["left"])
    return EXIT_OK if result.status == "SUCCEEDED" and not left else EXIT_FAILED


@click.command("drill-cleanup")
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
@click.option("--drill", "drill_id", default=None, help="Remove this drill's resources (the id `drill` printed).")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None,
              help="Remove drills not running that started more than HOURS ago (default: the plan's "
                   "drills.keep_hours).")
def drill_cleanup(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None,
                  pace: float | None, drill_id: str | None, older_than: float | None) -> None:
    """Remove what drills of PLAN left behind: one drill (--drill), or every drill that is not running and
    older than a limit (the daily sweep does the same).

    Runs the deployed drill teardown. With --sandbox, a drill is first run with --keep in a fresh
    sandbox, so there is something to remove.
    """
    from workflows.executions import follow

    model = load(plan)
    payload = cleanup_input(drill_id, older_than)
    if not sandbox:
        sfn, machine = aws_machine(model, profile, region, "drill-teardown")
        try:
            arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
        except sfn.exceptions.StateMachineDoesNotExist as exc:
            raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
        click.echo(f"Started drill teardown: {arn}", err=as_json)
        result = follow(sfn, arn, on_progress=progress_printer(as_json), poll_seconds=5)
        sys.exit(print_cleanup(model, result, as_json, {"mode": "aws"}))
    import boto3

    from sandbox import Sandbox

    say = functools.partial(click.echo, err=as_json)
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, model, say, None, source="pilotlight drill-cleanup --sandbox")
        pilot_light_built(built, complete=False)
        kept, kept_id, _ = sandbox_drill(sb, model, drill_input("pilotlight drill-cleanup --sandbox", keep=True,
                                                                harden=False, force=True), None)
        say(f"Drill {kept_id} run with --keep: {kept.status}")
        if drill_id is None and older_than is None:
            payload = cleanup_input(kept_id, None)
        sfn = boto3.client("stepfunctions", region_name=model.dr_region)
        result = follow(sfn, sb.start(model, "drill-teardown", payload), on_progress=progress_printer(as_json))
        sys.exit(print_cleanup(model, result, as_json, {"mode": "sandbox", "kept_drill": kept_id}))
