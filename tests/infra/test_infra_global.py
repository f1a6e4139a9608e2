"""The plans with the global data tiers (Aurora Global Database, DynamoDB global tables) synthesize cleanly:
cdk-nag and cfn-lint pass, every service their workflows call is deployed, and the aurora and dynamodb roles
mutate only the plan's global cluster, clusters, tables and write-region parameter.

One synth per plan, shared by this module's tests (CDK synth through jsii takes seconds).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ACCOUNT, Template, as_list, function_role_statements, lambda_functions, nag_rows

from infra import iam as plan_iam
from workflows import render
from workflows.plan import Plan, load_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLANS = ["ecommerce.yaml", "fitness-global.yaml", "fastest-region.yaml", "bookstore.yaml"]


class Synth:
    def __init__(self, plan: Plan, result: Any, seconds: float) -> None:
        from infra.stacks import dr_stack_name

        self.plan, self.result, self.seconds = plan, result, seconds
        self.dr = Template(result.templates[dr_stack_name(plan)], plan.dr_region)


@pytest.fixture(scope="module", params=PLANS)
def synth(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from infra import app

    plan = load_plan(EXAMPLES / request.param)
    started = time.monotonic()
    result = app.synthesize(plan, tmp_path_factory.mktemp("cdk") / "cdk.out")
    seconds = time.monotonic() - started
    print(f"\nsynth of {request.param}: {seconds:.1f} s")
    return Synth(plan, result, seconds)


# Helpers -------------------------------------------------------------


def _grants(statements: list[dict]) -> dict[str, set[str]]:
    """Action -> every resource it is granted on."""
    out: dict[str, set[str]] = {}
    for s in statements:
        for action in as_list(s["Action"]):
            out.setdefault(action, set()).update(as_list(s["Resource"]))
    return out


def _flat(plan: Plan, kind: str) -> set[str]:
    found = plan_iam.resource_arns(plan, kind, account=ACCOUNT)
    return {a for x in found for a in ((x,) if isinstance(x, str) else x.arns)}


# cdk-nag and cfn-lint --------------------------------------------------------------------------------------


def test_cdk_nag_reports_no_non_compliant_rows(synth):
    assert synth.result.errors == []
    rows = nag_rows(Path(synth.result.out_dir))
    assert rows, "AwsSolutionsChecks ran and wrote its reports"
    assert [r for r in rows if r["Compliance"] == "Non-Compliant"] == []


def test_every_nag_suppression_has_a_written_reason(synth):
    suppressed = [r for r in nag_rows(Path(synth.result.out_dir)) if r["Compliance"] == "Suppressed"]
    assert suppressed
    for row in suppressed:
        reason = row["Exception Reason"].split("] ", 1)[-1]
        assert len(reason) > 30, row


def test_cfn_lint_reports_no_errors(synth):
    from cfnlint.api import ManualArgs, lint_file

    plan = synth.plan
    templates = sorted(Path(synth.result.out_dir).glob("*.template.json"))
    assert len(templates) == len(synth.result.templates)
    problems = []
    for path in templates:
        region = plan.dr_region if path.name.startswith("Dr.") else plan.primary_region
        for match in lint_file(path, ManualArgs(regions=[region])):
            if match.rule.severity == "error":
                problems.append(f"{path.name}: {match.rule.id} {match.message}")
    assert problems == []


# Functions -------------------------------------------------------------------------------------------------


def test_one_function_per_service_the_workflows_use(synth):
    plan = synth.plan
    services = render.services_used(plan)
    assert ("aurora" in services) == bool(plan.aurora_databases)
    assert ("dynamodb" in services) == bool(plan.tables)
    assert ("autoscaling" in services) == bool(plan.compute)
    if plan.name == "ecommerce":
        assert "dynamodb" in services
    handlers = [props["Handler"] for _, props in lambda_functions(synth.dr).values()]
    for service in services:
        assert handlers.count(f"lambdas.{service}.handler") == 1, service
    functions = lambda_functions(synth.dr)
    assert set(functions) == {render.function_name(plan, s) for s in services | {"widget"}}
    for service in services:
        _, props = functions[render.function_name(plan, service)]
        assert props["Handler"] == f"lambdas.{service}.handler"


# IAM -------------------------------------------------------------------------------------------------------


def test_no_mutating_action_on_a_wildcard_resource(synth):
    for service, statements in function_role_statements(synth.dr).items():
        for s in statements:
            mutating = [a for a in as_list(s["Action"]) if plan_iam.is_mutating(a)]
            if mutating and "*" in as_list(s["Resource"]):
                assert set(mutating) <= set(plan_iam.UNSCOPED_WITH_CONDITION) and s.get("Condition"), (service, s)


@pytest.mark.parametrize("service", ["aurora", "dynamodb"])
def test_data_tier_mutations_are_granted_only_on_the_plan_resources(synth, service):
    """Every mutating rds/dynamodb/ssm action is on ARNs infra.iam derives for the kinds the handler declares."""
    plan = synth.plan
    statements = function_role_statements(synth.dr)
    if service not in statements:
        assert not (plan.tables if service == "dynamodb" else plan.aurora_databases)
        pytest.skip(f"{plan.name} has no {service} data tier")
    registry = plan_iam.registry_for(service)
    declared: dict[str, set[str]] = {}
    for action in registry.actions.values():
        for perm in action.permissions:
            kinds = [k for k in action.resource_for(perm) if k != "*"]
            declared.setdefault(perm, set()).update(*(_flat(plan, k) for k in kinds))
    plan_arns = set().union(*(_flat(plan, k) for k in plan_iam.RESOURCE_KINDS))
    checked = 0
    for s in statements[service]:
        for action in as_list(s["Action"]):
            if action.split(":")[0] in {"rds", "dynamodb", "ssm"} and plan_iam.is_mutating(action):
                resources = set(as_list(s["Resource"]))
                assert "*" not in resources, (service, action)
                assert resources <= plan_arns, (service, action, resources - plan_arns)
                assert resources <= declared[action], (service, action, resources - declared[action])
                checked += 1
    assert checked, f"the {service} role mutates the plan's data tier"


def test_global_cluster_operations_name_the_global_cluster_and_its_clusters_only(synth):
    plan = synth.plan
    if not plan.aurora_databases:
        pytest.skip(f"{plan.name} has no Aurora Global Database")
    rds = _grants(function_role_statements(synth.dr)["aurora"])
    (db,) = plan.aurora_databases
    global_cluster = f"arn:aws:rds::{ACCOUNT}:global-cluster:{db.global_cluster_identifier}"
    dr_cluster = f"arn:aws:rds:{plan.dr_region}:{ACCOUNT}:cluster:{db.dr_cluster_identifier}"
    primary_cluster = f"arn:aws:rds:{plan.primary_region}:{ACCOUNT}:cluster:{db.identifier}"
    assert _flat(plan, "aurora_global_cluster") == {global_cluster}
    # The Service Authorization Reference: cluster* and global-cluster* for all three; a switchover or failover
    # changes the roles of the DR cluster (new writer) and the primary cluster (demoted), a detach only the DR one.
    assert rds["rds:SwitchoverGlobalCluster"] == {global_cluster, dr_cluster, primary_cluster}
    assert rds["rds:FailoverGlobalCluster"] == {global_cluster, dr_cluster, primary_cluster}
    assert rds["rds:RemoveFromGlobalCluster"] == {global_cluster, dr_cluster}
    # No global cluster operation is granted to any other function.
    for service, statements in function_role_statements(synth.dr).items():
        if service != "aurora":
            assert not {a for a in _grants(statements) if a.endswith("GlobalCluster") and plan_iam.is_mutating(a)}


def test_aurora_creates_and_restores_are_granted_on_their_required_resource_types(synth):
    """CreateDBCluster, RestoreDBClusterToPointInTime and RestoreDBClusterFromSnapshot require cluster*, cluster-pg*,
    og* and subgrp* (Service Authorization Reference); each is granted on the plan's DR-region ones only."""
    plan = synth.plan
    if not plan.aurora_databases:
        pytest.skip(f"{plan.name} has no Aurora Global Database")
    rds = _grants(function_role_statements(synth.dr)["aurora"])
    (db,) = plan.aurora_databases
    prefix = f"arn:aws:rds:{plan.dr_region}:{ACCOUNT}:"
    subnet_group = f"{prefix}subgrp:{db.dr_network.subnet_group.lower()}"
    global_cluster = f"arn:aws:rds::{ACCOUNT}:global-cluster:{db.global_cluster_identifier}"
    for action in ("rds:CreateDBCluster", "rds:RestoreDBClusterToPointInTime", "rds:RestoreDBClusterFromSnapshot"):
        granted = rds[action]
        for resource_type in ("cluster:", "cluster-pg:", "og:", "subgrp:"):
            assert any(r.startswith(prefix + resource_type) for r in granted), (action, resource_type)
        assert subnet_group in granted
        assert all(r.startswith(prefix) for r in granted - {global_cluster}), granted
    # The secondary joins the plan's global cluster (CreateDBCluster with GlobalClusterIdentifier).
    assert global_cluster in rds["rds:CreateDBCluster"]


