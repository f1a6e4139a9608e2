"""AMI steps: image a running instance of each environment, copy it to the DR region, prune copies.

Copies are found by the ``pilotlight:source-ami`` tag, never by name, so a re-run (or a retried
step) finds the copy it already made instead of copying twice. The tags are applied by CopyImage
itself (``TagSpecifications``), never by a later CreateTags that could fail and leave an untagged
copy no re-run would find. A primary image younger than the plan's ``max_age_hours`` is reused for
the same reason. Pruning deregisters with ``DeleteAssociatedSnapshots``, so EC2 deletes an image's
snapshots with it (none is left behind by a failed DeleteSnapshot after the image is gone).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import PreconditionFailed, ResourceNotFound, ResourceNotReady

registry = Registry("ami")
handler = registry.handler

TAG_SOURCE = "pilotlight:source-ami"
TAG_PLAN = "pilotlight:plan"
TAG_ENV = "pilotlight:environment"
TAG_CREATED = "pilotlight:created-at"
TAG_ROLE = "pilotlight:role"  # "source" (primary image) or "copy" (DR image)

# What EC2 does with KMS on the caller's behalf when it copies an encrypted image: it decrypts the
# source snapshots with their key in the primary region (kind ``source_key``: the plan does not name
# it, so key/* there, only through EC2) and encrypts the copies with the DR key (``dr_key``).
SOURCE_KEY_PERMISSIONS = ("kms:Decrypt", "kms:DescribeKey")
DR_KEY_PERMISSIONS = ("kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                      "kms:CreateGrant", "kms:DescribeKey")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _tags(image: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags") or []}


def created_at(image: dict[str, Any]) -> dt.datetime:
    """When pilotlight made the image (its tag), else the image's own CreationDate."""
    raw = _tags(image).get(TAG_CREATED) or image.get("CreationDate") or "1970-01-01T00:00:00Z"
    return dt.datetime.fromisoformat(raw)


def encrypted(image: dict[str, Any]) -> bool:
    return any((m.get("Ebs") or {}).get("Encrypted") for m in image.get("BlockDeviceMappings") or [])


def images(ec2: Any, plan: str, environment: str, role: str) -> list[dict[str, Any]]:
    try:
        return ec2.describe_images(
            Owners=["self"],
            Filters=[
                {"Name": f"tag:{TAG_PLAN}", "Values": [plan]},
                {"Name": f"tag:{TAG_ENV}", "Values": [environment]},
                {"Name": f"tag:{TAG_ROLE}", "Values": [role]},
            ],
        )["Images"]
    except ClientError as exc:
        raise_mapped(exc, f"list {role} images of {environment}")
    return []


def _describe_image(ec2: Any, image_id: str, region: str, just_created: bool = False) -> dict[str, Any]:
    try:
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if just_created and exc.response["Error"]["Code"] == "InvalidAMIID.NotFound":
            raise ResourceNotReady(f"image {image_id} is not visible in {region} yet (just created)") from exc
        raise_mapped(exc, f"describe {image_id}")
    if not found:
        raise ResourceNotFound(f"image {image_id} does not exist in {region}")
    return found[0]


def _record(resource: str, status: str, **detail: Any) -> dict[str, Any]:
    return {"resource": resource, "status": status, **detail}


@registry.action(
    "find_instance",
    permissions=["elasticbeanstalk:DescribeEnvironmentResources", "ec2:DescribeInstances"],
    resource={"elasticbeanstalk:DescribeEnvironmentResources": "source_environment"},
)
def find_instance(region: str, environment: str) -> dict[str, Any]:
    """A running instance of the primary environment, to image."""
    eb = client("elasticbeanstalk", region)
    try:
        resources = eb.describe_environment_resources(EnvironmentName=environment)["EnvironmentResources"]
    except ClientError as exc:
        raise_mapped(exc, f"describe resources of {environment}")
    ids = [i["Id"] for i in resources.get("Instances") or []]
    if not ids:
        raise PreconditionFailed(f"environment {environment} in {region} has no instances to image")
    ec2 = client("ec2", region)
    try:
        reservations = ec2.describe_instances(
            InstanceIds=ids, Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
        )["Reservations"]
    except ClientError as exc:
        raise_mapped(exc, f"describe instances of {environment}")
    running = sorted(i["InstanceId"] for r in reservations for i in r["Instances"])
    if not running:
        raise PreconditionFailed(f"environment {environment} in {region} has no running instance")
    return {"instance_id": running[0]}


