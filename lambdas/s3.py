"""S3 steps: cross-region replication configured, and shown to work with a canary object.

The bucket's replication configuration is merged, never replaced: rules the bucket already has
are kept (ours is found and replaced by its ID), priorities stay unique, and a configuration in the
V1 schema (rules with ``Prefix`` and no ``Filter``) is rewritten in the V2 schema because S3 does not
accept a mix. Objects written before replication was enabled are never replicated by S3 on its
own: the step counts those it can see (a bounded sample) and points to S3 Batch Replication.

A failback (lambdas/s3_failback.py) sets the reverse rule on the DR bucket, copies what was written there
during the outage back to the primary bucket, checks the data, and at re-arm removes the reverse rule again.

A drill reads the newest replicated canary in the DR bucket and writes, reads back and removes a probe
under ``pilotlight-drill/<id>/``; its teardown removes whatever a drill left there (every version).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill, s3_failback
from lambdas.common import Registry, aws_errors, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotFound

registry = Registry("s3")
handler = registry.handler

CANARY_PREFIX = "pilotlight-canary/"
# Objects without a ReplicationStatus are counted among one ListObjectsV2 page (up to LISTED keys)
# with one HeadObject each for at most SAMPLE of them, oldest first: ListObjectsV2 cannot return the
# status (OptionalObjectAttributes offers only RestoreStatus) and S3 Inventory, which can, is daily.
UNREPLICATED_LISTED = 1000
UNREPLICATED_SAMPLE = 100


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
    """A V2 rule that replicates every object to the same destination with the same delete-marker setting."""
    return (
        have.get("Status") == want["Status"]
        and (have.get("Destination") or {}).get("Bucket") == want["Destination"]["Bucket"]
        and (have.get("DeleteMarkerReplication") or {}).get("Status") == want["DeleteMarkerReplication"]["Status"]
        and "Filter" in have
        and not any(v for v in (have.get("Filter") or {}).values())
    )


def _v2(rule: dict[str, Any], priority: int) -> dict[str, Any]:
    """A V1 rule (``Prefix``, no ``Filter``) in the V2 schema, meaning the same: V1 replicated delete markers."""
    out = {k: v for k, v in rule.items() if k != "Prefix"}
    out.update(Filter={"Prefix": rule.get("Prefix") or ""}, Priority=priority,
               DeleteMarkerReplication={"Status": "Enabled"})
    return out


def merge_rules(
    have: dict[str, Any] | None, want: dict[str, Any], role: str, bucket: str = "the bucket"
) -> tuple[dict[str, Any] | None, list[str]]:
    """The configuration to put so the bucket replicates as ``want`` says while keeping its other rules.

    Returns (configuration, or None when nothing needs to change; changes). Our rule is the one with
    ``want``'s ID; every other rule is kept as it is, except that V1 rules are rewritten in the V2 schema
    (S3 refuses a configuration that mixes them). Priorities stay unique: ours keeps its own when it is
    free, else takes the lowest free one. S3 has one role per configuration: when other rules replicate
    with another role, replacing it could break them (and passing it needs iam:PassRole on it), so the
    step refuses and says which role to name in the plan.
    """
    rules = list((have or {}).get("Rules") or [])
    theirs = [r for r in rules if r.get("ID") != want["ID"]]
    ours = next((r for r in rules if r.get("ID") == want["ID"]), None)
    changes: list[str] = []
    if have and theirs and have.get("Role") and have["Role"] != role:
        ids = ", ".join(str(r.get("ID")) for r in theirs)
        raise PreconditionFailed(
            f"{bucket} already replicates with role {have['Role']} (rules {ids}) and S3 allows one role per bucket: "
            f"name it in the plan (buckets[].replication_role_arn) and let it replicate to "
            f"{want['Destination']['Bucket']}")
    v1 = [r for r in theirs if "Filter" not in r]
    used = {r["Priority"] for r in theirs if "Filter" in r and r.get("Priority") is not None}
    kept_priority = ours.get("Priority") if ours is not None else None
    if not isinstance(kept_priority, int) or kept_priority in used:
        kept_priority = None
    else:
        used.add(kept_priority)

    def free() -> int:
        n = 1
        while n in used:
            n += 1
        used.add(n)
        return n

    converted = {id(r): _v2(r, free()) for r in v1}
    changes += [f"rule {r.get('ID')} rewritten in the V2 replication schema (Filter, Priority)" for r in v1]
    in_place = any(_same_rule(r, want) for r in theirs) or (ours is not None and _same_rule(ours, want))
    if in_place and not v1 and (have or {}).get("Role") == role:
        return None, changes
    if in_place and ours is None:
        new_ours = None  # another rule already replicates everything there
    else:
        new_ours = {**want, "Priority": kept_priority if kept_priority is not None else free()}
        if ours is None:
            changes.append(f"added replication rule {want['ID']}" + (f", kept {len(theirs)} other rule(s)"
                                                                     if theirs else ""))
        elif not _same_rule(ours, want):
            changes.append(f"replaced replication rule {want['ID']}")
    if have and have.get("Role") != role:
        changes.append(f"replication role set to {role}")
    merged = [converted.get(id(r), r) if r is not ours else new_ours for r in rules]
    if ours is None and new_ours is not None:
        merged.append(new_ours)
    return {"Role": role, "Rules": [r for r in merged if r is not None]}, changes


def unreplicated_objects(s3: Any, bucket: str) -> dict[str, Any]:
    """How many objects of ``bucket`` show no ReplicationStatus (written before replication was enabled).

    Bounded: the first page of ListObjectsV2 (``UNREPLICATED_LISTED`` keys, canaries left out), then
    HeadObject on at most ``UNREPLICATED_SAMPLE`` of them, oldest first. ``exact`` says whether every
    object of the bucket was checked; otherwise the count is a lower bound.
    """
    try:
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=UNREPLICATED_LISTED)
    except ClientError as exc:
        raise_mapped(exc, f"list objects of {bucket}")
    objects = [o for o in page.get("Contents") or [] if not o["Key"].startswith(CANARY_PREFIX)]
    sample = sorted(objects, key=lambda o: (o["LastModified"], o["Key"]))[:UNREPLICATED_SAMPLE]
    missing = 0
    for obj in sample:
        try:
            head = s3.head_object(Bucket=bucket, Key=obj["Key"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                continue  # deleted since the listing
            raise_mapped(exc, f"read {obj['Key']} in {bucket}")
        missing += not head.get("ReplicationStatus")
    exact = not page.get("IsTruncated") and len(sample) == len(objects)
    return {"without_replication_status": missing, "checked": len(sample), "listed": len(objects), "exact": exact}


def _unreplicated_flag(source: str, destination: str, counts: dict[str, Any]) -> list[str]:
    n = counts["without_replication_status"]
    if not n:
        return []
    bound = "" if counts["exact"] else f" (at least: the {counts['checked']} oldest of the first {counts['listed']} " \
        "keys were checked)"
    return [f"{n} object(s) in {source} have no ReplicationStatus{bound}: written before replication was enabled, "
            f"S3 does not replicate them to {destination}; copy them with S3 Batch Replication (a Batch Operations "
            "job that replicates existing objects)"]


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
        "s3:ListBucket",
        "s3:GetObject",
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
        "s3:ListBucket": "bucket",
        "s3:GetObject": "source_object",  # HeadObject: the ReplicationStatus of the source's objects
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
    """Versioning on both buckets and our replication rule source -> destination merged into the source's
    configuration (its other rules kept); objects written before replication are counted."""
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
    config, rule_changes = merge_rules(have, want, role_arn, source)
    if config is not None:
        try:
            s3.put_bucket_replication(Bucket=source, ReplicationConfiguration=config)
        except ClientError as exc:
            raise_mapped(exc, f"configure replication of {source}")
        changes += rule_changes
    counts = unreplicated_objects(s3, source)
    flags = _unreplicated_flag(source, destination, counts)
    status = "unchanged" if not changes else ("updated" if existed else "created")
    record: dict[str, Any] = {"resource": f"replication {source} -> {destination}", "status": status,
                              "changes": changes, "unreplicated_objects": counts}
    if flags:
        record["flags"] = flags
    return {"role_arn": role_arn, "record": record, "unreplicated_objects": counts}


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


# -- drills: the DR bucket serves reads and writes ----------------------------------------------------

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys a request


def _newest_canary(s3: Any, bucket: str) -> dict[str, Any] | None:
    with aws_errors(f"list canaries in {bucket}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=CANARY_PREFIX)
        objects = [o for page in pages for o in page.get("Contents") or []]
    return max(objects, key=lambda o: (o["LastModified"], o["Key"]), default=None)


def _versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object version and delete marker under ``prefix`` (an unversioned object has version ``null``)."""
    with aws_errors(f"list object versions under {prefix} in {bucket}"):
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        return [
            {"Key": v["Key"], "VersionId": v.get("VersionId") or "null"}
            for page in pages for v in [*(page.get("Versions") or []), *(page.get("DeleteMarkers") or [])]
        ]
    return []


