"""DynamoDB global tables (version 2019.11.21) steps: keep a replica of each plan table in the DR region,
measure replication against the RPO, and show on failover (and in a drill) that the DR replica takes a
write and serves it back; move the application's write region when the plan pins writes to one region.

Replicate adds the DR replica with ``UpdateTable`` ``ReplicaUpdates`` ``Create``. DynamoDB refuses it
unless the table's stream is enabled with ``NEW_AND_OLD_IMAGES`` and its write capacity is on-demand or
under auto scaling; pilotlight never changes either on the user's table: it reports ``drift`` with the
exact fix. (Enabling a missing stream would be additive, but ``UpdateTable`` takes one kind of change at a
time and the table is UPDATING afterwards, and changing an existing stream's view type means disabling it,
which gives the table a new stream ARN under every existing consumer: the table owner's decision.)

The marker items the failover and drills write carry ``pilotlight_marker`` (who wrote them: the marker),
``pilotlight_written_at`` and, for a drill, ``pilotlight_drill`` / ``pilotlight_plan``. A marker is written
only where no item has its key (a condition), and deleted only while it still carries the marker, so an
application item that happens to have the same key (a numeric key derived from the marker) is never
overwritten or removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.common import Registry, aws_errors, client, raise_mapped
from lambdas.errors import PreconditionFailed, ReadBackMismatch, ResourceNotFound, ResourceNotReady

registry = Registry("dynamodb")
handler = registry.handler

STREAM_VIEW = "NEW_AND_OLD_IMAGES"
MARKER_ATTRIBUTE = "pilotlight_marker"
WRITTEN_AT_ATTRIBUTE = "pilotlight_written_at"
DRILL_ATTRIBUTE = "pilotlight_drill"
PLAN_ATTRIBUTE = "pilotlight_plan"
DRILL_PREFIX = drill.TABLE_MARKER_PREFIX  # a drill's marker: pilotlight-drill#<id>
LATENCY_WINDOW = dt.timedelta(minutes=5)
# A sweep (no drill ids) finds leftover drill markers with a Scan filtered on DRILL_ATTRIBUTE: at most this
# many pages (1 MB each) per table and run, so a large table costs a bounded read; the rest is left to the
# next sweep (``truncated`` names the tables).
SWEEP_SCAN_PAGES = 10
# Replica states that will not become ACTIVE by waiting (DescribeTable ReplicaStatus).
REPLICA_FAILED = ("CREATION_FAILED", "REGION_DISABLED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS", "ARCHIVED",
                  "ARCHIVING", "REPLICATION_NOT_AUTHORIZED")


# -- reading a table ---------------------------------------------------------------------------------

def describe_table(ddb: Any, table: str) -> dict[str, Any] | None:
    """DescribeTable's ``Table``, or None when there is no such table in the client's region."""
    try:
        return ddb.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise_mapped(exc, f"describe table {table}")
    return None


def replicas(desc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The table's other replicas by region (DescribeTable lists them in ``Replicas``)."""
    return {r["RegionName"]: r for r in desc.get("Replicas") or [] if r.get("RegionName")}


def billing_mode(desc: dict[str, Any]) -> str:
    # BillingModeSummary is absent for a table that has always been provisioned.
    return (desc.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"


def scalable_targets(region: str, table: str) -> dict[str, dict[str, Any]]:
    """The table's Application Auto Scaling targets in ``region``, by scalable dimension."""
    aas = client("application-autoscaling", region)
    with aws_errors(f"read the auto scaling targets of table {table} in {region}"):
        found = aas.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])
        return {t["ScalableDimension"]: t for t in found.get("ScalableTargets") or []}
    return {}


