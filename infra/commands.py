"""``pilotlight synth`` and ``pilotlight deploy``: click commands the CLI registers.

Exit codes follow the CLI's: 0 ok, 1 failed, 2 usage, 3 invalid plan, 4 precondition not met (no AWS
credentials, the AWS CDK CLI or the infra extra not installed).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from commands.common import CommandError, Precondition, load

if TYPE_CHECKING:
    from workflows.plan import Plan

CDK_INSTALL_HINT = "npm install -g aws-cdk"


def _synthesize(plan: Plan, out_dir: Path):  # -> infra.app.Synthesized
    try:
        from infra import app
    except ImportError as exc:  # the infra extra is not installed
        raise Precondition(f"the CDK app needs the infra extra: pip install 'pilotlight[infra]' ({exc})") from exc
    result = app.synthesize(plan, out_dir)
    if result.errors:
        raise CommandError("synthesis failed:\n" + "\n".join(f"  {stack} {path}: {message}"
                                                              for stack, path, message in result.errors))
    return result


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("-o", "--out", "out_dir", default="cdk.out", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the cloud assembly (CloudFormation templates and the Lambda code asset).")
def synth(plan: str, out_dir: str) -> None:
    """Write the plan's CloudFormation templates, offline (no AWS credentials, no CDK CLI)."""
    model = load(plan)
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
        raise Precondition(
            f"no usable AWS credentials{f' for profile {profile}' if profile else ''}: {exc}. "
            "Configure them (aws configure, AWS_PROFILE, or --profile) and try again."
        ) from exc


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--profile", default=None, help="AWS profile to deploy with.")
@click.option("--require-approval", type=click.Choice(["never", "any-change", "broadening"]),
              default="broadening", show_default=True,
              help="Passed to `cdk deploy`: when to ask before deploying IAM or security-group changes.")
def deploy(plan: str, profile: str | None, require_approval: str) -> None:
    """Deploy the plan's stacks (DR region, and alarm forwarding) with the AWS CDK CLI."""
    model = load(plan)
    cdk = shutil.which("cdk")
    if cdk is None:
        raise Precondition(f"the AWS CDK CLI (`cdk`) is not on PATH; install it with: {CDK_INSTALL_HINT} "
                           "(it needs Node.js 18 or later)")
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
        raise CommandError(f"cdk deploy failed (exit {code})")
