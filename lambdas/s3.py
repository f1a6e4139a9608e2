"""S3 steps: cross-region replication configured, and shown to work with a canary object."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, client, raise_mapped

registry = Registry("s3")
handler = registry.handler

CANARY_PREFIX = "pilotlight-canary/"


def role_name(plan: str) -> str:
    return f"pilotlight-{plan}-s3-replication"


def _ensure_role(plan: str, source: str, destination: str) -> tuple[str, list[str]]:
    """The replication role S3 assumes (created when the plan names none) with a policy for this pair."""
    iam = client("iam", "us-east-1")
    name = role_name(plan)
    changes: list[str] = []
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise_mapped(exc, f"read role {name}")
        arn = _create_role(iam, name, plan)
        changes.append(f"role {name} created")
    policy_name = f"{source}-to-{destination}"[:128]
    try:
        iam.get_role_policy(RoleName=name, PolicyName=policy_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise_mapped(exc, f"read policy {policy_name}")
        try:
            iam.put_role_policy(
                RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(_role_policy(source, destination))
            )
        except ClientError as exc2:
            raise_mapped(exc2, f"put policy {policy_name}")
        changes.append(f"role policy {policy_name} added")
    return arn, changes


def _create_role(iam: Any, name: str, plan: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    try:
        return iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"pilotlight {plan}: S3 cross-region replication",
        )["Role"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "EntityAlreadyExists":  # another bucket's step won the race
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        raise_mapped(exc, f"create role {name}")
    return ""


def _role_policy(source: str, destination: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{source}"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
                "Resource": [f"arn:aws:s3:::{source}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                "Resource": [f"arn:aws:s3:::{destination}/*"],
            },
        ],
    }


def _versioning(s3: Any, bucket: str) -> bool:
    """Enable versioning; True when it had to be turned on."""
    try:
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
            return False
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    except ClientError as exc:
        raise_mapped(exc, f"versioning on {bucket}")
    return True


def wanted_rule(destination: str, delete_markers: bool) -> dict[str, Any]:
    return {
        "ID": f"pilotlight-to-{destination}"[:255],
        "Priority": 1,
        "Status": "Enabled",
        "Filter": {},
        "DeleteMarkerReplication": {"Status": "Enabled" if delete_markers else "Disabled"},
        "Destination": {"Bucket": f"arn:aws:s3:::{destination}"},
    }


def _same_rule(have: dict[str, Any], want: dict[str, Any]) -> bool:
    return (
        have.get("Status") == want["Status"]
        and (have.get("Destination") or {}).get("Bucket") == want["Destination"]["Bucket"]
        and (have.get("DeleteMarkerReplication") or {}).get("Status") == want["DeleteMarkerReplication"]["Status"]
        and not (have.get("Filter") or {}).get("Prefix")
        and not have.get("Prefix")
    )


@registry.action(
    "ensure_replication",
    permissions=[
        "s3:GetBucketVersioning",
        "s3:PutBucketVersioning",
        "s3:GetReplicationConfiguration",
        "s3:PutReplicationConfiguration",
        "iam:GetRole",
        "iam:CreateRole",
        "iam:GetRolePolicy",
        "iam:PutRolePolicy",
        "iam:PassRole",
    ],
    resource={
        "s3:GetBucketVersioning": "bucket",
        "s3:PutBucketVersioning": "bucket",
        "s3:GetReplicationConfiguration": "bucket",
        "s3:PutReplicationConfiguration": "bucket",
        "iam:GetRole": "replication_role",
        "iam:CreateRole": "replication_role",
        "iam:GetRolePolicy": "replication_role",
        "iam:PutRolePolicy": "replication_role",
        "iam:PassRole": "replication_role",
    },
)
def ensure_replication(
    plan: str,
    source_region: str,
    dr_region: str,
    source: str,
    destination: str,
    replicate_delete_markers: bool = False,
    role_arn: str | None = None,
) -> dict[str, Any]:
    """Versioning on both buckets and one replication rule source -> destination, as the plan says."""
    s3, s3d = client("s3", source_region), client("s3", dr_region)
    changes = []
    if _versioning(s3, source):
        changes.append(f"versioning enabled on {source}")
    if _versioning(s3d, destination):
        changes.append(f"versioning enabled on {destination}")
    if not role_arn:
        role_arn, role_changes = _ensure_role(plan, source, destination)
        changes += role_changes
    want = wanted_rule(destination, replicate_delete_markers)
    try:
        have = s3.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ReplicationConfigurationNotFoundError":
            raise_mapped(exc, f"read replication of {source}")
        have = None
    existed = have is not None
    if not have or have.get("Role") != role_arn or not any(_same_rule(r, want) for r in have.get("Rules", [])):
        try:
            s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": role_arn, "Rules": [want]})
        except ClientError as exc:
            raise_mapped(exc, f"configure replication of {source}")
        changes.append(("replaced" if existed else "added") + f" replication rule to {destination}")
    status = "unchanged" if not changes else ("updated" if existed else "created")
    record = {"resource": f"replication {source} -> {destination}", "status": status, "changes": changes}
    return {"role_arn": role_arn, "record": record}


@registry.action("put_canary", permissions=["s3:PutObject"], resource="canary_object")
def put_canary(region: str, source: str) -> dict[str, Any]:
    """Write a small object to the source; replication must carry it to the destination."""
    key = f"{CANARY_PREFIX}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%fZ}"
    try:
        s3 = client("s3", region)
        s3.put_object(Bucket=source, Key=key, Body=b"pilotlight replication canary\n", ContentType="text/plain")
    except ClientError as exc:
        raise_mapped(exc, f"write canary to {source}")
    return {"done": False, "attempt": 0, "key": key, "status": "PENDING"}


@registry.action(
    "check_canary",
    permissions=["s3:GetObject", "s3:ListBucket"],
    resource={"s3:GetObject": "canary_object", "s3:ListBucket": "bucket"},
)
def check_canary(
    source_region: str, dr_region: str, source: str, destination: str, key: str, attempt: int = 0
) -> dict[str, Any]:
    """Done when the source shows COMPLETED and the destination holds the object (or replication FAILED)."""
    try:
        head = client("s3", source_region).head_object(Bucket=source, Key=key)
    except ClientError as exc:
        raise_mapped(exc, f"read canary {key} in {source}")
    status = head.get("ReplicationStatus", "NONE")
    present = False
    if status == "COMPLETED":
        try:
            client("s3", dr_region).head_object(Bucket=destination, Key=key)
            present = True
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise_mapped(exc, f"read canary {key} in {destination}")
    done = status == "FAILED" or present
    resource = f"canary {source} -> {destination}"
    record = {
        "resource": resource,
        "status": "verified" if present else "failed",
        "key": key,
        "replication_status": status,
    }
    return {
        "done": done,
        "attempt": attempt + 1,
        "key": key,
        "status": status,
        "in_destination": present,
        "record": record if done else None,
    }
