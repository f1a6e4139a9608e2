"""Failback: DNS moved back to the primary region. Plain functions behind :mod:`lambdas.dns`'s actions.

The reverse of each cutover (workflows/failback_dns.py builds the states that call them):

- ``health_check``: ``restore_primary_health`` (lambdas.dns) publishes PrimaryHealthy=1; then
  :func:`check_primary_restored` reads the DR-region alarm until it is OK, and, when the primary's record also
  carries an endpoint check, :func:`check_answer` asks Route 53 (TestDNSAnswer) until it answers with the primary.
- ``records``, simple record: ``upsert_record`` with the primary target (lambdas.dns).
- ``records``, latency or geolocation routing: :func:`restore_records` points the primary's routing record at the
  primary target again, with the primary endpoint's own health check (the reverse of ``evacuate_records``).
- ``records``, weighted routing: :func:`set_weights` per step of the ramp, :func:`watch_alarms` between steps
  (an alarm in ALARM: the workflow backs off with ``evacuate_records``).

Every function reads first: records already back (or already past a step) submit no change and answer ``done``.
The act functions answer as ``upsert_record`` does (``done``, ``attempt``, ``change_id``...), for an act ->
``check_change`` poll loop. This module imports :mod:`lambdas.dns` only inside functions (dns imports this one).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas import dns_routing
from lambdas.common import client, raise_mapped
from lambdas.errors import InvalidRequest, ResourceNotFound

# Route 53's control plane (ChangeResourceRecordSets, GetChange, TestDNSAnswer) is in us-east-1.
ROUTE53_REGION = "us-east-1"


def _act(change_id: str | None, previous: list[str], value: str, **extra: Any) -> dict[str, Any]:
    """The act half of an act -> ``check_change`` loop: done when no change was needed."""
    return {"done": change_id is None, "attempt": 0, "change_id": change_id, "changed": change_id is not None,
            "previous": previous, "value": value, **extra}


def _pair(r53: Any, plan: str, zone_id: str, name: str, record_type: str) -> tuple[list[dict[str, Any]],
                                                                                   dict[str, Any], dict[str, Any]]:
    sets = dns_routing.record_sets(r53, zone_id, name, record_type)
    records = dns_routing.by_side(plan, sets)
    missing = [side for side in (dns_routing.PRIMARY, dns_routing.DR) if side not in records]
    if missing:
        raise ResourceNotFound(f"routing record{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(dns_routing.set_identifier(plan, s) for s in missing)} of {name} not "
                               "found: run replicate to build the routing records first")
    return sets, records[dns_routing.PRIMARY], records[dns_routing.DR]


def _upsert(r53: Any, zone_id: str, comment: str, records: list[dict[str, Any]], what: str) -> str:
    try:
        out = r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": comment, "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in records]})
    except ClientError as exc:
        raise_mapped(exc, what)
    return out["ChangeInfo"]["Id"]


# -- health_check cutover ---------------------------------------------------------------------------


def check_primary_restored(region: str, alarm: str, attempt: int = 0) -> dict[str, Any]:
    """DescribeAlarms in ``region`` (DR): done when the alarm behind the primary's health check is OK again.

    The reverse of ``check_flipped``: ``{"done": state == "OK", "attempt": attempt + 1, "state": ...}``.
    """
    try:
        found = client("cloudwatch", region).describe_alarms(AlarmNames=[alarm], AlarmTypes=["MetricAlarm"])
    except ClientError as exc:
        raise_mapped(exc, f"describe alarm {alarm}")
    alarms = found["MetricAlarms"]
    if not alarms:
        raise ResourceNotFound(f"alarm {alarm} does not exist in {region}: run replicate to build the "
                               "health_check cutover first")
    state = alarms[0].get("StateValue")
    return {"done": state == "OK", "attempt": attempt + 1, "state": state}


def check_answer(zone_id: str, name: str, record_type: str, expected: str, attempt: int = 0) -> dict[str, Any]:
    """What Route 53 answers for the record now (TestDNSAnswer, as ``verify_dns``): done when it is ``expected``.

    An unreachable or failing Route 53 API is not done (``reason`` says why); the loop asks again.
    """
    from lambdas import dns  # here, not at the top: lambdas.dns imports this module

    out = dns.verify_dns(zone_id, name, record_type, expected)
    return {"done": out["verified"] is True, "attempt": attempt + 1, "answer": out["answer"],
            "expected": expected.rstrip("."), **({"reason": out["reason"]} if out.get("reason") else {})}


# -- records cutover: latency or geolocation routing ------------------------------------------------


def restore_records(plan: str, zone_id: str, name: str, record_type: str, routing: str, primary_target: str,
                    endpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Point the primary's routing record at ``primary_target`` again, in one UPSERT (the reverse of
    ``evacuate_records`` for latency, geolocation and failover routing).

    The record keeps its set identifier, region or location and TTL; it carries the primary endpoint's health
    check again (``endpoint``: the plan's endpoint_check, as replicate creates it; found by its CallerReference)
    or none. No change is submitted when the record is so already.
    """
    if routing == "weighted":
        raise InvalidRequest("weighted routing returns in steps: use set_weights")
    r53 = client("route53", ROUTE53_REGION)
    sets, primary, _ = _pair(r53, plan, zone_id, name, record_type)
    restored = {**primary, "ResourceRecords": [{"Value": primary_target.rstrip(".")}]}
    restored.pop("HealthCheckId", None)
    if endpoint:
        reference = dns_routing.endpoint_reference(plan, dns_routing.PRIMARY, endpoint)
        check = dns_routing.find_health_check(r53, reference)
        if check is None:
            raise ResourceNotFound(f"the primary endpoint's health check ({reference}) is not found: run replicate "
                                   "to build it, then start the failback again")
        restored["HealthCheckId"] = check["Id"]
    previous = [dns_routing.describe_set(s) for s in sets if s.get("SetIdentifier")]
    words = f"{primary['SetIdentifier']} to {primary_target.rstrip('.')}"
    if dns_routing.canonical(restored) == dns_routing.canonical(primary):
        return _act(None, previous, words)
    change = _upsert(r53, zone_id, f"pilotlight {plan} failback: {words}", [restored], f"restore {name}")
    return _act(change, previous, words)


