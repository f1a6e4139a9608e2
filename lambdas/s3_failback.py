"""S3 in a failback: the DR buckets' objects back in the primary buckets, and the data check.

Plain functions; the actions (``lambdas/s3.py``: ``catch_up``, ``check_data``) call them with their clients.

Both walk a pair of buckets the same way: ListObjectsV2 returns keys in UTF-8 binary order, so the two
listings are merged key by key in *windows*. A window lists one page (``LISTED`` keys) of each bucket after
the same key (``StartAfter``); it ends at the smaller of the two pages' last keys when a page was truncated
(every key up to it has been seen in both), else at the end of both buckets. The next window starts after
that key. The key is the continuation token carried in the poll document: StartAfter works on both
listings, where a ContinuationToken belongs to one.

Catch-up: an object of the DR bucket is copied (CopyObject, in the primary region) when the primary lacks it,
or when the DR object is newer and differs in size or ETag, and it was written at or after ``since`` (the
failover's start: older DR-only objects are what the primary deleted before the outage, without a replicated
delete marker, and are left as they are). Objects S3 replication carries itself (``ReplicationStatus``
PENDING or COMPLETED: written after the reverse rule) or that came from the primary (REPLICA) are not copied.
A copied object is newer in the primary than in the DR bucket, so a later pass or a re-run does not copy it
again. Objects above CopyObject's 5 GB limit, and archived ones, are refused by key.

Data check: counts of both buckets (pilotlight's own canary and drill objects left out), DR objects written
since ``since`` that the primary lacks or holds with another size, and a deterministic sample (``SAMPLE``
keys: the smallest SHA-256 of the key, half among the objects written since ``since``) compared by HeadObject:
size, content type and user metadata, then the first of: a full-object checksum both copies carry
(``ChecksumCRC64NVME``/``CRC32C``/``CRC32``/``SHA256``/``SHA1``, with ``ChecksumMode=ENABLED``); the ETag when
both are single-part MD5 ETags (not SSE-KMS/DSSE); the SHA-256 of both bodies up to ``CONTENT_BYTES``; else
the size alone (``method: size``). Multipart ETags are never compared: a copy has other parts than its source.
A sampled key that differs but is newer in the primary was written there again after the cutover: it is listed
under ``newer_in_primary``, not as a mismatch (a catch-up copy has the DR object's size and ETag).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from lambdas import drill
from lambdas.common import aws_errors, raise_mapped

CANARY_PREFIX = "pilotlight-canary/"  # lambdas/s3.py CANARY_PREFIX
OWN_PREFIXES = (CANARY_PREFIX, drill.S3_PREFIX)
LISTED = 1000  # keys per ListObjectsV2 page (its maximum)
WINDOWS = 5  # windows per invocation: at most 2 x 5 list calls
TIME_BUDGET = 60.0  # seconds of work per invocation, well inside the Task's timeout (120 s)
COPY_BYTES = 1024**3  # bytes copied per invocation (at least one object)
COPY_KEYS = 200  # objects copied per invocation
MAX_COPY_BYTES = 5 * 1024**3  # CopyObject copies at most 5 GB in one request
MAX_PASSES = 3  # catch-up passes over the DR bucket: done once a pass copies nothing, at most this many
SAMPLE = 20  # keys compared by the data check
CONTENT_BYTES = 1024 * 1024  # objects up to this size are compared by their bodies' SHA-256 when nothing else fits
LISTED_KEYS = 20  # keys named in a result's lists (the counts are complete)
ARCHIVED = ("GLACIER", "DEEP_ARCHIVE")
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_CHECKSUMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")


def parse_since(since: str | None) -> dt.datetime | None:
    """An ISO-8601 instant (``...Z`` or with an offset; a naive one is taken as UTC), down to the second: S3
    lists LastModified in whole seconds, so an object written in the failover's first second counts as after it."""
    if not since:
        return None
    when = dt.datetime.fromisoformat(since.replace("Z", "+00:00")).replace(microsecond=0)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def own(key: str) -> bool:
    """pilotlight's own objects (canaries, drill probes): never copied, counted or sampled."""
    return key.startswith(OWN_PREFIXES)


def _page(s3: Any, bucket: str, after: str | None) -> dict[str, Any]:
    with aws_errors(f"list objects of {bucket}"):
        return s3.list_objects_v2(Bucket=bucket, MaxKeys=LISTED, **({"StartAfter": after} if after else {}))
    return {}


