"""Modeled RTO of the failover workflow against its physical floor and a plain sequential runbook.

Both run in the sandbox with the p50 latency model, from the same seeded and replicated estate,
on the sandbox's virtual clock: modeled time advances only when everything waits, so every figure
is the same on every run, on an idle or a loaded machine.

- **pilotlight failover**: the deployed failover state machine. RTO = execution start to the
  "Service restored" step (environment Green, database writable, DNS on the DR target).
- **sequential runbook**: what a runbook does one step after another, built from the very same
  Lambda steps and poll loops: promote, launch the environment, resize, Multi-AZ, DNS. RTO =
  execution start to DNS INSYNC.
- **floor**: what AWS itself takes on the critical path, max(promote, launch) + DNS change, from
  the latency table; verification adds nothing when everything is up. Per step the bench prints the
  modeled duration, the operation's p50 and the overhead (ours: polling, Lambda invocations).

``--skew S`` makes every long-running operation take S modeled seconds more than its p50, so the
poll overhead shows when AWS does not finish on a round number (default: a run at 0 and one at 7 s).
Targets: RTO within 10% of the floor, at most 10 minutes, and at most 0.35 of the runbook's.

Then every example plan's failover (``bench/architectures_rto.py``): its modeled RTO and RPO against
its objectives and the ratio against the same steps run one after another (``--no-examples`` skips it).

    .venv/bin/python bench/failover_rto.py [--runs 3] [--skew 0 7] [--no-examples]
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

from sandbox import Sandbox, clock  # noqa: E402
from sandbox.latency import duration  # noqa: E402
from workflows import asl, failover  # noqa: E402
from workflows.executions import RESTORED_STEP, Follower, fmt_duration  # noqa: E402
from workflows.plan import Plan, load_plan  # noqa: E402

TARGET_MINUTES = 10.0
TARGET_RATIO = 0.35
TARGET_OVER_FLOOR = 0.10


def runbook_definition(plan: Plan) -> dict[str, Any]:
    """The sequential runbook for the plan's first database and environment, from the failover's own steps."""
    db, env = plan.rds_databases[0], plan.environments[0]
    region = {"region": plan.dr_region, "identifier": db.dr_replica_identifier}
    resize = {**region, "instance_class": db.failover_instance_class}
    launch = {"region": plan.dr_region, "plan": plan.name, "application": env.application, "environment": env.name,
              "dr_environment": env.dr_environment_name, "cname_prefix": env.cname_prefix}
    check_env = {"region": plan.dr_region, "application": env.application, "dr_environment": env.dr_environment_name}
    dns = {"zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name, "record_type": plan.dns.record_type}
    steps = [
        ("Promote", "Promote DR replica", "rds", ("promote_replica", region), ("check_promoted", region),
         failover.PROMOTE_FIRST, failover.PROMOTE_POLL, failover.PROMOTE_MAX),
        ("Launch", "Launch DR environment", "beanstalk", ("launch_environment", launch),
         ("check_environment", check_env), failover.LAUNCH_FIRST, failover.LAUNCH_POLL, failover.LAUNCH_MAX),
        ("Resize", "Resize to failover class", "rds", ("resize", resize), ("check_resized", resize),
         failover.RESIZE_FIRST, failover.RESIZE_POLL, failover.RESIZE_MAX),
        ("MultiAz", "Enable Multi-AZ", "rds", ("enable_multi_az", region), ("check_multi_az", region),
         failover.MULTI_AZ_FIRST, failover.MULTI_AZ_POLL, failover.MULTI_AZ_MAX),
        ("Dns", "Repoint DNS", "dns", ("upsert_record", {**dns, "ttl": plan.dns.ttl, "value": plan.dns_dr_target}),
         ("check_change", {"change_id.$": "$.poll.change_id"}), failover.DNS_FIRST, failover.DNS_POLL,
         failover.DNS_MAX),
    ]
    states: dict[str, Any] = {}
    for i, (name, label, service, act, check, first, interval, attempts) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else "Done"
        states.update(asl.poll_loop(name, label, service=service, act=act, check=check, interval_seconds=interval,
                                    first_wait_seconds=first, max_attempts=attempts, next_state=nxt, what=label))
    states["Done"] = {"Type": "Succeed", "Comment": "Done"}
    return asl.machine("sequential runbook (benchmark only)", "Promote", states, failover.MACHINE_TIMEOUT)


def _prepared(sb: Sandbox, plan: Plan) -> None:
    sb.seed(plan)
    sb.build_pilot_light(plan)
    sb.simulate_disaster(plan)


def _run_until(sb: Sandbox, plan: Plan, arn: str, restored_step: str | None) -> tuple[float, dict[str, float]]:
    """Modeled seconds from the start to ``restored_step`` (or to the end), and each step's duration.

    A failover is stopped once service is restored: hardening is not part of the RTO. Modeled time
    is held still while the bench looks, so the stop lands at the very moment service is restored.
    """
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    follower = Follower(sfn, arn)
    while True:
        with clock.hold():
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
        time.sleep(0.02)


def _durations(follower: Follower) -> dict[str, float]:
    return {name: step.duration for name, step in follower.steps.items() if step.duration is not None}


def measure(plan: Plan, skew: float) -> tuple[tuple[float, dict[str, float]], tuple[float, dict[str, float]]]:
    with Sandbox(latency="p50") as sb:
        _prepared(sb, plan)
        sb.latency.skew = skew
        arn = sb.start(plan, "failover", {"source": "bench", "approved_by": "bench"})
        pilotlight = _run_until(sb, plan, arn, RESTORED_STEP)
    with Sandbox(latency="p50") as sb:
        _prepared(sb, plan)
        sb.latency.skew = skew
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        text = asl.substitute(asl.dumps(runbook_definition(plan)), sb.substitutions(plan))
        role = f"arn:aws:iam::{sb.account_id}:role/pilotlight-{plan.name}-states"
        machine = sfn.create_state_machine(name=f"pilotlight-{plan.name}-runbook", definition=text,
                                           roleArn=role)["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({}))["executionArn"]
        runbook = _run_until(sb, plan, arn, None)
    return pilotlight, runbook


def aws_seconds(plan: Plan, skew: float = 0.0) -> dict[str, float]:
    """What AWS itself takes per critical-path step (the latency table's p50, plus the skew)."""
    dns = duration("cloudwatch.alarm_evaluation") if plan.health_check_cutover else duration("route53.change") + skew
    return {
        "Promote DR replica": duration("rds.promote") + skew,
        "Launch DR environment": duration("beanstalk.create_environment") + skew,
        "Repoint DNS": dns,
        "Verify service": 0.0,
    }


def floor_seconds(plan: Plan, skew: float = 0.0) -> float:
    aws = aws_seconds(plan, skew)
    restore = max(aws["Promote DR replica"] if plan.rds_databases else 0.0,
                  aws["Launch DR environment"] if plan.environments else 0.0)
    return restore + (aws["Repoint DNS"] if plan.dns else 0.0)


def step_table(plan: Plan, steps: dict[str, float], skew: float) -> list[str]:
    aws = aws_seconds(plan, skew)
    lines = [f"    {'step':<24} {'modeled':>8} {'AWS p50':>8} {'overhead':>9}"]
    for name in ("Guard rails", "Promote DR replica", "Launch DR environment", "Restore", "Repoint DNS",
                 "Verify service"):
        if name not in steps:
            continue
        took = steps[name]
        base = aws.get(name, floor_seconds(plan, skew) - aws["Repoint DNS"] if name == "Restore" else 0.0)
        lines.append(f"    {name:<24} {took:>7.1f}s {base:>7.1f}s {took - base:>+8.1f}s")
    return lines


def main() -> int:
    # moto's interpreter logs the stopped executions with their whole parse tree; the figures are what matters here.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=str(ROOT / "examples" / "reference.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skew", type=float, nargs="+", default=[0.0, 7.0],
                        help="modeled seconds every long operation takes beyond its p50 (one set of runs each)")
    parser.add_argument("--no-examples", action="store_true", help="skip the table of every example plan")
    args = parser.parse_args()
    plan = load_plan(args.plan)
    ok = True
    for skew in args.skew:
        ours, theirs, walls = [], [], []
        for i in range(args.runs):
            started = time.monotonic()
            (a, a_steps), (b, b_steps) = measure(plan, skew)
            walls.append(time.monotonic() - started)
            ours.append(a)
            theirs.append(b)
            print(f"skew {skew:g} s, run {i + 1}: pilotlight {a:.1f} s ({fmt_duration(a)})  runbook {b:.1f} s "
                  f"({fmt_duration(b)})  ratio {a / b:.3f}  wall {walls[-1]:.1f} s", flush=True)
            if i == 0:
                print("\n".join(step_table(plan, a_steps, skew)), flush=True)
        a, b = statistics.median(ours), statistics.median(theirs)
        floor = floor_seconds(plan, skew)
        same = len(set(ours)) == 1 and len(set(theirs)) == 1
        over = a / floor - 1
        print(f"\nplan {plan.name}, p50 latency model, skew {skew:g} s, {args.runs} run(s):")
        print(f"  identical modeled figures on every run: {'yes' if same else 'NO'} "
              f"(pilotlight {sorted(set(ours))}, runbook {sorted(set(theirs))})")
        print(f"  floor (max(promote, launch) + DNS, AWS's own time): {floor:.1f} s ({fmt_duration(floor)})")
        print(f"  pilotlight failover, start to verified service: {a:.1f} s ({fmt_duration(a)}, {a / 60:.2f} min), "
              f"{over:+.1%} over the floor")
        print(f"  sequential runbook (promote, launch, resize, Multi-AZ, DNS): {b:.1f} s ({fmt_duration(b)})")
        print(f"  ratio to the runbook: {a / b:.3f}; wall per run (median): {statistics.median(walls):.1f} s")
        checks = {f"within {TARGET_OVER_FLOOR:.0%} of the floor": over <= TARGET_OVER_FLOOR,
                  f"RTO <= {TARGET_MINUTES:g} min": a / 60 <= TARGET_MINUTES,
                  f"ratio <= {TARGET_RATIO}": a / b <= TARGET_RATIO, "deterministic": same}
        print("  targets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()) + "\n")
        ok = ok and all(checks.values())
    if not args.no_examples:
        import architectures_rto

        print("every example plan (bench/architectures_rto.py):", flush=True)
        ok = architectures_rto.table(list(architectures_rto.EXAMPLES)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
