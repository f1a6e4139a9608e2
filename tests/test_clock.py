"""The virtual clock: every wait of moto's interpreter runs in modeled time, exactly.

Each test runs a small state machine and reads its modeled duration from the execution's own
timestamps (startDate/stopDate, history), which is what reports and the CLI read.
"""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from sandbox import Sandbox, clock

REGION = "us-west-2"


@pytest.fixture(scope="module")
def sb():
    with Sandbox(latency="none") as box:  # no modeled cost per Lambda invocation: exact figures
        box.lambdas.register("clock-rds", "rds")
        yield box


def _run(definition: dict, payload: dict | None = None) -> dict:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(name=f"c{time.monotonic_ns()}", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/t")["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload or {}))["executionArn"]
    deadline = time.monotonic() + 60
    while (d := sfn.describe_execution(executionArn=ex))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"still running: {clock.stats()}"
        time.sleep(0.01)
    d["events"] = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
    return d


def _modeled(described: dict) -> float:
    """Start to end, from the history (moto leaves stopDate out of a timed-out execution)."""
    events = described["events"]
    return (events[-1]["timestamp"] - events[0]["timestamp"]).total_seconds()


def _wait(seconds: int, nxt: str | None = None) -> dict:
    state: dict = {"Type": "Wait", "Seconds": seconds}
    return {**state, "Next": nxt} if nxt else {**state, "End": True}


def test_parallel_branches_wait_side_by_side(sb):
    branch = lambda *waits: {  # noqa: E731
        "StartAt": "W0",
        "States": {f"W{i}": _wait(w, f"W{i + 1}" if i + 1 < len(waits) else None) for i, w in enumerate(waits)},
    }
    d = _run({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Branches": [branch(100), branch(200, 100), branch(30)], "Next": "After"},
        "After": _wait(50),
    }})
    assert d["status"] == "SUCCEEDED"
    assert _modeled(d) == pytest.approx(350, abs=0.01)  # max(100, 300, 30) + 50


@pytest.mark.parametrize(("concurrency", "expected"), [(1, 60), (0, 30)])
def test_map_iterations_wait_in_modeled_time(sb, concurrency, expected):
    d = _run({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency, "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "W",
                          "States": {"W": {"Type": "Wait", "SecondsPath": "$", "End": True}}},
    }}}, {"items": [10, 20, 30]})
    assert d["status"] == "SUCCEEDED"
    assert _modeled(d) == pytest.approx(expected, abs=0.01)


def test_retry_back_off_is_modeled(sb):
    d = _run({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-west-2:123456789012:function:clock-rds",
        "Parameters": {"action": "check_promoted", "region": REGION, "identifier": "missing"},
        "Retry": [{"ErrorEquals": ["ResourceNotFound"], "IntervalSeconds": 10, "BackoffRate": 2.0,
                   "MaxAttempts": 2}],
        "End": True,
    }}})
    assert d["status"] == "FAILED"
    assert _modeled(d) == pytest.approx(30, abs=0.01)  # 10 + 20


def test_execution_timeout_is_modeled(sb):
    d = _run({"StartAt": "W", "TimeoutSeconds": 100, "States": {"W": _wait(5000)}})
    assert d["status"] == "TIMED_OUT"
    assert _modeled(d) == pytest.approx(100, abs=0.01)


def test_history_timestamps_are_modeled(sb):
    d = _run({"StartAt": "A", "States": {"A": _wait(90, "B"), "B": _wait(30)}})
    entered = {e["stateEnteredEventDetails"]["name"]: e["timestamp"] for e in d["events"]
               if e["type"] == "WaitStateEntered"}
    assert (entered["B"] - entered["A"]).total_seconds() == pytest.approx(90, abs=0.01)


def test_observers_sleep_and_schedule_in_modeled_time(sb):
    fired: list[float] = []
    start = clock.now()
    clock.call_later(600, lambda: fired.append(clock.now()))
    wall = time.monotonic()
    clock.sleep(900)
    assert time.monotonic() - wall < 10
    assert fired == [pytest.approx(start + 600, abs=0.01)]
    assert clock.now() == pytest.approx(start + 900, abs=0.01)


def test_hold_keeps_time_still_until_released(sb):
    start = clock.now()
    woke = threading.Event()
    with clock.hold():
        sleeper = threading.Thread(target=lambda: (clock.sleep(60), woke.set()), daemon=True)
        sleeper.start()
        assert not woke.wait(0.3)
        assert clock.now() == start
    assert woke.wait(10)
    assert clock.now() == pytest.approx(start + 60, abs=0.01)


def test_pace_slows_the_wall_not_the_model(sb):
    clock.set_pace(100)  # 100 modeled seconds per wall second
    try:
        wall = time.monotonic()
        d = _run({"StartAt": "W", "States": {"W": _wait(150)}})
        elapsed = time.monotonic() - wall
    finally:
        clock.set_pace(None)
    assert _modeled(d) == pytest.approx(150, abs=0.01)
    assert elapsed >= 1.4
