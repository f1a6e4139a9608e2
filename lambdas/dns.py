"""Route 53 steps for both DNS cutover modes.

``records``: point the plan's record at the DR target and wait until the change is INSYNC (with latency,
geolocation or weighted routing: the primary's routing record, which replicate builds, evacuated; see
:mod:`lambdas.dns_routing`).
``health_check``: replicate builds the routing records, health check and alarm ahead of time; the
failover flips a metric in the DR region and verifies what DNS answers.
Either way a plan's ``endpoint_check`` gives each region's routing record an HTTP(S) health check.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas import dns_routing
from lambdas import drill as drill_names
from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import DnsCutoverFailed, PreconditionFailed, ResourceNotFound

registry = Registry("dns")
handler = registry.handler

# Route 53 is a global service whose control plane is in us-east-1.
ROUTE53_REGION = _ROUTE53_REGION = "us-east-1"


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def current_values(r53: Any, zone_id: str, name: str, record_type: str) -> list[str] | None:
    try:
        sets = r53.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=_fqdn(name), StartRecordType=record_type, MaxItems="1"
        )["ResourceRecordSets"]
    except ClientError as exc:
        raise_mapped(exc, f"read {name} in {zone_id}")
    for rrset in sets:
        if rrset["Name"].rstrip(".") == name.rstrip(".") and rrset["Type"] == record_type:
            return [r["Value"] for r in rrset.get("ResourceRecords", [])]
    return None


@registry.action(
    "upsert_record",
    permissions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
    resource="hostedzone",
)
def upsert_record(zone_id: str, name: str, record_type: str, ttl: int, value: str) -> dict[str, Any]:
    """UPSERT the record to ``value``; no change is submitted when it already points there."""
    r53 = client("route53", _ROUTE53_REGION)
    before = current_values(r53, zone_id, name, record_type)
    if before == [value]:
        return {"done": True, "attempt": 0, "change_id": None, "changed": False, "previous": before, "value": value}
    try:
        out = r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": "pilotlight failover",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": _fqdn(name),
                            "Type": record_type,
                            "TTL": ttl,
                            "ResourceRecords": [{"Value": value}],
                        },
                    }
                ],
            },
        )
    except ClientError as exc:
        raise_mapped(exc, f"UPSERT {name}")
    return {
        "done": False,
        "attempt": 0,
        "change_id": out["ChangeInfo"]["Id"],
        "changed": True,
        "previous": before,
        "value": value,
    }


@registry.action("check_change", permissions=["route53:GetChange"], resource="change")
def check_change(change_id: str | None, attempt: int = 0) -> dict[str, Any]:
    """Done when the change is INSYNC (or when no change was needed)."""
    if change_id is None:
        return {"done": True, "attempt": attempt + 1, "status": "INSYNC", "change_id": None}
    try:
        status = client("route53", _ROUTE53_REGION).get_change(Id=change_id)["ChangeInfo"]["Status"]
    except ClientError as exc:
        raise_mapped(exc, f"get change {change_id}")
    return {"done": status == "INSYNC", "attempt": attempt + 1, "status": status, "change_id": change_id}


def _failure_text(error: str | None, cause: str | None) -> str:
    """What the failed step said: the Lambda error's message when the cause is one, else the cause."""
    try:
        doc = json.loads(cause or "")
    except ValueError:
        doc = None
    message = doc.get("errorMessage") if isinstance(doc, dict) else None
    return f"{error or 'error'}: {message or cause or 'no cause given'}"


