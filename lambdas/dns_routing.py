"""Routing records and per-region endpoint health checks: plain functions behind :mod:`lambdas.dns`'s actions.

Replicate builds a record pair for the plan's name, one record per region (``SetIdentifier``
``pilotlight-<plan>-primary`` / ``-dr``) under the plan's routing policy (failover, latency,
geolocation, weighted). Each may carry a Route 53 health check:

- the primary: in health_check mode the check on the DR-region alarm the failover flips, or, with an
  endpoint check, a CALCULATED check that is healthy only while both that alarm's check and the primary
  endpoint's are (``HealthThreshold`` = every child); in records mode the primary endpoint's check;
- the DR record: the DR endpoint's check (with an endpoint check in the plan).

An HTTP(S) check is created with a stable ``CallerReference`` derived from the plan, the region's side and
the settings Route 53 cannot change afterwards (type, request interval), so a re-run finds it, and a change
of those settings makes a new one; port, path, host and failure threshold are updated in place.

Records mode evacuates the primary's record during a failover (:func:`evacuation`): it points at the DR
target with the DR record's health check (latency, geolocation, failover routing) or gets weight 0 (weighted).
This module never imports :mod:`lambdas.dns`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import raise_mapped
from lambdas.errors import InvalidRequest, PreconditionFailed, ResourceNotFound

PRIMARY, DR = "primary", "dr"


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def set_identifier(plan: str, side: str) -> str:
    return f"pilotlight-{plan}-{side}"


# -- the record pair ------------------------------------------------------------------------------

def routing_records(
    plan: str, name: str, record_type: str, ttl: int, routing: str, primary_target: str, dr_target: str,
    health_check_id: str | None, primary_region: str, dr_region: str, primary_location: dict[str, Any] | None = None,
    weights: dict[str, int] | None = None, dr_health_check_id: str | None = None,
) -> list[dict[str, Any]]:
    """The record pair of the routing policy: the primary and the DR target, each with its health check (if any).

    ``weighted``: each record's share (``weights`` ``primary``/``dr``, 0-255); while the primary's health
    check fails Route 53 answers with the DR record whatever the weights (a record of weight 0 is used
    when every record of non-zero weight is unhealthy).
    """
    base = {"Name": fqdn(name), "Type": record_type, "TTL": ttl}
    primary = {**base, "SetIdentifier": set_identifier(plan, PRIMARY), "ResourceRecords": [{"Value": primary_target}]}
    dr = {**base, "SetIdentifier": set_identifier(plan, DR), "ResourceRecords": [{"Value": dr_target}]}
    if health_check_id:
        primary["HealthCheckId"] = health_check_id
    if dr_health_check_id:
        dr["HealthCheckId"] = dr_health_check_id
    if routing == "failover":
        primary["Failover"], dr["Failover"] = "PRIMARY", "SECONDARY"
    elif routing == "latency":
        primary["Region"], dr["Region"] = primary_region, dr_region
    elif routing == "geolocation":
        location = {k: v for k, v in (primary_location or {}).items() if v}
        code = {"continent_code": "ContinentCode", "country_code": "CountryCode"}
        primary["GeoLocation"] = {code[k]: v for k, v in location.items() if k in code}
        if not primary["GeoLocation"]:
            raise InvalidRequest("geolocation routing needs primary_location (continent_code or country_code)")
        dr["GeoLocation"] = {"CountryCode": "*"}  # the default location: everyone the primary's does not match
    elif routing == "weighted":
        shares = weights or {}
        primary["Weight"], dr["Weight"] = int(shares.get("primary", 100)), int(shares.get("dr", 0))
    else:
        raise InvalidRequest(f"unknown routing {routing!r}; expected failover, latency, geolocation or weighted")
    return [primary, dr]


_RECORD_KEYS = ("Name", "Type", "SetIdentifier", "Failover", "Region", "GeoLocation", "TTL", "ResourceRecords",
                "HealthCheckId", "AliasTarget", "Weight", "MultiValueAnswer")


def canonical(rrset: dict[str, Any]) -> str:
    doc = {k: rrset[k] for k in _RECORD_KEYS if rrset.get(k) not in (None, [], {})}
    doc["Name"] = fqdn(doc["Name"]).lower()
    return json.dumps(doc, sort_keys=True)


def record_sets(r53: Any, zone_id: str, name: str, record_type: str) -> list[dict[str, Any]]:
    """Every record set of ``name``/``record_type`` in the zone (simple and routing ones)."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StartRecordName": fqdn(name), "StartRecordType": record_type}
    while True:
        try:
            page = r53.list_resource_record_sets(HostedZoneId=zone_id, **kwargs)
        except ClientError as exc:
            raise_mapped(exc, f"read {name} in {zone_id}")
        for rrset in page["ResourceRecordSets"]:
            if fqdn(rrset["Name"]).lower() != fqdn(name).lower() or rrset["Type"] != record_type:
                return out
            out.append(rrset)
        if not page.get("IsTruncated"):
            return out
        kwargs = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]


