from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from sandbox import Sandbox
from workflows.executions import Result, follow
from workflows.plan import Plan, load_plan

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "examples" / "reference.yaml"



@pytest.fixture(scope="session")
def reference_plan() -> Plan:
    return load_plan(REFERENCE)


@pytest.fixture
def sandbox():
    with Sandbox() as sb:
        yield sb


def outage(sb: Sandbox, plan: Plan) -> None:
    """The primary estate with its pilot light built by replicate, then the primary region failing."""
    sb.seed(plan)
    sb.build_pilot_light(plan)
    sb.simulate_disaster(plan)


def run_workflow(sb: Sandbox, plan: Plan, workflow: str, execution_input: dict[str, Any] | None = None,
                 timeout: float = 120) -> Result:
    """Start a deployed workflow in the sandbox and follow it to the end."""
    # Default: an operator-started run (carries its approval), as `pilotlight failover` starts it.
    arn = sb.start(plan, workflow, execution_input or {"source": "pilotlight failover", "approved_by": "test"})
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    return follow(sfn, arn, poll_seconds=0.05, timeout_seconds=timeout)


def pg_connect(sb: Sandbox, plan: Plan, region: str, identifier: str, database: str = "postgres") -> Any:
    """A pg8000 connection to a sandbox RDS instance as the application makes one: the endpoint RDS answers, the
    master credentials from the plan's secret in ``region`` (``sb``: the sandbox that must be open)."""
    import json

    import pg8000.native

    assert sb.databases is not None, "the sandbox is not open"
    db = boto3.client("rds", region_name=region).describe_db_instances(DBInstanceIdentifier=identifier)[
        "DBInstances"][0]
    # The plan's database the instance is, or is a copy of (a replica, a drill copy named after it).
    plan_db = next((d for d in plan.rds_databases if identifier.startswith((d.identifier, d.dr_replica_identifier))),
                   plan.rds_databases[0])
    secret = json.loads(boto3.client("secretsmanager", region_name=region).get_secret_value(
        SecretId=plan_db.credentials_secret_name)["SecretString"])
    return pg8000.native.Connection(secret["username"], password=secret["password"], host=db["Endpoint"]["Address"],
                                    port=db["Endpoint"]["Port"], database=database)


def history_of_state(result: Result, state: str) -> list[str]:
    """Event types of the Lambda invocations made by ``state``, in order."""
    by_id = {e["id"]: e for e in result.events}
    out = []
    for event in result.events:
        if not event["type"].startswith("LambdaFunction") or event["type"] in ("LambdaFunctionScheduled",
                                                                              "LambdaFunctionStarted"):
            continue
        node = event
        while node is not None and not node["type"].endswith("StateEntered"):
            node = by_id.get(node.get("previousEventId", 0))
        if node is not None and node["stateEnteredEventDetails"]["name"] == state:
            out.append(event["type"])
    return out
