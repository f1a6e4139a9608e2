"""Build and synthesize the CDK app of one plan, offline (no AWS credentials, no CDK CLI).

``synth(plan, out_dir)`` writes a cloud assembly (CloudFormation templates plus the Lambda code
asset) to ``out_dir`` and returns ``{stack name: template}``. cdk-nag's AWS Solutions checks run on
every synth; an unsuppressed finding is an error in the assembly (see :func:`nag_errors`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

import infra  # noqa: F401  (sets the jsii environment before aws_cdk loads)
from infra.stacks import AlarmForwarderStack, DrStack, code_staging, stage_lambda_code
from workflows.plan import Plan, load_plan
from workflows.triggers import forwarded_regions


@dataclass
class Synthesized:
    out_dir: Path
    templates: dict[str, dict[str, Any]]
    # (stack name, construct path, message) for every error annotation, cdk-nag findings included.
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)


def build(app: cdk.App, plan: Plan, code_dir: Path, builders: dict[str, str] | None = None) -> list[cdk.Stack]:
    """Add the plan's stacks to ``app`` (``builders``: rendered ASL to deploy instead of render_all)."""
    dr = DrStack(app, plan, code_dir=code_dir, builders=builders)
    stacks: list[cdk.Stack] = [dr]
    for region, names in forwarded_regions(plan).items():
        stacks.append(AlarmForwarderStack(app, plan, region, names))
    cdk.Tags.of(app).add("pilotlight:plan", plan.name)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stacks


def synthesize(plan: Plan, out_dir: str | Path, *, rendered: dict[str, str] | None = None) -> Synthesized:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with code_staging() as staging:
        code_dir = stage_lambda_code(Path(staging))
        app = cdk.App(outdir=str(out), analytics_reporting=False)
        stacks = build(app, plan, code_dir, rendered)
        assembly = app.synth()
    result = Synthesized(out_dir=out, templates={})
    for stack in stacks:
        artifact = assembly.get_stack_by_name(stack.stack_name)
        result.templates[stack.stack_name] = artifact.template
        for message in artifact.messages:
            entry = (stack.stack_name, message.id, str(message.entry.data))
            level = str(message.level).lower()
            if "error" in level:
                result.errors.append(entry)
            elif "warn" in level:
                result.warnings.append(entry)
    return result


def synth(plan: Plan, out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Synthesize the plan's stacks into ``out_dir``; returns ``{stack name: CloudFormation template}``."""
    return synthesize(plan, out_dir).templates


def nag_errors(result: Synthesized) -> list[tuple[str, str, str]]:
    return [e for e in result.errors if "AwsSolutions-" in e[2]]


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.app PLAN [OUT_DIR]`` (also usable as a CDK ``--app`` command)."""
    import os

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m infra.app PLAN [OUT_DIR]", file=sys.stderr)
        return 2
    out = args[1] if len(args) > 1 else os.environ.get("CDK_OUTDIR", "cdk.out")
    result = synthesize(load_plan(args[0]), out)
    for stack, path, message in result.errors:
        print(f"error: {stack} {path}: {message}", file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
