"""DynamoDB global tables steps (lambdas/dynamodb.py) and readiness (lambdas/readiness_dynamodb.py) on the sandbox.

- replicate adds the DR replica (UpdateTable ReplicaUpdates) and waits for it ACTIVE; a table DynamoDB would
  refuse a replica for (stream, provisioned writes without auto scaling, a same-named table in DR) is drift
  with its fix, never changed;
- the replication latency is measured against the RPO where DynamoDB publishes it (the writing region);
- the failover and drills write, read back (strongly consistent) and delete a marker item in the DR replica,
  and move the write-region parameter; a drill teardown removes marker items a drill left;
- readiness reports each way a table is not ready;
- each group of actions runs within the IAM policy infra/iam.py generates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import iam as plan_iam
from lambdas import beanstalk, drill, readiness_dynamodb
from lambdas import dynamodb as steps
from lambdas.common import Registry
from lambdas.errors import PreconditionFailed, ResourceNotReady
from sandbox import Sandbox, clock, responses, seed_dynamodb
from tests.conftest import ROOT
from workflows import render
from workflows.plan import Plan, load_plan

PLAN = load_plan(ROOT / "examples" / "ecommerce.yaml")
P, D = PLAN.primary_region, PLAN.dr_region
ORDERS, CARTS = "shop-orders", "shop-carts"
PARAMETER = "/shop/orders/write-region"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}



@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        seed_dynamodb.seed(PLAN)
        yield box


def _ddb(region: str) -> Any:
    return boto3.client("dynamodb", region_name=region)


def _replicate(table: str = ORDERS, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """ensure_replica, then check_replica a minute apart until done, as the replicate workflow's loop does."""
    out = out or steps.ensure_replica(P, D, table)
    while not out["done"]:
        clock.sleep(60)
        out = steps.check_replica(P, D, table, out["record"], out["attempt"])
        assert out["attempt"] < 300
    return out


def _ctx() -> dict[str, Any]:
    return {"primary_region": P, "dr_region": D, "rpo_minutes": PLAN.objectives.rpo_minutes}


def _item(table: str = ORDERS, parameter: str | None = None, hours: int = 24) -> dict[str, Any]:
    return {"kind": "table", "resource": table, "table": table, "capacity_lookback_hours": hours,
            "write_region_parameter": parameter}


def _check(name: str, table: str = ORDERS, parameter: str | None = None) -> dict[str, Any]:
    (found,) = [c for c in readiness_dynamodb.check_table(_ctx(), _item(table, parameter)) if c["check"] == name]
    return found


# -- replicate ------------------------------------------------------------------------------------


def test_ensure_and_check_make_an_active_replica(sb: Sandbox) -> None:
    first = steps.ensure_replica(P, D, ORDERS)
    assert first["done"] is False
    assert first["record"] == {"resource": f"global table {ORDERS} ({D})", "status": "created",
                               "replica_status": "CREATING"}
    done = _replicate(ORDERS, first)
    assert done["record"]["status"] == "created" and done["replica_status"] == "ACTIVE"
    dr = _ddb(D).describe_table(TableName=ORDERS)["Table"]
    assert dr["TableStatus"] == "ACTIVE" and dr["Replicas"] == [{"RegionName": P, "ReplicaStatus": "ACTIVE"}]
    assert _ddb(D).get_item(TableName=ORDERS, Key={"pk": {"S": f"{ORDERS}-0"}}).get("Item")  # the backfill
    again = steps.ensure_replica(P, D, ORDERS)  # a re-run converges without waiting
    assert again["done"] is True and again["record"]["status"] == "unchanged"


def _odd_table(**kwargs: Any) -> None:
    params = {"BillingMode": "PAY_PER_REQUEST", "StreamSpecification": STREAM, **kwargs}
    _ddb(P).create_table(TableName="odd", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         **{k: v for k, v in params.items() if v is not None})


