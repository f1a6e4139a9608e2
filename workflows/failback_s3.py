"""S3 in the failback workflow: re-protect (reverse replication and catch-up), the data check, re-arm.

The builders return ASL states for workflows/failback.py. Every Map iterates over ``$.plan.buckets`` (each item
``{source: primary bucket, destination: DR bucket, ...}``); the S3 calls go through the S3 function
(lambdas/s3.py, lambdas/s3_failback.py). Errors are not caught here: a reverse rule that cannot be set, a
catch-up or check that cannot finish, or a reverse canary that does not arrive fails the state, and the
failback workflow's failure record catches it. Step labels (Comments): "Reverse S3 replication",
"Check S3 data", "Re-arm S3 replication".

- :func:`reprotect_branch`: a Parallel branch; per bucket: the reverse rule (DR bucket -> primary bucket), the
  catch-up of what was written in the DR bucket since ``$.pre.failover_started`` (CopyObject, looped until a
  pass copies nothing), and a canary written in the DR bucket seen in the primary bucket. Its output:
  ``{"buckets": [{"source", "destination", "reverse": record, "catch_up": record, "canary": record}]}``.
- :func:`check_states`: the data check; result at ``$.s3_check``:
  ``{"buckets": [{"source", "destination", "dr_objects", "primary_objects", "sample", "mismatches": [keys],
  "missing_in_primary", "missing": [keys], "ok", ...}], "ok": bool}``.
- :func:`rearm_branch`: a Parallel branch removing the reverse rules; output ``{"buckets": [record]}``.

A plan without buckets: the branches are None (leave them out of the Parallel state) and :func:`check_states`
is one Pass state writing ``{"buckets": [], "ok": true}`` at ``$.s3_check``.
"""

from __future__ import annotations

from typing import Any

from workflows import asl
from workflows.plan import Plan

REVERSE_STEP = "Reverse S3 replication"
CHECK_STEP = "Check S3 data"
REARM_STEP = "Re-arm S3 replication"
# Catch-up and data check calls per bucket: each lists up to 5 windows of 1,000 keys of both buckets
# (lambdas/s3_failback.py), so 500 calls cover 2.5 million keys a pass and keep the history in bounds.
CATCH_UP_MAX = 500
CHECK_MAX = 500
CANARY_POLL, CANARY_MAX = 10, 90  # 15 min: S3 RTC's 99.99% bound, as replicate's canary


def _items(with_since: bool = True) -> dict[str, Any]:
    selector: dict[str, Any] = {
        "bucket.$": "$$.Map.Item.Value",
        "plan": {"name.$": "$.plan.name", "primary_region.$": "$.plan.primary_region",
                 "dr_region.$": "$.plan.dr_region"},
    }
    if with_since:
        selector["since.$"] = "$.pre.failover_started"
    return selector


def _map(step: str, start: str, states: dict[str, asl.State], *, with_since: bool = True) -> asl.State:
    return {
        "Type": "Map",
        "Comment": step,
        "ItemsPath": "$.plan.buckets",
        "ItemSelector": _items(with_since),
        "MaxConcurrency": 0,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": states},
    }


def _regions() -> dict[str, str]:
    return {"primary_region.$": "$.plan.primary_region", "dr_region.$": "$.plan.dr_region", "bucket.$": "$.bucket"}


def _loop(name: str, step: str, action: str, max_calls: int, next_state: str, what: str) -> dict[str, asl.State]:
    """Call ``action`` until it answers ``done`` (no Wait: each call does a bounded amount of work and answers at
    once), at most ``max_calls`` calls; its poll document at ``$.poll`` carries ``state`` to the next call."""
    params = {**_regions(), "since.$": "$.since"}
    more, choice, fail = f"{name}More", f"{name}Done?", f"{name}TooLong"
    return {
        name: asl.task(step, "s3", action, params, result_path="$.poll", next_state=choice),
        choice: {"Type": "Choice", "Comment": step, "Choices": [
            {"Variable": "$.poll.done", "BooleanEquals": True, "Next": next_state},
            {"Variable": "$.poll.attempt", "NumericGreaterThanEquals": max_calls, "Next": fail},
        ], "Default": more},
        more: asl.task(step, "s3", action, {**params, "state.$": "$.poll.state", "attempt.$": "$.poll.attempt"},
                       result_path="$.poll", next_state=choice),
        fail: {"Type": "Fail", "Comment": step, "Error": "WaitTimedOut",
               "Cause": f"{what} not done after {max_calls} calls"},
    }


