"""Readiness checks of an Aurora Global Database (``kind: aurora`` items of the readiness workflow).

- ``global-membership``: the global cluster is available and the DR cluster a connected secondary of it;
- ``global-lag``: the secondary's lag (AuroraGlobalDBRPOLag, else AuroraGlobalDBReplicationLag) within the RPO;
- ``dr-writer``: the DR cluster has an available, writer-capable instance at least the plan's class (or is
  headless by plan: READY, with the RTO it costs);
- ``write-forwarding``: enabled on the DR cluster (only when the plan asks for it).

Each check only reads; the result shape is lambdas/readiness_report.py ``result``.
"""

from __future__ import annotations

import re
from typing import Any

from lambdas import aurora
from lambdas.common import client
from lambdas.readiness_report import NOT_READY, READY, UNKNOWN, result

# What the readiness check action needs for these checks (merged into lambdas/readiness.py ``check``).
PERMISSIONS: list[str] = ["rds:DescribeGlobalClusters", "rds:DescribeDBClusters", "rds:DescribeDBInstances",
                          "cloudwatch:GetMetricStatistics"]
RESOURCES: dict[str, str | tuple[str, ...]] = {
    "rds:DescribeGlobalClusters": "aurora_global_cluster",
    "rds:DescribeDBClusters": "aurora_dr_cluster",
    "rds:DescribeDBInstances": "aurora_dr_instance",
}

_SIZES = ["nano", "micro", "small", "medium", "large", "xlarge"]
_CLASS = re.compile(r"^db\.([a-z0-9-]+)\.(\d*)(nano|micro|small|medium|large|xlarge)$")


def size_rank(instance_class: str | None) -> float | None:
    """An order of instance sizes (``db.r6g.2xlarge`` > ``db.r6g.xlarge`` > ``db.r6g.large``); None if unknown."""
    match = _CLASS.match(instance_class or "")
    if not match:
        return None
    _, times, size = match.groups()
    if size == "xlarge":
        return float(len(_SIZES) - 2 + (int(times) if times else 1))  # xlarge 5, 2xlarge 6, 4xlarge 8 ...
    return float(_SIZES.index(size))


def _writer_capable(instance_class: str, cluster: dict[str, Any]) -> str | None:
    """Why the class cannot take the writer, or None."""
    if instance_class == "db.serverless" and not cluster.get("ServerlessV2ScalingConfiguration"):
        return "db.serverless without Serverless v2 capacity on the cluster"
    if instance_class.startswith("db.t") and instance_class.endswith(("micro", "small")):
        return f"{instance_class} is a burstable class too small for Aurora's writer"
    return None


def _membership(ctx: dict[str, Any], item: dict[str, Any], rds: Any, cluster: dict[str, Any] | None,
                gc: dict[str, Any] | None) -> dict[str, Any]:
    name, gname, region = item["dr_cluster"], item["global_cluster"], ctx["dr_region"]
    resource = item.get("resource") or item["identifier"]
    if gc is None:
        return result("global-membership", resource, NOT_READY, f"global cluster {gname} does not exist")
    evidence: dict[str, Any] = {"global_status": gc.get("Status"),
                                "members": [m["DBClusterArn"] for m in gc.get("GlobalClusterMembers") or []]}
    if cluster is None:
        return result("global-membership", resource, NOT_READY,
                      f"secondary {name} does not exist in {region}: replicate creates it", **evidence)
    entry = aurora.member(gc, cluster["DBClusterArn"])
    if entry is None:
        return result("global-membership", resource, NOT_READY,
                      f"secondary {name} in {region} is not a member of global cluster {gname} (it is "
                      f"{cluster.get('GlobalClusterIdentifier') or 'standalone'}): nothing replicates to it",
                      **evidence)
    evidence.update(is_writer=bool(entry.get("IsWriter")), synchronization=entry.get("SynchronizationStatus"),
                    cluster_status=cluster.get("Status"))
    state = gc.get("FailoverState")
    if state:
        return result("global-membership", resource, NOT_READY,
                      f"global cluster {gname} is {state.get('Status')} (from {state.get('FromDbClusterArn')} to "
                      f"{state.get('ToDbClusterArn')})", **evidence)
    if gc.get("Status") != "available":
        return result("global-membership", resource, NOT_READY, f"global cluster {gname} is {gc.get('Status')}",
                      **evidence)
    if entry.get("IsWriter"):
        return result("global-membership", resource, NOT_READY,
                      f"{name} in {region} is the writer of {gname}: the global cluster has failed over to the DR "
                      f"region, so there is no secondary to fail over to until it is switched back to "
                      f"{item['identifier']} in {ctx['primary_region']}", after_failover=True, **evidence)
    if entry.get("SynchronizationStatus", "connected") != "connected":
        return result("global-membership", resource, NOT_READY,
                      f"secondary {name} is {entry.get('SynchronizationStatus')}, not connected to {gname}",
                      **evidence)
    if cluster.get("Status") != "available":
        return result("global-membership", resource, NOT_READY, f"secondary {name} is {cluster.get('Status')}",
                      **evidence)
    return result("global-membership", resource, READY,
                  f"{name} in {region} is a connected secondary of {gname} (available)", **evidence)


