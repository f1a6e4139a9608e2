"""Modeled RTO and RPO of every example plan's failover, against a sequential runbook of the same steps.

Each example is seeded, its pilot light (or standby region) built by replicate, its primary's alarms put
in ALARM, and the deployed failover run to the end in the sandbox with the p50 latency model. Modeled
time is a virtual clock, so every figure is the same on every run.

- **RTO**: execution start to the "Service restored" step (verified service in the DR region).
- **RPO**: the worst data-loss window of the plan's data tiers (reports.model.rpo_lags).
- **sequential runbook**: the same steps one after another, as a runbook does them: every step of every
  restore branch in turn, then the hardening (resize, Multi-AZ, readers) before DNS, then DNS and the
  verification; computed from this run's own modeled step durations (Guard rails and approval excluded).
  The ratio is the failover's RTO over that figure.

    .venv/bin/python bench/architectures_rto.py [--examples reference bookstore ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.model import rpo_lags  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from workflows.executions import Result, fmt_duration, follow  # noqa: E402
from workflows.plan import Plan, load_plan  # noqa: E402

EXAMPLES = ("reference", "fitness-global", "fastest-region", "bookstore", "ecommerce")
# Labels of containers (Map, Parallel) whose time is their children's: not counted twice.
CONTAINERS = {"Restore", "Harden", "Harden Aurora", "Load plan", "Guard rails", "Await approval", "Summary",
              "Service restored"}


def run(plan: Plan) -> tuple[Result, float]:
    started = time.monotonic()
    with Sandbox(latency="p50") as sb:
        sb.seed(plan)
        built = sb.build_pilot_light(plan)
        if not built.get("ok"):
            raise RuntimeError(f"{plan.name}: replicate did not build the pilot light: {built.get('counts')}")
        sb.simulate_disaster(plan)
        arn = sb.start(plan, "failover", {"source": "bench", "approved_by": "bench"})
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        result = follow(sfn, arn, poll_seconds=0.02, timeout_seconds=600)
    return result, time.monotonic() - started


def sequential_seconds(result: Result) -> float:
    """Every leaf step's modeled duration, one after another (a step seen in several Map items counts once
    per item: its span from first start to last end)."""
    spans: dict[str, tuple[float, float]] = {}
    for step in result.steps:
        if step.name in CONTAINERS or step.end is None:
            continue
        first, last = spans.get(step.name, (step.start, step.end))
        spans[step.name] = (min(first, step.start), max(last, step.end))
    return sum(end - start for start, end in spans.values())


def table(examples: list[str]) -> bool:
    """Print one line per example; whether every one met its objectives."""
    ok = True
    print(f"{'example':<16} {'topology':<14} {'RTO':>8} {'objective':>9} {'RPO':>8} {'objective':>9} "
          f"{'runbook':>8} {'ratio':>6} {'wall':>6}")
    for name in examples:
        plan = load_plan(ROOT / "examples" / f"{name}.yaml")
        result, wall = run(plan)
        if result.status != "SUCCEEDED" or result.restored_at is None:
            print(f"{name:<16} failover {result.status}: {result.error}: {result.cause}")
            ok = False
            continue
        rto = result.restored_at
        known = [v for v in rpo_lags("failover", result.output, result.events).values() if v is not None]
        rpo = max(known) if known else None
        runbook = sequential_seconds(result)
        met = rto <= plan.objectives.rto_minutes * 60 and (rpo is None or rpo <= plan.objectives.rpo_minutes * 60)
        ok = ok and met
        print(f"{name:<16} {plan.topology:<14} {fmt_duration(rto):>8} {plan.objectives.rto_minutes:>6} min "
              f"{'-' if rpo is None else f'{rpo:g} s':>8} {plan.objectives.rpo_minutes:>6} min "
              f"{fmt_duration(runbook):>8} {rto / runbook:>6.2f} {wall:>5.1f}s"
              + ("" if met else "  OBJECTIVE MISSED"), flush=True)
    return ok


def main() -> int:
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=list(EXAMPLES), choices=EXAMPLES)
    args = parser.parse_args()
    return 0 if table(args.examples) else 1


if __name__ == "__main__":
    sys.exit(main())
