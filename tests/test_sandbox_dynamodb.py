"""DynamoDB global tables (2019.11.21) in the sandbox: replicas, replication, ReplicationLatency."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import Sandbox, clock
from sandbox.latency import duration

PRIMARY, DR = "us-east-1", "us-west-2"
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _table(ddb, name="orders", **kwargs):
    params = {"BillingMode": "PAY_PER_REQUEST", "StreamSpecification": STREAM, **kwargs}
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **params)


def _replica_status(ddb, name="orders"):
    replicas = ddb.describe_table(TableName=name)["Table"].get("Replicas", [])
    return {r["RegionName"]: r["ReplicaStatus"] for r in replicas}


def _add_replica(primary):
    answer = primary.update_table(TableName="orders", ReplicaUpdates=[{"Create": {"RegionName": DR}}])
    clock.wait_until(lambda: _replica_status(primary) == {DR: "ACTIVE"}, timeout=3 * 3600, step=60,
                     what="replica ACTIVE")
    return answer


def _get(ddb, pk):
    return ddb.get_item(TableName="orders", Key={"pk": {"S": pk}}).get("Item")


def test_replica_is_created_in_modeled_time_with_the_source_items():
    with Sandbox():
        primary, dr = boto3.client("dynamodb", region_name=PRIMARY), boto3.client("dynamodb", region_name=DR)
        _table(primary)
        primary.put_item(TableName="orders", Item={"pk": {"S": "before"}, "v": {"N": "1"}})
        start = clock.now()
        answer = primary.update_table(TableName="orders", ReplicaUpdates=[{"Create": {"RegionName": DR}}])
        desc = answer["TableDescription"]
        assert desc["TableStatus"] == "UPDATING"
        assert desc["Replicas"] == [{"RegionName": DR, "ReplicaStatus": "CREATING"}]
        assert desc["GlobalTableVersion"] == "2019.11.21"
        # The new replica exists, being created: it cannot be read yet.
        assert dr.describe_table(TableName="orders")["Table"]["TableStatus"] == "CREATING"
        with pytest.raises(ClientError) as err:
            _get(dr, "before")
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        # Another change meanwhile is refused, as for any table being updated.
        with pytest.raises(ClientError) as err:
            primary.update_table(TableName="orders", ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
        assert err.value.response["Error"]["Code"] == "ResourceInUseException"

        clock.wait_until(lambda: _replica_status(primary) == {DR: "ACTIVE"}, timeout=3 * 3600, step=60,
                         what="replica ACTIVE")
        assert clock.now() - start >= duration("dynamodb.create_replica")
        assert primary.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE"
        table = dr.describe_table(TableName="orders")["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["Replicas"] == [{"RegionName": PRIMARY, "ReplicaStatus": "ACTIVE"}]
        assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert "orders" in dr.list_tables()["TableNames"]
        assert _get(dr, "before") == {"pk": {"S": "before"}, "v": {"N": "1"}}  # the backfill


def test_items_replicate_both_ways_after_the_modeled_delay():
    with Sandbox():
        primary, dr = boto3.client("dynamodb", region_name=PRIMARY), boto3.client("dynamodb", region_name=DR)
        _table(primary)
        _add_replica(primary)
        delay = duration("dynamodb.replicate")
        written = clock.now()
        with clock.hold():  # time stands still while we look: the item is not there yet
            primary.put_item(TableName="orders", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
            assert _get(dr, "a") is None
        clock.wait_until(lambda: _get(dr, "a"), timeout=60, step=delay / 4, what="item replicated")
        assert clock.now() - written >= delay  # it arrived after the modeled delay, not before
        # A replica takes writes too (multi-active), and deletes and updates replicate.
        dr.update_item(TableName="orders", Key={"pk": {"S": "a"}}, UpdateExpression="SET v = :v",
                       ExpressionAttributeValues={":v": {"N": "2"}})
        dr.put_item(TableName="orders", Item={"pk": {"S": "b"}})
        clock.wait_until(lambda: (_get(primary, "a") or {}).get("v") == {"N": "2"} and _get(primary, "b"),
                         timeout=60, step=delay / 4, what="DR writes replicated")
        primary.delete_item(TableName="orders", Key={"pk": {"S": "b"}})
        clock.wait_until(lambda: _get(dr, "b") is None, timeout=60, step=delay / 4, what="delete replicated")
        resource = boto3.resource("dynamodb", region_name=PRIMARY).Table("orders")
        with resource.batch_writer() as batch:
            batch.put_item(Item={"pk": "c"})
        clock.wait_until(lambda: _get(dr, "c"), timeout=60, step=delay / 4, what="batch write replicated")


def test_concurrent_writes_settle_on_the_last_writer():
    with Sandbox():
        primary, dr = boto3.client("dynamodb", region_name=PRIMARY), boto3.client("dynamodb", region_name=DR)
        _table(primary)
        _add_replica(primary)
        with clock.hold():  # two writes at the same modeled instant: both replicas settle on one of them
            primary.put_item(TableName="orders", Item={"pk": {"S": "tie"}, "v": {"S": "east"}})
            dr.put_item(TableName="orders", Item={"pk": {"S": "tie"}, "v": {"S": "west"}})
        clock.sleep(duration("dynamodb.replicate") * 3)
        assert _get(primary, "tie")["v"] == _get(dr, "tie")["v"]
        primary.put_item(TableName="orders", Item={"pk": {"S": "k"}, "v": {"S": "east"}})
        clock.sleep(duration("dynamodb.replicate") / 2)
        dr.put_item(TableName="orders", Item={"pk": {"S": "k"}, "v": {"S": "west"}})  # later: it wins
        clock.sleep(duration("dynamodb.replicate") * 3)
        assert _get(primary, "k")["v"] == {"S": "west"}
        assert _get(dr, "k")["v"] == {"S": "west"}


def test_replication_latency_metric():
    with Sandbox():
        primary = boto3.client("dynamodb", region_name=PRIMARY)
        _table(primary)
        _add_replica(primary)
        start = clock.datetime_now()
        for i in range(3):
            primary.put_item(TableName="orders", Item={"pk": {"S": f"m{i}"}})
        clock.sleep(60)
        cw = boto3.client("cloudwatch", region_name=PRIMARY)
        points = cw.get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency",
            Dimensions=[{"Name": "TableName", "Value": "orders"}, {"Name": "ReceivingRegion", "Value": DR}],
            StartTime=start - dt.timedelta(minutes=5), EndTime=clock.datetime_now() + dt.timedelta(minutes=5),
            Period=60, Statistics=["Average", "SampleCount"])["Datapoints"]
        assert sum(p["SampleCount"] for p in points) == 3
        assert {p["Average"] for p in points} == {duration("dynamodb.replicate") * 1000}


def test_replica_deletion():
    with Sandbox():
        primary, dr = boto3.client("dynamodb", region_name=PRIMARY), boto3.client("dynamodb", region_name=DR)
        _table(primary)
        _add_replica(primary)
        answer = primary.update_table(TableName="orders", ReplicaUpdates=[{"Delete": {"RegionName": DR}}])
        assert answer["TableDescription"]["Replicas"] == [{"RegionName": DR, "ReplicaStatus": "DELETING"}]
        assert answer["TableDescription"]["TableStatus"] == "UPDATING"
        assert dr.describe_table(TableName="orders")["Table"]["TableStatus"] == "DELETING"
        clock.wait_until(lambda: not _replica_status(primary), timeout=3600, step=30, what="replica deleted")
        assert primary.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE"
        with pytest.raises(ClientError) as err:
            dr.describe_table(TableName="orders")
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
        primary.put_item(TableName="orders", Item={"pk": {"S": "after"}})  # no longer replicated
        clock.sleep(60)
        assert "orders" not in dr.list_tables()["TableNames"]


@pytest.mark.parametrize("kwargs, problem", [
    ({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}, "NEW_AND_OLD_IMAGES"),
    ({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}},
     "Pay-Per-Request or AutoScaled"),
])
def test_replica_prerequisites(kwargs, problem):
    with Sandbox():
        primary = boto3.client("dynamodb", region_name=PRIMARY)
        _table(primary, **kwargs)
        with pytest.raises(ClientError) as err:
            primary.update_table(TableName="orders", ReplicaUpdates=[{"Create": {"RegionName": DR}}])
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert problem in err.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as err:
            primary.update_table(TableName="orders", ReplicaUpdates=[{"Delete": {"RegionName": DR}}])
        assert err.value.response["Error"]["Code"] == "ValidationException"


def test_provisioned_table_with_write_auto_scaling_can_have_a_replica():
    with Sandbox():
        primary = boto3.client("dynamodb", region_name=PRIMARY)
        _table(primary, BillingMode="PROVISIONED",
               ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
        boto3.client("application-autoscaling", region_name=PRIMARY).register_scalable_target(
            ServiceNamespace="dynamodb", ResourceId="table/orders",
            ScalableDimension="dynamodb:table:WriteCapacityUnits", MinCapacity=5, MaxCapacity=50)
        _add_replica(primary)
        assert _replica_status(boto3.client("dynamodb", region_name=DR)) == {PRIMARY: "ACTIVE"}
