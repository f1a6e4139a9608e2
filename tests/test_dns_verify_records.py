"""verify_dns in the records cutover mode, through the deployed Lambda (its own sandbox and module)."""

from __future__ import annotations

from sandbox import Sandbox
from tests.test_dns_health_check import _invoke
from workflows.plan import Plan


def test_verify_dns_works_in_records_mode(reference_plan: Plan, sandbox: Sandbox) -> None:
    plan = reference_plan
    sandbox.seed(plan)
    sandbox.deploy(plan)
    out = _invoke(plan, {"action": "verify_dns", "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
                         "record_type": "CNAME", "expected": plan.dns_dr_target})
    assert out == {"answer": [plan.dns_primary_target], "verified": False, "response_code": "NOERROR"}
    _invoke(plan, {"action": "upsert_record", "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
                   "record_type": "CNAME", "ttl": 60, "value": plan.dns_dr_target})
    out = _invoke(plan, {"action": "verify_dns", "zone_id": plan.dns.hosted_zone_id, "name": plan.dns.record_name,
                         "record_type": "CNAME", "expected": plan.dns_dr_target})
    assert out["verified"] is True