# -- records cutover: weighted routing, in steps ------------------------------------------------------


def share(primary: int, dr: int) -> float:
    """The primary's share of the answers, in percent, of a pair of Route 53 weights (0 when both are 0)."""
    return 100.0 * primary / (primary + dr) if primary + dr else 0.0


def set_weights(plan: str, zone_id: str, name: str, record_type: str, primary: int, dr: int,
                final: bool = False) -> dict[str, Any]:
    """One step of a weighted failback: the primary's record gets weight ``primary``, the DR record ``dr``.

    A step never lowers the primary's share unless it is the ``final`` one (the plan's own weights): records that
    already give the primary this share or more (a failback resumed after this step) answer ``done`` and
    ``ahead: true`` with no change. Records already at exactly these weights answer ``done`` (``ahead: false``).
    """
    for label, weight in (("primary", primary), ("dr", dr)):
        if not 0 <= weight <= 255:
            raise InvalidRequest(f"{label} weight {weight} is outside Route 53's 0-255")
    r53 = client("route53", ROUTE53_REGION)
    sets, have_primary, have_dr = _pair(r53, plan, zone_id, name, record_type)
    have = (int(have_primary.get("Weight") or 0), int(have_dr.get("Weight") or 0))
    previous = [dns_routing.describe_set(s) for s in sets if s.get("SetIdentifier")]
    words = f"weights primary {primary}, DR {dr} ({share(primary, dr):g}% to the primary)"
    if have == (primary, dr):
        return _act(None, previous, words, ahead=False, weights={"primary": primary, "dr": dr})
    if not final and have[0] > 0 and share(*have) >= share(primary, dr):
        return _act(None, previous, f"weights primary {have[0]}, DR {have[1]} kept: the primary already has "
                    f"{share(*have):g}% of the answers", ahead=True, weights={"primary": have[0], "dr": have[1]})
    changed = [{**record, "Weight": weight} for record, weight, old in
               ((have_primary, primary, have[0]), (have_dr, dr, have[1])) if weight != old]
    change = _upsert(r53, zone_id, f"pilotlight {plan} failback: {words}", changed, f"weights of {name}")
    return _act(change, previous, words, ahead=False, weights={"primary": primary, "dr": dr})


def watch_alarms(alarms: list[dict[str, Any]], step: str, checks: int = 1, attempt: int = 0) -> dict[str, Any]:
    """The plan's trigger alarms during a step of a failback (DescribeAlarms in each alarm's region), the act and
    check of a watch loop: ``done`` once ``checks`` reads found none in ALARM (the step has soaked).

    ``alarming``: one is in ALARM (the workflow backs off); ``cause`` then names it and ``step``. An alarm that
    does not exist is reported as MISSING (it cannot watch), not as a reason to back off; a region that cannot be
    read is an error (retried by the workflow), never taken for health.
    """
    by_region: dict[str, list[str]] = {}
    for alarm in alarms:
        by_region.setdefault(alarm["region"], []).append(alarm["name"])
    states: list[dict[str, Any]] = []
    for region, names in sorted(by_region.items()):
        try:
            found = client("cloudwatch", region).describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"])
        except ClientError as exc:
            raise_mapped(exc, f"describe alarms {', '.join(names)} in {region}")
        seen = {a["AlarmName"]: a for a in found["MetricAlarms"]}
        for n in names:
            alarm = seen.get(n)
            entry = {"name": n, "region": region, "state": alarm["StateValue"] if alarm else "MISSING"}
            if alarm and alarm.get("StateReason"):
                entry["reason"] = alarm["StateReason"]
            states.append(entry)
    firing = [s for s in states if s["state"] == "ALARM"]
    cause = None
    if firing:
        named = "; ".join(f"alarm {s['name']} ({s['region']}) is in ALARM"
                          + (f": {s['reason']}" if s.get("reason") else "") for s in firing)
        cause = (f"failback backed off at {step}: {named}. DNS was set back to the DR region (the primary's weight "
                 "0): all traffic is on the DR region again. Find out why the primary alarms, then start the "
                 "failback again.")
    return {"done": not firing and attempt + 1 >= checks, "attempt": attempt + 1, "alarming": bool(firing),
            "step": step, "alarms": states, "in_alarm": [s["name"] for s in firing], "cause": cause}
