"""Route 53 health checks on CloudWatch alarms, alarm evaluation and DNS answers, which moto 5.2 lacks.

What moto does not do, and this module adds on the same event system as the other adapters:

- **Alarm evaluation.** moto stores metric data but never evaluates an alarm. Here a datum that
  arrives (``PutMetricData``) for an alarm's metric (namespace, name, exact dimensions) is compared
  with the alarm's threshold and kept as the datapoint of its period (the latest datum of a period
  stands for it; statistics are not aggregated). The alarm's evaluation range is its last
  ``EvaluationPeriods`` periods: ALARM when at least ``DatapointsToAlarm`` (default: all of them)
  breach, OK otherwise; the new state takes effect once the modeled evaluation delay
  (``cloudwatch.alarm_evaluation``) has passed. So an alarm of 3 x 60 s enters ALARM after three
  breaching minutes plus the delay. Missing data never changes a state (no periodic evaluation is
  modeled, so TreatMissingData is not). ``SetAlarmState`` takes effect at once. Transitions are
  applied when the alarm is next read (``DescribeAlarms``); listeners (``World.listeners``, e.g. the
  sandbox's EventBridge in ``sandbox/triggers.py``) hear of each one when it is noted, with its
  modeled time.
- **CLOUDWATCH_METRIC health checks.** moto drops ``AlarmIdentifier`` and
  ``InsufficientDataHealthStatus``; they are kept here and shown in ``CreateHealthCheck``,
  ``GetHealthCheck``, ``ListHealthChecks`` and ``UpdateHealthCheck`` answers with the alarm's
  ``CloudWatchAlarmConfiguration``, as Route 53 answers. ``CreateHealthCheck`` with a known
  ``CallerReference`` returns the existing check (same settings) or ``HealthCheckAlreadyExists``.
- **Health status.** A metric health check follows its alarm's state as it was
  ``route53.health_check`` modeled seconds ago (the health checkers' reaction time): ALARM is
  unhealthy, OK healthy, INSUFFICIENT_DATA as ``InsufficientDataHealthStatus`` says (LastKnownStatus:
  the last OK/ALARM, healthy when there was none). ``GetHealthCheckStatus`` reports it per checker
  region. Other health check types stay as moto has them (always healthy).
- **TestDNSAnswer** resolves the zone's record sets of the name and type with simple, failover,
  latency and geolocation routing and the health of each record's health check, for one resolver
  location: by default the plan's primary region (latency: the record in that region wins, else one
  on the same continent prefix, else any) and, for geolocation, the plan's primary location
  (country, then continent, then the default ``*`` record). An unhealthy record gives way to the
  next one; when every candidate is unhealthy Route 53 answers as if all were healthy, and so does this.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

CHECKER_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1", "ap-southeast-2",
                   "ap-northeast-1", "sa-east-1")
NAMESERVER = "ns-2048.awsdns-64.com"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
# How CloudWatch's state reason words each comparison.
_WORDS = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
# Where a region's resolvers are, for latency routing between records of different regions.
_CONTINENT = {"us": "NA", "ca": "NA", "mx": "NA", "sa": "SA", "eu": "EU", "af": "AF", "me": "AS", "il": "AS",
              "ap": "AS"}


@dataclass(frozen=True)
class Location:
    """Where the resolver that asks Route 53 sits."""

    region: str = "us-east-1"
    continent: str | None = "NA"
    country: str | None = "US"


@dataclass
class World:
    evaluation_delay: Callable[[], float]  # modeled seconds from a datum to the alarm's new state
    health_delay: Callable[[], float]  # modeled seconds from an alarm state to the health checkers' verdict
    resolver: Location = field(default_factory=Location)
    resolvers: dict[str, Location] = field(default_factory=dict)  # ResolverIP -> location
    history: dict[tuple[str, str], list[tuple[float, str, str]]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # health check id -> kept config
    # (region, alarm) -> period index -> (breaching, value): the datapoints in each alarm's evaluation range.
    datapoints: dict[tuple[str, str], dict[int, tuple[bool, float]]] = field(default_factory=dict)
    # (region, alarm) -> the state moto gave the alarm when it was created, before any modeled transition.
    initial: dict[tuple[str, str], str] = field(default_factory=dict)
    # Endpoint host name -> a probe answering (healthy, why) now: what an HTTP(S) health check of it sees.
    endpoints: dict[str, Callable[[], tuple[bool, str]]] = field(default_factory=dict)
    # Called as listener(region, alarm, at, state, reason) for every transition noted (at: modeled time).
    listeners: list[Callable[[str, str, float, str, str], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def place_resolver(self, region: str, continent: str | None = None, country: str | None = None) -> None:
        """Put the default resolver somewhere (the sandbox puts it in the plan's primary location)."""
        if continent is None and country is None:
            continent = _CONTINENT.get(region.split("-", 1)[0])
            country = "US" if region.startswith("us-") else None
        self.resolver = Location(region, continent, country)

    # -- alarms --------------------------------------------------------------------------------
    def note(self, region: str, alarm: str, at: float, state: str, reason: str) -> None:
        with self.lock:
            entries = self.history.setdefault((region, alarm), [])
            entries.append((at, state, reason))
            entries.sort(key=lambda e: e[0])
        for listener in list(self.listeners):
            listener(region, alarm, at, state, reason)

    def reason_at(self, region: str, alarm: str, at: float) -> str | None:
        with self.lock:
            entries = [e for e in self.history.get((region, alarm), []) if e[0] <= at]
        return entries[-1][2] if entries else None

    def state_at(self, region: str, alarm: str, at: float) -> str | None:
        """The alarm's state at wall time ``at`` per the modeled transitions (None: none happened yet)."""
        with self.lock:
            entries = [e for e in self.history.get((region, alarm), []) if e[0] <= at]
        return entries[-1][1] if entries else None

    def last_known(self, region: str, alarm: str, at: float) -> str | None:
        with self.lock:
            entries = [e for e in self.history.get((region, alarm), []) if e[0] <= at and e[1] != "INSUFFICIENT_DATA"]
        return entries[-1][1] if entries else None

    def materialize(self, region: str) -> None:
        """Apply the transitions that are due to moto's alarms of ``region``."""
        backend = _cloudwatch(region)
        now = clock.now()
        with self.lock:
            due = {name: [e for e in entries if e[0] <= now] for (r, name), entries in self.history.items()
                   if r == region}
        for name, entries in due.items():
            alarm = backend.alarms.get(name)
            if alarm is None or not entries:
                continue
            _, state, reason = entries[-1]
            if alarm.state_value != state:
                alarm.update_state(reason, json.dumps({"version": "1.0", "sandbox": True}), state)

    def on_datum(self, region: str, namespace: str, datum: dict[str, Any]) -> None:
        value = _datum_value(datum)
        if value is None:
            return
        dims = sorted((d["Name"], str(d["Value"])) for d in datum.get("Dimensions") or [])
        now = clock.now()
        at = now + self.evaluation_delay()
        for alarm in list(_cloudwatch(region).alarms.values()):
            if alarm.namespace != namespace or alarm.metric_name != datum.get("MetricName"):
                continue
            if sorted((d.name, str(d.value)) for d in alarm.dimensions or []) != dims:
                continue
            compare = _COMPARE.get(alarm.comparison_operator)
            if compare is None or alarm.threshold is None:
                continue
            breaching = compare(value, float(alarm.threshold))
            periods = max(1, int(alarm.evaluation_periods or 1))
            needed = max(1, min(periods, int(alarm.datapoints_to_alarm or periods)))
            bucket = int(now // max(1, int(alarm.period or 60)))
            with self.lock:
                points = self.datapoints.setdefault((region, alarm.name), {})
                points[bucket] = (breaching, value)
                for old in [b for b in points if b <= bucket - periods]:
                    del points[old]
                window = [points[b] for b in sorted(points) if b > bucket - periods]
            crossing = sum(1 for b, _ in window if b)
            state = "ALARM" if crossing >= needed else "OK"
            op = alarm.comparison_operator.removesuffix("Threshold")
            threshold = float(alarm.threshold)
            if periods == 1:
                reason = (f"Threshold Crossed: 1 datapoint [{value:g}] was {'' if breaching else 'not '}"
                          f"{op} the threshold ({threshold:g}).")
            else:
                values = ", ".join(f"{v:g}" for _, v in reversed(window))
                words = _WORDS.get(alarm.comparison_operator, op)
                reason = (f"Threshold Crossed: {crossing} out of the last {len(window)} datapoints [{values}] "
                          f"{'were' if crossing != 1 else 'was'} {words} the threshold ({threshold:g}) (minimum "
                          f"{needed} datapoint{'s' if needed != 1 else ''} for OK -> ALARM transition).")
            self.note(region, alarm.name, at, state, reason)

    # -- health checks -------------------------------------------------------------------------
    def healthy(self, check_id: str | None, at: float | None = None) -> bool:
        return self.verdict(check_id, at)[0]

    def verdict(self, check_id: str | None, at: float | None = None) -> tuple[bool, str]:
        """(healthy, why) of a health check: a metric check from its alarm, an HTTP(S)/TCP check from the
        endpoint probe of its host (healthy when the sandbox knows no probe for it), a calculated check from
        its children."""
        if check_id is None:
            return True, "no health check"
        kept = self.checks.get(check_id)
        if kept is None:
            return self._other_verdict(check_id, at)
        ident = kept["AlarmIdentifier"]
        healthy = self._metric_healthy(kept, at)
        return healthy, (f"the CloudWatch alarm {ident['Name']} ({ident['Region']}) makes the check "
                         f"{'healthy' if healthy else 'unhealthy'}")

    def _other_verdict(self, check_id: str, at: float | None) -> tuple[bool, str]:
        check = _route53().health_checks.get(check_id)
        if check is None:
            return True, "unknown health check"
        if check.disabled:
            return True, "disabled (Route 53 counts it healthy)"
        if check.type_ == "CALCULATED":
            children = list(check.children or [])
            good = sum(1 for child in children if self.healthy(child, at))
            threshold = int(check.health_threshold or len(children))
            healthy = good >= threshold
            return healthy != bool(check.inverted), f"{good} of {len(children)} child health checks healthy " \
                                                    f"(threshold {threshold})"
        probe = self.endpoints.get(str(check.fqdn or "").rstrip(".").lower())
        if probe is None:
            return True, f"{check.type_} check of {check.fqdn or check.ip_address}: answers"
        healthy, why = probe()
        return healthy != bool(check.inverted), why

    def _metric_healthy(self, kept: dict[str, Any], at: float | None) -> bool:
        if kept.get("Disabled"):
            return True
        at = clock.now() if at is None else at
        seen = at - self.health_delay()
        ident = kept["AlarmIdentifier"]
        region, name = ident["Region"], ident["Name"]
        state = self.state_at(region, name, seen)
        if state is None:
            alarm = _cloudwatch(region).alarms.get(name)
            state = alarm.state_value if alarm is not None else "INSUFFICIENT_DATA"
        if state == "INSUFFICIENT_DATA":
            policy = kept.get("InsufficientDataHealthStatus") or "LastKnownStatus"
            if policy == "LastKnownStatus":
                state = self.last_known(region, name, seen) or "OK"
            else:
                state = "OK" if policy == "Healthy" else "ALARM"
        return (state != "ALARM") != bool(kept.get("Inverted"))


def _cloudwatch(region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[DEFAULT_ACCOUNT_ID][region]


def _route53() -> Any:
    from moto.route53.models import route53_backends

    return route53_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _datum_value(datum: dict[str, Any]) -> float | None:
    if datum.get("Value") is not None:
        return float(datum["Value"])
    if datum.get("Values"):
        return min(float(v) for v in datum["Values"])
    stats = datum.get("StatisticValues")
    if stats:
        return float(stats["Minimum"])
    return None


def _fqdn(name: str) -> str:
    return (name if name.endswith(".") else name + ".").lower()


class Adapters:
    def __init__(self, world: World) -> None:
        self.world = world

    # CloudWatch ---------------------------------------------------------------------------------
    def after_put_metric_data(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        for datum in p.get("MetricData") or []:
            self.world.on_datum(context.get("client_region", ""), p.get("Namespace", ""), datum)

    def after_set_alarm_state(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        self.world.note(context.get("client_region", ""), p.get("AlarmName", ""), clock.now(),
                        p.get("StateValue", ""), p.get("StateReason", ""))

    def after_put_metric_alarm(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        """AWS keeps an alarm's state when its configuration is updated; moto starts it afresh."""
        if http_response.status_code >= 300:
            return
        region = context.get("client_region", "")
        name = responses.api_params(context).get("AlarmName", "")
        state = self.world.state_at(region, name, clock.now())
        alarm = _cloudwatch(region).alarms.get(name)
        if alarm is not None:
            self.world.initial.setdefault((region, name), alarm.state_value)
        if state and alarm is not None and alarm.state_value != state:
            alarm.update_state("configuration updated; state kept", "{}", state)

    def before_describe_alarms(self, context: dict[str, Any], **_: Any) -> None:
        self.world.materialize(context.get("client_region", ""))

    # Route 53 health checks -------------------------------------------------------------------
    def _doc(self, check: Any) -> dict[str, Any]:
        kept = self.world.checks.get(check.id, {})
        config: dict[str, Any] = {"Type": check.type_, "Inverted": bool(check.inverted),
                                  "Disabled": bool(check.disabled)}
        ident = kept.get("AlarmIdentifier")
        doc: dict[str, Any] = {"Id": check.id, "CallerReference": check.caller_reference,
                               "HealthCheckConfig": config, "HealthCheckVersion": kept.get("version", 1)}
        if ident:
            config["AlarmIdentifier"] = dict(ident)
            alarm = _cloudwatch(ident["Region"]).alarms.get(ident["Name"])
            if alarm is not None:
                doc["CloudWatchAlarmConfiguration"] = {
                    "EvaluationPeriods": int(alarm.evaluation_periods), "Threshold": float(alarm.threshold),
                    "ComparisonOperator": alarm.comparison_operator, "Period": int(alarm.period),
                    "MetricName": alarm.metric_name, "Namespace": alarm.namespace, "Statistic": alarm.statistic,
                    "Dimensions": [{"Name": d.name, "Value": d.value} for d in alarm.dimensions or []],
                }
        if kept.get("InsufficientDataHealthStatus"):
            config["InsufficientDataHealthStatus"] = kept["InsufficientDataHealthStatus"]
        return doc

    def _patch(self, doc: dict[str, Any]) -> None:
        if doc.get("Id") not in self.world.checks:
            return
        check = _route53().health_checks.get(doc["Id"])
        if check is not None:
            doc.clear()
            doc.update(self._doc(check))

    def before_create_health_check(self, context: dict[str, Any], **_: Any) -> Any:
        p = responses.api_params(context)
        reference = p.get("CallerReference")
        existing = next((c for c in _route53().health_checks.values() if c.caller_reference == reference), None)
        if existing is None:
            return None
        config = p.get("HealthCheckConfig") or {}
        kept = self.world.checks.get(existing.id, {})
        same = (config.get("Type") == existing.type_
                and config.get("AlarmIdentifier") == kept.get("AlarmIdentifier")
                and config.get("InsufficientDataHealthStatus") == kept.get("InsufficientDataHealthStatus"))
        if not same:
            return responses.error("HealthCheckAlreadyExists",
                                   f"A health check with caller reference {reference} already exists "
                                   "with other settings.", 409)
        return responses.ok({"HealthCheck": self._doc(existing),
                             "Location": f"https://route53.amazonaws.com/2013-04-01/healthcheck/{existing.id}"})

    def after_create_health_check(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                                  **_: Any) -> None:
        if http_response.status_code >= 300 or "HealthCheck" not in parsed:
            return
        config = responses.api_params(context).get("HealthCheckConfig") or {}
        if config.get("Type") == "CLOUDWATCH_METRIC":
            self.world.checks.setdefault(parsed["HealthCheck"]["Id"], {
                "AlarmIdentifier": dict(config.get("AlarmIdentifier") or {}),
                "InsufficientDataHealthStatus": config.get("InsufficientDataHealthStatus"),
                "Inverted": bool(config.get("Inverted")), "Disabled": bool(config.get("Disabled")), "version": 1,
            })
        self._patch(parsed["HealthCheck"])
        parsed.setdefault("Location",
                          f"https://route53.amazonaws.com/2013-04-01/healthcheck/{parsed['HealthCheck']['Id']}")

    def after_update_health_check(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                                  **_: Any) -> None:
        if http_response.status_code >= 300 or "HealthCheck" not in parsed:
            return
        p = responses.api_params(context)
        kept = self.world.checks.get(parsed["HealthCheck"]["Id"])
        if kept is not None:
            for key in ("AlarmIdentifier", "InsufficientDataHealthStatus", "Inverted", "Disabled"):
                if p.get(key) is not None:
                    kept[key] = p[key]
            kept["version"] = kept.get("version", 1) + 1
        self._patch(parsed["HealthCheck"])

    def after_get_health_check(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300 and "HealthCheck" in parsed:
            self._patch(parsed["HealthCheck"])

    def after_list_health_checks(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:
            for doc in parsed.get("HealthChecks") or []:
                self._patch(doc)
            # moto leaves out the paging members Route 53 always sends (it never pages).
            parsed.setdefault("Marker", "")
            parsed.setdefault("IsTruncated", False)
            parsed.setdefault("MaxItems", "100")

    def after_get_health_check_status(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                                      **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        check_id = responses.api_params(context).get("HealthCheckId")
        kept = self.world.checks.get(check_id or "")
        if kept is None and check_id not in _route53().health_checks:
            return
        healthy, why = self.world.verdict(check_id)
        status = f"{'Success' if healthy else 'Failure'}: {why}"
        checked = dt.datetime.now(dt.UTC)
        parsed["HealthCheckObservations"] = [
            {"Region": region, "IPAddress": f"15.177.{i}.1", "StatusReport": {"Status": status, "CheckedTime": checked}}
            for i, region in enumerate(CHECKER_REGIONS)
        ]

    # Route 53 DNS answers ----------------------------------------------------------------------
    def before_test_dns_answer(self, context: dict[str, Any], **_: Any) -> Any:
        p = responses.api_params(context)
        zone_id = str(p.get("HostedZoneId", "")).rsplit("/", 1)[-1]
        name, rtype = p.get("RecordName", ""), p.get("RecordType", "")
        try:
            zone = _route53().get_hosted_zone(zone_id)
        except Exception:  # noqa: BLE001 - moto's NoSuchHostedZone
            return responses.error("NoSuchHostedZone", f"No hosted zone found with ID: {zone_id}", 404)
        location = self.world.resolvers.get(p.get("ResolverIP") or "", self.world.resolver)
        values, code = self.answer(zone, name, rtype, location)
        return responses.ok({"Nameserver": NAMESERVER, "RecordName": name, "RecordType": rtype,
                             "RecordData": values, "ResponseCode": code, "Protocol": "UDP"})

    def answer(self, zone: Any, name: str, rtype: str, where: Location) -> tuple[list[str], str]:
        named = [r for r in zone.rrsets if _fqdn(r.name) == _fqdn(name)]
        if not named:
            return [], "NXDOMAIN"
        sets = [r for r in named if r.type == rtype]
        if not sets:
            return [], "NOERROR"
        simple = [r for r in sets if not r.set_identifier]
        if simple:
            return list(simple[0].records or []), "NOERROR"
        if any(r.failover for r in sets):
            order = sorted(sets, key=lambda r: 0 if r.failover == "PRIMARY" else 1)
        elif any(r.region for r in sets):
            def distance(r: Any) -> int:
                if r.region == where.region:
                    return 0
                same = _CONTINENT.get(str(r.region).split("-", 1)[0]) == _CONTINENT.get(where.region.split("-", 1)[0])
                return 1 if same else 2
            order = sorted(sets, key=distance)
        elif any(r.geo_location for r in sets):
            def rank(r: Any) -> int | None:
                geo = r.geo_location or {}
                if geo.get("CountryCode") == "*":
                    return 3
                if geo.get("CountryCode") and geo.get("CountryCode") == where.country:
                    return 1 if not geo.get("SubdivisionCode") else 0
                if geo.get("ContinentCode") and geo.get("ContinentCode") == where.continent:
                    return 2
                return None
            order = sorted((r for r in sets if rank(r) is not None), key=lambda r: rank(r))  # type: ignore[arg-type,return-value]
            if not order:
                return [], "NOERROR"
        elif any(r.weight is not None for r in sets):
            # Weighted: Route 53 picks among the healthy records of non-zero weight in proportion to their
            # weights, and uses zero-weight records only when every other one is unhealthy. TestDNSAnswer here
            # answers deterministically: the heaviest healthy record (ties by set identifier).
            healthy = [r for r in sets if self.world.healthy(r.health_check_id)]
            weighted = [r for r in healthy if int(r.weight or 0) > 0] or healthy
            if not weighted:
                return list(sets[0].records or []), "NOERROR"  # all unhealthy: Route 53 answers as if all were
            order = sorted(weighted, key=lambda r: (-int(r.weight or 0), str(r.set_identifier)))
        else:
            order = list(sets)  # multivalue: not modeled beyond health
        chosen = next((r for r in order if self.world.healthy(r.health_check_id)), order[0])
        return list(chosen.records or []), "NOERROR"


def answer_for(name: str, rtype: str = "CNAME") -> list[str]:
    """What Route 53 answers for ``name`` now from the sandbox's resolver location (the zone that holds it)."""
    if _adapters is None:
        return []
    fqdn = _fqdn(name)
    for zone in list(_route53().zones.values()):
        suffix = _fqdn(zone.name)
        if fqdn == suffix or fqdn.endswith("." + suffix):
            values, _ = _adapters.answer(zone, name, rtype, _adapters.world.resolver)
            if values:
                return [str(v) for v in values]
    return []


def handlers(a: Adapters) -> list[tuple[str, Any]]:
    return [
        ("before-parameter-build.cloudwatch.PutMetricData", responses.stash_api_params),
        ("after-call.cloudwatch.PutMetricData", a.after_put_metric_data),
        ("before-parameter-build.cloudwatch.SetAlarmState", responses.stash_api_params),
        ("after-call.cloudwatch.SetAlarmState", a.after_set_alarm_state),
        ("before-parameter-build.cloudwatch.PutMetricAlarm", responses.stash_api_params),
        ("after-call.cloudwatch.PutMetricAlarm", a.after_put_metric_alarm),
        ("before-call.cloudwatch.DescribeAlarms", a.before_describe_alarms),
        ("before-call.cloudwatch.DescribeAlarmsForMetric", a.before_describe_alarms),
        ("before-parameter-build.route53.CreateHealthCheck", responses.stash_api_params),
        ("before-call.route53.CreateHealthCheck", a.before_create_health_check),
        ("after-call.route53.CreateHealthCheck", a.after_create_health_check),
        ("before-parameter-build.route53.UpdateHealthCheck", responses.stash_api_params),
        ("after-call.route53.UpdateHealthCheck", a.after_update_health_check),
        ("after-call.route53.GetHealthCheck", a.after_get_health_check),
        ("after-call.route53.ListHealthChecks", a.after_list_health_checks),
        ("before-parameter-build.route53.GetHealthCheckStatus", responses.stash_api_params),
        ("after-call.route53.GetHealthCheckStatus", a.after_get_health_check_status),
        ("before-parameter-build.route53.TestDNSAnswer", responses.stash_api_params),
        ("before-call.route53.TestDNSAnswer", a.before_test_dns_answer),
    ]


_adapters: Adapters | None = None


def install(events: Any, latency: Any = None) -> World:
    """Register the adapters; delays follow the latency model (none when it is off or absent)."""
    global _adapters
    world = World(responses.delay_of(latency, "cloudwatch.alarm_evaluation"),
                  responses.delay_of(latency, "route53.health_check"))
    _adapters = Adapters(world)
    responses.hook(events, handlers(_adapters), "r53")
    return world


def uninstall(events: Any) -> None:
    global _adapters
    if _adapters is None:
        return
    responses.unhook(events, handlers(_adapters), "r53")
    _adapters = None

