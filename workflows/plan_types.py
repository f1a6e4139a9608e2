"""The plan's building blocks: the field types every part of the plan uses, and the strict base model.

Shared by :mod:`workflows.plan` (the plan and its cross-field rules) and :mod:`workflows.plan_tiers` (the
data and compute tiers a plan names).
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class PlanFieldError(ValueError):
    """A semantic problem with a field below the model that raises it (``path`` is relative)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message




@functools.cache
def known_regions() -> frozenset[str]:
    """Region names from botocore's bundled endpoint data (offline), across the public partitions.

    Read from botocore's ``endpoints.json`` directly: a boto3 session would load and index several service
    models to answer the same question, which is most of the time ``pilotlight validate`` takes.
    """
    import gzip
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("botocore")
    assert spec is not None and spec.submodule_search_locations, "botocore is a dependency"
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    plain, packed = data / "endpoints.json", data / "endpoints.json.gz"
    endpoints = json.loads(plain.read_text() if plain.exists() else gzip.decompress(packed.read_bytes()))
    return frozenset(region for partition in endpoints["partitions"]
                     if partition["partition"] in ("aws", "aws-us-gov", "aws-cn")
                     for region in partition["regions"])


def _check_region(value: str) -> str:
    if value not in known_regions():
        raise ValueError(f"'{value}' is not an AWS region name (e.g. us-east-1)")
    return value


Region = Annotated[str, Field(max_length=25, description="AWS region name, e.g. us-east-1")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{2,38}[A-Za-z0-9]$")]
DbId = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$", max_length=63)]
DbClass = Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")]
BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
VpcId = Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SgId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]
# RDS: up to 255 letters, digits, periods, underscores, spaces or hyphens, starting with a letter; not "default".
DbSubnetGroupName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9._ -]{0,254}$")]
Arn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:.+$")]
KmsKey = Annotated[
    str, Field(pattern=r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+|alias/.+|[0-9a-f-]{36})$")
]
HostedZoneId = Annotated[str, Field(pattern=r"^Z[A-Z0-9]{1,32}$")]
IamRoleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$", description="IAM role name (no path)")]
InstanceProfileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9+=,.@_-]{1,128}$")]
Fqdn = Annotated[str, Field(pattern=r"^([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$", max_length=253)]
ScheduleExpr = Annotated[
    str,
    Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$"),
]


def unique_values(value: list[str]) -> list[str]:
    """A list validator: each value at most once."""
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise ValueError(f"listed more than once: {', '.join(dupes)}")
    return value


class _Model(BaseModel):
    # strict: YAML types are kept as written; a boolean or a string never passes for a number (``rto_minutes:
    # true`` is refused, not read as 1), nor a number for a string. An integer still fills a float field.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)
