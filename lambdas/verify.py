"""Verification after cutover: is the service really restored in the DR region?

Facts read from the AWS API of each resource, and the service as users see it:

- every DR environment is Ready with health Green, and its URL answers an HTTP(S) GET of the plan's health path
  with the expected status (and body text, when the plan names one);
- every promoted database is available and writable (no longer a read replica);
- DNS answers with the DR target (the record set in ``records`` mode with one simple record; Route 53's
  TestDNSAnswer with routing records, where the answer depends on health checks and the routing policy), and,
  once every environment answers, the plan's DNS name answers the same GET.

Each probe is reported with its URL, status, time taken and what failed; the canary write in the databases is
lambdas/canary.py (in the DR VPC).

The workflow calls :func:`verify_service` in a bounded loop, so a fact that is still settling
(a health colour, a DNS answer) gets a few more checks before the failover reports failure. An
endpoint that cannot be reached (connect or read timeout) makes its check fail for this round, with
the reason, rather than the step: the next round asks again.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from lambdas import dns, rds
from lambdas.common import CONNECTION_ERRORS, Registry, client, raise_mapped
from lambdas.errors import ServiceNotVerified

registry = Registry("verify")
handler = registry.handler


def _checked(check: str, resource: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one check; an endpoint that cannot be reached is a failed check (checked again next round)."""
    try:
        return run()
    except CONNECTION_ERRORS as exc:
        return {"check": check, "resource": resource, "ok": False,
                "detail": f"not verified: {type(exc).__name__}: {exc}"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is the answer: its status is compared with the expected one


def http_probe(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One HTTP(S) GET of ``url``: ``ok`` when it answers the expected status (and body text)."""
    expected, fragment = int(spec.get("expected_status", 200)), spec.get("body_contains")
    out: dict[str, Any] = {"check": "http probe", "resource": url, "ok": False, "status": None}
    began = time.monotonic()
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"User-Agent": "pilotlight-verify"})
    try:
        with opener.open(request, timeout=float(spec.get("timeout_seconds", 5))) as answer:
            status, body = answer.status, answer.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536) if exc.fp else b""
    except (OSError, ValueError) as exc:
        return {**out, "seconds": round(time.monotonic() - began, 3),
                "detail": f"no answer: {type(exc).__name__}: {getattr(exc, 'reason', exc)}"}
    out.update(status=status, seconds=round(time.monotonic() - began, 3))
    if status != expected:
        return {**out, "detail": f"answered {status}, expected {expected}"}
    if fragment and fragment.encode() not in body:
        return {**out, "detail": f"answered {status} without {fragment!r} in the body"}
    return {**out, "ok": True, "detail": f"answered {status}"}


def _url(spec: dict[str, Any], host: str) -> str:
    return f"{spec.get('scheme', 'http')}://{host.rstrip('.')}{spec.get('path', '/')}"


def _environment(region: str, env: dict[str, str]) -> dict[str, Any]:
    eb = client("elasticbeanstalk", region)
    name = env["dr_environment"]
    try:
        found = eb.describe_environments(ApplicationName=env["application"], EnvironmentNames=[name],
                                         IncludeDeleted=False)["Environments"]
    except ClientError as exc:
        raise_mapped(exc, f"describe {name}")
    if not found:
        return {"check": "environment", "resource": name, "ok": False, "detail": f"{name} does not exist in {region}"}
    e = found[0]
    ok = e.get("Status") == "Ready" and e.get("Health") == "Green"
    return {"check": "environment", "resource": name, "ok": ok, "cname": e.get("CNAME"),
            "detail": f"{e.get('Status')}/{e.get('Health')}, {e.get('CNAME')}, version {e.get('VersionLabel')}"}


def _database(region: str, identifier: str) -> dict[str, Any]:
    db = rds.describe_instance(client("rds", region), identifier)
    if db is None:
        return {"check": "database", "resource": identifier, "ok": False,
                "detail": f"{identifier} does not exist in {region}"}
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    ok = rds.serving(db)  # available, or taking the first backup after promotion (it accepts connections)
    detail = f"{db.get('DBInstanceStatus')}, " + (f"still a replica of {source}" if source else "writable")
    return {"check": "database", "resource": identifier, "ok": ok, "detail": detail}


def _dns(spec: dict[str, str]) -> dict[str, Any]:
    name, target = spec["name"], spec["target"]
    if spec.get("mode") == "health_check" or spec.get("routing"):
        # The answer depends on health checks and routing, not on one record set: ask Route 53 what it answers.
        answer = dns.verify_dns(spec["zone_id"], name, spec["record_type"], target)
        if answer["verified"] is None:
            # The data plane has already moved; an unreachable Route 53 API must not hold the cutover.
            return {"check": "dns", "resource": name, "ok": True, "verified": None,
                    "detail": f"not verified: {answer.get('reason')}"}
        return {"check": "dns", "resource": name, "ok": bool(answer["verified"]),
                "detail": f"answers {', '.join(answer.get('answer') or ['nothing'])}"}
    r53 = client("route53", dns.ROUTE53_REGION, fast=True)
    values = dns.current_values(r53, spec["zone_id"], name, spec["record_type"])
    ok = values == [target]
    return {"check": "dns", "resource": name, "ok": ok, "detail": f"answers {', '.join(values or ['nothing'])}"}


@registry.action(
    "verify_service",
    permissions=["elasticbeanstalk:DescribeEnvironments", "rds:DescribeDBInstances",
                 "route53:ListResourceRecordSets", "route53:TestDNSAnswer"],
    # The DR side (failover, drill) or the primary side (failback: the service back where it was).
    resource={"elasticbeanstalk:DescribeEnvironments": ("environment", "drill_environment", "source_environment"),
              "rds:DescribeDBInstances": ("db", "drill_db", "source_db"),
              "route53:ListResourceRecordSets": "hostedzone"},
)
def verify_service(
    region: str,
    environments: list[dict[str, str]] | None = None,
    databases: list[str | dict[str, Any]] | None = None,
    dns_record: dict[str, str] | None = None,
    probe: dict[str, Any] | None = None,
    attempt: int = -1,
) -> dict[str, Any]:
    """Check the restored service; ``done`` when every check passes (``checks`` lists each with its detail).

    ``databases``: identifiers, or the workflow's database items (their ``dr_replica_identifier``: a drill
    passes its copies this way)."""
    probe_spec = probe
    databases = [d["dr_replica_identifier"] if isinstance(d, dict) else d for d in databases or []]
    checks = [_checked("environment", e["dr_environment"], lambda e=e: _environment(region, e))
              for e in environments or []]
    if probe_spec is not None:
        # The environment's URL, as users reach it, once the API says it is ready.
        checks += [http_probe(_url(probe_spec, c["cname"]), probe_spec) for c in list(checks)
                   if c["check"] == "environment" and c["ok"] and c.get("cname")]
    checks += [_checked("database", d, lambda d=d: _database(region, d)) for d in databases or []]
    if dns_record:
        checks.append(_checked("dns", dns_record["name"], lambda: _dns(dns_record)))
        if probe_spec is not None and all(c["ok"] for c in checks):
            # End to end: the name users type, once everything behind it answers.
            checks.append(http_probe(_url(probe_spec, dns_record["name"]), probe_spec))
    return {"done": all(c["ok"] for c in checks), "attempt": attempt + 1, "checks": checks}


@registry.action("not_verified", permissions=[])
def not_verified(checks: list[dict[str, Any]], loop: str = "") -> dict[str, Any]:
    """End a verification whose attempts are spent: :class:`ServiceNotVerified` naming every failing check."""
    failing = [f"{c.get('check')} {c.get('resource')}: {c.get('detail')}" for c in checks if not c.get("ok")]
    raise ServiceNotVerified("service not verified after the bounded checks; failing: " + "; ".join(
        failing or ["none recorded"]))
