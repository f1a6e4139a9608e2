"""Fault injection in the sandbox: the spec grammar, and each kind failing a call the way AWS or botocore would."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from sandbox import Sandbox
from sandbox.faults import KINDS, Faults, FaultSpecError, LambdaCrashed, parse_spec


def test_a_spec_names_service_operation_kind_and_when():
    spec = parse_spec("rds:PromoteReadReplica:Throttling")
    assert (spec.service, spec.event_service, spec.operation, spec.kind, spec.nth, spec.count) == (
        "rds", "rds", "PromoteReadReplica", "Throttling", 1, None)
    assert parse_spec("ec2:CopyImage:RequestLimitExceeded:3").nth == 3
    later = parse_spec("elasticbeanstalk:CreateEnvironment:Crash:x2")
    assert (later.nth, later.count, later.event_service, str(later)) == (
        None, 2, "elastic-beanstalk", "elasticbeanstalk:CreateEnvironment:Crash:x2")
    assert parse_spec("elastic-beanstalk:CreateEnvironment:AccessDenied").service == "elasticbeanstalk"


@pytest.mark.parametrize(("text", "part"), [
    ("rds:PromoteReadReplica", "expected SERVICE:OPERATION:KIND"),
    ("rds::Throttling", "expected SERVICE:OPERATION:KIND"),
    ("rds:PromoteReadReplica:Throttling:1:2", "expected SERVICE:OPERATION:KIND"),
    ("rdss:PromoteReadReplica:Throttling", "SERVICE 'rdss'"),
    ("rds:PromoteRead:Throttling", "OPERATION 'PromoteRead'"),
    ("rds:PromoteReadReplica:Throttle", "KIND 'Throttle'"),
    ("rds:PromoteReadReplica:Crash:0", "WHEN '0'"),
    ("rds:PromoteReadReplica:Crash:x0", "WHEN 'x0'"),
    ("rds:PromoteReadReplica:Crash:twice", "WHEN 'twice'"),
])
def test_a_wrong_spec_is_refused_naming_the_wrong_part(text, part):
    with pytest.raises(FaultSpecError, match=part.replace("(", r"\(")):
        parse_spec(text)


def test_a_near_miss_is_answered_with_the_right_name():
    with pytest.raises(FaultSpecError, match="did you mean PromoteReadReplica"):
        parse_spec("rds:PromoteReadReplicas:Throttling")


@pytest.fixture(scope="module")
def faulted():
    """A sandbox whose faults count every caller (the test plays the function)."""
    with Sandbox() as sb:
        faults = Faults(sb._events)
        yield faults
        faults.clear()


def _describe():
    return boto3.client("rds", region_name="us-east-1").describe_db_instances()


@pytest.mark.parametrize("kind", [k for k in KINDS.values() if k.how == "error"], ids=lambda k: k.name)
def test_an_error_kind_answers_its_code_and_status(faulted, kind):
    fault = faulted.add(f"rds:DescribeDBInstances:{kind.name}")
    try:
        with pytest.raises(ClientError) as caught:
            _describe()
        assert caught.value.response["Error"]["Code"] == kind.code
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == kind.status
        _describe()  # only the first call
        assert (fault.calls, fault.hits) == (2, 1)
    finally:
        faulted.clear()


def test_a_read_timeout_and_a_connection_error_are_raised_as_botocore_raises_them(faulted):
    for kind, raised in (("ReadTimeout", ReadTimeoutError), ("ConnectionError", EndpointConnectionError)):
        faulted.add(f"rds:DescribeDBInstances:{kind}")
        try:
            with pytest.raises(raised, match="rds.us-east-1.amazonaws.com"):
                _describe()
            _describe()
        finally:
            faulted.clear()


def test_the_nth_call_fails_alone_and_xk_fails_the_next_k(faulted):
    nth = faulted.add("rds:DescribeDBInstances:Throttling:2")
    try:
        outcomes = []
        for _ in range(3):
            try:
                _describe()
                outcomes.append("ok")
            except ClientError:
                outcomes.append("failed")
        assert outcomes == ["ok", "failed", "ok"] and nth.done
    finally:
        faulted.clear()
    faulted.add("rds:DescribeDBInstances:InternalFailure:x2")
    try:
        outcomes = []
        for _ in range(3):
            try:
                _describe()
                outcomes.append("ok")
            except ClientError:
                outcomes.append("failed")
        assert outcomes == ["failed", "failed", "ok"]
    finally:
        faulted.clear()


def test_a_crash_comes_after_the_call_took_effect(faulted):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="crash-after-put")
    faulted.add("s3:PutObject:Crash")
    # A client sees the faults injected before it was made: the functions make theirs per invocation.
    s3 = boto3.client("s3", region_name="us-east-1")
    try:
        with pytest.raises(LambdaCrashed):
            s3.put_object(Bucket="crash-after-put", Key="k", Body=b"x")
        assert s3.get_object(Bucket="crash-after-put", Key="k")["Body"].read() == b"x"
    finally:
        faulted.clear()


def test_spec_faults_leave_calls_outside_the_functions_alone():
    with Sandbox() as sb:
        fault = sb.inject("rds:DescribeDBInstances:AccessDenied:x5")
        _describe()  # a test's (or the CLI's) own read is not one of the workflow's calls
        assert (fault.calls, fault.hits) == (0, 0)