@registry.action(
    "create_image",
    permissions=["ec2:CreateImage", "ec2:CreateTags", "ec2:DescribeImages"],
    resource={"ec2:CreateImage": ("instance", "image", "snapshot"), "ec2:CreateTags": ("image", "snapshot")},
)
def create_image(
    region: str, plan: str, environment: str, instance_id: str, max_age_hours: int = 24
) -> dict[str, Any]:
    """Image the instance (NoReboot); reuse a pilotlight image of this environment younger than max_age_hours."""
    ec2 = client("ec2", region)
    fresh = [
        i for i in images(ec2, plan, environment, "source")
        if i.get("State") in ("pending", "available")
        and _now() - created_at(i) < dt.timedelta(hours=max_age_hours)
    ]
    if fresh:
        newest = max(fresh, key=created_at)
        if TAG_SOURCE not in _tags(newest):  # a previous run's tag call failed after the image was made
            try:
                ec2.create_tags(Resources=[newest["ImageId"]], Tags=[{"Key": TAG_SOURCE, "Value": newest["ImageId"]}])
            except ClientError as exc:
                raise_mapped(exc, f"tag {newest['ImageId']}")
        record = _record(f"ami {newest['ImageId']} ({region})", "unchanged", kind="source-image")
        done = newest.get("State") == "available"
        return {"done": done, "attempt": 0, "image_id": newest["ImageId"], "record": record}
    stamp = _now()
    tags = [
        {"Key": TAG_PLAN, "Value": plan},
        {"Key": TAG_ENV, "Value": environment},
        {"Key": TAG_ROLE, "Value": "source"},
        {"Key": TAG_CREATED, "Value": stamp.isoformat(timespec="seconds")},
    ]
    try:
        image_id = ec2.create_image(
            InstanceId=instance_id,
            Name=f"pilotlight-{plan}-{environment}-{stamp:%Y%m%d%H%M%S}",
            Description=f"pilotlight {plan}: {environment} from {instance_id}",
            NoReboot=True,
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )["ImageId"]
        # The source carries its own id too, so both images answer the same tag query.
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": TAG_SOURCE, "Value": image_id}])
    except ClientError as exc:
        raise_mapped(exc, f"image {instance_id}")
    record = _record(f"ami {image_id} ({region})", "created", kind="source-image")
    return {"done": False, "attempt": 0, "image_id": image_id, "record": record}


