"""``pilotlight failback``: back to the primary region after a failover, with its downtime, RPO and data check."""

from __future__ import annotations

import functools
import json
import time
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
    pilot_light_built,
    progress_printer,
    replicate_line,
    sandbox_estate,
    workflow_options,
)

if TYPE_CHECKING:
    from workflows.plan import Plan


def figures(plan: Plan, output: Any) -> dict[str, Any]:
    from reports.failback import figures as failback_figures

    return failback_figures(plan, output)

# What the sandbox rehearsal writes on the DR site while it serves (then looked for in the primary).
SANDBOX_ROWS = 25
SANDBOX_OBJECTS = 3
SANDBOX_TABLE = "orders_during_outage"


def _exit(result: Any) -> int:
    if result.status == "SUCCEEDED":
        return EXIT_OK
    return EXIT_PRECONDITION if result.error == "FailbackRefused" else EXIT_FAILED


def _print(plan: Plan, result: Any, figs: dict[str, Any], as_json: bool, extra: dict[str, Any]) -> None:
    from workflows.executions import fmt_duration, timeline_table

    if as_json:
        emit_json({**extra, **result.to_json(), **figs})
        return
    click.echo()
    click.echo("Failback timeline")
    click.echo(timeline_table(result))
    click.echo()
    down = figs["downtime"]
    if down["seconds"] is not None:
        click.echo(f"Downtime of the switch back: {fmt_duration(down['seconds'])} (writes stopped to verified service "
                   "on the primary)")
    rpo = figs["rpo"]
    if rpo["seconds"] is not None:
        click.echo(f"RPO of the switch back: {rpo['seconds']:g} s of reverse replica lag at promotion, "
                   f"{'within' if rpo['met'] else 'OVER'} the objective of {plan.objectives.rpo_minutes} min")
    if down["resumed"]:
        click.echo("Switched back by an earlier run of this failback (its history has the data check)")
    for db in figs["data_check"]["databases"]:
        tables = ", ".join(f"{t['table']} {t['before']}->{t['after']}" for t in db["tables"])
        click.echo(f"Data check {db['identifier']}: marker {'found' if db['marker_found'] else 'MISSING'}; rows "
                   f"(DR before -> primary after): {tables}")
    for b in figs["data_check"]["buckets"]:
        click.echo(f"Data check s3://{b.get('source')}: {b.get('primary_objects')} objects "
                   f"(DR {b.get('dr_objects')}), {len(b.get('mismatches') or [])} mismatch(es) in a sample of "
                   f"{b.get('sample')}")
    if result.status != "SUCCEEDED":
        click.echo(f"Failback {result.status} at step '{result.failed_step}' (state {result.failed_state}): "
                   f"{result.error}: {result.cause}", err=True)


def _input(source: str, approve: bool) -> dict[str, Any]:
    import getpass

    return {"source": source, **({"approved_by": getpass.getuser()} if approve else {})}


def write_during_outage(sb: Any, plan: Plan) -> dict[str, Any]:
    """What the application writes on the DR site while it serves: rows in each promoted DR database, objects in
    each DR bucket (the sandbox rehearsal's, and the tests')."""
    import boto3

    from lambdas.canary import connect

    rows = {}
    for db in plan.rds_databases:
        conn = connect(plan.dr_region, db.dr_replica_identifier, db.credentials_secret_name)
        try:
            conn.run(f"CREATE TABLE IF NOT EXISTS {SANDBOX_TABLE} (id serial PRIMARY KEY, note text)")
            for i in range(SANDBOX_ROWS):
                conn.run(f"INSERT INTO {SANDBOX_TABLE} (note) VALUES (:n)", n=f"written in DR #{i}")
        finally:
            conn.close()
        rows[db.dr_replica_identifier] = SANDBOX_ROWS
    s3 = boto3.client("s3", region_name=plan.dr_region)
    objects = {}
    for bucket in plan.buckets:
        for i in range(SANDBOX_OBJECTS):
            s3.put_object(Bucket=bucket.destination, Key=f"during-outage/{i}.txt", Body=f"object {i}".encode())
        objects[bucket.destination] = SANDBOX_OBJECTS
    return {"rows": rows, "objects": objects}


def _saved(saved: dict[str, Any] | None, as_json: bool) -> None:
    if saved and not as_json:
        click.echo("Reports: " + ", ".join(saved["files"].values()))
        for uri in saved["uploaded"]:
            click.echo(f"Uploaded: {uri}")
        if saved["note"]:
            click.echo(f"Not uploaded: {saved['note']}")