def test_dynamodb_item_writes_are_on_the_plan_tables_only(synth):
    plan = synth.plan
    statements = function_role_statements(synth.dr)
    if not plan.tables:
        assert "dynamodb" not in statements
        pytest.skip(f"{plan.name} has no DynamoDB tables")
    ddb = _grants(statements["dynamodb"])
    dr_tables = {f"arn:aws:dynamodb:{plan.dr_region}:{ACCOUNT}:table/{t.name}" for t in plan.tables}
    primary_tables = {f"arn:aws:dynamodb:{plan.primary_region}:{ACCOUNT}:table/{t.name}" for t in plan.tables}
    # Markers are written to (and deleted from) the DR replicas; the replica's backfill writes there too.
    assert ddb["dynamodb:PutItem"] == dr_tables
    assert ddb["dynamodb:DeleteItem"] == dr_tables
    # Adding the replica: UpdateTable on the source table, CreateTable/CreateTableReplica on the replica
    # (Developer Guide, "Using IAM with global tables", version 2019.11.21).
    assert ddb["dynamodb:UpdateTable"] == primary_tables
    assert ddb["dynamodb:CreateTableReplica"] == dr_tables
    for action, resources in ddb.items():
        if action.startswith("dynamodb:") and plan_iam.is_mutating(action):
            assert resources <= dr_tables | primary_tables, (action, resources)
    # No other function writes items, but the guard rails' claim, on the plan's claim table alone.
    claim_table = f"arn:aws:dynamodb:{plan.dr_region}:{ACCOUNT}:table/pilotlight-{plan.name}-claim"
    for service, other in statements.items():
        if service == "guard":
            guard = _grants(other)
            assert guard["dynamodb:PutItem"] == guard["dynamodb:GetItem"] == {claim_table}
            assert "dynamodb:DeleteItem" not in guard
        elif service != "dynamodb":
            assert not {"dynamodb:PutItem", "dynamodb:DeleteItem"} & set(_grants(other)), service


