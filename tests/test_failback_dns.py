"""The failback's DNS step (workflows/failback_dns.py), run by moto's ASL interpreter after a real failover.

Each example plan fails over in a sandbox; then the primary region answers again and the states built by
``dns_back_states`` run inside a small state machine (the plan document, the states, Succeed). Assertions go
through Route 53's and CloudWatch's APIs: a simple record UPSERTed back, the health_check cutover's alarm OK and
DNS answering with the primary, a weighted record pair returned in steps (10, 50, 100) or backed off on an alarm.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas import dns_failback, dns_routing
from lambdas.errors import ResourceNotFound
from sandbox import Sandbox, clock
from tests.conftest import ROOT, outage, run_workflow
from workflows import asl, render
from workflows.executions import Result, follow
from workflows.failback_dns import BACKED_OFF, STEP, dns_back_states, weight_steps
from workflows.failover import plan_document
from workflows.plan import Plan, load_plan, parse_plan

EXAMPLES = ROOT / "examples"


def _machine(sb: Sandbox, plan: Plan, name: str = "test", **kwargs: Any) -> str:
    """A state machine: the failback's input ($.plan with dns.primary_target), the DNS states, Succeed."""
    doc = plan_document(plan)
    doc["dns"]["primary_target"] = plan.dns_primary_target  # what the failback workflow adds
    states: dict[str, asl.State] = {
        "LoadPlan": {"Type": "Pass", "Result": doc, "ResultPath": "$.plan", "Next": "ReturnDns"},
        **dns_back_states(plan, "ReturnDns", "Returned", **kwargs),
        "Returned": {"Type": "Succeed"},
    }
    definition = asl.substitute(asl.dumps(asl.machine("failback dns", "LoadPlan", states, 3600)),
                                sb.substitutions(plan))
    role = boto3.client("iam").get_role(RoleName=f"pilotlight-{plan.name}-states")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    return sfn.create_state_machine(name=f"pilotlight-{plan.name}-failback-dns-{name}", definition=definition,
                                    roleArn=role)["stateMachineArn"]


def _run(plan: Plan, machine: str) -> Result:
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    arn = sfn.start_execution(stateMachineArn=machine, name=f"failback-dns-{uuid.uuid4().hex[:12]}",
                              input="{}")["executionArn"]
    return follow(sfn, arn, poll_seconds=0.05, timeout_seconds=120)


def _failed_over(sb: Sandbox, plan: Plan) -> None:
    """Replicate, an outage, the failover; then the primary region is back (its endpoints answer)."""
    outage(sb, plan)
    result = run_workflow(sb, plan, "failover")
    assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
    assert _answer(plan) == [plan.dns_dr_target]
    sb.down_regions.discard(plan.primary_region)


def _answer(plan: Plan) -> list[str]:
    assert plan.dns is not None
    return boto3.client("route53").test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id,
                                                   RecordName=plan.dns.record_name,
                                                   RecordType=plan.dns.record_type)["RecordData"]


def _sets(plan: Plan) -> list[dict[str, Any]]:
    assert plan.dns is not None
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)
    return [r for r in sets["ResourceRecordSets"] if r["Name"] == plan.dns.record_name + "."]


def _weights(plan: Plan) -> tuple[int, int]:
    pair = dns_routing.by_side(plan.name, _sets(plan))
    return pair["primary"]["Weight"], pair["dr"]["Weight"]


def _entered(result: Result) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in result.events if e["type"].endswith("StateEntered")]


def _invoke(plan: Plan, event: dict[str, Any]) -> dict[str, Any]:
    out = boto3.client("lambda", region_name=plan.dr_region).invoke(
        FunctionName=render.function_name(plan, "dns"), Payload=json.dumps(event).encode())
    payload = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, payload
    return payload


