"""Reports of drills and failovers: built from real sandbox executions, validated against the published
schema, rendered as Markdown and offline HTML, and served by `pilotlight report` and `pilotlight history`.

One sandbox for the class: a readiness run, a drill, a drill that fails mid-launch, then an outage and
a failover. The `drill --sandbox` test runs after it, in a sandbox of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from click.testing import CliRunner

import reports
from cli import cli
from commands.drill import drill_input, sandbox_drill
from reports import history, store
from reports.model import canary_writes_of
from reports.render import canary_rows
from reports.schema import report_json_schema
from sandbox import Sandbox
from tests.conftest import REFERENCE, pg_connect, run_workflow
from workflows import drill_audit
from workflows.plan import load_plan

DRILL_PATH = ["Load plan", "Prepare drill", "Copy DR replica", "Promote DR replica", "Point drill record",
              "Verify service", "Service restored"]
FAILOVER_PATH = ["Load plan", "Guard rails", "Promote DR replica", "Repoint DNS", "Verify service",
                 "Service restored"]


@pytest.fixture(scope="class")
def runs() -> Iterator[dict[str, Any]]:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        ready = run_workflow(sb, plan, "readiness", {"source": "test"})
        drill, drill_id, teardown = sandbox_drill(sb, plan, drill_input("test", keep=False, harden=False,
                                                                        force=False), None)
        sb.faults.inject("elastic-beanstalk", "CreateEnvironment", "InsufficientPrivilegesException",
                         "injected: the launch fails", times=None, status=403)
        try:
            failed, _, _ = sandbox_drill(sb, plan, drill_input("test", keep=False, harden=False, force=False), None)
        finally:
            sb.faults.clear()
        sb.simulate_disaster(plan)
        failover = run_workflow(sb, plan, "failover", timeout=600)
        assert (drill.status, failed.status, failover.status) == ("SUCCEEDED", "FAILED", "SUCCEEDED")
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        yield {"sb": sb, "plan": plan, "sfn": sfn, "ready": ready, "drill": drill, "drill_id": drill_id,
               "teardown": teardown, "failed": failed, "failover": failover,
               "docs": {name: reports.build(sfn, r.execution_arn, plan)
                        for name, r in (("drill", drill), ("failed", failed), ("failover", failover))}}


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def _steps_table(markdown: str) -> list[list[str]]:
    section = markdown.split("## Steps", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in section.splitlines()[2:]]


class TestReportsOfSandboxRuns:
    @pytest.mark.parametrize("name", ["drill", "failed", "failover"])
    def test_the_json_report_validates_against_the_published_schema(self, runs, name) -> None:
        published = json.loads(_invoke("schema", "--report").stdout)
        jsonschema.validate(json.loads(reports.to_json(runs["docs"][name])), published)
        assert published == report_json_schema()

    def test_the_drill_report_has_the_drill_commands_figures_and_the_followers_steps(self, runs) -> None:
        doc, drill, plan = runs["docs"]["drill"], runs["drill"], runs["plan"]
        assert (doc["kind"], doc["status"], doc["drill_id"]) == ("drill", "SUCCEEDED", runs["drill_id"])
        figures = drill_audit.figures(plan, drill)
        for key in ("seconds", "objective_seconds", "met", "copy_seconds", "less_copy_seconds", "less_copy_met"):
            assert doc["rto"][key] == figures["rto"][key], key
        assert doc["rpo"] == figures["rpo"]
        assert [s["name"] for s in doc["steps"]] == [s.name for s in drill.steps]
        assert [s["start_seconds"] for s in doc["steps"]] == [round(s.start, 1) for s in drill.steps]
        assert doc["options"] == {"keep": False, "harden": False, "force": False}

    def test_the_critical_path_runs_through_the_longer_branch_and_skips_containers(self, runs) -> None:
        drill, failover = runs["docs"]["drill"], runs["docs"]["failover"]
        assert drill["critical_path"] == DRILL_PATH
        assert failover["critical_path"] == FAILOVER_PATH
        for doc in (drill, failover):
            assert {s["name"] for s in doc["steps"] if s["on_critical_path"]} == set(doc["critical_path"])
            on_path = {s["name"]: s for s in doc["steps"] if s["on_critical_path"]}
            assert "Restore" not in on_path and "Launch DR environment" not in on_path
            # Each step on the path ends no later than the next one starts; the last is service restored.
            assert on_path["Service restored"]["start_seconds"] == doc["rto"]["seconds"]
        # A failover's hardening comes after service is restored: never on the path.
        assert "Harden" in [s["name"] for s in failover["steps"]] and "Enable Multi-AZ" not in failover["critical_path"]

    def test_steps_name_the_resources_their_tasks_touched(self, runs) -> None:
        plan, drill_id = runs["plan"], runs["drill_id"]
        db, env = plan.databases[0], plan.environments[0]
        drill = {s["name"]: s["resources"] for s in runs["docs"]["drill"]["steps"]}
        copy = f"{db.dr_replica_identifier}-drill-{drill_id}"
        assert {db.dr_replica_identifier, copy} <= set(drill["Copy DR replica"])
        assert f"{env.dr_environment_name}-drill-{drill_id}" in drill["Launch DR environment"]
        assert f"drill-{drill_id}.{plan.dns.record_name}" in drill["Point drill record"]
        assert set(drill["Probe S3"]) == {b.destination for b in plan.buckets}
        failover = {s["name"]: s["resources"] for s in runs["docs"]["failover"]["steps"]}
        assert failover["Promote DR replica"] == [db.dr_replica_identifier]
        assert plan.dns.record_name in failover["Repoint DNS"]
        assert failover["Guard rails"] == [a.name for a in plan.triggers.alarms]

    def test_the_drill_report_carries_its_readiness_and_the_teardown_eventbridge_started(self, runs) -> None:
        doc = runs["docs"]["drill"]
        assert doc["readiness_at_start"]["source"] == "drill" and doc["readiness_at_start"]["status"] == "READY"
        teardown = doc["teardown"]
        assert teardown["execution_arn"] == runs["teardown"].execution_arn
        assert teardown["status"] == "SUCCEEDED" and teardown["left"] == 0 and teardown["remaining"] == []
        assert {d["kind"] for d in teardown["deleted"]} >= {"db_instance", "environment", "dns_record"}
        assert all(d["drill"] == runs["drill_id"] for d in teardown["deleted"])

    def test_the_failover_report_has_the_last_readiness_run_before_it_and_no_teardown(self, runs) -> None:
        doc, plan = runs["docs"]["failover"], runs["plan"]
        readiness = doc["readiness_at_start"]
        assert readiness["source"] == "readiness_execution"
        assert readiness["execution_arn"] == runs["ready"].execution_arn
        assert readiness["status"] == runs["ready"].output["status"]
        assert doc["teardown"] is None and doc["drill_id"] is None
        assert doc["rto"]["seconds"] == round(runs["failover"].restored_at, 1)
        assert doc["rto"]["hardened_seconds"] == round(runs["failover"].duration, 1)
        assert doc["rpo"]["per_database"] == {plan.databases[0].dr_replica_identifier: doc["rpo"]["seconds"]}
        assert doc["trigger"] == {"source": "pilotlight failover", "user": "test", "alarm": None, "approved_by": "test"}

    def test_the_failover_report_lists_each_probe_with_its_url_status_and_time(self, runs) -> None:
        doc, output = runs["docs"]["failover"], runs["failover"].output
        made = [c for c in output["restored"]["checks"] if c["check"] == "http probe"]
        assert [p["url"] for p in doc["probes"]] == [c["resource"] for c in made] == [
            "http://shop-dr.us-west-2.elasticbeanstalk.com/", "http://app.shop.example.com/"]
        assert all(p["ok"] and p["status"] == 200 and p["seconds"] is not None for p in doc["probes"])
        markdown, html = reports.to_markdown(doc), reports.to_html(doc)
        for p in doc["probes"]:
            assert f"| {p['url']} | ok | 200 | {p['seconds']:.3f} s | answered 200 |" in markdown
            assert f"<code>{p['url']}</code>" in html
        assert "<h2>Probes</h2>" in html

    def test_the_failover_report_lists_the_canary_row_written_in_each_promoted_database(self, runs) -> None:
        doc, output, plan, sb = runs["docs"]["failover"], runs["failover"].output, runs["plan"], runs["sb"]
        promoted = [db.dr_replica_identifier for db in plan.rds_databases]
        assert [w["database"] for w in doc["canary_writes"]] == promoted
        for write, check in zip(doc["canary_writes"], output["restored"]["data"], strict=True):
            assert (write["method"], write["ok"], write["skipped"]) == ("SQL", True, False)
            assert write["row"] == check["row"] and write["detail"] == check["detail"]
            # The row is in the promoted database, as the application reads it there.
            conn = pg_connect(sb, plan, plan.dr_region, write["database"])
            try:
                assert conn.run("SELECT id FROM pilotlight_canary WHERE id = :id", id=write["row"]) == [[write["row"]]]
            finally:
                conn.close()
        markdown, html = reports.to_markdown(doc), reports.to_html(doc)
        assert markdown.index("## Probes") < markdown.index("## Canary writes")
        assert html.index("<h2>Probes</h2>") < html.index("<h2>Canary writes</h2>")
        for w in doc["canary_writes"]:
            assert f"| {w['database']} | SQL | ok | {w['row']} | {w['detail']} |" in markdown
            assert f"<td><code>{w['row']}</code></td>" in html

    def test_the_rpo_shows_the_heartbeat_data_loss_window_beside_the_replica_lag(self, runs) -> None:
        doc, output, plan = runs["docs"]["failover"], runs["failover"].output, runs["plan"]
        (canary,) = output["restored"]["data"]
        replica = plan.databases[0].dr_replica_identifier
        # Replicate's own heartbeat, read back from the promoted database by the canary check.
        assert doc["rpo"]["data_loss"] == [{"database": replica, "newest_write": canary["heartbeat"]["newest"],
                                            "seconds": canary["heartbeat"]["data_loss_seconds"]}]
        window = doc["rpo"]["data_loss_seconds"]
        assert window == canary["heartbeat"]["data_loss_seconds"] and window > doc["rpo"]["seconds"]
        row = f"| Data loss (heartbeat) | {window:.1f} s"
        markdown = reports.to_markdown(doc)
        assert row in markdown and markdown.index("| RPO |") < markdown.index(row)
        assert f"{replica} {window:.1f} s (newest write {canary['heartbeat']['newest']})" in markdown
        assert "Data loss (heartbeat)" in reports.to_html(doc)

    def test_a_drill_report_has_the_window_measured_on_its_copies(self, runs) -> None:
        doc = runs["docs"]["drill"]
        # The drill's canary reads the newest heartbeat in its copy, never in the live replica.
        assert doc["rpo"]["data_loss"] and all("-drill-" in w["database"] for w in doc["rpo"]["data_loss"])
        assert "Data loss (heartbeat)" in reports.to_markdown(doc)
        # So are its canary writes: one per copy, none in the live replica.
        writes = doc["canary_writes"]
        assert [w["database"] for w in writes] == [w["database"] for w in doc["rpo"]["data_loss"]]
        assert all(w["ok"] and not w["skipped"] and w["method"] == "SQL" and w["row"] for w in writes)
        assert "## Canary writes" in reports.to_markdown(doc)

    def test_aurora_and_skipped_canary_writes_render_in_both_formats(self, runs) -> None:
        doc = json.loads(json.dumps(runs["docs"]["failover"]))
        doc["canary_writes"] = canary_writes_of({"restored": {"aurora_data": _AURORA_CHECKS}}, [])
        jsonschema.validate(doc, report_json_schema())
        markdown, html = reports.to_markdown(doc), reports.to_html(doc)
        assert "| shop-aurora-dr | RDS Data API | ok | 0123abcd | wrote and read back |" in markdown
        assert "| shop-mysql-dr | RDS Data API | skipped | - | not verified as data: no Data API |" in markdown
        assert "<td><code>shop-mysql-dr</code></td><td>RDS Data API</td><td>skipped</td>" in html
        assert "FAILED" not in markdown.split("## Canary writes", 1)[1]
        doc["canary_writes"] = []
        assert "Canary writes" not in reports.to_markdown(doc) and "Canary writes" not in reports.to_html(doc)

    def test_a_failed_drill_reports_where_it_failed_and_the_lag_it_read(self, runs) -> None:
        doc = runs["docs"]["failed"]
        assert doc["status"] == "FAILED" and doc["failed_step"] == "Launch DR environment"
        (failed,) = [s for s in doc["steps"] if s["status"] == "failed"]
        assert failed["name"] == "Launch DR environment" and failed["error"] == doc["error"]
        assert doc["rto"]["seconds"] is None and doc["rto"]["met"] is False and doc["critical_path"] == []
        # No output: the RPO and the readiness come from what the states wrote in the history.
        assert doc["rpo"]["seconds"] is not None and doc["readiness_at_start"]["status"] == "READY"
        assert doc["teardown"]["status"] == "SUCCEEDED" and doc["teardown"]["left"] == 0

    @pytest.mark.parametrize("name", ["drill", "failed", "failover"])
    def test_the_html_is_one_offline_page_with_a_bar_per_step_and_the_rto_lines(self, runs, name) -> None:
        doc = runs["docs"][name]
        html = reports.to_html(doc)
        # Offline: nothing is loaded from anywhere (the probes' URLs are text in the page, never fetched).
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", html)
        assert "<?xml" not in html and "<!DOCTYPE svg" not in html and "<script" not in html
        assert html.count("<svg") == 1
        bars = re.findall(r'<g id="step-(\d+)">', html)
        assert sorted(map(int, bars)) == list(range(len(doc["steps"])))
        assert '<g id="rto-objective">' in html
        assert ('<g id="rto-measured">' in html) == (doc["rto"]["seconds"] is not None)
        assert reports.to_html(doc) == html  # deterministic: the same report gives the same bytes

    def test_a_running_execution_renders_with_open_steps(self, runs) -> None:
        doc = json.loads(json.dumps(runs["docs"]["failover"]))
        doc.update(status="RUNNING", ended_at=None, duration_seconds=None)
        doc["steps"][-1].update(end_seconds=None, duration_seconds=None, status="running")
        jsonschema.validate(doc, report_json_schema())
        html = reports.to_html(doc)
        assert len(re.findall(r'<g id="step-\d+">', html)) == len(doc["steps"])
        assert "running" in reports.to_markdown(doc)

    def test_the_html_escapes_text_from_the_execution(self, runs) -> None:
        doc = json.loads(json.dumps(runs["docs"]["failed"]))
        doc["cause"] = "<script>alert(1)</script>"
        html = reports.to_html(doc)
        assert "<script>" not in html and "&lt;script&gt;" in html

    @pytest.mark.parametrize("name", ["drill", "failover"])
    def test_the_markdown_has_the_same_steps_and_figures_as_the_json(self, runs, name) -> None:
        doc = runs["docs"][name]
        markdown = reports.to_markdown(doc)
        rows = _steps_table(markdown)
        assert [r[0] for r in rows] == [s["name"] for s in doc["steps"]]
        assert [r[1] for r in rows] == [f"{s['start_seconds']:.1f} s" for s in doc["steps"]]
        assert [r[3] for r in rows] == [f"{s['duration_seconds']:.1f} s" for s in doc["steps"]]
        assert [r[5] == "yes" for r in rows] == [s["on_critical_path"] for s in doc["steps"]]
        assert f"| RTO | {doc['rto']['seconds']:.1f} s" in markdown
        assert f"| RPO | {doc['rpo']['seconds']:.1f} s" in markdown
        assert " → ".join(doc["critical_path"]) in markdown

    def test_write_puts_the_three_formats_under_the_plan(self, runs, tmp_path) -> None:
        doc = runs["docs"]["drill"]
        paths = reports.write(doc, tmp_path)
        assert {f: p.relative_to(tmp_path).as_posix() for f, p in paths.items()} == {
            f: f"{doc['plan']}/{doc['execution_name']}.{f}" for f in ("json", "md", "html")}
        assert json.loads(paths["json"].read_text()) == doc

    def test_upload_copies_to_the_reports_bucket_and_says_when_there_is_none(self, runs, tmp_path) -> None:
        doc, plan = runs["docs"]["failover"], runs["plan"]
        paths = reports.write(doc, tmp_path)
        session = boto3.Session()
        missing = reports.upload(paths, doc, session, "123456789012", plan.dr_region)
        assert isinstance(missing, str) and "does not exist" in missing
        bucket = reports.bucket_name(plan.name, "123456789012", plan.dr_region)
        s3 = boto3.client("s3", region_name=plan.dr_region)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": plan.dr_region})
        uris = reports.upload(paths, doc, session, "123456789012", plan.dr_region)
        assert uris == [f"s3://{bucket}/{plan.name}/{p.name}" for p in paths.values()]
        body = s3.get_object(Bucket=bucket, Key=f"{plan.name}/{paths['json'].name}")["Body"].read()
        assert json.loads(body) == doc

    def test_report_latest_renders_the_newest_execution(self, runs, tmp_path) -> None:
        shown = _invoke("report", "latest", str(REFERENCE), "--format", "json")
        assert json.loads(shown.stdout) == runs["docs"]["failover"]
        out = tmp_path / "drill.html"
        name = runs["docs"]["drill"]["execution_name"]
        assert _invoke("report", name, str(REFERENCE), "-o", str(out)).stdout.strip() == str(out)
        assert out.read_text() == reports.to_html(runs["docs"]["drill"])
        by_arn = _invoke("report", runs["drill"].execution_arn, str(REFERENCE))
        assert by_arn.stdout == reports.to_markdown(runs["docs"]["drill"])

    def test_report_names_an_unknown_execution(self, runs) -> None:
        result = CliRunner().invoke(cli, ["report", "no-such-run", str(REFERENCE)])
        assert result.exit_code == 2 and "no drill or failover" in result.output

    def test_history_lists_drills_and_failovers_with_their_figures(self, runs) -> None:
        doc = json.loads(_invoke("history", str(REFERENCE), "--json").stdout)
        docs = runs["docs"]
        assert [d["execution_name"] for d in doc["drills"]] == [docs["failed"]["execution_name"],
                                                                docs["drill"]["execution_name"]]
        (failover,) = doc["failovers"]
        assert (failover["rto_seconds"], failover["rpo_seconds"]) == (docs["failover"]["rto"]["seconds"],
                                                                      docs["failover"]["rpo"]["seconds"])
        assert doc["drills"][1]["rto_seconds"] == docs["drill"]["rto"]["seconds"]
        # One drill restored service: too few for a trend.
        assert doc["trend"]["direction"] == "unknown"
        assert doc["trend"]["rto_seconds"] == [docs["drill"]["rto"]["seconds"]]
        text = _invoke("history", str(REFERENCE), "--last", "1").stdout
        assert docs["failover"]["execution_name"] in text and docs["drill"]["execution_name"] not in text


_AURORA_CHECKS = [
    {"check": "canary write (Data API)", "resource": "shop-aurora-dr", "ok": True, "row": "0123abcd",
     "written_at": "2024-05-01T12:00:00+00:00", "engine": "aurora-postgresql", "detail": "wrote and read back"},
    {"check": "canary write (Data API)", "resource": "shop-mysql-dr", "ok": True, "skipped": True,
     "detail": "not verified as data: no Data API"},
]


def test_canary_writes_are_read_from_the_output_else_from_the_last_rounds_in_the_history() -> None:
    sql = {"check": "canary write", "resource": "shop-db-dr", "ok": False, "detail": "cannot connect: timeout",
           "password": "never-copied"}
    probe = {"check": "http probe", "resource": "http://app/", "ok": True}
    output = {"restored": {"checks": [probe], "data": [sql], "aurora_data": _AURORA_CHECKS}}
    writes = canary_writes_of(output, [])
    assert writes == [
        {"database": "shop-db-dr", "method": "SQL", "ok": False, "skipped": False, "row": None,
         "detail": "cannot connect: timeout"},
        {"database": "shop-aurora-dr", "method": "RDS Data API", "ok": True, "skipped": False, "row": "0123abcd",
         "detail": "wrote and read back"},
        {"database": "shop-mysql-dr", "method": "RDS Data API", "ok": True, "skipped": True, "row": None,
         "detail": "not verified as data: no Data API"}]
    # Only the report's fields: nothing else a check might carry.
    assert all("password" not in w and "written_at" not in w for w in writes)
    assert [r[2] for r in canary_rows({"canary_writes": writes})] == ["FAILED", "ok", "skipped"]

    # No output (the execution failed): the newest round of each kind its history holds.
    def exited(doc: dict[str, Any]) -> dict[str, Any]:
        return {"type": "TaskStateExited", "stateExitedEventDetails": {"output": json.dumps(doc)}}

    events = [exited({"poll": {"checks": [{**sql, "ok": False}]}}),
              exited({"data_checks": {"checks": [{**sql, "ok": True, "row": "feed"}]},
                      "poll": {"checks": _AURORA_CHECKS[:1]}}),
              exited({"data_checks": {"checks": [{**sql, "ok": True, "row": "feed"}]},
                      "aurora_checks": {"checks": _AURORA_CHECKS}, "poll": {"checks": [probe]}})]
    assert [(w["database"], w["ok"], w["row"]) for w in canary_writes_of(None, events)] == [
        ("shop-db-dr", True, "feed"), ("shop-aurora-dr", True, "0123abcd"), ("shop-mysql-dr", True, None)]


def test_the_trend_compares_the_halves_medians_and_gives_the_slope() -> None:
    improving = history.trend([1500.0, 1400.0, 1300.0, 1200.0])
    assert improving["direction"] == "improving"
    assert (improving["first_half_median_seconds"], improving["second_half_median_seconds"]) == (1450.0, 1250.0)
    assert improving["slope_seconds_per_drill"] == -100.0 and improving["change_percent"] == -13.8
    assert history.trend([1200.0, 1300.0, 9000.0, 1500.0, 1600.0])["direction"] == "worsening"
    assert history.trend([1200.0, 1230.0, 1210.0, 1220.0])["direction"] == "steady"
    assert history.trend([1200.0])["direction"] == "unknown"


def test_bucket_names_fit_s3_for_long_plan_names() -> None:
    assert store.bucket_name("shop", "123456789012", "us-west-2") == "pilotlight-shop-reports-123456789012-us-west-2"
    long = store.bucket_name("a" * 30 + "-b" * 5, "123456789012", "ap-southeast-2")
    assert len(long) <= 63 and long != store.bucket_name("a" * 30 + "-c" * 5, "123456789012", "ap-southeast-2")


def test_a_sandbox_drill_writes_its_reports_to_the_report_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["drill", str(REFERENCE), "--sandbox", "--json", "--no-harden",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    files = {fmt: Path(p) for fmt, p in doc["reports"]["files"].items()}
    assert set(files) == {"json", "md", "html"} and all(p.parent == tmp_path / "shop" for p in files.values())
    report = json.loads(files["json"].read_text())
    jsonschema.validate(report, report_json_schema())
    assert report["execution_arn"] == doc["execution_arn"] and report["rto"]["seconds"] == doc["rto"]["seconds"]
    assert report["teardown"]["status"] == doc["teardown"]["status"] == "SUCCEEDED"
    assert doc["reports"]["uploaded"] == [] and doc["reports"]["note"] is None  # the sandbox keeps them local
    assert f"Report (html): {files['html']}" in result.stderr


def test_a_failover_whose_probe_answers_500_reports_the_failing_probe_from_its_history() -> None:
    plan = load_plan(REFERENCE)
    with Sandbox() as sb:
        sb.seed(plan)
        sb.build_pilot_light(plan)
        sb.simulate_disaster(plan)
        sb.web.answer_with(plan.dr_region, "shop-dr", 500)
        result = run_workflow(sb, plan, "failover", timeout=600)
        doc = reports.build(boto3.client("stepfunctions", region_name=plan.dr_region), result.execution_arn, plan)
    assert doc["status"] == "FAILED" and doc["error"] == "ServiceNotVerified"
    (probe,) = doc["probes"]  # the DNS name is probed only once every environment answers
    assert probe == {"url": "http://shop-dr.us-west-2.elasticbeanstalk.com/", "ok": False, "status": 500,
                     "seconds": probe["seconds"], "detail": "answered 500, expected 200"}
    assert "| http://shop-dr.us-west-2.elasticbeanstalk.com/ | FAILED | 500 |" in reports.to_markdown(doc)
    # The canary write had passed before the probes: its data-loss window is in the history, and so in the report.
    assert [w["database"] for w in doc["rpo"]["data_loss"]] == ["shop-db-dr"]
    assert doc["rpo"]["data_loss_seconds"] is not None
    # And so is its canary write, read from the same round.
    assert [(w["database"], w["method"], w["ok"]) for w in doc["canary_writes"]] == [("shop-db-dr", "SQL", True)]