def window(s3d: Any, s3p: Any, dr: str, primary: str, after: str | None
           ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int, str | None]:
    """One window of the merged listings after ``after``: (DR objects, primary objects by key, primary objects
    counted, the key the window ends at or None at the end of both buckets). Own objects are left out."""
    d, p = _page(s3d, dr, after), _page(s3p, primary, after)
    dr_objs, p_objs = list(d.get("Contents") or []), list(p.get("Contents") or [])
    ends = [page[-1]["Key"] for page, res in ((dr_objs, d), (p_objs, p)) if res.get("IsTruncated") and page]
    end = min(ends) if ends else None
    if end is not None:
        dr_objs = [o for o in dr_objs if o["Key"] <= end]
        p_objs = [o for o in p_objs if o["Key"] <= end]
    p_objs = [o for o in p_objs if not own(o["Key"])]
    return [o for o in dr_objs if not own(o["Key"])], {o["Key"]: o for o in p_objs}, len(p_objs), end


def differs(dr_obj: dict[str, Any], p_obj: dict[str, Any] | None) -> bool:
    """Whether a DR object must be copied over the primary's (listing data only): missing, or newer with
    another size or ETag. A copy is newer than its source, so it is never copied back over."""
    if p_obj is None:
        return True
    newer = dr_obj["LastModified"] > p_obj["LastModified"]
    return newer and (dr_obj.get("Size") != p_obj.get("Size") or dr_obj.get("ETag") != p_obj.get("ETag"))


def _head(s3: Any, bucket: str, key: str, checksums: bool = False) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key, **({"ChecksumMode": "ENABLED"} if checksums else {}))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _NOT_FOUND:
            return None
        raise_mapped(exc, f"read {key} in {bucket}")
    return None


def _new_catch_up(since: str | None) -> dict[str, Any]:
    return {"after": None, "pass": 1, "pass_copied": 0, "copied": 0, "bytes": 0, "replicating": 0,
            "before_since": 0, "refused": [], "refused_count": 0, "since": since}


def catch_up(s3d: Any, s3p: Any, dr: str, primary: str, since: str | None, state: dict[str, Any] | None,
             attempt: int) -> dict[str, Any]:
    """Copy what the DR bucket holds and the primary lacks (see the module), a bounded amount per call.

    Returns the poll document: ``done``, ``attempt``, ``state`` (the next call's), and when done a
    ``record`` with the totals."""
    st = dict(state) if state else _new_catch_up(since)
    cutoff = parse_since(st.get("since"))
    started, copied_bytes, copied_keys = time.monotonic(), 0, 0
    for _ in range(WINDOWS):
        dr_objs, p_objs, _counted, end = window(s3d, s3p, dr, primary, st["after"])
        stopped_at = None
        for obj in dr_objs:
            if copied_keys >= COPY_KEYS or copied_bytes >= COPY_BYTES or time.monotonic() - started > TIME_BUDGET:
                stopped_at = obj["Key"]
                break
            copied = _catch_up_one(s3d, s3p, dr, primary, obj, p_objs.get(obj["Key"]), cutoff, st)
            copied_keys += copied
            copied_bytes += obj.get("Size", 0) if copied else 0
        if stopped_at is not None:
            st["after"] = _before(dr_objs, stopped_at, st["after"])
            break
        st["after"] = end
        if end is None:  # a pass is over
            if st["pass_copied"] == 0 or st["pass"] >= MAX_PASSES:
                return _catch_up_done(dr, primary, st, attempt)
            st.update({"pass": st["pass"] + 1, "pass_copied": 0})
        if time.monotonic() - started > TIME_BUDGET:
            break
    return {"done": False, "attempt": attempt + 1, "state": st, "copied": st["copied"]}


def _before(objs: list[dict[str, Any]], key: str, fallback: str | None) -> str | None:
    """The key before ``key`` in the window (where the next call resumes), or where this window started."""
    keys = [o["Key"] for o in objs]
    i = keys.index(key)
    return keys[i - 1] if i > 0 else fallback


def _catch_up_one(s3d: Any, s3p: Any, dr: str, primary: str, obj: dict[str, Any], p_obj: dict[str, Any] | None,
                  cutoff: dt.datetime | None, st: dict[str, Any]) -> bool:
    """Copy one DR object when it must be (True when copied); counts what was left and why in ``st``."""
    key = obj["Key"]
    if not differs(obj, p_obj):
        return False
    first = st["pass"] == 1  # what is left is counted in the first pass only
    if cutoff is not None and obj["LastModified"] < cutoff:
        st["before_since"] += first
        return False
    size = obj.get("Size", 0)
    storage = obj.get("StorageClass") or "STANDARD"
    if size > MAX_COPY_BYTES or storage in ARCHIVED:
        why = (f"{size} bytes: above CopyObject's 5 GB limit (copy it with a multipart upload, UploadPartCopy)"
               if size > MAX_COPY_BYTES else f"storage class {storage}: restore it before it can be copied")
        _refuse(st, key, why)
        return False
    head = _head(s3d, dr, key)
    if head is None:
        return False  # deleted since the listing
    if head.get("ReplicationStatus") in ("PENDING", "COMPLETED", "REPLICA"):
        st["replicating"] += first  # S3 replication carries it (or it came from the primary)
        return False
    extra = {"StorageClass": storage} if storage != "STANDARD" else {}
    try:
        s3p.copy_object(Bucket=primary, Key=key, CopySource={"Bucket": dr, "Key": key}, **extra)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in _NOT_FOUND:
            return False
        if code in ("InvalidObjectState", "EntityTooLarge", "InvalidRequest"):
            _refuse(st, key, f"{code}: {exc.response['Error'].get('Message', '')}")
            return False
        raise_mapped(exc, f"copy {key} from {dr} to {primary}")
    st["copied"] += 1
    st["pass_copied"] += 1
    st["bytes"] += size
    return True


