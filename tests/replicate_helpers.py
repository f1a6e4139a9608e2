"""Running the replicate state machine in the sandbox, as the functional tests do."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import boto3

from sandbox import Sandbox, clock
from workflows.plan import Plan


def run(sb: Sandbox, plan: Plan, timeout: float = 60.0) -> dict[str, Any]:
    """Start the replicate workflow and poll describe_execution until it ends; its output document."""
    arn = sb.start(plan, "replicate", {"source": "test"})
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    deadline = time.monotonic() + timeout
    while (d := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "replicate did not finish in time"
        time.sleep(0.05)
    assert d["status"] == "SUCCEEDED", (d.get("error"), d.get("cause"))
    return json.loads(d["output"])


def dr_copies(plan: Plan, environment: str) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    return ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "tag:pilotlight:plan", "Values": [plan.name]},
        {"Name": "tag:pilotlight:environment", "Values": [environment]},
        {"Name": "tag:pilotlight:role", "Values": ["copy"]},
    ])["Images"]


def old_copies(sb: Sandbox, plan: Plan, env_name: str, count: int) -> list[str]:
    """Copies a previous run would have left, days old by their created-at tag."""
    enabled, sb.latency.enabled = sb.latency.enabled, False  # left behind by earlier runs: no modeled time
    ec2 = boto3.client("ec2", region_name=plan.dr_region)
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ids = []
    for age in range(count):
        image = ec2.create_image(InstanceId=instance, Name=f"old-copy-{age}")["ImageId"]
        stamp = (clock.datetime_now() - dt.timedelta(days=age + 1)).isoformat(timespec="seconds")
        ec2.create_tags(Resources=[image], Tags=[
            {"Key": "pilotlight:plan", "Value": plan.name}, {"Key": "pilotlight:environment", "Value": env_name},
            {"Key": "pilotlight:role", "Value": "copy"}, {"Key": "pilotlight:source-ami", "Value": f"ami-old{age}"},
            {"Key": "pilotlight:created-at", "Value": stamp}])
        ids.append(image)
    sb.latency.enabled = enabled
    return ids
