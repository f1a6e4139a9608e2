"""A drill verifies the service on its copies as the failover does, and only there: a real SQL write in the drill's
database copy (never in the primary or the live DR replica), a real HTTP GET of the drill environment's URL (never of
the plan's DNS name: production records are not moved), and a failing probe fails the drill with ServiceNotVerified
while the teardown still removes every copy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from commands.drill import drill_input, sandbox_drill
from lambdas import drill as names
from reports.model import probes_of
from sandbox import Sandbox, clock, postgres
from tests.conftest import REFERENCE, pg_connect
from workflows import drill_audit
from workflows.executions import follow
from workflows.plan import Plan, load_plan

pytestmark = pytest.mark.skipif(postgres.find_bin() is None,
                                reason="PostgreSQL is not installed (make test installs Debian's postgresql)")

BEFORE = ["before-the-drill", "application"]  # a canary row the primary had before the drill
CANARY = "SELECT id, execution FROM pilotlight_canary ORDER BY written_at, id"


@pytest.fixture(scope="module")
def estate() -> Iterator[tuple[Sandbox, Plan]]:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        conn = pg_connect(sb, plan, plan.primary_region, plan.databases[0].identifier)
        conn.run("CREATE TABLE pilotlight_canary (id text PRIMARY KEY, written_at timestamptz NOT NULL, "
                 "execution text)")
        conn.run("INSERT INTO pilotlight_canary VALUES (:id, now(), :ex)", id=BEFORE[0], ex=BEFORE[1])
        conn.close()
        clock.sleep(600)  # well past the modeled replica lag: the live DR replica holds the row too
        yield sb, plan


def _names(plan: Plan, drill: str) -> tuple[str, str, str]:
    """The drill's database copy, environment copy and that environment's host name."""
    env = plan.environments[0]
    copy = names.drill_name(plan.databases[0].dr_replica_identifier, drill, names.DB_NAME_LIMIT)
    environment = names.drill_name(env.dr_environment_name, drill, names.ENV_NAME_LIMIT)
    host = f"{names.drill_name(env.cname_prefix, drill, names.CNAME_LIMIT)}.{plan.dr_region}.elasticbeanstalk.com"
    return copy, environment, host


def _production_requests(sb: Sandbox, plan: Plan) -> list[dict[str, Any]]:
    """Every HTTP request any server got for the plan's DNS name."""
    name = plan.dns.record_name.rstrip(".")
    return [e for server in list(sb.web.servers.values()) for e in list(server.log) if e["host"] == name]


def _production_rows(sb: Sandbox, plan: Plan) -> dict[str, list[list[Any]]]:
    db = plan.databases[0]
    return {"primary": sb.databases.query(plan.primary_region, db.identifier, CANARY),
            "live replica": sb.databases.query(plan.dr_region, db.dr_replica_identifier, CANARY)}


def test_a_drill_writes_its_canary_in_the_copy_only_and_requests_the_drill_environment(estate) -> None:
    sb, plan = estate
    assert _production_rows(sb, plan) == {"primary": [BEFORE], "live replica": [BEFORE]}
    before = len(_production_requests(sb, plan))
    # Kept: the copy is read after the drill, then removed by the same teardown as `pilotlight drill-cleanup`.
    result, drill, kept = sandbox_drill(sb, plan, drill_input("test", keep=True, harden=False, force=False), None)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    copy, environment, host = _names(plan, drill)

    # SQL: the canary row is in the copy (beside what it copied), read through PostgreSQL as the application would.
    (check,) = result.output["restored"]["data"]
    assert check["ok"] and check["resource"] == copy
    conn = pg_connect(sb, plan, plan.dr_region, copy)
    try:
        rows = conn.run(CANARY)
    finally:
        conn.close()
    assert rows == [BEFORE, [check["row"], result.execution_arn]]
    # ... and not in production: the primary and the live DR replica have only the row they had.
    assert _production_rows(sb, plan) == {"primary": [BEFORE], "live replica": [BEFORE]}

    # HTTP: the drill environment's URL was requested; the plan's DNS name was not (and the output says why).
    log = sb.web.log_of(plan.dr_region, environment)
    assert log and all((e["host"], e["path"], e["status"]) == (host, "/", 200) for e in log)
    assert len(_production_requests(sb, plan)) == before
    probes = [c for c in result.output["restored"]["checks"] if c["check"] == "http probe"]
    assert [(p["resource"], p["ok"], p["status"]) for p in probes] == [(f"http://{host}/", True, 200)]
    (skipped,) = result.output["not_probed"]
    assert skipped["url"] == f"http://{plan.dns.record_name}/" and "production records are not moved" in \
        skipped["reason"]
    # The drill record was checked at Route 53, not over HTTP.
    (record,) = result.output["drill_record"]
    assert record["check"] == "dns" and record["ok"] and record["resource"] == names.record_name(
        plan.dns.record_name, drill)
    # The report shows the drill's probes as it shows a failover's.
    assert [p["url"] for p in probes_of(result.output, result.events)] == [f"http://{host}/"]

    # Teardown: nothing tagged with the drill is left.
    assert kept is not None and kept.output["kept"] is True
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    cleanup = follow(sfn, sb.start(plan, "drill-teardown", {"drill_id": drill}), poll_seconds=0.05)
    assert cleanup.status == "SUCCEEDED", cleanup.cause
    assert drill_audit.leftovers(plan, drill) == []


def test_a_drill_whose_environment_answers_500_fails_not_verified_and_is_torn_down(estate) -> None:
    sb, plan = estate
    env = plan.environments[0]
    # Every drill copy of the DR environment answers 500 while Beanstalk reports it Ready/Green.
    sb.web.answer_with(plan.dr_region, names.name_prefix(env.dr_environment_name, names.ENV_NAME_LIMIT) + "*", 500)
    try:
        result, drill, teardown = sandbox_drill(sb, plan, drill_input("test", keep=False, harden=False, force=False),
                                                None)
    finally:
        sb.web.answer_with(plan.dr_region, names.name_prefix(env.dr_environment_name, names.ENV_NAME_LIMIT) + "*",
                           None)
    copy, environment, host = _names(plan, drill)
    assert result.status == "FAILED"
    assert result.error == "ServiceNotVerified"
    assert f"http probe http://{host}/: answered 500, expected 200" in result.cause
    assert "Service restored" not in {s.name for s in result.steps}
    assert sb.web.log_of(plan.dr_region, environment)[-1]["status"] == 500
    # The report shows the failing probe, read from the history (a failed drill has no output).
    assert [(p["url"], p["ok"], p["status"]) for p in probes_of(result.output, result.events)] == [
        (f"http://{host}/", False, 500)]
    # The teardown EventBridge started for the failed drill removed everything it made.
    assert teardown is not None and teardown.status == "SUCCEEDED", (teardown and teardown.cause)
    assert drill_audit.leftovers(plan, drill) == []
    assert _production_rows(sb, plan) == {"primary": [BEFORE], "live replica": [BEFORE]}