def prerequisite_drift(primary_region: str, region: str, desc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Why DynamoDB would refuse a replica of the table, and the exact fix for each (empty: it would not)."""
    table = desc["TableName"]
    drift: list[str] = []
    fixes: list[str] = []
    stream = desc.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled"):
        drift.append(f"table {table} has no stream; a replica needs one with {STREAM_VIEW}")
        fixes.append(f"aws dynamodb update-table --region {primary_region} --table-name {table} "
                     f"--stream-specification StreamEnabled=true,StreamViewType={STREAM_VIEW}")
    elif stream.get("StreamViewType") != STREAM_VIEW:
        drift.append(f"table {table}'s stream has view type {stream.get('StreamViewType')}; a replica needs "
                     f"{STREAM_VIEW}")
        fixes.append(f"disable the stream (aws dynamodb update-table --region {primary_region} --table-name {table} "
                     f"--stream-specification StreamEnabled=false), then enable it with "
                     f"StreamEnabled=true,StreamViewType={STREAM_VIEW}: the stream gets a new ARN, so move its "
                     "consumers (Lambda triggers, Kinesis adapters) to it")
    if billing_mode(desc) != "PAY_PER_REQUEST" and \
            "dynamodb:table:WriteCapacityUnits" not in scalable_targets(primary_region, table):
        drift.append(f"table {table} has provisioned write capacity without auto scaling; a replica needs "
                     "on-demand or auto scaled writes")
        fixes.append(f"register write auto scaling (aws application-autoscaling register-scalable-target --region "
                     f"{primary_region} --service-namespace dynamodb --resource-id table/{table} "
                     "--scalable-dimension dynamodb:table:WriteCapacityUnits --min-capacity <n> --max-capacity <m>, "
                     f"then put-scaling-policy), or switch it to on-demand (aws dynamodb update-table --region "
                     f"{primary_region} --table-name {table} --billing-mode PAY_PER_REQUEST)")
    return drift, fixes


# -- replicate: the DR replica -----------------------------------------------------------------------

_DESCRIBE = ["dynamodb:DescribeTable"]
# Adding a replica: UpdateTable on the table, and, as DynamoDB creates the replica with the caller's
# permissions, CreateTable, CreateTableReplica and the item calls of the backfill on the replica's table
# (Developer Guide, "DynamoDB global tables security"); DynamoDB creates the replication service-linked role
# (AWSServiceRoleForDynamoDBReplication) with the caller's iam:CreateServiceLinkedRole the first time.
_REPLICA_CREATE = ["dynamodb:CreateTable", "dynamodb:CreateTableReplica", "dynamodb:Scan", "dynamodb:Query",
                   "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
                   "dynamodb:BatchWriteItem"]


def _record(table: str, region: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"resource": f"global table {table} ({region})", "status": status, **extra}


@registry.action(
    "ensure_replica",
    permissions=[*_DESCRIBE, "dynamodb:UpdateTable", *_REPLICA_CREATE, "iam:CreateServiceLinkedRole",
                 "application-autoscaling:DescribeScalableTargets"],
    resource={"dynamodb:DescribeTable": "table", "dynamodb:UpdateTable": "source_table",
              **dict.fromkeys(_REPLICA_CREATE, "dr_table"), "iam:CreateServiceLinkedRole": "replication_slr",
              "application-autoscaling:DescribeScalableTargets": "*"},
)
def ensure_replica(primary_region: str, region: str, table: str) -> dict[str, Any]:
    """Add the table's replica in ``region`` when it has none; ``drift`` (with the fix) when DynamoDB would refuse.

    Done at once (the loop is skipped) when the replica is ACTIVE, and when nothing will come of waiting
    (drift, failed); else the check polls until the new replica is ACTIVE.
    """
    ddb = client("dynamodb", primary_region)
    desc = describe_table(ddb, table)
    if desc is None:
        reason = f"table {table} does not exist in {primary_region}"
        return {"done": True, "attempt": 0, "record": _record(table, region, "failed", error="InvalidRequest",
                                                              reason=reason)}
    existing = replicas(desc).get(region)
    if existing is not None:
        status = existing.get("ReplicaStatus")
        if status in REPLICA_FAILED:
            return {"done": True, "attempt": 0, "record": _record(
                table, region, "failed", replica_status=status,
                reason=f"replica in {region} is {status}: {existing.get('ReplicaStatusDescription', '')}".strip())}
        done = status == "ACTIVE" and desc.get("TableStatus") == "ACTIVE"
        return {"done": done, "attempt": 0, "replica_status": status,
                "record": _record(table, region, "unchanged", replica_status=status)}
    drift, fixes = prerequisite_drift(primary_region, region, desc)
    other = describe_table(client("dynamodb", region), table)
    if other is not None:
        drift.append(f"a table named {table} already exists in {region} and is not a replica of {table} in "
                     f"{primary_region}; DynamoDB creates the replica itself")
        fixes.append(f"delete (or rename) the table {table} in {region}, after copying what it holds")
    if drift:
        return {"done": True, "attempt": 0, "record": _record(table, region, "drift", drift=drift, fixes=fixes)}
    if desc.get("TableStatus") != "ACTIVE":
        raise ResourceNotReady(f"table {table} in {primary_region} is {desc.get('TableStatus')}; a replica can be "
                               "added once it is ACTIVE")
    try:
        out = ddb.update_table(TableName=table, ReplicaUpdates=[{"Create": {"RegionName": region}}])
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ResourceInUseException":
            raise ResourceNotReady(f"table {table} in {primary_region} is being updated: "
                                   f"{exc.response['Error'].get('Message', '')}") from exc
        if code == "ValidationException":
            return {"done": True, "attempt": 0, "record": _record(
                table, region, "failed", error="InvalidRequest", reason=exc.response["Error"].get("Message", ""))}
        raise_mapped(exc, f"add a replica of {table} in {region}")
    status = replicas(out.get("TableDescription") or {}).get(region, {}).get("ReplicaStatus", "CREATING")
    return {"done": False, "attempt": 0, "replica_status": status,
            "record": _record(table, region, "created", replica_status=status)}


@registry.action("check_replica", permissions=_DESCRIBE, resource="table")
def check_replica(primary_region: str, region: str, table: str, record: dict[str, Any] | None = None,
                  attempt: int = 0) -> dict[str, Any]:
    """Done when the replica in ``region`` (and the table) is ACTIVE, or will not become so (record ``failed``)."""
    record = dict(record or _record(table, region, "unchanged"))
    if record.get("status") in ("drift", "failed"):
        return {"done": True, "attempt": attempt + 1, "record": record}
    desc = describe_table(client("dynamodb", primary_region), table)
    if desc is None:
        raise ResourceNotFound(f"table {table} does not exist in {primary_region}")
    replica = replicas(desc).get(region)
    status = replica.get("ReplicaStatus") if replica else None
    record["replica_status"] = status
    if status in REPLICA_FAILED or (replica is None and record.get("status") == "created"):
        record.update(status="failed", reason=f"replica in {region} is {status or 'gone'}"
                      + (f": {replica.get('ReplicaStatusDescription')}" if replica and
                         replica.get("ReplicaStatusDescription") else ""))
        return {"done": True, "attempt": attempt + 1, "replica_status": status, "record": record}
    done = status == "ACTIVE" and desc.get("TableStatus") == "ACTIVE"
    return {"done": done, "attempt": attempt + 1, "replica_status": status, "table_status": desc.get("TableStatus"),
            "record": record}


@registry.action("replication_latency", permissions=["cloudwatch:GetMetricStatistics"], resource="*")
def replication_latency(primary_region: str, region: str, table: str, rpo_minutes: int,
                        fast: bool = False) -> dict[str, Any]:
    """ReplicationLatency from the primary to ``region`` (worst of the last 5 minutes) against the plan's RPO.

    DynamoDB publishes it in the writing region (``AWS/DynamoDB``, dimensions ``TableName`` and
    ``ReceivingRegion``), so it is read in the primary region: with ``fast`` (the failover, the primary
    possibly down) the call fails fast and its error propagates for the workflow to catch. DynamoDB
    publishes it only for writes it replicates: without datapoints, the table's ConsumedWriteCapacityUnits
    in the primary over the same window decide. No writes: nothing is waiting to replicate (lag 0,
    ``idle``). Writes without any latency datapoint: UNKNOWN (``written_units`` says how many; replication
    is stalled or not running). Same shape as :func:`lambdas.rds.replica_lag`.
    """
    cw = client("cloudwatch", primary_region, fast=fast)
    end = dt.datetime.now(dt.UTC)
    with aws_errors(f"read ReplicationLatency of {table} to {region}"):
        points = cw.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency",
            Dimensions=[{"Name": "TableName", "Value": table}, {"Name": "ReceivingRegion", "Value": region}],
            StartTime=end - LATENCY_WINDOW, EndTime=end, Period=60, Statistics=["Maximum"])["Datapoints"]
    resource = f"replication latency {table} ({primary_region} -> {region})"
    rpo = rpo_minutes * 60
    if not points:
        with aws_errors(f"read ConsumedWriteCapacityUnits of {table} in {primary_region}"):
            written = cw.get_metric_statistics(
                Namespace="AWS/DynamoDB", MetricName="ConsumedWriteCapacityUnits",
                Dimensions=[{"Name": "TableName", "Value": table}], StartTime=end - LATENCY_WINDOW, EndTime=end,
                Period=int(LATENCY_WINDOW.total_seconds()), Statistics=["Sum"])["Datapoints"]
        units = float(sum(p["Sum"] for p in written))
        if not units:
            record = {"resource": resource, "status": "verified", "lag_seconds": 0.0, "rpo_seconds": rpo,
                      "idle": True}
            return {"identifier": table, "lag_seconds": 0.0, "rpo_seconds": rpo, "status": "WITHIN_RPO",
                    "idle": True, "written_units": 0.0, "record": record}
        record = {"resource": resource, "status": "unknown", "lag_seconds": None, "rpo_seconds": rpo,
                  "written_units": units}
        return {"identifier": table, "lag_seconds": None, "rpo_seconds": rpo, "status": "UNKNOWN",
                "written_units": units, "record": record}
    lag = max(p["Maximum"] for p in points) / 1000.0  # milliseconds
    ok = lag <= rpo
    record = {"resource": resource, "status": "verified" if ok else "drift", "lag_seconds": lag, "rpo_seconds": rpo}
    return {"identifier": table, "lag_seconds": lag, "rpo_seconds": rpo, "status": "WITHIN_RPO" if ok else "ABOVE_RPO",
            "record": record}


# -- failover and drills: a write and a read in the DR replica ----------------------------------------

def marker_key(desc: dict[str, Any], marker: str) -> dict[str, Any]:
    """The marker item's key: each key attribute (KeySchema) of its type (AttributeDefinitions) from ``marker``."""
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions") or []}
    key: dict[str, Any] = {}
    for element in desc.get("KeySchema") or []:
        name = element["AttributeName"]
        kind = types.get(name, "S")
        if kind == "N":
            # A number from the marker (up to 15 digits: exact in every SDK's number type).
            key[name] = {"N": str(int(hashlib.sha256(marker.encode()).hexdigest(), 16) % 10**15)}
        elif kind == "B":
            key[name] = {"B": marker.encode()}
        else:
            key[name] = {"S": marker}
    return key


def _require_active(ddb: Any, region: str, table: str) -> dict[str, Any]:
    desc = describe_table(ddb, table)
    if desc is None:
        raise ResourceNotFound(f"table {table} does not exist in {region}")
    if desc.get("TableStatus") != "ACTIVE":
        raise ResourceNotReady(f"the replica of {table} in {region} is {desc.get('TableStatus')}, not ACTIVE")
    return desc


def _json_key(key: dict[str, Any]) -> dict[str, Any]:
    """The key as JSON (binary values as text)."""
    return {k: ({"B": v["B"].decode(errors="replace")} if isinstance(v.get("B"), bytes) else v) for k, v in key.items()}


def _write_read_delete(region: str, table: str, marker: str, extra: dict[str, Any]) -> dict[str, Any]:
    ddb = client("dynamodb", region)
    desc = _require_active(ddb, region, table)
    key = marker_key(desc, marker)
    wrote = dt.datetime.now(dt.UTC).isoformat()
    item = {MARKER_ATTRIBUTE: {"S": marker}, WRITTEN_AT_ATTRIBUTE: {"S": wrote},
            **{k: {"S": str(v)} for k, v in extra.items()}, **key}
    names = {f"#k{i}": name for i, name in enumerate(key)}
    absent = " AND ".join(f"attribute_not_exists({n})" for n in names)
    try:
        # Written only where no item has the key, or over our own marker left by an earlier attempt.
        ddb.put_item(TableName=table, Item=item, ConditionExpression=f"({absent}) OR #m = :m",
                     ExpressionAttributeNames={**names, "#m": MARKER_ATTRIBUTE},
                     ExpressionAttributeValues={":m": {"S": marker}})
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise PreconditionFailed(f"an item with key {_json_key(key)} that pilotlight did not write exists in "
                                     f"{table} ({region}); it is left alone") from exc
        raise_mapped(exc, f"write marker {marker} to {table} in {region}")
    with aws_errors(f"read marker {marker} back from {table} in {region}"):
        got = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    deleted = _delete_marker(ddb, table, key, MARKER_ATTRIBUTE, marker, region)
    if got != item:
        raise ReadBackMismatch(f"marker {marker} read back from {table} in {region} (ConsistentRead) is "
                               f"{'missing' if got is None else 'not what was written'}")
    return {"done": True, "table": table, "region": region, "key": _json_key(key), "wrote": wrote,
            "read_back": True, "deleted": deleted}


def _delete_marker(ddb: Any, table: str, key: dict[str, Any], attribute: str, value: str, region: str) -> bool:
    """Delete the item at ``key`` only while ``attribute`` is ``value`` (ours); True when one was deleted."""
    try:
        out = ddb.delete_item(TableName=table, Key=key, ConditionExpression="#a = :v", ReturnValues="ALL_OLD",
                              ExpressionAttributeNames={"#a": attribute},
                              ExpressionAttributeValues={":v": {"S": value}})
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False  # gone, or not ours
        raise_mapped(exc, f"delete marker {value} from {table} in {region}")
    return bool(out.get("Attributes"))


_MARKER_PERMISSIONS = [*_DESCRIBE, "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"]


@registry.action("verify_write_read", permissions=_MARKER_PERMISSIONS, resource="dr_table")
def verify_write_read(region: str, table: str, marker: str) -> dict[str, Any]:
    """Write a marker item to the DR replica, read it back (strongly consistent) and delete it."""
    return _write_read_delete(region, table, marker, {})


@registry.action("set_write_region", permissions=["ssm:GetParameter", "ssm:PutParameter"],
                 resource="write_region_parameter")
def set_write_region(region: str, parameter: str, value: str) -> dict[str, Any]:
    """Set the application's write-region parameter (DR region) to ``value``; unchanged when it already is."""
    ssm = client("ssm", region)
    previous: str | None = None
    exists = True
    try:
        previous = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise_mapped(exc, f"read parameter {parameter} in {region}")
        exists = False
    changed = previous != value
    if changed:
        # An existing parameter keeps its type (PutParameter's Type is required only to create one).
        params: dict[str, Any] = {"Name": parameter, "Value": value, "Overwrite": True}
        if not exists:
            params["Type"] = "String"
        with aws_errors(f"set parameter {parameter} in {region}"):
            ssm.put_parameter(**params)
    return {"parameter": parameter, "previous": previous, "value": value, "changed": changed}


@registry.action("drill_marker", permissions=_MARKER_PERMISSIONS, resource="dr_table")
def drill_marker(region: str, plan: str, drill_id: str, table: str) -> dict[str, Any]:
    """A drill's write and read in the DR replica: :func:`verify_write_read` under the drill's marker key
    (``pilotlight-drill#<id>``), the item tagged with the drill and plan so a teardown finds a leftover."""
    if not drill.is_drill_id(drill_id):
        raise PreconditionFailed(f"{drill_id!r} is not a drill id")
    out = _write_read_delete(region, table, DRILL_PREFIX + drill_id, {DRILL_ATTRIBUTE: drill_id, PLAN_ATTRIBUTE: plan})
    return {**out, "drill": drill_id}


def _sweep(ddb: Any, table: str, desc: dict[str, Any], plan: str) -> tuple[list[tuple[dict[str, Any], str]], bool]:
    """Drill markers of ``plan`` in the table (key, drill id), from at most SWEEP_SCAN_PAGES Scan pages."""
    keys = [k["AttributeName"] for k in desc.get("KeySchema") or []]
    names = {f"#k{i}": k for i, k in enumerate(keys)}
    params: dict[str, Any] = {
        "TableName": table, "FilterExpression": "attribute_exists(#d) AND #p = :plan",
        "ProjectionExpression": ", ".join([*names, "#d"]),
        "ExpressionAttributeNames": {**names, "#d": DRILL_ATTRIBUTE, "#p": PLAN_ATTRIBUTE},
        "ExpressionAttributeValues": {":plan": {"S": plan}},
    }
    found: list[tuple[dict[str, Any], str]] = []
    for _ in range(SWEEP_SCAN_PAGES):
        with aws_errors(f"scan {table} for drill markers"):
            page = ddb.scan(**params)
        for item in page.get("Items") or []:
            found.append(({k: item[k] for k in keys if k in item}, item.get(DRILL_ATTRIBUTE, {}).get("S", "")))
        if not page.get("LastEvaluatedKey"):
            return found, False
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found, True


@registry.action("remove_drill_items", permissions=[*_DESCRIBE, "dynamodb:Scan", "dynamodb:DeleteItem"],
                 resource="dr_table")
def remove_drill_items(region: str, plan: str, tables: list[Any], drills: dict[str, Any]) -> dict[str, Any]:
    """Delete the drill marker items a drill left in the DR replicas (a drill deletes its own; one that
    stopped between its write and its delete leaves one), for the drills ``drills`` selects
    (lambdas.drill.selected).

    ``{"ids": [...]}``: each drill's marker key is computed from its id and deleted while it still carries
    that drill's id. A sweep finds them with a Scan filtered on ``pilotlight_drill`` and the plan, bounded to
    SWEEP_SCAN_PAGES pages per table (``truncated`` names a table with more; the next sweep goes on).
    ``tables``: names (or ``{"name": ...}``); a table that does not exist is listed under ``missing``.
    """
    ddb = client("dynamodb", region)
    deleted: list[dict[str, Any]] = []
    missing: list[str] = []
    truncated: list[str] = []
    for entry in tables or []:
        table = entry.get("name") if isinstance(entry, dict) else str(entry)
        desc = describe_table(ddb, table)
        if desc is None:
            missing.append(table)
            continue
        if "ids" in drills:
            candidates = [(marker_key(desc, DRILL_PREFIX + i), i) for i in drills.get("ids") or []
                          if drill.is_drill_id(i)]
        else:
            candidates, more = _sweep(ddb, table, desc, plan)
            if more:
                truncated.append(table)
        for key, owner in candidates:
            if not drill.selected(owner, drills):
                continue
            if _delete_marker(ddb, table, key, DRILL_ATTRIBUTE, owner, region):
                deleted.append({"kind": "dynamodb_item", "id": f"{table}:{DRILL_PREFIX}{owner}", "drill": owner,
                                "table": table, "key": _json_key(key)})
    return {"done": True, "deleted": deleted, "missing": missing, "truncated": truncated}
