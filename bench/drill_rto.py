"""Modeled drill RTO beside the failover's, on the reference estate, and what a drill costs in time.

Both run in the sandbox with the p50 latency model, from the same seeded and replicated estate,
on the virtual clock (every modeled figure is the same on every run):

- **failover**: the deployed failover state machine; RTO = start to "Service restored".
- **drill**: the deployed drill state machine, hardening skipped (``--no-harden``) and with it; RTO =
  start to "Service restored" on the copies. A drill also copies the DR replica before promoting it
  (a same-region read replica of it), which a failover does not: the copy is on the drill's critical
  path, so the drill's RTO is the failover's plus about the copy's time. The bench prints the copy's
  share, and the drill's RTO less the copy, which is what the drill measures of the failover path.
- **teardown**: start to end of the teardown EventBridge starts when the drill ends.

Wall seconds are medians over ``--runs`` (this machine is shared; modeled figures do not vary).

    .venv/bin/python bench/drill_rto.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from commands.drill import drill_input, sandbox_drill  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from workflows import drill_audit  # noqa: E402
from workflows.executions import fmt_duration, follow  # noqa: E402
from workflows.plan import load_plan  # noqa: E402


def one_run(plan_path: Path) -> dict[str, Any]:
    plan = load_plan(plan_path)
    out: dict[str, Any] = {}
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        for harden in (False, True):
            started = time.monotonic()
            result, drill, teardown = sandbox_drill(sb, plan, drill_input("bench", keep=False, harden=harden,
                                                                          force=False), None)
            if result.status != "SUCCEEDED" or teardown is None or teardown.status != "SUCCEEDED":
                raise SystemExit(f"drill {result.status} {result.error}: {result.cause}; teardown "
                                 f"{teardown and teardown.status}")
            figures = drill_audit.figures(plan, result)
            out["drill_harden" if harden else "drill"] = {
                "rto": result.restored_at, "copy": figures["rto"]["copy_seconds"], "duration": result.duration,
                "teardown": teardown.duration, "left": len(drill_audit.leftovers(plan, drill)),
                "wall": time.monotonic() - started}
        sb.simulate_disaster(plan)
        started = time.monotonic()
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        failover = follow(sfn, sb.start(plan, "failover", {"source": "bench", "approved_by": "bench"}),
                          poll_seconds=0.02)
        if failover.status != "SUCCEEDED":
            raise SystemExit(f"failover {failover.status}: {failover.cause}")
        out["failover"] = {"rto": failover.restored_at, "duration": failover.duration,
                           "wall": time.monotonic() - started}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plan", type=Path, default=ROOT / "examples" / "reference.yaml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    runs = [one_run(args.plan) for _ in range(args.runs)]
    med = {kind: {k: statistics.median(r[kind][k] for r in runs) for k in runs[0][kind]} for kind in runs[0]}
    failover, drill, harden = med["failover"], med["drill"], med["drill_harden"]
    figures = {
        "runs": args.runs,
        "failover_rto_seconds": failover["rto"],
        "drill_rto_seconds": drill["rto"],
        "drill_copy_seconds": drill["copy"],
        "drill_rto_less_copy_seconds": drill["rto"] - drill["copy"],
        "ratio_drill_to_failover_rto": round(drill["rto"] / failover["rto"], 3),
        "ratio_drill_less_copy_to_failover_rto": round((drill["rto"] - drill["copy"]) / failover["rto"], 3),
        "drill_duration_seconds": drill["duration"],
        "drill_hardened_duration_seconds": harden["duration"],
        "failover_hardened_duration_seconds": failover["duration"],
        "teardown_seconds": drill["teardown"],
        "left_after_teardown": max(drill["left"], harden["left"]),
        "wall_seconds_median": {"drill": round(drill["wall"], 1), "drill_harden": round(harden["wall"], 1),
                                "failover": round(failover["wall"], 1)},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"reference estate, p50 latency, modeled time; wall medians of {args.runs} run(s)")
    print(f"failover RTO               {fmt_duration(failover['rto']):>9}")
    print(f"drill RTO (--no-harden)    {fmt_duration(drill['rto']):>9}   ratio to failover "
          f"{figures['ratio_drill_to_failover_rto']:.2f}")
    print(f"  of which copying         {fmt_duration(drill['copy']):>9}")
    print(f"  less the copy            {fmt_duration(drill['rto'] - drill['copy']):>9}   ratio to failover "
          f"{figures['ratio_drill_less_copy_to_failover_rto']:.2f}")
    print(f"drill end to end           {fmt_duration(drill['duration']):>9}   hardened "
          f"{fmt_duration(harden['duration'])} (failover hardened {fmt_duration(failover['duration'])})")
    print(f"teardown                   {fmt_duration(drill['teardown']):>9}   drill resources left: "
          f"{figures['left_after_teardown']}")
    print(f"wall seconds (median)      drill {drill['wall']:.1f}, hardened drill {harden['wall']:.1f}, "
          f"failover {failover['wall']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
