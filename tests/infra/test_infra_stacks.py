"""The DR stack deploys exactly what render prints, wires the triggers, and scopes IAM to the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ACCOUNT, Template, as_list, function_role_statements, lambda_functions
from moto.events.models import EventPattern

from infra import iam as plan_iam
from infra import vpc
from infra.stacks import alarm_regions, forwarder_stack_name
from workflows import asl, render


def _machines(dr: Template) -> dict[str, dict]:
    return {
        p["StateMachineName"]: p
        for p in (r["Properties"] for r in dr.of_type("AWS::StepFunctions::StateMachine").values())
    }


def _function_arn(plan, service: str) -> str:
    return f"arn:aws:lambda:{plan.dr_region}:{ACCOUNT}:function:{render.function_name(plan, service)}"


# State machines -----------------------------------------------------------------------------


def test_every_rendered_workflow_is_deployed_as_one_state_machine(dr, plan):
    assert set(_machines(dr)) == {render.state_machine_name(plan, w) for w in render.workflows_of(plan)}


@pytest.mark.parametrize("workflow", sorted(render.BUILDERS))
def test_state_machine_definition_is_the_rendered_asl_byte_for_byte(dr, plan, workflow):
    text = render.render_all(plan)[workflow]
    machine = _machines(dr)[render.state_machine_name(plan, workflow)]
    deployed = dr.resolve(machine["DefinitionString"])
    # The committed rendering without its indentation: the same document, byte for byte in its compact form.
    assert deployed == asl.compact(text) and json.loads(deployed) == json.loads(text)


@pytest.mark.parametrize("workflow", sorted(render.BUILDERS))
def test_after_substitution_tasks_call_the_plan_functions(dr, plan, workflow):
    text = render.render_all(plan)[workflow]
    machine = _machines(dr)[render.state_machine_name(plan, workflow)]
    substitutions = dr.resolve(machine["DefinitionSubstitutions"])
    # What CloudFormation runs: the definition with the substitutions applied.
    deployed = asl.substitute(dr.resolve(machine["DefinitionString"]), substitutions)
    services = asl.services_called(json.loads(text))
    assert services <= render.services_used(plan)
    subs = {asl.function_key(s): _function_arn(plan, s) for s in services}
    if asl.NOTIFICATION_TOPIC_KEY in asl.placeholders(json.loads(text)):
        subs[asl.NOTIFICATION_TOPIC_KEY] = substitutions[asl.NOTIFICATION_TOPIC_KEY]
        assert substitutions[asl.NOTIFICATION_TOPIC_KEY].startswith("arn:aws:sns:us-west-2:")
    expected = asl.substitute(asl.compact(text), subs)
    assert deployed == expected
    assert "${" not in deployed
    called = set()
    for _, s in asl.iter_states(json.loads(deployed)["States"]):
        if s["Type"] == "Task":
            called.add(
                s["Parameters"]["FunctionName"] if s["Resource"].startswith("arn:aws:states:::") else s["Resource"]
            )
    assert called == {_function_arn(plan, s) for s in services}


def test_state_machines_log_all_events_and_trace_with_xray(dr):
    for props in _machines(dr).values():
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["LoggingConfiguration"]["Destinations"]


def test_state_machine_role_invokes_only_its_functions_unqualified(dr, plan):
    for res in dr.of_type("AWS::IAM::Policy").values():
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            if "lambda:InvokeFunction" in as_list(st["Action"]):
                arns = set(as_list(dr.resolve(st["Resource"])))
                assert arns <= {_function_arn(plan, s) for s in render.services_used(plan)}


# Functions ----------------------------------------------------------------------------------


def test_one_function_per_service_used_with_the_service_handler(dr, plan):
    functions = lambda_functions(dr)
    # The workflows' services, and the dashboard widget's function (lambdas/widget.py).
    assert set(functions) == {render.function_name(plan, s) for s in render.services_used(plan) | {"widget"}}
    for service in render.services_used(plan):
        _, props = functions[render.function_name(plan, service)]
        assert props["Handler"] == f"lambdas.{service}.handler"
        assert props["Runtime"] == "python3.12"
        assert props["Timeout"] < asl.TASK_TIMEOUT_SECONDS


def test_function_code_asset_is_the_lambdas_package_only(dr, synthesized):
    keys = {dr.resolve(p["Code"]["S3Key"]) for _, p in lambda_functions(dr).values()}
    assert len(keys) == 1, "all functions share one code asset"
    asset_hash = keys.pop().removesuffix(".zip")
    asset = Path(synthesized.out_dir) / f"asset.{asset_hash}"
    # The lambdas package, the template engine the widget renders with and the canary's PostgreSQL driver with
    # what it imports (pure Python, no binaries; the driver reads its version from its dist-info).
    names = sorted(p.name for p in asset.iterdir())
    assert [n for n in names if not n.endswith(".dist-info")] == [
        "asn1crypto", "dateutil", "jinja2", "lambdas", "markupsafe", "pg8000", "scramp", "six.py"]
    assert {n.split("-")[0] for n in names if n.endswith(".dist-info")} == {
        "asn1crypto", "pg8000", "python_dateutil", "scramp", "six"}
    assert not [p for p in asset.rglob("*.so")]
    assert not [p for p in asset.rglob("*.pyc")]
    files = [p for p in (asset / "lambdas").rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".py", ".j2") for p in files)
    assert (asset / "lambdas" / "rds.py").read_text() == (Path(__file__).parents[2] / "lambdas" / "rds.py").read_text()


def test_the_canary_function_runs_in_the_plans_dr_subnets_and_security_groups(dr, plan):
    functions = lambda_functions(dr)
    _, canary = functions[render.function_name(plan, "canary")]
    assert canary["VpcConfig"] == {"SubnetIds": list(plan.canary_network.subnets),
                                   "SecurityGroupIds": list(plan.canary_network.security_groups)}
    others = [name for name, (_, props) in functions.items() if "VpcConfig" in props]
    assert others == [render.function_name(plan, "canary")], "only the canary function needs the VPC"


def test_the_canary_functions_interface_permissions_are_scoped_and_in_place_before_it(dr, plan):
    lid, canary = lambda_functions(dr)[render.function_name(plan, "canary")]
    role = canary["Role"]["Fn::GetAtt"][0]
    (policy_lid,) = [p for p, r in dr.of_type("AWS::IAM::Policy").items()
                     if {"Ref": role} in r["Properties"]["Roles"] and "VpcAccess" in p]
    granted = {a: set(as_list(s["Resource"])) for s in dr.resolve(
        dr.props(policy_lid)["PolicyDocument"]["Statement"]) for a in as_list(s["Action"])}
    ec2 = f"arn:aws:ec2:{plan.dr_region}:{ACCOUNT}"
    eni = f"{ec2}:network-interface/*"
    assert granted["ec2:CreateNetworkInterface"] == {
        eni, *(f"{ec2}:subnet/{s}" for s in plan.canary_network.subnets),
        *(f"{ec2}:security-group/{g}" for g in plan.canary_network.security_groups)}
    for action in ("ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"):
        assert granted[action] == {eni}, action
    assert granted["ec2:DescribeNetworkInterfaces"] == granted["ec2:DescribeSubnets"] == {"*"}
    assert set(granted) == set(vpc.VPC_ACCESS_ACTIONS)
    # Lambda checks the role can create the interfaces when the function is created: the policy comes first.
    assert policy_lid in as_list(dr.resources[lid].get("DependsOn", []))


# Notifications ------------------------------------------------------------------------------


def test_topic_is_kms_encrypted_and_refuses_plain_http(dr):
    ((_topic_lid, topic),) = dr.of_type("AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    ((_key_lid, key),) = dr.of_type("AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    ((_, policy),) = dr.of_type("AWS::SNS::TopicPolicy").items()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


# Alarm trigger ------------------------------------------------------------------------------


def _alarm_event(name: str, state: str = "ALARM", region: str = "us-east-1") -> dict:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-23T03:00:00Z",
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-23T03:00:00.000+0000"},
            "previousState": {"value": "OK" if state == "ALARM" else "ALARM"},
            "configuration": {"metrics": []},
        },
    }


def _rules(t: Template) -> list[dict]:
    return [r["Properties"] for r in t.of_type("AWS::Events::Rule").values()]


def _matches(rules: list[dict], event: dict) -> list[dict]:
    return [r for r in rules if EventPattern.load(json.dumps(r["EventPattern"])).matches_event(event)]


def test_failover_rule_starts_on_a_plan_alarm_entering_alarm(dr, plan):
    failover_arn = (
        f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:stateMachine:{render.state_machine_name(plan, 'failover')}"
    )
    for alarm in plan.triggers.alarms:
        matched = _matches(_rules(dr), _alarm_event(alarm.name, region=alarm.region or plan.primary_region))
        assert len(matched) == 1, alarm.name
        (target,) = matched[0]["Targets"]
        assert dr.resolve(target["Arn"]) == failover_arn
        # The alarm event itself is the execution input (no Input/InputPath/InputTransformer).
        assert not {"Input", "InputPath", "InputTransformer"} & set(target)


def test_failover_rule_ignores_other_alarms_ok_transitions_and_other_regions(dr, plan):
    name = plan.triggers.alarms[0].name
    region = plan.triggers.alarms[0].region or plan.primary_region
    assert not _matches(_rules(dr), _alarm_event("some-other-alarm", region=region))
    assert not _matches(_rules(dr), _alarm_event(name, state="OK", region=region))
    assert not _matches(_rules(dr), _alarm_event(name, state="INSUFFICIENT_DATA", region=region))
    assert not _matches(_rules(dr), _alarm_event(name, region="eu-west-1"))
    other = {
        "source": "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        "region": region,
        "detail": {"alarmName": name, "state": {"value": "ALARM"}},
    }
    assert not _matches(_rules(dr), other)


def test_alarms_outside_the_dr_region_are_forwarded_to_the_dr_default_bus(synthesized, plan):
    regions = [r for r in alarm_regions(plan) if r != plan.dr_region]
    assert regions, "the reference plan has alarms in the primary region"
    for region in regions:
        t = Template(synthesized.templates[forwarder_stack_name(plan, region)], region)
        (rule,) = _rules(t)
        (target,) = rule["Targets"]
        bus = f"arn:aws:events:{plan.dr_region}:{ACCOUNT}:event-bus/default"
        assert t.resolve(target["Arn"]) == bus
        role_lid = target["RoleArn"]["Fn::GetAtt"][0]
        policies = [p for p in t.of_type("AWS::IAM::Policy").values() if {"Ref": role_lid} in p["Properties"]["Roles"]]
        (statement,) = policies[0]["Properties"]["PolicyDocument"]["Statement"]
        assert (statement["Action"], t.resolve(statement["Resource"])) == ("events:PutEvents", bus)
        for name in alarm_regions(plan)[region]:
            assert _matches([rule], _alarm_event(name, region=region))
            assert not _matches([rule], _alarm_event(name, state="OK", region=region))
        assert not _matches([rule], _alarm_event("some-other-alarm", region=region))


def test_no_forwarding_stack_for_the_dr_region(synthesized, plan):
    assert forwarder_stack_name(plan, plan.dr_region) not in synthesized.templates


# Schedules ----------------------------------------------------------------------------------


def test_a_schedule_for_each_scheduled_workflow_that_exists(dr, plan):
    from infra.stacks import SCHEDULE_TARGETS

    targets = {f: SCHEDULE_TARGETS.get(f, (f, None))[0] for f in plan.schedules.model_dump()}
    expected = {
        f"pilotlight-{plan.name}-{f.replace('_', '-')}": (expr, targets[f])
        for f, expr in plan.schedules.model_dump().items() if expr and targets[f] in render.BUILDERS
    }
    assert f"pilotlight-{plan.name}-drill-sweep" in expected  # the daily sweep of drill leftovers
    schedules = {p["Name"]: p for p in (r["Properties"] for r in dr.of_type("AWS::Scheduler::Schedule").values())}
    assert {n: p["ScheduleExpression"] for n, p in schedules.items()} == {n: e for n, (e, _) in expected.items()}
    for name, props in schedules.items():
        workflow = expected[name][1]
        arn = f"arn:aws:states:{plan.dr_region}:{ACCOUNT}:stateMachine:{render.state_machine_name(plan, workflow)}"
        assert dr.resolve(props["Target"]["Arn"]) == arn
    sweep = json.loads(schedules[f"pilotlight-{plan.name}-drill-sweep"]["Target"]["Input"])
    assert sweep["sweep"] is True


# Dashboard ----------------------------------------------------------------------------------


def test_dashboard_shows_the_plan_metrics(dr, plan):
    (dash,) = dr.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.loads(dr.resolve(dash["Properties"]["DashboardBody"]))
    metrics = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    names = {m[1] for m in metrics}
    assert names == {"ReadinessScore", "ReplicaLagSeconds", "AmiAgeHours", "DrillRtoSeconds"}
    assert all(m[0] == "pilotlight" and m[2:4] == ["Plan", plan.name] for m in metrics)


# IAM ----------------------------------------------------------------------------------------


def test_function_roles_grant_only_the_service_declared_actions(dr, plan):
    for service, statements in function_role_statements(dr).items():
        registry = plan_iam.registry_for(service)
        declared = {p for a in registry.actions.values() for p in a.permissions}
        if vpc.attached(plan, service):  # Lambda manages the function's interfaces in the DR VPC with its role
            declared |= set(vpc.VPC_ACCESS_ACTIONS)
        granted = {a for s in statements for a in as_list(s["Action"])} - {"logs:CreateLogStream", "logs:PutLogEvents"}
        if "sns:Publish" in declared:  # the topic is KMS-encrypted
            declared |= {"kms:GenerateDataKey", "kms:Decrypt"}
        assert granted <= declared, service


def test_no_mutating_action_on_a_wildcard_resource(dr):
    for service, statements in function_role_statements(dr).items():
        for s in statements:
            mutating = [a for a in as_list(s["Action"]) if plan_iam.is_mutating(a)]
            if mutating and "*" in as_list(s["Resource"]):
                assert set(mutating) <= set(plan_iam.UNSCOPED_WITH_CONDITION) and s.get("Condition"), (service, s)


def test_mutating_aws_actions_are_granted_only_on_the_plan_resources(dr, plan):
    def flat(kind: str) -> set[str]:
        found = plan_iam.resource_arns(plan, kind, account=ACCOUNT)
        return {a for x in found for a in ((x,) if isinstance(x, str) else x.arns)}

    kinds = {k: flat(k) for k in plan_iam.RESOURCE_KINDS}
    plan_arns = set().union(*kinds.values())
    checked = 0
    for service, statements in function_role_statements(dr).items():
        for s in statements:
            for action in as_list(s["Action"]):
                if action.split(":")[0] in {"rds", "ec2", "elasticbeanstalk", "route53", "s3"} and plan_iam.is_mutating(
                    action
                ):
                    assert set(as_list(s["Resource"])) <= plan_arns, (service, action, s["Resource"])
                    checked += 1
    assert checked, "the reference plan's functions mutate RDS and Route 53"


def test_rds_and_route53_mutations_target_exactly_the_dr_replica_and_the_zone(dr, plan):
    statements = function_role_statements(dr)
    rds: dict[str, set[str]] = {}
    for s in statements["rds"]:
        for a in as_list(s["Action"]):
            rds.setdefault(a, set()).update(as_list(s["Resource"]))
    replica = f"arn:aws:rds:{plan.dr_region}:{ACCOUNT}:db:{plan.databases[0].dr_replica_identifier}"
    # The DR replica, and a drill's copies of it (<replica>-drill-<id>), which a drill promotes and hardens.
    assert rds["rds:PromoteReadReplica"] == {replica, replica + "-drill-*"}
    assert rds["rds:ModifyDBInstance"] == {replica, replica + "-drill-*"}
    assert rds["rds:DeleteDBInstance"] == {replica + "-drill-*"}  # only drill copies are ever deleted
    dns = {a: as_list(s["Resource"]) for s in statements["dns"] for a in as_list(s["Action"])}
    assert dns["route53:ChangeResourceRecordSets"] == [f"arn:aws:route53:::hostedzone/{plan.dns.hosted_zone_id}"]
    assert dns["route53:GetChange"] == ["arn:aws:route53:::change/*"]


def test_only_aws_services_without_resource_types_get_wildcards_anywhere(synthesized, plan):
    """Outside function roles, '*' is used only where AWS allows nothing narrower."""
    allowed = {
        # Step Functions log delivery and X-Ray tracing: these APIs have no resource types.
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
    for body in synthesized.templates.values():
        t = Template(body, plan.dr_region)
        for policy in t.of_type("AWS::IAM::Policy").values():
            for s in t.resolve(policy["Properties"]["PolicyDocument"]["Statement"]):
                if "*" in as_list(s["Resource"]):
                    for action in as_list(s["Action"]):
                        if not plan_iam.is_mutating(action) or action in allowed:
                            continue
                        assert action in plan_iam.UNSCOPED_WITH_CONDITION and s.get("Condition"), s


# Reports ----------------------------------------------------------------------------------------


def test_reports_bucket_is_private_encrypted_versioned_logged_and_granted_to_no_function(dr, plan):
    from reports.store import bucket_name

    name = bucket_name(plan.name, ACCOUNT, plan.dr_region)
    buckets = dr.of_type("AWS::S3::Bucket")
    (lid,) = [lid for lid, r in buckets.items() if dr.resolve(r["Properties"].get("BucketName")) == name]
    props = dr.props(lid)
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    # Current versions are the evidence and stay; a rewritten report's older versions expire after a year.
    assert rule["Status"] == "Enabled" and rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 365}
    assert "ExpirationInDays" not in rule
    logs = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert logs in buckets and logs != lid
    assert dr.resources[lid]["DeletionPolicy"] == "Retain"
    # TLS only (enforce_ssl), on the bucket and its objects.
    (policy,) = [p["Properties"] for p in dr.of_type("AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": lid}]
    denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    # The CLI writes reports with the operator's credentials: no role of the stack may change or delete them.
    for role_policy in dr.of_type("AWS::IAM::Policy").values():
        assert lid not in json.dumps(role_policy["Properties"]["PolicyDocument"])
        for s in dr.resolve(role_policy["Properties"]["PolicyDocument"]["Statement"]):
            if any(name in r for r in as_list(s["Resource"])):
                assert not [a for a in as_list(s["Action"]) if plan_iam.is_mutating(a)], s