def _refuse(st: dict[str, Any], key: str, why: str) -> None:
    if st["pass"] > 1:
        return  # counted in the first pass
    st["refused_count"] += 1
    if len(st["refused"]) < LISTED_KEYS:
        st["refused"].append({"key": key, "reason": why})


def _catch_up_done(dr: str, primary: str, st: dict[str, Any], attempt: int) -> dict[str, Any]:
    converged = st["pass_copied"] == 0
    flags = []
    if st["refused_count"]:
        flags.append(f"{st['refused_count']} object(s) of {dr} were not copied to {primary}: "
                     + "; ".join(f"{r['key']} ({r['reason']})" for r in st["refused"]))
    if not converged:
        flags.append(f"objects of {dr} were still being copied after {st['pass']} passes: writes in the DR region "
                     "are replicated by the reverse rule; the data check shows what is missing")
    record = {"resource": f"catch-up {dr} -> {primary}", "status": "failed" if flags else "verified",
              "copied": st["copied"], "bytes": st["bytes"], "passes": st["pass"], "replicating": st["replicating"],
              "left_before_since": st["before_since"], "refused": st["refused"], "refused_count": st["refused_count"],
              "converged": converged}
    if flags:
        record["flags"] = flags
    return {"done": True, "attempt": attempt + 1, "copied": st["copied"], "record": record}


# -- the data check ---------------------------------------------------------------------------------------------

def _new_check(since: str | None) -> dict[str, Any]:
    return {"after": None, "since": since, "dr_objects": 0, "primary_objects": 0, "missing": [], "missing_count": 0,
            "before_since": 0, "recent": [], "older": []}


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _keep_smallest(reservoir: list[list[str]], key: str, limit: int) -> None:
    """Keep the ``limit`` keys with the smallest hash (deterministic, whatever the windows are)."""
    reservoir.append([_rank(key), key])
    reservoir.sort()
    del reservoir[limit:]


def check_data(s3d: Any, s3p: Any, dr: str, primary: str, since: str | None, state: dict[str, Any] | None,
               attempt: int) -> dict[str, Any]:
    """The data check of one pair (see the module), a bounded amount per call; the poll document, with
    ``result`` when done."""
    st = dict(state) if state else _new_check(since)
    cutoff = parse_since(st.get("since"))
    started = time.monotonic()
    for _ in range(WINDOWS):
        dr_objs, p_objs, counted, end = window(s3d, s3p, dr, primary, st["after"])
        st["dr_objects"] += len(dr_objs)
        st["primary_objects"] += counted
        for obj in dr_objs:
            recent = cutoff is None or obj["LastModified"] >= cutoff
            p_obj = p_objs.get(obj["Key"])
            if p_obj is None and not recent:
                st["before_since"] += 1  # deleted in the primary before the outage: not ours to restore
                continue
            rewritten = p_obj is not None and p_obj["LastModified"] > obj["LastModified"] and not _copied(obj, p_obj)
            if p_obj is None or (recent and p_obj.get("Size") != obj.get("Size") and not rewritten):
                st["missing_count"] += 1
                if len(st["missing"]) < LISTED_KEYS:
                    st["missing"].append(obj["Key"])
                continue
            _keep_smallest(st["recent" if recent else "older"], obj["Key"], SAMPLE)
        st["after"] = end
        if end is None:
            return {"done": True, "attempt": attempt + 1, "result": _check_result(s3d, s3p, dr, primary, st)}
        if time.monotonic() - started > TIME_BUDGET:
            break
    return {"done": False, "attempt": attempt + 1, "state": st}


def _copied(dr_obj: dict[str, Any], p_obj: dict[str, Any]) -> bool:
    """Whether the primary's object can be the catch-up's copy of the DR object (same size and ETag)."""
    return dr_obj.get("Size") == p_obj.get("Size") and dr_obj.get("ETag") == p_obj.get("ETag")


