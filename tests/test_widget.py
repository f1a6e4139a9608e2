"""The CloudWatch dashboard custom widget (lambdas/widget.py), invoked as the dashboard invokes it.

In the sandbox the widget is a Lambda function like the plan's others: served in-process by its real handler,
every AWS call it makes checked against the very statements its role gets in the DR stack (infra/iam.py). The
events are the documented ones: a refresh carries the widget's ``widgetContext``; a button's ``<cwdb-action>``
carries its JSON plus the ``widgetContext``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import iam as plan_iam
from lambdas import widget
from sandbox import Sandbox, clock
from tests.conftest import REFERENCE
from workflows import render
from workflows.plan import Plan, load_plan

# The widgetContext every call carries (Amazon CloudWatch User Guide, "Details about custom widgets").
WIDGET_CONTEXT = {
    "dashboardName": "pilotlight-shop",
    "widgetId": "widget-16",
    "accountId": "123456789012",
    "locale": "en",
    "timezone": {"label": "UTC", "offsetISO": "+00:00", "offsetInMinutes": 0},
    "period": 300,
    "isAutoPeriod": True,
    "timeRange": {"mode": "relative", "start": 1627236199729, "end": 1627322599729, "relativeStart": 86400012,
                  "zoom": {"start": 1627276030434, "end": 1627282956521}},
    "theme": "light",
    "linkCharts": True,
    "title": "pilotlight shop: readiness, drills, failover",
    "forms": {"all": {}},
    "params": {},
    "width": 588,
    "height": 369,
}
ALARM_EVENT = {
    "version": "0", "id": "1", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
    "account": "123456789012", "region": "us-east-1",
    "detail": {"alarmName": "shop-prod-5xx-high", "state": {"value": "ALARM"}},
}


class Estate:
    def __init__(self, sb: Sandbox, plan: Plan) -> None:
        self.sb, self.plan = sb, plan
        self.function = render.function_name(plan, "widget")
        self.arn = f"arn:aws:lambda:{plan.dr_region}:{sb.account_id}:function:{self.function}"
        self.sfn = boto3.client("stepfunctions", region_name=plan.dr_region)

    def machine(self, workflow: str) -> str:
        return self.sb.state_machine_arn(self.plan, workflow)

    def call(self, **event: Any) -> str:
        """Invoke the widget through the Lambda API, as the dashboard does; the HTML it returns."""
        answer = boto3.client("lambda", region_name=self.plan.dr_region).invoke(
            FunctionName=self.function, Payload=json.dumps({**event, "widgetContext": WIDGET_CONTEXT}))
        payload = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, payload
        return payload

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=self.machine(workflow))["executions"]

    def a_drill(self) -> dict[str, Any]:
        """The newest drill of the plan, run to its end first when there is none (tests stay independent)."""
        if not self.executions("drill"):
            from commands.drill import drill_input

            arn = self.sb.start(self.plan, "drill", drill_input("test", keep=True, harden=False, force=False))
            assert self.wait_ended(arn) == "SUCCEEDED"
        return self.executions("drill")[0]

    def wait_ended(self, arn: str, modeled: float = 6 * 3600) -> str:
        clock.wait_until(lambda: self.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING",
                         timeout=modeled, step=30, what=arn)
        return self.sfn.describe_execution(executionArn=arn)["status"]


@pytest.fixture(scope="module")
def estate() -> Iterator[Estate]:
    """The reference plan deployed with its pilot light built, and its widget function as the DR stack has it."""
    plan = load_plan(REFERENCE)
    with Sandbox() as sb, pytest.MonkeyPatch.context() as env:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        found = Estate(sb, plan)
        sb.lambdas.register(found.function, "widget")
        sb.iam.attach(found.function, plan_iam.statements(plan_iam.registry_for("widget"), plan,
                                                          account=sb.account_id))
        # What the DR stack sets (infra/stacks.py DrStack._widget); no reports bucket in the sandbox.
        for key, value in {"PILOTLIGHT_PLAN": plan.name, "PILOTLIGHT_REGION": plan.dr_region,
                           "PILOTLIGHT_DRILL_MACHINE_ARN": found.machine("drill"),
                           "PILOTLIGHT_TEARDOWN_MACHINE_ARN": found.machine("drill-teardown"),
                           "PILOTLIGHT_FAILOVER_MACHINE_ARN": found.machine("failover")}.items():
            env.setenv(key, value)
        yield found
        assert [d for d in sb.iam.denials if d["function"] == found.function] == []


def _actions(html: str) -> list[dict[str, Any]]:
    """The <cwdb-action> elements of the page: their attributes and JSON payload."""
    out = []
    for attrs, body in re.findall(r"<cwdb-action([^>]*)>(.*?)</cwdb-action>", html, re.S):
        out.append({**dict(re.findall(r'(\w+)="([^"]*)"', attrs)), "payload": json.loads(body)})
    return out


def test_describe_returns_the_widgets_documentation() -> None:
    doc = widget.handler({"describe": True})
    assert doc.startswith("## pilotlight")
    assert "lambda:InvokeFunction" in doc


def test_text_from_aws_and_the_plan_is_escaped_in_the_page() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    check = {"check": "dr-replica", "resource": hostile, "status": "NOT_READY", "reason": hostile}
    view = {"plan": "shop", "region": "us-west-2", "now": "-", "failover": None, "approval": None, "drill": None,
            "running_drill": None, "drills": [], "can_start_drill": False, "why_not": hostile,
            "readiness": {"found": True, "parameter": "/pilotlight/shop/readiness", "status": "NOT_READY",
                          "score_percent": 50, "ready": 1, "total": 2, "at": "-", "truncated": False,
                          "families": [{"family": "Databases", "checks": [check]}]}}
    for mode in ("widget", "console"):
        html = widget.render(view, mode=mode, token="t")
        assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_refresh_shows_the_plan_and_a_start_drill_button_that_calls_the_widget(estate: Estate) -> None:
    html = estate.call()
    assert 'id="pl-readiness"' in html and 'id="pl-drills"' not in html  # no drill has run yet
    assert "<script" not in html.lower()  # CloudWatch strips scripts: nothing may depend on one
    (start,) = _actions(html)
    assert start["action"] == "call" and start["endpoint"] == estate.arn and start["display"] == "widget"
    assert start["payload"] == {"action": "start_drill"}
    assert start["confirmation"].startswith("Start a drill of shop?")
    assert '<a class="btn btn-primary" id="pl-start-drill">Start drill</a>' in html


def test_the_start_drill_button_starts_one_drill_of_the_plan_and_shows_it(estate: Estate) -> None:
    html = estate.call(action="start_drill")

    (drill,) = estate.executions("drill")
    started = estate.sfn.describe_execution(executionArn=drill["executionArn"])
    assert json.loads(started["input"]) == {"source": "cloudwatch-dashboard", "keep": False, "harden": True,
                                            "force": False, "requested_by": "CloudWatch dashboard pilotlight-shop"}
    assert f"Started drill {drill['name']}" in html
    assert 'id="pl-no-drill"' in html and not any(a["payload"] == {"action": "start_drill"} for a in _actions(html))

    # A second click while it runs starts nothing.
    again = estate.call(action="start_drill")
    assert "is running" in again and len(estate.executions("drill")) == 1

    assert estate.wait_ended(drill["executionArn"]) == "SUCCEEDED"
    (teardown,) = estate.executions("drill-teardown")  # EventBridge starts it when the drill ends
    assert estate.wait_ended(teardown["executionArn"]) == "SUCCEEDED"
    shown = estate.call()
    assert re.search(r'<span class="pl-status SUCCEEDED" id="pl-drill-status">SUCCEEDED</span>', shown)
    assert re.search(r'RTO <span id="pl-drill-rto">\d+m\d\ds</span>', shown)
    # No reports bucket here: the report link is the execution in the Step Functions console.
    assert widget.console_url(estate.plan.dr_region, drill["executionArn"]).replace("&", "&amp;") in shown
    assert _actions(shown)[0]["payload"] == {"action": "start_drill"}


def test_clean_up_starts_the_teardown_of_that_drill_only(estate: Estate) -> None:
    before = len(estate.executions("drill-teardown"))
    refused = estate.call(action="clean_up", drill_id="../../etc")
    assert "is not a drill id" in refused and len(estate.executions("drill-teardown")) == before

    drill = estate.a_drill()
    drill_id = widget.names.drill_id(drill["executionArn"], drill["startDate"])
    html = estate.call(action="clean_up", drill_id=drill_id)

    assert f"Started the clean-up of drill {drill_id}" in html
    newest = estate.executions("drill-teardown")[0]
    assert json.loads(estate.sfn.describe_execution(executionArn=newest["executionArn"])["input"]) == {
        "source": "cloudwatch-dashboard", "drill_id": drill_id}
    assert estate.wait_ended(newest["executionArn"]) == "SUCCEEDED"


def test_approve_and_abort_answer_only_the_plans_failover_waiting_for_approval(estate: Estate) -> None:
    sb, plan = estate.sb, estate.plan
    sb.simulate_disaster(plan)
    arn = sb.start(plan, "failover", ALARM_EVENT)
    deadline = time.monotonic() + 30
    while 'id="pl-approve"' not in (html := estate.call()):
        assert time.monotonic() < deadline, "the failover never asked for approval"
        time.sleep(0.1)
    answers = {a["payload"]["action"]: a for a in _actions(html) if a["payload"]["action"] in ("approve", "abort")}
    assert answers["approve"]["payload"] == {"action": "approve", "execution_arn": arn}
    assert answers["abort"]["payload"] == {"action": "abort", "execution_arn": arn}
    assert "Traffic moves to the DR region" in answers["approve"]["confirmation"]

    # A payload naming anything but the plan's failover answers nothing.
    drill = estate.a_drill()["executionArn"]
    forged = estate.call(action="approve", execution_arn=drill)
    assert "is not an execution of the failover of shop" in forged
    assert estate.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"

    aborted = estate.call(action="abort", execution_arn=arn)

    assert f"Aborted failover {arn.rsplit(':', 1)[-1]}" in aborted
    assert estate.wait_ended(arn) == "FAILED"
    assert estate.sfn.describe_execution(executionArn=arn)["error"] == "Aborted"
    replica = boto3.client("rds", region_name=plan.dr_region).describe_db_instances(
        DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)["DBInstances"][0]
    assert replica.get("ReadReplicaSourceDBInstanceIdentifier")  # nothing acted
    assert "not waiting for approval" in estate.call(action="approve", execution_arn=arn)