@pytest.mark.parametrize(("kwargs", "drift", "fix"), [
    ({"StreamSpecification": None}, "has no stream", "StreamViewType=NEW_AND_OLD_IMAGES"),
    ({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}, "view type NEW_IMAGE",
     "new ARN"),
    ({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}},
     "without auto scaling", "register-scalable-target"),
], ids=["no_stream", "stream_view_type", "provisioned_without_autoscaling"])
def test_a_table_dynamodb_would_refuse_a_replica_for_is_drift_with_its_fix(sb: Sandbox, kwargs: dict[str, Any],
                                                                          drift: str, fix: str) -> None:
    _odd_table(**kwargs)
    before = _ddb(P).describe_table(TableName="odd")["Table"]
    out = steps.ensure_replica(P, D, "odd")
    assert out["done"] is True
    record = out["record"]
    assert record["status"] == "drift"
    assert any(drift in d for d in record["drift"]), record
    assert any(fix in f for f in record["fixes"]), record
    after = _ddb(P).describe_table(TableName="odd")["Table"]  # the user's table is left as it was
    assert after.get("StreamSpecification") == before.get("StreamSpecification") and "Replicas" not in after
    checked = steps.check_replica(P, D, "odd", record, 0)
    assert checked["done"] is True and checked["record"]["status"] == "drift"


def test_a_same_named_table_in_dr_and_a_missing_table_are_reported(sb: Sandbox) -> None:
    _ddb(D).create_table(TableName=CARTS, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
    out = steps.ensure_replica(P, D, CARTS)
    assert out["record"]["status"] == "drift" and "already exists in us-west-2" in out["record"]["drift"][0]
    gone = steps.ensure_replica(P, D, "no-such-table")
    assert gone["done"] is True and gone["record"]["status"] == "failed"
    assert gone["record"]["error"] == "InvalidRequest" and "does not exist in us-east-1" in gone["record"]["reason"]


def test_provisioned_table_with_write_autoscaling_gets_its_replica(sb: Sandbox) -> None:
    _odd_table(BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    boto3.client("application-autoscaling", region_name=P).register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId="table/odd", ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=5, MaxCapacity=50)
    assert _replicate("odd")["replica_status"] == "ACTIVE"
    # The replica gets the table's write auto scaling (it applies to every replica of a global table).
    (target,) = boto3.client("application-autoscaling", region_name=D).describe_scalable_targets(
        ServiceNamespace="dynamodb", ResourceIds=["table/odd"])["ScalableTargets"]
    assert (target["ScalableDimension"], target["MaxCapacity"]) == ("dynamodb:table:WriteCapacityUnits", 50)


def test_replication_latency_within_and_above_the_rpo(sb: Sandbox) -> None:
    _replicate()
    clock.sleep(360)  # the seed's writes are older than the window
    idle = steps.replication_latency(P, D, ORDERS, 15)  # nothing written in the last 5 minutes: nothing to lose
    assert (idle["status"], idle["lag_seconds"], idle["idle"]) == ("WITHIN_RPO", 0.0, True)
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "new"}})
    clock.sleep(30)
    within = steps.replication_latency(P, D, ORDERS, 15, fast=True)
    assert within["status"] == "WITHIN_RPO" and within["identifier"] == ORDERS and within["rpo_seconds"] == 900
    assert 0 < within["lag_seconds"] <= 60 and within["record"]["status"] == "verified"
    sb.dynamodb.replicate_delay = lambda: 1200.0  # 20 minutes behind
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "late"}})
    clock.sleep(1230)
    above = steps.replication_latency(P, D, ORDERS, 15)
    assert above["status"] == "ABOVE_RPO" and above["lag_seconds"] == 1200.0 and above["record"]["status"] == "drift"
    assert set(above) == {"identifier", "lag_seconds", "rpo_seconds", "status", "record"}
    # Writes in the primary and no latency datapoint in the window: replication is stalled, the RPO unknown.
    clock.sleep(360)
    sb.dynamodb.wrote = lambda *_: None  # replication stops: writes reach the primary only
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "stuck"}})
    clock.sleep(30)
    stalled = steps.replication_latency(P, D, ORDERS, 15)
    assert (stalled["status"], stalled["lag_seconds"], stalled["written_units"]) == ("UNKNOWN", None, 1.0)


# -- failover ---------------------------------------------------------------------------------------


def test_verify_write_read_in_the_dr_replica(sb: Sandbox) -> None:
    steps.ensure_replica(P, D, ORDERS)
    with pytest.raises(ResourceNotReady):  # the replica is still being created
        steps.verify_write_read(D, ORDERS, "failover-1")
    _replicate()
    out = steps.verify_write_read(D, ORDERS, "failover-1")
    assert out["done"] is True and out["read_back"] is True and out["deleted"] is True
    assert out["key"] == {"pk": {"S": "failover-1"}} and out["table"] == ORDERS and out["region"] == D
    assert _ddb(D).get_item(TableName=ORDERS, Key=out["key"], ConsistentRead=True).get("Item") is None
    clock.sleep(60)  # the write and the delete both replicated: nothing is left in the primary either
    assert _ddb(P).get_item(TableName=ORDERS, Key=out["key"]).get("Item") is None
    # A re-run (the same execution name) converges.
    assert steps.verify_write_read(D, ORDERS, "failover-1")["read_back"] is True


