"""AWS answers with a field missing: the handlers read optional fields with ``.get``.

botocore's service models say which members of an answer are required. The test walks every output shape of
the services the handlers call and finds the member names that are optional wherever they appear below the
top level (a top-level member, such as ``DBInstances``, is in every successful answer). A handler that reads
one of them with ``x["Name"]`` crashes on an answer without it, so each such read is either written with
``.get`` or listed below with the reason it is always there.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import botocore.session
import pytest

from tests.conftest import ROOT

SERVICES = ("rds", "ec2", "elasticbeanstalk", "s3", "route53", "cloudwatch", "sns", "stepfunctions", "ssm", "iam",
            "dynamodb", "autoscaling", "elbv2", "service-quotas", "sts", "lambda", "application-autoscaling")

# Optional in botocore's model, present in practice where the handlers read them.
ALWAYS_THERE = {
    "DBClusterArn": "every DB cluster, and every member of a global cluster, has an ARN",
    "DBInstanceArn": "every DB instance has an ARN",
    "DefaultVCpus": "every EC2 instance type describes its vCPUs",
    "VCpuInfo": "every EC2 instance type describes its vCPUs",
    "VpcSecurityGroupId": "a VPC security group membership names its group",
    "stateEnteredEventDetails": "read from history events of type *StateEntered only",
    "stateExitedEventDetails": "read from history events of type *StateExited only",
    "taskScheduledEventDetails": "read from history events of type TaskScheduled only",
    "protocol": "pilotlight's own endpoint-check document (dns_routing), not an AWS answer",
    "method": "pilotlight's own comparison record (s3_failback: how a sampled key was compared), not an AWS answer",
}


def _members(shape, seen: set[str], depth: int, out: dict[str, list[bool]], top: set[str]) -> None:
    if shape is None or shape.name in seen:
        return
    seen.add(shape.name)
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if depth == 0:
                top.add(name)
            else:
                out.setdefault(name, []).append(name in shape.required_members)
            _members(member, seen, depth + 1, out, top)
    elif shape.type_name == "list":
        _members(shape.member, seen, depth, out, top)
    elif shape.type_name == "map":
        _members(shape.value, seen, depth + 1, out, top)


def _inputs(shape, seen: set[str], out: set[str]) -> None:
    if shape is None or shape.name in seen:
        return
    seen.add(shape.name)
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            out.add(name)
            _inputs(member, seen, out)
    elif shape.type_name == "list":
        _inputs(shape.member, seen, out)
    elif shape.type_name == "map":
        _inputs(shape.value, seen, out)


@functools.cache
def optional_answer_fields() -> frozenset[str]:
    """Member names that are optional wherever they appear nested in an answer, that are not top-level members
    of an answer, and that no request takes (a request's parameters are dictionaries the handlers build)."""
    session = botocore.session.get_session()
    nested: dict[str, list[bool]] = {}
    top: set[str] = set()
    inputs: set[str] = set()
    for service in SERVICES:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            op = model.operation_model(operation)
            _members(op.output_shape, set(), 0, nested, top)
            _inputs(op.input_shape, set(), inputs)
    return frozenset(k for k, required in nested.items() if not any(required) and k not in top | inputs)


def _subscripts() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "lambdas").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            key = node.slice.value if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                else None
            if isinstance(key, str):
                found.setdefault(key, []).append(f"{Path(path).name}:{node.lineno}")
    return found


def test_the_walk_knows_the_fields_aws_leaves_out():
    optional = optional_answer_fields()
    # RDS: only a replica names its source; Aurora: only a global cluster in a switchover has a failover state.
    assert {"ReadReplicaSourceDBInstanceIdentifier", "FailoverState", "LatestRestorableTime"} <= optional
    assert "DBInstances" not in optional  # a top-level member: in every successful answer


def test_handlers_read_optional_answer_fields_with_get():
    optional = optional_answer_fields()
    unsafe = {key: where for key, where in _subscripts().items() if key in optional and key not in ALWAYS_THERE}
    assert not unsafe, f"read with .get (or say in ALWAYS_THERE why they are always there): {unsafe}"


@pytest.mark.parametrize("key", sorted(ALWAYS_THERE))
def test_each_exception_is_still_needed(key):
    assert key in _subscripts(), f"{key} is no longer read with [...]: drop it from ALWAYS_THERE"
