"""``pilotlight failover`` and ``pilotlight demo``: a failover followed live, its timeline, RTO and RPO."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from commands.common import (
    CommandError,
    Precondition,
    aws_machine,
    emit_json,
    exit_code,
    load,
    minutes,
    pilot_light_built,
    progress_printer,
    replicate_line,
    sandbox_estate,
    workflow_options,
)

if TYPE_CHECKING:
    from workflows.plan import Plan

REFERENCE_PLAN = Path(__file__).resolve().parent.parent / "examples" / "reference.yaml"


def _figures(plan: Plan, result: Any, modeled: bool, outage: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"rto": ..., "rpo": ...}``. RTO = start of the execution to verified service; RPO = the worst data-loss
    window of the data tiers: each RDS replica's lag read just before promotion, the lag an Aurora failover
    accepted (0 after a managed switchover), each global table's replication latency
    (:func:`reports.model.rpo_lags`). The RPO object has the shape of a drill's and of a report's
    (:func:`workflows.drill_audit.rpo_figures`).

    ``outage`` (the demo): the result's steps count from the outage's start, and so does the RTO;
    its detection and failover start times are reported beside it.
    """
    from reports.model import data_loss_of, rpo_lags
    from workflows.drill_audit import rpo_figures

    restored, hardened = result.restored_at, result.duration if result.status == "SUCCEEDED" else None
    counted = {"counted_from": "execution start"}
    if outage is not None:
        counted = {"counted_from": "outage start", "detection_seconds": outage["detection_seconds"],
                   "failover_started_seconds": outage["failover_started_seconds"]}
    objective = plan.objectives.rto_minutes * 60
    rto = {
        **counted,
        "seconds": None if restored is None else round(restored, 1),
        "minutes": minutes(restored),
        "objective_seconds": objective,
        "objective_minutes": plan.objectives.rto_minutes,
        "met": restored is not None and restored <= objective,
        "hardened_seconds": None if hardened is None else round(hardened, 1),
        "hardened_minutes": minutes(hardened),
        "modeled": modeled,
    }
    return {"rto": rto, "rpo": rpo_figures(plan, rpo_lags("failover", result.output, result.events),
                                           data_loss_of(result.output, result.events))}


def _print_result(plan: Plan, result: Any, figures: dict[str, Any], as_json: bool, extra: dict[str, Any]) -> None:
    from workflows.executions import fmt_duration, timeline_table

    if as_json:
        emit_json({**extra, **result.to_json(), **figures})
        return
    report = figures["rto"]
    click.echo()
    click.echo("Timeline (modeled time)" if report["modeled"] else "Timeline")
    click.echo(timeline_table(result))
    click.echo()
    label = "Modeled " if report["modeled"] else ""
    if report["seconds"] is not None:
        verdict = "within" if report["met"] else "OVER"
        since = ""
        if report["counted_from"] == "outage start":
            since = (f" counted from the outage's start (detected at {fmt_duration(report['detection_seconds'])}, "
                     f"failover started at {fmt_duration(report['failover_started_seconds'])}),")
        click.echo(f"{label}RTO: {fmt_duration(report['seconds'])} to verified service ({report['minutes']} min),"
                   f"{since} {verdict} the objective of {plan.objectives.rto_minutes} min")
    rpo = figures["rpo"]
    if rpo["seconds"] is not None:
        verdict = "within" if rpo["met"] else "OVER"
        each = ", ".join(f"{name} {'unknown' if lag is None else f'{lag:g} s'}"
                         for name, lag in sorted(rpo["per_database"].items()))
        click.echo(f"RPO: {rpo['seconds']:g} s of writes at risk ({each}), {verdict} the objective of "
                   f"{plan.objectives.rpo_minutes} min")
    elif rpo["per_database"]:
        click.echo("RPO: unknown (no lag datapoint was read when the data tier was failed over)")
    if rpo["data_loss_seconds"] is not None:
        each = ", ".join(f"{w['database']} " + ("unknown" if w["seconds"] is None else f"{w['seconds']:g} s")
                         for w in rpo["data_loss"])
        click.echo(f"Data loss measured from heartbeat rows: {rpo['data_loss_seconds']:g} s ({each})")
    if result.status == "SUCCEEDED":
        click.echo(f"DR site hardened after {fmt_duration(report['hardened_seconds'])} "
                   f"({report['hardened_minutes']} min)")
    else:
        click.echo(f"Failover {result.status} at step '{result.failed_step}' (state {result.failed_state}): "
                   f"{result.error}: {result.cause}", err=True)


