"""``pilotlight readiness``: would a failover work now, check by check."""

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
    EXIT_PRECONDITION,
    Precondition,
    aws_machine,
    emit_json,
    load,
    pilot_light_built,
    progress_printer,
    sandbox_estate,
    workflow_options,
)

if TYPE_CHECKING:
    from workflows.plan import Plan


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
        pilot_light_built(replicated, complete=False)
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


@click.command()
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
    model = load(plan)
    if sandbox:
        code = run_sandbox_readiness(model, pace, as_json)
    else:
        code = run_aws_readiness(model, profile, region, as_json)
    sys.exit(code)


def last_readiness(plan: Plan, profile: str | None) -> dict[str, Any] | None:
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


def readiness_lines(plan: Plan, last: dict[str, Any] | None) -> list[str]:
    if last is None:
        return [f"{plan.name}: readiness has not run"]
    if "score" not in last:
        return [f"{plan.name}: last readiness result unreadable: {last.get('error')}"]
    lines = [f"Readiness: {last['status']} ({last['ready']}/{last['total']} checks, score {last['score'] * 100:.0f}%) "
             f"at {last.get('at')}"]
    lines += [f"  {c['status']}  {c['check']}  {c['resource']}: {c['reason']}" for c in last.get("not_ready", [])]
    return lines
