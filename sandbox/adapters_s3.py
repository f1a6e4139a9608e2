"""S3 cross-region replication that replicates, which moto 5.2 does not do.

moto stores a bucket's replication configuration (and refuses it without versioning, as AWS
does) but never copies anything. Here a new object in a bucket with an enabled rule whose filter
matches is PENDING, then after the modeled replication time (``s3.replicate``) it is copied to the
destination bucket and the source shows COMPLETED (FAILED when the destination is missing or
unversioned); the copy shows REPLICA. ``HeadObject``/``GetObject`` report ``ReplicationStatus``.
Deletes without a version id replicate as delete markers when the rule says so.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

_lock = threading.Lock()
STATUS: dict[tuple[str, str], str] = {}  # (bucket, key) -> PENDING | COMPLETED | FAILED | REPLICA


class Replicator:
    def __init__(self, delay: Any) -> None:
        self.delay = delay  # () -> modeled seconds a replication takes

    def after_put(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        bucket, key = p.get("Bucket", ""), p.get("Key", "")
        rule = matching_rule(bucket, key)
        if rule is None:
            return
        with _lock:
            STATUS[(bucket, key)] = "PENDING"
        destination = rule["Destination"]["Bucket"].rsplit(":", 1)[-1]
        seconds = self.delay()
        version = parsed.get("VersionId")
        if seconds <= 0:
            replicate(bucket, key, version, destination)
            return
        clock.call_later(seconds, lambda: replicate(bucket, key, version, destination))

    def after_delete(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        if p.get("VersionId"):
            return  # deleting a version is never replicated
        rule = matching_rule(p.get("Bucket", ""), p.get("Key", ""))
        if rule is None or (rule.get("DeleteMarkerReplication") or {}).get("Status") != "Enabled":
            return
        destination = rule["Destination"]["Bucket"].rsplit(":", 1)[-1]
        backend = _s3()
        if destination in backend.buckets:
            backend.delete_object(destination, p["Key"])

    def after_head(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        status = STATUS.get((p.get("Bucket", ""), p.get("Key", "")))
        if status:
            parsed["ReplicationStatus"] = status


def after_get_replication(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto answers every rule with DeleteMarkerReplication Disabled and an empty prefix; show what was stored."""
    if http_response.status_code >= 300:
        return
    bucket = _s3().buckets.get(responses.api_params(context).get("Bucket", ""))
    stored = getattr(bucket, "replication", None) or {}
    rules = stored.get("Rule") or []
    by_id = {r.get("ID"): r for r in (rules if isinstance(rules, list) else [rules])}
    for rule in (parsed.get("ReplicationConfiguration") or {}).get("Rules", []):
        original = by_id.get(rule.get("ID"))
        if original is None:
            continue
        if original.get("DeleteMarkerReplication"):
            rule["DeleteMarkerReplication"] = {"Status": original["DeleteMarkerReplication"].get("Status", "Disabled")}
        prefix = (original.get("Filter") or {}).get("Prefix") or original.get("Prefix")
        if prefix:
            rule["Filter"] = {"Prefix": prefix}


def _s3() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def matching_rule(bucket_name: str, key: str) -> dict[str, Any] | None:
    bucket = _s3().buckets.get(bucket_name)
    config = getattr(bucket, "replication", None) if bucket is not None else None
    if not config:
        return None
    rules = config.get("Rule") or []
    rules = rules if isinstance(rules, list) else [rules]
    for rule in sorted(rules, key=lambda r: -int(r.get("Priority") or 0)):
        if rule.get("Status") != "Enabled":
            continue
        prefix = (rule.get("Filter") or {}).get("Prefix") or rule.get("Prefix") or ""
        if key.startswith(prefix):
            return rule
    return None


def replicate(source: str, key: str, version_id: str | None, destination: str) -> None:
    backend = _s3()
    status = "FAILED"
    try:
        dest = backend.buckets.get(destination)
        if dest is not None and dest.is_versioned:
            obj = backend.get_object(source, key, version_id=version_id)
            if obj is not None:
                backend.put_object(destination, key, obj.value)
                with _lock:
                    STATUS[(destination, key)] = "REPLICA"
                status = "COMPLETED"
    finally:
        with _lock:
            if STATUS.get((source, key)) == "PENDING":
                STATUS[(source, key)] = status


_replicator: Replicator | None = None


def handlers(rep: Replicator) -> list[tuple[str, Any]]:
    return [
        ("before-parameter-build.s3.PutObject", responses.stash_api_params),
        ("before-parameter-build.s3.DeleteObject", responses.stash_api_params),
        ("before-parameter-build.s3.HeadObject", responses.stash_api_params),
        ("before-parameter-build.s3.GetObject", responses.stash_api_params),
        ("before-parameter-build.s3.GetBucketReplication", responses.stash_api_params),
        ("after-call.s3.GetBucketReplication", after_get_replication),
        ("after-call.s3.PutObject", rep.after_put),
        ("after-call.s3.DeleteObject", rep.after_delete),
        ("after-call.s3.HeadObject", rep.after_head),
        ("after-call.s3.GetObject", rep.after_head),
    ]


def install(events: Any, delay: Any = lambda: 0.0) -> None:
    global _replicator
    STATUS.clear()
    _replicator = Replicator(delay)
    for event, handler in handlers(_replicator):
        events.register(event, handler, unique_id=f"pilotlight-s3-{event}")


def uninstall(events: Any) -> None:
    if _replicator is None:
        return
    for event, _ in handlers(_replicator):
        events.unregister(event, unique_id=f"pilotlight-s3-{event}")

