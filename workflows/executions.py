"""Following an execution: live progress, the timeline and the measured RTO, from its history.

Works the same on the sandbox and on AWS: every figure comes from the history's timestamps, which
the sandbox writes in modeled time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lambdas.approval import (  # noqa: F401  (re-exported: `pilotlight approve`, the demo, tests)
    NothingToAnswer,
    answer_approval,
    pending_approval_token,
    running_executions,
)
from lambdas.approval import history as _history
from lambdas.common import fmt_duration as fmt_duration  # re-exported: the CLI and reports import it from here
from workflows import asl

# The step label of the state that marks service restored (workflows/failover.py RESTORED_STATE).
RESTORED_STEP = "Service restored"


@dataclass
class Step:
    name: str
    start: float  # modeled seconds since the execution started
    end: float | None = None
    status: str = "running"  # running | done | failed
    detail: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass
class Progress:
    """One line of live progress."""

    at: float  # modeled seconds since start
    kind: str  # started | update | done | failed | finished
    step: str
    detail: str = ""


@dataclass
class Result:
    execution_arn: str
    status: str
    steps: list[Step]
    duration: float | None  # modeled seconds, start to stop
    output: Any = None
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None
    failed_step: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def restored_at(self) -> float | None:
        """Modeled seconds from the start to verified service (the "Service restored" step), if reached."""
        return next((s.start for s in self.steps if s.name == RESTORED_STEP), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "status": self.status,
            "duration_seconds": _round(self.duration),
            "error": self.error,
            "cause": self.cause,
            "failed_state": self.failed_state,
            "failed_step": self.failed_step,
            "timeline": [
                {
                    "step": s.name,
                    "start_seconds": _round(s.start),
                    "duration_seconds": _round(s.duration),
                    "status": s.status,
                }
                for s in self.steps
            ],
            "output": self.output,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def step_labels(definition: dict[str, Any]) -> dict[str, str]:
    """State name -> step label (the state's Comment, which builders set to the step it belongs to)."""
    return {name: state.get("Comment", name) for name, state in asl.iter_states(definition["States"])}


def _ts(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class Follower:
    """Reads an execution's history incrementally and turns it into steps and progress lines."""

    def __init__(self, sfn: Any, execution_arn: str) -> None:
        self.sfn = sfn
        self.arn = execution_arn
        described = sfn.describe_execution(executionArn=execution_arn)
        machine = sfn.describe_state_machine(stateMachineArn=described["stateMachineArn"])
        self.labels = step_labels(json.loads(machine["definition"]))
        self._order = {label: i for i, label in enumerate(dict.fromkeys(self.labels.values()))}
        self.t0 = _ts(described["startDate"])
        self.steps: dict[str, Step] = {}
        self.events: list[dict[str, Any]] = []
        self._seen = 0
        self._by_id: dict[int, dict[str, Any]] = {}
        self._last_detail: dict[str, str] = {}

    def _modeled(self, ts: Any) -> float:
        return _ts(ts) - self.t0

    def poll(self) -> list[Progress]:
        events = _history(self.sfn, self.arn)
        fresh = events[self._seen :]
        self._seen = len(events)
        out: list[Progress] = []
        for event in fresh:
            self.events.append(event)
            self._by_id[event["id"]] = event
            out.extend(self._on_event(event))
        return out

    def _on_event(self, event: dict[str, Any]) -> list[Progress]:
        kind = event["type"]
        at = self._modeled(event["timestamp"])
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            label = self.labels.get(name, name)
            step = self.steps.get(label)
            if step is None:
                self.steps[label] = Step(label, at)
                return [Progress(at, "started", label)]
            return []
        if kind.endswith("StateExited"):
            details = event["stateExitedEventDetails"]
            label = self.labels.get(details["name"], details["name"])
            step = self.steps.get(label)
            if step is None:
                return []
            step.end = at
            output = _loads(details.get("output"))
            poll = output.get("poll") if isinstance(output, dict) and kind == "TaskStateExited" else None
            if isinstance(poll, dict):
                detail = _poll_detail(poll)
                if poll.get("done"):
                    if step.status != "done":
                        step.status, step.detail = "done", detail
                        return [Progress(at, "done", label, detail)]
                    return []
                if detail and self._last_detail.get(label) != detail:
                    self._last_detail[label] = detail
                    return [Progress(at, "update", label, detail)]
                return []
            exited = kind in ("PassStateExited", "TaskStateExited", "MapStateExited", "ParallelStateExited")
            if exited and step.status != "done":
                step.status = "done"
                return [Progress(at, "done", label)]
            return []
        return []

    def result(self, described: dict[str, Any], *, ended: bool = False) -> Result:
        """The execution as read so far, from its DescribeExecution answer.

        ``ended``: the execution is over, so steps still marked running are settled (done on success,
        otherwise failed for the failing step and stopped for the others).
        """
        status = described["status"]
        stop = described.get("stopDate")
        if stop is None and status != "RUNNING" and self.events:
            stop = self.events[-1]["timestamp"]  # the last event ended it (stopDate is absent on some ends)
        failed_state = failed_step = None
        if status not in ("RUNNING", "SUCCEEDED"):
            failed_state, failed_step = self.failure(described.get("error"))
        if ended:
            for step in self.steps.values():
                if status == "SUCCEEDED":
                    step.status = "done"
                elif step.status == "running":
                    step.status = "failed" if step.name == failed_step else "stopped"
        return Result(
            execution_arn=self.arn,
            status=status,
            # Steps that start at the same instant (Parallel branches) come in the definition's order.
            steps=sorted(self.steps.values(), key=lambda s: (s.start, self._order.get(s.name, len(self._order)))),
            duration=self._modeled(stop) if stop else None,
            output=_loads(described.get("output")),
            error=described.get("error"),
            cause=described.get("cause"),
            failed_state=failed_state,
            failed_step=failed_step,
            events=self.events,
        )

    def _state_of(self, event: dict[str, Any]) -> str | None:
        node: dict[str, Any] | None = event
        while node is not None and not node["type"].endswith("StateEntered"):
            node = self._by_id.get(node.get("previousEventId", 0))
        return None if node is None else node["stateEnteredEventDetails"]["name"]

    def _recorded_failure(self) -> str | None:
        """The failed state as the workflow's failure record read it (``report.record_failure``), if it ran."""
        for event in reversed(self.events):
            if event["type"] == "LambdaFunctionSucceeded" and self._state_of(event) == asl.RECORD_STATE:
                output = _loads(event["lambdaFunctionSucceededEventDetails"].get("output"))
                return output.get("failed_state") if isinstance(output, dict) else None
        return None

    def failure(self, error: str | None = None) -> tuple[str | None, str | None]:
        """The state (and its step) where the execution failed, following the event chain back.

        The last failure whose error is the execution's own: when one Parallel branch fails, the
        others are cancelled and may record failures of their own after it.
        """
        fallback: tuple[str | None, str | None] = (None, None)
        recorded = self._recorded_failure()
        if recorded is not None:
            return recorded, self.labels.get(recorded, recorded)
        for event in reversed(self.events):
            if event["type"] in ("LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut",
                                 "FailStateEntered"):
                name = self._state_of(event)
                if name is None or name in _RECORD_STATES:
                    continue
                details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
                if error is None or details.get("error") == error:
                    return name, self.labels.get(name, name)
                if fallback == (None, None):
                    fallback = (name, self.labels.get(name, name))
        return fallback


# The states a workflow's failure record adds (workflows/asl.py record_failures): never the failed step.
_RECORD_STATES = {asl.RECORD_STATE, asl.FAILED_STATE, asl.UNRECORDED_STATE, asl.CAUGHT_STATE}


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _poll_detail(poll: dict[str, Any]) -> str:
    db = poll.get("db")
    if isinstance(db, dict):
        bits = [f"{db.get('identifier')} {db.get('status')}"]
        if db.get("pending"):
            bits.append("pending " + ",".join(db["pending"]))
        return ", ".join(bits)
    if poll.get("status"):
        return str(poll["status"])
    return ""


def follow(
    sfn: Any,
    execution_arn: str,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 0.25,
    timeout_seconds: float | None = None,
) -> Result:
    """Wait for the execution to end, reporting progress; return steps, duration and outcome."""
    follower = Follower(sfn, execution_arn)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        # The history is read as it grows only when someone watches the progress; otherwise once, at the end.
        for line in follower.poll() if on_progress else ():
            on_progress(line)
        if described["status"] != "RUNNING":
            for line in follower.poll():  # events written between the two calls
                if on_progress:
                    on_progress(line)
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout_seconds} s")
        time.sleep(poll_seconds)

    return follower.result(described, ended=True)


def timeline_table(result: Result) -> str:
    width = max([len(s.name) for s in result.steps] + [4])
    lines = [f"{'step'.ljust(width)}  {'start':>9}  {'duration':>9}  status"]
    for s in result.steps:
        lines.append(f"{s.name.ljust(width)}  {fmt_duration(s.start):>9}  {fmt_duration(s.duration):>9}  {s.status}")
    return "\n".join(lines)


def transitions(events: list[dict[str, Any]]) -> int:
    """State transitions as Step Functions bills them (one per state entered)."""
    return sum(1 for e in events if e["type"].endswith("StateEntered"))


def snapshot(sfn: Any, execution_arn: str) -> Result:
    """One look at an execution, running or ended, without waiting for it."""
    follower = Follower(sfn, execution_arn)
    follower.poll()
    return follower.result(sfn.describe_execution(executionArn=execution_arn))
