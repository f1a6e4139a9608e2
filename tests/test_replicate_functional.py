"""The replicate workflow run for real in the sandbox, checked through the AWS APIs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from sandbox import Sandbox, clock
from tests.replicate_helpers import dr_copies, run
from workflows.plan import Plan, load_plan

PLANS = ["examples/reference.yaml", "examples/second.yaml"]
_IDS = re.compile(r"\b(ami|vpc|subnet|sg)-[0-9a-f]{8,17}\b")


@pytest.fixture(scope="module", params=PLANS, ids=["reference", "second"])
def replicated(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """One sandbox per plan: the primary estate only, then replicate run twice."""
    plan = load_plan(request.param)
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        first = run(sb, plan)
        images_after_first = {e.name: sorted(i["ImageId"] for i in dr_copies(plan, e.name)) for e in plan.environments}
        second = run(sb, plan)
        yield {"plan": plan, "sb": sb, "first": first, "second": second,
               "images_after_first": images_after_first}


def _template(plan: Plan, env_name: str) -> dict[str, Any]:
    env = next(e for e in plan.environments if e.name == env_name)
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    return eb.describe_configuration_settings(
        ApplicationName=env.application, TemplateName=f"pilotlight-{plan.name}-{env.name}"
    )["ConfigurationSettings"][0]


def _option(settings: dict[str, Any], namespace: str, name: str) -> str | None:
    for opt in settings["OptionSettings"]:
        if opt["Namespace"] == namespace and opt["OptionName"] == name:
            return opt["Value"]
    return None


def test_first_run_creates_the_pilot_light_without_failures(replicated: dict[str, Any]) -> None:
    out, plan = replicated["first"], replicated["plan"]
    assert out["ok"] and out["failed"] == []
    # per environment: source image, DR copy, saved configuration; per database 1-2 replicas; per bucket a rule
    expected = 3 * len(plan.environments) + sum(1 + bool(d.az2_replica) for d in plan.databases) + len(plan.buckets)
    expected += len({e.application for e in plan.environments})  # application versions
    assert out["counts"]["created"] == expected


def test_dr_ami_is_tagged_with_its_source(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    primary = boto3.client("ec2", region_name=plan.primary_region)
    for env in plan.environments:
        (copy,) = dr_copies(plan, env.name)
        tags = {t["Key"]: t["Value"] for t in copy["Tags"]}
        assert copy["State"] == "available"
        source = primary.describe_images(ImageIds=[tags["pilotlight:source-ami"]])["Images"][0]
        assert {t["Key"]: t["Value"] for t in source["Tags"]}["pilotlight:environment"] == env.name
        assert tags["pilotlight:plan"] == plan.name and tags["pilotlight:created-at"]


def test_saved_configuration_names_only_dr_resources(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    eb = boto3.client("elasticbeanstalk", region_name=plan.primary_region)
    rds = boto3.client("rds", region_name=plan.dr_region)
    for env in plan.environments:
        primary = eb.describe_configuration_settings(ApplicationName=env.application, EnvironmentName=env.name)
        primary_ids = {m.group(0) for m in _IDS.finditer(json.dumps(primary["ConfigurationSettings"], default=str))}
        assert primary_ids, "the seeded primary configuration names its AMI, VPC, subnets and groups"
        settings = _template(plan, env.name)
        (copy,) = dr_copies(plan, env.name)
        net = env.dr_network
        assert _option(settings, "aws:autoscaling:launchconfiguration", "ImageId") == copy["ImageId"]
        assert _option(settings, "aws:ec2:vpc", "VPCId") == net.vpc_id
        assert _option(settings, "aws:ec2:vpc", "Subnets") == ",".join(net.subnets)
        assert _option(settings, "aws:ec2:vpc", "ELBSubnets") == ",".join(net.elb_subnets or net.subnets)
        assert _option(settings, "aws:autoscaling:launchconfiguration", "SecurityGroups") == ",".join(
            net.security_groups)
        if plan.databases:
            replica = rds.describe_db_instances(DBInstanceIdentifier=plan.databases[0].dr_replica_identifier)
            endpoint = replica["DBInstances"][0]["Endpoint"]["Address"]
            assert _option(settings, "aws:elasticbeanstalk:application:environment", "DB_HOST") == endpoint
        assert settings["PlatformArn"].split(":")[3] == plan.dr_region
        text = json.dumps(settings, default=str)
        assert plan.primary_region not in text
        assert not primary_ids & {m.group(0) for m in _IDS.finditer(text)}
        for src, dst in net.certificate_arns.items():
            assert src not in text and dst in text


def test_application_version_is_available_in_dr(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    eb = boto3.client("elasticbeanstalk", region_name=plan.dr_region)
    s3 = boto3.client("s3", region_name=plan.dr_region)
    for app in {e.application for e in plan.environments}:
        (version,) = eb.describe_application_versions(ApplicationName=app)["ApplicationVersions"]
        bundle = version["SourceBundle"]
        assert version["VersionLabel"] == "v1" and bundle["S3Bucket"] == plan.dr_bundle_bucket
        assert s3.get_bucket_location(Bucket=bundle["S3Bucket"])["LocationConstraint"] == plan.dr_region
        s3.head_object(Bucket=bundle["S3Bucket"], Key=bundle["S3Key"])


def test_replicas_have_the_plan_classes_and_zones(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    dr = boto3.client("rds", region_name=plan.dr_region)
    primary = boto3.client("rds", region_name=plan.primary_region)
    for db in plan.databases:
        replica = dr.describe_db_instances(DBInstanceIdentifier=db.dr_replica_identifier)["DBInstances"][0]
        assert replica["DBInstanceClass"] == db.replica_instance_class
        assert replica["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{db.identifier}")
        assert replica["AvailabilityZone"].startswith(plan.dr_region)
        if db.az2_replica:
            az2 = primary.describe_db_instances(DBInstanceIdentifier=db.az2_replica.identifier)["DBInstances"][0]
            assert az2["AvailabilityZone"] == db.az2_replica.availability_zone
            assert az2["DBInstanceClass"] == db.replica_instance_class
            assert az2["ReadReplicaSourceDBInstanceIdentifier"] == db.identifier


def test_encrypted_sources_are_replicated_with_the_dr_key(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    dr = boto3.client("rds", region_name=plan.dr_region)
    for db in plan.databases:
        replica = dr.describe_db_instances(DBInstanceIdentifier=db.dr_replica_identifier)["DBInstances"][0]
        if db.storage_encrypted:
            assert replica["StorageEncrypted"] and replica["KmsKeyId"] == db.dr_kms_key_id
    for env in plan.environments:
        (copy,) = dr_copies(plan, env.name)
        ebs = copy["BlockDeviceMappings"][0]["Ebs"]
        if plan.ami.dr_kms_key_id:
            assert ebs["Encrypted"] and ebs["KmsKeyId"] == plan.ami.dr_kms_key_id
        else:
            assert not ebs["Encrypted"]
    if plan.name == "ledger":  # the second plan is the encrypted estate
        assert plan.ami.dr_kms_key_id and plan.databases[0].storage_encrypted


def test_replication_copies_a_new_object(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    src = boto3.client("s3", region_name=plan.primary_region)
    dst = boto3.client("s3", region_name=plan.dr_region)
    for pair in plan.buckets:
        assert dst.get_bucket_versioning(Bucket=pair.destination)["Status"] == "Enabled"
        src.put_object(Bucket=pair.source, Key="orders/42.json", Body=b'{"order": 42}')
        clock.wait_until(lambda b=pair.source: src.head_object(Bucket=b, Key="orders/42.json").get(
            "ReplicationStatus") == "COMPLETED", timeout=900, step=5, what="replication of orders/42.json")
        copy = dst.get_object(Bucket=pair.destination, Key="orders/42.json")
        assert copy["Body"].read() == b'{"order": 42}' and copy["ReplicationStatus"] == "REPLICA"


def test_delete_marker_policy_follows_the_plan(replicated: dict[str, Any]) -> None:
    plan = replicated["plan"]
    s3 = boto3.client("s3", region_name=plan.primary_region)
    for pair in plan.buckets:
        rule = s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]["Rules"][0]
        wanted = "Enabled" if pair.replicate_delete_markers else "Disabled"
        assert rule["DeleteMarkerReplication"]["Status"] == wanted


def test_second_run_creates_nothing(replicated: dict[str, Any]) -> None:
    plan, second = replicated["plan"], replicated["second"]
    assert second["counts"]["created"] == 0 and second["counts"]["updated"] == 0
    assert second["counts"]["deleted"] == 0 and second["ok"]
    for env in plan.environments:
        assert sorted(i["ImageId"] for i in dr_copies(plan, env.name)) == replicated["images_after_first"][env.name]


def test_canaries_are_verified(replicated: dict[str, Any]) -> None:
    plan, out = replicated["plan"], replicated["first"]
    verified = [r["resource"] for r in out["verified"] if r["resource"].startswith("canary")]
    assert len(verified) == len(plan.buckets)

