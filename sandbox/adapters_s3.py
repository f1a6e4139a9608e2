"""S3 cross-region replication that replicates, which moto 5.2 does not do.

moto stores a bucket's replication configuration (and refuses it without versioning, as AWS
does) but never copies anything. Here a new object in a bucket with an enabled rule whose filter
matches is PENDING, then after the modeled replication time (``s3.replicate``) it is copied to the
destination bucket and the source shows COMPLETED (FAILED when the destination is missing or
unversioned); the copy shows REPLICA. ``HeadObject``/``GetObject`` report ``ReplicationStatus``.
Deletes without a version id replicate as delete markers when the rule says so. A CopyObject into a
bucket with a rule is a new object and replicates like a put (the copy source may be in another region:
moto keeps every region's buckets in one backend, so a cross-region CopyObject works as in S3). A
replica is never replicated again (S3 does not replicate replicas), so rules in both directions between
two buckets (a failback's reverse rule on the DR bucket) do not loop.

As in S3, every destination gets the object: per destination, the enabled rule of highest priority
whose filter matches replicates it, and the source shows COMPLETED once every destination has it
(FAILED when one failed). Rules whose filter names object tags never match here (tags on objects are
not modeled). Objects written before a rule existed are not replicated (S3 Batch Replication's work).

moto answers ``GetBucketReplication`` with every rule rewritten (an empty-prefix ``Filter``, delete
markers Disabled, no V1 ``Prefix``); here the configuration is answered as it was put. moto accepts
any configuration; here ``PutBucketReplication`` is refused (``InvalidRequest``) where S3 refuses it:
rules in the V1 schema (``Prefix``) mixed with V2 rules (``Filter``), a V2 rule without ``Priority``
or ``DeleteMarkerReplication``, two rules with one priority or one ID, overlapping V1 prefixes, and
delete-marker replication on a tag-filtered rule.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

_lock = threading.Lock()
STATUS: dict[tuple[str, str], str] = {}  # (bucket, key) -> PENDING | COMPLETED | FAILED | REPLICA
CONFIGS: dict[str, dict[str, Any]] = {}  # bucket -> ReplicationConfiguration as put (botocore's shape)
_OUTSTANDING: dict[tuple[str, str], dict[str, bool | None]] = {}  # (bucket, key) -> destination -> replicated?


class Replicator:
    def __init__(self, delay: Any) -> None:
        self.delay = delay  # () -> modeled seconds a replication takes

    def after_put(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        bucket, key = p.get("Bucket", ""), p.get("Key", "")
        rules = matching_rules(bucket, key)
        if not rules:
            with _lock:  # a new version written without a rule has no status (a replica overwritten in place)
                STATUS.pop((bucket, key), None)
                _OUTSTANDING.pop((bucket, key), None)
            return
        destinations = [_bucket_name(rule) for rule in rules]
        with _lock:
            STATUS[(bucket, key)] = "PENDING"
            _OUTSTANDING[(bucket, key)] = dict.fromkeys(destinations)
        version = parsed.get("VersionId")
        for destination in destinations:
            seconds = self.delay()
            if seconds <= 0:
                replicate(bucket, key, version, destination)
            else:
                clock.call_later(seconds, lambda d=destination: replicate(bucket, key, version, d))

    def after_delete(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        if p.get("VersionId"):
            return  # deleting a version is never replicated
        backend = _s3()
        for rule in matching_rules(p.get("Bucket", ""), p.get("Key", "")):
            # V1 rules (no Filter) replicated delete markers; V2 rules say so.
            marker = (rule.get("DeleteMarkerReplication") or {}).get("Status") == "Enabled" or "Filter" not in rule
            destination = _bucket_name(rule)
            if marker and destination in backend.buckets:
                backend.delete_object(destination, p["Key"])

    def after_head(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        status = STATUS.get((p.get("Bucket", ""), p.get("Key", "")))
        if status:
            parsed["ReplicationStatus"] = status


def _bucket_name(rule: dict[str, Any]) -> str:
    return str(rule["Destination"]["Bucket"]).rsplit(":", 1)[-1]


def _problem(rules: list[dict[str, Any]]) -> str | None:
    """Why S3 would refuse these rules (None: it accepts them)."""
    v2 = [r for r in rules if "Filter" in r]
    if v2 and len(v2) != len(rules):
        return "All rules must use the same replication configuration schema: Filter (V2) or Prefix (V1)."
    ids = [r.get("ID") for r in rules if r.get("ID")]
    if len(ids) != len(set(ids)):
        return "Rule Id must be unique."
    if not v2:
        prefixes = sorted(r.get("Prefix") or "" for r in rules)
        if any(b.startswith(a) for a, b in zip(prefixes, prefixes[1:], strict=False)):
            return "Found overlapping prefixes in the replication rules."
        return None
    for rule in v2:
        if rule.get("Priority") is None:
            return ("Priority must be specified for this version of Cross Region Replication configuration schema. "
                    "Please refer to S3 Developer Guide for more information.")
        if not rule.get("DeleteMarkerReplication"):
            return ("DeleteMarkerReplication must be specified for this version of Cross Region Replication "
                    "configuration schema. Please refer to S3 Developer Guide for more information.")
        tagged = "Tag" in rule["Filter"] or (rule["Filter"].get("And") or {}).get("Tags")
        if tagged and rule["DeleteMarkerReplication"].get("Status") == "Enabled":
            return "Delete marker replication is not supported if any Tag filter is specified."
    priorities = [r["Priority"] for r in v2]
    duplicate = next((p for p in priorities if priorities.count(p) > 1), None)
    return None if duplicate is None else f"Found duplicate priority {duplicate} in rules."


def before_put_replication(context: dict[str, Any], **_: Any) -> Any:
    rules = (responses.api_params(context).get("ReplicationConfiguration") or {}).get("Rules") or []
    problem = _problem(rules)
    return None if problem is None else responses.error("InvalidRequest", problem)


def after_put_replication(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the configuration as it was put (with the rule IDs S3 made up for rules without one)."""
    if http_response.status_code >= 300:
        return
    p = responses.api_params(context)
    config = copy.deepcopy(p.get("ReplicationConfiguration") or {})
    stored = getattr(_s3().buckets.get(p.get("Bucket", "")), "replication", None) or {}
    moto_rules = stored.get("Rule") or []
    for rule, moto_rule in zip(config.get("Rules") or [], moto_rules if isinstance(moto_rules, list) else [moto_rules],
                               strict=False):
        rule.setdefault("ID", moto_rule.get("ID"))
    with _lock:
        CONFIGS[p.get("Bucket", "")] = config


