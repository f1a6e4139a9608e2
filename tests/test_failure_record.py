"""A workflow that fails ends with a named error whose cause records the failed step and the state of what it
acts on, and the plan's topic hears it; replicate's failed records reach the topic though the run succeeds."""

from __future__ import annotations

import json

import boto3

from sandbox import clock
from tests.conftest import outage, run_workflow


def _queue(sb, plan) -> str:
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    url = sqs.create_queue(QueueName=f"{plan.name}-records")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=plan.dr_region).subscribe(
        TopicArn=sb.topic_arn(plan), Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def _messages(plan, url: str, wanted) -> list[dict]:
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    seen: list[dict] = []

    def read() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            seen.append(json.loads(message["Body"]))
        return any(wanted(m) for m in seen)

    clock.wait_until(read, timeout=120, step=1, what="a message on the plan's topic")
    return seen


def test_a_failed_failover_records_the_step_its_cause_and_each_resource_then_notifies(sandbox, reference_plan):
    plan = reference_plan
    outage(sandbox, plan)
    url = _queue(sandbox, plan)
    sandbox.inject("elasticbeanstalk:CreateEnvironment:AccessDenied:x100")

    result = run_workflow(sandbox, plan, "failover")

    assert (result.status, result.error) == ("FAILED", "AccessDenied")
    assert result.failed_step == "Launch DR environment"
    lines = result.cause.splitlines()
    assert lines[0].startswith("failover of plan shop failed at LaunchEnvironment: AccessDenied: ")
    assert "injected by the sandbox" in lines[0]
    db, env, record = plan.databases[0], plan.environments[0], plan.dns
    assert any(line.startswith(f"- database {db.dr_replica_identifier} ({plan.dr_region}): ") for line in lines)
    assert f"- environment {env.dr_environment_name} ({plan.dr_region}): absent" in lines
    assert any(line.startswith(f"- record {record.record_name}: present") and plan.dns_primary_target in line
               for line in lines)
    notices = _messages(plan, url, lambda m: m.get("status") == "FAILED")
    (notice,) = [m for m in notices if m.get("status") == "FAILED"]
    assert notice["error"] == "AccessDenied" and notice["cause"] == result.cause


def test_replicate_with_a_failed_branch_tells_the_topic_which_resource_and_why(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    url = _queue(sandbox, plan)
    sandbox.inject("rds:CreateDBInstanceReadReplica:AccessDenied:x100")

    result = sandbox.run_replicate(plan)

    assert result.status == "SUCCEEDED" and result.output["ok"] is False
    (failed,) = result.output["failed"]
    assert failed["error"] == "AccessDenied" and result.output["notified"] == sandbox.topic_arn(plan)
    messages = _messages(plan, url, lambda m: m.get("workflow") == "replicate")
    (notice,) = [m for m in messages if m.get("workflow") == "replicate"]
    assert notice["failed"] == result.output["failed"] and "AccessDenied" in notice["text"]
