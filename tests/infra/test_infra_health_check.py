"""The health_check DNS cutover plan synthesizes clean: cfn-lint errors none, cdk-nag findings all reasoned."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import REPO, Template

from workflows.plan import load_plan

EXAMPLE = REPO / "examples" / "health-check.yaml"


def _synthesized_clean(plan, tmp_path):
    """Synthesize the plan: no cfn-lint error, and every cdk-nag finding suppressed with a reason."""
    from infra import app

    result = app.synthesize(plan, tmp_path / "cdk.out")
    assert result.errors == []
    rows = []
    for report in sorted(Path(result.out_dir).glob("AwsSolutions-*-NagReport.csv")):
        with report.open(newline="") as fh:
            rows += list(csv.DictReader(fh))
    assert rows and [r for r in rows if r["Compliance"] == "Non-Compliant"] == []
    return result


def test_health_check_plan_synthesizes_with_scoped_dns_grants(tmp_path):
    from infra.stacks import dr_stack_name

    plan = load_plan(EXAMPLE)
    result = _synthesized_clean(plan, tmp_path)
    dr = Template(result.templates[dr_stack_name(plan)], plan.dr_region)
    grants: dict[str, list] = {}
    for policy in dr.of_type("AWS::IAM::Policy").values():
        for st in dr.resolve(policy["Properties"]["PolicyDocument"]["Statement"]):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            for action in actions:
                grants.setdefault(action, []).append(st)
    # The dns function's grant names the health alarm; the Beanstalk launch's names awseb-e-* alarms only.
    by_resource = {str(st["Resource"]): st for st in grants["cloudwatch:PutMetricAlarm"]}
    assert "arn:aws:cloudwatch:us-west-2:123456789012:alarm:pilotlight-shop-primary-health" in by_resource
    assert all(r.startswith("arn:aws:cloudwatch:us-west-2:123456789012:alarm:") for r in by_resource), by_resource
    (create,) = grants["route53:CreateHealthCheck"]
    assert create["Resource"] == "*" and create["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}


def test_encrypted_plan_synthesizes_with_every_finding_reasoned(tmp_path):
    """examples/second.yaml copies encrypted AMIs and replicas: the source-key wildcard carries its reason."""
    plan = load_plan(REPO / "examples" / "second.yaml")
    _synthesized_clean(plan, tmp_path)
