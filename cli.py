"""pilotlight command line: parses, calls the layers below, renders output.

Exit codes: 0 ok, 1 workflow failed, 2 usage error, 3 invalid plan, 4 precondition not met.
Every workflow command takes ``--sandbox`` (rehearse in a fresh in-process sandbox seeded from
the plan) and ``--json`` (exactly one JSON document on stdout; progress goes to stderr).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PRECONDITION,
    Precondition,
    aws_machine,
    aws_options,
    emit_json,
    exit_code,
    load,
    minutes,
    progress_printer,
    replicate_line,
    sandbox_estate,
    workflow_options,
)
from workflows.plan import Plan, plan_json_schema

REFERENCE_PLAN = Path(__file__).resolve().parent / "examples" / "reference.yaml"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pilotlight")
def cli() -> None:
    """Pilot-light disaster recovery for AWS: Elastic Beanstalk, RDS, S3 and Route 53 on Step Functions."""


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(plan: str, as_json: bool) -> None:
    """Check a plan file. Exit 0 when valid; exit 3 with one line per problem, naming the field."""
    model = load(plan, as_json)
    if as_json:
        emit_json({"plan": plan, "valid": True, "name": model.name})
    else:
        click.echo(f"{plan}: valid plan '{model.name}' ({model.primary_region} -> {model.dr_region}: "
                   f"{len(model.environments)} environment(s), {len(model.databases)} database(s), "
                   f"{len(model.buckets)} bucket pair(s))")


@cli.command()
@click.option("--report", "report_schema", is_flag=True,
              help="Print the JSON Schema of a drill or failover report (`pilotlight report --format json`) instead.")
def schema(report_schema: bool) -> None:
    """Print the JSON Schema of a plan (for editors), or with --report that of a report."""
    if report_schema:
        from reports.schema import report_json_schema

        emit_json(report_json_schema())
        return
    emit_json(plan_json_schema())


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for <workflow>.asl.json files.")
def render(plan: str, out_dir: str) -> None:
    """Write the ASL JSON of every workflow of a plan."""
    from workflows import render as renderer

    for path in renderer.write(load(plan), out_dir):
        click.echo(str(path))


# -- failover ---------------------------------------------------------------------------------

def _rto_report(plan: Plan, result: Any, modeled: bool, outage: dict[str, Any] | None = None) -> dict[str, Any]:
    """RTO = start of the execution to verified service; RPO = replica lag read just before promotion.

    ``outage`` (the demo): the result's steps count from the outage's start, and so does the RTO;
    its detection and failover start times are reported beside it.
    """
    restored, hardened = result.restored_at, result.duration if result.status == "SUCCEEDED" else None
    lags = {}
    for db in ((result.output or {}).get("restore") or {}).get("databases") or []:
        lags[db["identifier"]] = (db.get("rpo") or {}).get("lag_seconds")
    known = [v for v in lags.values() if v is not None]
    rpo_seconds = max(known) if known else None
    counted = {"counted_from": "execution start"}
    if outage is not None:
        counted = {"counted_from": "outage start", "detection_seconds": outage["detection_seconds"],
                   "failover_started_seconds": outage["failover_started_seconds"]}
    return {
        **counted,
        "seconds": None if restored is None else round(restored, 1),
        "minutes": minutes(restored),
        "objective_minutes": plan.objectives.rto_minutes,
        "met": restored is not None and restored <= plan.objectives.rto_minutes * 60,
        "hardened_seconds": None if hardened is None else round(hardened, 1),
        "hardened_minutes": minutes(hardened),
        "modeled": modeled,
        "rpo": {
            "lag_seconds": rpo_seconds,
            "objective_minutes": plan.objectives.rpo_minutes,
            "met": None if rpo_seconds is None else rpo_seconds <= plan.objectives.rpo_minutes * 60,
            "per_database": lags,
        },
    }


def _print_result(plan: Plan, result: Any, report: dict[str, Any], as_json: bool, extra: dict[str, Any]) -> None:
    from workflows.executions import fmt_duration, timeline_table

    if as_json:
        emit_json({**extra, **result.to_json(), "rto": report})
        return
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
    rpo = report["rpo"]
    if rpo["lag_seconds"] is not None:
        verdict = "within" if rpo["met"] else "OVER"
        click.echo(f"RPO: replica lag {rpo['lag_seconds']:g} s at promotion, {verdict} the objective of "
                   f"{plan.objectives.rpo_minutes} min")
    elif rpo["per_database"]:
        click.echo("RPO: unknown (no ReplicaLag datapoint when the replica was promoted)")
    if result.status == "SUCCEEDED":
        click.echo(f"DR site hardened (Multi-AZ, failover class) after {fmt_duration(report['hardened_seconds'])} "
                   f"({report['hardened_minutes']} min)")
    else:
        click.echo(f"Failover {result.status} at step '{result.failed_step}' (state {result.failed_state}): "
                   f"{result.error}: {result.cause}", err=True)


def _failover_input(source: str, force: bool) -> dict[str, Any]:
    import getpass

    # An operator starting a failover from the CLI is the approval the plan may ask for.
    return {"source": source, "force": force, "approved_by": getpass.getuser()}


DEMO_PACE = 60.0


def run_sandbox_failover(plan: Plan, pace: float | None, as_json: bool, *, demo: bool = False,
                         force: bool = False) -> int:
    import boto3

    from sandbox import Sandbox
    from workflows.executions import follow

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, plan, say, progress_printer(as_json) if demo else None,
                                source="pilotlight sandbox")
        say(replicate_line(built))
        if built.status != "SUCCEEDED" or not (built.output or {}).get("ok"):
            say(f"replicate {built.status}: {built.error or ''} {built.cause or ''}".rstrip())
            return EXIT_FAILED
        if not force:
            alarms = sb.simulate_disaster(plan)
            say(f"Simulated outage of {plan.primary_region}: "
                + (f"alarms {', '.join(alarms)} -> ALARM" if alarms else "the plan names no trigger alarm"))
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sb.start(plan, "failover", _failover_input("pilotlight demo" if demo else "pilotlight failover --sandbox",
                                                         force))
        say(f"Started failover: {arn.rsplit(':', 1)[-1]}")
        result = follow(sfn, arn, on_progress=progress_printer(as_json))
        report = _rto_report(plan, result, modeled=True)
        extra = {"plan": plan.name, "mode": "sandbox", "pace": pace,
                 "wall_seconds": round(time.monotonic() - started, 1),
                 "pilot_light": {"status": built.status, "modeled_seconds": round(built.duration or 0, 1),
                                 "counts": (built.output or {}).get("counts")}}
        _print_result(plan, result, report, as_json, extra)
    return exit_code(result)


def run_aws_failover(plan: Plan, profile: str | None, region: str | None, as_json: bool, force: bool) -> int:
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
                              input=json.dumps(_failover_input("pilotlight failover", force)))["executionArn"]
    click.echo(f"Started failover: {arn}", err=as_json)
    result = follow(sfn, arn, on_progress=progress_printer(as_json), poll_seconds=5)
    _print_result(plan, result, _rto_report(plan, result, modeled=False), as_json, {"plan": plan.name, "mode": "aws"})
    return exit_code(result)


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
@click.option("--force", is_flag=True, help="Fail over even though every trigger alarm is OK.")
def failover(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None, pace: float | None,
             force: bool) -> None:
    """Fail the plan's application over to the DR region, with live progress and a timeline.

    Promotes the DR replica, waits until it is available, enables Multi-AZ, resizes it to the
    failover class and repoints DNS. Refuses (exit 4) while every trigger alarm is OK unless
    --force, and while another failover of the plan runs. With --sandbox the failover is rehearsed
    in a fresh sandbox with a simulated outage (the trigger alarms in ALARM; with --force, none),
    and the reported RTO is modeled time (the same on every run; --pace only slows it down to watch).
    """
    model = load(plan, as_json)
    if sandbox:
        code = run_sandbox_failover(model, pace, as_json, force=force)
    else:
        code = run_aws_failover(model, profile, region, as_json, force)
    sys.exit(code)


def _replicate_exit(result: Any) -> int:
    return EXIT_OK if result.status == "SUCCEEDED" and (result.output or {}).get("ok") else EXIT_FAILED


def _print_replicate(plan: Plan, result: Any, as_json: bool, extra: dict[str, Any]) -> None:
    from workflows.replicate import replicate_summary_table

    if as_json:
        emit_json({**extra, **result.to_json()})
        return
    click.echo()
    if result.output:
        click.echo(replicate_summary_table(result.output))
    if result.status != "SUCCEEDED":
        click.echo(f"Replicate {result.status} at step '{result.failed_step}': {result.error}: {result.cause}",
                   err=True)


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
def replicate(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None,
              pace: float | None) -> None:
    """Keep the pilot light current: AMIs, saved configurations, application versions, replicas, S3.

    Runs the plan's replicate workflow and prints what was created, updated, unchanged, deleted,
    verified and any drift or failure. Exit 0 when everything is in place, 1 when anything failed.
    With --sandbox it runs against a fresh sandbox seeded with the primary estate only (modeled
    time on the sandbox's virtual clock).
    """
    from workflows.executions import follow

    model = load(plan, as_json)
    progress = progress_printer(as_json)
    if sandbox:
        from sandbox import Sandbox

        say = functools.partial(click.echo, err=as_json)
        started = time.monotonic()
        with Sandbox(pace=pace) as sb:
            result = sandbox_estate(sb, model, say, progress, source="pilotlight replicate --sandbox", paced=True)
            _print_replicate(model, result, as_json, {"plan": model.name, "mode": "sandbox", "pace": pace,
                                                       "wall_seconds": round(time.monotonic() - started, 1)})
        sys.exit(_replicate_exit(result))
    sfn, machine = aws_machine(model, profile, region, "replicate")
    try:
        arn = sfn.start_execution(stateMachineArn=machine,
                                  input=json.dumps({"source": "pilotlight replicate"}))["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    click.echo(f"Started replicate: {arn}", err=as_json)
    result = follow(sfn, arn, on_progress=progress, poll_seconds=5)
    _print_replicate(model, result, as_json, {"plan": model.name, "mode": "aws"})
    sys.exit(_replicate_exit(result))


@cli.command()
@click.option("--plan", "plan_path", default=str(REFERENCE_PLAN), show_default=True, type=click.Path(),
              help="Plan to demonstrate.")
@click.option("--pace", default=DEMO_PACE, show_default=True, type=click.FloatRange(min=0),
              help="At most N modeled seconds per wall second, so the run can be watched; 0: as fast as "
                   "the CPU allows. Never changes a modeled figure.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.option("--report-dir", default="pilotlight-reports", show_default=True, type=click.Path(file_okay=False),
              help="Where the failover's HTML report is written.")
def demo(plan_path: str, pace: float, as_json: bool, report_dir: str) -> None:
    """Run a failover of the reference estate in the embedded sandbox; no AWS account needed."""
    sys.exit(run_sandbox_demo(load(plan_path, as_json), pace or None, as_json, report_dir=report_dir))


# The demo waits this long (modeled) for the outage's alarms to start a failover before giving up.
DEMO_DETECTION_LIMIT = 3600.0


def run_sandbox_demo(plan: Plan, pace: float | None, as_json: bool, *, report_dir: str = "pilotlight-reports") -> int:
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
        if built.status != "SUCCEEDED" or not (built.output or {}).get("ok"):
            say(f"replicate {built.status}: {built.error or ''} {built.cause or ''}".rstrip())
            return EXIT_FAILED
        if not plan.triggers.alarms:
            say(f"{plan.name} names no trigger alarm: nothing would start a failover on an outage")
            return EXIT_PRECONDITION
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
            say(f"No failover started: {exc}")
            return EXIT_FAILED
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
        report = _rto_report(plan, shifted, modeled=True, outage=window)
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
        _print_result(plan, shifted, report, as_json, extra)
        say(f"Report (html): {saved['files']['html']}")
    return exit_code(result)



# -- readiness --------------------------------------------------------------------------------

def _readiness_input(plan: Plan, source: str) -> dict[str, Any]:
    from workflows.readiness import failover_sha256

    # The failover this plan file renders now: a plan changed but not redeployed is caught too.
    return {"source": source, "expected_failover_sha256": failover_sha256(plan)}


def _readiness_result(result: Any, as_json: bool, extra: dict[str, Any]) -> int:
    from workflows.readiness import readiness_table

    if result.status != "SUCCEEDED":
        if as_json:
            emit_json({**extra, **result.to_json()})
        else:
            click.echo(f"Readiness run {result.status} at step '{result.failed_step}': {result.error}: {result.cause}",
                       err=True)
        return EXIT_FAILED
    out = result.output or {}
    if as_json:
        emit_json({**extra, "execution_arn": result.execution_arn, **out})
    else:
        click.echo()
        click.echo(readiness_table(out))
    return EXIT_OK if out.get("status") == "READY" else EXIT_PRECONDITION


def run_sandbox_readiness(plan: Plan, pace: float | None, as_json: bool) -> int:
    import boto3

    from sandbox import Sandbox
    from workflows.executions import follow

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        replicated = sandbox_estate(sb, plan, say, None, source="pilotlight readiness --sandbox")
        if replicated.status != "SUCCEEDED":
            say(f"replicate {replicated.status}: {replicated.error}: {replicated.cause}")
            return EXIT_FAILED
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sb.start(plan, "readiness", _readiness_input(plan, "pilotlight readiness --sandbox"))
        say(f"Started readiness: {arn.rsplit(':', 1)[-1]}")
        result = follow(sfn, arn, on_progress=progress_printer(as_json))
        extra = {"plan": plan.name, "mode": "sandbox", "wall_seconds": round(time.monotonic() - started, 1)}
        return _readiness_result(result, as_json, extra)


def run_aws_readiness(plan: Plan, profile: str | None, region: str | None, as_json: bool) -> int:
    from workflows.executions import follow

    sfn, machine = aws_machine(plan, profile, region, "readiness")
    try:
        arn = sfn.start_execution(stateMachineArn=machine,
                                  input=json.dumps(_readiness_input(plan, "pilotlight readiness")))["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    click.echo(f"Started readiness: {arn}", err=as_json)
    result = follow(sfn, arn, on_progress=progress_printer(as_json), poll_seconds=2)
    return _readiness_result(result, as_json, {"plan": plan.name, "mode": "aws"})


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
def readiness(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None,
              pace: float | None) -> None:
    """Check that a failover of PLAN would work now, and score it.

    Runs the deployed readiness workflow (the one scheduled every 30 minutes) and prints one row
    per check: check, resource, status (READY / NOT_READY / UNKNOWN) and the reason. Checks: the
    newest DR AMI copy (available, younger than ami.max_age_hours, used by the saved
    configuration); the DR saved configuration against the primary's current configuration; the
    running application version in the DR region; the DR and second-AZ replicas (source, status,
    ReplicaLag within the RPO); S3 replication (rule, versioning, canary); the DNS record; EC2 vCPU
    and RDS instance quotas in the DR region; the deployed failover definition against this plan
    file. The run publishes metrics, keeps the result for `pilotlight status` and notifies the
    plan's topic when the overall status changes.

    Exit 0 when every check is READY, 4 when any is NOT_READY or UNKNOWN, 1 when the run failed.
    With --sandbox the primary estate is seeded in a fresh sandbox and replicated first.
    """
    model = load(plan, as_json)
    if sandbox:
        code = run_sandbox_readiness(model, pace, as_json)
    else:
        code = run_aws_readiness(model, profile, region, as_json)
    sys.exit(code)


def _last_readiness(plan: Plan, profile: str | None) -> dict[str, Any] | None:
    """The last readiness result kept by the readiness workflow (SSM, DR region); None when none ran."""
    import boto3
    import botocore.exceptions

    from lambdas.readiness import parameter_name

    ssm = boto3.Session(profile_name=profile, region_name=plan.dr_region).client("ssm")
    try:
        return json.loads(ssm.get_parameter(Name=parameter_name(plan.name))["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as exc:
        return {"status": "UNREADABLE", "error": str(exc)}


def _readiness_line(plan: Plan, last: dict[str, Any] | None) -> list[str]:
    if last is None:
        return [f"{plan.name}: readiness has not run"]
    if "score" not in last:
        return [f"{plan.name}: last readiness result unreadable: {last.get('error')}"]
    lines = [f"Readiness: {last['status']} ({last['ready']}/{last['total']} checks, score {last['score'] * 100:.0f}%) "
             f"at {last.get('at')}"]
    lines += [f"  {c['status']}  {c['check']}  {c['resource']}: {c['reason']}" for c in last.get("not_ready", [])]
    return lines


def _answer(plan_path: str, profile: str | None, region: str | None, as_json: bool, approve: bool,
            reason: str = "") -> None:
    import getpass

    from workflows.executions import NothingToAnswer, answer_approval

    plan = load(plan_path, as_json)
    sfn, machine = aws_machine(plan, profile, region, "failover")
    try:
        execution = answer_approval(sfn, machine, approve=approve, who=getpass.getuser(), reason=reason)
    except NothingToAnswer as exc:
        raise Precondition(f"{plan.name}: {exc}") from exc
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    verb = "approved" if approve else "aborted"
    if as_json:
        emit_json({"plan": plan.name, "execution_arn": execution, "answer": verb})
    else:
        click.echo(f"{verb}: {execution}")


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
def approve(plan: str, profile: str | None, region: str | None, as_json: bool) -> None:
    """Approve the failover of PLAN that waits for approval (exit 4 if none waits).

    Acts on a running execution in AWS, so there is no --sandbox rehearsal of it; the tests
    exercise it against the sandbox.
    """
    _answer(plan, profile, region, as_json, approve=True)


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
@click.option("--reason", default="", help="Recorded as the cause of the abort.")
def abort(plan: str, profile: str | None, region: str | None, as_json: bool, reason: str) -> None:
    """Abort the failover of PLAN that waits for approval; nothing in production has changed yet."""
    _answer(plan, profile, region, as_json, approve=False, reason=reason)


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
def status(plan: str, profile: str | None, region: str | None, as_json: bool) -> None:
    """Show the running (or last) failover of PLAN step by step, a running drill, and the last readiness result."""
    from workflows.executions import fmt_duration, snapshot, timeline_table

    model = load(plan, as_json)
    sfn, machine = aws_machine(model, profile, region, "failover")
    try:
        executions = sfn.list_executions(stateMachineArn=machine, maxResults=1)["executions"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    last = _last_readiness(model, profile)
    drill = _running_drill(model, profile, region)
    if not executions:
        if as_json:
            emit_json({"plan": model.name, "execution": None, "drill": drill, "readiness": last})
        else:
            click.echo(f"{model.name}: no failover has run")
            click.echo("\n".join(_drill_lines(drill) + _readiness_line(model, last)))
        return
    result = snapshot(sfn, executions[0]["executionArn"])
    if as_json:
        emit_json({"plan": model.name, **result.to_json(), "drill": drill, "readiness": last})
        return
    click.echo(f"{executions[0]['name']}: {result.status}" + (f" ({fmt_duration(result.duration)})"
                                                                 if result.duration else ""))
    click.echo(timeline_table(result))
    click.echo("\n".join(_drill_lines(drill) + _readiness_line(model, last)))


def _running_drill(plan: Plan, profile: str | None, region: str | None) -> dict[str, Any] | None:
    """The running drill of the plan (id, execution, steps so far), or None."""
    from lambdas import drill as names
    from workflows.executions import snapshot

    sfn, machine = aws_machine(plan, profile, region, "drill")
    try:
        running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING", maxResults=1)["executions"]
    except sfn.exceptions.StateMachineDoesNotExist:
        return None
    if not running:
        return None
    execution = running[0]
    result = snapshot(sfn, execution["executionArn"])
    return {"drill_id": names.drill_id(execution["executionArn"], execution["startDate"]),
            "execution": execution["name"], **result.to_json()}


def _drill_lines(drill: dict[str, Any] | None) -> list[str]:
    from workflows.executions import fmt_duration

    if drill is None:
        return []
    steps = [t for t in drill["timeline"] if t["status"] == "running"] or drill["timeline"][-1:]
    now = f", now: {steps[-1]['step']}" if steps else ""
    return [f"Drill {drill['drill_id']} running for {fmt_duration(drill['duration_seconds'] or 0)} "
            f"({drill['execution']}){now}"]


def _register_infra_commands() -> None:
    from commands.console import console
    from commands.drill import drill, drill_cleanup
    from commands.report import history, report
    from infra.commands import deploy, synth

    cli.add_command(synth)
    cli.add_command(deploy)
    cli.add_command(drill)
    cli.add_command(drill_cleanup)
    cli.add_command(console)
    cli.add_command(report)
    cli.add_command(history)


_register_infra_commands()


def main() -> None:
    cli(prog_name="pilotlight")


if __name__ == "__main__":
    main()