def _delete_versions(s3: Any, bucket: str, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Delete these versions (and delete markers) for good; what S3 could not delete, with its error."""
    errors: list[dict[str, Any]] = []
    for start in range(0, len(versions), DELETE_BATCH):
        batch = versions[start:start + DELETE_BATCH]
        with aws_errors(f"delete {len(batch)} object version(s) in {bucket}"):
            out = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors += [{"Key": e.get("Key"), "VersionId": e.get("VersionId"), "Code": e.get("Code"),
                    "Message": e.get("Message")} for e in out.get("Errors") or []]
    return errors


@registry.action(
    "drill_probe",
    permissions=["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:ListBucketVersions", "s3:DeleteObject",
                 "s3:DeleteObjectVersion"],
    resource={
        "s3:ListBucket": "bucket",  # ListObjectsV2 under the canary prefix
        "s3:ListBucketVersions": "bucket",  # the probe's versions, to delete them all
        "s3:GetObject": ("canary_object", "drill_object"),
        "s3:PutObject": "drill_object",
        # DeleteObjects authorizes each key as s3:DeleteObject, and as s3:DeleteObjectVersion with a version id.
        "s3:DeleteObject": "drill_object",
        "s3:DeleteObjectVersion": "drill_object",
    },
)
def drill_probe(region: str, plan: str, drill_id: str, bucket: str) -> dict[str, Any]:
    """Show that the DR bucket serves the replicated data and takes writes, leaving nothing behind.

    Reads the newest canary replication delivered to ``bucket`` (its age: how old the newest replicated
    write is), then writes ``pilotlight-drill/<id>/probe.json``, reads it back and deletes every version
    of it (the bucket is versioned: a plain delete would leave the object under a delete marker).
    """
    if not drill.is_drill_id(drill_id):
        raise PreconditionFailed(f"{drill_id!r} is not a drill id")
    s3 = client("s3", region)
    detail: list[str] = []
    canary: dict[str, Any] | None = None
    newest = _newest_canary(s3, bucket)
    if newest is None:
        detail.append(f"no canary under {CANARY_PREFIX} in {bucket} yet: replication has not been shown to deliver "
                      "here (replicate writes one)")
    else:
        try:
            got = s3.get_object(Bucket=bucket, Key=newest["Key"])
            got["Body"].read()
            modified = got.get("LastModified") or newest["LastModified"]
            age = (dt.datetime.now(dt.UTC) - modified).total_seconds()
            canary = {"key": newest["Key"], "age_seconds": round(max(age, 0.0), 3)}
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _NOT_FOUND:
                raise_mapped(exc, f"read canary {newest['Key']} in {bucket}")
            detail.append(f"canary {newest['Key']} in {bucket} was deleted while it was read")
    key = f"{drill.object_prefix(drill_id)}probe.json"
    body = json.dumps({"plan": plan, "drill": drill_id,
                       "written_at": dt.datetime.now(dt.UTC).isoformat()}, sort_keys=True).encode()
    with aws_errors(f"write {key} to {bucket}"):
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    with aws_errors(f"read {key} back from {bucket}"):
        read_back = s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    if not read_back:
        detail.append(f"{key} read back from {bucket} differs from what was written")
    errors = _delete_versions(s3, bucket, [v for v in _versions(s3, bucket, key) if v["Key"] == key])
    left = [v for v in _versions(s3, bucket, key) if v["Key"] == key]
    if errors or left:
        detail.append(f"{len(left)} version(s) of {key} could not be deleted from {bucket}: "
                      + "; ".join(f"{e['Code']}: {e['Message']}" for e in errors))
    return {"bucket": bucket, "canary": canary, "wrote": key, "read_back": read_back, "deleted": not left,
            "ok": canary is not None and read_back and not left, "detail": detail}


@registry.action(
    "remove_drill_objects",
    permissions=["s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion"],
    resource={"s3:ListBucketVersions": "bucket", "s3:DeleteObject": "drill_object",
              "s3:DeleteObjectVersion": "drill_object"},
)
def remove_drill_objects(region: str, plan: str, buckets: list[str], drills: dict[str, Any]) -> dict[str, Any]:
    """Delete every version and delete marker under ``pilotlight-drill/<id>/`` in ``buckets`` whose drill is
    selected (lambdas.drill.selected); other drills' objects, and everything outside that prefix, stay.

    A bucket that does not exist has nothing to remove (listed under ``missing``).
    """
    s3 = client("s3", region)
    deleted: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    missing: list[str] = []
    for bucket in buckets:
        try:
            found = _versions(s3, bucket, drill.S3_PREFIX)
        except ResourceNotFound:
            missing.append(bucket)
            continue
        chosen = []
        for version in found:
            owner = version["Key"][len(drill.S3_PREFIX):].split("/", 1)[0]
            if drill.selected(owner, drills):
                chosen.append((version, owner))
        errors = _delete_versions(s3, bucket, [v for v, _ in chosen])
        refused = {(e["Key"], e["VersionId"]) for e in errors}
        for version, owner in chosen:
            if (version["Key"], version["VersionId"]) not in refused:
                deleted.append({"kind": "s3_object", "id": f"s3://{bucket}/{version['Key']}", "drill": owner,
                                "version": version["VersionId"]})
        failed += [{"bucket": bucket, **e} for e in errors]
    return {"done": not failed, "deleted": deleted, "left": len(failed), "failed": failed, "missing": missing}


# -- failback: the DR buckets replicate back to the primary, then the pilot light is re-armed ------------------
# The reverse rule is replicate's rule pointing the other way (ID pilotlight-to-<primary bucket>) on the DR bucket,
# with the plan's replication role (the one replicate created gets a policy for the reverse pair, removed again at
# re-arm; a role the plan names must allow the reverse direction itself: pilotlight never edits it).

def _reverse_policy(bucket: dict[str, Any]) -> str | None:
    """The reverse pair's policy on the role replicate created (None: the plan names its own role)."""
    return None if bucket.get("role_arn") else f"{bucket['destination']}-to-{bucket['source']}"[:128]


def _replication(s3: Any, bucket: str) -> dict[str, Any] | None:
    try:
        return s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ReplicationConfigurationNotFoundError":
            raise_mapped(exc, f"read replication of {bucket}")
    return None


@registry.action(
    "ensure_reverse_replication",
    permissions=["s3:GetBucketVersioning", "s3:PutBucketVersioning", "s3:GetReplicationConfiguration",
                 "s3:PutReplicationConfiguration", "iam:GetRole", "iam:CreateRole", "iam:GetRolePolicy",
                 "iam:PutRolePolicy", "iam:PassRole"],
    resource={"s3:GetBucketVersioning": "bucket", "s3:PutBucketVersioning": "bucket",
              "s3:GetReplicationConfiguration": "bucket", "s3:PutReplicationConfiguration": "bucket",
              "iam:GetRole": "replication_role", "iam:CreateRole": "replication_role",
              "iam:GetRolePolicy": "replication_role", "iam:PutRolePolicy": "replication_role",
              "iam:PassRole": "replication_role"},
)
def ensure_reverse_replication(plan: str, primary_region: str, dr_region: str,
                               bucket: dict[str, Any]) -> dict[str, Any]:
    """Versioning on both buckets and a rule on the DR bucket (``bucket.destination``) replicating every new
    object to the primary bucket (``bucket.source``), merged into the DR bucket's configuration (its other
    rules kept). Delete markers replicate back as the plan says they replicate forward."""
    primary, dr = bucket["source"], bucket["destination"]
    s3p, s3d = client("s3", primary_region), client("s3", dr_region)
    changes = [f"versioning enabled on {b}" for s3c, b in ((s3p, primary), (s3d, dr)) if _versioning(s3c, b)]
    role_arn = bucket.get("role_arn")
    if not role_arn:
        role_arn, role_changes = _ensure_role(plan, dr, primary)
        changes += role_changes
    have = _replication(s3d, dr)
    config, rule_changes = merge_rules(have, wanted_rule(primary, bool(bucket.get("replicate_delete_markers"))),
                                       role_arn, dr)
    if config is not None:
        with aws_errors(f"configure replication of {dr}"):
            s3d.put_bucket_replication(Bucket=dr, ReplicationConfiguration=config)
        changes += rule_changes
    status = "unchanged" if not changes else ("updated" if have is not None else "created")
    return {"role_arn": role_arn, "record": {"resource": f"replication {dr} -> {primary}", "status": status,
                                             "changes": changes}}


@registry.action(
    "catch_up_primary",
    permissions=["s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging"],
    # CopyObject reads the DR object (and its tags: TaggingDirective COPY) and writes the primary's.
    resource={"s3:ListBucket": "bucket", "s3:GetObject": "object", "s3:GetObjectTagging": "object",
              "s3:PutObject": "source_object", "s3:PutObjectTagging": "source_object"},
)
def catch_up_primary(primary_region: str, dr_region: str, bucket: dict[str, Any], since: str | None = None,
                     state: dict[str, Any] | None = None, attempt: int = 0) -> dict[str, Any]:
    """Copy the objects written in the DR bucket since ``since`` (the failover's start) that the primary bucket
    lacks or holds older and different (lambdas/s3_failback.py); a bounded amount per call, ``state`` carrying
    where the next call goes on. ``done`` once a pass over the DR bucket copied nothing."""
    return s3_failback.catch_up(client("s3", dr_region), client("s3", primary_region), bucket["destination"],
                                bucket["source"], since, state, attempt)


@registry.action(
    "check_failback_data",
    permissions=["s3:ListBucket", "s3:GetObject"],
    resource={"s3:ListBucket": "bucket", "s3:GetObject": "object"},
)
def check_failback_data(primary_region: str, dr_region: str, bucket: dict[str, Any], since: str | None = None,
                        state: dict[str, Any] | None = None, attempt: int = 0) -> dict[str, Any]:
    """Object counts of both buckets, the DR objects written since ``since`` the primary lacks, and a
    deterministic checksum sample compared (lambdas/s3_failback.py); ``result`` once done."""
    return s3_failback.check_data(client("s3", dr_region), client("s3", primary_region), bucket["destination"],
                                  bucket["source"], since, state, attempt)


@registry.action("summarise_failback_data", permissions=[])
def summarise_failback_data(buckets: list[Any]) -> dict[str, Any]:
    """The data check of every pair: ``{"buckets": [...], "ok": every pair ok}``."""
    return {"buckets": buckets, "ok": all(bool(b.get("ok")) for b in buckets if isinstance(b, dict))}


@registry.action(
    "remove_reverse_replication",
    permissions=["s3:GetReplicationConfiguration", "s3:PutReplicationConfiguration", "iam:DeleteRolePolicy"],
    resource={"s3:GetReplicationConfiguration": "bucket", "s3:PutReplicationConfiguration": "bucket",
              "iam:DeleteRolePolicy": "replication_role"},
)
def remove_reverse_replication(plan: str, primary_region: str, dr_region: str, bucket: dict[str, Any]
                               ) -> dict[str, Any]:
    """Re-arm: the reverse rule removed from the DR bucket (its other rules kept; the configuration deleted when
    none is left) and the reverse pair's policy from the role replicate created. The forward rule on the primary
    bucket is read, never changed: ``forward`` says whether it is in place."""
    primary, dr = bucket["source"], bucket["destination"]
    s3p, s3d = client("s3", primary_region), client("s3", dr_region)
    changes: list[str] = []
    rule_id = wanted_rule(primary, False)["ID"]
    have = _replication(s3d, dr)
    rules = list((have or {}).get("Rules") or [])
    kept = [r for r in rules if r.get("ID") != rule_id]
    if len(kept) != len(rules):
        with aws_errors(f"remove rule {rule_id} from {dr}"):
            if kept:
                s3d.put_bucket_replication(Bucket=dr, ReplicationConfiguration={**(have or {}), "Rules": kept})
            else:
                s3d.delete_bucket_replication(Bucket=dr)
        changes.append(f"removed replication rule {rule_id}" + (f", kept {len(kept)} other rule(s)" if kept else ""))
    policy = _reverse_policy(bucket)
    if policy:
        try:
            client("iam", "us-east-1").delete_role_policy(RoleName=role_name(plan), PolicyName=policy)
            changes.append(f"role policy {policy} removed")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise_mapped(exc, f"remove policy {policy}")
    forward = _replication(s3p, primary)
    in_place = any(r.get("Status") == "Enabled" and (r.get("Destination") or {}).get("Bucket") == f"arn:aws:s3:::{dr}"
                   for r in (forward or {}).get("Rules") or [])
    record: dict[str, Any] = {"resource": f"replication {dr} -> {primary}", "status": "deleted" if changes else
                              "unchanged", "changes": changes, "forward": in_place}
    if not in_place:
        record["flags"] = [f"{primary} does not replicate to {dr}: the next replicate run sets the rule again"]
    return {"record": record}
