"""AMI behaviour moto 5.2 does not model.

- Encryption: in AWS an image of an instance with encrypted volumes has encrypted snapshots, and
  CopyImage with ``Encrypted``/``KmsKeyId`` re-encrypts the copy with a key of the destination
  region (a key of another region is refused). moto drops all of it; this keeps it per image and
  shows it in ``DescribeImages`` (``BlockDeviceMappings[].Ebs.Encrypted``/``KmsKeyId``).
- Tags on creation of a copy: moto ignores CopyImage's ``TagSpecifications``; here the ``image``
  tags go on the new image and the ``snapshot`` tags on its snapshots, in the same call, and any
  other ``ResourceType`` fails the request (``InvalidParameterValue``), as the API reference says.
- ``DeregisterImage`` with ``DeleteAssociatedSnapshots``: moto ignores it; here the image's
  snapshots are deleted with it, except one another image still uses (``ReturnCode`` ``skipped``),
  and the answer carries ``DeleteSnapshotResults``.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import responses

_lock = threading.Lock()
ENCRYPTION: dict[tuple[str, str], str | None] = {}  # (region, image id) -> KMS key (None: default key)


def _ec2(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def default_key(region: str) -> str:
    return f"arn:aws:kms:{region}:{DEFAULT_ACCOUNT_ID}:alias/aws/ebs"


_TAGGABLE_ON_COPY = ("image", "snapshot")


def before_copy_image(context: dict[str, Any], **_: Any) -> Any:
    region = context.get("client_region", "")
    p = responses.api_params(context)
    for spec in p.get("TagSpecifications") or []:
        if spec.get("ResourceType") not in _TAGGABLE_ON_COPY:
            return responses.error("InvalidParameterValue", f"'{spec.get('ResourceType')}' is not a valid taggable "
                                   "resource type for this operation.")
    key = p.get("KmsKeyId")
    if key and not p.get("Encrypted"):
        return responses.error("InvalidParameterCombination", "KmsKeyId requires Encrypted to be true.")
    if key and key.startswith("arn:") and key.split(":")[3] != region:
        return responses.error("InvalidParameterValue", f"KMS key {key} is not in the destination region {region}.")
    return None


def after_create_image(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code >= 300:
        return
    region = context.get("client_region", "")
    p = responses.api_params(context)
    backend = _ec2(region)
    instance = backend.get_instance(p["InstanceId"])
    for _device, mapping in instance.get_block_device_mapping:
        volume = backend.get_volume(mapping.volume_id)
        if volume.encrypted:
            with _lock:
                ENCRYPTION[(region, parsed["ImageId"])] = volume.kms_key_id or default_key(region)
            return


def after_copy_image(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code >= 300:
        return
    region = context.get("client_region", "")
    p = responses.api_params(context)
    source_encrypted = (p.get("SourceRegion", ""), p.get("SourceImageId", "")) in ENCRYPTION
    if p.get("Encrypted") or source_encrypted:
        with _lock:
            ENCRYPTION[(region, parsed["ImageId"])] = p.get("KmsKeyId") or default_key(region)
    image = _ec2(region).amis.get(parsed["ImageId"])
    if image is None:
        return
    for spec in p.get("TagSpecifications") or []:
        target = image if spec.get("ResourceType") == "image" else image.ebs_snapshot
        for tag in spec.get("Tags") or []:
            target.add_tag(tag["Key"], tag["Value"])


_DEREGISTERING = "pilotlight_deregistering"


def before_deregister_image(context: dict[str, Any], **_: Any) -> None:
    """Note the image's snapshots before moto forgets the image."""
    p = responses.api_params(context)
    image = _ec2(context.get("client_region", "")).amis.get(p.get("ImageId", ""))
    if image is not None and p.get("DeleteAssociatedSnapshots"):
        context[_DEREGISTERING] = [image.ebs_snapshot.id]


def after_deregister_image(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if http_response.status_code >= 300 or _DEREGISTERING not in context:
        return
    backend = _ec2(context.get("client_region", ""))
    in_use = {image.ebs_snapshot.id for image in backend.amis.values()}
    results = []
    for snapshot_id in context[_DEREGISTERING]:
        if snapshot_id in in_use:  # another image uses it: AWS keeps it
            results.append({"SnapshotId": snapshot_id, "ReturnCode": "skipped"})
            continue
        backend.snapshots.pop(snapshot_id, None)
        results.append({"SnapshotId": snapshot_id, "ReturnCode": "success"})
    parsed["DeleteSnapshotResults"] = results


def after_describe_images(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    region = context.get("client_region", "")
    for image in parsed.get("Images", []):
        key = (region, image.get("ImageId", ""))
        for mapping in image.get("BlockDeviceMappings") or []:
            ebs = mapping.get("Ebs")
            if ebs is None:
                continue
            if key in ENCRYPTION:
                ebs["Encrypted"] = True
                ebs["KmsKeyId"] = ENCRYPTION[key]
            else:
                ebs.setdefault("Encrypted", False)


HANDLERS: list[tuple[str, Any]] = [
    ("before-parameter-build.ec2.CreateImage", responses.stash_api_params),
    ("before-parameter-build.ec2.CopyImage", responses.stash_api_params),
    ("before-parameter-build.ec2.DeregisterImage", responses.stash_api_params),
    ("before-call.ec2.CopyImage", before_copy_image),
    ("before-call.ec2.DeregisterImage", before_deregister_image),
    ("after-call.ec2.DeregisterImage", after_deregister_image),
    ("after-call.ec2.CreateImage", after_create_image),
    ("after-call.ec2.CopyImage", after_copy_image),
    ("after-call.ec2.DescribeImages", after_describe_images),
]


def install(events: Any) -> None:
    ENCRYPTION.clear()
    responses.hook(events, HANDLERS, "ec2", where="first")


def uninstall(events: Any) -> None:
    responses.unhook(events, HANDLERS, "ec2")
