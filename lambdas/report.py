"""Report steps: turn a workflow's branch results into one summary document; record a terminal failure."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, aws_errors, client
from lambdas.errors import PilotLightError

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


@registry.action("summarise_replicate", permissions=["sns:Publish"], resource="topic")
def summarise_replicate(plan: str, results: Any, topic_arn: str | None = None, region: str | None = None,
                        execution: str | None = None) -> dict[str, Any]:
    """Group the replicate steps' records by outcome; flags and canary failures count as drift/failed.

    A run with failed records still succeeds (one broken branch must not hide what the others did), so no
    failure rule sees it: the summary itself tells the plan's topic which resources failed and why."""
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
    if out["failed"] and topic_arn and region:
        lines = [f"- {r.get('resource')}: {r.get('error') or 'failed'}: {r.get('cause') or ''}".rstrip(": ")
                 for r in out["failed"]]
        message = {"subject": f"pilotlight {plan}: replicate left {len(lines)} resource(s) failed", "plan": plan,
                   "workflow": "replicate", "execution_arn": execution, "failed": out["failed"],
                   "text": "\n".join(lines)}
        with aws_errors(f"notify {topic_arn}"):
            client("sns", region).publish(TopicArn=topic_arn, Subject=message["subject"][:100],
                                          Message=json.dumps(message, default=str))
        out["notified"] = topic_arn
    return out


# -- a terminal failure, recorded before the execution ends ------------------------------------------------

_FAILURE_EVENTS = ("LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut", "FailStateEntered",
                   "ExecutionFailed")
# The states the record itself adds (workflows/asl.py failure_states): never the failed step.
RECORD_STATES = ("RecordFailure", "Failed", "FailedUnrecorded", "CaughtError")


def failed_state(history: list[dict[str, Any]], error: str | None) -> str | None:
    """The state where ``error`` was raised: the newest failure event with that error, followed back to the state
    it belongs to (when one Parallel branch fails, the others are cancelled and may fail after it)."""
    by_id = {e["id"]: e for e in history}
    fallback = None
    for event in sorted(history, key=lambda e: e["id"], reverse=True):
        if event["type"] not in _FAILURE_EVENTS:
            continue
        node: dict[str, Any] | None = event
        while node is not None and not node["type"].endswith("StateEntered"):
            node = by_id.get(node.get("previousEventId", 0))
        if node is None:
            continue
        name = node["stateEnteredEventDetails"]["name"]
        if name in RECORD_STATES:
            continue
        details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
        if error is None or details.get("error") == error:
            return name
        fallback = fallback or name
    return fallback


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _database_state(region: str, identifier: str) -> dict[str, Any]:
    rds = client("rds", region)
    try:
        (db,) = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "DBInstanceNotFound":
            return {"state": "absent"}
        raise
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    return {"state": db.get("DBInstanceStatus", "unknown"), "replica_of": source, "multi_az": db.get("MultiAZ"),
            "instance_class": db.get("DBInstanceClass"),
            "pending": sorted(db.get("PendingModifiedValues") or {})}


def _environment_state(region: str, application: str, name: str) -> dict[str, Any]:
    eb = client("elasticbeanstalk", region)
    found = eb.describe_environments(ApplicationName=application, EnvironmentNames=[name],
                                     IncludeDeleted=False)["Environments"]
    if not found:
        return {"state": "absent"}
    env = found[0]
    return {"state": env.get("Status", "unknown"), "health": env.get("Health"), "cname": env.get("CNAME")}


def _record_state(zone_id: str, name: str, record_type: str) -> dict[str, Any]:
    r53 = client("route53", "us-east-1")
    fqdn = name.rstrip(".") + "."
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType=record_type,
                                         MaxItems="10")["ResourceRecordSets"]
    mine = [s for s in sets if s["Name"] == fqdn and s["Type"] == record_type]
    if not mine:
        return {"state": "absent"}
    values = [r["Value"] for s in mine for r in s.get("ResourceRecords") or []]
    values += [s["AliasTarget"]["DNSName"] for s in mine if s.get("AliasTarget")]
    return {"state": "present", "values": values,
            **({"set_identifiers": [s["SetIdentifier"] for s in mine]} if any("SetIdentifier" in s for s in mine)
               else {})}


