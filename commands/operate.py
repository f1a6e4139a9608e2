"""``pilotlight approve``, ``abort`` and ``status``: answering and watching a running failover (and drill)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from commands.common import (
    Precondition,
    aws_machine,
    aws_options,
    emit_json,
    load,
)
from commands.readiness import last_readiness, readiness_lines

if TYPE_CHECKING:
    from workflows.plan import Plan


_ANSWERED = click.option("--workflow", type=click.Choice(["failover", "failback"]), default="failover",
                         show_default=True, help="The workflow whose run waits for approval.")


def _answer(plan_path: str, profile: str | None, region: str | None, as_json: bool, approve: bool,
            reason: str = "", workflow: str = "failover") -> None:
    import getpass

    from workflows.executions import NothingToAnswer, answer_approval

    plan = load(plan_path)
    sfn, machine = aws_machine(plan, profile, region, workflow)
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


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
@_ANSWERED
def approve(plan: str, profile: str | None, region: str | None, as_json: bool, workflow: str) -> None:
    """Approve the failover (or, with --workflow failback, the failback) of PLAN that waits for approval (exit 4 if
    none waits). A failback's approver has stopped the application's writes on the DR site first.

    Acts on a running execution in AWS, so there is no --sandbox rehearsal of it; the tests
    exercise it against the sandbox.
    """
    _answer(plan, profile, region, as_json, approve=True, workflow=workflow)


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
@click.option("--reason", default="", help="Recorded as the cause of the abort.")
@_ANSWERED
def abort(plan: str, profile: str | None, region: str | None, as_json: bool, reason: str, workflow: str) -> None:
    """Abort the failover (or failback) of PLAN that waits for approval. Nothing in production has changed yet for a
    failover; a failback aborted at its approval has re-protected (a reverse replica) and moved no traffic."""
    _answer(plan, profile, region, as_json, approve=False, reason=reason, workflow=workflow)


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@aws_options
def status(plan: str, profile: str | None, region: str | None, as_json: bool) -> None:
    """Show the running (or last) failover of PLAN step by step, a running drill, and the last readiness result."""
    from workflows.executions import fmt_duration, snapshot, timeline_table

    model = load(plan)
    sfn, machine = aws_machine(model, profile, region, "failover")
    try:
        executions = sfn.list_executions(stateMachineArn=machine, maxResults=1)["executions"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise Precondition(f"{machine} is not deployed; run `pilotlight deploy` first") from exc
    last = last_readiness(model, profile)
    drill = _running_drill(model, profile, region)
    if not executions:
        if as_json:
            emit_json({"plan": model.name, "execution": None, "drill": drill, "readiness": last})
        else:
            click.echo(f"{model.name}: no failover has run")
            click.echo("\n".join(_drill_lines(drill) + readiness_lines(model, last)))
        return
    result = snapshot(sfn, executions[0]["executionArn"])
    if as_json:
        emit_json({"plan": model.name, **result.to_json(), "drill": drill, "readiness": last})
        return
    click.echo(f"{executions[0]['name']}: {result.status}" + (f" ({fmt_duration(result.duration)})"
                                                                 if result.duration else ""))
    click.echo(timeline_table(result))
    click.echo("\n".join(_drill_lines(drill) + readiness_lines(model, last)))


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
