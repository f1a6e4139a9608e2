"""The alarm trigger end to end in the sandbox, as deployed: only the primary's metrics move.

An outage publishes breaching data for the metrics of the plan's trigger alarms; each alarm enters
ALARM after its evaluation periods (modeled time), CloudWatch's state-change event is matched by
the rules the sandbox created from ``workflows/triggers.py`` (forwarded from the alarm's region to
the DR region), and EventBridge starts the failover with the event as input. No test here sets an
alarm state to start a failover or hands an event to a state machine. Also: Route 53 failing in
records mode (DnsCutoverFailed), and the failure notices on the plan's topic.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from sandbox import clock
from tests.conftest import outage, run_workflow
from workflows import render
from workflows import triggers as patterns
from workflows.executions import follow
from workflows.plan import Plan, parse_plan

ALARM_PERIOD, ALARM_PERIODS, EVALUATION_DELAY = 60, 3, 60  # the seeded trigger alarms; cloudwatch.alarm_evaluation p50


def _variant(plan: Plan, **changes) -> Plan:
    data = plan.model_dump(exclude_none=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return parse_plan(data)


def _executions(sb, plan: Plan) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    return sfn.list_executions(stateMachineArn=sb.state_machine_arn(plan, "failover"))["executions"]


def _replica_source(plan: Plan) -> str | None:
    db = boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)["DBInstances"][0]
    return db.get("ReadReplicaSourceDBInstanceIdentifier")


def _record_value(plan: Plan) -> str:
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=plan.dns.hosted_zone_id)[
        "ResourceRecordSets"]
    return next(s for s in sets if s["Name"].rstrip(".") == plan.dns.record_name)["ResourceRecords"][0]["Value"]


def _subscribe_queue(sb, plan: Plan) -> str:
    """An SQS queue on the plan's topic (raw delivery): what reaches the topic can be read back."""
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    url = sqs.create_queue(QueueName=f"{plan.name}-notices")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=plan.dr_region).subscribe(
        TopicArn=sb.topic_arn(plan), Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def _notices(plan: Plan, url: str, count: int) -> list[dict]:
    """The failure notices on the queue once ``count`` have arrived, and any more a minute later
    (approval requests on the same topic are skipped)."""
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    seen: list[dict] = []

    def read() -> list[dict]:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if "subject" in body and "status" in body:
                seen.append(body)
        return seen

    clock.wait_until(lambda: len(read()) >= count, timeout=120, step=1, what=f"{count} failure notice(s)")
    clock.sleep(60)
    return read()


# The alarm trigger --------------------------------------------------------------------------------


def test_an_outage_starts_the_failover_by_itself_and_it_succeeds(sandbox, reference_plan):
    plan = _variant(reference_plan, triggers={"failover": "automatic"})
    sandbox.seed(plan)
    sandbox.build_pilot_light(plan)
    notices = _subscribe_queue(sandbox, plan)
    assert _executions(sandbox, plan) == []

    started = sandbox.start_outage(plan)  # the metrics breach; nothing else is touched
    runs = clock.wait_until(lambda: _executions(sandbox, plan), timeout=1800, step=5, what="a failover")

    # Each alarm entered ALARM after three breaching minutes, plus the evaluation delay.
    detected = sandbox.eventbridge.alarm_events(state="ALARM")
    assert sorted((e.region, e.event["detail"]["alarmName"]) for e in detected) == started.alarms == [
        ("us-east-1", "shop-prod-5xx-high"), ("us-east-1", "shop-prod-health-check-failed")]
    assert {e.at - started.started_at for e in detected} == {ALARM_PERIOD * (ALARM_PERIODS - 1) + EVALUATION_DELAY}
    assert started.published == ALARM_PERIODS
    (alarm,) = boto3.client("cloudwatch", region_name="us-east-1").describe_alarms(
        AlarmNames=["shop-prod-5xx-high"])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"].startswith("Threshold Crossed: 3 out of the last 3")
    # The us-east-1 events went to the DR region's bus, where the failover rule of us-east-1 started the runs.
    forwarded = [d for d in sandbox.eventbridge.deliveries if d.rule == patterns.forward_rule_name(plan)]
    assert {(d.region, d.target, d.result) for d in forwarded} == {
        ("us-east-1", patterns.event_bus_arn(plan.dr_region, sandbox.account_id), "forwarded")}
    starts = sandbox.eventbridge.started(sandbox.state_machine_arn(plan, "failover"))
    assert {(d.region, d.rule) for d in starts} == {(plan.dr_region, patterns.failover_rule_name(plan, "us-east-1"))}
    assert sorted(d.result for d in starts) == sorted(r["executionArn"] for r in runs)

    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    results = [follow(sfn, r["executionArn"], poll_seconds=0.05, timeout_seconds=300) for r in runs]
    # One run per alarm: the guard rails keep the oldest, the other stops before acting.
    assert sorted((r.status, r.error) for r in results) == [("FAILED", "AlreadyRunning"), ("SUCCEEDED", None)]
    (won,) = [r for r in results if r.status == "SUCCEEDED"]
    event = json.loads(sfn.describe_execution(executionArn=won.execution_arn)["input"])
    assert (event["source"], event["detail-type"], event["region"]) == (
        "aws.cloudwatch", "CloudWatch Alarm State Change", "us-east-1")
    assert event["detail"]["state"]["value"] == "ALARM" and event["detail"]["previousState"]["value"] == "OK"
    assert event["resources"] == [f"arn:aws:cloudwatch:us-east-1:{sandbox.account_id}:alarm:"
                                  f"{event['detail']['alarmName']}"]
    assert won.output["guard"]["automatic"] is True and won.output["guard"]["primary_health"] == "in_alarm"
    assert _replica_source(plan) is None  # promoted
    assert _record_value(plan) == plan.dns_dr_target
    # The refused duplicate is notified on the plan's topic; the successful run is not.
    assert [(n["status"], n["error"]) for n in _notices(plan, notices, 1)] == [("FAILED", "AlreadyRunning")]


def test_an_alarm_in_the_dr_region_starts_the_failover_without_forwarding(sandbox, reference_plan):
    plan = _variant(reference_plan, triggers={"alarms": [{"name": "shop-dr-canary", "region": "us-west-2"}],
                                              "failover": "automatic"})
    sandbox.seed(plan)  # the trigger alarm, in us-west-2
    sandbox.deploy(plan)
    assert boto3.client("events", region_name="us-east-1").list_rules()["Rules"] == []  # nothing to forward

    sandbox.start_outage(plan)
    (run,) = clock.wait_until(lambda: _executions(sandbox, plan), timeout=1800, step=5, what="a failover")

    (start,) = sandbox.eventbridge.started()
    assert (start.region, start.rule, start.result) == (
        "us-west-2", patterns.failover_rule_name(plan, "us-west-2"), run["executionArn"])
    assert start.event["region"] == "us-west-2" and start.event["detail"]["alarmName"] == "shop-dr-canary"
    assert all(e.forwarded_from is None for e in sandbox.eventbridge.emitted)


def test_another_plans_alarm_or_an_ok_transition_starts_nothing(sandbox, reference_plan):
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    # Another plan's alarm in the primary region, and an alarm named like ours in the DR region.
    others = _variant(plan, name="other", triggers={"alarms": [{"name": "other-5xx-high"},
                                                               {"name": "shop-prod-5xx-high", "region": "us-west-2"}]})
    for region, name, env in (("us-east-1", "other-5xx-high", "other-prod"), ("us-west-2", "shop-prod-5xx-high",
                                                                                "shop-dr")):
        boto3.client("cloudwatch", region_name=region).put_metric_alarm(
            AlarmName=name, Namespace="AWS/ElasticBeanstalk", MetricName="ApplicationRequests5xx",
            Dimensions=[{"Name": "EnvironmentName", "Value": env}], Statistic="Sum", Period=60, EvaluationPeriods=3,
            Threshold=50, ComparisonOperator="GreaterThanThreshold")
    # Our own alarm, from no data to OK (data arrives, healthy).
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    cw.set_alarm_state(AlarmName="shop-prod-5xx-high", StateValue="INSUFFICIENT_DATA", StateReason="no data yet")

    sandbox.start_outage(others)
    cw.put_metric_data(Namespace="AWS/ElasticBeanstalk", MetricData=[{"MetricName": "ApplicationRequests5xx",
                                                                        "Value": 0}])
    clock.sleep(15 * 60)

    seen = {(e.region, e.event["detail"]["alarmName"], e.event["detail"]["state"]["value"])
            for e in sandbox.eventbridge.alarm_events()}
    assert {("us-east-1", "other-5xx-high", "ALARM"), ("us-west-2", "shop-prod-5xx-high", "ALARM"),
            ("us-east-1", "shop-prod-5xx-high", "INSUFFICIENT_DATA"), ("us-east-1", "shop-prod-5xx-high", "OK")} <= seen
    assert not [d for d in sandbox.eventbridge.deliveries if d.target.split(":")[2] != "sns"]
    assert _executions(sandbox, plan) == []


def test_an_alarm_needs_its_evaluation_periods_of_breaching_data(sandbox, reference_plan):
    sandbox.seed(reference_plan)
    cw = boto3.client("cloudwatch", region_name="us-east-1")

    def put(value: float) -> None:
        cw.put_metric_data(Namespace="AWS/ElasticBeanstalk",
                           MetricData=[{"MetricName": "ApplicationRequests5xx", "Value": value}])
        clock.sleep(ALARM_PERIOD)

    def state() -> str:
        return cw.describe_alarms(AlarmNames=["shop-prod-5xx-high"])["MetricAlarms"][0]["StateValue"]

    for value in (500, 500, 0, 500, 500):  # never three breaching periods in a row
        put(value)
        assert state() == "OK"
    put(500)  # the third in a row: ALARM once evaluated
    clock.sleep(EVALUATION_DELAY)
    assert state() == "ALARM"
    assert [e.event["detail"]["state"]["value"] for e in sandbox.eventbridge.alarm_events()
            if e.event["detail"]["alarmName"] == "shop-prod-5xx-high"] == ["ALARM"]


# Route 53 failing in records mode -------------------------------------------------------------


def test_route53_failing_in_records_mode_ends_in_dns_cutover_failed_with_the_manual_step(sandbox, reference_plan):
    plan = reference_plan
    assert plan.dns.cutover == "records"
    outage(sandbox, plan)
    notices = _subscribe_queue(sandbox, plan)
    before = _record_value(plan)
    fault = sandbox.faults.inject("route53", "ChangeResourceRecordSets", "ServiceUnavailable", status=503,
                                  times=None)

    result = run_workflow(sandbox, plan, "failover", timeout=600)

    assert result.status == "FAILED"
    assert (result.error, result.failed_state, result.failed_step) == (
        "DnsCutoverFailed", "DnsCutoverFailed", "Repoint DNS")
    assert fault.hits >= 1
    assert _replica_source(plan) is None  # the database was promoted before DNS was tried
    assert _record_value(plan) == before
    message = json.loads(result.cause)["errorMessage"]
    assert "ServiceUnavailable" in message
    assert (f"MANUAL STEP: set CNAME record {plan.dns.record_name} in hosted zone {plan.dns.hosted_zone_id} to "
            f"{plan.dns_dr_target} (TTL {plan.dns.ttl})") in message
    assert "the database is already promoted: shop-db-dr in us-west-2" in message
    assert "start the failover again" in message
    # The failed run is on the plan's topic with its error and cause.
    (notice,) = _notices(plan, notices, 1)
    assert (notice["execution"], notice["status"], notice["error"]) == (
        result.execution_arn.rsplit(":", 1)[-1], "FAILED", "DnsCutoverFailed")
    assert notice["cause"] == result.cause
    assert notice["state_machine"] == sandbox.state_machine_arn(plan, "failover")


def test_health_check_is_the_default_cutover_and_records_stays_available(reference_plan):
    data = reference_plan.model_dump(exclude_none=True)
    del data["dns"]["cutover"]
    assert parse_plan(data).dns.cutover == "health_check"
    assert reference_plan.dns.cutover == "records"  # said explicitly in examples/reference.yaml


# Failure notices ----------------------------------------------------------------------------------


def test_unsuccessful_runs_are_notified_on_the_topic(sandbox, reference_plan):
    from workflows import failover

    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)  # no outage: the trigger alarms are OK
    url = _subscribe_queue(sandbox, plan)
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)

    refused = run_workflow(sandbox, plan, "failover")
    waiting = sandbox.start(plan, "failover", {"source": "test", "force": True})  # forced; waits for approval
    clock.wait_until(lambda: _approval_requested(sfn, waiting), timeout=60, step=1, what="an approval request")
    clock.advance(failover.APPROVAL_TIMEOUT + 60)  # nobody answers
    # moto 5.2 cannot abort these runs (StopExecution is only noticed when a wait ends, and drops the
    # error and cause): an ABORTED status event, as Step Functions sends it, goes on the DR bus instead.
    aborted = {"version": "0", "id": "1", "detail-type": patterns.EXECUTION_DETAIL_TYPE,
               "source": patterns.EXECUTION_SOURCE, "account": sandbox.account_id, "time": "2026-11-23T03:00:00Z",
               "region": plan.dr_region, "resources": [],
               "detail": {"executionArn": "arn:aws:states:...:execution:x:stopped-1", "name": "stopped-1",
                          "stateMachineArn": sandbox.state_machine_arn(plan, "replicate"), "status": "ABORTED",
                          "error": None, "cause": None}}
    sandbox.eventbridge.put_event(plan.dr_region, aborted)

    got = _notices(plan, url, 3)
    assert sorted((n["execution"], n["status"], n["error"]) for n in got) == sorted([
        (refused.execution_arn.rsplit(":", 1)[-1], "FAILED", "PrimaryHealthy"),
        (waiting.rsplit(":", 1)[-1], "FAILED", "States.Timeout"),
        ("stopped-1", "ABORTED", None)])
    assert all(n["subject"] == f"pilotlight shop: execution {n['execution']} ended {n['status']}" for n in got)
    assert {d.rule for d in sandbox.eventbridge.deliveries} == {patterns.notify_rule_name(plan)}
    assert {d.target for d in sandbox.eventbridge.deliveries} == {
        f"arn:aws:sns:{plan.dr_region}:{sandbox.account_id}:{render.topic_name(plan)}"}