def test_a_simple_record_is_upserted_back_to_the_primary() -> None:
    plan = load_plan(EXAMPLES / "reference.yaml")
    with Sandbox() as sb:
        _failed_over(sb, plan)
        machine = _machine(sb, plan)
        result = _run(plan, machine)
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        (record,) = _sets(plan)
        assert record["ResourceRecords"] == [{"Value": plan.dns_primary_target}]
        assert _answer(plan) == [plan.dns_primary_target]
        back = result.output["dns_back"]
        assert (back["mode"], back["routing"], back["target"]) == ("records", "simple", plan.dns_primary_target)
        assert back["change_id"] and back["returned_at"]
        assert "ReturnDnsRecordCheck" in _entered(result)  # waited for INSYNC
        # A re-run finds the record back: no change, no wait.
        again = _run(plan, machine)
        assert again.status == "SUCCEEDED" and again.output["dns_back"]["change_id"] is None
        assert "ReturnDnsRecordCheck" not in _entered(again)


def test_health_check_cutover_restores_the_primary_health_and_dns_follows() -> None:
    plan = load_plan(EXAMPLES / "health-check.yaml")
    with Sandbox() as sb:
        _failed_over(sb, plan)
        calls: list[str] = []
        recorder: Callable[..., None] = lambda model, **_: calls.append(model.name)  # noqa: E731
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build.route53", recorder, unique_id="test-failback-r53")
        try:
            result = _run(plan, _machine(sb, plan))
            assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
            back = result.output["dns_back"]
            assert back["alarm"] == {"name": plan.health_check_alarm, "state": "OK"}
            assert (back["mode"], back["routing"]) == ("health_check", "failover") and "answer" not in back
            assert calls == []  # data plane only: no Route 53 call (no endpoint check to wait for)
            clock.wait_until(lambda: _answer(plan) == [plan.dns_primary_target], timeout=300, step=5,
                             what="DNS answering with the primary")
            # With an endpoint check on the primary's record (a calculated check: the alarm's and the endpoint's),
            # the states also wait for Route 53 to answer with the primary; here a re-run finds the alarm OK at once.
            data = plan.model_dump(exclude_none=True)
            data["dns"]["endpoint_check"] = {"path": "/health"}
            calls.clear()
            again = _run(plan, _machine(sb, parse_plan(data), name="endpoint"))
        finally:
            events.unregister("before-parameter-build.route53", unique_id="test-failback-r53")
        assert again.status == "SUCCEEDED", (again.failed_step, again.error, again.cause)
        assert again.output["dns_back"]["answer"] == [plan.dns_primary_target]
        assert set(calls) == {"TestDNSAnswer"}
        assert "ReturnDnsAlarmWait" not in _entered(again)  # the alarm was OK at the first read


@pytest.fixture(scope="module")
def ecommerce() -> Any:
    plan = load_plan(EXAMPLES / "ecommerce.yaml")
    with Sandbox() as sb:
        _failed_over(sb, plan)
        assert _weights(plan) == (0, 50)
        with sb.eventbridge.quiet():  # the primary is healthy again: its trigger alarms are OK
            for alarm in plan.triggers.alarms:
                boto3.client("cloudwatch", region_name=alarm.region or plan.primary_region).set_alarm_state(
                    AlarmName=alarm.name, StateValue="OK", StateReason="test: the primary recovered")
        yield sb, plan, _machine(sb, plan)


