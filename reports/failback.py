"""The failback's own figures, from its output: the downtime of the switch back, its RPO and the data check.

Downtime counts from the moment writes stopped (the approval answered: ``switch.at``) to verified service on the
primary (``restored.at``); the RPO is each reverse replica's ``ReplicaLag`` read just before its promotion; the
data check is what the marker row and the table counts (``data_after``) and the S3 comparison (``s3_check``)
found. The CLI prints them and a report (``kind: failback``) carries them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from workflows.plan import Plan


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = dt.datetime.fromisoformat
    return round((parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds(), 1)


def lags(output: Any) -> dict[str, float | None] | None:
    """Primary database -> its reverse replica's lag at promotion; None when nothing was promoted."""
    promoted = output.get("promoted") if isinstance(output, dict) else None
    if not isinstance(promoted, list):
        return None
    return {str(p.get("identifier")): (p.get("rpo") or {}).get("lag_seconds") for p in promoted
            if isinstance(p, dict)}


def switch(plan: Plan, output: Any) -> dict[str, Any]:
    """The switch back (``reports.schema.FailbackSwitch``): downtime, whether a re-run resumed it, the data check."""
    out = output if isinstance(output, dict) else {}
    switched = out.get("switch") or {}
    restored = (out.get("restored") or {}).get("at")
    data_after = out.get("data_after") or {}
    s3 = out.get("s3_check") or {}
    databases = [{"identifier": str(d.get("identifier")), "source": str(d.get("source")),
                  "marker_found": bool(d.get("marker_found")),
                  "tables": [{"table": str(t["table"]), "before": int(t["before"]), "after": int(t["after"])}
                             for t in d.get("tables") or []]}
                 for d in data_after.get("databases") or []]
    buckets = [{"source": str(b.get("source")), "destination": str(b.get("destination")),
                "dr_objects": b.get("dr_objects"), "primary_objects": b.get("primary_objects"),
                "sample": b.get("sample"), "mismatches": [str(k) for k in b.get("mismatches") or []],
                "ok": bool(b.get("ok"))}
               for b in s3.get("buckets") or []]
    checked = bool(data_after) or not plan.rds_databases
    return {
        "writes_stopped_at": switched.get("at"),
        "restored_at": restored,
        "downtime_seconds": _seconds(switched.get("at"), restored),
        "resumed": bool(switched.get("resumed")),
        "data_check_ok": checked and bool(data_after.get("ok", True)) and s3.get("ok", True) is not False
        and bool(out.get("restored")),
        "databases": databases,
        "buckets": buckets,
    }


def figures(plan: Plan, output: Any) -> dict[str, Any]:
    """What ``pilotlight failback`` prints and puts in its JSON: ``downtime``, ``rpo``, ``data_check``."""
    from workflows.drill_audit import rpo_figures

    done = switch(plan, output)
    return {
        "downtime": {"seconds": done["downtime_seconds"], "from": done["writes_stopped_at"],
                     "to": done["restored_at"], "counted_from": "writes stopped (the approval)",
                     "resumed": done["resumed"]},
        "rpo": rpo_figures(plan, lags(output) or {}),
        "data_check": {"ok": done["data_check_ok"], "databases": done["databases"], "buckets": done["buckets"]},
    }
