"""Drill steps that belong to no one AWS service: the drill's id and the names of its copies, its
safety checks, and which drills a teardown removes.

A drill rehearses the failover on copies that carry its id: every resource it creates is named
``<base>-drill-<id>`` and tagged ``pilotlight:drill=<id>`` and ``pilotlight:plan=<plan>``; its DNS
record is ``drill-<id>.<record name>`` and its S3 objects are under ``pilotlight-drill/<id>/``. The
failover's own names never contain ``-drill-``, so a failover after a drill cannot take a copy for
the production resource, and a teardown cannot take a production resource for a copy.

The id is derived from the drill's execution (its start time and ARN), so the teardown started by
EventBridge when a drill ends, and the sweep, find the id without reading the drill's state. It
starts with the start time in base 36, so every leftover's age is known from its name alone (a DNS
record has no creation date).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from botocore.exceptions import ClientError

from lambdas import readiness_report
from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import DrillRefused, InvalidRequest

DRILL_TAG = "pilotlight:drill"
PLAN_TAG = "pilotlight:plan"
SUFFIX = "-drill-"
ID_LENGTH = 9  # "d" + 6 base-36 digits of the start time + 2 hex digits of the execution ARN
S3_PREFIX = "pilotlight-drill/"
RECORD_PREFIX = "drill-"
_ID = re.compile(r"d[0-9a-z]{6}[0-9a-f]{2}")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

# Name limits: RDS DB instance and snapshot identifiers 63, Beanstalk environment names 40,
# CNAME prefixes 63 (a DNS label).
DB_NAME_LIMIT, ENV_NAME_LIMIT, CNAME_LIMIT = 63, 40, 63
# An Aurora drill clone's instances are named <clone>-<n>: the clone's name leaves room for "-1".
CLUSTER_NAME_LIMIT = DB_NAME_LIMIT - 2
# The key a drill's marker item has in a global table (lambdas/dynamodb.py).
TABLE_MARKER_PREFIX = "pilotlight-drill#"


def _base36(value: int, width: int) -> str:
    digits = ""
    while value:
        value, digit = divmod(value, 36)
        digits = _ALPHABET[digit] + digits
    return digits.rjust(width, "0")[-width:]


def _epoch(moment: Any) -> float:
    """Epoch seconds of a datetime, ISO text, epoch seconds or milliseconds (EventBridge gives milliseconds)."""
    if hasattr(moment, "timestamp"):  # a datetime (duck-typed: the sandbox patches this module's class)
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(moment, str):
        return dt.datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
    value = float(moment)
    return value / 1000 if value > 1e11 else value


def drill_id(execution_arn: str, started: Any) -> str:
    """The id of the drill run by ``execution_arn`` that started at ``started`` (datetime, ISO text,
    epoch seconds or milliseconds)."""
    return "d" + _base36(int(_epoch(started)), 6) + hashlib.sha256(execution_arn.encode()).hexdigest()[:2]


def is_drill_id(value: str) -> bool:
    return bool(_ID.fullmatch(value or ""))


def started_at(drill: str) -> int:
    """Epoch seconds the drill started, read from its id."""
    value = 0
    for char in drill[1:7]:
        value = value * 36 + _ALPHABET.index(char)
    return value


def name_prefix(base: str, limit: int) -> str:
    """``<base>-drill-``, with ``base`` cut so that a drill id still fits in ``limit`` characters."""
    room = limit - len(SUFFIX) - ID_LENGTH
    return base[:room].rstrip("-") + SUFFIX


def drill_name(base: str, drill: str, limit: int) -> str:
    return name_prefix(base, limit) + drill


def id_in_name(name: str) -> str | None:
    """The drill id a copy's name ends with, or None for a name that is not a drill copy's."""
    head, sep, tail = (name or "").lower().rpartition(SUFFIX)
    return tail if sep and head and is_drill_id(tail) else None


def record_name(record: str, drill: str) -> str:
    return f"{RECORD_PREFIX}{drill}.{record.rstrip('.')}"


def id_in_record(name: str, record: str) -> str | None:
    """The drill id of a drill record of ``record`` (``drill-<id>.<record>``), else None."""
    label, _, rest = name.rstrip(".").lower().partition(".")
    if rest != record.rstrip(".").lower() or not label.startswith(RECORD_PREFIX):
        return None
    drill = label[len(RECORD_PREFIX):]
    return drill if is_drill_id(drill) else None


def object_prefix(drill: str) -> str:
    return f"{S3_PREFIX}{drill}/"


def tags(plan: str, drill: str) -> list[dict[str, str]]:
    return [{"Key": DRILL_TAG, "Value": drill}, {"Key": PLAN_TAG, "Value": plan}]


def tag_value(tag_list: list[dict[str, str]] | None, key: str) -> str | None:
    for tag in tag_list or []:
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def owner(name: str, tags: list[dict[str, Any]] | None, plan: str, drills: dict[str, Any],
          protected: set[str]) -> str | None:
    """The drill the resource ``name`` belongs to when a teardown removes it: tagged with the plan and a selected
    drill whose id its name also ends with, and not protected; else None (any service's resource)."""
    named = id_in_name(name)
    if named is None or name.lower() in protected:
        return None
    if tag_value(tags, PLAN_TAG) != plan or tag_value(tags, DRILL_TAG) != named:
        return None
    return named if selected(named, drills) else None


def selected(drill: str | None, drills: dict[str, Any], now: float | None = None) -> bool:
    """Whether a teardown removes the leftovers of ``drill``.

    ``drills`` is ``{"ids": [...]}`` (exactly these drills: the teardown of one drill, or
    ``drill-cleanup --drill``) or ``{"sweep": {"running": [...], "older_than_seconds": N}}`` (every
    drill that is not running and started more than N seconds ago).
    """
    if not drill or not is_drill_id(drill):
        return False
    if "ids" in drills:
        return drill in drills["ids"]
    sweep = drills.get("sweep") or {}
    if drill in (sweep.get("running") or []):
        return False
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    return now - started_at(drill) >= float(sweep.get("older_than_seconds", 0))


def machine_arn(sibling_arn: str, plan: str, workflow: str) -> str:
    """The ARN of the plan's ``workflow`` state machine, from the ARN of another of its state machines."""
    return sibling_arn.rsplit(":", 1)[0] + f":pilotlight-{plan}-{workflow}"


# -- the Lambda actions ------------------------------------------------------------------------------

registry = Registry("drill")
handler = registry.handler

# Readiness checks on what a drill copies: NOT_READY on one of them refuses a drill (unless forced).
BLOCKING_CHECKS = ("dr-replica", "dr-db-network", "saved-configuration")


def running_executions(sfn: Any, arn: str) -> list[dict[str, Any]]:
    try:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING")
        return [e for page in pages for e in page["executions"]]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "StateMachineDoesNotExist":
            return []
        raise_mapped(exc, f"list running executions of {arn.rsplit(':', 1)[-1]}")
    return []


def _last_readiness(region: str, plan: str) -> dict[str, Any] | None:
    ssm = client("ssm", region)
    try:
        return json.loads(ssm.get_parameter(Name=readiness_report.parameter_name(plan))["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise_mapped(exc, f"read the last readiness result of {plan}")
    except ValueError:
        return {"status": "UNREADABLE", "not_ready": []}
    return None


def _options(trigger: dict[str, Any]) -> dict[str, bool]:
    return {"keep": bool(trigger.get("keep")), "harden": trigger.get("harden", True) is not False,
            "force": bool(trigger.get("force"))}


def copies(doc: dict[str, Any], drill: str) -> dict[str, Any]:
    """The drill's copies of the plan's resources, named and shaped as the failover's steps take them."""
    databases = [{
        "identifier": db["dr_replica_identifier"],  # the live DR replica: the copy's source, never changed
        "primary": db["identifier"],
        "dr_replica_identifier": drill_name(db["dr_replica_identifier"], drill, DB_NAME_LIMIT),
        "failover_instance_class": db["failover_instance_class"],
        "multi_az_on_failover": db["multi_az_on_failover"],
        "resize_before_cutover": db["resize_before_cutover"],
        "subnet_group": db["subnet_group"],
        "security_groups": db["security_groups"],
    } for db in doc.get("databases") or []]
    endpoints = [{"primary_region": doc["primary_region"], "identifier": d["primary"], "live": d["identifier"],
                  "copy": d["dr_replica_identifier"]} for d in databases]
    # The canary write's items (lambdas/canary.py verify_databases): the copies only, never the live replica. A copy
    # (a replica of the live replica, promoted, or a restored snapshot of it) has the master user and password of its
    # source and no RDS-managed secret of its own, so the plan's secret (replicated to the DR region) opens it.
    canary = [{"identifier": d["dr_replica_identifier"], "engine": db.get("engine", "postgres"),
               "credentials_secret": db.get("credentials_secret"), "heartbeat_column": db.get("heartbeat_column")}
              for d, db in zip(databases, doc.get("databases") or [], strict=True)]
    environments = [{
        "name": env["name"],
        "application": env["application"],
        "dr_environment": drill_name(env["dr_environment"], drill, ENV_NAME_LIMIT),
        "cname_prefix": drill_name(env["cname_prefix"], drill, CNAME_LIMIT),
        "drill": {"id": drill, "databases": endpoints},
    } for env in doc.get("environments") or []]
    aurora = [{
        "global_cluster": a["global_cluster"],
        "identifier": a["identifier"],
        "live_cluster": a["dr_cluster"],  # the live secondary: the clone's source, never changed
        "dr_cluster": drill_name(a["dr_cluster"], drill, CLUSTER_NAME_LIMIT),
        "dr_instance_class": a["dr_instance_class"],
        "failover_instance_class": a["failover_instance_class"],
        "failover_readers": a["failover_readers"],
        "subnet_group": a["subnet_group"],
        "security_groups": a["security_groups"],
        # The Data API canary's (lambdas/canary.py verify_aurora): the clone has the live cluster's users.
        "engine": a["engine"],
        "credentials_secret": a["credentials_secret"],
    } for a in doc.get("aurora") or []]
    compute = [{  # the drill group is named by lambdas.autoscaling from the DR group's name and the drill id
        "name": g["name"], "dr_group_name": g["dr_group_name"], "dr_launch_template": g["dr_launch_template"],
        "subnets": g["subnets"], "capacity": g["capacity"], "max_size": g["max_size"],
    } for g in doc.get("compute") or []]
    out: dict[str, Any] = {"id": drill, "databases": databases, "canary": canary, "environments": environments,
                           "compute": compute, "aurora": aurora,
                           "tables": [{"name": t["name"]} for t in doc.get("tables") or []],
                           "buckets": list(doc.get("buckets") or []), "dns": None, "verify_dns": None}
    dns = doc.get("dns")
    if dns:
        env = next((e for e in environments if e["name"] == dns["environment"]), None)
        if env is not None:
            target = f"{env['cname_prefix']}.{doc['dr_region']}.elasticbeanstalk.com"
            name = record_name(dns["record_name"], drill)
            out["dns"] = {"hosted_zone_id": dns["hosted_zone_id"], "record_name": name,
                          "record_type": dns["record_type"], "ttl": dns["ttl"], "target": target}
            out["verify_dns"] = {"zone_id": dns["hosted_zone_id"], "name": name, "record_type": dns["record_type"],
                                 "target": target, "mode": "records"}
    return out


@registry.action(
    "start",
    permissions=["states:ListExecutions", "ssm:GetParameter"],
    resource={"states:ListExecutions": "statemachine", "ssm:GetParameter": "ssm_parameter"},
)
def start(plan: str, region: str, state_machine_arn: str, execution_arn: str, started: str,
          trigger: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Refuse the drill while a failover or an older drill of the plan runs, or while the last readiness
    result is NOT_READY on a database or saved configuration (unless forced); else name its copies."""
    options = _options(trigger if isinstance(trigger, dict) else {})
    sfn = client("stepfunctions", region)
    failovers = running_executions(sfn, machine_arn(state_machine_arn, plan, "failover"))
    if failovers:
        raise DrillRefused(f"failover {failovers[0]['name']} of {plan} is running; a drill does not start "
                           "while a failover runs")
    mine = (_epoch(started), execution_arn)
    for other in running_executions(sfn, state_machine_arn):
        if other["executionArn"] != execution_arn and (_epoch(other["startDate"]), other["executionArn"]) < mine:
            raise DrillRefused(f"drill {other['name']} of {plan} is already running; one drill at a time")
    last = _last_readiness(region, plan)
    blocking = [c for c in (last or {}).get("not_ready") or []
                if c.get("check") in BLOCKING_CHECKS and c.get("status") == "NOT_READY"]
    if blocking and not options["force"]:
        reasons = "; ".join(f"{c['check']} {c['resource']}: {c.get('reason', '')}" for c in blocking)
        raise DrillRefused(f"readiness of {plan} is NOT_READY on what the drill copies ({reasons}); fix it or "
                           "use --force")
    readiness = {"status": (last or {}).get("status", "UNKNOWN"), "at": (last or {}).get("at"),
                 "not_ready": [f"{c.get('check')} {c.get('resource')}" for c in (last or {}).get("not_ready") or []],
                 "overridden": bool(blocking)}
    drill = drill_id(execution_arn, started)
    return {**copies(doc, drill), "options": options, "readiness": readiness, "plan": plan,
            "started": started}


def _input_of(detail: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(detail.get("input") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@registry.action("targets", permissions=["states:ListExecutions"], resource="statemachine")
def targets(plan: str, region: str, state_machine_arn: str, request: dict[str, Any],
            keep_hours: int) -> dict[str, Any]:
    """Which drills this teardown removes, as the filter :func:`selected` takes.

    - the end of a drill (EventBridge's "Step Functions Execution Status Change" event): that drill,
      unless it ran with ``keep`` (a drill stopped by a failover is removed even then);
    - ``{"drill_id": ...}`` (``pilotlight drill-cleanup --drill``): that drill;
    - anything else (the daily schedule, ``pilotlight drill-cleanup``): every drill that is not running
      and started more than ``older_than_hours`` (default: the plan's ``drills.keep_hours``) ago.
    """
    request = request if isinstance(request, dict) else {}
    detail = request.get("detail") if request.get("source") == "aws.states" else None
    if isinstance(detail, dict):
        drill = drill_id(detail["executionArn"], detail["startDate"])
        preempted = detail.get("error") == PREEMPTED
        keep = bool(_input_of(detail).get("keep")) and not preempted
        return {"drills": {"ids": [drill]}, "ids": [drill], "keep": keep, "source": "drill-end",
                "drill_status": detail.get("status"), "execution_arn": detail["executionArn"],
                "reason": f"drill {detail.get('name')} ended {detail.get('status')}"
                          + (" (pre-empted by a failover)" if preempted else "")}
    if request.get("drill_id"):
        drill = str(request["drill_id"])
        if not is_drill_id(drill):
            raise InvalidRequest(f"drill_id {drill!r} is not a drill id (like d{'0' * 8})")
        return {"drills": {"ids": [drill]}, "ids": [drill], "keep": False, "source": "cleanup",
                "reason": f"cleanup of drill {drill}"}
    hours = request.get("older_than_hours", keep_hours)
    sfn = client("stepfunctions", region)
    running = [drill_id(e["executionArn"], e["startDate"])
               for e in running_executions(sfn, machine_arn(state_machine_arn, plan, "drill"))]
    return {"drills": {"sweep": {"running": running, "older_than_seconds": float(hours) * 3600}}, "ids": [],
            "keep": False, "source": "sweep", "running": running,
            "reason": f"sweep of drills not running that started more than {hours:g} h ago"}


# The error a failover stops a running drill with (lambdas/guard.py).
PREEMPTED = "PreemptedByFailover"


@registry.action("record", permissions=["cloudwatch:PutMetricData"])
def record(plan: str, region: str, started: str, restored_at: str) -> dict[str, Any]:
    """Publish the drill's RTO (start to verified service on the copies) as ``DrillRtoSeconds`` (the
    dashboard's "Last drill RTO" widget)."""
    rto = _epoch(restored_at) - _epoch(started)
    try:
        client("cloudwatch", region).put_metric_data(Namespace=readiness_report.METRICS_NAMESPACE, MetricData=[
            {"MetricName": "DrillRtoSeconds", "Dimensions": [{"Name": "Plan", "Value": plan}], "Value": rto,
             "Unit": "Seconds"}])
    except ClientError as exc:
        raise_mapped(exc, "publish DrillRtoSeconds")
    return {"rto_seconds": rto}
