"""Readiness of a DynamoDB global table (read-only; used by :mod:`lambdas.readiness` for items of kind ``table``).

Checks, in the result shape of :func:`lambdas.readiness_report.result`:

- ``table-replica``: the table's replica in the DR region is ACTIVE (the primary's DescribeTable lists it).
- ``table-replication-latency``: ReplicationLatency from the primary to the DR region, worst of the last
  5 minutes, against the RPO (UNKNOWN without datapoints: no writes in the window).
- ``table-capacity``: on-demand tables are READY (the table's maximum throughput noted when set). A
  provisioned DR replica's write and read capacity (its auto scaling maximum where auto scaled, else its
  provisioned units) must cover the primary's peak consumed capacity per second (Sum per period / period)
  over ``capacity_lookback_hours``.
- ``write-region-setting``: the plan's write-region SSM parameter exists in the DR region (when one is named).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from botocore.exceptions import ClientError

from lambdas import dynamodb
from lambdas.common import Kinds, aws_errors, client, raise_mapped
from lambdas.readiness_report import NOT_READY, READY, UNKNOWN, result

PERMISSIONS: list[str] = ["dynamodb:DescribeTable", "cloudwatch:GetMetricStatistics",
                          "application-autoscaling:DescribeScalableTargets", "ssm:GetParameter"]
RESOURCES: dict[str, Kinds] = {
    "dynamodb:DescribeTable": "table",  # the table in the primary region and its DR replica
    "cloudwatch:GetMetricStatistics": "*",  # no resource-level permissions
    "application-autoscaling:DescribeScalableTargets": "*",  # no resource-level permissions
    "ssm:GetParameter": "write_region_parameter",
}

MAX_DATAPOINTS = 1440  # GetMetricStatistics answers at most this many datapoints per call
_DIMENSIONS = {"write": ("dynamodb:table:WriteCapacityUnits", "WriteCapacityUnits", "ConsumedWriteCapacityUnits"),
               "read": ("dynamodb:table:ReadCapacityUnits", "ReadCapacityUnits", "ConsumedReadCapacityUnits")}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _period(hours: int) -> int:
    """The finest period (a multiple of 60 s) that fits ``hours`` in one GetMetricStatistics call."""
    return max(60, math.ceil(hours * 3600 / MAX_DATAPOINTS / 60) * 60)


def _peak_per_second(region: str, table: str, metric: str, hours: int) -> float | None:
    """The primary's highest consumed capacity per second (Sum / period) over the last ``hours``; None: no data."""
    period = _period(hours)
    end = _now()
    with aws_errors(f"read {metric} of {table} in {region}"):
        points = client("cloudwatch", region).get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName=metric, Dimensions=[{"Name": "TableName", "Value": table}],
            StartTime=end - dt.timedelta(hours=hours), EndTime=end, Period=period, Statistics=["Sum"])["Datapoints"]
    if not points:
        return None
    return max(p["Sum"] for p in points) / period


def _replica_check(table: str, primary: str, dr: str, desc: dict[str, Any] | None) -> dict[str, Any]:
    if desc is None:
        return result("table-replica", table, NOT_READY, f"table {table} does not exist in {primary}")
    replica = dynamodb.replicas(desc).get(dr)
    evidence: dict[str, Any] = {"table_status": desc.get("TableStatus"),
                                "global_table_version": desc.get("GlobalTableVersion"),
                                "replicas": {r: v.get("ReplicaStatus") for r, v in dynamodb.replicas(desc).items()}}
    if replica is None:
        return result("table-replica", table, NOT_READY, f"no replica in {dr} of table {table} ({primary}); "
                      "replicate adds it", **evidence)
    status = replica.get("ReplicaStatus")
    if status != "ACTIVE":
        cause = replica.get("ReplicaStatusDescription")
        return result("table-replica", table, NOT_READY, f"replica of {table} in {dr} is {status}, not ACTIVE"
                      + (f": {cause}" if cause else ""), **evidence)
    return result("table-replica", table, READY, f"replica of {table} in {dr} is ACTIVE", **evidence)