def _resource_state(resource: dict[str, Any]) -> dict[str, Any]:
    kind = resource["kind"]
    try:
        with aws_errors(f"describe {kind} {resource.get('name')}"):
            if kind == "database":
                return _database_state(resource["region"], resource["name"])
            if kind == "environment":
                return _environment_state(resource["region"], resource["application"], resource["name"])
            if kind == "record":
                return _record_state(resource["zone_id"], resource["name"], resource["record_type"])
    except PilotLightError as exc:  # the record is evidence: a resource that cannot be read says why
        return {"state": "unknown", "why": f"{type(exc).__name__}: {exc}"}
    return {"state": "unknown", "why": f"no description for kind {kind}"}


def _drill_resources(drill: dict[str, Any], region: str) -> list[dict[str, Any]]:
    out = [{"kind": "database", "region": region, "name": db["dr_replica_identifier"]}
           for db in drill.get("databases") or [] if db.get("dr_replica_identifier")]
    out += [{"kind": "environment", "region": region, "application": env["application"],
             "name": env["dr_environment"]} for env in drill.get("environments") or [] if env.get("dr_environment")]
    dns = drill.get("dns")
    if isinstance(dns, dict) and dns.get("record_name"):
        out.append({"kind": "record", "zone_id": dns["hosted_zone_id"], "name": dns["record_name"],
                    "record_type": dns["record_type"]})
    return out


def _message(cause: Any) -> str:
    """A Lambda error's cause is the runtime's JSON document: its message; any other cause as it is."""
    if isinstance(cause, str) and cause.startswith("{"):
        try:
            doc = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(doc, dict):
            return str(doc.get("errorMessage") or cause)
    return "" if cause is None else str(cause)


def _describe(resource: dict[str, Any], state: dict[str, Any]) -> str:
    where = f" ({resource['region']})" if resource.get("region") else ""
    facts = [f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in state.items()
             if k not in ("state", "why") and v not in (None, [], "")]
    what = state["state"] + (f": {state['why']}" if state.get("why") else "")
    return f"- {resource['kind']} {resource['name']}{where}: {what}" + (f"; {'; '.join(facts)}" if facts else "")


@registry.action(
    "record_failure",
    permissions=["states:GetExecutionHistory", "rds:DescribeDBInstances", "elasticbeanstalk:DescribeEnvironments",
                 "route53:ListResourceRecordSets"],
    resource={"states:GetExecutionHistory": "workflow_execution",
              "rds:DescribeDBInstances": ("db", "source_db", "drill_db"),
              "elasticbeanstalk:DescribeEnvironments": ("environment", "drill_environment", "source_environment"),
              "route53:ListResourceRecordSets": "hostedzone"},
)
def record_failure(plan: str, workflow: str, region: str, execution_arn: str, error: dict[str, Any],
                   resources: list[dict[str, Any]] | None = None, drill: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """A terminal error caught at the top of a workflow: the state that failed (from the execution's history),
    the error and its cause, and what each resource the workflow acts on looks like now. The workflow then
    ends FAILED with the same error and this record, as text, as its cause; the plan's failure rule sends
    that cause to the plan's topic. Never raises for a resource it cannot read: it says so in the record."""
    name = str((error or {}).get("Error") or "Unknown")
    cause = _message((error or {}).get("Cause"))
    step = (error or {}).get("State")  # a bounded wait that ran out names itself
    try:
        if step is None:
            with aws_errors(f"read the history of {execution_arn}"):
                step = failed_state(_history(client("stepfunctions", region), execution_arn), name)
    except PilotLightError as exc:
        cause = f"{cause} (the failed state could not be read: {exc})"
    touched = list(resources or []) + (_drill_resources(drill, region) if isinstance(drill, dict) else [])
    now = [_resource_state(r) for r in touched]
    states = [{**r, **s} for r, s in zip(touched, now, strict=True)]
    lines = [f"{workflow} of plan {plan} failed at {step or 'an unknown state'}: {name}: {cause}".rstrip(": ")]
    if states:
        lines.append("Resources now:")
        lines += [_describe(r, s) for r, s in zip(touched, now, strict=True)]
    return {"plan": plan, "workflow": workflow, "failed_state": step, "error": name, "cause": cause,
            "resources": states, "text": "\n".join(lines)}