@registry.action("check_image", permissions=["ec2:DescribeImages"])
def check_image(
    region: str, image_id: str, attempt: int = 0, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Done when the image is available; a failed image is terminal.

    The image was just created (CreateImage / CopyImage): EC2 is eventually consistent, so
    ``InvalidAMIID.NotFound`` means "not visible yet" and is retried (the workflow's retry budget
    bounds it), not a missing resource.
    """
    image = _describe_image(client("ec2", region), image_id, region, just_created=True)
    state = image.get("State")
    if state in ("failed", "error", "invalid", "deregistered"):
        raise PreconditionFailed(f"image {image_id} in {region} is {state}: {image.get('StateReason')}")
    return {"done": state == "available", "attempt": attempt + 1, "image_id": image_id, "state": state,
            "record": record}


@registry.action(
    "copy_image",
    # ec2:CreateTags: tagging on creation (TagSpecifications) is authorized as CreateTags.
    permissions=["ec2:CopyImage", "ec2:CreateTags", "ec2:DescribeImages",
                 *sorted(set(SOURCE_KEY_PERMISSIONS) | set(DR_KEY_PERMISSIONS))],
    resource={"ec2:CopyImage": ("image", "snapshot"), "ec2:CreateTags": ("image", "snapshot"),
              **{p: "dr_key" for p in DR_KEY_PERMISSIONS}, **{p: "source_key" for p in SOURCE_KEY_PERMISSIONS},
              "kms:DescribeKey": ("source_key", "dr_key")},
)
def copy_image(
    source_region: str, region: str, plan: str, environment: str, image_id: str, kms_key_id: str | None = None
) -> dict[str, Any]:
    """Copy the image to the DR region, unless a copy tagged with its id already exists there."""
    dr = client("ec2", region)
    try:
        existing = dr.describe_images(Owners=["self"], Filters=[
            {"Name": f"tag:{TAG_SOURCE}", "Values": [image_id]}, {"Name": f"tag:{TAG_ROLE}", "Values": ["copy"]}
        ])["Images"]
    except ClientError as exc:
        raise_mapped(exc, f"find copies of {image_id}")
    live = [i for i in existing if i.get("State") in ("pending", "available")]
    if live:
        copy = max(live, key=created_at)
        record = _record(f"ami {copy['ImageId']} ({region})", "unchanged", kind="dr-image", source=image_id)
        done = copy.get("State") == "available"
        return {"done": done, "attempt": 0, "image_id": copy["ImageId"], "record": record}
    source = _describe_image(client("ec2", source_region), image_id, source_region)
    extra: dict[str, Any] = {}
    if encrypted(source):
        if not kms_key_id:
            raise PreconditionFailed(
                f"image {image_id} is encrypted; set ami.dr_kms_key_id to a KMS key in {region} to copy it"
            )
        extra = {"Encrypted": True, "KmsKeyId": kms_key_id}
    tags = [
        {"Key": TAG_SOURCE, "Value": image_id},
        {"Key": TAG_PLAN, "Value": plan},
        {"Key": TAG_ENV, "Value": environment},
        {"Key": TAG_ROLE, "Value": "copy"},
        {"Key": TAG_CREATED, "Value": _now().isoformat(timespec="seconds")},
    ]
    try:
        # Tagged by the copy itself (image and its snapshots): there is no moment when the copy exists
        # untagged, so a failure anywhere leaves nothing a re-run cannot find.
        copy_id = dr.copy_image(
            SourceImageId=image_id, SourceRegion=source_region, Name=source.get("Name") or image_id,
            Description=f"pilotlight {plan}: copy of {image_id} from {source_region}",
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}, {"ResourceType": "snapshot", "Tags": tags}],
            **extra,
        )["ImageId"]
    except ClientError as exc:
        raise_mapped(exc, f"copy {image_id} to {region}")
    record = _record(f"ami {copy_id} ({region})", "created", kind="dr-image", source=image_id,
                     encrypted=bool(extra))
    return {"done": False, "attempt": 0, "image_id": copy_id, "record": record}


def referenced_images(eb: Any, application: str) -> set[str]:
    """ImageIds used by the application's saved configurations in this region."""
    try:
        apps = eb.describe_applications(ApplicationNames=[application])["Applications"]
    except ClientError as exc:
        raise_mapped(exc, f"describe application {application}")
    used: set[str] = set()
    for name in (apps[0].get("ConfigurationTemplates") or []) if apps else []:
        try:
            settings = eb.describe_configuration_settings(ApplicationName=application, TemplateName=name)
        except ClientError as exc:
            raise_mapped(exc, f"read saved configuration {name}")
        for cfg in settings["ConfigurationSettings"]:
            for opt in cfg.get("OptionSettings") or []:
                if opt.get("Namespace") == "aws:autoscaling:launchconfiguration" and opt.get("OptionName") == "ImageId":
                    used.add(opt.get("Value", ""))
    return used


def choose_prunable(images: list[dict[str, Any]], retention: int, protected: set[str]) -> list[str]:
    """Images beyond the newest ``retention``, never the newest available one nor a protected one."""
    ordered = sorted(images, key=created_at, reverse=True)
    available = [i for i in ordered if i.get("State") == "available"]
    keep = {i["ImageId"] for i in ordered[:retention]} | protected
    if available:
        keep.add(available[0]["ImageId"])
    return [i["ImageId"] for i in ordered if i["ImageId"] not in keep]


@registry.action(
    "prune_images",
    permissions=["ec2:DescribeImages", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
                 "elasticbeanstalk:DescribeApplications", "elasticbeanstalk:DescribeConfigurationSettings"],
    resource={"ec2:DeregisterImage": "image", "ec2:DeleteSnapshot": "snapshot",
              "elasticbeanstalk:DescribeApplications": "application",
              "elasticbeanstalk:DescribeConfigurationSettings": ("configurationtemplate", "environment")},
)
def prune_images(
    region: str, plan: str, environment: str, application: str, retention: int, source_region: str | None = None
) -> dict[str, Any]:
    """Deregister DR copies beyond the retention (and their snapshots); the same for primary source images."""
    ec2 = client("ec2", region)
    copies = images(ec2, plan, environment, "copy")
    protected = referenced_images(client("elasticbeanstalk", region), application)
    doomed = choose_prunable(copies, retention, protected)
    records = _deregister(ec2, doomed, region, "dr-image")
    if source_region:
        primary = client("ec2", source_region)
        sources = images(primary, plan, environment, "source")
        records += _deregister(primary, choose_prunable(sources, retention, set()), source_region, "source-image")
    return {"pruned": [r["resource"] for r in records], "kept": len(copies) - len(doomed), "records": records}


def _deregister(ec2: Any, doomed: list[str], region: str, kind: str) -> list[dict[str, Any]]:
    """Deregister each image and have EC2 delete its snapshots in the same call.

    A snapshot EC2 did not delete (``ReturnCode`` other than ``success``: another image uses it, a
    permission is missing, an error) is reported as a flag on the image's record.
    """
    records = []
    for image_id in doomed:
        try:
            answer = ec2.deregister_image(ImageId=image_id, DeleteAssociatedSnapshots=True)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
                continue  # already gone (a concurrent or retried run deregistered it)
            raise_mapped(exc, f"deregister {image_id}")
        results = answer.get("DeleteSnapshotResults") or []
        flags = [f"snapshot {r.get('SnapshotId')} of {image_id} not deleted: {r.get('ReturnCode')}"
                 for r in results if r.get("ReturnCode") != "success"]
        record = _record(f"ami {image_id} ({region})", "deleted", kind=kind,
                         snapshots=[r.get("SnapshotId") for r in results if r.get("ReturnCode") == "success"])
        records.append({**record, "flags": flags} if flags else record)
    return records