def test_an_application_item_under_the_marker_key_is_left_alone(sb: Sandbox) -> None:
    _replicate()
    _ddb(D).put_item(TableName=ORDERS, Item={"pk": {"S": "failover-2"}, "order": {"S": "real"}})
    with pytest.raises(PreconditionFailed, match="pilotlight did not write"):
        steps.verify_write_read(D, ORDERS, "failover-2")
    assert _ddb(D).get_item(TableName=ORDERS, Key={"pk": {"S": "failover-2"}})["Item"]["order"] == {"S": "real"}


def test_marker_keys_of_every_key_type(sb: Sandbox) -> None:
    _ddb(D).create_table(TableName="typed", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                                    {"AttributeName": "at", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"},
                                               {"AttributeName": "at", "AttributeType": "B"}])
    out = steps.verify_write_read(D, "typed", "exec-9")
    assert out["read_back"] and out["deleted"]
    assert set(out["key"]) == {"id", "at"} and out["key"]["at"] == {"B": "exec-9"} and out["key"]["id"]["N"].isdigit()
    assert _ddb(D).scan(TableName="typed")["Count"] == 0


def test_a_read_back_that_differs_is_a_named_error(sb: Sandbox) -> None:
    _replicate()

    def stale(**_: Any) -> Any:
        return responses.ok({"Item": {"pk": {"S": "failover-3"}}})

    sb._events.register_first("before-call.dynamodb.GetItem", stale, unique_id="test-stale-read")
    try:
        with pytest.raises(steps.ReadBackMismatch):
            steps.verify_write_read(D, ORDERS, "failover-3")
    finally:
        sb._events.unregister("before-call.dynamodb.GetItem", unique_id="test-stale-read")
    assert _ddb(D).get_item(TableName=ORDERS, Key={"pk": {"S": "failover-3"}}).get("Item") is None  # still deleted


def test_set_write_region_is_idempotent(sb: Sandbox) -> None:
    boto3.client("ssm", region_name=D).delete_parameter(Name=PARAMETER)  # the seed made it; a plan may not have
    first = steps.set_write_region(D, PARAMETER, D)
    assert first == {"parameter": PARAMETER, "previous": None, "value": D, "changed": True}
    assert steps.set_write_region(D, PARAMETER, D) == {"parameter": PARAMETER, "previous": D, "value": D,
                                                         "changed": False}
    ssm = boto3.client("ssm", region_name=D)
    ssm.put_parameter(Name=PARAMETER, Value=P, Type="String", Overwrite=True)
    assert steps.set_write_region(D, PARAMETER, D)["previous"] == P
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"] == {**ssm.get_parameter(Name=PARAMETER)["Parameter"],
                                                              "Value": D, "Type": "String"}


# -- drills -----------------------------------------------------------------------------------------


def _drill_id(days_ago: float = 0) -> str:
    started = clock.datetime_now() - dt.timedelta(days=days_ago)
    return drill.drill_id(f"arn:aws:states:{D}:123456789012:execution:x:{days_ago}", started)


def _leftover(drill_id: str, plan: str = PLAN.name, table: str = ORDERS) -> dict[str, Any]:
    """A marker item as a drill that stopped between its write and its delete leaves it."""
    key = {"pk": {"S": steps.DRILL_PREFIX + drill_id}}
    _ddb(D).put_item(TableName=table, Item={**key, steps.MARKER_ATTRIBUTE: {"S": steps.DRILL_PREFIX + drill_id},
                                            steps.DRILL_ATTRIBUTE: {"S": drill_id}, steps.PLAN_ATTRIBUTE: {"S": plan}})
    return key


