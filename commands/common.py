"""What every pilotlight command shares: exit codes, plan loading, JSON output, options, live progress,
the sandbox estate a rehearsal starts from, and the deployed state machines in AWS.

Exit codes: 0 ok, 1 workflow failed, 2 usage error, 3 invalid plan, 4 precondition not met.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from workflows.plan import Plan, PlanError, load_plan

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID_PLAN, EXIT_PRECONDITION = 0, 1, 2, 3, 4


class Precondition(click.ClickException):
    exit_code = EXIT_PRECONDITION


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


def load(path: str, as_json: bool = False) -> Plan:
    try:
        return load_plan(path)
    except PlanError as exc:
        if as_json:
            emit_json({"plan": path, "valid": False, "problems": exc.problems})
        else:
            for line in exc.problems:
                click.echo(f"{path}: {line}", err=True)
        sys.exit(EXIT_INVALID_PLAN)


def workflow_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every workflow command shares."""

    @click.option("--sandbox", is_flag=True, help="Rehearse in a fresh in-process sandbox seeded from the plan.")
    @click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
    @click.option("--profile", default=None, help="AWS profile (without --sandbox).")
    @click.option("--region", default=None, help="Region of the deployed workflows (default: the plan's DR region).")
    @click.option("--pace", default=None, type=click.FloatRange(min=0, min_open=True),
                  help="Sandbox: at most N modeled seconds per wall second, for watching (default: as fast "
                       "as the CPU allows). Never changes a modeled figure.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def progress_printer(as_json: bool, offset: float = 0.0) -> Callable[[Any], None]:
    """Live progress lines; ``offset``: seconds to add to each (the demo counts from the outage's start)."""
    symbols = {"started": "▶", "update": "…", "done": "✓", "failed": "✗"}

    def show(p: Any) -> None:
        from workflows.executions import fmt_duration

        detail = f"  {p.detail}" if p.detail else ""
        click.echo(f"[{fmt_duration(p.at + offset):>8}] {symbols.get(p.kind, ' ')} {p.step}{detail}", err=as_json)

    return show


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def exit_code(result: Any) -> int:
    from lambdas.errors import GUARD_ERRORS

    if result.status == "SUCCEEDED":
        return EXIT_OK
    if result.error in {cls.__name__ for cls in GUARD_ERRORS}:
        return EXIT_PRECONDITION
    return EXIT_FAILED


# `pilotlight demo` paces modeled time for a person watching: the reference failover (about 45
# modeled minutes with hardening) takes about a minute on the wall. Figures are the same unpaced.


def pace_text(pace: float | None) -> str:
    return f"paced at {pace:g} modeled seconds per wall second" if pace else "unpaced"


def sandbox_estate(
    sb: Any, plan: Plan, say: Callable[..., None], progress: Callable[[Any], None] | None, *, source: str,
    paced: bool = False,
) -> Any:
    """Seed the primary estate, deploy, and build the pilot light with the replicate workflow.

    The pilot light is not what is being watched: it is built unpaced unless ``paced``.
    """
    seeded = sb.seed(plan)
    say(f"Sandbox: {plan.primary_region} -> {plan.dr_region}, modeled time on a virtual clock "
        f"({pace_text(sb.pace)})")
    say(f"Seeded primary estate: {len(seeded['environments'])} environment(s), "
        f"{len(seeded['databases'])} database(s), {len(seeded['buckets'])} bucket pair(s)")
    arns = sb.deploy(plan)
    say(f"Deployed state machines: {', '.join(sorted(arns))}")
    say("Building the pilot light: replicate")
    return sb.run_replicate(plan, pace=sb.pace if paced else None, source=source, on_progress=progress)


def replicate_line(result: Any) -> str:
    counts = (result.output or {}).get("counts") or {}
    made = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing to do"
    return f"Pilot light {'built' if (result.output or {}).get('ok') else 'INCOMPLETE'}: {made}"


def aws_machine(plan: Plan, profile: str | None, region: str | None, workflow: str) -> tuple[Any, str]:
    import boto3
    import botocore.exceptions

    from workflows import render as renderer

    region = region or plan.dr_region
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        account = session.client("sts").get_caller_identity()["Account"]
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.ProfileNotFound,
            botocore.exceptions.ClientError) as exc:
        raise Precondition(f"no usable AWS credentials ({exc}); use --profile") from exc
    arn = f"arn:aws:states:{region}:{account}:stateMachine:{renderer.state_machine_name(plan, workflow)}"
    return session.client("stepfunctions"), arn


def aws_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")(func)
    func = click.option("--region", default=None, help="Region of the deployed workflows (default: DR region).")(func)
    return click.option("--profile", default=None, help="AWS profile.")(func)
