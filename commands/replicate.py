"""``pilotlight replicate``: keep the pilot light current."""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    Precondition,
    aws_machine,
    emit_json,
    load,
    progress_printer,
    sandbox_estate,
    workflow_options,
)

if TYPE_CHECKING:
    from workflows.plan import Plan


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


@click.command()
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

    model = load(plan)
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
