"""Readiness simulates each failover function's calls against its role before a disaster does."""

from __future__ import annotations

import boto3
import pytest

from sandbox import Sandbox
from workflows import render
from workflows.executions import follow


@pytest.fixture(scope="module")
def estate(reference_plan):
    with Sandbox() as sb:
        sb.seed(reference_plan)
        sb.build_pilot_light(reference_plan)
        yield sb, reference_plan


def _permissions(sb, plan):
    arn = sb.start(plan, "readiness", {"source": "test"})
    result = follow(boto3.client("stepfunctions", region_name=plan.dr_region), arn, poll_seconds=0.05)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return {c["resource"]: c for c in result.output["checks"] if c["check"] == "permissions"}


def test_every_failover_function_may_make_every_call_the_failover_makes(estate):
    sb, plan = estate
    checks = _permissions(sb, plan)
    # The report function is the failover's too (it records a terminal failure), and the canary function (the
    # SQL write in the promoted database).
    assert set(checks) == {render.function_name(plan, s) for s in ("beanstalk", "canary", "dns", "guard", "rds",
                                                                   "report", "verify")}
    assert {c["status"] for c in checks.values()} == {"READY"}, checks
    rds = checks[render.function_name(plan, "rds")]
    assert rds["evidence"]["role"].endswith(":role/pilotlight-shop-rds-role")
    assert rds["evidence"]["simulated"] >= 4


def test_a_role_missing_a_permission_is_not_ready_naming_action_and_resource(estate):
    sb, plan = estate
    name = render.function_name(plan, "rds")
    saved = sb.iam.policies[name]
    # Someone edits the role by hand: promotion is no longer granted.
    sb.iam.policies[name] = [
        {**s, "Action": [a for a in s["Action"] if a != "rds:PromoteReadReplica"]} for s in saved]
    try:
        check = _permissions(sb, plan)[name]
    finally:
        sb.iam.policies[name] = saved
    assert check["status"] == "NOT_READY"
    assert check["reason"].startswith(f"arn:aws:iam::{sb.account_id}:role/{name}-role may not rds:PromoteReadReplica "
                                      f"on arn:aws:rds:{plan.dr_region}:{sb.account_id}:db:shop-db-dr")
    assert {d["action"] for d in check["evidence"]["denied"]} == {"rds:PromoteReadReplica"}