def test_weighted_records_return_in_steps(ecommerce: Any) -> None:
    sb, plan, machine = ecommerce
    changes: list[tuple[int, int]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        weights = {c["ResourceRecordSet"]["SetIdentifier"]: c["ResourceRecordSet"].get("Weight")
                   for c in params["ChangeBatch"]["Changes"]}
        changes.append((weights.get(dns_routing.set_identifier(plan.name, "primary")),
                        weights.get(dns_routing.set_identifier(plan.name, "dr"))))

    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.route53.ChangeResourceRecordSets", record, unique_id="test-weights")
    try:
        result = _run(plan, machine)
    finally:
        events.unregister("before-parameter-build.route53.ChangeResourceRecordSets", unique_id="test-weights")
    assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
    assert changes == [(10, 90), (50, 50)]  # the last step (the plan's 50/50) finds the weights so
    assert _weights(plan) == (50, 50)
    entered = _entered(result)
    steps = [n for n in entered if n in ("ReturnDnsStep10", "ReturnDnsStep50", "ReturnDnsStep100")]
    assert steps == ["ReturnDnsStep10", "ReturnDnsStep50", "ReturnDnsStep100"]
    watches = [i for i, n in enumerate(entered) if n.endswith("Watch")]
    assert len(watches) == 3 and all(entered.index(s) < w for s, w in zip(steps, watches, strict=True))
    back = result.output["dns_back"]
    assert [(s["percent"], s["weights"], s["skipped"]) for s in back["steps"]] == [
        (10, {"primary": 10, "dr": 90}, False), (50, {"primary": 50, "dr": 50}, False),
        (100, {"primary": 50, "dr": 50}, False)]
    assert all(a["state"] == "OK" for s in back["steps"] for a in s["alarms"])
    primary_check = dns_routing.by_side(plan.name, _sets(plan))["primary"]["HealthCheckId"]
    observed = boto3.client("route53").get_health_check_status(HealthCheckId=primary_check)["HealthCheckObservations"]
    assert all(o["StatusReport"]["Status"].startswith("Success") for o in observed)  # the primary answers again
    # A re-run converges: no change; the 10% step is skipped (the primary has more), the steps at the current
    # weights soak and watch again (a run stopped in a step's soak resumes there).
    again = _run(plan, machine)
    assert again.status == "SUCCEEDED" and _weights(plan) == (50, 50)
    assert [(s["skipped"], s["change_id"]) for s in again.output["dns_back"]["steps"]] == [
        (True, None), (False, None), (False, None)]
    assert all(e.get("stateEnteredEventDetails", {}).get("name", "").startswith(("LoadPlan", "ReturnDns", "Returned"))
               for e in result.events if e["type"].endswith("StateEntered"))


def test_weighted_failback_backs_off_on_an_alarm_between_steps(ecommerce: Any) -> None:
    sb, plan, machine = ecommerce
    _invoke(plan, {"action": "evacuate_records", "plan": plan.name, "zone_id": plan.dns.hosted_zone_id,
                   "name": plan.dns.record_name, "record_type": plan.dns.record_type, "routing": "weighted"})
    assert _weights(plan)[0] == 0
    alarm = plan.triggers.alarms[0]
    region = alarm.region or plan.primary_region

    def alarm_at_half(params: dict[str, Any], **_: Any) -> None:
        """The primary starts failing once it has half the traffic: its alarm goes off during the soak."""
        for change in params["ChangeBatch"]["Changes"]:
            rrset = change["ResourceRecordSet"]
            if rrset.get("SetIdentifier") == dns_routing.set_identifier(plan.name, "primary") and \
                    rrset.get("Weight") == 50:
                with sb.eventbridge.quiet():
                    sb.dns.note(region, alarm.name, clock.now() + 10, "ALARM", "test: 5XX errors at 50%")

    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.route53.ChangeResourceRecordSets", alarm_at_half, unique_id="test-alarm")
    try:
        result = _run(plan, machine)
    finally:
        events.unregister("before-parameter-build.route53.ChangeResourceRecordSets", unique_id="test-alarm")
    assert (result.status, result.error) == ("FAILED", BACKED_OFF), (result.failed_step, result.cause)
    assert alarm.name in result.cause and "50% of the traffic" in result.cause and "step 2 of 3" in result.cause
    assert _weights(plan)[0] == 0
    assert _answer(plan) == [plan.dns_dr_target]
    entered = _entered(result)
    assert "ReturnDnsStep100" not in entered and "ReturnDnsBackOffCheck" in entered  # waited INSYNC


# Pure checks -----------------------------------------------------------------------------------


def test_steps_end_at_the_plans_weights() -> None:
    shares = parse_plan({**load_plan(EXAMPLES / "ecommerce.yaml").model_dump(exclude_none=True)})
    assert [(s["primary"], s["dr"]) for s in weight_steps(shares)] == [(10, 90), (50, 50), (50, 50)]
    data = shares.model_dump(exclude_none=True)
    del data["dns"]["weights"]  # the default: the primary takes every answer
    plan = parse_plan(data)
    assert [(s["primary"], s["dr"], s["final"]) for s in weight_steps(plan, (25, 100))] == [
        (25, 75, False), (100, 0, True)]
    for bad in ((), (50, 10, 100), (10, 50), (0, 100), (10, 10, 100)):
        with pytest.raises(ValueError):
            weight_steps(plan, bad)


@pytest.mark.parametrize("example", ["reference", "health-check", "ecommerce", "fastest-region", "second"])
def test_every_state_is_labelled_and_reaches_the_next_state(example: str) -> None:
    plan = load_plan(EXAMPLES / f"{example}.yaml")
    states = dns_back_states(plan, "Back", "After")
    assert all(name.startswith("Back") for name in states)
    assert all(s.get("Comment") == STEP for s in states.values())
    targets = {s.get("Next") for s in states.values()} | {s.get("Default") for s in states.values()}
    targets |= {c["Next"] for s in states.values() for c in s.get("Choices", [])}
    assert "After" in targets and targets - {None, "After"} <= set(states)
    ends = [n for n, s in states.items() if s["Type"] == "Fail"]
    assert all(states[n].get("Error") in ("WaitTimedOut", BACKED_OFF) for n in ends)


@pytest.fixture
def zone() -> Any:
    """moto's Route 53 alone (no sandbox): a hosted zone for the pure record checks."""
    with mock_aws():
        r53 = boto3.client("route53", region_name="us-east-1")
        yield r53, r53.create_hosted_zone(Name="example.com", CallerReference="test")["HostedZone"]["Id"]


ENDPOINT = {"protocol": "HTTPS", "port": 443, "path": "/health", "request_interval": 30, "failure_threshold": 3}


@pytest.mark.parametrize("routing", ["latency", "geolocation"])
def test_restore_records_reverses_the_evacuation(zone: Any, routing: str) -> None:
    r53, zone_id = zone
    checks = {side: dns_routing.ensure_endpoint(r53, "shop", side, target, ENDPOINT)["id"]
              for side, target in (("primary", "p.example.com"), ("dr", "d.example.com"))}
    pair = dns_routing.routing_records("shop", "app.example.com", "CNAME", 60, routing, "p.example.com",
                                       "d.example.com", checks["primary"], "us-east-1", "us-west-2",
                                       {"continent_code": "NA"}, dr_health_check_id=checks["dr"])
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in pair]})
    changes, _ = dns_routing.evacuation("shop", pair, routing)
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    args = ("shop", zone_id, "app.example.com", "CNAME", routing, "p.example.com")
    out = dns_failback.restore_records(*args, endpoint=ENDPOINT)
    assert out["done"] is False and out["change_id"] and "to p.example.com" in out["value"]
    sets = dns_routing.record_sets(r53, zone_id, "app.example.com", "CNAME")
    assert {dns_routing.canonical(s) for s in sets} == {dns_routing.canonical(r) for r in pair}
    assert dns_failback.restore_records(*args, endpoint=ENDPOINT)["change_id"] is None  # a re-run: done
    with pytest.raises(ResourceNotFound, match="run replicate"):  # the endpoint check must exist
        dns_failback.restore_records(*args, endpoint={**ENDPOINT, "request_interval": 10})