def test_drill_marker_and_remove_drill_items_leave_nothing(sb: Sandbox) -> None:
    _replicate()
    _replicate(CARTS)
    this = _drill_id()
    out = steps.drill_marker(D, PLAN.name, this, ORDERS)
    assert out["drill"] == this and out["read_back"] and out["deleted"]
    assert out["key"] == {"pk": {"S": f"pilotlight-drill#{this}"}}
    with pytest.raises(PreconditionFailed):
        steps.drill_marker(D, PLAN.name, "not-a-drill", ORDERS)

    # Leftovers: this drill's (in both tables), an old one, a running one, another plan's, an application item.
    mine = [_leftover(this), _leftover(this, table=CARTS)]
    old, running = _drill_id(days_ago=3), _drill_id(days_ago=2)
    old_key, running_key = _leftover(old), _leftover(running)
    other_plan = _leftover(_drill_id(days_ago=4), plan="another")
    _ddb(D).put_item(TableName=ORDERS, Item={"pk": {"S": "pilotlight-drill#looks-like-one"}})

    by_id = steps.remove_drill_items(D, PLAN.name, [ORDERS, {"name": CARTS}, "gone-table"], {"ids": [this]})
    assert by_id["missing"] == ["gone-table"]
    assert sorted(d["table"] for d in by_id["deleted"]) == [CARTS, ORDERS]
    assert all(_ddb(D).get_item(TableName=t, Key=k).get("Item") is None for t, k in zip([ORDERS, CARTS], mine,
                                                                                         strict=True))

    sweep = {"sweep": {"running": [running], "older_than_seconds": 86400}}
    swept = steps.remove_drill_items(D, PLAN.name, [ORDERS, CARTS], sweep)
    assert [d["drill"] for d in swept["deleted"]] == [old] and swept["truncated"] == []
    assert _ddb(D).get_item(TableName=ORDERS, Key=old_key).get("Item") is None
    for key in (running_key, other_plan, {"pk": {"S": "pilotlight-drill#looks-like-one"}}):
        assert _ddb(D).get_item(TableName=ORDERS, Key=key).get("Item") is not None, key
    assert steps.remove_drill_items(D, PLAN.name, [ORDERS], {"ids": [this]})["deleted"] == []  # idempotent


# -- readiness ---------------------------------------------------------------------------------------


def test_readiness_is_ready_for_a_replicated_table(sb: Sandbox) -> None:
    _replicate()
    steps.set_write_region(D, PARAMETER, P)
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "fresh"}})
    clock.sleep(30)
    checks = readiness_dynamodb.check_table(_ctx(), _item(ORDERS, PARAMETER))
    assert [(c["check"], c["status"]) for c in checks] == [
        ("table-replica", "READY"), ("table-replication-latency", "READY"), ("table-capacity", "READY"),
        ("write-region-setting", "READY")]
    assert all(set(c) == {"check", "resource", "status", "reason", "evidence"} and c["resource"] == ORDERS
               for c in checks)


def test_readiness_not_ready_without_a_replica_or_while_it_is_created(sb: Sandbox) -> None:
    boto3.client("ssm", region_name=D).delete_parameter(Name=PARAMETER)
    none = _check("table-replica", CARTS)
    assert none["status"] == "NOT_READY" and f"no replica in {D}" in none["reason"]
    steps.ensure_replica(P, D, CARTS)
    creating = _check("table-replica", CARTS)
    assert creating["status"] == "NOT_READY" and "is CREATING, not ACTIVE" in creating["reason"]
    missing = _check("write-region-setting", ORDERS, PARAMETER)
    assert missing["status"] == "NOT_READY" and f"{PARAMETER} does not exist in {D}" in missing["reason"]


def test_readiness_not_ready_above_the_rpo(sb: Sandbox) -> None:
    _replicate()
    idle = _check("table-replication-latency")  # nothing written lately: nothing waiting to replicate
    assert idle["status"] == "READY" and "no writes to" in idle["reason"]
    sb.dynamodb.replicate_delay = lambda: 1200.0
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "late"}})
    clock.sleep(1230)
    check = _check("table-replication-latency")
    rpo = PLAN.objectives.rpo_minutes * 60
    assert check["status"] == "NOT_READY" and f"1200 s behind, above the RPO of {rpo} s" in check["reason"]


