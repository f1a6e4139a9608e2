"""AMI copies and S3 replication as the AWS API references describe them.

- an encrypted copy gets the KMS permissions EC2 uses on the caller's behalf, on the source key
  (primary region, through EC2 only) and on the DR key, never on "*";
- a copy is tagged by CopyImage itself (TagSpecifications), so no failed CreateTags can leave an
  untagged copy that a re-run cannot find; an image not yet visible right after its creation is
  retried, not fatal;
- pruning deregisters with DeleteAssociatedSnapshots, so no snapshot of a pruned image is left;
- the replication rule is merged into the bucket's configuration (other rules kept, schema and
  priorities valid), and objects written before replication was enabled are counted.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest

from infra import iam
from lambdas import s3 as s3_steps
from sandbox import Sandbox, clock
from tests.replicate_helpers import dr_copies, old_copies, run
from tests.test_adapter_shapes import shape_problems
from workflows import render
from workflows.plan import Plan, load_plan

ACCOUNT = "123456789012"
SOURCE_KEY_ACTIONS = {"kms:Decrypt", "kms:DescribeKey"}
DR_KEY_ACTIONS = {"kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:CreateGrant",
                  "kms:DescribeKey"}


def _invoke(plan: Plan, service: str, event: dict[str, Any]) -> dict[str, Any]:
    """Call a deployed handler through the sandbox's Lambda service; its payload (errorType on failure)."""
    answer = boto3.client("lambda", region_name=plan.dr_region).invoke(
        FunctionName=render.function_name(plan, service), Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read())


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def _shape_ok(service: str, operation: str, answer: dict[str, Any]) -> bool:
    """The adapter's answer matches botocore's output shape (as tests/test_adapter_shapes.py checks)."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    problems = shape_problems(model, {k: v for k, v in answer.items() if k != "ResponseMetadata"})
    assert not problems, problems
    return True


# -- 4. KMS permissions of an encrypted copy ----------------------------------------------------------

def test_encrypted_copy_grants_kms_on_the_source_and_dr_keys_only() -> None:
    plan = load_plan("examples/second.yaml")
    statements = iam.statements(iam.registry_for("ami"), plan, account=ACCOUNT)
    kms = [s for s in statements if any(a.startswith("kms:") for a in s["Action"])]
    assert kms and all(s["Resource"] != ["*"] for s in kms)
    source = [s for s in kms if s["Resource"] == [f"arn:aws:kms:{plan.primary_region}:{ACCOUNT}:key/*"]]
    assert len(source) == 1
    assert source[0]["Condition"] == {"StringEquals": {"kms:ViaService": f"ec2.{plan.primary_region}.amazonaws.com"}}
    assert set(source[0]["Action"]) == SOURCE_KEY_ACTIONS  # nothing that encrypts or grants on the source key
    dr = [s for s in kms if s["Resource"] == [plan.ami.dr_kms_key_id]]
    assert len(dr) == 1 and "Condition" not in dr[0]
    assert set(dr[0]["Action"]) >= DR_KEY_ACTIONS
    assert not set(dr[0]["Action"]) & {"kms:Decrypt"}
    # every kms action sits on one of these two scopes
    assert {a for s in kms for a in s["Action"]} == SOURCE_KEY_ACTIONS | DR_KEY_ACTIONS


def test_unencrypted_plan_grants_no_source_key() -> None:
    plan = load_plan("examples/reference.yaml")
    assert not plan.ami.dr_kms_key_id
    statements = iam.statements(iam.registry_for("ami"), plan, account=ACCOUNT)
    assert not [s for s in statements if any(a.startswith("kms:") for a in s["Action"])]


# -- 8. copies tagged at creation --------------------------------------------------------------------

def _fresh_source_images(plan: Plan) -> dict[str, str]:
    """A primary image per environment that replicate will reuse (tagged as create_image tags it), available."""
    ec2 = boto3.client("ec2", region_name=plan.primary_region)
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    out = {}
    for env in plan.environments:
        stamp = clock.datetime_now().isoformat(timespec="seconds")
        image = ec2.create_image(InstanceId=instance, Name=f"src-{env.name}", TagSpecifications=[
            {"ResourceType": "image", "Tags": [
                {"Key": "pilotlight:plan", "Value": plan.name}, {"Key": "pilotlight:environment", "Value": env.name},
                {"Key": "pilotlight:role", "Value": "source"}, {"Key": "pilotlight:created-at", "Value": stamp}]}],
        )["ImageId"]
        ec2.create_tags(Resources=[image], Tags=[{"Key": "pilotlight:source-ami", "Value": image}])
        out[env.name] = image
    return out


def test_a_failed_tag_call_leaves_exactly_one_tagged_copy() -> None:
    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.latency.enabled = False
        sources = _fresh_source_images(plan)
        sb.latency.enabled = True
        sb.deploy(plan)
        # A CreateTags that fails once (a retryable state error): the step is retried by the workflow.
        sb.faults.inject("ec2", "CreateTags", "IncorrectState", "injected: tagging failed", times=1)
        out = run(sb, plan, timeout=120)
        assert out["ok"], out["failed"]
        dr = boto3.client("ec2", region_name=plan.dr_region)
        everything = dr.describe_images(Owners=["self"])["Images"]
        assert len(everything) == len(plan.environments), [(i["ImageId"], _tags(i)) for i in everything]
        for env in plan.environments:
            (copy,) = dr_copies(plan, env.name)
            tags = _tags(copy)
            assert tags["pilotlight:source-ami"] == sources[env.name]
            assert tags["pilotlight:role"] == "copy" and tags["pilotlight:created-at"]
            # the copy's snapshots carry the same tags, so they can be found too
            snapshot = copy["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
            (snap,) = dr.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"]
            assert _tags(snap)["pilotlight:source-ami"] == sources[env.name]
        # a second run finds the copy instead of making another one
        again = run(sb, plan, timeout=120)
        assert again["ok"] and len(dr.describe_images(Owners=["self"])["Images"]) == len(plan.environments)


def test_copy_image_rejects_tags_for_other_resource_types() -> None:
    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.latency.enabled = False
        source = next(iter(_fresh_source_images(plan).values()))
        dr = boto3.client("ec2", region_name=plan.dr_region)
        with pytest.raises(dr.exceptions.ClientError) as err:
            dr.copy_image(SourceImageId=source, SourceRegion=plan.primary_region, Name="bad-tags",
                          TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
        assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_an_image_not_yet_visible_after_its_creation_is_retryable() -> None:
    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        source = next(iter(_fresh_source_images(plan).values()))
        ec2 = boto3.client("ec2", region_name=plan.primary_region)
        sb.faults.inject("ec2", "DescribeImages", "InvalidAMIID.NotFound",
                         f"The image id '[{source}]' does not exist", times=1)
        event = {"action": "check_image", "region": plan.primary_region, "image_id": source}
        assert _invoke(plan, "ami", event).get("errorType") == "ResourceNotReady"
        clock.wait_until(lambda: ec2.describe_images(ImageIds=[source])["Images"][0]["State"] == "available",
                         timeout=1800, step=30, what="source image available")
        assert _invoke(plan, "ami", event)["done"] is True


# -- 9. pruning deletes the snapshots with the image ----------------------------------------------------

def test_pruning_leaves_no_snapshot_of_a_pruned_image() -> None:
    plan = load_plan("examples/reference.yaml")
    env = plan.environments[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        old = old_copies(sb, plan, env.name, plan.ami.retention + 2)
        dr = boto3.client("ec2", region_name=plan.dr_region)
        snapshots = {i["ImageId"]: [m["Ebs"]["SnapshotId"] for m in i["BlockDeviceMappings"] if "Ebs" in m]
                     for i in dr.describe_images(ImageIds=old)["Images"]}
        sb.deploy(plan)
        # A snapshot that is briefly in use: deleting it one by one after the deregistration would fail.
        sb.faults.inject("ec2", "DeleteSnapshot", "InvalidSnapshot.InUse", "injected: snapshot in use", times=1)
        out = run(sb, plan, timeout=120)
        assert out["ok"], out["failed"]
        kept = {i["ImageId"] for i in dr_copies(plan, env.name)}
        pruned = [i for i in old if i not in kept]
        assert len(pruned) == 3 and len(kept) == plan.ami.retention
        left = {s["SnapshotId"] for s in dr.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        assert not [s for i in pruned for s in snapshots[i] if s in left]
        assert all(s in left for i in kept if i in snapshots for s in snapshots[i])  # kept images keep theirs


def test_deregister_keeps_a_snapshot_another_image_uses() -> None:
    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.latency.enabled = False
        dr = boto3.client("ec2", region_name=plan.dr_region)
        base = dr.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = dr.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        first = dr.create_image(InstanceId=instance, Name="first")["ImageId"]
        second = dr.create_image(InstanceId=instance, Name="second")["ImageId"]
        # moto gives every image a snapshot of its own; make the second one use the first one's
        from moto.ec2.models import ec2_backends

        amis = ec2_backends[ACCOUNT][plan.dr_region].amis
        amis[second].ebs_snapshot = amis[first].ebs_snapshot
        (mapping,) = dr.describe_images(ImageIds=[first])["Images"][0]["BlockDeviceMappings"]
        answer = dr.deregister_image(ImageId=first, DeleteAssociatedSnapshots=True)
        shared = mapping["Ebs"]["SnapshotId"]
        assert answer["DeleteSnapshotResults"] == [{"SnapshotId": shared, "ReturnCode": "skipped"}]
        assert _shape_ok("ec2", "DeregisterImage", answer)
        assert dr.describe_snapshots(SnapshotIds=[shared])["Snapshots"]
        assert dr.describe_images(ImageIds=[second])["Images"]


# -- 11. replication merged into the bucket's configuration; objects from before it counted ------------

def _versioned_bucket(region: str, name: str) -> None:
    s3 = boto3.client("s3", region_name=region)
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _ours(destination: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    (rule,) = [r for r in rules if r["ID"] == s3_steps.wanted_rule(destination, False)["ID"]]
    return rule


def test_replicate_keeps_the_rules_a_bucket_already_has() -> None:
    plan = load_plan("examples/reference.yaml")
    pair = plan.buckets[0]
    theirs = {"ID": "audit-archive", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "audit/"},
              "DeleteMarkerReplication": {"Status": "Disabled"},
              "Destination": {"Bucket": "arn:aws:s3:::shop-audit-archive", "StorageClass": "GLACIER"}}
    role = f"arn:aws:iam::{ACCOUNT}:role/{s3_steps.role_name(plan.name)}"
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        _versioned_bucket(plan.dr_region, "shop-audit-archive")
        s3 = boto3.client("s3", region_name=plan.primary_region)
        s3.put_bucket_versioning(Bucket=pair.source, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration={"Role": role, "Rules": [theirs]})
        sb.deploy(plan)
        out = run(sb, plan)
        assert out["ok"], out["failed"]
        config = s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]
        rules = {r["ID"]: r for r in config["Rules"]}
        assert rules["audit-archive"] == theirs  # kept exactly as it was
        ours = _ours(pair.destination, config["Rules"])
        assert ours["Destination"]["Bucket"] == f"arn:aws:s3:::{pair.destination}" and ours["Filter"] == {}
        assert ours["Priority"] != theirs["Priority"]
        # both rules replicate: the canary reached our destination, an audit object reaches theirs too
        assert f"canary {pair.source} -> {pair.destination}" in {r["resource"] for r in out["verified"]}
        s3.put_object(Bucket=pair.source, Key="audit/2026-01.log", Body=b"audit")
        clock.wait_until(lambda: s3.head_object(Bucket=pair.source, Key="audit/2026-01.log").get(
            "ReplicationStatus") == "COMPLETED", timeout=900, step=5, what="replication to both destinations")
        for bucket in ("shop-audit-archive", pair.destination):
            boto3.client("s3", region_name=plan.dr_region).head_object(Bucket=bucket, Key="audit/2026-01.log")
        # a second run changes nothing
        again = run(sb, plan)
        assert f"replication {pair.source} -> {pair.destination}" in {r["resource"] for r in again["unchanged"]}
        assert s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"] == config


def test_a_v1_rule_is_kept_in_the_v2_schema() -> None:
    plan = load_plan("examples/reference.yaml")
    pair = plan.buckets[0]
    legacy = {"ID": "legacy-logs", "Prefix": "logs/", "Status": "Enabled",
              "Destination": {"Bucket": "arn:aws:s3:::shop-legacy-logs"}}
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        _versioned_bucket(plan.dr_region, "shop-legacy-logs")
        s3 = boto3.client("s3", region_name=plan.primary_region)
        s3.put_bucket_versioning(Bucket=pair.source, VersioningConfiguration={"Status": "Enabled"})
        role = f"arn:aws:iam::{ACCOUNT}:role/{s3_steps.role_name(plan.name)}"
        s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration={"Role": role, "Rules": [legacy]})
        assert "Filter" not in s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]["Rules"][0]
        sb.deploy(plan)
        out = run(sb, plan)
        assert out["ok"], out["failed"]
        answer = s3.get_bucket_replication(Bucket=pair.source)
        assert _shape_ok("s3", "GetBucketReplication", answer)
        rules = answer["ReplicationConfiguration"]["Rules"]
        converted = next(r for r in rules if r["ID"] == "legacy-logs")
        # V1 replicated delete markers; the V2 form says so explicitly
        assert converted["Filter"] == {"Prefix": "logs/"} and "Prefix" not in converted
        assert converted["DeleteMarkerReplication"] == {"Status": "Enabled"}
        assert converted["Destination"] == legacy["Destination"] and converted["Status"] == "Enabled"
        assert len({r["Priority"] for r in rules}) == len(rules) == 2
        record = next(r for r in out["updated"] if r["resource"] == f"replication {pair.source} -> {pair.destination}")
        assert any("legacy-logs" in c and "V2" in c for c in record["changes"])


def test_rules_under_another_role_are_not_taken_over() -> None:
    plan = load_plan("examples/reference.yaml")
    pair = plan.buckets[0]
    theirs = {"ID": "theirs", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "x/"},
              "DeleteMarkerReplication": {"Status": "Disabled"},
              "Destination": {"Bucket": f"arn:aws:s3:::{pair.destination}"}}
    config = {"Role": f"arn:aws:iam::{ACCOUNT}:role/their-replication", "Rules": [theirs]}
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        s3 = boto3.client("s3", region_name=plan.primary_region)
        s3.put_bucket_versioning(Bucket=pair.source, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration=config)
        sb.deploy(plan)
        answer = _invoke(plan, "s3", {
            "action": "ensure_replication", "plan": plan.name, "source_region": plan.primary_region,
            "dr_region": plan.dr_region, "source": pair.source, "destination": pair.destination})
        assert answer["errorType"] == "PreconditionFailed"
        assert "their-replication" in answer["errorMessage"] and "replication_role_arn" in answer["errorMessage"]
        assert s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"] == config
        # named in the plan, the role is used and their rule kept
        done = _invoke(plan, "s3", {
            "action": "ensure_replication", "plan": plan.name, "source_region": plan.primary_region,
            "dr_region": plan.dr_region, "source": pair.source, "destination": pair.destination,
            "role_arn": config["Role"]})
        assert done["record"]["status"] == "updated", done
        rules = s3.get_bucket_replication(Bucket=pair.source)["ReplicationConfiguration"]["Rules"]
        assert [r["ID"] for r in rules] == ["theirs", s3_steps.wanted_rule(pair.destination, False)["ID"]]
        assert rules[0] == theirs and rules[1]["Priority"] == 2


def test_sandbox_refuses_a_mixed_schema_or_duplicate_priorities_as_s3_does() -> None:
    plan = load_plan("examples/reference.yaml")
    pair = plan.buckets[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        s3 = boto3.client("s3", region_name=plan.primary_region)
        s3.put_bucket_versioning(Bucket=pair.source, VersioningConfiguration={"Status": "Enabled"})
        role = f"arn:aws:iam::{ACCOUNT}:role/r"
        v2 = {"ID": "a", "Priority": 1, "Status": "Enabled", "Filter": {}, "DeleteMarkerReplication": {
            "Status": "Disabled"}, "Destination": {"Bucket": f"arn:aws:s3:::{pair.destination}"}}
        v1 = {"ID": "b", "Prefix": "x/", "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::other"}}
        for rules in ([v2, v1], [v2, {**v2, "ID": "c"}], [{k: v for k, v in v2.items() if k != "Priority"}]):
            with pytest.raises(s3.exceptions.ClientError) as err:
                s3.put_bucket_replication(Bucket=pair.source, ReplicationConfiguration={"Role": role, "Rules": rules})
            assert err.value.response["Error"]["Code"] == "InvalidRequest"


def test_objects_written_before_replication_are_counted() -> None:
    plan = load_plan("examples/reference.yaml")
    pair = plan.buckets[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        s3 = boto3.client("s3", region_name=plan.primary_region)
        for i in range(3):
            s3.put_object(Bucket=pair.source, Key=f"legacy/{i}.bin", Body=b"x")
        sb.deploy(plan)
        out = run(sb, plan)
        resource = f"replication {pair.source} -> {pair.destination}"
        (record,) = [r for r in out["drift"] if r["resource"] == resource]
        assert record["unreplicated_objects"]["without_replication_status"] == 3
        assert record["unreplicated_objects"]["exact"] is True
        assert any("Batch Replication" in f for f in record["flags"])
        # the other pair had nothing from before: no flag there
        other = f"replication {plan.buckets[1].source} -> {plan.buckets[1].destination}"
        assert other not in {r["resource"] for r in out["drift"]}
        # an object written now is replicated, the old ones still are not (and are still reported)
        s3.put_object(Bucket=pair.source, Key="new.bin", Body=b"y")
        clock.wait_until(lambda: s3.head_object(Bucket=pair.source, Key="new.bin").get("ReplicationStatus")
                         == "COMPLETED", timeout=900, step=5, what="replication of new.bin")
        again = run(sb, plan)
        (record,) = [r for r in again["drift"] if r["resource"] == resource]
        assert record["unreplicated_objects"]["without_replication_status"] == 3
