"""Readiness results: the result shape every check returns, and the report that scores them.

``lambdas.readiness`` runs the checks and registers the ``report`` step, which calls :func:`publish`
here: score the checks, publish the metrics, keep the result in SSM, notify when the status changed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import client, raise_mapped

READY, NOT_READY, UNKNOWN = "READY", "NOT_READY", "UNKNOWN"
# The overall status of a run made while a failover of the plan runs: not a score (see during_failover).
FAILOVER_IN_PROGRESS = "FAILOVER_IN_PROGRESS"
METRICS_NAMESPACE = "pilotlight"  # infra/iam.py METRICS_NAMESPACE; lambdas cannot import infra
PARAMETER_LIMIT = 4096  # characters in a standard-tier SSM parameter


def parameter_name(plan: str) -> str:
    """Where the last readiness result of a plan is kept (SSM Parameter Store, DR region)."""
    return f"/pilotlight/{plan}/readiness"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def result(check: str, resource: str, status: str, reason: str, /, **evidence: Any) -> dict[str, Any]:
    return {"check": check, "resource": resource, "status": status, "reason": reason, "evidence": evidence}


def _readable_cause(cause: Any) -> str:
    if isinstance(cause, str) and cause.startswith("{"):
        try:
            return str(json.loads(cause).get("errorMessage", cause))
        except ValueError:
            return cause
    return str(cause)


def flatten(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The check results of every item; an item whose Lambda failed counts as one UNKNOWN check."""
    out: list[dict[str, Any]] = []
    for item in results or []:
        if "checks" in item:
            out.extend(item["checks"])
        elif "failed" in item:
            f = item["failed"]
            out.append(result(f"{f.get('kind')}-checks", str(f.get("resource")), UNKNOWN,
                              f"checks of {f.get('resource')} could not run: {f.get('error')}: "
                              f"{_readable_cause(f.get('cause'))}"))
    return out


def overall(checks: list[dict[str, Any]]) -> str:
    statuses = {c["status"] for c in checks}
    if NOT_READY in statuses:
        return NOT_READY
    if UNKNOWN in statuses or not checks:
        return UNKNOWN
    return READY


def _metrics(plan: str, checks: list[dict[str, Any]], score: float) -> list[dict[str, Any]]:
    dims = [{"Name": "Plan", "Value": plan}]
    data = [{"MetricName": "ReadinessScore", "Dimensions": dims, "Value": round(score * 100, 2), "Unit": "Percent"},
            {"MetricName": "NotReadyChecks", "Dimensions": dims, "Unit": "Count",
             "Value": float(sum(c["status"] == NOT_READY for c in checks))}]
    lags = [c["evidence"]["lag_seconds"] for c in checks if c["check"] in ("dr-replica", "az2-replica")
            and c["evidence"].get("lag_seconds") is not None]
    if lags:
        data.append({"MetricName": "ReplicaLagSeconds", "Dimensions": dims, "Value": float(max(lags)),
                     "Unit": "Seconds"})
    ages = [c["evidence"]["age_hours"] for c in checks if c["check"] == "dr-ami"
            and c["evidence"].get("age_hours") is not None]
    if ages:
        data.append({"MetricName": "AmiAgeHours", "Dimensions": dims, "Value": float(max(ages)), "Unit": "None"})
    return data


def summary(doc: dict[str, Any]) -> str:
    """The last result as kept in SSM: small enough for a standard parameter (not-ready reasons shortened)."""
    keep = {k: doc[k] for k in ("plan", "status", "score", "ready", "total", "at", "execution")}
    keep["not_ready"] = [{"check": c["check"], "resource": c["resource"], "status": c["status"],
                          "reason": c["reason"][:200]} for c in doc["checks"] if c["status"] != READY]
    text = json.dumps(keep, separators=(",", ":"))
    while len(text) > PARAMETER_LIMIT and keep["not_ready"]:
        keep["not_ready"].pop()
        keep["truncated"] = True
        text = json.dumps(keep, separators=(",", ":"))
    return text



def publish(plan: str, region: str, topic_arn: str, results: list[dict[str, Any]],
            execution: str | None = None) -> dict[str, Any]:
    """Score the checks, publish the metrics, keep the result, notify when the overall status changed."""
    checks = flatten(results)
    ready = sum(c["status"] == READY for c in checks)
    score = ready / len(checks) if checks else 0.0
    status = overall(checks)
    doc: dict[str, Any] = {"plan": plan, "status": status, "score": round(score, 4), "ready": ready,
                           "total": len(checks), "at": now().isoformat(timespec="seconds"),
                           "execution": execution, "checks": checks}
    metric_data = _metrics(plan, checks, score)
    try:
        client("cloudwatch", region).put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=metric_data)
    except ClientError as exc:
        raise_mapped(exc, f"publish readiness metrics of {plan}")
    ssm = client("ssm", region)
    name = parameter_name(plan)
    try:
        previous = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"]).get("status")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise_mapped(exc, f"read {name}")
        previous = None
    changed = previous != status
    if changed:
        # Publish before saving: if the save fails, the next run notifies again rather than never.
        message = {"plan": plan, "status": status, "previous_status": previous, "score": doc["score"],
                   "at": doc["at"], "execution": execution,
                   "not_ready": [f"{c['check']} {c['resource']}: {c['reason']}"
                                 for c in checks if c["status"] != READY]}
        try:
            client("sns", region).publish(TopicArn=topic_arn, Message=json.dumps(message, indent=2),
                                          Subject=f"pilotlight: {plan} readiness {previous or 'new'} -> {status}"[:100])
        except ClientError as exc:
            raise_mapped(exc, f"publish readiness change of {plan} to {topic_arn}")
    try:
        ssm.put_parameter(Name=name, Value=summary(doc), Type="String", Overwrite=True, Tier="Standard",
                          Description=f"pilotlight {plan}: last readiness result")
    except ClientError as exc:
        raise_mapped(exc, f"save {name}")
    return {**doc, "previous_status": previous, "notified": changed,
            "metrics": {m["MetricName"]: m["Value"] for m in metric_data}}


def during_failover(plan: str, results: list[dict[str, Any]], execution: str | None,
                    failovers: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of a run made while a failover of the plan runs (``failovers``: its running executions).

    A failover changes on purpose what the checks compare with the pilot light (the replica is promoted, the DR
    environment launched, DNS moved), so a NOT_READY read now is no finding: the overall status is
    FAILOVER_IN_PROGRESS, every check that is not READY is reported UNKNOWN with what it saw, and nothing is
    scored, published, kept or notified; the last scored result stays the one before the failover.
    """
    first = min(failovers, key=lambda e: (e["startDate"].timestamp() if hasattr(e.get("startDate"), "timestamp")
                                          else 0.0, e["executionArn"]))
    started = first.get("startDate")
    started_text = started.isoformat() if hasattr(started, "isoformat") else str(started)
    note = f"read while failover {first['name']} (started {started_text}) runs"
    checks = [c if c["status"] == READY else {**c, "status": UNKNOWN, "reason": f"{note}: {c['reason']}"}
              for c in flatten(results)]
    return {"plan": plan, "status": FAILOVER_IN_PROGRESS, "score": None,
            "ready": sum(c["status"] == READY for c in checks), "total": len(checks),
            "at": now().isoformat(timespec="seconds"), "execution": execution, "checks": checks,
            "failover": {"execution": first["name"], "execution_arn": first["executionArn"], "started": started_text},
            "reason": f"failover {first['name']} of {plan} is running: readiness is not scored during a failover; "
                      "the last scored result is kept",
            "previous_status": None, "notified": False, "metrics": {}}