def _failover_input(source: str, force: bool, mode: str = "auto") -> dict[str, Any]:
    import getpass

    # An operator starting a failover from the CLI is the approval the plan may ask for.
    return {"source": source, "force": force, "approved_by": getpass.getuser(), "mode": mode}


DEMO_PACE = 60.0


def run_sandbox_failover(plan: Plan, pace: float | None, as_json: bool, *, demo: bool = False,
                         force: bool = False, mode: str = "auto") -> int:
    import boto3

    from sandbox import Sandbox
    from workflows.executions import follow

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, plan, say, progress_printer(as_json) if demo else None,
                                source="pilotlight sandbox")
        say(replicate_line(built))
        pilot_light_built(built)
        if not force:
            alarms = sb.simulate_disaster(plan)
            say(f"Simulated outage of {plan.primary_region}: "
                + (f"alarms {', '.join(alarms)} -> ALARM" if alarms else "the plan names no trigger alarm"))
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sb.start(plan, "failover", _failover_input("pilotlight demo" if demo else "pilotlight failover --sandbox",
                                                         force, mode))
        say(f"Started failover: {arn.rsplit(':', 1)[-1]}")
        result = follow(sfn, arn, on_progress=progress_printer(as_json))
        figures = _figures(plan, result, modeled=True)
        extra = {"plan": plan.name, "mode": "sandbox", "pace": pace,
                 "wall_seconds": round(time.monotonic() - started, 1),
                 "pilot_light": {"status": built.status, "modeled_seconds": round(built.duration or 0, 1),
                                 "counts": (built.output or {}).get("counts")}}
        _print_result(plan, result, figures, as_json, extra)
    return exit_code(result)


def run_aws_failover(plan: Plan, profile: str | None, region: str | None, as_json: bool, force: bool,
                     mode: str = "auto") -> int:
    from workflows.executions import follow

    sfn, machine = aws_machine(plan, profile, region, "failover")
    try:
        running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    if running:
        raise Precondition(f"failover {running[0]['name']} of plan {plan.name} is already running "
                           "(`pilotlight status` shows it); a second one is not started")
    arn = sfn.start_execution(stateMachineArn=machine,
                              input=json.dumps(_failover_input("pilotlight failover", force, mode)))["executionArn"]
    click.echo(f"Started failover: {arn}", err=as_json)
    result = follow(sfn, arn, on_progress=progress_printer(as_json), poll_seconds=5)
    _print_result(plan, result, _figures(plan, result, modeled=False), as_json, {"plan": plan.name, "mode": "aws"})
    return exit_code(result)


def _failover_help() -> str:
    from workflows.failover_steps import help_paragraphs

    return "\n\n".join([
        "Fail the plan's application over to the DR region, with live progress and a timeline.",
        "The failover runs, in this order (service first, hardening after traffic has moved):",
        *help_paragraphs(),
        "Exit 0 when service is restored and hardened, 1 when a step failed (naming it and its cause), 4 when "
        "the guard rails refused. With --sandbox the failover is rehearsed in a fresh sandbox with a simulated "
        "outage (the trigger alarms in ALARM; with --force, none), and the reported RTO is modeled time (the "
        "same on every run; --pace only slows it down to watch).",
    ])


@click.command(help=_failover_help())
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
@click.option("--force", is_flag=True, help="Fail over even though every trigger alarm is OK.")
@click.option("--mode", type=click.Choice(["auto", "graceful", "ungraceful"]), default="auto", show_default=True,
              help="Aurora Global Databases: graceful = managed switchover (RPO 0, needs the primary region); "
                   "ungraceful = failover allowing data loss (or detach, per the plan); auto = graceful when the "
                   "primary region answers.")
def failover(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None, pace: float | None,
             force: bool, mode: str) -> None:
    # The help is generated from workflows.failover_steps, the phases a test holds the workflow to.
    model = load(plan)
    if mode != "auto" and not model.aurora_databases:
        raise click.UsageError(f"--mode {mode}: the mode chooses how an Aurora Global Database's writer moves; "
                               f"plan {model.name} has none")
    if sandbox:
        code = run_sandbox_failover(model, pace, as_json, force=force, mode=mode)
    else:
        code = run_aws_failover(model, profile, region, as_json, force, mode)
    sys.exit(code)



EXAMPLES_DIR = REFERENCE_PLAN.parent
# The reference architectures `pilotlight demo --example NAME` runs (examples/NAME.yaml).
EXAMPLES = {
    "reference": "Beanstalk pilot light: one application, PostgreSQL with a cross-region replica, S3, Route 53",
    "fitness-global": "Global fitness app: Aurora Global Database, Auto Scaling groups, geolocation routing",
    "fastest-region": "Two regions serving, latency routing to the fastest healthy one, a DynamoDB global table",
    "bookstore": "Active-active bookstore: DynamoDB global tables, S3 replication, Route 53 failover records",
    "ecommerce": "Active-active e-commerce: DynamoDB global tables, Aurora Global with write forwarding",
}


