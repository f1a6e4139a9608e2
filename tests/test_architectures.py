"""The reference architectures end to end: each example plan rehearsed in the sandbox.

For every example with Auto Scaling compute: replicate builds the pilot light (or the standby region),
readiness is all READY, a drill on the same plan leaves nothing behind and never touches the DR group,
then an outage of the primary fails the plan over (an active-active plan evacuates it) and the end state
is read through the AWS APIs: the DR group's capacity in service, DNS answering the surviving region
only, the data tier writable there, and the RTO and RPO within the plan's objectives.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from commands.drill import drill_input, sandbox_drill, teardown_summary
from reports.model import rpo_lags
from sandbox import Sandbox, clock
from tests.conftest import ROOT, run_workflow
from workflows import drill_audit
from workflows.plan import Plan, load_plan

ARCHITECTURES = ("fitness-global", "fastest-region", "bookstore", "ecommerce")


def _group(plan: Plan, name: str) -> dict[str, Any]:
    autoscaling = boto3.client("autoscaling", region_name=plan.dr_region)
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return group


def _in_service(group: dict[str, Any]) -> int:
    return sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy")


def _answer(plan: Plan) -> list[str]:
    assert plan.dns is not None
    out = boto3.client("route53").test_dns_answer(HostedZoneId=plan.dns.hosted_zone_id,
                                                  RecordName=plan.dns.record_name, RecordType=plan.dns.record_type)
    return out["RecordData"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_replicate_ready_drill_and_fail_over(name: str) -> None:
    plan = load_plan(ROOT / "examples" / f"{name}.yaml")
    with Sandbox() as sb:
        sb.seed(plan)
        built = sb.build_pilot_light(plan)
        assert built["ok"], built
        for g in plan.compute:
            group = _group(plan, g.dr_group_name)
            assert (group["MinSize"], group["DesiredCapacity"]) == (g.pilot_size, g.pilot_size)
        # A standby region answers its endpoint health check once its instances are in service.
        clock.wait_until(lambda: all(_in_service(_group(plan, g.dr_group_name)) >= g.pilot_size
                                     for g in plan.compute), timeout=900, step=5, what="the DR groups in service")

        readiness = run_workflow(sb, plan, "readiness", {"source": "test"})
        assert readiness.status == "SUCCEEDED", (readiness.error, readiness.cause)
        not_ready = [(c["check"], c["resource"], c["reason"]) for c in readiness.output["checks"]
                     if c["status"] != "READY"]
        assert not_ready == [] and readiness.output["status"] == "READY"

        # A drill on the same plan: its own group and copies, nothing of it left, production untouched.
        before = {g.dr_group_name: _group(plan, g.dr_group_name)["DesiredCapacity"] for g in plan.compute}
        drilled, drill, teardown = sandbox_drill(sb, plan, drill_input("test", keep=False, harden=False,
                                                                       force=False), None)
        assert drilled.status == "SUCCEEDED", (drilled.failed_step, drilled.error, drilled.cause)
        assert teardown is not None and teardown.status == "SUCCEEDED", (teardown and teardown.cause)
        assert teardown_summary(teardown, drill_audit.leftovers(plan, drill))["left"] == 0
        assert {n: _group(plan, n)["DesiredCapacity"] for n in before} == before

        # The primary fails: its alarms go off and the operator's failover evacuates it.
        assert plan.dns is not None
        # Both regions answer while healthy: weighted records split the answers (the sandbox names the heaviest,
        # a tie either); the other policies answer the primary from where the sandbox's resolver is.
        serving = {plan.dns_primary_target, plan.dns_dr_target} if plan.dns.routing == "weighted" else {
            plan.dns_primary_target}
        assert set(_answer(plan)) <= serving
        sb.simulate_disaster(plan)
        result = run_workflow(sb, plan, "failover", {"source": "test", "approved_by": "test"})
        assert result.status == "SUCCEEDED", (result.failed_step, result.error, result.cause)
        for g, scaled in zip(plan.compute, result.output["restore"]["compute"], strict=True):
            group = _group(plan, g.dr_group_name)
            desired = scaled["capacity"]["desired"]
            assert desired >= max(g.pilot_size, g.failover_capacity.minimum, g.failover_capacity.instances or 0)
            assert group["DesiredCapacity"] >= desired and _in_service(group) >= desired
        # DNS answers the surviving region only (Route 53's checkers react after their modeled delay).
        clock.wait_until(lambda: _answer(plan) == [plan.dns_dr_target], timeout=600, step=5,
                         what="DNS answering the DR region")
        # The data tier takes writes in the DR region.
        for db in plan.aurora_databases:
            rds = boto3.client("rds", region_name=plan.dr_region)
            (gc,) = rds.describe_global_clusters(GlobalClusterIdentifier=db.global_cluster_identifier)[
                "GlobalClusters"]
            writer = next(m for m in gc["GlobalClusterMembers"] if m["IsWriter"])
            assert writer["DBClusterArn"].endswith(f":cluster:{db.dr_cluster_identifier}")
        for table in result.output["restore"].get("tables") or []:
            assert table["verified"]["read_back"] and table["verified"]["deleted"]
        # RTO and RPO against the plan's objectives.
        assert result.restored_at is not None and result.restored_at <= plan.objectives.rto_minutes * 60
        lags = [v for v in rpo_lags("failover", result.output, result.events).values() if v is not None]
        assert max(lags, default=0.0) <= plan.objectives.rpo_minutes * 60
        if plan.topology == "active-active" and plan.health_check_cutover:
            # Evacuation: the failed region left the routing while the DR side was still being scaled (records
            # mode changes the records once the DR side is restored).
            steps = {s.name: s for s in result.steps}
            assert steps["Repoint DNS"].start < steps["Scale DR group"].end


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_demo_runs_every_example_and_prints_its_rto(name: str, tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["demo", "--example", name, "--pace", "0", "--json", "--report-dir",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    plan = load_plan(ROOT / "examples" / f"{name}.yaml")
    assert (doc["status"], doc["trigger"], doc["plan"]) == ("SUCCEEDED", "alarm", plan.name)
    assert doc["rto"]["seconds"] is not None and doc["rto"]["met"] is True
    assert doc["rto"]["objective_minutes"] == plan.objectives.rto_minutes


def test_demo_lists_the_examples_and_refuses_two_plans() -> None:
    from click.testing import CliRunner

    from cli import cli

    shown = CliRunner().invoke(cli, ["demo", "--help"])
    assert all(name in shown.output for name in (*ARCHITECTURES, "reference"))
    both = CliRunner().invoke(cli, ["demo", "--example", "bookstore", "--plan", "examples/reference.yaml"])
    assert both.exit_code == 2 and "not both" in both.output
