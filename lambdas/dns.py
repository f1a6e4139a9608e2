"""Route 53 steps: point the plan's record at the DR target and wait until the change is INSYNC."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import Registry, client, raise_mapped

registry = Registry("dns")
handler = registry.handler

# Route 53 is a global service whose control plane is in us-east-1.
ROUTE53_REGION = _ROUTE53_REGION = "us-east-1"


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def current_values(r53: Any, zone_id: str, name: str, record_type: str) -> list[str] | None:
    try:
        sets = r53.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=_fqdn(name), StartRecordType=record_type, MaxItems="1"
        )["ResourceRecordSets"]
    except ClientError as exc:
        raise_mapped(exc, f"read {name} in {zone_id}")
    for rrset in sets:
        if rrset["Name"].rstrip(".") == name.rstrip(".") and rrset["Type"] == record_type:
            return [r["Value"] for r in rrset.get("ResourceRecords", [])]
    return None


@registry.action(
    "upsert_record",
    permissions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
    resource="hostedzone",
)
def upsert_record(zone_id: str, name: str, record_type: str, ttl: int, value: str) -> dict[str, Any]:
    """UPSERT the record to ``value``; no change is submitted when it already points there."""
    r53 = client("route53", _ROUTE53_REGION)
    before = current_values(r53, zone_id, name, record_type)
    if before == [value]:
        return {"done": True, "attempt": 0, "change_id": None, "changed": False, "previous": before, "value": value}
    try:
        out = r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": "pilotlight failover",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": _fqdn(name),
                            "Type": record_type,
                            "TTL": ttl,
                            "ResourceRecords": [{"Value": value}],
                        },
                    }
                ],
            },
        )
    except ClientError as exc:
        raise_mapped(exc, f"UPSERT {name}")
    return {
        "done": False,
        "attempt": 0,
        "change_id": out["ChangeInfo"]["Id"],
        "changed": True,
        "previous": before,
        "value": value,
    }


@registry.action("check_change", permissions=["route53:GetChange"], resource="change")
def check_change(change_id: str | None, attempt: int = 0) -> dict[str, Any]:
    """Done when the change is INSYNC (or when no change was needed)."""
    if change_id is None:
        return {"done": True, "attempt": attempt + 1, "status": "INSYNC", "change_id": None}
    try:
        status = client("route53", _ROUTE53_REGION).get_change(Id=change_id)["ChangeInfo"]["Status"]
    except ClientError as exc:
        raise_mapped(exc, f"get change {change_id}")
    return {"done": status == "INSYNC", "attempt": attempt + 1, "status": status, "change_id": change_id}


@registry.action("describe_record", permissions=["route53:ListResourceRecordSets"], resource="hostedzone")
def describe_record(zone_id: str, name: str, record_type: str) -> dict[str, Any]:
    values = current_values(client("route53", _ROUTE53_REGION), zone_id, name, record_type)
    return {"name": name, "type": record_type, "values": values}
