"""The plan's ``dns`` section: the record, how a failover moves it, its routing policy and health checks.

Re-exported by :mod:`workflows.plan`, where the cross-field rules of the whole plan call :func:`dns_mode_problems`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from workflows.plan_types import EnvName, Fqdn, HostedZoneId, PlanFieldError, _Model

# Route 53 geolocation codes: the seven continent codes and ISO 3166-1 alpha-2 country codes.
ContinentCode = Literal["AF", "AN", "AS", "EU", "NA", "OC", "SA"]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code, as Route 53 uses")]


class GeoLocation(_Model):
    """Where the primary serves with geolocation routing: exactly one of a continent or a country."""

    continent_code: ContinentCode | None = None
    country_code: CountryCode | None = None


class DnsWeights(_Model):
    """Weighted routing: the share of DNS answers each region's record gets (Route 53 weights, 0-255)."""

    primary: int = Field(default=100, ge=0, le=255)
    dr: int = Field(default=0, ge=0, le=255)


class EndpointCheck(_Model):
    """A Route 53 endpoint health check of each region's target (its ``primary_target`` / ``dr_target`` host).

    Each routing record then carries its region's check, so Route 53 takes a region that stops answering out of
    the answers by itself; in health_check mode the primary's record carries a calculated check that is healthy
    only while both the failover's alarm and the primary endpoint are.
    """

    protocol: Literal["HTTPS", "HTTP"] = "HTTPS"
    port: int | None = Field(default=None, ge=1, le=65535, description="Default 443 for HTTPS, 80 for HTTP")
    path: str = Field(default="/", min_length=1, max_length=255, pattern=r"^/\S*$",
                      description="The path Route 53's checkers request (a 2xx or 3xx answer is healthy)")
    request_interval: Literal[10, 30] = Field(default=30, description="Seconds between a checker's requests")
    failure_threshold: int = Field(default=3, ge=1, le=10,
                                   description="Consecutive failures (or successes) that change the status")

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.protocol == "HTTPS" else 80)


class Dns(_Model):
    """The record clients use, and how a failover moves it.

    ``cutover: health_check`` (the default) has replicate build routing records ahead of time whose
    primary carries a Route 53 health check driven by a CloudWatch alarm in the DR region; the
    failover only publishes a metric there (data plane, no Route 53 call). ``cutover: records``
    changes records during the failover: a call to Route 53's control plane, which is in us-east-1 and
    may be impaired by the very outage being failed over from (when it fails, the failover ends in
    DnsCutoverFailed with the change to make by hand). With ``routing: failover`` (the default) that is
    one simple record UPSERTed to the DR target; with latency, geolocation or weighted routing replicate
    builds the routing records, and the failover points the primary's record at the DR target (its
    weight to 0 with weighted routing).
    """

    hosted_zone_id: HostedZoneId
    record_name: Fqdn
    record_type: Literal["CNAME"] = "CNAME"
    ttl: int = Field(default=60, ge=0, le=172800)
    # Data plane by default: a failover must not depend on Route 53's control plane (us-east-1).
    cutover: Literal["records", "health_check"] = "health_check"
    environment: EnvName | None = Field(
        default=None, description="Plan environment whose DR CNAME the record points at (default: the first)"
    )
    primary_target: Fqdn | None = Field(
        default=None, description="Host name the record points at in the primary region, for a plan without a "
        "Beanstalk environment (e.g. the primary load balancer's DNS name)")
    dr_target: Fqdn | None = Field(
        default=None, description="Host name the record points at after a failover, for a plan without a Beanstalk "
        "environment (e.g. the DR load balancer's DNS name)")
    routing: Literal["failover", "latency", "geolocation", "weighted"] = Field(
        default="failover",
        description="The routing policy of the record pair replicate builds (records mode: failover means one "
        "simple record instead)",
    )
    weights: DnsWeights | None = Field(
        default=None, description="routing: weighted: each region's share of the answers (default primary 100, dr 0)")
    primary_location: GeoLocation | None = Field(
        default=None, description="routing: geolocation: where the primary serves"
    )
    endpoint_check: EndpointCheck | None = Field(
        default=None, description="A Route 53 health check of each region's target on its routing record")
    health_check_alarm: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="health_check mode: the DR-region alarm behind the primary's health check "
        "(default pilotlight-<plan>-primary-health)",
    )


def dns_mode_problems(dns: Dns) -> list[PlanFieldError]:
    """Settings of the health_check cutover that mean nothing, or too little, for the chosen mode."""
    problems: list[PlanFieldError] = []
    if dns.cutover == "records":
        if dns.health_check_alarm is not None:
            problems.append(PlanFieldError(
                "dns.health_check_alarm", "only used with cutover: health_check (records mode changes records during "
                "the failover); remove it or set dns.cutover: health_check"))
        if dns.routing == "failover" and dns.endpoint_check is not None:
            problems.append(PlanFieldError(
                "dns.endpoint_check", "records mode with routing: failover has one simple record, which carries no "
                "health check; choose latency, geolocation or weighted routing, or cutover: health_check"))
    loc = dns.primary_location
    if dns.routing == "geolocation":
        if loc is None:
            problems.append(PlanFieldError(
                "dns.primary_location",
                "required with routing: geolocation (continent_code or country_code of where the primary serves)",
            ))
        elif (loc.continent_code is None) == (loc.country_code is None):
            problems.append(PlanFieldError(
                "dns.primary_location", "give exactly one of continent_code and country_code"))
    elif loc is not None:
        problems.append(PlanFieldError(
            "dns.primary_location", f"only used with routing: geolocation (routing is {dns.routing})"))
    if dns.weights is not None:
        if dns.routing != "weighted":
            problems.append(PlanFieldError("dns.weights",
                                           f"only used with routing: weighted (routing is {dns.routing})"))
        elif dns.weights.primary == 0 and dns.weights.dr == 0:
            problems.append(PlanFieldError("dns.weights", "at least one region needs a weight above 0"))
    return problems
