"""What a drill leaves behind, read from the AWS APIs of each service, and the drill's figures.

:func:`leftovers` does not trust the teardown's own account of what it deleted: it lists, service
by service, every resource that carries the drill's id (in its ``pilotlight:drill`` tag or its
name): DB instances and manual snapshots, Beanstalk environments that are not terminated, drill
DNS records, and S3 object versions and delete markers under the drill's prefix.
:func:`figures` reads the drill's RTO and RPO from its execution (history and output only).
"""

from __future__ import annotations

from typing import Any

import boto3

from lambdas import drill as names
from workflows.plan import Plan


def _client(session: Any, service: str, region: str) -> Any:
    return (session or boto3).client(service, region_name=region)


def _tagged(tags: list[dict[str, str]] | None, name: str, drill: str) -> bool:
    return names.tag_value(tags, names.DRILL_TAG) == drill or names.id_in_name(name) == drill


# The steps that make a drill's copies (a failover has none to make): RDS copies and Aurora clones.
COPY_STEPS = ("Copy DR replica", "Clone Aurora secondary")


def leftovers(plan: Plan, drill: str, session: Any = None) -> list[dict[str, str]]:
    """Every resource of drill ``drill`` that still exists, as ``{"kind", "id"}``."""
    out: list[dict[str, str]] = []
    rds = _client(session, "rds", plan.dr_region)
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            if _tagged(db.get("TagList"), db["DBInstanceIdentifier"], drill):
                out.append({"kind": "db_instance", "id": db["DBInstanceIdentifier"]})
    if plan.aurora_databases:
        for page in rds.get_paginator("describe_db_clusters").paginate():
            for cluster in page["DBClusters"]:
                if _tagged(cluster.get("TagList"), cluster["DBClusterIdentifier"], drill):
                    out.append({"kind": "db_cluster", "id": cluster["DBClusterIdentifier"]})
    if plan.compute:
        autoscaling = _client(session, "autoscaling", plan.dr_region)
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
            for group in page["AutoScalingGroups"]:
                if _tagged(group.get("Tags"), group["AutoScalingGroupName"], drill):
                    out.append({"kind": "auto_scaling_group", "id": group["AutoScalingGroupName"]})
    for page in rds.get_paginator("describe_db_snapshots").paginate(SnapshotType="manual"):
        for snap in page["DBSnapshots"]:
            if _tagged(snap.get("TagList"), snap["DBSnapshotIdentifier"], drill):
                out.append({"kind": "db_snapshot", "id": snap["DBSnapshotIdentifier"]})
    if plan.environments:
        eb = _client(session, "elasticbeanstalk", plan.dr_region)
        for env in eb.describe_environments(IncludeDeleted=False)["Environments"]:
            if env.get("Status") != "Terminated" and names.id_in_name(env["EnvironmentName"]) == drill:
                out.append({"kind": "environment", "id": env["EnvironmentName"]})
    if plan.dns is not None:
        r53 = _client(session, "route53", "us-east-1")
        for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=plan.dns.hosted_zone_id):
            for rrset in page["ResourceRecordSets"]:
                if names.id_in_record(rrset["Name"], plan.dns.record_name) == drill:
                    out.append({"kind": "dns_record", "id": rrset["Name"].rstrip(".")})
    s3 = _client(session, "s3", plan.dr_region)
    for bucket in (b.destination for b in plan.buckets):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                       Prefix=names.object_prefix(drill)):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                out.append({"kind": "s3_object", "id": f"s3://{bucket}/{item['Key']}#{item.get('VersionId')}"})
    return out


def output_lags(kind: str, output: Any) -> dict[str, float | None] | None:
    """DR replica (or Aurora DR cluster, or global table) -> its data-loss window in seconds, from a drill's or
    a failover's output; None when the output has no restore (the execution failed).

    RDS: ReplicaLag read before promotion (drills: before the copy, keyed by the replica copied). Aurora: the lag
    a failover with data loss accepted, 0 after a managed switchover (drills: the live secondary's lag before
    the clone). DynamoDB: the table's ReplicationLatency into the DR region.
    """
    if kind == "failback":  # the reverse replicas' lag at promotion
        from reports.failback import lags

        return lags(output)
    restore = output.get("restore") if isinstance(output, dict) else None
    if not isinstance(restore, dict) or not any(isinstance(restore.get(k), list)
                                                for k in ("databases", "aurora", "tables")):
        return None
    lags: dict[str, float | None] = {}
    for db in [*(restore.get("databases") or []), *(restore.get("aurora") or [])]:
        # A drill's output names the copy as identifier and what it copied as source.
        key = (db.get("source") or db.get("identifier")) if kind == "drill" else db.get("identifier")
        lags[str(key)] = (db.get("rpo") or {}).get("lag_seconds")
    for table in restore.get("tables") or []:
        lags[str(table.get("table"))] = (table.get("rpo") or {}).get("lag_seconds")
    return lags


def figures(plan: Plan, result: Any) -> dict[str, Any]:
    """The drill's RTO (start to verified service, on the copies) and RPO (the live DR replica's lag
    when it was copied), against the plan's objectives; the time the copies took to make."""
    output = result.output or {}
    restored = result.restored_at
    lags = output_lags("drill", output) or {}
    copy = [s for s in result.steps if s.name in COPY_STEPS]
    copy_seconds = max((s.end or s.start) for s in copy) - min(s.start for s in copy) if copy else None
    objective = plan.objectives.rto_minutes * 60
    # A failover promotes the DR replica itself: it has no copy to make. Less the copy is what the drill
    # measured of the failover's own path (exact when the database is the longer branch, as a copy makes it).
    less_copy = None if restored is None or copy_seconds is None else round(restored - copy_seconds, 1)
    return {
        "rto": {"seconds": None if restored is None else round(restored, 1),
                "objective_seconds": objective,
                "met": restored is not None and restored <= objective,
                "copy_seconds": None if copy_seconds is None else round(copy_seconds, 1),
                "less_copy_seconds": less_copy,
                "less_copy_met": None if less_copy is None else less_copy <= objective},
        # The data-loss window measured on the copies' heartbeat rows, as a report reads it (reports.model).
        "rpo": rpo_figures(plan, lags, data_loss((output.get("restored") or {}).get("data"))),
    }


def data_loss(checks: Any) -> list[dict[str, Any]]:
    """The data-loss window of each promoted database (``reports.schema.DataLoss``), from the failover's canary
    checks (``restored.data``): the newest heartbeat each holds and its distance to the promotion."""
    out = []
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check.get("check") == "canary write":
            beat = check.get("heartbeat") if isinstance(check.get("heartbeat"), dict) else {}
            out.append({"database": str(check.get("resource")), "newest_write": beat.get("newest"),
                        "seconds": beat.get("data_loss_seconds")})
    return out


def rpo_figures(plan: Plan, lags: dict[str, float | None], windows: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """The RPO of a drill, failover or failback, one shape for all (``reports.schema.Rpo``): the worst lag of
    the data tiers (``per_database``: tier -> lag seconds, None when none was read) against the objective, and
    beside it the data-loss windows measured from heartbeat rows (``windows``: :func:`data_loss`)."""
    known = [v for v in lags.values() if v is not None]
    worst = max(known) if known else None
    objective = plan.objectives.rpo_minutes * 60
    measured = [w["seconds"] for w in windows or [] if w.get("seconds") is not None]
    return {"seconds": worst, "objective_seconds": objective, "met": None if worst is None else worst <= objective,
            "per_database": lags, "data_loss_seconds": max(measured) if measured else None,
            "data_loss": list(windows or [])}
