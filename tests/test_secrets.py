"""No secret leaves the estate: canaries planted in the sandbox never show up in any output.

The primary estate gets canary secrets: the database master password (also inside a ``DATABASE_URL``
environment property, as applications carry it), an environment property the plan marks secret
(``secret_properties``), AWS access keys as environment properties, and AWS keys in the CLI's own
environment. Then every command a user runs (demo, replicate, failover, drill, readiness with ``--json`` and
their report files; ``report`` in every format) and the estate's own records (execution histories, the
readiness result kept in SSM, the notices on the plan's topic, every log line of the functions) are searched
for the canaries. The DR saved configuration must still carry them: the DR environment needs its secrets. The
canary function, which reads the master password to open its SQL sessions, is searched on its own: its log
lines and what it returned or raised, including a heartbeat refused for a wrong password.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from lambdas import redact
from sandbox import Sandbox, seed
from sandbox import adapters_beanstalk_store as eb_store
from tests.conftest import REFERENCE, run_workflow
from workflows.plan import Plan, load_plan
from workflows.readiness import failover_sha256

ENV_PROPERTIES = "aws:elasticbeanstalk:application:environment"
MARKED = "PAYMENT_MERCHANT"  # a name nothing would guess is secret: only the plan says so


class Canaries:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.db_password = f"cnrydbpw{tag}"
        self.marked = f"cnrymarked{tag}"
        self.access_key = f"AKIACNRY{tag.upper()}"[:20]
        self.secret_key = f"cnrysecretkey{tag}{'x' * 17}"
        self.env_access_key = f"AKIAENVC{tag.upper()}"[:20]
        self.env_secret_key = f"cnryenvsecret{tag}{'y' * 17}"
        self.rotated = f"cnryrotated{tag}"

    def all(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items()}

    def found_in(self, text: str) -> list[str]:
        return sorted(name for name, value in self.all().items() if value in text)


def _plan_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(REFERENCE.read_text())
    data["environments"][0]["secret_properties"] = [MARKED]
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _plant(plan: Plan, canaries: Canaries) -> None:
    """The application's secrets, as it runs in the primary region (after the estate is seeded)."""
    env = plan.environments[0]
    state = eb_store.STORE.envs[(plan.primary_region, env.name)]
    host = next(o["Value"] for o in state.options if o["OptionName"] == "DB_HOST")
    state.options += [
        {"Namespace": ENV_PROPERTIES, "OptionName": "DATABASE_URL",
         "Value": f"postgres://app:{canaries.db_password}@{host}:5432/app"},
        {"Namespace": ENV_PROPERTIES, "OptionName": MARKED, "Value": canaries.marked},
        {"Namespace": ENV_PROPERTIES, "OptionName": "AWS_ACCESS_KEY_ID", "Value": canaries.access_key},
        {"Namespace": ENV_PROPERTIES, "OptionName": "AWS_SECRET_ACCESS_KEY", "Value": canaries.secret_key},
    ]


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> Canaries:
    found = Canaries()
    monkeypatch.setattr(seed, "DB_PASSWORD", found.db_password)
    original = seed.seed_primary

    def seed_with_secrets(plan: Plan, **kwargs: Any) -> dict[str, Any]:
        out = original(plan, **kwargs)
        if plan.environments:
            _plant(plan, found)
        return out

    monkeypatch.setattr(seed, "seed_primary", seed_with_secrets)
    # AWS keys in the environment of whoever runs the CLI (the sandbox runs on its own fake keys).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", found.env_access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", found.env_secret_key)
    return found


def _files(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


# Redaction itself -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DB_PASSWORD", "db_pass", "STRIPE_SECRET_KEY", "GITHUB_TOKEN", "AWS_ACCESS_KEY_ID",
                                  "AWS_SECRET_ACCESS_KEY", "SENDGRID_API_KEY", "JWT_PRIVATE_KEY", "SENTRY_DSN"])
def test_names_that_say_secret_are_secret(name):
    assert redact.is_secret(name)


@pytest.mark.parametrize("name", ["DB_HOST", "APP_ENV", "PASSENGER_LIMIT", "ASSETS_BUCKET", MARKED])
def test_other_names_are_not_unless_the_plan_marks_them(name):
    assert not redact.is_secret(name)
    assert redact.is_secret(name, [name])