def describe_set(rrset: dict[str, Any]) -> str:
    policy = rrset.get("Failover") or rrset.get("Region") or rrset.get("GeoLocation") or "simple"
    if rrset.get("Weight") is not None:
        policy = f"weight {rrset['Weight']}"
    values = ", ".join(r["Value"] for r in rrset.get("ResourceRecords") or [])
    return f"{rrset['Type']} {policy if isinstance(policy, str) else json.dumps(policy, sort_keys=True)} -> {values}"


def by_side(plan: str, sets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The plan's routing records by side (``primary``, ``dr``), from the record sets of its name."""
    out = {}
    for side in (PRIMARY, DR):
        found = next((s for s in sets if s.get("SetIdentifier") == set_identifier(plan, side)), None)
        if found is not None:
            out[side] = found
    return out


# -- records mode: the failover's change --------------------------------------------------------------

def evacuated(plan: str, sets: list[dict[str, Any]], routing: str, want_primary: dict[str, Any]) -> bool:
    """Whether a records-mode failover has taken the primary out of the answers (:func:`evacuation`): its record
    points at another target, or has weight 0 where the plan gives it more."""
    records = by_side(plan, sets)
    primary = records.get(PRIMARY)
    if primary is None:
        return False
    if routing == "weighted":
        return int(primary.get("Weight") or 0) == 0 and int(want_primary.get("Weight") or 0) > 0
    return primary.get("ResourceRecords") != want_primary["ResourceRecords"] and \
        records.get(DR, {}).get("ResourceRecords") == primary.get("ResourceRecords")


def evacuation(plan: str, sets: list[dict[str, Any]], routing: str) -> tuple[list[dict[str, Any]], str]:
    """The UPSERTs that take the primary region out of the answers, and what they do, in words.

    Empty when already done (a re-run). Latency, geolocation and failover routing: the primary's record points
    at the DR target and carries the DR record's health check (so clients routed to the primary's region or
    location get the DR region); weighted: the primary's weight 0 (and the DR record's 100 if it had 0).
    """
    records = by_side(plan, sets)
    missing = [side for side in (PRIMARY, DR) if side not in records]
    if missing:
        raise ResourceNotFound(f"routing record{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(set_identifier(plan, s) for s in missing)} not found: run replicate to "
                               "build the routing records first")
    primary, dr = records[PRIMARY], records[DR]
    if routing == "weighted":
        changed, words = [], []
        if int(primary.get("Weight") or 0) != 0:
            changed.append({**primary, "Weight": 0})
        words.append(f"weight of {primary['SetIdentifier']} to 0")
        if int(dr.get("Weight") or 0) == 0:
            changed.append({**dr, "Weight": 100})
            words.append(f"weight of {dr['SetIdentifier']} to 100")
        return [{"Action": "UPSERT", "ResourceRecordSet": r} for r in changed], ", ".join(words)
    target = [dict(r) for r in dr.get("ResourceRecords") or []]
    moved = {**primary, "ResourceRecords": target}
    moved.pop("HealthCheckId", None)
    if dr.get("HealthCheckId"):
        moved["HealthCheckId"] = dr["HealthCheckId"]
    words = f"{primary['SetIdentifier']} to {', '.join(r['Value'] for r in target)}"
    if canonical(moved) == canonical(primary):
        return [], words
    return [{"Action": "UPSERT", "ResourceRecordSet": moved}], words


# -- endpoint health checks -----------------------------------------------------------------------

def endpoint_reference(plan: str, side: str, config: dict[str, Any]) -> str:
    """Stable per plan, side and the settings Route 53 cannot update (type, request interval)."""
    fixed = f"{config['protocol']}:{config['request_interval']}"
    digest = hashlib.sha256(fixed.encode()).hexdigest()[:8]
    return f"pilotlight-{plan}-{side}-endpoint-{digest}"[:64]


def calculated_reference(plan: str) -> str:
    return f"pilotlight-{plan}-primary-calculated"[:64]


def endpoint_config(target: str, config: dict[str, Any]) -> dict[str, Any]:
    """CreateHealthCheck's HealthCheckConfig for an HTTP(S) check of ``target``."""
    return {
        "Type": config["protocol"],
        "FullyQualifiedDomainName": target.rstrip("."),
        "Port": int(config["port"]),
        "ResourcePath": config["path"],
        "RequestInterval": int(config["request_interval"]),
        "FailureThreshold": int(config["failure_threshold"]),
        **({"EnableSNI": True} if config["protocol"] == "HTTPS" else {}),
    }


_UPDATABLE = {"FullyQualifiedDomainName": "FullyQualifiedDomainName", "Port": "Port",
              "ResourcePath": "ResourcePath", "FailureThreshold": "FailureThreshold"}


def find_health_check(r53: Any, reference: str) -> dict[str, Any] | None:
    """The health check of that CallerReference (ListHealthChecks, every page), or None."""
    kwargs: dict[str, Any] = {}
    while True:
        try:
            page = r53.list_health_checks(**kwargs)
        except ClientError as exc:
            raise_mapped(exc, "list health checks")
        for check in page.get("HealthChecks", []):
            if check.get("CallerReference") == reference:
                return check
        if not page.get("IsTruncated"):
            return None
        kwargs = {"Marker": page["NextMarker"]}


def create_health_check(r53: Any, reference: str, config: dict[str, Any], what: str) -> str:
    """CreateHealthCheck with ``config`` under ``reference``; returns its id. ``what`` names it in errors."""
    try:
        return r53.create_health_check(CallerReference=reference, HealthCheckConfig=config)["HealthCheck"]["Id"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "HealthCheckAlreadyExists":
            raise PreconditionFailed(f"a health check with CallerReference {reference} exists with other settings "
                                     "or was deleted; Route 53 will not reuse the reference") from exc
        raise_mapped(exc, f"create {what}")
    raise AssertionError("unreachable")


def ensure_endpoint(r53: Any, plan: str, side: str, target: str, config: dict[str, Any]) -> dict[str, Any]:
    """The HTTP(S) check of one region's target exists as the plan says; returns its id and a record."""
    reference = endpoint_reference(plan, side, config)
    want = endpoint_config(target, config)
    resource = f"{side} endpoint health check {config['protocol']}://{want['FullyQualifiedDomainName']}:" \
               f"{want['Port']}{want['ResourcePath']}"
    found = find_health_check(r53, reference)
    if found is None:
        check_id = create_health_check(r53, reference, want, resource)
        return {"id": check_id, "record": {"resource": resource, "status": "created", "id": check_id}}
    have = found.get("HealthCheckConfig") or {}
    changes = {key: want[key] for key in _UPDATABLE if have.get(key) != want[key]}
    if changes:
        try:
            r53.update_health_check(HealthCheckId=found["Id"], HealthCheckVersion=found["HealthCheckVersion"],
                                    **{_UPDATABLE[k]: v for k, v in changes.items()})
        except ClientError as exc:
            raise_mapped(exc, f"update {resource}")
    words = [f"{key} {have.get(key)!r} -> {value!r}" for key, value in changes.items()]
    return {"id": found["Id"], "record": {"resource": resource, "status": "updated" if changes else "unchanged",
                                          "id": found["Id"], "changes": words}}


def ensure_calculated(r53: Any, plan: str, children: list[str]) -> dict[str, Any]:
    """A CALCULATED check healthy only while every child is (the primary's record in health_check mode)."""
    reference = calculated_reference(plan)
    want = {"Type": "CALCULATED", "ChildHealthChecks": list(children), "HealthThreshold": len(children)}
    resource = "primary calculated health check (alarm and endpoint)"
    found = find_health_check(r53, reference)
    if found is None:
        check_id = create_health_check(r53, reference, want, resource)
        return {"id": check_id, "record": {"resource": resource, "status": "created", "id": check_id}}
    have = found.get("HealthCheckConfig") or {}
    if have.get("Type") != "CALCULATED":
        raise PreconditionFailed(f"health check {found['Id']} ({reference}) is of type {have.get('Type')}, not "
                                 "CALCULATED; delete it so replicate can create the right one")
    changes = []
    if sorted(have.get("ChildHealthChecks") or []) != sorted(children) or have.get("HealthThreshold") != len(children):
        changes.append(f"children {have.get('ChildHealthChecks')} -> {children}")
        try:
            r53.update_health_check(HealthCheckId=found["Id"], HealthCheckVersion=found["HealthCheckVersion"],
                                    ChildHealthChecks=list(children), HealthThreshold=len(children))
        except ClientError as exc:
            raise_mapped(exc, f"update {resource}")
    return {"id": found["Id"], "record": {"resource": resource, "status": "updated" if changes else "unchanged",
                                          "id": found["Id"], "changes": changes}}


def status(r53: Any, check_id: str) -> tuple[bool | None, str]:
    """What Route 53's checkers say of a check now: healthy when most checker regions report success."""
    try:
        observations = r53.get_health_check_status(HealthCheckId=check_id).get("HealthCheckObservations") or []
    except ClientError as exc:
        raise_mapped(exc, f"status of health check {check_id}")
    reports = [str((o.get("StatusReport") or {}).get("Status", "")) for o in observations]
    if not reports:
        return None, "no checker has reported yet"
    good = sum(1 for r in reports if r.startswith("Success"))
    return good * 2 > len(reports), reports[0] if good * 2 > len(reports) else next(
        (r for r in reports if not r.startswith("Success")), reports[0])
