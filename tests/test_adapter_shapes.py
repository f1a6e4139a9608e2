"""Every answer the sandbox's adapters give (or complete) matches botocore's output shape."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.validate import ParamValidator

from sandbox import Sandbox, clock
from tests.replicate_helpers import run
from workflows.plan import load_plan

CHECKED = {
    "elasticbeanstalk": ["DescribeConfigurationSettings", "CreateConfigurationTemplate", "DeleteConfigurationTemplate",
                         "CreateApplicationVersion", "DescribeApplicationVersions", "DescribeEnvironmentResources",
                         "TerminateEnvironment", "DescribeEnvironmentHealth", "CreateEnvironment",
                         "DescribeEnvironments", "DescribeApplications"],
    "ec2": ["DescribeImages", "CreateImage", "CopyImage"],
    "s3": ["HeadObject", "GetObject", "GetBucketReplication", "PutObject"],
    "cloudwatch": ["GetMetricStatistics"],
    "service-quotas": ["GetServiceQuota"],
}


# The health_check DNS cutover (sandbox/adapters_route53.py).
CHECKED_DNS = {
    "route53": ["CreateHealthCheck", "GetHealthCheck", "ListHealthChecks", "UpdateHealthCheck",
                "GetHealthCheckStatus", "TestDNSAnswer"],
    "cloudwatch": ["DescribeAlarms"],
}

# DynamoDB global tables (sandbox/adapters_dynamodb.py).
CHECKED_DDB = {
    "dynamodb": ["UpdateTable", "DescribeTable"],
    "cloudwatch": ["GetMetricStatistics"],
}


class Recorder:
    def __init__(self, checked: dict[str, list[str]] | None = None) -> None:
        self.seen: list[tuple[str, str, Any, dict[str, Any]]] = []
        self.checked = CHECKED if checked is None else checked
        self._lock = threading.Lock()

    def __call__(self, model: Any, parsed: dict[str, Any], http_response: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if http_response.status_code < 300 and model.name in self.checked.get(service, []):
            body = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
            with self._lock:
                self.seen.append((service, model.name, model, body))


def shape_problems(model: Any, parsed: dict[str, Any]) -> str:
    if model.output_shape is None:
        return "" if not parsed else f"unexpected members {sorted(parsed)}"
    report = ParamValidator().validate(parsed, model.output_shape)
    return report.generate_report() if report.has_errors() else ""


def test_adapter_answers_match_botocore_output_shapes() -> None:
    plan = load_plan("examples/second.yaml")
    recorder = Recorder()
    with Sandbox() as sb:
        boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-shape-recorder")
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        run(sb, plan)
        env = plan.environments[0]
        eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
        template = f"pilotlight-{plan.name}-{env.name}"
        eb.create_environment(ApplicationName=env.application, EnvironmentName=env.dr_environment_name,
                              TemplateName=template, VersionLabel="v1")
        eb.describe_environment_health(EnvironmentName=env.dr_environment_name, AttributeNames=["All"])
        eb.terminate_environment(EnvironmentName=env.dr_environment_name)
        eb.delete_configuration_template(ApplicationName=env.application, TemplateName=template)
        s3 = boto3.client("s3", region_name=plan.primary_region)
        s3.get_object(Bucket=plan.buckets[0].source, Key=s3.list_objects_v2(Bucket=plan.buckets[0].source)[
            "Contents"][0]["Key"])
        s3.get_bucket_replication(Bucket=plan.buckets[0].source)
        quotas = boto3.client("service-quotas", region_name=plan.dr_region)
        quotas.get_service_quota(ServiceCode="ec2", QuotaCode="L-1216C47A")
        quotas.get_service_quota(ServiceCode="rds", QuotaCode="L-7B6409FD")
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    missing = [(s, op) for s, ops in CHECKED.items() for op in ops if (s, op) not in names]
    assert not missing
    problems = [f"{s}.{op}: {p}" for s, op, model, parsed in recorder.seen if (p := shape_problems(model, parsed))]
    assert not problems, "\n".join(problems[:10])


def test_dns_adapter_answers_match_botocore_output_shapes() -> None:
    plan = load_plan("examples/health-check.yaml")
    recorder = Recorder(CHECKED_DNS)
    with Sandbox() as sb:
        boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-shape-recorder")
        sb.seed(plan, pilot_light=False)
        sb.build_pilot_light(plan)
        r53 = boto3.client("route53")
        (check,) = r53.list_health_checks()["HealthChecks"]
        r53.get_health_check(HealthCheckId=check["Id"])
        r53.get_health_check_status(HealthCheckId=check["Id"])
        r53.update_health_check(HealthCheckId=check["Id"], HealthCheckVersion=check["HealthCheckVersion"],
                                InsufficientDataHealthStatus="LastKnownStatus")
        for name in (plan.dns.record_name, "nothing." + plan.dns.record_name):
            r53.test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id, RecordName=name, RecordType="CNAME")
        # The same CallerReference and settings give the existing check back, as Route 53 does.
        again = r53.create_health_check(CallerReference=check["CallerReference"],
                                        HealthCheckConfig={k: check["HealthCheckConfig"][k] for k in (
                                            "Type", "AlarmIdentifier", "InsufficientDataHealthStatus")})
        assert again["HealthCheck"]["Id"] == check["Id"]
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    assert not [(s, op) for s, ops in CHECKED_DNS.items() for op in ops if (s, op) not in names]
    problems = [f"{s}.{op}: {p}" for s, op, model, parsed in recorder.seen if (p := shape_problems(model, parsed))]
    assert not problems, "\n".join(problems[:10])


# Aurora Global Database (sandbox/adapters_aurora.py).
CHECKED_AURORA = {
    "rds": ["SwitchoverGlobalCluster", "FailoverGlobalCluster", "RemoveFromGlobalCluster", "DescribeGlobalClusters"],
    "cloudwatch": ["GetMetricStatistics"],
}


def test_aurora_adapter_answers_match_botocore_output_shapes() -> None:
    from tests.test_sandbox_aurora import build

    recorder = Recorder(CHECKED_AURORA)
    with Sandbox():
        boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-shape-recorder")
        w = build()
        w["west"].describe_global_clusters()
        cw = boto3.client("cloudwatch", region_name="us-west-2")
        cw.get_metric_statistics(Namespace="AWS/RDS", MetricName="AuroraGlobalDBRPOLag", Period=60,
                                 StartTime=datetime.now(UTC) - timedelta(minutes=3), EndTime=datetime.now(UTC),
                                 Statistics=["Maximum"], Dimensions=[{"Name": "DBClusterIdentifier",
                                                                      "Value": "orders-west"}])
        w["east"].switchover_global_cluster(GlobalClusterIdentifier="orders-global",
                                            TargetDbClusterIdentifier=w["secondary"])
        w["east"].describe_global_clusters(GlobalClusterIdentifier="orders-global")
        clock.advance(600)
        w["east"].failover_global_cluster(GlobalClusterIdentifier="orders-global", AllowDataLoss=True,
                                          TargetDbClusterIdentifier=w["primary"])
        clock.advance(600)
        w["west"].remove_from_global_cluster(GlobalClusterIdentifier="orders-global",
                                             DbClusterIdentifier=w["secondary"])
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    assert not [(s, op) for s, ops in CHECKED_AURORA.items() for op in ops if (s, op) not in names]
    problems = [f"{s}.{op}: {p}" for s, op, model, parsed in recorder.seen if (p := shape_problems(model, parsed))]
    assert not problems, "\n".join(problems[:10])


def test_dynamodb_adapter_answers_match_botocore_output_shapes() -> None:
    import datetime as dt

    from sandbox import clock

    recorder = Recorder(CHECKED_DDB)
    with Sandbox():
        boto3.DEFAULT_SESSION.events.register("after-call", recorder, unique_id="test-shape-recorder")
        primary = boto3.client("dynamodb", region_name="us-east-1")
        dr = boto3.client("dynamodb", region_name="us-west-2")
        primary.create_table(TableName="orders", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST",
                             StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        primary.update_table(TableName="orders", ReplicaUpdates=[{"Create": {"RegionName": "us-west-2"}}])
        dr.describe_table(TableName="orders")
        clock.wait_until(lambda: primary.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE",
                         timeout=4 * 3600, step=60)
        primary.put_item(TableName="orders", Item={"pk": {"S": "x"}})
        clock.sleep(60)
        boto3.client("cloudwatch", region_name="us-east-1").get_metric_statistics(
            Namespace="AWS/DynamoDB", MetricName="ReplicationLatency", Period=60, Statistics=["Average"],
            Dimensions=[{"Name": "TableName", "Value": "orders"}, {"Name": "ReceivingRegion", "Value": "us-west-2"}],
            StartTime=clock.datetime_now() - dt.timedelta(hours=1), EndTime=clock.datetime_now())
        primary.update_table(TableName="orders", ReplicaUpdates=[{"Delete": {"RegionName": "us-west-2"}}])
        dr.describe_table(TableName="orders")
        boto3.DEFAULT_SESSION.events.unregister("after-call", unique_id="test-shape-recorder")
    names = {(service, op) for service, op, _, _ in recorder.seen}
    assert not [(s, op) for s, ops in CHECKED_DDB.items() for op in ops if (s, op) not in names]
    # DynamoDB answers ProvisionedThroughput.NumberOfDecreasesToday 0 (so does moto) where the model says min 1.
    problems = [f"{s}.{op}: {line}" for s, op, model, parsed in recorder.seen
                for line in shape_problems(model, parsed).splitlines() if "NumberOfDecreasesToday" not in line]
    assert not problems, "\n".join(problems[:10])


def test_shape_check_catches_a_wrong_answer() -> None:
    model = botocore.session.get_session().get_service_model("elasticbeanstalk").operation_model(
        "DescribeEnvironmentHealth")
    assert shape_problems(model, {"EnvironmentName": "env-x", "Causes": "not a list"})
    assert shape_problems(model, {"EnvironmentName": "env-x", "Unknown": 1})
    assert not shape_problems(model, {"EnvironmentName": "env-x", "Causes": []})
