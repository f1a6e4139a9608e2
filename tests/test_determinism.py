"""Modeled time does not depend on the machine: the same failover gives the same timeline under load."""

from __future__ import annotations

import subprocess
import sys

import boto3

from sandbox import Sandbox
from workflows.executions import follow
from workflows.plan import Plan


def _failover_timeline(plan: Plan) -> dict:
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        sb.simulate_disaster(plan)
        arn = sb.start(plan, "failover", {"source": "pilotlight failover", "approved_by": "test"})
        result = follow(boto3.client("stepfunctions", region_name=plan.dr_region), arn, poll_seconds=0.05,
                        timeout_seconds=300)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return {
        "rto": round(result.restored_at or 0, 3),
        "duration": round(result.duration or 0, 3),
        "steps": [(s.name, round(s.start, 3), round(s.duration or 0, 3)) for s in result.steps],
    }


def test_failover_timeline_is_identical_with_the_cpu_busy(reference_plan):
    quiet = _failover_timeline(reference_plan)
    # Two processes spinning on the two cores for the whole second run.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = _failover_timeline(reference_plan)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert loaded == quiet
    assert quiet["rto"] is not None and quiet["rto"] > 0
