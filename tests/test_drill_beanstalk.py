"""A drill's copy of the DR environment: launched on the drill's database copies, never on production, and
terminated by the teardown (only the selected drill's). The handlers run as the beanstalk function, so every
call is checked against the IAM its role gets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from lambdas import beanstalk, drill
from lambdas.beanstalk_config import drill_overrides
from lambdas.errors import PreconditionFailed
from sandbox import Sandbox, adapters_beanstalk, clock
from workflows import render
from workflows.plan import Plan


@pytest.fixture(scope="module")
def sb(reference_plan: Plan) -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        sandbox.seed(reference_plan)
        sandbox.build_pilot_light(reference_plan)
        yield sandbox


@contextlib.contextmanager
def as_function(sb: Sandbox, plan: Plan) -> Iterator[None]:
    """Call the handlers as the deployed beanstalk function: its role's IAM applies; nothing is denied."""
    before = len(sb.iam.denials)
    with sb.iam.acting_as(render.function_name(plan, "beanstalk")):
        yield
    assert sb.iam.denials[before:] == []


class Drill:
    """A drill's id and the names of its copies, as the drill workflow computes them."""

    def __init__(self, plan: Plan, execution: str) -> None:
        env, db = plan.environments[0], plan.databases[0]
        self.plan, self.env, self.db = plan, env, db
        self.id = drill.drill_id(f"arn:aws:states:{plan.dr_region}:123456789012:execution:drill:{execution}",
                                 clock.now())
        self.environment = drill.drill_name(env.dr_environment_name, self.id, drill.ENV_NAME_LIMIT)
        self.cname = drill.drill_name(env.cname_prefix, self.id, drill.CNAME_LIMIT)
        self.copy = drill.drill_name(db.dr_replica_identifier, self.id, drill.DB_NAME_LIMIT)

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "databases": [{"primary_region": self.plan.primary_region,
                                              "identifier": self.db.identifier,
                                              "live": self.db.dr_replica_identifier, "copy": self.copy}]}

    def launch(self) -> dict[str, Any]:
        env = self.env
        return beanstalk.launch_environment(self.plan.dr_region, self.plan.name, env.application, env.name,
                                            self.environment, self.cname, drill=self.spec())


def _host(region: str, identifier: str) -> str:
    rds = boto3.client("rds", region_name=region)
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]["Address"]


def _properties(plan: Plan, environment: str) -> dict[str, str]:
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    settings = eb.describe_configuration_settings(ApplicationName=plan.environments[0].application,
                                                  EnvironmentName=environment)["ConfigurationSettings"][0]
    return {o["OptionName"]: o["Value"] for o in settings["OptionSettings"]
            if o["Namespace"] == beanstalk.ENV_PROPERTIES}


def _environments(plan: Plan, **filters: Any) -> dict[str, str]:
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    return {e["EnvironmentName"]: e["Status"] for e in eb.describe_environments(**filters)["Environments"]}


# -- launch -----------------------------------------------------------------------------------------

def test_a_drill_launch_points_the_copy_at_the_database_copy_and_carries_the_drill_tags(
    sb: Sandbox, reference_plan: Plan
) -> None:
    plan = reference_plan
    d = Drill(plan, "launch")
    live = _host(plan.dr_region, d.db.dr_replica_identifier)
    copy_host = d.copy + live[live.index("."):]

    with as_function(sb, plan):
        out = d.launch()

    assert out["launched_now"] is True and out["drill"]["rewritten"] == ["DB_HOST"]
    assert _properties(plan, d.environment)["DB_HOST"] == copy_host  # the copy, which does not exist yet
    assert _properties(plan, d.environment)["DB_PORT"] == "5432"  # what names no production host is kept
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    (env,) = eb.describe_environments(EnvironmentNames=[d.environment])["Environments"]
    assert env["CNAME"].startswith(d.cname + ".")
    tags = eb.list_tags_for_resource(ResourceArn=env["EnvironmentArn"])["ResourceTags"]
    assert {t["Key"]: t["Value"] for t in tags if t["Key"].startswith("pilotlight:")} == {
        drill.DRILL_TAG: d.id, drill.PLAN_TAG: plan.name}
    # The saved configuration the failover launches from still names the live replica.
    template = eb.describe_configuration_settings(
        ApplicationName=d.env.application, TemplateName=out["template"])["ConfigurationSettings"][0]
    assert live in [o["Value"] for o in template["OptionSettings"] if o["OptionName"] == "DB_HOST"]

    with as_function(sb, plan):
        again = d.launch()  # a resumed drill reuses its copy
    assert again["launched_now"] is False and again["environment"]["id"] == env["EnvironmentId"]


