"""Where reports go: ``<report dir>/<plan>/<execution name>.{json,md,html}``, and in AWS also the plan's
reports bucket in the DR region (deployed by the DR stack, ``infra/stacks.py``), under ``<plan>/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reports.render import FORMATS, to_html, to_json, to_markdown

DEFAULT_REPORT_DIR = Path("pilotlight-reports")
_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {"json": to_json, "md": to_markdown, "html": to_html}
CONTENT_TYPES = {"json": "application/json", "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}
_BUCKET_LIMIT = 63


def bucket_name(plan: str, account: str, region: str) -> str:
    """``pilotlight-<plan>-reports-<account>-<region>``: unique per account and region, as S3 names must be.

    ``account`` may be a CDK token (a 12-digit account id once deployed). A plan name too long for S3's 63
    characters is shortened and made unique again with a hash of the full name.
    """
    fixed = len("pilotlight--reports-") + 12 + 1 + len(region)
    room = _BUCKET_LIMIT - fixed
    if len(plan) > room:
        plan = plan[: room - 7].rstrip("-") + "-" + hashlib.sha256(plan.encode()).hexdigest()[:6]
    return f"pilotlight-{plan}-reports-{account}-{region}"


def render_format(doc: dict[str, Any], fmt: str) -> str:
    if fmt not in _RENDERERS:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
    return _RENDERERS[fmt](doc)


def write(doc: dict[str, Any], report_dir: str | Path = DEFAULT_REPORT_DIR, *,
          formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """Write the report in each format; format -> path."""
    folder = Path(report_dir) / doc["plan"]
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for fmt in formats:
        path = folder / f"{doc['execution_name']}.{fmt}"
        path.write_text(render_format(doc, fmt), encoding="utf-8")
        out[fmt] = path
    return out


def upload(paths: dict[str, Path], doc: dict[str, Any], session: Any, account: str, region: str) -> list[str] | str:
    """Copy written reports to the plan's reports bucket: their ``s3://`` URIs, or why they were not copied
    (the bucket does not exist: the DR stack is not deployed or predates it)."""
    import botocore.exceptions

    bucket = bucket_name(doc["plan"], account, region)
    s3 = session.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return f"reports bucket {bucket} does not exist (deploy the DR stack to keep reports in S3); kept locally"
        return f"reports bucket {bucket} not usable ({code}); kept locally"
    uris = []
    for fmt, path in paths.items():
        key = f"{doc['plan']}/{path.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=CONTENT_TYPES[fmt])
        uris.append(f"s3://{bucket}/{key}")
    return uris