def test_readiness_not_ready_when_dr_capacity_is_below_the_primarys_recent_use(sb: Sandbox) -> None:
    _odd_table(BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 50, "WriteCapacityUnits": 10})
    boto3.client("application-autoscaling", region_name=P).register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId="table/odd", ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=10, MaxCapacity=100)
    _replicate("odd")
    # The DR replica's write capacity auto scales to at most 20 units; its reads are provisioned (50).
    boto3.client("application-autoscaling", region_name=D).register_scalable_target(
        ServiceNamespace="dynamodb", ResourceId="table/odd", ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=5, MaxCapacity=20)
    cw = boto3.client("cloudwatch", region_name=P)
    now = clock.datetime_now()
    for metric, total in (("ConsumedWriteCapacityUnits", 3000.0), ("ConsumedReadCapacityUnits", 600.0)):
        cw.put_metric_data(Namespace="AWS/DynamoDB", MetricData=[{
            "MetricName": metric, "Dimensions": [{"Name": "TableName", "Value": "odd"}], "Value": total,
            "Timestamp": now - dt.timedelta(hours=2), "Unit": "Count"}])
    check = _check("table-capacity", "odd")
    assert check["status"] == "NOT_READY", check
    # 3000 write units in one minute: 50/s at peak, above the replica's auto scaling maximum of 20.
    assert "write capacity 20 (auto scaling maximum) is below the primary's peak of 50.0/s" in check["reason"]
    assert "read capacity" not in check["reason"]  # 10/s of reads fit in 50
    assert check["evidence"]["write"] == {"dr_capacity": 20.0, "autoscaled": True, "primary_peak_per_second": 50.0}
    assert check["evidence"]["read"]["dr_capacity"] == 50.0
    assert _check("table-capacity")["status"] == "UNKNOWN"  # shop-orders has no replica yet


def test_readiness_capacity_of_an_on_demand_replica_is_ready(sb: Sandbox) -> None:
    _replicate()
    check = _check("table-capacity")
    assert check["status"] == "READY" and "on-demand" in check["reason"]


# -- the DR saved configuration's write-region property ---------------------------------------------


def test_save_configuration_sets_the_write_region_property_idempotently(reference_plan: Plan) -> None:
    plan = reference_plan
    env = plan.environments[0]
    with Sandbox() as box:
        box.seed(plan)
        ec2 = boto3.client("ec2", region_name=plan.dr_region)
        base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image = ec2.create_image(InstanceId=instance, Name="dr-copy")
        args = {"plan": plan.name, "primary_region": plan.primary_region, "dr_region": plan.dr_region,
                "application": env.application, "environment": env.name, "network": env.dr_network.model_dump(),
                "image_id": image["ImageId"], "properties": {"WRITE_REGION": plan.dr_region}}
        first = beanstalk.save_configuration(**args)
        assert first["record"]["status"] == "created"
        eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
        options = eb.describe_configuration_settings(ApplicationName=env.application, TemplateName=first["template"])[
            "ConfigurationSettings"][0]["OptionSettings"]
        assert {(o["Namespace"], o["OptionName"]): o.get("Value") for o in options}[
            (beanstalk.ENV_PROPERTIES, "WRITE_REGION")] == plan.dr_region
        assert beanstalk.save_configuration(**args)["record"]["status"] == "unchanged"
        assert beanstalk.save_configuration(**{**args, "properties": {"WRITE_REGION": "eu-west-1"}})[
            "record"]["status"] == "updated"


# -- IAM: each group of actions within the function's generated policy ------------------------------


def _deploy_function(sb: Sandbox) -> str:
    name = render.function_name(PLAN, "dynamodb")
    sb.lambdas.register(name, "dynamodb")
    sb.iam.attach(name, plan_iam.statements(plan_iam.registry_for("dynamodb"), PLAN, account=sb.account_id))
    return name


def _invoke(name: str, **event: Any) -> dict[str, Any]:
    out = boto3.client("lambda", region_name=D).invoke(FunctionName=name, Payload=json.dumps(event))
    payload = json.loads(out["Payload"].read())
    if out.get("FunctionError"):
        return {"error": payload["errorType"], "message": payload["errorMessage"]}
    return payload


def test_the_policy_grants_no_mutation_beyond_the_plans_tables_and_parameters() -> None:
    statements = plan_iam.statements(plan_iam.registry_for("dynamodb"), PLAN, account="123456789012")
    for statement in statements:
        mutating = [a for a in statement["Action"] if plan_iam.is_mutating(a)]
        if mutating:
            assert "*" not in statement["Resource"], statement
    by_action: dict[str, set[str]] = {}
    for statement in statements:
        for action in statement["Action"]:
            by_action.setdefault(action, set()).update(statement["Resource"])
    arn = "arn:aws:dynamodb:{}:123456789012:table/{}"
    assert by_action["dynamodb:UpdateTable"] == {arn.format(P, t) for t in (CARTS, ORDERS)}
    assert by_action["dynamodb:CreateTableReplica"] == {arn.format(D, t) for t in (CARTS, ORDERS)}
    assert by_action["dynamodb:PutItem"] == {arn.format(D, t) for t in (CARTS, ORDERS)}
    assert by_action["ssm:PutParameter"] == {f"arn:aws:ssm:{D}:123456789012:parameter{PARAMETER}"}
    assert any(a.endswith("role/aws-service-role/replication.dynamodb.amazonaws.com/"
                          "AWSServiceRoleForDynamoDBReplication") for a in by_action["iam:CreateServiceLinkedRole"])