@contextlib.contextmanager
def newer_saved_configuration(plan: Plan, *extra: dict[str, str]) -> Iterator[None]:
    """The plan's saved configuration with ``extra`` options, as a newer one (the staging name) for a while."""
    env = plan.environments[0]
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    stable = beanstalk.template_name(plan.name, env.name)
    staging = beanstalk.staging_template_name(plan.name, env.name)
    description = eb.describe_configuration_settings(ApplicationName=env.application, TemplateName=stable)[
        "ConfigurationSettings"][0]["Description"]
    clock.sleep(1)  # newer than the stable one, so the launch uses it
    eb.create_configuration_template(ApplicationName=env.application, TemplateName=staging,
                                     SourceConfiguration={"ApplicationName": env.application, "TemplateName": stable},
                                     OptionSettings=list(extra), Description=description)
    try:
        yield
    finally:
        eb.delete_configuration_template(ApplicationName=env.application, TemplateName=staging)


@pytest.mark.parametrize("where", ["primary in a property", "live replica in a custom option"])
def test_a_saved_configuration_that_would_reach_production_is_refused(
    sb: Sandbox, reference_plan: Plan, where: str
) -> None:
    plan = reference_plan
    d = Drill(plan, f"refused-{where}")
    db = d.db
    if where == "primary in a property":
        # Saved before the DR replica had an endpoint: replicate could not rewrite the primary's host.
        option = {"Namespace": beanstalk.ENV_PROPERTIES, "OptionName": "REPORTING_URL",
                  "Value": f"postgres://report@{_host(plan.primary_region, db.identifier).upper()}:5432/shop"}
        named = f"{beanstalk.ENV_PROPERTIES}:REPORTING_URL (the primary {db.identifier} ({plan.primary_region}))"
    else:
        # Only environment properties are rewritten: the live replica anywhere else stays, so it is refused.
        option = {"Namespace": "aws:elasticbeanstalk:customoption", "OptionName": "ReplicaHost",
                  "Value": _host(plan.dr_region, db.dr_replica_identifier)}
        named = f"aws:elasticbeanstalk:customoption:ReplicaHost (the live DR replica {db.dr_replica_identifier})"

    with newer_saved_configuration(plan, option), as_function(sb, plan), pytest.raises(PreconditionFailed) as refused:
        d.launch()

    assert named in str(refused.value) and "never points at production" in str(refused.value)
    assert d.environment not in _environments(plan)  # nothing was launched


def test_an_unreadable_primary_does_not_stop_a_drill_and_is_reported(sb: Sandbox, reference_plan: Plan) -> None:
    plan = reference_plan
    d = Drill(plan, "primary-down")

    def primary_down(context: dict[str, Any], **_: Any) -> None:
        if context.get("client_region") == plan.primary_region:
            raise EndpointConnectionError(endpoint_url=f"https://rds.{plan.primary_region}.amazonaws.com/")

    sb._events.register_first("before-call.rds.DescribeDBInstances", primary_down, unique_id="test-primary-down")
    try:
        with as_function(sb, plan):
            out = d.launch()
    finally:
        sb._events.unregister("before-call.rds.DescribeDBInstances", unique_id="test-primary-down")

    assert out["launched_now"] is True
    assert out["drill"]["primaries_unchecked"] == [d.db.identifier]
    assert _properties(plan, d.environment)["DB_HOST"].startswith(d.copy + ".")


def test_drill_overrides_rewrite_the_live_host_in_any_case_and_flag_production_anywhere() -> None:
    live = "db-dr.abc.us-west-2.rds.amazonaws.com"
    copy = "db-dr-drill-x.abc.us-west-2.rds.amazonaws.com"
    primary = "db.xyz.us-east-1.rds.amazonaws.com"
    props = beanstalk.ENV_PROPERTIES
    options = [
        {"Namespace": props, "OptionName": "DB_URL", "Value": f"postgres://app@{live.upper()}:5432/shop"},
        {"Namespace": props, "OptionName": "OTHER_DB", "Value": f"x-{live}"},  # another host: kept
        {"Namespace": props, "OptionName": "BLANK", "Value": None},  # not settable: ignored
        {"Namespace": "aws:cloudformation:template:parameter", "OptionName": "EnvironmentVariables",
         "Value": f"DB_URL={live}"},  # read-only: Beanstalk derives it again from the properties
    ]
    production = {live: "the live replica", primary: "the primary"}
    overrides, problems = drill_overrides(options, copies={live: copy}, production=production)
    assert overrides == [{"Namespace": props, "OptionName": "DB_URL", "Value": f"postgres://app@{copy}:5432/shop"}]
    assert problems == []

    elsewhere = [{"Namespace": "aws:elasticbeanstalk:customoption", "OptionName": "Replica", "Value": live},
                 {"Namespace": props, "OptionName": "PRIMARY", "Value": f"{primary}:5432"}]
    _, problems = drill_overrides(elsewhere, copies={live: copy}, production=production)
    assert problems == ["aws:elasticbeanstalk:customoption:Replica (the live replica)",
                        f"{props}:PRIMARY (the primary)"]


