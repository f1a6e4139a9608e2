"""The health_check DNS cutover: built by the real replicate workflow, flipped through the deployed Lambda.

Every functional assertion goes through the AWS APIs of the sandbox (Route 53, CloudWatch, Lambda,
Step Functions); nothing calls the handlers' Python functions directly except the pure unit tests
at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from infra import iam as plan_iam
from lambdas import dns
from sandbox import Sandbox, clock
from tests.conftest import ROOT
from tests.replicate_helpers import run
from workflows import asl, render
from workflows.executions import follow
from workflows.plan import Plan, load_plan, parse_plan

EXAMPLE = ROOT / "examples" / "health-check.yaml"
ROUTINGS = {
    "failover": {"routing": "failover"},
    "latency": {"routing": "latency"},
    "geolocation": {"routing": "geolocation", "primary_location": {"continent_code": "NA"}},
}
ACCOUNT = "123456789012"


def _plan(routing: str) -> Plan:
    data = load_plan(EXAMPLE).model_dump(exclude_none=True)
    data["dns"].update(ROUTINGS[routing])
    return parse_plan(data)


def _answer(plan: Plan) -> list[str]:
    assert plan.dns is not None
    out = boto3.client("route53").test_dns_answer(
        HostedZoneId=plan.dns.hosted_zone_id, RecordName=plan.dns.record_name, RecordType=plan.dns.record_type)
    assert out["ResponseCode"] == "NOERROR"
    return out["RecordData"]


def _wait_for_answer(plan: Plan, wanted: str, timeout: float = 600.0) -> list[str]:
    """TestDNSAnswer until it names ``wanted`` (the health checkers react after a modeled delay)."""
    return clock.wait_until(lambda: (answer := _answer(plan)) == [wanted] and answer, timeout=timeout, step=5,
                            what=f"DNS answering {wanted}")


def _invoke(plan: Plan, event: dict[str, Any]) -> dict[str, Any]:
    """Call the deployed dns function the way the state machines do (Lambda Invoke)."""
    out = boto3.client("lambda", region_name=plan.dr_region).invoke(
        FunctionName=render.function_name(plan, "dns"), Payload=json.dumps(event).encode())
    payload = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, payload
    return payload


def _records(plan: Plan) -> list[dict[str, Any]]:
    assert plan.dns is not None
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)
    return [r for r in sets["ResourceRecordSets"] if r["Name"] == plan.dns.record_name + "."]


def _health_checks() -> list[dict[str, Any]]:
    return boto3.client("route53").list_health_checks()["HealthChecks"]


def _alarm(plan: Plan) -> dict[str, Any]:
    cw = boto3.client("cloudwatch", region_name=plan.dr_region)
    (alarm,) = cw.describe_alarms(AlarmNames=[plan.health_check_alarm])["MetricAlarms"]
    return alarm


@pytest.fixture(scope="module", params=sorted(ROUTINGS))
def built(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """One sandbox per routing policy: the primary estate, then the pilot light built twice by replicate."""
    plan = _plan(request.param)
    with Sandbox() as sb:
        sb.seed(plan)
        simple_before = _records(plan)
        first = sb.build_pilot_light(plan)
        records_after_first = _records(plan)
        checks_after_first = _health_checks()
        second = run(sb, plan)
        yield {"plan": plan, "sb": sb, "first": first, "second": second, "simple_before": simple_before,
               "records_after_first": records_after_first, "checks_after_first": checks_after_first}


def _dns_records(out: dict[str, Any], status: str) -> list[dict[str, Any]]:
    return [r for r in out[status] if r["resource"].startswith(("health alarm", "health check", "failover records",
                                                               "latency records", "geolocation records"))]


def test_replicate_builds_alarm_health_check_and_routing_records(built: dict[str, Any]) -> None:
    plan, first = built["plan"], built["first"]
    assert first["ok"], first["failed"]
    assert len(_dns_records(first, "created")) == 3
    # The seed's plain CNAME pointed at the primary environment.
    (simple,) = built["simple_before"]
    assert "SetIdentifier" not in simple
    assert simple["ResourceRecords"] == [{"Value": plan.dns_primary_target}]

    alarm = _alarm(plan)
    assert (alarm["Namespace"], alarm["MetricName"]) == ("pilotlight", "PrimaryHealthy")
    assert alarm["Dimensions"] == [{"Name": "Plan", "Value": plan.name}]
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1.0
    assert alarm["Period"] == 60 and alarm["TreatMissingData"] == "ignore"
    assert alarm["StateValue"] == "OK"  # PrimaryHealthy=1 was published and evaluated

    (check,) = _health_checks()
    config = check["HealthCheckConfig"]
    assert config["Type"] == "CLOUDWATCH_METRIC"
    assert config["AlarmIdentifier"] == {"Region": plan.dr_region, "Name": plan.health_check_alarm}
    assert config["InsufficientDataHealthStatus"] == "LastKnownStatus"
    assert check["CallerReference"] == dns.caller_reference(plan.name, plan.health_check_alarm)
    assert check["CloudWatchAlarmConfiguration"]["MetricName"] == "PrimaryHealthy"

    records = _records(plan)
    assert all(r.get("SetIdentifier") for r in records), "the plain record was replaced"
    by_target = {r["ResourceRecords"][0]["Value"]: r for r in records}
    assert set(by_target) == {plan.dns_primary_target, plan.dns_dr_target}
    primary, dr = by_target[plan.dns_primary_target], by_target[plan.dns_dr_target]
    assert primary["HealthCheckId"] == check["Id"] and "HealthCheckId" not in dr
    routing = plan.dns.routing
    if routing == "failover":
        assert (primary["Failover"], dr["Failover"]) == ("PRIMARY", "SECONDARY")
    elif routing == "latency":
        assert (primary["Region"], dr["Region"]) == (plan.primary_region, plan.dr_region)
    else:
        assert primary["GeoLocation"] == {"ContinentCode": "NA"} and dr["GeoLocation"] == {"CountryCode": "*"}


def test_second_replicate_creates_nothing(built: dict[str, Any]) -> None:
    second = built["second"]
    assert second["ok"] and second["counts"]["created"] == 0 and second["counts"]["updated"] == 0
    assert second["counts"]["drift"] == 0
    assert len(_dns_records(second, "unchanged")) == 3
    assert _health_checks() == built["checks_after_first"]
    assert _records(built["plan"]) == built["records_after_first"]


def _flip_machine(sb: Sandbox, plan: Plan) -> str:
    """A tiny state machine: flip -> check until ALARM -> wait for the health checkers -> verify DNS."""
    states = asl.poll_loop(
        "Flip", "Mark the primary unhealthy", service="dns",
        act=("flip_primary_health", {"region.$": "$.region", "plan.$": "$.plan", "alarm.$": "$.alarm"}),
        check=("check_flipped", {"region.$": "$.region", "alarm.$": "$.alarm"}),
        interval_seconds=10, max_attempts=30, next_state="HealthCheckers", what="health alarm",
    )
    # Route 53 health checkers take up to 90 s (p95) to act on the alarm's state.
    states["HealthCheckers"] = {"Type": "Wait", "Seconds": 90, "Next": "Verify"}
    states["Verify"] = asl.task(
        "Verify DNS", "dns", "verify_dns",
        {"zone_id.$": "$.zone_id", "name.$": "$.name", "record_type.$": "$.record_type", "expected.$": "$.expected"},
        result_path="$.verify", next_state=None,
    )
    definition = asl.substitute(asl.dumps(asl.machine("flip", "Flip", states, 600)), sb.substitutions(plan))
    role = boto3.client("iam").get_role(RoleName=f"pilotlight-{plan.name}-states")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    return sfn.create_state_machine(name=f"pilotlight-{plan.name}-flip-test", definition=definition,
                                    roleArn=role)["stateMachineArn"]


def test_flip_moves_dns_to_the_dr_target_without_route53_calls(built: dict[str, Any]) -> None:
    plan, sb = built["plan"], built["sb"]
    assert plan.dns is not None
    assert _answer(plan) == [plan.dns_primary_target]

    calls: list[str] = []
    recorder = lambda model, **_: calls.append(model.service_model.service_name)  # noqa: E731
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.route53", recorder, unique_id="test-r53-calls")
    try:
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sfn.start_execution(stateMachineArn=_flip_machine(sb, plan), input=json.dumps({
            "region": plan.dr_region, "plan": plan.name, "alarm": plan.health_check_alarm,
            "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
            "record_type": plan.dns.record_type, "expected": plan.dns_dr_target}))["executionArn"]
        result = follow(sfn, arn, poll_seconds=0.02, timeout_seconds=60)
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build.route53", unique_id="test-r53-calls")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["poll"]["state"] == "ALARM"
    # The only Route 53 call is the verification, after the cutover was made in the DR region.
    assert calls == ["route53"]
    assert result.output["verify"] == {"answer": [plan.dns_dr_target], "verified": True, "response_code": "NOERROR"}
    assert _answer(plan) == [plan.dns_dr_target]
    status = boto3.client("route53").get_health_check_status(HealthCheckId=_health_checks()[0]["Id"])
    assert all(o["StatusReport"]["Status"].startswith("Failure") for o in status["HealthCheckObservations"])

    # A second flip is a no-op that reports done at once.
    assert _invoke(plan, {"action": "flip_primary_health", "region": plan.dr_region, "plan": plan.name,
                          "alarm": plan.health_check_alarm}) == {"done": True, "attempt": 0, "state": "ALARM"}

    # Restoring (a drill's end, failback) brings the primary back.
    _invoke(plan, {"action": "restore_primary_health", "region": plan.dr_region, "plan": plan.name})
    _wait_for_answer(plan, plan.dns_primary_target)


def test_scheduled_replicate_never_undoes_a_cutover(built: dict[str, Any]) -> None:
    plan, sb = built["plan"], built["sb"]
    if plan.dns.routing != "failover":
        pytest.skip("the latch does not depend on the routing policy; checked once")
    _invoke(plan, {"action": "flip_primary_health", "region": plan.dr_region, "plan": plan.name,
                   "alarm": plan.health_check_alarm})
    _wait_for_answer(plan, plan.dns_dr_target)
    out = run(sb, plan)
    (drift,) = [r for r in out["drift"] if r["resource"].startswith("health alarm")]
    assert "marked unhealthy" in drift["drift"][0]
    assert _alarm(plan)["StateValue"] == "ALARM" and _answer(plan) == [plan.dns_dr_target]
    _invoke(plan, {"action": "restore_primary_health", "region": plan.dr_region, "plan": plan.name})
    _wait_for_answer(plan, plan.dns_primary_target)


def test_verify_dns_reports_an_unreachable_route53_as_unknown(built: dict[str, Any]) -> None:
    plan, sb = built["plan"], built["sb"]
    if plan.dns.routing != "failover":
        pytest.skip("independent of the routing policy; checked once")
    event = {"action": "verify_dns", "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
             "record_type": "CNAME", "expected": plan.dns_primary_target}

    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://route53.amazonaws.com")

    events = boto3.DEFAULT_SESSION.events
    events.register_first("before-call.route53.TestDNSAnswer", unreachable, unique_id="test-r53-down")
    try:
        out = _invoke(plan, event)
    finally:
        events.unregister("before-call.route53.TestDNSAnswer", unique_id="test-r53-down")
    assert out["verified"] is None and "unreachable" in out["reason"]

    sb.faults.inject("route53", "TestDNSAnswer", "ServiceUnavailable", status=503, times=None)
    try:
        out = _invoke(plan, event)
    finally:
        sb.faults.clear()
    assert out["verified"] is None and "ServiceUnavailable" in out["reason"]
    assert _invoke(plan, event)["verified"] is True


# Pure checks -----------------------------------------------------------------------------------


def test_replicate_has_a_dns_branch_only_in_health_check_mode(reference_plan: Plan) -> None:
    def branches(plan: Plan) -> list[str]:
        definition = json.loads(render.render_all(plan)["replicate"])
        return [b["StartAt"] for b in definition["States"]["Replicate"]["Branches"]]

    assert "EnsureHealthAlarm" not in branches(reference_plan)
    assert branches(load_plan(EXAMPLE))[-1] == "EnsureHealthAlarm"
    doc = json.loads(render.render_all(load_plan(EXAMPLE))["replicate"])["States"]["LoadPlan"]["Parameters"]["plan"]
    assert doc["dns_routing"]["alarm"] == "pilotlight-shop-primary-health"


def test_iam_grants_follow_the_cutover_mode(reference_plan: Plan) -> None:
    def grants(plan: Plan) -> dict[str, dict[str, Any]]:
        out = {}
        for st in plan_iam.statements(plan_iam.registry_for("dns"), plan, account=ACCOUNT):
            for action in st["Action"]:
                out[action] = st
        return out

    hc = grants(load_plan(EXAMPLE))
    alarm_arn = f"arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:pilotlight-shop-primary-health"
    assert hc["cloudwatch:PutMetricAlarm"]["Resource"] == [alarm_arn]
    assert hc["cloudwatch:DescribeAlarms"]["Resource"] == [alarm_arn]
    assert hc["cloudwatch:PutMetricData"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "pilotlight"}}
    assert hc["route53:CreateHealthCheck"]["Resource"] == ["*"] and hc["route53:CreateHealthCheck"]["Condition"]
    assert hc["route53:UpdateHealthCheck"]["Resource"] == ["arn:aws:route53:::healthcheck/*"]
    assert hc["route53:TestDNSAnswer"]["Resource"] == ["*"] and not plan_iam.is_mutating("route53:TestDNSAnswer")
    records = grants(reference_plan)
    for action in ("route53:CreateHealthCheck", "route53:UpdateHealthCheck", "cloudwatch:PutMetricAlarm",
                   "cloudwatch:PutMetricData"):
        assert action not in records, action


@pytest.mark.parametrize("routing", sorted(ROUTINGS))
def test_routing_record_pairs(routing: str) -> None:
    loc = ROUTINGS[routing].get("primary_location")
    primary, dr = dns.routing_records("shop", "app.shop.example.com", "CNAME", 60, routing, "p.example", "d.example",
                                      "hc-1", "us-east-1", "us-west-2", loc)
    assert primary["Name"] == "app.shop.example.com." and primary["HealthCheckId"] == "hc-1"
    assert primary["SetIdentifier"] != dr["SetIdentifier"] and "HealthCheckId" not in dr
    assert {"failover": "Failover", "latency": "Region", "geolocation": "GeoLocation"}[routing] in dr
