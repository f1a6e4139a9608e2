"""The sandbox itself: modeled time, Lambda hosting, latency model and adapters answer as AWS does."""

from __future__ import annotations

import dataclasses
import json
import time

import boto3
import botocore.session
import pytest

from sandbox import Sandbox


def _machine(sfn, definition):
    return sfn.create_state_machine(name=f"t{time.monotonic_ns()}", definition=json.dumps(definition),
                                    roleArn="arn:aws:iam::123456789012:role/t")["stateMachineArn"]


def _run(sfn, arn, payload="{}"):
    ex = sfn.start_execution(stateMachineArn=arn, name=f"e{time.monotonic_ns()}", input=payload)["executionArn"]
    while (d := sfn.describe_execution(executionArn=ex))["status"] == "RUNNING":
        time.sleep(0.02)
    return d


def test_wait_states_run_in_modeled_time():
    with Sandbox():
        sfn = boto3.client("stepfunctions", region_name="us-west-2")
        arn = _machine(sfn, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}})
        started = time.monotonic()
        described = _run(sfn, arn)
        wall = time.monotonic() - started
    assert described["status"] == "SUCCEEDED"
    # An hour of modeled time, to the second, in far less than an hour of wall time.
    assert (described["stopDate"] - described["startDate"]).total_seconds() == pytest.approx(3600, abs=0.01)
    assert wall < 60


def test_lambda_errors_surface_with_their_class_name():
    with Sandbox() as sb:
        sb.lambdas.register("pilotlight-t-rds", "rds")
        client = boto3.client("lambda", region_name="us-west-2")
        out = client.invoke(FunctionName="pilotlight-t-rds",
                            Payload=json.dumps({"action": "check_promoted", "region": "us-west-2",
                                                "identifier": "missing-db"}))
        assert out["FunctionError"] == "Unhandled"
        payload = json.loads(out["Payload"].read())
        assert payload["errorType"] == "ResourceNotFound"
        assert "missing-db does not exist" in payload["errorMessage"]


def test_a_function_whose_runtime_exits_fails_its_task_instead_of_hanging_the_execution(monkeypatch):
    """A handler that ends with a BaseException (SystemExit, a test's stand-in calling pytest.fail) is reported as
    the Lambda service reports a runtime that exited: the state machine's task fails, the execution ends."""
    from lambdas import rds

    def exits(**_):
        raise SystemExit("the runtime exited")

    action = rds.registry.actions["check_promoted"]
    monkeypatch.setitem(rds.registry.actions, "check_promoted", dataclasses.replace(action, func=exits))
    with Sandbox() as sb:
        sb.lambdas.register("pilotlight-t-rds", "rds")
        sfn = boto3.client("stepfunctions", region_name="us-west-2")
        arn = _machine(sfn, {"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-west-2:123456789012:function:pilotlight-t-rds",
            "Parameters": {"action": "check_promoted", "region": "us-west-2", "identifier": "db"},
            "TimeoutSeconds": 300, "End": True}}})
        described = _run(sfn, arn)
    assert described["status"] == "FAILED"
    assert described["error"] == "Lambda.Unknown"
    assert "SystemExit: the runtime exited" in described["cause"]


def test_unknown_function_is_not_found():
    with Sandbox():
        client = boto3.client("lambda", region_name="us-west-2")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="nope", Payload=b"{}")


def _validate_output(service: str, operation: str, parsed: dict) -> None:
    """Every key in an emulated answer exists in botocore's output shape for the operation."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation).output_shape

    def walk(shape, value, path):
        if shape.type_name == "structure":
            assert isinstance(value, dict), path
            for key, item in value.items():
                if key == "ResponseMetadata":
                    continue
                assert key in shape.members, f"{path}.{key} is not in {operation}'s output shape"
                walk(shape.members[key], item, f"{path}.{key}")
        elif shape.type_name == "list":
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")

    walk(model, parsed, operation)


def test_emulated_answers_match_botocore_output_shapes(reference_plan):
    captured = {}
    with Sandbox() as sb:
        sb.seed(reference_plan, pilot_light=True)
        for op in ("DescribeDBInstances", "PromoteReadReplica", "ModifyDBInstance"):
            sb._events.register(f"after-call.rds.{op}",
                                lambda parsed, op=op, **_: captured.setdefault(op, parsed))
        rds = boto3.client("rds", region_name="us-west-2")
        rds.promote_read_replica(DBInstanceIdentifier="shop-db-dr")
        rds.describe_db_instances(DBInstanceIdentifier="shop-db-dr")
        sb.lambdas.register("pilotlight-t-dns", "dns")
        invoke = boto3.client("lambda", region_name="us-west-2").invoke(
            FunctionName="pilotlight-t-dns", Payload=json.dumps({"action": "check_change", "change_id": None}))
    _validate_output("rds", "PromoteReadReplica", captured["PromoteReadReplica"])
    _validate_output("rds", "DescribeDBInstances", captured["DescribeDBInstances"])
    _validate_output("lambda", "Invoke", {k: v for k, v in invoke.items() if k != "Payload"})
    assert captured["DescribeDBInstances"]["DBInstances"][0]["DBInstanceStatus"] == "modifying"


def test_latency_model_refuses_changes_while_promotion_runs(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan, pilot_light=True)
        rds = boto3.client("rds", region_name="us-west-2")
        rds.promote_read_replica(DBInstanceIdentifier="shop-db-dr")
        db = rds.describe_db_instances(DBInstanceIdentifier="shop-db-dr")["DBInstances"][0]
        assert db["DBInstanceStatus"] == "modifying"
        assert db["ReadReplicaSourceDBInstanceIdentifier"]  # still a replica until promotion completes
        with pytest.raises(rds.exceptions.InvalidDBInstanceStateFault):
            rds.modify_db_instance(DBInstanceIdentifier="shop-db-dr", MultiAZ=True, ApplyImmediately=True)


def test_cross_region_replica_lives_in_its_own_region_single_az(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan, pilot_light=True)
        db = boto3.client("rds", region_name="us-west-2").describe_db_instances(
            DBInstanceIdentifier="shop-db-dr")["DBInstances"][0]
        assert db["AvailabilityZone"].startswith("us-west-2")
        assert db["MultiAZ"] is False
        assert db["DBInstanceClass"] == "db.t3.medium"


def test_sandbox_leaves_no_fake_credentials_behind(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "someone")
    with Sandbox():
        import os

        assert "AWS_PROFILE" not in os.environ
    import os

    assert os.environ["AWS_PROFILE"] == "someone"