def test_credentials_in_a_url_are_masked_whatever_the_name():
    shown = redact.value("postgres://app:hunter2@db.example.com:5432/app and https://u:p@x.io/")
    assert shown == f"postgres://app:{redact.MASK}@db.example.com:5432/app and https://u:{redact.MASK}@x.io/"


def test_secret_properties_must_be_named_once():
    from workflows.plan import parse_plan

    data = yaml.safe_load(REFERENCE.read_text())
    data["environments"][0]["secret_properties"] = [MARKED, MARKED]
    with pytest.raises(Exception, match="secret_properties names PAYMENT_MERCHANT more than once"):
        parse_plan(data)


# Every command a user runs -----------------------------------------------------------------------------------


def test_no_command_output_report_or_log_carries_a_secret(canaries, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    plan = _plan_file(tmp_path)
    reports = tmp_path / "reports"
    runs = {
        "demo": ["demo", "--plan", str(plan), "--json", "--report-dir", str(reports / "demo")],
        "replicate": ["replicate", str(plan), "--sandbox", "--json"],
        "failover": ["failover", str(plan), "--sandbox", "--json"],
        "drill": ["drill", str(plan), "--sandbox", "--json", "--report-dir", str(reports / "drill")],
        "readiness": ["readiness", str(plan), "--sandbox", "--json"],
    }
    for name, args in runs.items():
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code in (0, 4), (name, result.output[-2000:])
        json.loads(result.stdout)  # one JSON document
        assert canaries.found_in(result.output) == [], name
    assert list(reports.rglob("*.html")), "the report files were written"
    assert canaries.found_in(_files(reports)) == []
    assert caplog.records, "the functions logged"
    assert canaries.found_in("\n".join(r.getMessage() for r in caplog.records)) == []


# The estate's own records, a rotated secret, and `pilotlight report` ------------------------------------------


def _histories(plan: Plan) -> str:
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    out = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            out.append(json.dumps(sfn.describe_execution(executionArn=execution["executionArn"]), default=str))
            out.append(json.dumps(sfn.get_execution_history(executionArn=execution["executionArn"],
                                                            maxResults=1000)["events"], default=str))
    return "\n".join(out)


def _notices(sb: Sandbox, plan: Plan) -> str:
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    url = sqs.create_queue(QueueName=f"{plan.name}-secrets")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=plan.dr_region).subscribe(
        TopicArn=sb.topic_arn(plan), Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def _read_queue(plan: Plan, url: str) -> str:
    sqs = boto3.client("sqs", region_name=plan.dr_region)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return "\n".join(bodies)


def _dr_saved_values(plan: Plan) -> dict[str, str]:
    env = plan.environments[0]
    templates = [t for (region, app, _), t in eb_store.STORE.templates.items()
                 if region == plan.dr_region and app == env.application]
    return {o["OptionName"]: o["Value"] for t in templates for o in t["options"] if o["Namespace"] == ENV_PROPERTIES}


def test_a_rotated_secret_is_reported_as_drift_by_name_only(canaries, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    plan_path = _plan_file(tmp_path)
    plan = load_plan(plan_path)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.deploy(plan)
        notices = _notices(sb, plan)
        sb.build_pilot_light(plan)
        # The DR saved configuration carries the secrets: the DR environment needs them.
        saved = _dr_saved_values(plan)
        assert saved[MARKED] == canaries.marked and saved["AWS_SECRET_ACCESS_KEY"] == canaries.secret_key
        assert canaries.db_password in saved["DATABASE_URL"]
        # Rotated in the primary after replicate: readiness sees the drift and names the options.
        state = eb_store.STORE.envs[(plan.primary_region, plan.environments[0].name)]
        for option in state.options:
            if option["OptionName"] in (MARKED, "DATABASE_URL"):
                option["Value"] = option["Value"].replace(canaries.marked, canaries.rotated).replace(
                    canaries.db_password, canaries.rotated)
        readiness = run_workflow(sb, plan, "readiness", {"source": "test",
                                                         "expected_failover_sha256": failover_sha256(plan)})
        assert readiness.status == "SUCCEEDED"
        drift = next(c for c in readiness.output["checks"] if c["check"] == "saved-configuration")
        assert drift["status"] == "NOT_READY"
        assert f"{ENV_PROPERTIES}:{MARKED}" in drift["reason"] and f"{ENV_PROPERTIES}:DATABASE_URL" in drift["reason"]
        sb.simulate_disaster(plan)
        failover = run_workflow(sb, plan, "failover")
        assert failover.status == "SUCCEEDED", failover.cause

        report_dir = tmp_path / "report"
        report_dir.mkdir()
        for suffix in ("json", "md", "html"):
            result = CliRunner().invoke(cli, ["report", failover.execution_arn, str(plan_path), "-o",
                                              str(report_dir / f"failover.{suffix}")], catch_exceptions=False)
            assert result.exit_code == 0, result.output[-2000:]
            assert canaries.found_in(result.output) == []
        ssm = boto3.client("ssm", region_name=plan.dr_region)
        kept = "\n".join(p["Value"] for p in ssm.get_parameters_by_path(Path="/pilotlight", Recursive=True)[
            "Parameters"])
        records = {
            "readiness output": json.dumps(readiness.output),
            "execution histories": _histories(plan),
            "SSM parameters": kept,
            "topic notices": _read_queue(plan, notices),
            "reports": _files(report_dir),
            "function logs": "\n".join(r.getMessage() for r in caplog.records),
        }
    assert records["topic notices"], "readiness notified its status change"
    for where, text in records.items():
        assert canaries.found_in(text) == [], where


# The canary function: it reads the master password to connect, and nothing it logs or returns carries it ------


def _canary_outputs(plan: Plan) -> list[str]:
    """What the canary function returned or raised, as the execution histories hold it."""
    sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
    out = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
            scheduled = {e["id"] for e in events if e["type"] == "LambdaFunctionScheduled"
                         and ":function:" + f"pilotlight-{plan.name}-canary" in
                         e["lambdaFunctionScheduledEventDetails"]["resource"]}
            started = {e["id"] for e in events if e["type"] == "LambdaFunctionStarted"
                       and e.get("previousEventId") in scheduled}
            for e in events:
                details = e.get("lambdaFunctionSucceededEventDetails") or e.get("lambdaFunctionFailedEventDetails")
                if details and e.get("previousEventId") in scheduled | started:
                    out.append(json.dumps(details, default=str))
    return out


def test_the_canary_functions_logs_and_outputs_never_carry_the_database_password(canaries, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    plan = load_plan(_plan_file(tmp_path))
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)  # replicate's heartbeat: a session on the primary with the password
        # The password rotated in the primary's secret but not on the database: the heartbeat is refused.
        secrets = boto3.client("secretsmanager", region_name=plan.primary_region)
        secret = plan.rds_databases[0].credentials_secret_name
        secrets.put_secret_value(SecretId=secret, SecretString=json.dumps({"username": "app",
                                                                          "password": canaries.rotated}))
        refused = sb.run_replicate(plan)
        secrets.put_secret_value(SecretId=secret, SecretString=json.dumps({"username": "app",
                                                                          "password": canaries.db_password}))
        sb.simulate_disaster(plan)
        failover = run_workflow(sb, plan, "failover")  # the canary write in the promoted database
        outputs = _canary_outputs(plan)
        rows = sb.databases.query(plan.dr_region, plan.rds_databases[0].dr_replica_identifier,
                                  "SELECT execution FROM pilotlight_canary")
    assert failover.status == "SUCCEEDED", failover.cause
    assert rows == [[failover.execution_arn]], "the canary connected with the password and wrote"
    assert any(r["error"] == "HeartbeatNotWritten" for r in refused.output["failed"])
    logged = [r.getMessage() for r in caplog.records if '"service": "canary"' in r.getMessage()]
    assert {json.loads(m)["action"] for m in logged} >= {"heartbeat", "verify_databases"}
    assert len(outputs) >= 3, "the heartbeats and the canary write returned through the histories"
    for where, text in {"canary function logs": "\n".join(logged), "canary function outputs": "\n".join(outputs),
                        "replicate summary": json.dumps(refused.output),
                        "failover output": json.dumps(failover.output)}.items():
        assert canaries.found_in(text) == [], where