def _approval_requested(sfn, arn: str) -> bool:
    from workflows.executions import pending_approval_token

    return pending_approval_token(sfn, arn) is not None


@pytest.mark.parametrize("cause", ['{"errorMessage": "a \\"quoted\\"\\nmessage"}', None])
def test_the_notice_template_keeps_any_cause_valid_json(reference_plan, cause):
    from sandbox.triggers import transform

    event = {"region": "us-west-2", "time": "2026-11-23T03:00:00Z",
             "detail": {"name": "run-1", "status": "FAILED", "error": "X", "cause": cause,
                        "executionArn": "arn:x", "stateMachineArn": "arn:y"}}
    notice = json.loads(transform(patterns.failure_notification_input(reference_plan), event))
    assert notice["cause"] == cause and notice["error"] == "X" and notice["execution"] == "run-1"


def test_the_demo_is_alarm_driven_and_counts_from_the_outage(tmp_path):
    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["demo", "--pace", "0", "--json", "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # The demo ends with the failover's HTML report, written where it was asked.
    report = Path(doc["report"])
    assert report.is_file() and tmp_path in report.parents and "<svg" in report.read_text()
    detection = ALARM_PERIOD * (ALARM_PERIODS - 1) + EVALUATION_DELAY
    assert (doc["status"], doc["trigger"]) == ("SUCCEEDED", "alarm")
    assert doc["outage"]["detection_seconds"] == doc["outage"]["failover_started_seconds"] == detection
    assert doc["outage"]["approval"]["via"].startswith("pilotlight approve")
    assert [s["step"] for s in doc["timeline"][:3]] == [
        "Outage: primary alarm metrics breaching", "Alarm ALARM (detection)", "Load plan"]
    assert doc["timeline"][2]["start_seconds"] == detection
    rto = doc["rto"]
    assert rto["counted_from"] == "outage start" and rto["met"] is True
    restored = next(s for s in doc["timeline"] if s["step"] == "Service restored")["start_seconds"]
    assert rto["seconds"] == restored > detection + 6 * 60  # detection, then promote/launch and DNS
