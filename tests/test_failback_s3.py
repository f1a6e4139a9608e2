"""S3 in a failback: the reverse rule, the catch-up of what was written in the DR region, the reverse canary,
the data check and the re-arm, run as ASL in the sandbox (IAM enforced), plus the comparison on its own."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas import s3 as s3_steps
from lambdas import s3_failback
from sandbox import Sandbox, clock
from tests.conftest import REFERENCE
from workflows import asl, failback_s3, replicate
from workflows.executions import follow
from workflows.plan import Plan, load_plan


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _definition(plan: Plan, since: str, parts: tuple[str, ...]) -> dict[str, Any]:
    """A small machine: the input document (``$.plan``, ``$.pre``), then the builders' states in order."""
    doc = replicate.plan_document(plan)
    states: dict[str, Any] = {"Load": {"Type": "Pass", "Result": {
        "plan": {k: doc[k] for k in ("name", "primary_region", "dr_region", "buckets")},
        "pre": {"failover_started": since}}, "Next": parts[0]}}
    for i, part in enumerate(parts):
        following = parts[i + 1] if i + 1 < len(parts) else "Done"
        if part == "Check":
            states.update(failback_s3.check_states(plan, "Check", following))
            continue
        branch = failback_s3.reprotect_branch(plan) if part == "Reprotect" else failback_s3.rearm_branch(plan)
        states[part] = {"Type": "Parallel", "Branches": [branch], "ResultPath": f"$.{part.lower()}",
                        "Next": following}
    states["Done"] = {"Type": "Succeed"}
    return {"StartAt": "Load", "States": states}