def _latency_check(ctx: dict[str, Any], table: str, has_replica: bool) -> dict[str, Any]:
    primary, dr = ctx["primary_region"], ctx["dr_region"]
    if not has_replica:
        return result("table-replication-latency", table, UNKNOWN, f"{table} has no replica in {dr} to replicate to")
    lag = dynamodb.replication_latency(primary, dr, table, ctx["rpo_minutes"])
    evidence = {"lag_seconds": lag["lag_seconds"], "rpo_seconds": lag["rpo_seconds"]}
    if lag.get("idle"):
        # DynamoDB publishes ReplicationLatency only for writes it replicates: an idle table has none.
        return result("table-replication-latency", table, READY, f"no writes to {table} in {primary} in the "
                      f"last 5 minutes: nothing is waiting to replicate to {dr}", **evidence)
    if lag["lag_seconds"] is None:
        writes = lag.get("written_units") or 0
        return result("table-replication-latency", table, NOT_READY, f"{table} took {writes:g} write units in "
                      f"{primary} in the last 5 minutes but reports no ReplicationLatency into {dr}: replication "
                      "is stalled or not running", written_units=writes, **evidence)
    if lag["status"] == "ABOVE_RPO":
        return result("table-replication-latency", table, NOT_READY, f"{table} replicates to {dr} "
                      f"{lag['lag_seconds']:g} s behind, above the RPO of {lag['rpo_seconds']} s", **evidence)
    return result("table-replication-latency", table, READY, f"{table} replicates to {dr} in "
                  f"{lag['lag_seconds']:g} s (RPO {lag['rpo_seconds']} s)", **evidence)


def _capacity_check(ctx: dict[str, Any], item: dict[str, Any], desc: dict[str, Any] | None,
                    dr_desc: dict[str, Any] | None) -> dict[str, Any]:
    table, primary, dr = item["table"], ctx["primary_region"], ctx["dr_region"]
    hours = int(item.get("capacity_lookback_hours") or 24)
    if desc is None or dr_desc is None:
        where = primary if desc is None else dr
        return result("table-capacity", table, UNKNOWN, f"cannot compare capacity: {table} does not exist in {where}")
    mode = dynamodb.billing_mode(dr_desc)
    if mode == "PAY_PER_REQUEST":
        limits = dr_desc.get("OnDemandThroughput") or {}
        limits = {k: v for k, v in limits.items() if isinstance(v, int | float) and v > 0}
        note = (" (maximum throughput " + ", ".join(f"{k} {v:g}" for k, v in sorted(limits.items())) + ")"
                if limits else "")
        return result("table-capacity", table, READY, f"replica of {table} in {dr} is on-demand{note}",
                      billing_mode=mode, on_demand_throughput=limits)
    targets = dynamodb.scalable_targets(dr, table)
    throughput = dr_desc.get("ProvisionedThroughput") or {}
    evidence: dict[str, Any] = {"billing_mode": mode, "lookback_hours": hours, "period_seconds": _period(hours)}
    short: list[str] = []
    for what, (dimension, units, metric) in _DIMENSIONS.items():
        target = targets.get(dimension)
        capacity = float(target["MaxCapacity"]) if target else float(throughput.get(units) or 0)
        peak = _peak_per_second(primary, table, metric, hours)
        evidence[what] = {"dr_capacity": capacity, "autoscaled": target is not None, "primary_peak_per_second":
                          None if peak is None else round(peak, 3)}
        if peak is not None and capacity < peak:
            source = "auto scaling maximum" if target else "provisioned"
            short.append(f"{what} capacity {capacity:g} ({source}) is below the primary's peak of {peak:.1f}/s "
                         f"in the last {hours} h")
    if short:
        return result("table-capacity", table, NOT_READY, f"replica of {table} in {dr}: " + "; ".join(short),
                      **evidence)
    return result("table-capacity", table, READY, f"replica of {table} in {dr} covers the primary's peak use in the "
                  f"last {hours} h (write {evidence['write']['dr_capacity']:g}, read "
                  f"{evidence['read']['dr_capacity']:g})", **evidence)


def _parameter_check(ctx: dict[str, Any], table: str, parameter: str) -> dict[str, Any]:
    dr = ctx["dr_region"]
    try:
        found = client("ssm", dr).get_parameter(Name=parameter)["Parameter"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return result("write-region-setting", table, NOT_READY, f"write-region parameter {parameter} does not "
                          f"exist in {dr}; the failover sets it there", parameter=parameter)
        raise_mapped(exc, f"read parameter {parameter} in {dr}")
    return result("write-region-setting", table, READY, f"write-region parameter {parameter} exists in {dr} "
                  f"({found.get('Value')!r}); the failover sets it to {dr}", parameter=parameter,
                  value=found.get("Value"))


def check_table(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of one plan table (item kind ``table``); one result per check."""
    table, primary, dr = item["table"], ctx["primary_region"], ctx["dr_region"]
    desc = dynamodb.describe_table(client("dynamodb", primary), table)
    dr_desc = dynamodb.describe_table(client("dynamodb", dr), table)
    replica = _replica_check(table, primary, dr, desc)
    has_replica = desc is not None and dr in dynamodb.replicas(desc)
    checks = [replica, _latency_check(ctx, table, has_replica), _capacity_check(ctx, item, desc, dr_desc)]
    if item.get("write_region_parameter"):
        checks.append(_parameter_check(ctx, table, item["write_region_parameter"]))
    for check in checks:
        check["resource"] = item.get("resource") or table
    return checks
