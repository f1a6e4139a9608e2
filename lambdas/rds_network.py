"""Readiness of the DR replica's network: the plan's DB subnet group and security groups in the DR
region, and whether the existing replica is in them (read-only; used by :mod:`lambdas.readiness`)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import client, raise_mapped
from lambdas.rds import describe_instance, network_drift, security_groups_of, subnet_group_of

NETWORK_CHECK = "dr-db-network"
NETWORK_PERMISSIONS = ["rds:DescribeDBSubnetGroups", "ec2:DescribeSecurityGroups"]


def _subnet_group(rds: Any, name: str) -> dict[str, Any] | None:
    try:
        found = rds.describe_db_subnet_groups(DBSubnetGroupName=name.lower())["DBSubnetGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"):
            return None
        raise_mapped(exc, f"describe DB subnet group {name}")
    return found[0] if found else None


def _security_groups(ec2: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The named security groups that exist, by id (a filter, so a missing one is absent, not an error)."""
    try:
        pages = ec2.get_paginator("describe_security_groups").paginate(
            Filters=[{"Name": "group-id", "Values": list(ids)}])
        return {g["GroupId"]: g for page in pages for g in page["SecurityGroups"]}
    except ClientError as exc:
        raise_mapped(exc, f"describe security groups {', '.join(ids)}")
    return {}


def network_check(region: str, identifier: str, network: dict[str, Any]) -> dict[str, Any]:
    """Readiness of the DR replica's network: one check result (readiness's shape) for ``identifier``.

    NOT_READY when the plan's DB subnet group or a security group does not exist in ``region``, when a
    security group is in another VPC than the subnet group, or when the existing replica is not in that
    subnet group with those security groups (drift: replicate does not move a replica). A missing
    replica is the dr-replica check's business; the network is judged on its own then.
    """
    name, wanted = network["subnet_group"], sorted(network["security_groups"])
    group = _subnet_group(client("rds", region), name)
    found = _security_groups(client("ec2", region), wanted)
    evidence: dict[str, Any] = {"subnet_group": name, "vpc_id": (group or {}).get("VpcId"),
                                "security_groups": wanted}
    problems = []
    if group is None:
        problems.append(f"DB subnet group {name} does not exist in {region}")
    missing = [g for g in wanted if g not in found]
    if missing:
        problems.append(f"security group{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"{'do' if len(missing) > 1 else 'does'} not exist in {region}")
    if group is not None:
        elsewhere = sorted(f"{g} ({s.get('VpcId')})" for g, s in found.items() if s.get("VpcId") != group.get("VpcId"))
        if elsewhere:
            problems.append(f"security groups {', '.join(elsewhere)} are not in {group.get('VpcId')}, the VPC of "
                            f"subnet group {name}")
    db = describe_instance(client("rds", region), identifier)
    if db is not None:
        evidence.update(replica_subnet_group=subnet_group_of(db), replica_security_groups=security_groups_of(db))
        problems += [f"replica {identifier} has drifted: {d}" for d in network_drift(db, name, wanted)]
    if problems:
        return {"check": NETWORK_CHECK, "resource": identifier, "status": "NOT_READY",
                "reason": "; ".join(problems), "evidence": evidence}
    where = f"{identifier} is in it" if db is not None else f"{identifier} does not exist yet"
    return {"check": NETWORK_CHECK, "resource": identifier, "status": "READY",
            "reason": f"DB subnet group {name} ({evidence['vpc_id']}) and security groups {', '.join(wanted)} exist "
                      f"in {region}; {where}", "evidence": evidence}
