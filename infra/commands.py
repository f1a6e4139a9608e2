"""``pilotlight synth`` and ``pilotlight deploy``: click commands the CLI registers.

Exit codes follow the CLI's: 0 ok, 1 failed, 2 usage or missing tool, 3 invalid plan,
4 precondition not met (no AWS credentials).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from workflows.plan import Plan, PlanError, load_plan

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID_PLAN, EXIT_PRECONDITION = 0, 1, 2, 3, 4
CDK_INSTALL_HINT = "npm install -g aws-cdk"


def _load(path: str) -> Plan:
    try:
        return load_plan(path)
    except PlanError as exc:
        for line in exc.problems:
            click.echo(f"{path}: {line}", err=True)
        sys.exit(EXIT_INVALID_PLAN)


def _synthesize(plan: Plan, out_dir: Path):  # -> infra.app.Synthesized
    try:
        from infra import app
    except ImportError as exc:  # the infra extra is not installed
        click.echo(f"error: the CDK app needs the infra extra: pip install 'pilotlight[infra]' ({exc})", err=True)
        sys.exit(EXIT_USAGE)
    result = app.synthesize(plan, out_dir)
    for stack, path, message in result.errors:
        click.echo(f"error: {stack} {path}: {message}", err=True)
    if result.errors:
        sys.exit(EXIT_FAILED)
    return result


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("-o", "--out", "out_dir", default="cdk.out", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the cloud assembly (CloudFormation templates and the Lambda code asset).")
def synth(plan: str, out_dir: str) -> None:
    """Write the plan's CloudFormation templates, offline (no AWS credentials, no CDK CLI)."""
    model = _load(plan)
    result = _synthesize(model, Path(out_dir))
    for name in result.templates:
        resources = len(result.templates[name].get("Resources", {}))
        click.echo(f"{name}: {resources} resources")
    click.echo(f"cloud assembly: {out_dir}")


def caller_identity(profile: str | None, region: str) -> dict[str, str]:
    """The AWS identity the deploy will use; raises click.ClickException when there is none."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise _NoCredentials(
            f"no usable AWS credentials{f' for profile {profile}' if profile else ''}: {exc}. "
            "Configure them (aws configure, AWS_PROFILE, or --profile) and try again."
        ) from exc


class _NoCredentials(click.ClickException):
    exit_code = EXIT_PRECONDITION


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--profile", default=None, help="AWS profile to deploy with.")
@click.option("--require-approval", type=click.Choice(["never", "any-change", "broadening"]),
              default="broadening", show_default=True,
              help="Passed to `cdk deploy`: when to ask before deploying IAM or security-group changes.")
def deploy(plan: str, profile: str | None, require_approval: str) -> None:
    """Deploy the plan's stacks (DR region, and alarm forwarding) with the AWS CDK CLI."""
    model = _load(plan)
    cdk = shutil.which("cdk")
    if cdk is None:
        click.echo(f"error: the AWS CDK CLI (`cdk`) is not on PATH; install it with: {CDK_INSTALL_HINT}", err=True)
        sys.exit(EXIT_USAGE)
    identity = caller_identity(profile, model.dr_region)
    click.echo(f"deploying plan '{model.name}' to account {identity.get('Account')} as {identity.get('Arn')}", err=True)
    with tempfile.TemporaryDirectory(prefix="pilotlight-cdk-") as tmp:
        out = Path(tmp) / "cdk.out"
        _synthesize(model, out)
        cmd = [cdk, "deploy", "--app", str(out), "--all", "--require-approval", require_approval]
        if profile:
            cmd += ["--profile", profile]
        code = subprocess.call(cmd)
    if code != 0:
        click.echo(f"error: cdk deploy failed (exit {code})", err=True)
        sys.exit(EXIT_FAILED)
