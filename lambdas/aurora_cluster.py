"""Reading and growing an Aurora cluster: the helpers :mod:`lambdas.aurora` (the actions) and
:mod:`lambdas.aurora_drill` (a drill's copies) share.

Every read is by identifier (DescribeDBClusters, DescribeDBInstances, DescribeGlobalClusters), never a listing
of the region. Plain functions only: this module never imports :mod:`lambdas.aurora`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import CONNECTION_ERRORS, raise_mapped, unavailable
from lambdas.errors import ResourceNotReady
from lambdas.rds_describe import describe_instance, describe_one, require

# DescribeDBClusters / DescribeDBInstances states in which a cluster or an instance serves.
AVAILABLE = "available"
FAILED = ("failed", "inaccessible-encryption-credentials", "incompatible-network", "incompatible-parameters",
          "incompatible-restore", "restore-error", "storage-full", "deleting")
NOT_FOUND = ("DBClusterNotFoundFault", "DBClusterNotFound")
INSTANCE_NOT_FOUND = ("DBInstanceNotFound", "DBInstanceNotFoundFault")
GLOBAL_NOT_FOUND = ("GlobalClusterNotFoundFault", "GlobalClusterNotFound")


def describe_cluster(rds: Any, identifier: str) -> dict[str, Any] | None:
    what = f"describe DB cluster {identifier}"
    try:
        return describe_one(lambda: rds.describe_db_clusters(DBClusterIdentifier=identifier), "DBClusters",
                            NOT_FOUND, what)
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, what) from exc


def require_cluster(rds: Any, identifier: str, region: str) -> dict[str, Any]:
    return require(describe_cluster(rds, identifier), f"DB cluster {identifier}", region)


def describe_global(rds: Any, identifier: str) -> dict[str, Any] | None:
    return describe_one(lambda: rds.describe_global_clusters(GlobalClusterIdentifier=identifier), "GlobalClusters",
                        GLOBAL_NOT_FOUND, f"describe global cluster {identifier}")


def member(global_cluster: dict[str, Any] | None, arn: str) -> dict[str, Any] | None:
    """The global cluster's member entry for the DB cluster ``arn`` (None: not a member)."""
    return next((m for m in (global_cluster or {}).get("GlobalClusterMembers") or []
                 if m.get("DBClusterArn") == arn), None)


def instances(rds: Any, cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """The cluster's DB instances, each read by identifier (never a listing of the region)."""
    out = []
    for m in cluster.get("DBClusterMembers") or []:
        db = describe_instance(rds, m["DBInstanceIdentifier"])
        if db is not None:
            out.append({**db, "IsClusterWriter": bool(m.get("IsClusterWriter"))})
    return out


def writer_of(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((d for d in found if d.get("IsClusterWriter")), found[0] if found else None)


def available_instances(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in found if d.get("DBInstanceStatus") == AVAILABLE]


def cluster_facts(cluster: dict[str, Any], found: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fields reports and checks rely on, JSON-safe."""
    out: dict[str, Any] = {
        "identifier": cluster.get("DBClusterIdentifier"),
        "arn": cluster.get("DBClusterArn"),
        "status": cluster.get("Status"),
        "engine": cluster.get("Engine"),
        "engine_version": cluster.get("EngineVersion"),
        "global_cluster": cluster.get("GlobalClusterIdentifier"),
        "endpoint": cluster.get("Endpoint"),
        "reader_endpoint": cluster.get("ReaderEndpoint"),
        "write_forwarding": cluster.get("GlobalWriteForwardingStatus"),
        "subnet_group": cluster.get("DBSubnetGroup"),
        "security_groups": sorted(g["VpcSecurityGroupId"] for g in cluster.get("VpcSecurityGroups") or []
                                  if g.get("VpcSecurityGroupId")),
        "storage_encrypted": bool(cluster.get("StorageEncrypted")),
    }
    if found is not None:
        out["instances"] = [{"identifier": d["DBInstanceIdentifier"], "status": d.get("DBInstanceStatus"),
                             "instance_class": d.get("DBInstanceClass"), "writer": bool(d.get("IsClusterWriter"))}
                            for d in found]
    return out


def next_instance_name(dr_cluster: str, taken: list[str]) -> str:
    """``<dr_cluster>-<n>`` for the lowest n >= 1 not taken."""
    names = {t.lower() for t in taken}
    n = 1
    while f"{dr_cluster}-{n}".lower() in names:
        n += 1
    return f"{dr_cluster}-{n}"


def member_names(cluster: dict[str, Any]) -> list[str]:
    return [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers") or []]


def create_instance(rds: Any, cluster: dict[str, Any], name: str, instance_class: str,
                     tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """CreateDBInstance in the cluster (an Aurora instance takes its engine, storage and network from it)."""
    params: dict[str, Any] = {"DBInstanceIdentifier": name, "DBClusterIdentifier": cluster["DBClusterIdentifier"],
                              "Engine": cluster["Engine"], "DBInstanceClass": instance_class,
                              "PubliclyAccessible": False}
    if tags:
        params["Tags"] = tags
    try:
        return rds.create_db_instance(**params)["DBInstance"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
            return describe_instance(rds, name) or {"DBInstanceIdentifier": name}
        if exc.response["Error"]["Code"] in ("InvalidDBClusterStateFault", "InvalidDBClusterState"):
            raise ResourceNotReady(f"create {name} in {cluster['DBClusterIdentifier']}: "
                                   f"{exc.response['Error'].get('Message', '')}") from exc
        raise_mapped(exc, f"create DB instance {name} in {cluster['DBClusterIdentifier']}")
    return {}