@registry.action("cutover_failed", permissions=[])
def cutover_failed(
    zone_id: str,
    name: str,
    record_type: str,
    ttl: int,
    value: str,
    region: str,
    error: str | None = None,
    cause: str | None = None,
    databases: list[dict[str, str]] | None = None,
    environments: list[str] | None = None,
    plan: str | None = None,
    routing: str | None = None,
) -> dict[str, Any]:
    """End a records-mode failover whose Route 53 change failed, with the manual step as the cause.

    Reached from the Catch of the ``upsert_record`` / ``check_change`` steps once their retries are
    spent, after the restore (the DR replica promoted, the DR environment launched). Raises
    :class:`DnsCutoverFailed`: what Route 53 said, the record and the value to set by hand, and that
    the database is already promoted. Makes no AWS call.
    """
    fqdn = name.rstrip(".")
    batch = json.dumps({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": fqdn, "Type": record_type, "TTL": ttl, "ResourceRecords": [{"Value": value}]}}]},
        separators=(",", ":"))
    manual = (f"set {record_type} record {fqdn} in hosted zone {zone_id} to {value} (TTL {ttl}), e.g. "
              f"aws route53 change-resource-record-sets --hosted-zone-id {zone_id} --change-batch '{batch}'")
    if plan and routing:  # records mode with routing records: the primary's record changes, the pair stays
        primary, dr = (dns_routing.set_identifier(plan, side) for side in (dns_routing.PRIMARY, dns_routing.DR))
        manual = (f"in hosted zone {zone_id}, set the weight of {record_type} record {fqdn} {primary} to 0 (and of "
                  f"{dr} above 0)" if routing == "weighted" else
                  f"in hosted zone {zone_id}, point {record_type} record {fqdn} {primary} at {value} (with the "
                  f"health check of {dr}, if any)")
    done = []
    for db in databases or []:
        done.append(f"the database is already promoted: {db['identifier']} in {region} is a standalone, writable "
                    f"instance (no longer a replica of {db.get('source') or 'the primary'}); do not send writes to "
                    "the old primary")
    if environments:
        done.append(f"the DR environment{'s' if len(environments) > 1 else ''} {', '.join(environments)} "
                    f"{'are' if len(environments) > 1 else 'is'} running in {region}")
    raise DnsCutoverFailed(
        f"DNS cutover failed: Route 53's control plane ({ROUTE53_REGION}) did not complete the change of "
        f"{fqdn} ({_failure_text(error, cause)}). "
        f"MANUAL STEP: {manual}. "
        + (("Already done: " + "; ".join(done) + ". ") if done else "")
        + "Once the record is set or Route 53 answers again, start the failover again: it finds the promotion "
        "and the environment done, completes the cutover, verifies and hardens."
    )


@registry.action("describe_record", permissions=["route53:ListResourceRecordSets"], resource="hostedzone")
def describe_record(zone_id: str, name: str, record_type: str) -> dict[str, Any]:
    values = current_values(client("route53", _ROUTE53_REGION), zone_id, name, record_type)
    return {"name": name, "type": record_type, "values": values}


# -- health_check cutover -----------------------------------------------------------------------
#
# Built ahead of time by replicate: a metric PrimaryHealthy (namespace pilotlight, dimension
# Plan=<plan>) in the DR region, an alarm on it there, a Route 53 health check of type
# CLOUDWATCH_METRIC on that alarm, and a routing record pair whose primary carries the health check.
# A failover then only publishes PrimaryHealthy=0 in the DR region: the alarm goes to ALARM, Route 53's
# health checkers see it and DNS answers with the DR target. No Route 53 control-plane call.

METRIC_NAMESPACE = "pilotlight"
METRIC_NAME = "PrimaryHealthy"
# 60 s, standard resolution: Route 53 health checks accept only alarms on standard-resolution metrics
# (a 10 s high-resolution alarm would be refused), and 60 s is the shortest standard period.
ALARM_PERIOD_SECONDS = 60
# "ignore" keeps the alarm's state while no data arrives, so the metric is a latch: one 0 holds the
# primary unhealthy until a 1 restores it. With notBreaching the alarm would return to OK once the 0
# left the evaluation range (a few minutes) and DNS would send clients back to the failed primary.
TREAT_MISSING_DATA = "ignore"
INSUFFICIENT_DATA_HEALTH = "LastKnownStatus"  # a new check with no known status counts as healthy


def _dimensions(plan: str) -> list[dict[str, str]]:
    return [{"Name": "Plan", "Value": plan}]


def wanted_alarm(plan: str, alarm: str) -> dict[str, Any]:
    """PutMetricAlarm parameters of the alarm behind the primary's health check: ALARM when PrimaryHealthy < 1."""
    return {
        "AlarmName": alarm,
        "AlarmDescription": f"pilotlight {plan}: primary is serving (PrimaryHealthy >= 1); ALARM moves DNS to DR",
        "Namespace": METRIC_NAMESPACE,
        "MetricName": METRIC_NAME,
        "Dimensions": _dimensions(plan),
        "Statistic": "Minimum",
        "Period": ALARM_PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": TREAT_MISSING_DATA,
        "ActionsEnabled": False,
    }


def _describe_alarm(cw: Any, alarm: str) -> dict[str, Any] | None:
    try:
        found = cw.describe_alarms(AlarmNames=[alarm], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    except ClientError as exc:
        raise_mapped(exc, f"describe alarm {alarm}")
    return found[0] if found else None


def _put_health(cw: Any, plan: str, value: float) -> None:
    try:
        cw.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[{
            "MetricName": METRIC_NAME, "Dimensions": _dimensions(plan), "Value": value, "Unit": "None",
            "StorageResolution": 60}])
    except ClientError as exc:
        raise_mapped(exc, f"publish {METRIC_NAMESPACE}/{METRIC_NAME}={value:g} for {plan}")


def _alarm_drift(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    drift = []
    for key in ("Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods", "Threshold",
                "ComparisonOperator", "TreatMissingData"):
        if have.get(key) != want[key]:
            drift.append(f"{key} {have.get(key)!r} -> {want[key]!r}")
    dims = sorted((d["Name"], d["Value"]) for d in have.get("Dimensions") or [])
    if dims != sorted((d["Name"], d["Value"]) for d in want["Dimensions"]):
        drift.append(f"Dimensions {dims} -> Plan={want['Dimensions'][0]['Value']}")
    return drift


@registry.action(
    "ensure_health_alarm",
    permissions=["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:PutMetricData"],
    resource="health_alarm",
)
def ensure_health_alarm(region: str, plan: str, alarm: str) -> dict[str, Any]:
    """The DR-region alarm on PrimaryHealthy exists as wanted, and the metric has data.

    ``region`` is the DR region. PrimaryHealthy=1 is published only while the alarm is not in ALARM:
    a failover (or drill) that marked the primary unhealthy is never undone by a scheduled replicate;
    that alarm is reported as drift until ``restore_primary_health`` runs.
    """
    cw = client("cloudwatch", region)
    want = wanted_alarm(plan, alarm)
    have = _describe_alarm(cw, alarm)
    drift = _alarm_drift(have, want) if have else []
    if have is None or drift:
        try:
            cw.put_metric_alarm(**want)
        except ClientError as exc:
            raise_mapped(exc, f"create alarm {alarm}")
    state = have.get("StateValue") if have else "INSUFFICIENT_DATA"
    resource = f"health alarm {alarm} ({region})"
    if state == "ALARM":
        record = {"resource": resource, "status": "drift", "state": state,
                  "drift": ["the primary is marked unhealthy (PrimaryHealthy=0): DNS answers with the DR target; "
                            "restore_primary_health puts it back", *drift]}
        return {"alarm": alarm, "state": state, "record": record}
    if have is None or state != "OK":
        _put_health(cw, plan, 1.0)
    status = "created" if have is None else ("updated" if drift else "unchanged")
    record = {"resource": resource, "status": status, "state": state, "changes": drift}
    return {"alarm": alarm, "state": state, "record": record}


def caller_reference(plan: str, alarm: str) -> str:
    """Stable per plan and alarm, so a re-run finds (and Route 53 deduplicates) the same health check."""
    digest = hashlib.sha256(alarm.encode()).hexdigest()[:12]
    return f"pilotlight-{plan}-health-{digest}"[:64]


find_health_check = dns_routing.find_health_check


@registry.action(
    "ensure_health_check",
    permissions=["route53:ListHealthChecks", "route53:CreateHealthCheck", "route53:UpdateHealthCheck",
                 "cloudwatch:DescribeAlarms"],
    resource={"route53:CreateHealthCheck": "healthcheck", "route53:UpdateHealthCheck": "healthcheck",
              "cloudwatch:DescribeAlarms": "health_alarm"},
)
def ensure_health_check(plan: str, alarm_region: str, alarm: str) -> dict[str, Any]:
    """A CLOUDWATCH_METRIC health check on the DR-region alarm exists (found again by its CallerReference)."""
    r53 = client("route53", _ROUTE53_REGION)
    reference = caller_reference(plan, alarm)
    identifier = {"Region": alarm_region, "Name": alarm}
    found = find_health_check(r53, reference)
    resource = f"health check on {alarm} ({alarm_region})"
    if found is None:
        check_id = dns_routing.create_health_check(r53, reference, {
            "Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": identifier,
            "InsufficientDataHealthStatus": INSUFFICIENT_DATA_HEALTH}, f"health check on {alarm}")
        return {"health_check_id": check_id, "record": {"resource": resource, "status": "created", "id": check_id}}
    config = found.get("HealthCheckConfig", {})
    changes = []
    if config.get("AlarmIdentifier") != identifier:
        changes.append(f"AlarmIdentifier {config.get('AlarmIdentifier')} -> {identifier}")
    if config.get("InsufficientDataHealthStatus") != INSUFFICIENT_DATA_HEALTH:
        changes.append(f"InsufficientDataHealthStatus {config.get('InsufficientDataHealthStatus')} -> "
                       f"{INSUFFICIENT_DATA_HEALTH}")
    if config.get("Type") != "CLOUDWATCH_METRIC":
        raise PreconditionFailed(f"health check {found['Id']} ({reference}) is of type {config.get('Type')}, "
                                 "not CLOUDWATCH_METRIC; delete it so replicate can create the right one")
    if changes:
        try:
            r53.update_health_check(HealthCheckId=found["Id"], HealthCheckVersion=found["HealthCheckVersion"],
                                    AlarmIdentifier=identifier, InsufficientDataHealthStatus=INSUFFICIENT_DATA_HEALTH)
        except ClientError as exc:
            raise_mapped(exc, f"update health check {found['Id']}")
    status = "updated" if changes else "unchanged"
    return {"health_check_id": found["Id"],
            "record": {"resource": resource, "status": status, "id": found["Id"], "changes": changes}}


routing_records = dns_routing.routing_records


@registry.action(
    "ensure_endpoint_checks",
    permissions=["route53:ListHealthChecks", "route53:CreateHealthCheck", "route53:UpdateHealthCheck"],
    resource={"route53:CreateHealthCheck": "healthcheck", "route53:UpdateHealthCheck": "healthcheck"},
)
def ensure_endpoint_checks(
    plan: str, primary_target: str, dr_target: str, endpoint: dict[str, Any], alarm_check_id: str | None = None,
) -> dict[str, Any]:
    """An HTTP(S) health check of each region's target; with ``alarm_check_id`` (health_check mode) also the
    CALCULATED check the primary's record carries: healthy only while the alarm's check and the primary
    endpoint's both are. Returns the ids (``primary_record``: what the primary's record carries, ``dr``) and
    a record per check."""
    r53 = client("route53", _ROUTE53_REGION)
    primary = dns_routing.ensure_endpoint(r53, plan, dns_routing.PRIMARY, primary_target, endpoint)
    dr = dns_routing.ensure_endpoint(r53, plan, dns_routing.DR, dr_target, endpoint)
    records = [primary["record"], dr["record"]]
    primary_record = primary["id"]
    if alarm_check_id:
        calculated = dns_routing.ensure_calculated(r53, plan, [alarm_check_id, primary["id"]])
        records.append(calculated["record"])
        primary_record = calculated["id"]
    return {"primary": primary["id"], "dr": dr["id"], "primary_record": primary_record, "records": records}


@registry.action(
    "ensure_routing_records",
    permissions=["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
    resource="hostedzone",
)
def ensure_routing_records(
    plan: str, zone_id: str, name: str, record_type: str, ttl: int, routing: str, primary_target: str,
    dr_target: str, health_check_id: str | None, primary_region: str, dr_region: str,
    primary_location: dict[str, Any] | None = None, weights: dict[str, int] | None = None,
    dr_health_check_id: str | None = None,
) -> dict[str, Any]:
    """The routing record pair for ``name`` exists exactly; anything else of that name and type is replaced.

    A plain record (what a records-mode estate with failover routing has) cannot live beside routing records,
    so the change batch DELETEs it and CREATEs the pair in one atomic change: the name never stops resolving.
    """
    r53 = client("route53", _ROUTE53_REGION)
    want = routing_records(plan, name, record_type, ttl, routing, primary_target, dr_target, health_check_id,
                           primary_region, dr_region, primary_location, weights, dr_health_check_id)
    have = dns_routing.record_sets(r53, zone_id, name, record_type)
    resource = f"{routing} records {name}"
    if dns_routing.evacuated(plan, have, routing, want[0]):
        # A scheduled run must never send clients back to a region a failover took them from.
        return {"record": {"resource": resource, "status": "drift", "change_id": None, "drift": [
            f"the primary is evacuated ({dns_routing.describe_set(dns_routing.by_side(plan, have)['primary'])}): "
            "DNS stays on the DR region until a failback; replicate does not move it back"]}}
    wanted = {dns_routing.canonical(r) for r in want}
    present = {dns_routing.canonical(r) for r in have}
    deletes = [r for r in have if dns_routing.canonical(r) not in wanted]
    creates = [r for r in want if dns_routing.canonical(r) not in present]
    if not deletes and not creates:
        return {"record": {"resource": resource, "status": "unchanged", "changes": [], "change_id": None}}
    changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in deletes]
    changes += [{"Action": "CREATE", "ResourceRecordSet": r} for r in creates]
    try:
        out = r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": f"pilotlight {plan}: {routing} records", "Changes": changes})
    except ClientError as exc:
        raise_mapped(exc, f"{routing} records for {name}")
    had_routing = any(r.get("SetIdentifier") for r in have)
    summary = [f"deleted {dns_routing.describe_set(r)}" for r in deletes]
    summary += [f"created {dns_routing.describe_set(r)}" for r in creates]
    record = {"resource": resource, "status": "updated" if had_routing else "created", "changes": summary,
              "change_id": out["ChangeInfo"]["Id"]}
    return {"record": record}


@registry.action(
    "evacuate_records",
    permissions=["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
    resource="hostedzone",
)
def evacuate_records(plan: str, zone_id: str, name: str, record_type: str, routing: str) -> dict[str, Any]:
    """Records mode with routing records: take the primary region out of the answers (lambdas.dns_routing
    ``evacuation``) in one change. No change is submitted when that is done already. The act half of an
    act -> ``check_change`` poll loop, like :func:`upsert_record`."""
    r53 = client("route53", _ROUTE53_REGION)
    sets = dns_routing.record_sets(r53, zone_id, name, record_type)
    changes, words = dns_routing.evacuation(plan, sets, routing)
    previous = [dns_routing.describe_set(s) for s in sets if s.get("SetIdentifier")]
    if not changes:
        return {"done": True, "attempt": 0, "change_id": None, "changed": False, "previous": previous,
                "value": words}
    try:
        out = r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": f"pilotlight {plan} failover: {words}", "Changes": changes})
    except ClientError as exc:
        raise_mapped(exc, f"evacuate {name}")
    return {"done": False, "attempt": 0, "change_id": out["ChangeInfo"]["Id"], "changed": True,
            "previous": previous, "value": words}


# -- during a failover (DR region only, except the optional verification) ------------------------


@registry.action(
    "flip_primary_health",
    permissions=["cloudwatch:PutMetricData", "cloudwatch:DescribeAlarms"],
    resource="health_alarm",
)
def flip_primary_health(region: str, plan: str, alarm: str) -> dict[str, Any]:
    """Mark the primary unhealthy: PutMetricData PrimaryHealthy=0 for ``plan`` in ``region`` (the DR region).

    No Route 53 call: the alarm ``alarm`` goes to ALARM, the health check on it turns unhealthy and
    Route 53's data plane answers with the DR target. Returns ``{"done": <alarm already in ALARM>,
    "attempt": 0, "state": ...}``, the act half of an act -> ``check_flipped`` poll loop.
    """
    cw = client("cloudwatch", region)
    have = _describe_alarm(cw, alarm)
    if have is None:
        raise ResourceNotFound(f"alarm {alarm} does not exist in {region}: run replicate to build the "
                               "health_check cutover first")
    _put_health(cw, plan, 0.0)
    state = have.get("StateValue")
    return {"done": state == "ALARM", "attempt": 0, "state": state}


@registry.action("check_flipped", permissions=["cloudwatch:DescribeAlarms"], resource="health_alarm")
def check_flipped(region: str, alarm: str, attempt: int = 0) -> dict[str, Any]:
    """DescribeAlarms in ``region``: ``{"done": state == "ALARM", "attempt": attempt + 1, "state": ...}``."""
    have = _describe_alarm(client("cloudwatch", region), alarm)
    if have is None:
        raise ResourceNotFound(f"alarm {alarm} does not exist in {region}")
    state = have.get("StateValue")
    return {"done": state == "ALARM", "attempt": attempt + 1, "state": state}


@registry.action("verify_dns", permissions=["route53:TestDNSAnswer"])
def verify_dns(
    zone_id: str, name: str, record_type: str, expected: str, resolver_ip: str | None = None
) -> dict[str, Any]:
    """What Route 53 answers for the record now (TestDNSAnswer), in either cutover mode.

    Returns ``{"answer": [...], "verified": expected in answer, "response_code": ...}``. The API is
    Route 53's control plane in us-east-1: it is called with the fast-fail client, and an unreachable,
    failing or throttled API gives ``{"verified": None, "reason": ...}`` instead of an error, so a
    cutover the data plane already made is never held up by its verification.
    """
    params: dict[str, Any] = {"HostedZoneId": zone_id, "RecordName": _fqdn(name), "RecordType": record_type}
    if resolver_ip:
        params["ResolverIP"] = resolver_ip
    try:
        out = client("route53", _ROUTE53_REGION, fast=True).test_dns_answer(**params)
    except BotoCoreError as exc:
        return {"answer": None, "verified": None, "response_code": None,
                "reason": f"Route 53 API unreachable: {type(exc).__name__}: {exc}"}
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or error.get("Code") in _UNAVAILABLE_CODES:
            return {"answer": None, "verified": None, "response_code": None,
                    "reason": f"Route 53 API unavailable: {error.get('Code')}: {error.get('Message', '')}"}
        raise_mapped(exc, f"TestDNSAnswer {name}")
    answer = [value.rstrip(".") for value in out.get("RecordData", [])]
    return {"answer": answer, "verified": expected.rstrip(".") in answer, "response_code": out.get("ResponseCode")}


_UNAVAILABLE_CODES = {"Throttling", "ThrottlingException", "PriorRequestNotComplete", "ServiceUnavailable",
                      "RequestThrottled"}


@registry.action("restore_primary_health", permissions=["cloudwatch:PutMetricData"], resource="health_alarm")
def restore_primary_health(region: str, plan: str) -> dict[str, Any]:
    """Mark the primary healthy again (drills, failback): PutMetricData PrimaryHealthy=1 in ``region`` (DR)."""
    _put_health(client("cloudwatch", region), plan, 1.0)
    return {"metric": f"{METRIC_NAMESPACE}/{METRIC_NAME}", "plan": plan, "value": 1}


# -- drills: the drill record ---------------------------------------------------------------------


def _zone_records(r53: Any, zone_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        try:
            page = r53.list_resource_record_sets(HostedZoneId=zone_id, **kwargs)
        except ClientError as exc:
            raise_mapped(exc, f"list records of {zone_id}")
        out += page["ResourceRecordSets"]
        if not page.get("IsTruncated"):
            return out
        kwargs = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]


@registry.action(
    "remove_drill_records",
    permissions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
    resource="hostedzone",
)
def remove_drill_records(zone_id: str, record_name: str, drills: dict[str, Any]) -> dict[str, Any]:
    """Delete the drill records (``drill-<id>.<record name>``) of the selected drills, in one change.

    Only names of that exact shape are touched: the plan's own record, its routing records and their
    health checks are never in the batch. A record already gone is not an error (a re-run converges).
    """
    r53 = client("route53", _ROUTE53_REGION)
    doomed = []
    for rrset in _zone_records(r53, zone_id):
        drill = drill_names.id_in_record(rrset["Name"], record_name)
        if drill and drill_names.selected(drill, drills):
            doomed.append((drill, rrset))
    deleted = [{"kind": "dns_record", "id": f"{rrset['Name'].rstrip('.')} {rrset['Type']}", "drill": drill}
               for drill, rrset in doomed]
    change_id = None
    if doomed:
        try:
            out = r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Comment": "pilotlight drill teardown",
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": rrset} for _, rrset in doomed]})
        except ClientError as exc:
            raise_mapped(exc, f"delete drill records in {zone_id}")
        change_id = out["ChangeInfo"]["Id"]
    return {"done": True, "deleted": deleted, "change_id": change_id, "left": 0}


# -- failback: DNS back to the primary (plain functions in lambdas/dns_failback.py) ------------------------------

from lambdas import dns_failback  # noqa: E402 - it imports this module lazily, so it comes last

registry.action("check_primary_restored", permissions=["cloudwatch:DescribeAlarms"], resource="health_alarm")(
    dns_failback.check_primary_restored)
registry.action("check_answer", permissions=["route53:TestDNSAnswer"])(dns_failback.check_answer)
registry.action("restore_records", permissions=["route53:ListResourceRecordSets", "route53:ListHealthChecks",
                                                "route53:ChangeResourceRecordSets"],
                resource={"route53:ListResourceRecordSets": "hostedzone",
                          "route53:ChangeResourceRecordSets": "hostedzone"})(dns_failback.restore_records)
registry.action("set_weights", permissions=["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
                resource="hostedzone")(dns_failback.set_weights)
registry.action("watch_alarms", permissions=["cloudwatch:DescribeAlarms"], resource="alarm")(dns_failback.watch_alarms)