def sample_keys(recent: list[list[str]], older: list[list[str]], limit: int = SAMPLE) -> list[str]:
    """Half the sample among the objects written since the failover, the rest among the others (each half
    filled from the other when it has too few)."""
    half = limit // 2
    take_recent = min(len(recent), max(half, limit - len(older)))
    chosen = [k for _, k in recent[:take_recent]]
    chosen += [k for _, k in older[:limit - len(chosen)]]
    return sorted(chosen)


def _check_result(s3d: Any, s3p: Any, dr: str, primary: str, st: dict[str, Any]) -> dict[str, Any]:
    keys = sample_keys(st["recent"], st["older"])
    compared: list[dict[str, Any]] = []
    for key in keys:
        outcome = compare_object(s3d, s3p, dr, primary, key)
        if outcome is not None:
            compared.append(outcome)
    # Written again in the primary after the cutover (newer there): not a copy that went wrong.
    newer = [c["key"] for c in compared if not c["same"] and c.get("newer_in_primary")]
    mismatches = [c["key"] for c in compared if not c["same"] and not c.get("newer_in_primary")]
    result = {
        "source": primary, "destination": dr, "dr_objects": st["dr_objects"],
        "primary_objects": st["primary_objects"], "sample": len(compared),
        "mismatches": mismatches, "missing_in_primary": st["missing_count"], "missing": st["missing"],
        "dr_only_before_failover": st["before_since"], "newer_in_primary": newer,
        "methods": sorted({c["method"] for c in compared}),
        "detail": [c for c in compared if not c["same"]],
    }
    result["ok"] = not mismatches and not st["missing_count"]
    return result


def compare_object(s3d: Any, s3p: Any, dr: str, primary: str, key: str) -> dict[str, Any] | None:
    """Compare one key in both buckets (None: gone from the DR bucket since it was listed)."""
    d = _head(s3d, dr, key, checksums=True)
    if d is None:
        return None
    p = _head(s3p, primary, key, checksums=True)
    if p is None:
        return {"key": key, "same": False, "method": "presence", "why": f"not in {primary}"}
    out = _compare_heads(s3d, s3p, dr, primary, key, d, p)
    if out is not None and not out["same"] and p.get("LastModified") and d.get("LastModified") \
            and p["LastModified"] > d["LastModified"]:
        out["newer_in_primary"] = True
    return out


def _compare_heads(s3d: Any, s3p: Any, dr: str, primary: str, key: str, d: dict[str, Any], p: dict[str, Any]
                   ) -> dict[str, Any] | None:
    if d.get("ContentLength") != p.get("ContentLength"):
        return {"key": key, "same": False, "method": "size",
                "why": f"{d.get('ContentLength')} bytes in {dr}, {p.get('ContentLength')} in {primary}"}
    if (d.get("ContentType"), d.get("Metadata") or {}) != (p.get("ContentType"), p.get("Metadata") or {}):
        return {"key": key, "same": False, "method": "metadata", "why": "content type or user metadata differ"}
    for alg in _CHECKSUMS:
        a, b = d.get(f"Checksum{alg}"), p.get(f"Checksum{alg}")
        if a and b and _full_object(d, a) and _full_object(p, b):
            return {"key": key, "same": a == b, "method": f"checksum-{alg}",
                    **({} if a == b else {"why": f"{alg} {a} in {dr}, {b} in {primary}"})}
    if _md5_etag(d) and _md5_etag(p):
        same = d.get("ETag") == p.get("ETag")
        return {"key": key, "same": same, "method": "etag-md5",
                **({} if same else {"why": f"ETag {d.get('ETag')} in {dr}, {p.get('ETag')} in {primary}"})}
    if (d.get("ContentLength") or 0) <= CONTENT_BYTES:
        a, b = _body_sha256(s3d, dr, key), _body_sha256(s3p, primary, key)
        if a is None or b is None:
            return None
        return {"key": key, "same": a == b, "method": "sha256",
                **({} if a == b else {"why": "the bodies' SHA-256 differ"})}
    return {"key": key, "same": True, "method": "size"}


def _full_object(head: dict[str, Any], value: str) -> bool:
    """A checksum of the whole object (a COMPOSITE one of a multipart upload depends on its parts)."""
    kind = head.get("ChecksumType")
    return kind == "FULL_OBJECT" or (kind is None and "-" not in value)


def _md5_etag(head: dict[str, Any]) -> bool:
    """A single-part ETag that is the MD5 of the body (not for SSE-KMS, DSSE-KMS or SSE-C objects)."""
    etag = str(head.get("ETag") or "")
    encrypted = str(head.get("ServerSideEncryption") or "").startswith("aws:kms") or head.get("SSECustomerAlgorithm")
    return bool(etag) and "-" not in etag and not encrypted


def _body_sha256(s3: Any, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _NOT_FOUND:
            return None
        raise_mapped(exc, f"read {key} in {bucket}")
        return None
    return hashlib.sha256(body).hexdigest()
