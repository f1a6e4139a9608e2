"""EventBridge in the synthesized stacks: the alarm trigger and forwarding use the shared pattern
functions, and unsuccessful failover/replicate/readiness executions notify the plan's topic."""

from __future__ import annotations

import json

from conftest import ACCOUNT, Template
from moto.events.models import EventPattern

from sandbox.triggers import target_input
from workflows import render
from workflows import triggers as patterns


def _rules(t: Template) -> dict[str, dict]:
    return {r["Properties"]["Name"]: r["Properties"] for r in t.of_type("AWS::Events::Rule").values()}


def _machine_arn(plan, workflow: str) -> str:
    return f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:stateMachine:{render.state_machine_name(plan, workflow)}"


def _topic_arn(plan) -> str:
    return f"arn:aws:sns:{plan.dr_region}:{ACCOUNT}:{render.topic_name(plan)}"


def _status_event(plan, workflow: str, status: str, **detail) -> dict:
    arn = f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:execution:{render.state_machine_name(plan, workflow)}:run-1"
    return {
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175", "detail-type": patterns.EXECUTION_DETAIL_TYPE,
        "source": patterns.EXECUTION_SOURCE, "account": ACCOUNT, "time": "2026-11-23T03:00:00Z",
        "region": plan.dr_region, "resources": [arn],
        "detail": {"executionArn": arn, "stateMachineArn": _machine_arn(plan, workflow), "name": "run-1",
                   "status": status, "startDate": 1795402800000, "stopDate": 1795403400000, "input": "{}",
                   "inputDetails": {"included": True}, "output": None, "outputDetails": None, **detail},
    }


def _notify_rule(dr: Template, plan) -> dict:
    return _rules(dr)[patterns.notify_rule_name(plan)]


def _matches(rule: dict, event: dict) -> bool:
    return EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(event)


# The shared pattern functions -------------------------------------------------------------------


def test_alarm_rules_are_built_by_the_shared_pattern_functions(synthesized, dr, plan):
    rules = _rules(dr)
    for region, names in patterns.alarm_regions(plan).items():
        rule = rules[patterns.failover_rule_name(plan, region)]
        assert dr.resolve(rule["EventPattern"]) == patterns.alarm_event_pattern(region, names)
    for region, names in patterns.forwarded_regions(plan).items():
        t = Template(synthesized.templates[f"pilotlight-{plan.name}-alarms-{region}"], region)
        (rule,) = _rules(t).values()
        assert rule["Name"] == patterns.forward_rule_name(plan)
        assert t.resolve(rule["EventPattern"]) == patterns.alarm_event_pattern(region, names)
        assert t.resolve(rule["Targets"][0]["Arn"]) == patterns.event_bus_arn(plan.dr_region, ACCOUNT)


# Failure notification ---------------------------------------------------------------------------


def test_unsuccessful_ends_of_failover_replicate_and_readiness_are_notified(dr, plan):
    rule = dr.resolve(_notify_rule(dr, plan))
    assert rule["State"] == "ENABLED"
    workflows = ("failover", "replicate", "readiness", "drill", "drill-teardown", "failback")
    assert rule["EventPattern"] == patterns.execution_status_pattern([_machine_arn(plan, w) for w in workflows])
    for workflow in workflows:
        for status in ("FAILED", "TIMED_OUT", "ABORTED"):
            assert _matches(rule, _status_event(plan, workflow, status)), (workflow, status)
        for status in ("SUCCEEDED", "RUNNING"):
            assert not _matches(rule, _status_event(plan, workflow, status)), (workflow, status)
    other = _status_event(plan, "failover", "FAILED")
    other["detail"]["stateMachineArn"] = f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:stateMachine:someone-else"
    assert not _matches(rule, other)


def test_the_notice_names_the_execution_status_error_and_cause(dr, plan):
    (target,) = dr.resolve(_notify_rule(dr, plan))["Targets"]
    assert target["Arn"] == _topic_arn(plan)
    # SNS authorizes EventBridge by the topic policy; a RoleArn would break delivery to an encrypted topic.
    assert "RoleArn" not in target
    assert target["InputTransformer"] == patterns.failure_notification_input(plan)
    cause = '{"errorType":"DnsCutoverFailed","errorMessage":"set \\"app\\" by hand\\nnow"}'
    failed = _status_event(plan, "failover", "FAILED", error="DnsCutoverFailed", cause=cause)
    notice = json.loads(target_input(target, failed))  # a cause full of quotes keeps the notice valid JSON
    assert notice["subject"] == f"pilotlight {plan.name}: execution run-1 ended FAILED"
    assert (notice["execution"], notice["status"], notice["error"], notice["cause"]) == (
        "run-1", "FAILED", "DnsCutoverFailed", cause)
    assert notice["execution_arn"] == failed["detail"]["executionArn"]
    assert notice["state_machine"] == _machine_arn(plan, "failover")
    timed_out = json.loads(target_input(target, _status_event(plan, "replicate", "TIMED_OUT", error=None, cause=None)))
    assert (timed_out["status"], timed_out["error"], timed_out["cause"]) == ("TIMED_OUT", None, None)


def test_only_that_rule_may_publish_to_the_topic_and_use_its_key(dr, plan):
    rule_arn = patterns.rule_arn(plan.dr_region, ACCOUNT, patterns.notify_rule_name(plan))
    ((_, policy),) = dr.of_type("AWS::SNS::TopicPolicy").items()
    statements = dr.resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    from_events = [s for s in statements if s["Effect"] == "Allow" and s.get("Principal") == {
        "Service": "events.amazonaws.com"}]
    assert from_events == [{"Sid": "FailureNoticesFromEventBridge", "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish",
                            "Resource": _topic_arn(plan), "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]
    assert all(s.get("Condition") for s in statements if s["Effect"] == "Allow")  # nothing else opened up
    ((_, key),) = dr.of_type("AWS::KMS::Key").items()
    grants = [s for s in dr.resolve(key["Properties"]["KeyPolicy"]["Statement"])
              if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert grants == [{"Sid": "FailureNoticesFromEventBridge", "Effect": "Allow",
                       "Principal": {"Service": "events.amazonaws.com"},
                       "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*",
                       "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn},
                                     "StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": _topic_arn(plan)}}}]


def test_cdk_nag_has_nothing_to_say_about_the_events_resources(synthesized):
    mine = ("/Dr/FailureNotification", "/Dr/Notifications", "/Dr/Key", "/Dr/AlarmTrigger", "/Alarms")
    findings = [e for e in synthesized.errors + synthesized.warnings if e[1].startswith(mine)]
    assert findings == []


def test_every_end_of_a_drill_starts_its_teardown_with_the_event(dr, plan):
    (rule,) = [r["Properties"] for r in dr.of_type("AWS::Events::Rule").values()
               if r["Properties"].get("Name") == patterns.drill_teardown_rule_name(plan)]
    rule = dr.resolve(rule)
    assert rule["EventPattern"] == patterns.drill_end_pattern(_machine_arn(plan, "drill"))
    for status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
        assert _matches(rule, _status_event(plan, "drill", status)), status
    assert not _matches(rule, _status_event(plan, "drill", "RUNNING"))
    assert not _matches(rule, _status_event(plan, "failover", "ABORTED"))
    (target,) = rule["Targets"]
    assert target["Arn"] == _machine_arn(plan, "drill-teardown")
    assert "Input" not in target and "InputTransformer" not in target  # the event itself is the input