def _lag(ctx: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    resource = item.get("resource") or item["identifier"]
    lag = aurora.global_lag(ctx["dr_region"], item["dr_cluster"], ctx["rpo_minutes"])
    evidence = {"lag_seconds": lag["lag_seconds"], "rpo_seconds": lag["rpo_seconds"], "metric": lag.get("metric")}
    if lag["lag_seconds"] is None:
        return result("global-lag", resource, UNKNOWN, f"no AuroraGlobalDBRPOLag or AuroraGlobalDBReplicationLag "
                      f"datapoints for {item['dr_cluster']} in the last 5 minutes", **evidence)
    if lag["lag_seconds"] > lag["rpo_seconds"]:
        return result("global-lag", resource, NOT_READY, f"secondary {item['dr_cluster']} lags "
                      f"{lag['lag_seconds']:g} s behind {item['identifier']}, above the RPO of {lag['rpo_seconds']} s",
                      **evidence)
    return result("global-lag", resource, READY, f"secondary {item['dr_cluster']} lags {lag['lag_seconds']:g} s "
                  f"(RPO {lag['rpo_seconds']} s)", **evidence)


def _writer(ctx: dict[str, Any], item: dict[str, Any], rds: Any, cluster: dict[str, Any] | None) -> dict[str, Any]:
    resource = item.get("resource") or item["identifier"]
    name, wanted = item["dr_cluster"], item.get("dr_instance_class")
    if cluster is None:
        return result("dr-writer", resource, NOT_READY, f"DR cluster {name} does not exist in {ctx['dr_region']}")
    found = aurora.instances(rds, cluster)
    evidence: dict[str, Any] = {"instances": {d["DBInstanceIdentifier"]: d.get("DBInstanceClass") for d in found},
                                "plan_class": wanted, "headless": bool(item.get("headless"))}
    if not found:
        if item.get("headless"):
            return result("dr-writer", resource, READY, f"{name} is headless by plan: the failover adds a "
                          f"{wanted} instance before it can take writes (about 10 minutes more RTO)", **evidence)
        return result("dr-writer", resource, NOT_READY, f"{name} has no DB instance and the plan is not headless: "
                      f"a failover would have to create one first (about 10 minutes more RTO); replicate adds "
                      f"{name}-1 ({wanted})", **evidence)
    usable = [d for d in found if d.get("DBInstanceStatus") == "available"]
    if not usable:
        states = ", ".join(f"{d['DBInstanceIdentifier']} {d.get('DBInstanceStatus')}" for d in found)
        return result("dr-writer", resource, NOT_READY, f"no available instance in {name} ({states})", **evidence)
    best = max(usable, key=lambda d: size_rank(d.get("DBInstanceClass")) or -1)
    cls = best.get("DBInstanceClass") or ""
    why = _writer_capable(cls, cluster)
    if why:
        return result("dr-writer", resource, NOT_READY, f"{best['DBInstanceIdentifier']} cannot take the writer: "
                      f"{why}", **evidence)
    have, need = size_rank(cls), size_rank(wanted)
    if wanted and have is not None and need is not None and have < need:
        return result("dr-writer", resource, NOT_READY, f"{best['DBInstanceIdentifier']} is {cls}, smaller than the "
                      f"plan's {wanted}", **evidence)
    return result("dr-writer", resource, READY, f"{best['DBInstanceIdentifier']} ({cls}) is available to take the "
                  "writer", **evidence)


def _forwarding(item: dict[str, Any], cluster: dict[str, Any] | None) -> dict[str, Any]:
    resource = item.get("resource") or item["identifier"]
    status = (cluster or {}).get("GlobalWriteForwardingStatus")
    if status == "enabled":
        return result("write-forwarding", resource, READY, f"{item['dr_cluster']} forwards writes to the primary",
                      status=status)
    return result("write-forwarding", resource, NOT_READY, f"write forwarding is {status or 'not enabled'} on "
                  f"{item['dr_cluster']}; the plan asks for it (replicate enables it)", status=status)


def check_aurora(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of one Aurora Global Database item."""
    rds = client("rds", ctx["dr_region"])
    cluster = aurora.describe_cluster(rds, item["dr_cluster"])
    gc = aurora.describe_global(rds, item["global_cluster"])
    checks = [_membership(ctx, item, rds, cluster, gc), _lag(ctx, item), _writer(ctx, item, rds, cluster)]
    if item.get("write_forwarding"):
        checks.append(_forwarding(item, cluster))
    return checks