def _run(sb: Sandbox, plan: Plan, since: str, *parts: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    text = asl.substitute(json.dumps(_definition(plan, since, parts)), sb.substitutions(plan))
    machine = sfn.create_state_machine(
        name=f"failback-s3-{uuid.uuid4().hex[:8]}", definition=text,
        roleArn=f"arn:aws:iam::{sb.account_id}:role/pilotlight-{plan.name}-states")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    result = follow(sfn, arn, poll_seconds=0.02, timeout_seconds=60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert sb.iam.denials == []
    return result.output


def _body(region: str, bucket: str, key: str) -> bytes:
    return boto3.client("s3", region_name=region).get_object(Bucket=bucket, Key=key)["Body"].read()


def _rules(region: str, bucket: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3", region_name=region)
    try:
        return s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
    except s3.exceptions.ClientError:
        return []


def test_failback_s3_reprotects_checks_and_rearms() -> None:
    plan = load_plan(REFERENCE)
    pair = plan.buckets[0]
    p, d = plan.primary_region, plan.dr_region
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        s3p, s3d = boto3.client("s3", region_name=p), boto3.client("s3", region_name=d)
        s3p.put_object(Bucket=pair.source, Key="img/logo.png", Body=b"logo v1", ContentType="image/png")
        s3d.put_object(Bucket=pair.destination, Key="stale.txt", Body=b"deleted in the primary long ago")
        clock.sleep(120)  # replication delivers logo v1 to the DR bucket
        assert _body(d, pair.destination, "img/logo.png") == b"logo v1"
        since = _iso(clock.now())
        # The outage: the application writes in the DR region.
        s3d.put_object(Bucket=pair.destination, Key="orders/1.json", Body=b'{"order": 1}',
                       ContentType="application/json", Metadata={"origin": "dr"})
        s3d.put_object(Bucket=pair.destination, Key="orders/2.json", Body=b'{"order": 2}')
        s3d.put_object(Bucket=pair.destination, Key="img/logo.png", Body=b"logo v2!", ContentType="image/png")
        uploads = plan.buckets[1]
        s3d.put_object(Bucket=uploads.destination, Key="u/avatar.jpg", Body=b"\xff\xd8 jpeg")

        out = _run(sb, plan, since, "Reprotect", "Check")
        by_source = {b["source"]: b for b in out["reprotect"][0]["buckets"]}
        assert by_source[pair.source]["catch_up"]["copied"] == 3
        assert by_source[pair.source]["catch_up"]["left_before_since"] == 1  # stale.txt stays out of the primary
        assert by_source[uploads.source]["catch_up"]["copied"] == 1
        assert all(b["canary"]["status"] == "verified" for b in by_source.values())
        assert all(b["reverse"]["status"] == "created" for b in by_source.values())
        assert _body(p, pair.source, "orders/1.json") == b'{"order": 1}'
        head = s3p.head_object(Bucket=pair.source, Key="orders/1.json")
        assert head["ContentType"] == "application/json" and head["Metadata"] == {"origin": "dr"}
        assert _body(p, pair.source, "img/logo.png") == b"logo v2!"
        assert _body(p, uploads.source, "u/avatar.jpg") == b"\xff\xd8 jpeg"
        with pytest.raises(s3p.exceptions.ClientError):
            s3p.head_object(Bucket=pair.source, Key="stale.txt")
        reverse_id = s3_steps.wanted_rule(pair.source, False)["ID"]
        assert [r["ID"] for r in _rules(d, pair.destination)] == [reverse_id]

        check = out["s3_check"]
        assert check["ok"] is True, json.dumps(check, indent=1)
        first = next(b for b in check["buckets"] if b["source"] == pair.source)
        assert first["mismatches"] == [] and first["missing_in_primary"] == 0
        assert first["dr_objects"] == 4 and first["primary_objects"] == 3  # stale.txt only in the DR bucket
        assert first["sample"] == 3 and first["dr_only_before_failover"] == 1

        # New writes in the DR region now replicate through the reverse rule.
        s3d.put_object(Bucket=pair.destination, Key="orders/3.json", Body=b'{"order": 3}')
        clock.sleep(120)
        assert _body(p, pair.source, "orders/3.json") == b'{"order": 3}'
        assert s3p.head_object(Bucket=pair.source, Key="orders/3.json")["ReplicationStatus"] == "REPLICA"

        # A re-run converges: the rule is in place, nothing is copied twice.
        again = _run(sb, plan, since, "Reprotect")
        assert [b["catch_up"]["copied"] for b in again["reprotect"][0]["buckets"]] == [0, 0]
        assert all(b["reverse"]["status"] == "unchanged" for b in again["reprotect"][0]["buckets"])

        rearm = _run(sb, plan, since, "Rearm")["rearm"][0]["buckets"]
        assert all(r["status"] == "deleted" and r["forward"] for r in rearm)
        assert _rules(d, pair.destination) == [] and _rules(d, uploads.destination) == []
        assert [r["ID"] for r in _rules(p, pair.source)] == [s3_steps.wanted_rule(pair.destination, False)["ID"]]
        iam = boto3.client("iam")
        policies = iam.list_role_policies(RoleName=s3_steps.role_name(plan.name))["PolicyNames"]
        assert f"{pair.source}-to-{pair.destination}" in policies
        assert f"{pair.destination}-to-{pair.source}" not in policies
        assert all(r["status"] == "unchanged" for r in _run(sb, plan, since, "Rearm")["rearm"][0]["buckets"])


def test_builders_without_buckets_leave_s3_out() -> None:
    plan = load_plan(REFERENCE).model_copy(update={"buckets": []})
    assert failback_s3.reprotect_branch(plan) is None and failback_s3.rearm_branch(plan) is None
    assert failback_s3.check_states(plan, "Check", "Next") == {"Check": {
        "Type": "Pass", "Comment": "Check S3 data", "Result": {"buckets": [], "ok": True},
        "ResultPath": "$.s3_check", "Next": "Next"}}


def _buckets() -> tuple[Any, Any]:
    s3p, s3d = boto3.client("s3", region_name="us-east-1"), boto3.client("s3", region_name="us-west-2")
    s3p.create_bucket(Bucket="prim-bucket")
    s3d.create_bucket(Bucket="dr-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return s3p, s3d


def _until_done(step: Any, *args: Any) -> tuple[dict[str, Any], int]:
    """Call a step as its loop does (the state of one call passed to the next) until it is done."""
    out, calls = step(*args, None, 0), 1
    while not out["done"]:
        out, calls = step(*args, out["state"], out["attempt"]), calls + 1
        assert calls < 100
    return out, calls


def test_data_check_reports_a_changed_object_by_key() -> None:
    with mock_aws():
        s3p, s3d = _buckets()
        for key in ("a.txt", "b.txt", "c.txt"):
            s3p.put_object(Bucket="prim-bucket", Key=key, Body=f"{key} body".encode())
            s3d.put_object(Bucket="dr-bucket", Key=key, Body=f"{key} body".encode())
        # Written again in the DR region (same size, other bytes) and never copied back.
        s3d.put_object(Bucket="dr-bucket", Key="b.txt", Body=b"B.txt body")
        out, _ = _until_done(s3_failback.check_data, s3d, s3p, "dr-bucket", "prim-bucket", None)
        result = out["result"]
        assert result["mismatches"] == ["b.txt"] and result["ok"] is False
        assert result["sample"] == 3 and result["dr_objects"] == result["primary_objects"] == 3
        assert result["detail"][0]["key"] == "b.txt" and result["detail"][0]["method"].startswith("checksum-")


def test_catch_up_and_check_go_on_across_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_failback, "LISTED", 3)
    monkeypatch.setattr(s3_failback, "WINDOWS", 1)
    monkeypatch.setattr(s3_failback, "COPY_KEYS", 2)
    with mock_aws():
        s3p, s3d = _buckets()
        for i in range(10):
            s3d.put_object(Bucket="dr-bucket", Key=f"k{i:02}", Body=b"x" * i)
        for i in (1, 4, 12):
            s3p.put_object(Bucket="prim-bucket", Key=f"k{i:02}", Body=b"x" * i)
        s3d.put_object(Bucket="dr-bucket", Key="pilotlight-canary/x", Body=b"c")  # never copied
        out, calls = _until_done(s3_failback.catch_up, s3d, s3p, "dr-bucket", "prim-bucket", None)
        assert out["record"]["copied"] == 8 and out["record"]["converged"] and calls > 4
        keys = {o["Key"] for o in s3p.list_objects_v2(Bucket="prim-bucket")["Contents"]}
        assert keys == {f"k{i:02}" for i in (*range(10), 12)}
        again, _ = _until_done(s3_failback.catch_up, s3d, s3p, "dr-bucket", "prim-bucket", None)
        assert again["record"]["copied"] == 0
        check, _ = _until_done(s3_failback.check_data, s3d, s3p, "dr-bucket", "prim-bucket", None)
        assert check["result"]["dr_objects"] == 10 and check["result"]["primary_objects"] == 11
        assert check["result"]["ok"] and check["result"]["sample"] == 10


def test_sample_is_deterministic_and_split() -> None:
    recent = [[s3_failback._rank(k), k] for k in ("r1", "r2", "r3")]
    older = [[s3_failback._rank(k), k] for k in (f"o{i}" for i in range(30))]
    assert len(s3_failback.sample_keys(sorted(recent), sorted(older))) == 20
    assert {"r1", "r2", "r3"} <= set(s3_failback.sample_keys(sorted(recent), sorted(older)))
    assert s3_failback.sample_keys([], sorted(older)) == sorted(k for _, k in sorted(older)[:20])


def test_large_and_archived_objects_are_refused_by_key() -> None:
    state = s3_failback._new_catch_up(None)
    now = dt.datetime.now(dt.UTC)
    big = {"Key": "video.mp4", "LastModified": now, "Size": 6 * 1024**3, "ETag": '"x"'}
    cold = {"Key": "old.tar", "LastModified": now, "Size": 10, "ETag": '"y"', "StorageClass": "DEEP_ARCHIVE"}
    for obj in (big, cold):
        assert s3_failback._catch_up_one(None, None, "dr", "prim", obj, None, None, state) is False
    assert [r["key"] for r in state["refused"]] == ["video.mp4", "old.tar"]
    assert "5 GB" in state["refused"][0]["reason"] and "restore" in state["refused"][1]["reason"]
