"""The failback of the reference estate in the sandbox: how long each phase takes (modeled), the downtime of the
switch back against the failover's RTO, and the wall time of a whole rehearsal.

One sandbox per run: the pilot light built by replicate, an outage and the failover, writes on the DR site
(rows in each DR database, objects in each DR bucket), the primary back, the failback started with its approval.
Phases are read from the failback's timeline (modeled seconds on the virtual clock, the same on every run):

- **re-protect**: the stale primary renamed, the reverse replica made and within the RPO, the primary environment
  Ready, the DR buckets replicating back;
- **downtime**: writes stopped (the approval) to verified service on the primary (drain, promotion, data check,
  DNS back, verification);
- **re-arm**: the DR site back to a pilot light (replicate run to its end) and the retired DR database deleted.

Wall seconds are medians over ``--runs`` (this machine is shared; modeled figures do not vary).

    .venv/bin/python bench/failback.py [--runs 3]
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

from commands.failback import write_during_outage  # noqa: E402
from reports.failback import figures  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from workflows.executions import fmt_duration, follow  # noqa: E402
from workflows.plan import load_plan  # noqa: E402

PHASES = {"re-protect": ("Re-protect",), "re-arm": ("Re-arm pilot light", "Delete retired DR database")}


def one_run(plan_path: Path) -> dict[str, Any]:
    plan = load_plan(plan_path)
    started = time.monotonic()
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        sb.simulate_disaster(plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        approved = {"source": "bench", "approved_by": "bench"}
        over = follow(sfn, sb.start(plan, "failover", approved), poll_seconds=0.05, timeout_seconds=600)
        write_during_outage(sb, plan)
        sb.recover(plan)
        back = follow(sfn, sb.start(plan, "failback", approved), poll_seconds=0.05, timeout_seconds=900)
    if over.status != "SUCCEEDED" or back.status != "SUCCEEDED":
        raise SystemExit(f"failover {over.status} / failback {back.status} {back.error}: {back.cause}")
    steps = {s.name: s for s in back.steps}
    phases = {}
    for phase, names in PHASES.items():
        found = [steps[n] for n in names if n in steps]
        phases[phase] = max(s.end or s.start for s in found) - min(s.start for s in found)
    figs = figures(plan, back.output)
    return {"failover_rto": over.restored_at, "failback_duration": back.duration, **phases,
            "downtime": figs["downtime"]["seconds"], "rpo": figs["rpo"]["seconds"],
            "data_check_ok": figs["data_check"]["ok"], "wall": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plan", type=Path, default=ROOT / "examples" / "reference.yaml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    runs = [one_run(args.plan) for _ in range(args.runs)]
    first = runs[0]
    out = {**{k: v for k, v in first.items() if k != "wall"},
           "downtime_over_failover_rto": round(first["downtime"] / first["failover_rto"], 2),
           "wall_median_seconds": round(statistics.median(r["wall"] for r in runs), 1), "runs": args.runs}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"plan {args.plan.name}, {args.runs} run(s); modeled figures (identical across runs):")
    print(f"  failover RTO            {fmt_duration(first['failover_rto'])}")
    print(f"  failback, start to end  {fmt_duration(first['failback_duration'])}")
    print(f"    re-protect            {fmt_duration(first['re-protect'])}")
    print(f"    downtime (switch)     {fmt_duration(first['downtime'])}  "
          f"({out['downtime_over_failover_rto']:.2f} x the failover's RTO)")
    print(f"    re-arm                {fmt_duration(first['re-arm'])}")
    verdict = "passed" if first["data_check_ok"] else "FAILED"
    print(f"  RPO of the switch back  {first['rpo']:g} s; data check {verdict}")
    print(f"wall seconds per rehearsal (median): {out['wall_median_seconds']}")


if __name__ == "__main__":
    main()