def after_delete_replication(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code < 300:
        with _lock:
            CONFIGS.pop(responses.api_params(context).get("Bucket", ""), None)


def after_get_replication(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto answers every rule with DeleteMarkerReplication Disabled and an empty prefix; show what was stored."""
    if http_response.status_code >= 300:
        return
    name = responses.api_params(context).get("Bucket", "")
    if name in CONFIGS:
        parsed["ReplicationConfiguration"] = copy.deepcopy(CONFIGS[name])
        return
    bucket = _s3().buckets.get(name)
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


def _rules(bucket_name: str) -> list[dict[str, Any]]:
    """The bucket's rules in botocore's shape (as put; moto's own form for a configuration put before install)."""
    if bucket_name in CONFIGS:
        return list(CONFIGS[bucket_name].get("Rules") or [])
    bucket = _s3().buckets.get(bucket_name)
    config = getattr(bucket, "replication", None) if bucket is not None else None
    rules = (config or {}).get("Rule") or []
    return rules if isinstance(rules, list) else [rules]


def _matches(rule: dict[str, Any], key: str) -> bool:
    if "Filter" not in rule:
        return key.startswith(rule.get("Prefix") or "")
    flt = rule.get("Filter") or {}
    both = flt.get("And") or {}
    if "Tag" in flt or both.get("Tags") or both.get("Tag"):
        return False  # object tags are not modeled
    return key.startswith(flt.get("Prefix") or both.get("Prefix") or "")


def matching_rules(bucket_name: str, key: str) -> list[dict[str, Any]]:
    """Per destination, the enabled rule of highest priority that matches ``key``."""
    chosen: dict[str, dict[str, Any]] = {}
    for rule in sorted(_rules(bucket_name), key=lambda r: -int(r.get("Priority") or 0)):
        if rule.get("Status") == "Enabled" and _matches(rule, key):
            chosen.setdefault(_bucket_name(rule), rule)
    return list(chosen.values())


def replicate(source: str, key: str, version_id: str | None, destination: str) -> None:
    backend = _s3()
    done = False
    try:
        dest = backend.buckets.get(destination)
        if dest is not None and dest.is_versioned:
            obj = backend.get_object(source, key, version_id=version_id)
            if obj is not None:
                # A replica carries the source's metadata (content type, user metadata), tags, storage class
                # and checksum, and the same ETag: S3 replicates the object, it does not rewrite it.
                replica = backend.put_object(destination, key, obj.value, storage=obj.storage_class,
                                             disable_notification=True)
                replica.set_metadata(obj.metadata)
                backend.tagger.copy_tags(obj.arn, replica.arn)
                if obj.checksum_value:
                    replica.checksum_value, replica.checksum_algorithm = obj.checksum_value, obj.checksum_algorithm
                with _lock:
                    STATUS[(destination, key)] = "REPLICA"
                done = True
    finally:
        with _lock:
            outstanding = _OUTSTANDING.get((source, key))
            if outstanding is not None and destination in outstanding:
                outstanding[destination] = done
            results = list(outstanding.values()) if outstanding is not None else [done]
            if STATUS.get((source, key)) == "PENDING" and None not in results:
                STATUS[(source, key)] = "COMPLETED" if all(results) else "FAILED"
                _OUTSTANDING.pop((source, key), None)


_replicator: Replicator | None = None


def handlers(rep: Replicator) -> list[tuple[str, Any]]:
    return [
        ("before-parameter-build.s3.PutObject", responses.stash_api_params),
        ("before-parameter-build.s3.CopyObject", responses.stash_api_params),
        ("before-parameter-build.s3.DeleteObject", responses.stash_api_params),
        ("before-parameter-build.s3.HeadObject", responses.stash_api_params),
        ("before-parameter-build.s3.GetObject", responses.stash_api_params),
        ("before-parameter-build.s3.GetBucketReplication", responses.stash_api_params),
        ("before-parameter-build.s3.PutBucketReplication", responses.stash_api_params),
        ("before-parameter-build.s3.DeleteBucketReplication", responses.stash_api_params),
        ("before-call.s3.PutBucketReplication", before_put_replication),
        ("after-call.s3.PutBucketReplication", after_put_replication),
        ("after-call.s3.DeleteBucketReplication", after_delete_replication),
        ("after-call.s3.GetBucketReplication", after_get_replication),
        ("after-call.s3.PutObject", rep.after_put),
        ("after-call.s3.CopyObject", rep.after_put),  # a copy is a new object: replicated like a put
        ("after-call.s3.DeleteObject", rep.after_delete),
        ("after-call.s3.HeadObject", rep.after_head),
        ("after-call.s3.GetObject", rep.after_head),
    ]


def install(events: Any, delay: Any = lambda: 0.0) -> None:
    global _replicator
    STATUS.clear()
    CONFIGS.clear()
    _OUTSTANDING.clear()
    _replicator = Replicator(delay)
    responses.hook(events, handlers(_replicator), "s3")


def uninstall(events: Any) -> None:
    if _replicator is None:
        return
    responses.unhook(events, handlers(_replicator), "s3")