def test_write_region_parameter_is_the_only_parameter_put(synth):
    plan = synth.plan
    statements = function_role_statements(synth.dr)
    if plan.name == "ecommerce":
        # A name starting with "/" is not given a second slash: parameter/shop/..., not parameter//shop/...
        expected = {f"arn:aws:ssm:us-west-2:{ACCOUNT}:parameter/shop/orders/write-region"}
        assert plan.write_region_parameters == ["/shop/orders/write-region"]
        assert _flat(plan, "write_region_parameter") == expected
        assert _grants(statements["dynamodb"])["ssm:PutParameter"] == expected
    for service in ("aurora", "dynamodb"):
        puts = _grants(statements.get(service, [])).get("ssm:PutParameter", set())
        assert puts <= _flat(plan, "write_region_parameter"), (service, puts)
        assert not any("//" in arn.split(":", 5)[5] for arn in puts), puts


def test_roles_passed_to_ec2_are_the_plan_instance_roles(synth):
    """Each example names its groups' instance profiles: iam:PassRole is on their roles only, to EC2 only."""
    plan = synth.plan
    roles = {f"arn:aws:iam::{ACCOUNT}:role/{g.instance_role}" for g in plan.compute}
    assert roles and all(g.instance_role for g in plan.compute)
    passed = [s for s in function_role_statements(synth.dr)["autoscaling"] if "iam:PassRole" in as_list(s["Action"])]
    assert passed and {r for s in passed for r in as_list(s["Resource"])} == roles
    assert all(s["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}} for s in passed)


def test_the_failover_claim_table_is_the_one_the_guard_writes(synth):
    """One on-demand table per plan, key ``plan``, point-in-time recovery on, named as lambdas/guard.py names it."""
    from lambdas import guard

    tables = {props["Properties"]["TableName"]: props["Properties"]
              for props in synth.dr.of_type("AWS::DynamoDB::Table").values()}
    claim = tables[guard.claim_table(synth.plan.name)]
    assert claim["KeySchema"] == [{"AttributeName": "plan", "KeyType": "HASH"}]
    assert claim["BillingMode"] == "PAY_PER_REQUEST"
    assert claim["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
