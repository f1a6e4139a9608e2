"""Modeled RTO of the failover workflow against a plain sequential runbook, on the same estate.

Both run in the sandbox with the p50 latency model, from the same seeded and replicated estate:

- **pilotlight failover**: the deployed failover state machine. RTO = execution start to the
  "Service restored" step (environment Green, database writable, DNS on the DR target).
- **sequential runbook**: what a runbook does one step after another, built from the very same
  Lambda steps and poll loops: promote, launch the environment, resize, Multi-AZ, DNS. RTO =
  execution start to DNS INSYNC.

Each pair runs ``--runs`` times (fresh sandbox per run); medians and their ratio are printed.
Targets: RTO to restored service at most 10 minutes, and at most 0.35 of the runbook's.

    .venv/bin/python bench/failover_rto.py [--runs 3] [--scale 120]
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

from sandbox import Sandbox  # noqa: E402
from workflows import asl, failover  # noqa: E402
from workflows.executions import RESTORED_STEP, Follower, fmt_duration  # noqa: E402
from workflows.plan import Plan, load_plan  # noqa: E402

TARGET_MINUTES = 10.0
TARGET_RATIO = 0.35


def runbook_definition(plan: Plan) -> dict[str, Any]:
    """The sequential runbook for the plan's first database and environment, from the failover's own steps."""
    db, env = plan.databases[0], plan.environments[0]
    region = {"region": plan.dr_region, "identifier": db.dr_replica_identifier}
    resize = {**region, "instance_class": db.failover_instance_class}
    launch = {"region": plan.dr_region, "plan": plan.name, "application": env.application, "environment": env.name,
              "dr_environment": env.dr_environment_name, "cname_prefix": env.cname_prefix}
    check_env = {"region": plan.dr_region, "application": env.application, "dr_environment": env.dr_environment_name}
    dns = {"zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name, "record_type": plan.dns.record_type}
    steps = [
        ("Promote", "Promote DR replica", "rds", ("promote_replica", region), ("check_promoted", region),
         failover.PROMOTE_POLL, failover.PROMOTE_MAX),
        ("Launch", "Launch DR environment", "beanstalk", ("launch_environment", launch),
         ("check_environment", check_env), failover.LAUNCH_POLL, failover.LAUNCH_MAX),
        ("Resize", "Resize to failover class", "rds", ("resize", resize), ("check_resized", resize),
         failover.RESIZE_POLL, failover.RESIZE_MAX),
        ("MultiAz", "Enable Multi-AZ", "rds", ("enable_multi_az", region), ("check_multi_az", region),
         failover.MULTI_AZ_POLL, failover.MULTI_AZ_MAX),
        ("Dns", "Repoint DNS", "dns", ("upsert_record", {**dns, "ttl": plan.dns.ttl, "value": plan.dns_dr_target}),
         ("check_change", {"change_id.$": "$.poll.change_id"}), failover.DNS_POLL, failover.DNS_MAX),
    ]
    states: dict[str, Any] = {}
    for i, (name, label, service, act, check, interval, attempts) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else "Done"
        states.update(asl.poll_loop(name, label, service=service, act=act, check=check, interval_seconds=interval,
                                    max_attempts=attempts, next_state=nxt, what=label))
    states["Done"] = {"Type": "Succeed", "Comment": "Done"}
    return asl.machine("sequential runbook (benchmark only)", "Promote", states, failover.MACHINE_TIMEOUT)


def _prepared(sb: Sandbox, plan: Plan) -> None:
    sb.seed(plan)
    sb.build_pilot_light(plan, scale=sb.scale * 10)
    sb.simulate_disaster(plan)


def _run_until(sb: Sandbox, plan: Plan, arn: str, restored_step: str | None) -> tuple[float, dict[str, float]]:
    """Modeled seconds from the start to ``restored_step`` (or to the end), and each step's duration.

    A failover is stopped once service is restored: hardening is not part of the RTO.
    """
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    follower = Follower(sfn, arn, sb.scale)
    while True:
        follower.poll()
        described = sfn.describe_execution(executionArn=arn)
        if restored_step and restored_step in follower.steps:
            sfn.stop_execution(executionArn=arn, cause="benchmark: service restored, hardening not measured")
            return follower.steps[restored_step].start, _durations(follower)
        if described["status"] != "RUNNING":
            follower.poll()
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"{arn}: {described['status']} {described.get('error')} {described.get('cause')}")
            return follower._modeled(described["stopDate"]), _durations(follower)
        time.sleep(0.05)


def _durations(follower: Follower) -> dict[str, float]:
    return {name: step.duration for name, step in follower.steps.items() if step.duration is not None}


def measure(plan: Plan, scale: float) -> tuple[tuple[float, dict[str, float]], tuple[float, dict[str, float]]]:
    with Sandbox(scale=scale, latency="p50") as sb:
        _prepared(sb, plan)
        arn = sb.start(plan, "failover", {"source": "bench", "approved_by": "bench"})
        pilotlight = _run_until(sb, plan, arn, RESTORED_STEP)
    with Sandbox(scale=scale, latency="p50") as sb:
        _prepared(sb, plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        text = asl.substitute(asl.dumps(runbook_definition(plan)), sb.substitutions(plan))
        role = f"arn:aws:iam::{sb.account_id}:role/pilotlight-{plan.name}-states"
        machine = sfn.create_state_machine(name=f"pilotlight-{plan.name}-runbook", definition=text,
                                           roleArn=role)["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({}))["executionArn"]
        runbook = _run_until(sb, plan, arn, None)
    return pilotlight, runbook


def main() -> int:
    # moto's interpreter logs the stopped executions with their whole parse tree; the figures are what matters here.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=str(ROOT / "examples" / "reference.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=120.0, help="modeled seconds per wall second")
    args = parser.parse_args()
    plan = load_plan(args.plan)
    ours, theirs = [], []
    for i in range(args.runs):
        (a, a_steps), (b, b_steps) = measure(plan, args.scale)
        ours.append(a)
        theirs.append(b)
        print(f"run {i + 1}: pilotlight {fmt_duration(a)}  runbook {fmt_duration(b)}  ratio {a / b:.2f}", flush=True)
        for label, steps in (("pilotlight", a_steps), ("runbook", b_steps)):
            shown = [f"{name} {fmt_duration(d)}" for name, d in steps.items() if d >= 30]
            print(f"    {label:<10} " + ", ".join(shown), flush=True)
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    print(f"\nplan {plan.name}, p50 latency model, time scale {args.scale:g}x, {args.runs} run(s), medians:")
    print(f"  pilotlight failover, start to verified service: {fmt_duration(a)} ({a / 60:.1f} min)")
    print(f"  sequential runbook (promote, launch, resize, Multi-AZ, DNS): {fmt_duration(b)} ({b / 60:.1f} min)")
    print(f"  ratio: {ratio:.2f}")
    ok_rto, ok_ratio = a / 60 <= TARGET_MINUTES, ratio <= TARGET_RATIO
    print(f"  target RTO <= {TARGET_MINUTES:g} min: {'met' if ok_rto else 'MISSED'}; "
          f"target ratio <= {TARGET_RATIO}: {'met' if ok_ratio else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