# -- teardown ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def one_environment_per_page(sb: Sandbox) -> Iterator[list[str | None]]:
    """DescribeEnvironments answers one environment per page for a while; yields the NextTokens requests sent."""
    tokens: list[str | None] = []

    def one_per_page(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("MaxRecords", 1)
        tokens.append(params.get("NextToken"))

    event = "provide-client-params.elastic-beanstalk.DescribeEnvironments"
    sb._events.register(event, one_per_page, unique_id="test-one-per-page")
    try:
        yield tokens
    finally:
        sb._events.unregister(event, unique_id="test-one-per-page")


def test_teardown_terminates_the_selected_drills_copy_only_and_converges(sb: Sandbox, reference_plan: Plan) -> None:
    plan = reference_plan
    env = plan.environments[0]
    selected, other, guarded = (Drill(plan, f"teardown-{n}") for n in ("selected", "other", "guarded"))
    # Another plan's copy for the same drill id (same name shape, other plan tag).
    foreign = drill.drill_name("other-dr", selected.id, drill.ENV_NAME_LIMIT)
    protected = [env.name, env.dr_environment_name, guarded.environment]  # a protected name is never touched
    with as_function(sb, plan):
        for d in (selected, other, guarded):
            d.launch()
        beanstalk.launch_environment(plan.dr_region, plan.name, env.application, env.name, env.dr_environment_name,
                                     env.cname_prefix)  # the DR environment itself, as a failover launches it
    boto3.client("elasticbeanstalk", region_name=plan.dr_region).create_environment(
        ApplicationName=env.application, EnvironmentName=foreign, Tags=drill.tags("other", selected.id),
        TemplateName=beanstalk.template_name(plan.name, env.name))
    drills = {"ids": [selected.id, guarded.id]}
    item = {"kind": "environment", "id": selected.environment, "drill": selected.id}
    checks: list[tuple[float, dict[str, Any]]] = []

    def removed() -> bool:
        # As the teardown's loop calls it: the attempt and what the calls before it terminated.
        before = checks[-1][1]["deleted"] if checks else first["deleted"]
        with as_function(sb, plan):
            out = beanstalk.check_drill_environments_removed(plan.dr_region, plan.name, drills, protected,
                                                             attempt=len(checks), deleted=before)
        checks.append((clock.now(), out))
        return out["done"]

    with one_environment_per_page(sb) as tokens:  # the teardown follows NextToken through every page
        with as_function(sb, plan):
            first = beanstalk.remove_drill_environments(plan.dr_region, plan.name, drills, protected)
        clock.wait_until(removed, timeout=1800, step=30, what="the drill's environment terminated")

    assert any(tokens)
    # Still launching at first: Beanstalk terminates only a Ready environment, so the teardown waits for it.
    assert first == {"done": False, "attempt": 0, "deleted": [], "deleted_now": [],
                     "remaining": [{**item, "status": "Launching"}], "left": 1}
    (terminated_at,) = [at for at, out in checks if out["deleted_now"]]
    assert [out["deleted_now"] for _, out in checks if out["deleted_now"]] == [[item]]
    statuses = [r["status"] for _, out in checks for r in out["remaining"]]
    assert statuses[-1] == "Terminating" and "Launching" in statuses
    # Terminating takes its modeled time before the environment is Terminated.
    assert checks[-1][0] - terminated_at >= adapters_beanstalk.TERMINATE_SECONDS[0] - 30
    assert checks[-1][1] == {"done": True, "attempt": len(checks), "deleted": [item], "deleted_now": [],
                             "remaining": [], "left": 0}

    live = _environments(plan, IncludeDeleted=False)
    assert selected.environment not in live
    assert {other.environment, guarded.environment, env.dr_environment_name, foreign} <= set(live)
    assert _environments(plan)[selected.environment] == "Terminated"  # deleted ones are listed by default