def _example_help() -> str:
    return "Run an example plan: " + "; ".join(f"{name} ({what})" for name, what in EXAMPLES.items()) + "."


@click.command()
@click.option("--plan", "plan_path", default=None, type=click.Path(),
              help=f"Plan to demonstrate (default: {REFERENCE_PLAN.name}).")
@click.option("--example", type=click.Choice(sorted(EXAMPLES)), default=None, help=_example_help())
@click.option("--pace", default=DEMO_PACE, show_default=True, type=click.FloatRange(min=0),
              help="At most N modeled seconds per wall second, so the run can be watched; 0: as fast as "
                   "the CPU allows. Never changes a modeled figure.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option("--report-dir", default="pilotlight-reports", show_default=True, type=click.Path(file_okay=False),
              help="Where the failover's HTML report is written.")
@click.option("--inject", "faults", multiple=True, callback=lambda ctx, param, values: _fault_specs(ctx, param, values),
              metavar="SERVICE:OPERATION:KIND[:N|:xK]",
              help="Make an AWS call of the workflow's functions fail, to watch the failover cope (repeatable): "
                   "KIND is Throttling, RequestLimitExceeded, TooManyRequestsException, ServiceUnavailable, "
                   "InternalFailure, AccessDenied, ReadTimeout, ConnectionError or Crash (the call succeeds, the "
                   "function dies before it returns); N: only the Nth call, xK: the next K calls (default 1). "
                   "E.g. rds:PromoteReadReplica:Throttling:x2.")
def demo(plan_path: str | None, example: str | None, pace: float, as_json: bool, report_dir: str,
         faults: tuple[Any, ...]) -> None:
    """Run a failover of the reference estate (or another example, --example) in the embedded sandbox, started
    by the plan's alarms on a simulated outage; no AWS account needed."""
    if plan_path and example:
        raise click.UsageError("give --plan or --example, not both")
    path = plan_path or str(EXAMPLES_DIR / f"{example or 'reference'}.yaml")
    sys.exit(run_sandbox_demo(load(path), pace or None, as_json, report_dir=report_dir, faults=faults))


# The demo waits this long (modeled) for the outage's alarms to start a failover before giving up.
DEMO_DETECTION_LIMIT = 3600.0