def test_a_step_never_lowers_the_primary_share_unless_it_is_the_last(zone: Any) -> None:
    r53, zone_id = zone
    pair = dns_routing.routing_records("shop", "app.example.com", "CNAME", 60, "weighted", "p.example.com",
                                       "d.example.com", None, "us-east-1", "us-west-2",
                                       weights={"primary": 0, "dr": 50})
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in pair]})
    args = ("shop", zone_id, "app.example.com", "CNAME")

    def weights() -> tuple[int, int]:
        found = dns_routing.by_side("shop", dns_routing.record_sets(r53, zone_id, "app.example.com", "CNAME"))
        return found["primary"]["Weight"], found["dr"]["Weight"]

    step = dns_failback.set_weights(*args, primary=50, dr=50)
    assert (step["done"], step["ahead"], weights()) == (False, False, (50, 50))
    assert dns_failback.set_weights(*args, primary=50, dr=50)["change_id"] is None  # already so
    behind = dns_failback.set_weights(*args, primary=10, dr=90)  # a resumed ramp: the primary keeps its share
    assert (behind["done"], behind["ahead"], behind["change_id"], weights()) == (True, True, None, (50, 50))
    final = dns_failback.set_weights(*args, primary=1, dr=3, final=True)  # the plan's weights, whatever they are
    assert (final["done"], weights()) == (False, (1, 3))
    assert dns_failback.share(10, 90) == 10 and dns_failback.share(0, 0) == 0