def run_sandbox_failback(plan: Plan, pace: float | None, as_json: bool, report_dir: str | None = None) -> int:
    import boto3

    from sandbox import Sandbox
    from workflows.executions import follow

    say = functools.partial(click.echo, err=as_json)
    started = time.monotonic()
    with Sandbox(pace=pace) as sb:
        built = sandbox_estate(sb, plan, say, None, source="pilotlight sandbox")
        say(replicate_line(built))
        pilot_light_built(built)
        sb.simulate_disaster(plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sb.start(plan, "failover", {"source": "pilotlight failback --sandbox", "approved_by": "sandbox"})
        say(f"Simulated outage of {plan.primary_region}; failover {arn.rsplit(':', 1)[-1]}")
        over = follow(sfn, arn, on_progress=progress_printer(as_json))
        if over.status != "SUCCEEDED":
            raise Precondition(f"the rehearsal's failover {over.status}: {over.error}: {over.cause}")
        written = write_during_outage(sb, plan)
        say(f"Wrote on the DR site during the outage: {sum(written['rows'].values())} row(s), "
            f"{sum(written['objects'].values())} object(s)")
        sb.recover(plan)
        say(f"{plan.primary_region} answers again")
        arn = sb.start(plan, "failback", _input("pilotlight failback --sandbox", True))
        say(f"Started failback: {arn.rsplit(':', 1)[-1]}")
        result = follow(sfn, arn, on_progress=progress_printer(as_json))
        extra = {"plan": plan.name, "mode": "sandbox", "wall_seconds": round(time.monotonic() - started, 1),
                 "failover": {"status": over.status, "execution_arn": over.execution_arn,
                              "rto_seconds": over.restored_at}, "written_during_outage": written}
        if report_dir is not None:
            from commands.report import save_reports

            extra["reports"] = save_reports(sfn, arn, plan, report_dir)
        _print(plan, result, figures(plan, result.output), as_json, extra)
        _saved(extra.get("reports"), as_json)
    return _exit(result)


def run_aws_failback(plan: Plan, profile: str | None, region: str | None, as_json: bool, approve: bool,
                     report_dir: str | None = None) -> int:
    import boto3

    from workflows.executions import follow

    sfn, machine = aws_machine(plan, profile, region, "failback")
    try:
        running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    if running:
        raise Precondition(f"failback {running[0]['name']} of plan {plan.name} is already running")
    arn = sfn.start_execution(stateMachineArn=machine,
                              input=json.dumps(_input("pilotlight failback", approve)))["executionArn"]
    click.echo(f"Started failback: {arn}", err=as_json)
    if not approve:
        click.echo("It re-protects, then waits for approval: stop the application's writes on the DR site, then "
                   "`pilotlight approve <plan file> --workflow failback`", err=as_json)
    result = follow(sfn, arn, on_progress=progress_printer(as_json), poll_seconds=10)
    extra: dict[str, Any] = {"plan": plan.name, "mode": "aws"}
    if report_dir is not None:
        from commands.report import save_reports

        extra["reports"] = save_reports(sfn, arn, plan, report_dir, session=boto3.Session(profile_name=profile))
    _print(plan, result, figures(plan, result.output), as_json, extra)
    _saved(extra.get("reports"), as_json)
    return _exit(result)


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@workflow_options
@click.option("--approve", is_flag=True,
              help="Start with the approval (writes on the DR site already stopped); without it the failback "
                   "re-protects and then waits for `pilotlight approve PLAN --workflow failback`.")
@click.option("--report-dir", "report_dir", type=click.Path(file_okay=False), default=DEFAULT_REPORT_DIR,
              show_default=True, help="Where the report (JSON, Markdown, HTML) is written: <dir>/<plan>/ (in AWS also "
                                      "the plan's reports bucket).")
def failback(plan: str, sandbox: bool, as_json: bool, profile: str | None, region: str | None, pace: float | None,
             approve: bool, report_dir: str) -> None:
    """Return PLAN's application to its primary region after a failover, and re-arm the pilot light.

    Refused (exit 4) unless the primary region answers, the last failover succeeded with no failback since, and
    no failover, drill or failback of the plan runs. It then re-protects (the stale primary kept as
    <id>-stale-<stamp>, a reverse read replica <id> of the DR database, reverse S3 replication), waits for the
    approval, checks the data (a marker row and every table's count), promotes, moves DNS back (in steps for
    weighted records, backing off on alarm), verifies, and re-arms (replicate's end state; the promoted DR
    database deleted with a final snapshot once the new DR replica is available).

    --sandbox builds the pilot light, fails over, writes on the DR site and fails back in one sandbox.
    """
    from workflows import render

    loaded = load(plan)
    if "failback" not in render.workflows_of(loaded):
        raise Precondition(f"plan {loaded.name} has Aurora, DynamoDB global tables or Auto Scaling groups: the "
                           "failback covers plans of RDS databases, Beanstalk environments, S3 buckets and DNS only "
                           "(docs/failback.md)")
    code = run_sandbox_failback(loaded, pace, as_json, report_dir) if sandbox else run_aws_failback(
        loaded, profile, region, as_json, approve, report_dir)
    raise SystemExit(code)
