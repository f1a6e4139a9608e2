"""What replicate reports when the pilot light is not as the plan wants it."""

from __future__ import annotations

import yaml

from sandbox import Sandbox, seed
from tests.replicate_helpers import dr_copies, run
from workflows.plan import load_plan, parse_plan


def test_replica_lag_above_the_rpo_is_drift() -> None:
    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        sb.latency.replica_lag_seconds = plan.objectives.rpo_minutes * 60 + 1
        out = run(sb, plan)
    (lag,) = [r for r in out["drift"] if r["resource"].startswith("replica lag")]
    assert lag["lag_seconds"] > lag["rpo_seconds"]


def test_encrypted_image_without_a_dr_key_fails_its_branch_only() -> None:
    with open("examples/second.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    # The plan does not know the volumes are encrypted (validate would insist on a key otherwise).
    del data["ami"]["dr_kms_key_id"]
    for env in data["environments"]:
        env["encrypted_volumes"] = False
    plan = parse_plan(data)
    with Sandbox() as sb:
        sb.latency.enabled = False
        seed.seed_primary(plan, encrypted_volumes=True)
        sb.latency.enabled = True
        sb.deploy(plan)
        out = run(sb, plan)
        assert not out["ok"]
        failed = {r["resource"]: r["cause"] for r in out["failed"]}
        assert "set ami.dr_kms_key_id" in failed["Images"]
        assert "no available AMI copy" in failed["Configurations"]
        assert all(not dr_copies(plan, env.name) for env in plan.environments)
        # the other branches still did their work
        created = {r["resource"] for r in out["created"]}
        assert "replica ledger-db-fra (eu-central-1)" in created
        assert any(r.startswith("application version") for r in created)


def test_a_canary_that_never_arrives_is_reported_per_bucket() -> None:
    from sandbox import adapters_s3

    plan = load_plan("examples/reference.yaml")
    with Sandbox() as sb:
        sb.seed(plan, pilot_light=False)
        sb.deploy(plan)
        assert adapters_s3._replicator is not None
        adapters_s3._replicator.delay = lambda: 3600.0  # replication stalls far beyond the 15 min wait
        out = run(sb, plan)
    late = {r["resource"]: r for r in out["failed"]}
    assert set(late) == {f"canary {b.source} -> {b.destination}" for b in plan.buckets}
    assert all(r["error"] == "WaitTimedOut" for r in late.values())
    assert {r["resource"] for r in out["created"]} >= {f"replication {b.source} -> {b.destination}"
                                                       for b in plan.buckets}
