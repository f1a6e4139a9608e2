"""Every workflow of a plan, rendered to ASL JSON (the single source of truth)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflows import asl, drill, failback, failover, readiness, replicate
from workflows.plan import Plan

BUILDERS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "failover": failover.build,
    "replicate": replicate.build,
    "readiness": readiness.build,
    "drill": drill.build,
    "drill-teardown": drill.build_teardown,
    "failback": failback.build,
}


# Workflows a plan has only when they cover every tier of it (see each one's ``covers``).
OPTIONAL: dict[str, Callable[[Plan], bool]] = {"failback": failback.covers}


def workflows_of(plan: Plan) -> list[str]:
    """The workflows ``plan`` gets: every builder's, but an optional one only for a plan it covers."""
    return [name for name in BUILDERS if name not in OPTIONAL or OPTIONAL[name](plan)]


def render_all(plan: Plan) -> dict[str, str]:
    """Workflow name -> canonical ASL JSON text (with ``${...FunctionArn}`` placeholders)."""
    return {name: asl.dumps(BUILDERS[name](plan)) for name in workflows_of(plan)}


def state_machine_name(plan: Plan, workflow: str) -> str:
    return f"pilotlight-{plan.name}-{workflow}"


def function_name(plan: Plan, service: str) -> str:
    return f"pilotlight-{plan.name}-{service}"


def function_role_name(plan: Plan, service: str) -> str:
    """The IAM role of a function: named, so readiness can be granted policy simulation on exactly these."""
    return f"{function_name(plan, service)}-role"


def services_used(plan: Plan) -> set[str]:
    """The Lambda services (lambdas/<service>.py) the plan's workflows call."""
    return set().union(*(asl.services_called(json.loads(text)) for text in render_all(plan).values()))


def topic_name(plan: Plan) -> str:
    return f"pilotlight-{plan.name}-notifications"


def write(plan: Plan, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(plan).items():
        path = out / f"{name}.asl.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
