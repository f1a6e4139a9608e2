"""The dashboard's custom widget in the DR stack: the widget on the dashboard, its function and asset, and a
role that can start only this plan's drill and drill-teardown state machines and answer only its failover."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ACCOUNT, Template, as_list

from infra import app
from infra import iam as plan_iam
from workflows import render


def _function(dr: Template, plan) -> tuple[str, dict]:
    (found,) = [(lid, r["Properties"]) for lid, r in dr.of_type("AWS::Lambda::Function").items()
                if r["Properties"]["FunctionName"] == render.function_name(plan, "widget")]
    return found


def _statements(dr: Template, role_lid: str) -> list[dict]:
    out = []
    for policy in dr.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_lid} in policy["Properties"]["Roles"]:
            out += dr.resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def _machine(plan, workflow: str) -> str:
    return f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:stateMachine:{render.state_machine_name(plan, workflow)}"


def _grants(dr: Template, plan) -> dict[str, set[str]]:
    """IAM action -> resources the widget's role grants it on."""
    lid, props = _function(dr, plan)
    role = props["Role"]["Fn::GetAtt"][0]
    assert not dr.props(role).get("ManagedPolicyArns")
    grants: dict[str, set[str]] = {}
    for statement in _statements(dr, role):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for action in as_list(statement["Action"]):
            grants.setdefault(action, set()).update(as_list(statement["Resource"]))
    return grants


def test_the_dashboard_shows_the_widget_above_the_metrics(dr, plan):
    (dash,) = dr.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.loads(dr.resolve(dash["Properties"]["DashboardBody"]))
    custom = [w for w in body["widgets"] if w["type"] == "custom"]
    (widget,) = custom
    assert widget["properties"]["endpoint"] == (f"arn:aws:lambda:{plan.dr_region}:{ACCOUNT}:function:"
                                                f"{render.function_name(plan, 'widget')}")
    assert widget["y"] == 0 and widget["width"] == 24
    assert widget["properties"]["updateOn"] == {"refresh": True, "resize": False, "timeRange": False}
    assert all(w["y"] >= widget["height"] for w in body["widgets"] if w is not widget)


def test_the_widget_function_is_configured_with_the_plans_machines(dr, plan):
    from reports.store import bucket_name

    _, props = _function(dr, plan)
    assert props["Handler"] == "lambdas.widget.handler" and props["Runtime"] == "python3.12"
    env = dr.resolve(props["Environment"]["Variables"])
    assert env == {"PILOTLIGHT_PLAN": plan.name, "PILOTLIGHT_REGION": plan.dr_region,
                   "PILOTLIGHT_DRILL_MACHINE_ARN": _machine(plan, "drill"),
                   "PILOTLIGHT_TEARDOWN_MACHINE_ARN": _machine(plan, "drill-teardown"),
                   "PILOTLIGHT_FAILOVER_MACHINE_ARN": _machine(plan, "failover"),
                   "PILOTLIGHT_REPORTS_BUCKET": bucket_name(plan.name, ACCOUNT, plan.dr_region)}


def test_the_widget_role_starts_only_the_plans_drill_and_drill_teardown(dr, plan):
    grants = _grants(dr, plan)
    assert grants["states:StartExecution"] == {_machine(plan, "drill"), _machine(plan, "drill-teardown")}


def test_the_widget_role_answers_task_tokens_of_the_plans_failover_only(dr, plan):
    # The Service Authorization Reference lists no resource type for these actions; Step Functions checks a
    # callback token's answer against the state machine that issued it, so only the failover is named.
    grants = _grants(dr, plan)
    assert grants["states:SendTaskSuccess"] == {_machine(plan, "failover")}
    assert grants["states:SendTaskFailure"] == {_machine(plan, "failover")}


def test_the_widget_role_can_change_nothing_else(dr, plan):
    lid, props = _function(dr, plan)
    grants = _grants(dr, plan)
    mutating = {a for a in grants if plan_iam.is_mutating(a)}
    assert mutating == {"states:StartExecution", "states:SendTaskSuccess", "states:SendTaskFailure",
                        "logs:CreateLogStream", "logs:PutLogEvents"}
    log_group = dr.resolve({"Fn::GetAtt": [props["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]})
    assert grants["logs:CreateLogStream"] == grants["logs:PutLogEvents"] == {log_group}
    # Reads are this plan's too: nothing on '*'.
    assert all("*" not in resources for resources in grants.values())
    executions = {f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:execution:{render.state_machine_name(plan, w)}:*"
                  for w in ("failover", "drill", "drill-teardown")}
    assert grants["states:DescribeExecution"] == grants["states:GetExecutionHistory"] == executions
    assert grants["ssm:GetParameter"] == {f"arn:aws:ssm:{plan.dr_region}:{ACCOUNT}:parameter/pilotlight/"
                                          f"{plan.name}/readiness"}
    (reports,) = grants["s3:GetObject"]
    assert reports.endswith(f"-reports-{ACCOUNT}-{plan.dr_region}/{plan.name}/*")


def test_the_widget_passes_cdk_nag_with_reasons(synthesized):
    assert [e for e in app.nag_errors(synthesized) if "Widget" in e[1]] == []


def test_the_widget_renders_from_its_asset_alone(dr, plan, synthesized):
    """Jinja2 and MarkupSafe are bundled (the Lambda runtime has neither) and work without compiled code."""
    _, props = _function(dr, plan)
    asset = Path(synthesized.out_dir) / f"asset.{dr.resolve(props['Code']['S3Key']).removesuffix('.zip')}"
    assert {"lambdas", "jinja2", "markupsafe"} <= {p.name for p in asset.iterdir()}
    assert not [p for p in asset.rglob("*") if p.suffix in (".so", ".pyd")]
    assert (asset / "lambdas" / "templates" / "widget.html.j2").is_file()
    script = """
import json, jinja2, markupsafe, lambdas.widget as w
view = {"plan": "shop", "region": "us-west-2", "now": "-", "failover": None, "approval": None, "drill": None,
        "running_drill": None, "drills": [], "can_start_drill": True, "why_not": None,
        "readiness": {"found": False, "parameter": "/pilotlight/shop/readiness", "status": "UNKNOWN", "families": []}}
print(json.dumps([jinja2.__file__, markupsafe.__file__, w.__file__,
                  w.render(view, mode="widget", endpoint="arn:aws:lambda:us-west-2:1:function:f")]))
"""
    # The asset first on the path, and as the working directory: what Lambda's /var/task is.
    run = subprocess.run([sys.executable, "-c", script], cwd=asset, env={"PYTHONPATH": str(asset)},
                         capture_output=True, text=True, timeout=60, check=True)
    *files, html = json.loads(run.stdout)
    assert all(Path(f).resolve().is_relative_to(asset.resolve()) for f in files), files
    assert '<cwdb-action action="call" display="widget" endpoint="arn:aws:lambda:us-west-2:1:function:f"' in html