def reprotect_states() -> dict[str, asl.State]:
    """One bucket's re-protection (a Map item: ``$.bucket``, ``$.plan``, ``$.since``)."""
    states: dict[str, asl.State] = {
        "S3ReverseRule": asl.task(
            REVERSE_STEP, "s3", "ensure_reverse_replication", {"plan.$": "$.plan.name", **_regions()},
            result_path="$.reverse", next_state="S3CatchUp"),
    }
    states.update(_loop("S3CatchUp", REVERSE_STEP, "catch_up_primary", CATCH_UP_MAX, "S3KeepCatchUp",
                        "S3 catch-up to the primary bucket"))
    states["S3KeepCatchUp"] = {"Type": "Pass", "Comment": REVERSE_STEP, "InputPath": "$.poll.record",
                               "ResultPath": "$.catch_up", "Next": "S3ReverseCanary"}
    # A canary written in the DR bucket must reach the primary bucket through the reverse rule.
    states.update(asl.poll_loop(
        "S3ReverseCanary", REVERSE_STEP, service="s3",
        act=("put_canary", {"region.$": "$.plan.dr_region", "source.$": "$.bucket.destination"}),
        check=("check_canary", {"source_region.$": "$.plan.dr_region", "dr_region.$": "$.plan.primary_region",
                                "source.$": "$.bucket.destination", "destination.$": "$.bucket.source",
                                "key.$": "$.poll.key"}),
        interval_seconds=CANARY_POLL, max_attempts=CANARY_MAX, next_state="S3ReverseCanaryArrived?",
        what="reverse replication canary"))
    states["S3ReverseCanaryArrived?"] = {
        "Type": "Choice", "Comment": REVERSE_STEP,
        "Choices": [{"Variable": "$.poll.in_destination", "BooleanEquals": True, "Next": "S3ReverseDone"}],
        "Default": "S3ReverseCanaryFailed",
    }
    states["S3ReverseCanaryFailed"] = {
        "Type": "Fail", "Comment": REVERSE_STEP, "Error": "S3ReverseReplicationFailed",
        "Cause": "the canary written in the DR bucket was not replicated to the primary bucket (ReplicationStatus "
                 "FAILED): check the replication role's policy and the primary bucket's versioning"}
    states["S3ReverseDone"] = asl.end_pass(REVERSE_STEP, {
        "source.$": "$.bucket.source", "destination.$": "$.bucket.destination", "reverse.$": "$.reverse.record",
        "catch_up.$": "$.catch_up", "canary.$": "$.poll.record"})
    return states


def reprotect_branch(plan: Plan) -> dict[str, Any] | None:
    """A Parallel branch: every bucket replicates back from the DR region, caught up and shown to work.

    Output: ``{"buckets": [{"source", "destination", "reverse": {record}, "catch_up": {"copied", "bytes",
    "passes", "replicating", "left_before_since", "refused", "refused_count", "converged", "status", ...},
    "canary": {record}}]}``. None when the plan has no buckets."""
    if not plan.buckets:
        return None
    state = {**_map(REVERSE_STEP, "S3ReverseRule", reprotect_states()), "ResultSelector": {"buckets.$": "$"},
             "End": True}
    return {"StartAt": "S3Reverse", "States": {"S3Reverse": state}}


def check_bucket_states() -> dict[str, asl.State]:
    states = _loop("S3CheckData", CHECK_STEP, "check_failback_data", CHECK_MAX, "S3CheckBucketDone",
                   "S3 data check")
    states["S3CheckBucketDone"] = {"Type": "Pass", "Comment": CHECK_STEP, "InputPath": "$.poll.result", "End": True}
    return states


def check_states(plan: Plan, name: str, next_state: str) -> dict[str, asl.State]:
    """The data check of every bucket pair, starting at state ``name``, then ``next_state``; the result at
    ``$.s3_check`` (``{"buckets": [...], "ok": bool}``; see the module). It does not fail on a mismatch: the
    caller decides (e.g. a Choice on ``$.s3_check.ok``). A plan without buckets: one Pass state."""
    if not plan.buckets:
        return {name: {"Type": "Pass", "Comment": CHECK_STEP, "Result": {"buckets": [], "ok": True},
                       "ResultPath": "$.s3_check", "Next": next_state}}
    summary = f"{name}Summary"
    return {
        name: {**_map(CHECK_STEP, "S3CheckData", check_bucket_states()), "ResultPath": "$.s3_check",
               "Next": summary},
        summary: asl.task(CHECK_STEP, "s3", "summarise_failback_data", {"buckets.$": "$.s3_check"},
                          result_path="$.s3_check", next_state=next_state),
    }


def rearm_branch(plan: Plan) -> dict[str, Any] | None:
    """A Parallel branch: the reverse rules removed (the forward rules, replicate's, stay). Output:
    ``{"buckets": [{"resource", "status", "changes", "forward": bool, ...}]}``. None without buckets."""
    if not plan.buckets:
        return None
    item = {"S3RemoveReverse": asl.task(REARM_STEP, "s3", "remove_reverse_replication",
                                        {"plan.$": "$.plan.name", **_regions()}, result_path="$", next_state=None)}
    item["S3RemoveReverse"]["OutputPath"] = "$.record"
    state = {**_map(REARM_STEP, "S3RemoveReverse", item, with_since=False), "ResultSelector": {"buckets.$": "$"},
             "End": True}
    return {"StartAt": "S3Rearm", "States": {"S3Rearm": state}}
