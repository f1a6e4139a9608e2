"""Benchmark: one readiness run per plan size, in the sandbox; prints figures, not pass/fail.

For plans with 1, 10, 50 and 200 resources (a quarter environments, a quarter databases, the rest
bucket pairs) and for the reference plan: seed the primary estate, deploy, replicate once, then
run readiness a few times and print per size:

- wall time of one readiness run (median),
- AWS API calls the checks make per check (and per resource), counted with a
  ``before-parameter-build`` hook on the default session's event system (emitted for every call,
  including those the sandbox's adapters answer in ``before-call``); the sandbox's own Lambda
  invokes and this script's polling of Step Functions are not counted,
- Step Functions state transitions per run (StateEntered events of the execution history),
- the monthly cost of running readiness every 30 minutes at the published prices below.

Targets (issue P4): at most 2 API calls per check on average, transitions growing linearly with
the plan, under $2 per plan per month for the reference plan. A missed target is printed as such.

Run: ``.venv/bin/python bench/readiness.py`` (or ``make bench``).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402
from workflows.executions import _history, transitions  # noqa: E402
from workflows.plan import Plan, load_plan, parse_plan  # noqa: E402
from workflows.readiness import items as readiness_items  # noqa: E402

SIZES = (1, 10, 50, 200)
RUNS = 3
RUNS_PER_MONTH = 2 * 24 * 30  # every 30 minutes, 30-day month

# Published prices, us-east-1 / us-west-2, USD (checked against the pages below; AWS changes them rarely).
# https://aws.amazon.com/step-functions/pricing/  Standard workflows: $0.025 per 1,000 state transitions
SFN_PER_TRANSITION = 0.025 / 1000
# https://aws.amazon.com/lambda/pricing/  $0.20 per 1M requests; $0.0000166667 per GB-second (x86)
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667
LAMBDA_MEMORY_GB = 256 / 1024  # infra/stacks.py memory_size
# Lambda duration is not measurable in-process; assumed: 50 ms start-up plus 60 ms per AWS call.
LAMBDA_MS_BASE, LAMBDA_MS_PER_CALL = 50, 60
# https://aws.amazon.com/cloudwatch/pricing/  custom metrics $0.30 per metric-month (first 10,000);
# API requests (PutMetricData, GetMetricStatistics) $0.01 per 1,000 requests / metrics requested
CW_PER_METRIC_MONTH = 0.30
CW_PER_API_REQUEST = 0.01 / 1000
# https://aws.amazon.com/s3/pricing/  S3 Standard: LIST $0.005 per 1,000; GET, HEAD and others $0.0004 per 1,000
S3_LIST = 0.005 / 1000
S3_GET = 0.0004 / 1000
# https://aws.amazon.com/sns/pricing/  $0.50 per 1M publishes (only on a status change: not counted per run)
# https://aws.amazon.com/systems-manager/pricing/  Parameter Store standard parameters and standard
# throughput: no charge. EC2/RDS/Beanstalk Describe*, Route 53 ListResourceRecordSets, Service Quotas and
# Step Functions DescribeStateMachine: no charge.
METRICS_PER_PLAN = 4  # ReadinessScore, ReplicaLagSeconds, AmiAgeHours, NotReadyChecks (dimension Plan)

TARGET_CALLS_PER_CHECK = 2.0
TARGET_MONTHLY_USD = 2.0
REPORT_OPERATIONS = {"PutMetricData", "GetParameter", "PutParameter", "Publish"}
# Orchestration and this script's polling: the Lambda invokes of the interpreter, Start/DescribeExecution,
# GetExecutionHistory. The failover check's DescribeStateMachine is a check call and is counted.
NOT_COUNTED = {"lambda", "sts"}
COUNTED_STEPFUNCTIONS = {"DescribeStateMachine"}


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[(model.service_model.service_name, model.name)] += 1

    def reset(self) -> Counter[tuple[str, str]]:
        with self._lock:
            out, self.calls = self.calls, Counter()
        return out


def synthetic_plan(size: int) -> Plan:
    """A valid plan with ``size`` resources: a quarter environments, a quarter databases, the rest buckets."""
    envs, dbs = size // 4, size // 4
    buckets = size - envs - dbs
    data: dict[str, Any] = {
        "name": f"bench{size}", "primary_region": "us-east-1", "dr_region": "us-west-2",
        "objectives": {"rto_minutes": 15, "rpo_minutes": 5},
        "environments": [{
            "name": f"app{i}-prod", "application": f"app{i}", "dr_environment_name": f"app{i}-dr",
            "dr_network": {"vpc_id": "vpc-0d1a2b3c4d5e6f701", "subnets": ["subnet-0d1a2b3c4d5e6f711"],
                           "security_groups": ["sg-0d1a2b3c4d5e6f731"], "key_name": "bench-dr"},
        } for i in range(envs)],
        "databases": [{"identifier": f"db{i}", "dr_replica_identifier": f"db{i}-dr",
                       "dr_network": {"subnet_group": f"bench{size}-db-dr",
                                      "security_groups": ["sg-0d1a2b3c4d5e6f741"]},
                       "replica_instance_class": "db.t3.medium", "failover_instance_class": "db.r6g.large"}
                      for i in range(dbs)],
        "buckets": [{"source": f"bench{size}-b{i}-use1", "destination": f"bench{size}-b{i}-usw2"}
                    for i in range(buckets)],
    }
    if envs:
        data["dns"] = {"hosted_zone_id": f"Z0BENCH{size}", "record_name": f"app.bench{size}.example.com"}
    return parse_plan(data, f"<bench {size}>")


def wait(sfn: Any, arn: str, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (d := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(arn)
        time.sleep(0.02)
    return d


def measure(plan: Plan, label: str, resources: int) -> dict[str, Any]:
    counter = CallCounter()
    with Sandbox(latency="none") as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        replicated = wait(sfn, sb.start(plan, "replicate", {"source": "bench"}))
        if replicated["status"] != "SUCCEEDED":
            raise RuntimeError(f"replicate {replicated['status']}: {replicated.get('cause')}")
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", counter, unique_id="bench-call-counter")
        walls, calls, steps, outputs = [], [], [], []
        for _ in range(RUNS):
            counter.reset()
            started = time.monotonic()
            arn = sb.start(plan, "readiness", {"source": "bench"})
            done = wait(sfn, arn)
            walls.append(time.monotonic() - started)
            calls.append(counter.reset())
            if done["status"] != "SUCCEEDED":
                raise RuntimeError(f"readiness {done['status']}: {done.get('cause')}")
            outputs.append(json.loads(done["output"]))
            steps.append(transitions(_history(sfn, arn)))
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", unique_id="bench-call-counter")
    run_calls = calls[-1]
    counted = {k: v for k, v in run_calls.items()
               if k[0] not in NOT_COUNTED and (k[0] != "stepfunctions" or k[1] in COUNTED_STEPFUNCTIONS)}
    check_calls = sum(v for (svc, op), v in counted.items() if op not in REPORT_OPERATIONS)
    report_calls = sum(v for (svc, op), v in counted.items() if op in REPORT_OPERATIONS)
    out = outputs[-1]
    tasks = len(readiness_items(plan)) + 1
    return {
        "label": label, "resources": resources, "items": tasks - 1, "checks": out["total"],
        "status": out["status"], "wall": statistics.median(walls), "transitions": steps[-1],
        "check_calls": check_calls, "report_calls": report_calls, "by_op": counted, "tasks": tasks,
        "cost": monthly_cost(steps[-1], tasks, check_calls + report_calls, counted),
    }


def monthly_cost(
    transitions_per_run: int, tasks: int, calls: int, by_op: dict[tuple[str, str], int]
) -> dict[str, float]:
    lambda_seconds = (tasks * LAMBDA_MS_BASE + calls * LAMBDA_MS_PER_CALL) / 1000
    cw_requests = sum(v for (svc, _), v in by_op.items() if svc == "cloudwatch")
    s3_list = sum(v for (svc, op), v in by_op.items() if svc == "s3" and op.startswith("List"))
    s3_get = sum(v for (svc, op), v in by_op.items() if svc == "s3" and not op.startswith("List"))
    per_run = {
        "step_functions": transitions_per_run * SFN_PER_TRANSITION,
        "lambda": tasks * LAMBDA_PER_REQUEST + lambda_seconds * LAMBDA_MEMORY_GB * LAMBDA_PER_GB_SECOND,
        "cloudwatch_api": cw_requests * CW_PER_API_REQUEST,
        "s3_requests": s3_list * S3_LIST + s3_get * S3_GET,
    }
    cost = {k: v * RUNS_PER_MONTH for k, v in per_run.items()}
    cost["cloudwatch_metrics"] = METRICS_PER_PLAN * CW_PER_METRIC_MONTH
    cost["total"] = sum(cost.values())
    return cost


def main() -> int:
    rows = [measure(synthetic_plan(n), f"{n} resources", n) for n in SIZES]
    reference = load_plan(ROOT / "examples" / "reference.yaml")
    ref_resources = len(reference.environments) + len(reference.databases) + len(reference.buckets)
    rows.append(measure(reference, "reference plan", ref_resources))

    print(f"readiness benchmark: sandbox (moto), {RUNS} runs per size, wall = median; cost = every 30 min "
          f"({RUNS_PER_MONTH} runs/month), Step Functions STANDARD")
    header = (f"{'plan':<16}{'items':>6}{'checks':>7}{'status':>10}{'wall s':>8}{'calls/check':>12}"
              f"{'calls/resource':>15}{'report calls':>13}{'transitions':>12}{'$/month':>9}")
    print(header)
    for r in rows:
        print(f"{r['label']:<16}{r['items']:>6}{r['checks']:>7}{r['status']:>10}{r['wall']:>8.2f}"
              f"{r['check_calls'] / r['checks']:>12.2f}{r['check_calls'] / r['resources']:>15.2f}"
              f"{r['report_calls']:>13}{r['transitions']:>12}{r['cost']['total']:>9.2f}")
    print()
    ref = rows[-1]
    print("monthly cost of the reference plan: " + ", ".join(
        f"{k} ${v:.3f}" for k, v in ref["cost"].items() if k != "total") + f" = ${ref['cost']['total']:.2f}")
    print("API calls of one reference run: " + ", ".join(
        f"{svc}.{op} {n}" for (svc, op), n in sorted(ref["by_op"].items())))
    print()
    missed = []
    worst = max(r["check_calls"] / r["checks"] for r in rows)
    average = sum(r["check_calls"] for r in rows) / sum(r["checks"] for r in rows)
    print(f"target calls/check <= {TARGET_CALLS_PER_CHECK:g} on average: {average:.2f} over all runs "
          f"(worst size {worst:.2f})")
    if average > TARGET_CALLS_PER_CHECK:
        missed.append(f"API calls per check average {average:.2f} > {TARGET_CALLS_PER_CHECK:g}")
    linear = all(r["transitions"] == r["items"] + 3 for r in rows)
    print(f"target transitions linear in the plan: transitions = items + 3 for every size: {linear}")
    if not linear:
        missed.append("transitions are not items + 3")
    print(f"target reference plan under ${TARGET_MONTHLY_USD:g}/month: ${ref['cost']['total']:.2f}")
    if ref["cost"]["total"] >= TARGET_MONTHLY_USD:
        missed.append(f"reference plan costs ${ref['cost']['total']:.2f}/month")
    print("TARGETS MISSED: " + "; ".join(missed) if missed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