def _fault_specs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Any, ...]:
    """``--inject`` values parsed at once: a wrong spec is a usage error naming its wrong part."""
    if not values:
        return ()
    from sandbox.faults import FaultSpecError, parse_spec

    try:
        return tuple(parse_spec(v) for v in values)
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def run_sandbox_demo(plan: Plan, pace: float | None, as_json: bool, *, report_dir: str = "pilotlight-reports",
                     faults: tuple[Any, ...] = ()) -> int:
    """The reference estate failing over as deployed: nobody starts the failover.

    The primary's alarm metrics breach (an outage), the alarms enter ALARM after their evaluation
    periods, CloudWatch's event reaches the plan's rules (forwarded to the DR region) and EventBridge
    starts the failover. A plan with ``triggers.failover: approval`` (the reference) then waits for
    approval; the demo approves as the on-call operator would, through the code path of
    ``pilotlight approve`` (``workflows.executions.answer_approval``). The timeline and the RTO count
    from the outage's start; detection is its own line.
    """
    import dataclasses
    import getpass

    import boto3

    from sandbox import Sandbox, clock
    from workflows.executions import Follower, Step, answer_approval, fmt_duration, pending_approval_token

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, plan, say, progress_printer(as_json), source="pilotlight demo")
        say(replicate_line(built))
        pilot_light_built(built)
        for spec in faults:  # from here on: the failover's calls, not the pilot light's
            sb.inject(spec)
            say(f"Fault injected: {spec}")
        if not plan.triggers.alarms:
            raise Precondition(f"{plan.name} names no trigger alarm: nothing would start a failover on an outage")
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        machine = sb.state_machine_arn(plan, "failover")
        outage = sb.start_outage(plan)
        t0 = outage.started_at
        say(f"[{fmt_duration(0):>8}] ✗ Outage of {plan.primary_region} starts: "
            + "; ".join(f"{m.namespace}/{m.name} = {m.value:g} every {m.period} s" for m in outage.metrics)
            + f" (alarms {', '.join(a for _, a in outage.alarms)})")
        try:
            # Small steps: this poll is the only thing driving modeled time once the failover waits for
            # approval, so the approval comes within a tenth of a modeled second of its request.
            clock.wait_until(lambda: sb.eventbridge.started(machine), timeout=DEMO_DETECTION_LIMIT, step=0.1,
                             what="a failover started by the plan's alarm rule")
        except TimeoutError as exc:
            raise CommandError(f"no failover started: {exc}") from exc
        detected = min(e.at for e in sb.eventbridge.alarm_events(state="ALARM") if e.at >= t0) - t0
        for e in sb.eventbridge.alarm_events(state="ALARM"):
            say(f"[{fmt_duration(e.at - t0):>8}] ! Alarm {e.event['detail']['alarmName']} ({e.region}) -> ALARM: "
                f"{e.event['detail']['state']['reason']}")
        runs = sorted(sb.eventbridge.started(machine), key=lambda d: (d.at, d.result))
        for run in runs:
            source = run.event["region"]
            forwarded = f" (the event forwarded from {source})" if source != run.region else ""
            say(f"[{fmt_duration(run.at - t0):>8}] ▶ EventBridge rule {run.rule} in {run.region}{forwarded} started "
                f"failover {run.result.rsplit(':', 1)[-1]}, the alarm event as its input")
        # The guard rails keep the oldest running failover and stop the others (one per alarm here).
        described = sorted((sfn.describe_execution(executionArn=r.result) for r in runs),
                           key=lambda d: (d["startDate"], d["executionArn"]))
        arn = described[0]["executionArn"]
        offset = described[0]["startDate"].timestamp() - t0
        progress, follower = progress_printer(as_json, offset), Follower(sfn, arn)
        approval: dict[str, Any] | None = None
        while True:
            # On the wall: while the approval request waits for a person, modeled time holds.
            status = sfn.describe_execution(executionArn=arn)["status"]
            for line in follower.poll():
                progress(line)
            if status != "RUNNING":
                break
            if plan.triggers.failover == "approval" and approval is None and pending_approval_token(sfn, arn):
                who = getpass.getuser()
                answered = answer_approval(sfn, machine, approve=True, who=who)
                approval = {"by": who, "at_seconds": round(clock.now() - t0, 1), "execution_arn": answered,
                            "via": "pilotlight approve (workflows.executions.answer_approval)"}
                say(f"[{fmt_duration(clock.now() - t0):>8}] ✓ Approval requested on the plan's topic; approved by "
                    f"{who}, as `pilotlight approve` does")
            time.sleep(0.02)
        result = follower.result(sfn.describe_execution(executionArn=arn), ended=True)
        others = []
        for d in described[1:]:
            other = sfn.describe_execution(executionArn=d["executionArn"])
            others.append({"execution_arn": other["executionArn"], "status": other["status"],
                           "error": other.get("error")})
            # Both trigger alarms went to ALARM, so EventBridge started a run for each; the later one stops itself.
            say(f"A second trigger started failover {other['name']}; the guard rails stopped it as designed "
                f"({other['status']} {other.get('error') or ''}: one failover of a plan at a time)".replace(" :", ":"))
        timeline = [Step("Outage: primary alarm metrics breaching", 0.0, detected, "done"),
                    Step("Alarm ALARM (detection)", detected, max(offset, detected), "done")]
        timeline += [dataclasses.replace(s, start=s.start + offset, end=None if s.end is None else s.end + offset)
                     for s in result.steps]
        shifted = dataclasses.replace(result, steps=timeline,
                                      duration=None if result.duration is None else result.duration + offset)
        window = {"detection_seconds": round(detected, 1), "failover_started_seconds": round(offset, 1)}
        figures = _figures(plan, shifted, modeled=True, outage=window)
        # The auditor's page of this failover (its own timeline counts from the execution's start).
        from commands.report import save_reports

        saved = save_reports(sfn, arn, plan, report_dir, formats=("html",))
        extra = {"plan": plan.name, "mode": "sandbox", "trigger": "alarm", "pace": pace,
                 "report": saved["files"]["html"],
                 "wall_seconds": round(time.monotonic() - started, 1),
                 "pilot_light": {"status": built.status, "modeled_seconds": round(built.duration or 0, 1),
                                 "counts": (built.output or {}).get("counts")},
                 "outage": {**window, "region": plan.primary_region, "alarms": [a for _, a in outage.alarms],
                            "executions_started": len(runs), "other_executions": others, "approval": approval}}
        _print_result(plan, shifted, figures, as_json, extra)
        say(f"Report (html): {saved['files']['html']}")
    return exit_code(result)



# -- readiness --------------------------------------------------------------------------------