def test_replicate_actions_run_within_the_function_policy(sb: Sandbox) -> None:
    name = _deploy_function(sb)
    out = _invoke(name, action="ensure_replica", primary_region=P, region=D, table=ORDERS)
    assert out["record"]["status"] == "created", out
    while not out["done"]:
        clock.sleep(60)
        out = _invoke(name, action="check_replica", primary_region=P, region=D, table=ORDERS, record=out["record"],
                      attempt=out["attempt"])
        assert "error" not in out, out
    _ddb(P).put_item(TableName=ORDERS, Item={"pk": {"S": "x"}})
    clock.sleep(30)
    lag = _invoke(name, action="replication_latency", primary_region=P, region=D, table=ORDERS, rpo_minutes=15)
    assert lag["status"] == "WITHIN_RPO", lag
    assert sb.iam.denials == []
    # A table the plan does not name is not the function's to change.
    _odd_table()
    denied = _invoke(name, action="ensure_replica", primary_region=P, region=D, table="odd")
    assert denied["error"] == "AccessDenied" and "dynamodb:DescribeTable" in denied["message"]


def test_failover_actions_run_within_the_function_policy_in_the_dr_region_only(sb: Sandbox) -> None:
    _replicate()
    name = _deploy_function(sb)
    out = _invoke(name, action="verify_write_read", region=D, table=ORDERS, marker="failover-x")
    assert out["read_back"] is True and out["deleted"] is True, out
    moved = _invoke(name, action="set_write_region", region=D, parameter=PARAMETER, value=D)
    assert moved["changed"] is True, moved
    assert sb.iam.denials == []
    in_primary = _invoke(name, action="verify_write_read", region=P, table=ORDERS, marker="failover-x")
    assert in_primary["error"] == "AccessDenied"
    other = _invoke(name, action="set_write_region", region=D, parameter="/shop/other", value=D)
    assert other["error"] == "AccessDenied" and "ssm:GetParameter" in other["message"]


def test_drill_actions_run_within_the_function_policy(sb: Sandbox) -> None:
    _replicate()
    name = _deploy_function(sb)
    this = _drill_id()
    out = _invoke(name, action="drill_marker", region=D, plan=PLAN.name, drill_id=this, table=ORDERS)
    assert out["deleted"] is True and out["drill"] == this, out
    _leftover(_drill_id(days_ago=3))
    swept = _invoke(name, action="remove_drill_items", region=D, plan=PLAN.name, tables=[ORDERS, CARTS],
                    drills={"sweep": {"running": [], "older_than_seconds": 3600}})
    assert len(swept["deleted"]) == 1 and swept["missing"] == [CARTS], swept  # no replica of carts in DR yet
    assert sb.iam.denials == []


def test_readiness_checks_run_within_their_declared_permissions(sb: Sandbox) -> None:
    _replicate()
    registry = Registry("readiness")
    registry.action("check", permissions=readiness_dynamodb.PERMISSIONS, resource=readiness_dynamodb.RESOURCES)(
        readiness_dynamodb.check_table)
    name = render.function_name(PLAN, "readiness")
    sb.iam.attach(name, plan_iam.statements(registry, PLAN, account=sb.account_id))
    with sb.iam.acting_as(name):
        checks = readiness_dynamodb.check_table(_ctx(), _item(ORDERS, PARAMETER))
    assert [c["status"] for c in checks] == ["READY", "READY", "READY", "READY"]  # the seed made the parameter
    assert sb.iam.denials == []
    # A provisioned table's capacity check reads Application Auto Scaling and CloudWatch: granted on "*".
    _ddb(P).update_table(TableName=ORDERS, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    _ddb(D).update_table(TableName=ORDERS, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    with sb.iam.acting_as(name):
        capacity = [c for c in readiness_dynamodb.check_table(_ctx(), _item(ORDERS)) if c["check"] == "table-capacity"]
    assert capacity[0]["evidence"]["billing_mode"] == "PROVISIONED", capacity
    assert sb.iam.denials == []
    # A table the plan does not name is not the readiness function's to read.
    _odd_table()
    with sb.iam.acting_as(name), pytest.raises(Exception, match="AccessDenied"):
        readiness_dynamodb.check_table(_ctx(), _item("odd"))
