"""AMI encryption, which moto 5.2 does not model.

In AWS an image of an instance with encrypted volumes has encrypted snapshots, and CopyImage
with ``Encrypted``/``KmsKeyId`` re-encrypts the copy with a key of the destination region (a key of
another region is refused). moto drops all of it; this keeps it per image and shows it in
``DescribeImages`` (``BlockDeviceMappings[].Ebs.Encrypted``/``KmsKeyId``).
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




def before_copy_image(context: dict[str, Any], **_: Any) -> Any:
    region = context.get("client_region", "")
    p = responses.api_params(context)
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
    ("before-call.ec2.CopyImage", before_copy_image),
    ("after-call.ec2.CreateImage", after_create_image),
    ("after-call.ec2.CopyImage", after_copy_image),
    ("after-call.ec2.DescribeImages", after_describe_images),
]


def install(events: Any) -> None:
    ENCRYPTION.clear()
    for event, handler in HANDLERS:
        events.register_first(event, handler, unique_id=f"pilotlight-ec2-{event}")


def uninstall(events: Any) -> None:
    for event, _ in HANDLERS:
        events.unregister(event, unique_id=f"pilotlight-ec2-{event}")
