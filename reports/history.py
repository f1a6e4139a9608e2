"""Past drills and failovers of a plan, and which way the drills' RTO is going."""

from __future__ import annotations

import statistics
from typing import Any

from reports.model import summarize

# Within this share of the earlier drills' median, the RTO is called steady.
STEADY_TOLERANCE = 0.05
TREND_RULE = (
    "The drills' RTO in the order they ran, split in halves (the middle drill of an odd count in neither): "
    f"improving when the later half's median is more than {STEADY_TOLERANCE:.0%} below the earlier half's, "
    "worsening when more than that above it, steady otherwise; the least-squares slope is given beside it."
)


def recent(sfn: Any, state_machine_arn: str, last: int) -> list[dict[str, Any]]:
    """The ``last`` newest executions of a state machine (none when it is not deployed)."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": min(last, 1000)}
    while len(out) < last:
        try:
            page = sfn.list_executions(**kwargs)
        except sfn.exceptions.StateMachineDoesNotExist:
            return []
        out += page["executions"]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return sorted(out, key=lambda e: e["startDate"], reverse=True)[:last]


def runs(sfn: Any, plan: Any, machines: dict[str, str], last: int) -> dict[str, list[dict[str, Any]]]:
    """kind -> the ``last`` newest executions of that kind with their figures, newest first."""
    return {kind: [summarize(sfn, e["executionArn"], plan, kind) for e in recent(sfn, arn, last)]
            for kind, arn in machines.items()}


def trend(rto_seconds: list[float]) -> dict[str, Any]:
    """Which way the RTO goes over drills given oldest first: direction and the figures it rests on."""
    n = len(rto_seconds)
    doc: dict[str, Any] = {"direction": "unknown", "drills": n, "rto_seconds": list(rto_seconds),
                           "first_half_median_seconds": None, "second_half_median_seconds": None,
                           "change_seconds": None, "change_percent": None, "slope_seconds_per_drill": None,
                           "rule": TREND_RULE}
    if n < 2:
        return doc
    half = n // 2
    first, second = statistics.median(rto_seconds[:half]), statistics.median(rto_seconds[n - half:])
    change = second - first
    mean_x = (n - 1) / 2
    mean_y = statistics.fmean(rto_seconds)
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(rto_seconds)) / sum(
        (i - mean_x) ** 2 for i in range(n))
    steady = abs(change) <= STEADY_TOLERANCE * abs(first)
    direction = "steady" if steady else "improving" if change < 0 else "worsening"
    doc.update(direction=direction, first_half_median_seconds=round(first, 1),
               second_half_median_seconds=round(second, 1), change_seconds=round(change, 1),
               change_percent=None if first == 0 else round(change / first * 100, 1),
               slope_seconds_per_drill=round(slope, 1))
    return doc
