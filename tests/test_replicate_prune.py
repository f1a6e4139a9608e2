"""AMI retention: old DR copies are pruned by the replicate workflow, never the protected ones."""

from __future__ import annotations

import datetime as dt

import boto3

from lambdas.ami import choose_prunable
from sandbox import Sandbox, clock
from tests.replicate_helpers import dr_copies, old_copies, run
from workflows.plan import load_plan


def test_pruning_keeps_exactly_the_retention_count() -> None:
    plan = load_plan("examples/reference.yaml")
    env = plan.environments[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        old = old_copies(sb, plan, env.name, plan.ami.retention + 2)
        sb.deploy(plan)
        out = run(sb, plan)
        kept = dr_copies(plan, env.name)
        assert len(kept) == plan.ami.retention
        newest = max(kept, key=lambda i: {t["Key"]: t["Value"] for t in i["Tags"]}["pilotlight:created-at"])
        assert newest["ImageId"] not in old  # the fresh copy survives
        assert sorted(i["ImageId"] for i in kept) == sorted([newest["ImageId"], *old[: plan.ami.retention - 1]])
        assert len([r for r in out["deleted"] if r["resource"].startswith("ami")]) == 3


def test_primary_source_images_are_pruned_to_the_retention_too() -> None:
    plan = load_plan("examples/reference.yaml")
    env = plan.environments[0]
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        ec2 = boto3.client("ec2", region_name=plan.primary_region)
        for _ in range(plan.ami.retention + 1):
            run(sb, plan)
            # make the newest source image look older than max_age_hours, so the next run images again
            (newest,) = [i for i in ec2.describe_images(Owners=["self"])["Images"]
                         if not any(t["Key"] == "pilotlight:aged" for t in i.get("Tags", []))]
            old = (clock.datetime_now() - dt.timedelta(hours=plan.ami.max_age_hours + 1)).isoformat()
            ec2.create_tags(Resources=[newest["ImageId"]], Tags=[
                {"Key": "pilotlight:created-at", "Value": old}, {"Key": "pilotlight:aged", "Value": "yes"}])
        sources = ec2.describe_images(Owners=["self"], Filters=[
            {"Name": "tag:pilotlight:role", "Values": ["source"]},
            {"Name": "tag:pilotlight:environment", "Values": [env.name]}])["Images"]
        assert len(sources) == plan.ami.retention
        assert len(dr_copies(plan, env.name)) == plan.ami.retention


def _image(image_id: str, days_old: int, state: str = "available") -> dict:
    stamp = (dt.datetime(2026, 1, 30, tzinfo=dt.UTC) - dt.timedelta(days=days_old)).isoformat()
    return {"ImageId": image_id, "State": state, "Tags": [{"Key": "pilotlight:created-at", "Value": stamp}]}


def test_prune_never_takes_an_image_a_saved_configuration_uses() -> None:
    images = [_image(f"ami-{i}", i) for i in range(5)]
    assert choose_prunable(images, 2, protected={"ami-4"}) == ["ami-2", "ami-3"]


def test_prune_never_takes_the_newest_available_image() -> None:
    images = [_image("ami-0", 0, "pending"), _image("ami-1", 1, "pending"), _image("ami-2", 2), _image("ami-3", 3)]
    assert choose_prunable(images, 2, protected=set()) == ["ami-3"]
