"""Routing records with a health check per region, in both DNS cutover modes, run by the real workflows.

The fastest-region example (latency routing, two serving regions, endpoint health checks) and variants of it:
replicate builds each region's HTTP(S) check and the records carrying them; a region that stops answering
leaves the answers without any failover; in records mode the failover evacuates the primary's routing record
(pointed at the DR target, or weight 0), a scheduled replicate never moves it back, and a failing Route 53
control plane ends the run with the change to make by hand. Assertions go through the sandbox's AWS APIs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from lambdas import dns_routing
from sandbox import Sandbox, clock
from tests.conftest import ROOT, run_workflow
from tests.replicate_helpers import run
from workflows.plan import Plan, load_plan, parse_plan

EXAMPLE = ROOT / "examples" / "fastest-region.yaml"


def _plan(**dns: Any) -> Plan:
    data = load_plan(EXAMPLE).model_dump(exclude_none=True)
    data["dns"].update(dns)
    return parse_plan(data)


def _records(plan: Plan) -> dict[str, dict[str, Any]]:
    assert plan.dns is not None
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)
    mine = [r for r in sets["ResourceRecordSets"] if r["Name"] == plan.dns.record_name + "."]
    return dns_routing.by_side(plan.name, mine)


def _checks() -> dict[str, dict[str, Any]]:
    return {c["Id"]: c for c in boto3.client("route53").list_health_checks()["HealthChecks"]}


def _answer(plan: Plan) -> list[str]:
    assert plan.dns is not None
    return boto3.client("route53").test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id,
                                                   RecordName=plan.dns.record_name,
                                                   RecordType=plan.dns.record_type)["RecordData"]


def _standby_in_service(sb: Sandbox, plan: Plan) -> None:
    autoscaling = boto3.client("autoscaling", region_name=plan.dr_region)

    def ready() -> bool:
        groups = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[g.dr_group_name for g in plan.compute])["AutoScalingGroups"]
        return all(sum(i["LifecycleState"] == "InService" for i in g["Instances"]) >= g["MinSize"] for g in groups)

    clock.wait_until(ready, timeout=900, step=5, what="the standby groups in service")


def _dns_records(out: dict[str, Any], status: str) -> list[str]:
    return [r["resource"] for r in out[status] if "health check" in r["resource"] or " records " in r["resource"]]


@pytest.fixture(scope="class")
def latency() -> Iterator[dict[str, Any]]:
    """health_check mode, latency routing, endpoint checks: the pilot light built twice."""
    plan = load_plan(EXAMPLE)
    with Sandbox() as sb:
        sb.seed(plan)
        first = sb.build_pilot_light(plan)
        second = run(sb, plan)
        yield {"plan": plan, "sb": sb, "first": first, "second": second}


class TestEndpointChecks:
    """One sandbox (closed before the other tests open theirs): the latency example built twice."""

    def test_replicate_gives_each_region_an_endpoint_check(self, latency: dict[str, Any]) -> None:
        plan, first, second = latency["plan"], latency["first"], latency["second"]
        assert plan.dns is not None and plan.dns.endpoint_check is not None
        assert first["ok"], first["failed"]
        checks = _checks()
        endpoint = {c["HealthCheckConfig"]["FullyQualifiedDomainName"]: c for c in checks.values()
                    if c["HealthCheckConfig"]["Type"] == "HTTPS"}
        assert set(endpoint) == {plan.dns_primary_target, plan.dns_dr_target}
        for check in endpoint.values():
            config = check["HealthCheckConfig"]
            assert (config["ResourcePath"], config["Port"], config["RequestInterval"]) == ("/healthz", 443, 10)
        (calculated,) = [c for c in checks.values() if c["HealthCheckConfig"]["Type"] == "CALCULATED"]
        (metric,) = [c for c in checks.values() if c["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"]
        children = calculated["HealthCheckConfig"]["ChildHealthChecks"]
        assert sorted(children) == sorted([metric["Id"], endpoint[plan.dns_primary_target]["Id"]])
        assert calculated["HealthCheckConfig"]["HealthThreshold"] == 2
        records = _records(plan)
        assert records["primary"]["HealthCheckId"] == calculated["Id"]
        assert records["dr"]["HealthCheckId"] == endpoint[plan.dns_dr_target]["Id"]
        assert (records["primary"]["Region"], records["dr"]["Region"]) == (plan.primary_region, plan.dr_region)
        # A second run finds every check and record as it is.
        assert second["ok"] and second["counts"]["created"] == 0 and second["counts"]["updated"] == 0
        assert len(_dns_records(second, "unchanged")) == 5  # the alarm's check, 2 endpoint checks, calculated, records
        assert _checks() == checks


    def test_a_region_that_stops_answering_leaves_the_answers_without_a_failover(self, latency: dict[str, Any]) -> None:
        plan, sb = latency["plan"], latency["sb"]
        _standby_in_service(sb, plan)
        readiness = run_workflow(sb, plan, "readiness", {"source": "test"})
        health = next(c for c in readiness.output["checks"] if c["check"] == "dns-health-checks")
        assert health["status"] == "READY", health
        assert _answer(plan) == [plan.dns_primary_target]
        sb.down_regions.add(plan.primary_region)  # the primary's endpoint stops answering; no alarm, no failover
        try:
            assert _answer(plan) == [plan.dns_dr_target]
            primary = _records(plan)["primary"]["HealthCheckId"]
            observed = boto3.client("route53").get_health_check_status(HealthCheckId=primary)["HealthCheckObservations"]
            assert observed and all(o["StatusReport"]["Status"].startswith("Failure") for o in observed)
            readiness = run_workflow(sb, plan, "readiness", {"source": "test"})
            health = next(c for c in readiness.output["checks"] if c["check"] == "dns-health-checks")
            assert health["status"] == "NOT_READY" and "primary's health check is failing" in health["reason"]
        finally:
            sb.down_regions.discard(plan.primary_region)
        assert _answer(plan) == [plan.dns_primary_target]


@pytest.mark.parametrize("routing", ["latency", "weighted"])
def test_records_mode_evacuates_the_primary_record_and_replicate_keeps_it_so(routing: str) -> None:
    plan = _plan(cutover="records", routing=routing, **({"weights": {"primary": 60, "dr": 40}}
                                                         if routing == "weighted" else {}))
    with Sandbox() as sb:
        sb.seed(plan)
        assert sb.build_pilot_light(plan)["ok"]
        before = _records(plan)
        assert "HealthCheckId" in before["primary"] and "HealthCheckId" in before["dr"]
        sb.simulate_disaster(plan)
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test"})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        after = _records(plan)
        if routing == "weighted":
            assert (after["primary"]["Weight"], after["dr"]["Weight"]) == (0, 40)
            assert after["primary"]["ResourceRecords"] == before["primary"]["ResourceRecords"]
        else:
            assert after["primary"]["ResourceRecords"] == [{"Value": plan.dns_dr_target}]
            assert after["primary"]["HealthCheckId"] == before["dr"]["HealthCheckId"]
            assert after["primary"]["Region"] == plan.primary_region
        assert after["dr"] == before["dr"]
        assert _answer(plan) == [plan.dns_dr_target]
        # The scheduled replicate reports the evacuation and never sends clients back to the failed region.
        again = run(sb, plan)
        (drift,) = [r for r in again["drift"] if r["resource"] == f"{routing} records {plan.dns.record_name}"]
        assert "until a failback" in drift["drift"][0]
        assert _records(plan) == after
        readiness = run_workflow(sb, plan, "readiness", {"source": "test"})
        record = next(c for c in readiness.output["checks"] if c["check"] == "dns-record")
        assert record["status"] == "NOT_READY" and "evacuated the primary" in record["reason"]


def test_records_mode_names_the_change_to_make_when_route53_fails() -> None:
    plan = _plan(cutover="records", routing="weighted", weights={"primary": 50, "dr": 50})
    with Sandbox() as sb:
        sb.seed(plan)
        assert sb.build_pilot_light(plan)["ok"]
        before = _records(plan)
        sb.simulate_disaster(plan)
        sb.faults.inject("route53", "ChangeResourceRecordSets", "ServiceUnavailable", times=None, status=503)
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test"}, timeout=300)
        assert (result.status, result.error) == ("FAILED", "DnsCutoverFailed")
        assert f"set the weight of CNAME record {plan.dns.record_name} pilotlight-{plan.name}-primary to 0" \
            in result.cause
        assert _records(plan) == before


# Pure checks -----------------------------------------------------------------------------------

def _pair(routing: str, **kwargs: Any) -> list[dict[str, Any]]:
    return dns_routing.routing_records("shop", "app.example.com", "CNAME", 60, routing, "p.example", "d.example",
                                       "hc-p", "us-east-1", "us-west-2", {"continent_code": "NA"},
                                       {"primary": 70, "dr": 30}, dr_health_check_id="hc-d", **kwargs)


@pytest.mark.parametrize("routing", ["failover", "latency", "geolocation", "weighted"])
def test_evacuation_is_one_upsert_and_then_nothing(routing: str) -> None:
    sets = _pair(routing)
    changes, words = dns_routing.evacuation("shop", sets, routing)
    assert changes and all(c["Action"] == "UPSERT" for c in changes)
    moved = {c["ResourceRecordSet"]["SetIdentifier"]: c["ResourceRecordSet"] for c in changes}
    primary = moved["pilotlight-shop-primary"]
    if routing == "weighted":
        assert primary["Weight"] == 0 and "to 0" in words and len(changes) == 1
    else:
        assert primary["ResourceRecords"] == [{"Value": "d.example"}] and primary["HealthCheckId"] == "hc-d"
    done = [dict(moved.get(s["SetIdentifier"], s)) for s in sets]
    assert dns_routing.evacuated("shop", done, routing, sets[0])
    assert not dns_routing.evacuated("shop", sets, routing, sets[0])
    assert dns_routing.evacuation("shop", done, routing)[0] == []


def test_evacuation_without_the_records_says_to_run_replicate() -> None:
    from lambdas.errors import ResourceNotFound

    with pytest.raises(ResourceNotFound, match="run replicate"):
        dns_routing.evacuation("shop", _pair("latency")[:1], "latency")


def test_a_pilot_light_dr_region_may_fail_its_check_until_the_failover() -> None:
    data = load_plan(EXAMPLE).model_dump(exclude_none=True)
    data["topology"] = "pilot-light"
    for group in data["compute"]:
        group["pilot_size"] = 0
    plan = parse_plan(data)
    with Sandbox() as sb:
        sb.seed(plan)
        assert sb.build_pilot_light(plan)["ok"]
        readiness = run_workflow(sb, plan, "readiness", {"source": "test"})
        health = next(c for c in readiness.output["checks"] if c["check"] == "dns-health-checks")
        assert health["status"] == "READY" and "as a pilot light" in health["reason"], health
        assert health["evidence"]["regions"]["dr"]["healthy"] is False
        assert _answer(plan) == [plan.dns_primary_target]
        # The failover scales the DR group up: its endpoint answers, and DNS sends clients there.
        sb.simulate_disaster(plan)
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test"})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        dr_check = _records(plan)["dr"]["HealthCheckId"]
        observed = boto3.client("route53").get_health_check_status(HealthCheckId=dr_check)["HealthCheckObservations"]
        assert all(o["StatusReport"]["Status"].startswith("Success") for o in observed)
        assert _answer(plan) == [plan.dns_dr_target]
