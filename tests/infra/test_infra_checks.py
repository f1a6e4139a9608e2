"""cfn-lint and cdk-nag on the synthesized templates; IAM derivation; stacks grow with new workflows."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ACCOUNT, Template, nag_rows

from infra import iam as plan_iam
from lambdas.common import Registry
from workflows import asl, render

# cfn-lint ----------------------------------------------------------------------------------


def test_cfn_lint_reports_no_errors(synthesized, plan):
    from cfnlint.api import ManualArgs, lint_file

    manifest_dir = Path(synthesized.out_dir)
    templates = sorted(manifest_dir.glob("*.template.json"))
    assert len(templates) == len(synthesized.templates)
    problems = []
    for path in templates:
        region = plan.dr_region if path.name.startswith("Dr.") else plan.primary_region
        for match in lint_file(path, ManualArgs(regions=[region])):
            if match.rule.severity == "error":
                problems.append(f"{path.name}: {match.rule.id} {match.message}")
    assert problems == []


# cdk-nag ------------------------------------------------------------------------------------


def test_cdk_nag_reports_no_unsuppressed_findings(synthesized):
    assert synthesized.errors == []
    rows = nag_rows(Path(synthesized.out_dir))
    assert rows, "AwsSolutionsChecks ran and wrote its reports"
    assert [r for r in rows if r["Compliance"] == "Non-Compliant"] == []


def test_every_nag_suppression_has_a_written_reason(synthesized):
    suppressed = [r for r in nag_rows(Path(synthesized.out_dir)) if r["Compliance"] == "Suppressed"]
    assert suppressed
    for row in suppressed:
        reason = row["Exception Reason"].split("] ", 1)[-1]
        assert len(reason) > 30, row


def test_cdk_nag_wiring_catches_a_violation(tmp_path):
    """The same Aspect on a deliberately bad stack produces error annotations we would see."""
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad")
    sns.Topic(stack, "Plain")  # no KMS key, no SSL enforcement
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    messages = app.synth().get_stack_by_name("Bad").messages
    errors = {str(m.entry.data).split(":")[0] for m in messages if "error" in str(m.level).lower()}
    assert "AwsSolutions-SNS3" in errors  # topic without SSL enforcement


# IAM derivation -----------------------------------------------------------------------------


def _registry(*actions: tuple[str, list[str], str]) -> Registry:
    reg = Registry("fake")
    for name, perms, kind in actions:
        reg.action(name, permissions=perms, resource=kind)(dict)
    return reg


def test_statements_scope_mutations_to_the_plan_arns(plan):
    reg = _registry(("promote", ["rds:PromoteReadReplica", "rds:DescribeDBInstances"], "db"))
    (st,) = plan_iam.statements(reg, plan, account=ACCOUNT)
    assert st["Resource"] == [f"arn:aws:rds:us-west-2:{ACCOUNT}:db:shop-db-dr"]
    assert st["Action"] == ["rds:DescribeDBInstances", "rds:PromoteReadReplica"]


def test_a_mutating_action_without_a_resource_kind_is_refused(plan):
    reg = _registry(("oops", ["rds:DeleteDBInstance"], "*"))
    with pytest.raises(plan_iam.PermissionsError, match="never grants a mutating action on"):
        plan_iam.statements(reg, plan, account=ACCOUNT)


def test_an_unknown_resource_kind_is_refused(plan):
    reg = _registry(("odd", ["ec2:CreateTags"], "gizmo"))
    with pytest.raises(plan_iam.PermissionsError, match="unknown resource kind 'gizmo'"):
        plan_iam.statements(reg, plan, account=ACCOUNT)


def test_describe_actions_without_resource_level_permissions_get_a_wildcard(plan):
    reg = _registry(("images", ["ec2:DescribeImages", "ec2:CopyImage"], "image"))
    statements = plan_iam.statements(reg, plan, account=ACCOUNT)
    by_action = {a: st["Resource"] for st in statements for a in st["Action"]}
    assert by_action["ec2:DescribeImages"] == ["*"]
    assert by_action["ec2:CopyImage"] == ["arn:aws:ec2:us-east-1::image/*", "arn:aws:ec2:us-west-2::image/*"]


def test_put_metric_data_is_limited_to_the_pilotlight_namespace(plan):
    reg = _registry(("metric", ["cloudwatch:PutMetricData"], "*"))
    (st,) = plan_iam.statements(reg, plan, account=ACCOUNT)
    assert st["Resource"] == ["*"]
    assert st["Condition"] == {"StringEquals": {"cloudwatch:namespace": "pilotlight"}}


def test_beanstalk_and_s3_kinds_name_the_plan_resources(plan):
    def arns(kind):
        return plan_iam.resource_arns(plan, kind, account=ACCOUNT)
    assert arns("environment") == [f"arn:aws:elasticbeanstalk:us-west-2:{ACCOUNT}:environment/shop/shop-dr"]
    assert f"arn:aws:elasticbeanstalk:us-west-2:{ACCOUNT}:application/shop" in arns("application")
    assert f"arn:aws:elasticbeanstalk:us-west-2:{ACCOUNT}:configurationtemplate/shop/*" in arns("configurationtemplate")
    assert "arn:aws:s3:::shop-assets-usw2" in arns("bucket") and "arn:aws:s3:::shop-uploads-use1" in arns("bucket")


def test_every_registered_action_of_every_lambda_module_derives_iam(plan):
    """Whatever lambdas/<service>.py exist (other branches add more), their declarations must compile."""
    import pkgutil

    import lambdas

    services = [m.name for m in pkgutil.iter_modules(lambdas.__path__) if m.name not in {"common", "errors"}]
    for service in services:
        try:
            registry = plan_iam.registry_for(service)
        except plan_iam.PermissionsError:
            continue  # a helper module, not a service
        plan_iam.statements(registry, plan, account=ACCOUNT, extra={"topic": ["arn:aws:sns:x"], "key": ["k"]})


# Stacks grow with the workflows -------------------------------------------------------------


def _fake_builder(workflow: str):
    def build(plan):
        states = {
            "Check": asl.task(
                f"{workflow} check",
                "rds",
                "check_promoted",
                {"region.$": "$.region", "identifier.$": "$.id"},
                result_path="$.r",
                next_state=None,
            )
        }
        return asl.machine(f"fake {workflow}", "Check", states, 600)

    return build


@pytest.fixture
def more_workflows(monkeypatch):
    builders = dict(render.BUILDERS)
    for workflow in ("replicate", "readiness"):
        builders.setdefault(workflow, _fake_builder(workflow))
    monkeypatch.setattr(render, "BUILDERS", builders)
    return builders


def test_schedules_follow_the_plan_rates_for_scheduled_workflows(more_workflows, plan):
    import aws_cdk as cdk
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template as CdkTemplate

    from infra.stacks import add_schedules

    stack = cdk.Stack(cdk.App(), "Schedules", env=cdk.Environment(region=plan.dr_region))
    machines = {
        w: sfn.StateMachine(stack, w, definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, f"{w}P")))
        for w in more_workflows
    }
    add_schedules(stack, plan, machines)
    schedules = CdkTemplate.from_stack(stack).find_resources("AWS::Scheduler::Schedule")
    got = {p["Properties"]["Name"]: p["Properties"]["ScheduleExpression"] for p in schedules.values()}
    assert got == {
        f"pilotlight-{plan.name}-replicate": plan.schedules.replicate,
        f"pilotlight-{plan.name}-readiness": plan.schedules.readiness,
        # The daily sweep of drill leftovers (the drill teardown); the reference plan schedules no drill.
        f"pilotlight-{plan.name}-drill-sweep": plan.schedules.drill_sweep,
    }
    assert all(p["Properties"]["FlexibleTimeWindow"] == {"Mode": "OFF"} for p in schedules.values())


def test_new_workflows_are_deployed_without_infra_changes(more_workflows, plan, tmp_path):
    from infra import app
    from infra.stacks import dr_stack_name

    result = app.synthesize(plan, tmp_path / "cdk.out")
    assert result.errors == []
    dr = Template(result.templates[dr_stack_name(plan)], plan.dr_region)
    machines = {
        r["Properties"]["StateMachineName"]: r["Properties"]
        for r in dr.of_type("AWS::StepFunctions::StateMachine").values()
    }
    for workflow in more_workflows:
        props = machines[render.state_machine_name(plan, workflow)]
        assert dr.resolve(props["DefinitionString"]) == asl.compact(render.render_all(plan)[workflow])
    schedules = {
        r["Properties"]["Name"]: r["Properties"]["ScheduleExpression"]
        for r in dr.of_type("AWS::Scheduler::Schedule").values()
    }
    assert schedules == {
        f"pilotlight-{plan.name}-replicate": plan.schedules.replicate,
        f"pilotlight-{plan.name}-readiness": plan.schedules.readiness,
        f"pilotlight-{plan.name}-drill-sweep": plan.schedules.drill_sweep,
    }


# Pure helpers -------------------------------------------------------------------------------


def test_alarm_regions_group_alarms_and_default_to_the_primary_region(plan):
    from infra.stacks import alarm_regions
    from workflows.plan import parse_plan

    data = plan.model_dump(exclude_none=True)
    data["triggers"]["alarms"] = [
        {"name": "a"},
        {"name": "b", "region": "us-west-2"},
        {"name": "c", "region": "us-east-1"},
    ]
    assert alarm_regions(parse_plan(data)) == {"us-east-1": ["a", "c"], "us-west-2": ["b"]}


def test_every_service_used_has_a_lambda_handler(plan):
    import importlib

    for service in render.services_used(plan):
        assert callable(importlib.import_module(f"lambdas.{service}").handler)


def test_an_action_on_several_kinds_gets_each_with_its_condition(plan):
    """CreateImage authorizes on the instance and the new image: each kind is its own statement."""
    reg = _registry(("create", ["ec2:CreateImage"], ("instance", "image")))
    by_resource = {tuple(st["Resource"]): st for st in plan_iam.statements(reg, plan, account=ACCOUNT)}
    instances = by_resource[(f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*",)]
    assert instances["Condition"] == {
        "StringEquals": {"aws:ResourceTag/elasticbeanstalk:environment-name": ["shop-prod"]}
    }
    images = by_resource[("arn:aws:ec2:us-east-1::image/*", "arn:aws:ec2:us-west-2::image/*")]
    assert "Condition" not in images and images["Action"] == ["ec2:CreateImage"]


def test_dr_keys_by_arn_id_and_alias(plan):
    key_arn = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
    db = plan.databases[0].model_copy(update={"storage_encrypted": True, "dr_kms_key_id": key_arn})
    changed = plan.model_copy(
        update={"databases": [db], "ami": plan.ami.model_copy(update={"dr_kms_key_id": "alias/dr-images"})}
    )
    reg = _registry(("grant", ["kms:CreateGrant"], "dr_key"))
    by_resource = {tuple(st["Resource"]): st for st in plan_iam.statements(reg, changed, account=ACCOUNT)}
    assert (key_arn,) in by_resource and "Condition" not in by_resource[(key_arn,)]
    aliased = by_resource[(f"arn:aws:kms:us-west-2:{ACCOUNT}:key/*",)]
    assert aliased["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/dr-images"]}}
    # No key in the plan: nothing to grant, rather than a wildcard.
    assert plan_iam.statements(reg, plan, account=ACCOUNT) == []


def test_replication_role_is_the_plan_role_or_the_one_replicate_creates(plan):
    arns = plan_iam.resource_arns(plan, "replication_role", account=ACCOUNT)
    assert arns == [f"arn:aws:iam::{ACCOUNT}:role/pilotlight-shop-s3-replication"]
