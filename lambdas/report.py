"""Report steps: turn a workflow's branch results into one summary document."""

from __future__ import annotations

import json
from typing import Any

from lambdas.common import Registry

registry = Registry("report")
handler = registry.handler

STATUSES = ("created", "updated", "unchanged", "deleted", "drift", "failed", "verified", "unknown")


def _readable(record: dict[str, Any]) -> dict[str, Any]:
    """A caught Lambda error's cause is the runtime's JSON document; keep its message only."""
    cause = record.get("cause")
    if isinstance(cause, str) and cause.startswith("{"):
        try:
            doc = json.loads(cause)
        except ValueError:
            return record
        return {**record, "cause": doc.get("errorMessage", cause)}
    return record


def records(results: Any) -> list[dict[str, Any]]:
    """Every ``record`` a step returned, found anywhere in the results, in order and without repeats."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "record" and isinstance(value, dict) and "resource" in value:
                    if value not in found:
                        found.append(value)
                elif key == "records" and isinstance(value, list):
                    for item in value:
                        if isinstance(item, dict) and "resource" in item and item not in found:
                            found.append(item)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(results)
    return found


# No AWS call: the function only needs what every Lambda needs, its log stream.
@registry.action("summarise_replicate", permissions=[])
def summarise_replicate(plan: str, results: Any) -> dict[str, Any]:
    """Group the replicate steps' records by outcome; flags and canary failures count as drift/failed."""
    out: dict[str, Any] = {"plan": plan, **{s: [] for s in STATUSES}}
    for rec in map(_readable, records(results)):
        status = rec.get("status", "unchanged")
        if rec.get("flags") and status != "failed":
            out["drift"].append({**rec, "status": "drift"})
            if status == "unchanged":
                continue
        out[status if status in STATUSES else "drift"].append(rec)
    out["counts"] = {s: len(out[s]) for s in STATUSES}
    out["ok"] = not out["failed"]
    return out
