"""Service Quotas values for EC2 and RDS, which moto 5.2 does not know (it answers only ``vpc``).

``GetServiceQuota`` for the quotas readiness reads is answered here, in botocore's output shape,
from a table the sandbox (and its tests) can change with :func:`set_quota`; every other quota goes
on to moto. Defaults are the published AWS defaults for a new account's region, except the EC2
vCPU quota, which AWS raises per account on request: the sandbox assumes an account that has
asked for a typical production allowance.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import responses

EC2_ON_DEMAND_STANDARD_VCPUS = ("ec2", "L-1216C47A")
RDS_DB_INSTANCES = ("rds", "L-7B6409FD")

# (service code, quota code) -> (service name, quota name, unit, default value)
KNOWN: dict[tuple[str, str], tuple[str, str, str, float]] = {
    EC2_ON_DEMAND_STANDARD_VCPUS: ("Amazon Elastic Compute Cloud (Amazon EC2)",
                                   "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "None", 64.0),
    RDS_DB_INSTANCES: ("Amazon Relational Database Service (Amazon RDS)", "DB instances", "None", 40.0),
}

_lock = threading.Lock()
VALUES: dict[tuple[str, str, str], float] = {}  # (region, service code, quota code) -> value


def set_quota(region: str, service_code: str, quota_code: str, value: float) -> None:
    if (service_code, quota_code) not in KNOWN:
        raise KeyError(f"the sandbox models no quota {service_code}/{quota_code}; known: {sorted(KNOWN)}")
    with _lock:
        VALUES[(region, service_code, quota_code)] = float(value)


def reset() -> None:
    with _lock:
        VALUES.clear()


def quota(region: str, service_code: str, quota_code: str) -> dict[str, Any]:
    service_name, quota_name, unit, default = KNOWN[(service_code, quota_code)]
    with _lock:
        value = VALUES.get((region, service_code, quota_code), default)
    return {
        "ServiceCode": service_code,
        "ServiceName": service_name,
        "QuotaArn": f"arn:aws:servicequotas:{region}:{DEFAULT_ACCOUNT_ID}:{service_code}/{quota_code}",
        "QuotaCode": quota_code,
        "QuotaName": quota_name,
        "Value": value,
        "Unit": unit,
        "Adjustable": True,
        "GlobalQuota": False,
    }




def before_get_quota(context: dict[str, Any], **_: Any) -> Any:
    p = responses.api_params(context)
    key = (p.get("ServiceCode", ""), p.get("QuotaCode", ""))
    if key not in KNOWN:
        return None  # moto answers (vpc) or refuses
    return responses.ok({"Quota": quota(context.get("client_region", ""), *key)})


HANDLERS: list[tuple[str, Any]] = [
    ("before-parameter-build.service-quotas.GetServiceQuota", responses.stash_api_params),
    ("before-call.service-quotas.GetServiceQuota", before_get_quota),
]


def install(events: Any) -> None:
    reset()
    responses.hook(events, HANDLERS, "quotas", where="first")


def uninstall(events: Any) -> None:
    responses.unhook(events, HANDLERS, "quotas")
