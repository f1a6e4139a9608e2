"""A report as JSON, Markdown, or one self-contained HTML page with a timeline chart.

Why these libraries:

- **Jinja2** renders the HTML: autoescaping is on for every template (execution causes, resource names and
  step names are text from AWS and the plan, never markup), templates live beside the code as package data
  (``reports/templates/*.html.j2``), and it is widely used and maintained.
- **matplotlib** draws the timeline as a static SVG inlined in the page: it needs no JavaScript, no
  network and no browser, so the same picture works in an auditor's mail, in a page opened offline, and
  where no script runs at all (the CloudWatch custom widget the dashboard will use). Only the object API
  (:class:`matplotlib.figure.Figure`) is used, never pyplot, so no GUI backend is ever selected; rendering
  settings are scoped with ``rc_context`` and made deterministic (fixed ``svg.hashsalt``, no date or
  creator metadata): the same report gives the same bytes.

The HTML holds no ``http://`` or ``https://`` at all: the SVG's XML declaration, DOCTYPE, namespace
declarations and metadata are stripped (inline SVG in HTML needs none of them) and ``xlink:href`` becomes
SVG 2's ``href``.
"""

from __future__ import annotations

import functools
import io
import json
import re
from typing import Any

from workflows.executions import fmt_duration

FORMATS = ("json", "md", "html")

# Bar colours: the critical path stands out; a failed step is marked whatever its path.
CRITICAL = "#c0392b"
OTHER = "#7f8fa6"
FAILED = "#2d3436"
OBJECTIVE = "#27ae60"
MEASURED = "#2c3e50"


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


# -- shared formatting ----------------------------------------------------------------------------------


def seconds_text(value: float | None) -> str:
    """``1274.0 s (21m14s)``: the JSON's figure, then the same for a reader."""
    return "-" if value is None else f"{value:.1f} s ({fmt_duration(value)})"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "unknown"}[met]


def _rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary table, shared by Markdown and HTML."""
    rto, rpo = doc["rto"], doc["rpo"]
    trigger = doc["trigger"]
    source = f"alarm {trigger['alarm']}" if trigger["alarm"] else trigger["source"]
    started_by = ", ".join(x for x in (source, trigger["user"] and f"by {trigger['user']}") if x) or "-"
    rows = [("Plan", doc["plan"]), ("Kind", doc["kind"]), ("Execution", doc["execution_name"]),
            ("Execution ARN", doc["execution_arn"])]
    if doc["drill_id"]:
        rows.append(("Drill id", doc["drill_id"]))
    rows.append(("Started by", started_by))
    if trigger["approved_by"]:
        rows.append(("Approved by", trigger["approved_by"]))
    rows += [("Started", doc["started_at"]), ("Ended", doc["ended_at"] or "running"),
             ("Duration", seconds_text(doc["duration_seconds"])), ("Status", doc["status"])]
    if doc["options"]:
        rows.append(("Options", ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in doc["options"].items())))
    if doc["error"] or doc["cause"]:
        rows.append(("Failed", f"at step {doc['failed_step'] or '-'}: {doc['error'] or ''}: {doc['cause'] or ''}"))
    rows.append(("RTO", f"{seconds_text(rto['seconds'])}, objective {seconds_text(rto['objective_seconds'])}: "
                        f"{verdict(rto['met'])}"))
    if rto["less_copy_seconds"] is not None:
        rows.append(("RTO less the copy", f"{seconds_text(rto['less_copy_seconds'])} (copy "
                                          f"{seconds_text(rto['copy_seconds'])}): {verdict(rto['less_copy_met'])}"))
    if rto["hardened_seconds"] is not None:
        rows.append(("Hardened after", seconds_text(rto["hardened_seconds"])))
    per_db = "; ".join(f"{db} {'-' if lag is None else f'{lag:.1f} s'}" for db, lag in rpo["per_database"].items())
    rows.append(("RPO", f"{seconds_text(rpo['seconds'])}, objective {seconds_text(rpo['objective_seconds'])}: "
                        f"{verdict(rpo['met'])}" + (f" (replica lag: {per_db})" if per_db else "")))
    if rpo["data_loss"]:
        windows = "; ".join(f"{w['database']} {_lag_text(w['seconds'])} (newest write "
                            f"{w['newest_write'] or 'none found'})" for w in rpo["data_loss"])
        met = verdict(_within(rpo["data_loss_seconds"], rpo["objective_seconds"]))
        rows.append(("Data loss (heartbeat)", f"{seconds_text(rpo['data_loss_seconds'])}, objective "
                                              f"{seconds_text(rpo['objective_seconds'])}: {met} ({windows})"))
    rows.append(("Critical path", " → ".join(doc["critical_path"]) or "- (service not restored)"))
    return rows


def _lag_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _within(seconds: float | None, objective: int) -> bool | None:
    return None if seconds is None else seconds <= objective


def probe_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(URL, result, status, time, detail) of each probe, shared by Markdown and HTML."""
    return [(p["url"], "ok" if p["ok"] else "FAILED", "-" if p["status"] is None else str(p["status"]),
             "-" if p["seconds"] is None else f"{p['seconds']:.3f} s", p["detail"] or "-") for p in doc["probes"]]


def canary_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(database, method, result, row, detail) of each canary write, shared by Markdown and HTML."""
    return [(w["database"], w["method"], "skipped" if w["skipped"] else "ok" if w["ok"] else "FAILED",
             w["row"] or "-", w["detail"] or "-") for w in doc.get("canary_writes") or []]


def _readiness_line(readiness: dict[str, Any] | None, kind: str) -> str:
    if readiness is None:
        return ("No readiness run had ended before the failover started." if kind == "failover"
                else "The drill recorded no readiness reading.")
    where = ("read by the drill when it started" if readiness["source"] == "drill"
             else f"last readiness run before the start ({readiness['execution_arn']})")
    score = "" if readiness["score"] is None else f", score {readiness['score'] * 100:.0f}%"
    overridden = " (overridden with --force)" if readiness["overridden"] else ""
    at = f" at {readiness['at']}" if readiness["at"] else ""
    return f"{readiness['status']}{score}{at}, {where}{overridden}"


# -- Markdown ----------------------------------------------------------------------------------------------


def _md(text: Any) -> str:
    return str(text if text is not None else "-").replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [f"# pilotlight {doc['kind']} report: {doc['plan']} / {doc['execution_name']}", "",
             "| | |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in _rows(doc)]
    lines += ["", "## Readiness at start", "", _md(_readiness_line(doc["readiness_at_start"], doc["kind"]))]
    readiness = doc["readiness_at_start"]
    if readiness and readiness["not_ready"]:
        lines += ["", "| check | resource | status | reason |", "|---|---|---|---|"]
        lines += [f"| {_md(c['check'])} | {_md(c['resource'])} | {_md(c['status'])} | {_md(c['reason'])} |"
                  for c in readiness["not_ready"]]
    lines += ["", "## Steps", "",
              "| step | start | end | duration | status | critical path | resources |",
              "|---|---:|---:|---:|---|---|---|"]
    for s in doc["steps"]:
        end = "-" if s["end_seconds"] is None else f"{s['end_seconds']:.1f} s"
        duration = "-" if s["duration_seconds"] is None else f"{s['duration_seconds']:.1f} s"
        status = s["status"] + (f": {s['error']}: {s['cause']}" if s["error"] else "")
        lines.append(f"| {_md(s['name'])} | {s['start_seconds']:.1f} s | {end} | {duration} | {_md(status)} | "
                     f"{'yes' if s['on_critical_path'] else ''} | {_md(', '.join(s['resources']))} |")
    lines += ["", f"Critical path rule: {doc['critical_path_rule']}", ""]
    if doc["probes"]:
        lines += ["## Probes", "", "| URL | result | status | time | detail |", "|---|---|---:|---:|---|"]
        lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in probe_rows(doc)]
        lines.append("")
    canaries = canary_rows(doc)
    if canaries:
        lines += ["## Canary writes", "", "| database | method | result | row | detail |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in canaries]
        lines.append("")
    if doc["kind"] == "drill":
        lines += ["## Teardown", ""]
        teardown = doc["teardown"]
        if teardown is None:
            lines.append("No teardown execution has started for this drill.")
        else:
            lines.append(f"{_md(teardown['status'])}: {teardown['execution_name']}, "
                         f"{seconds_text(teardown['duration_seconds'])}"
                         + (", kept on request (--keep)" if teardown["kept"] else "")
                         + f"; deleted {len(teardown['deleted'])}, left {teardown['left']}")
            if teardown["error"]:
                lines.append(f"\n{_md(teardown['error'])}: {_md(teardown['cause'])}")
            if teardown["deleted"]:
                lines += ["", "| deleted | id |", "|---|---|"]
                lines += [f"| {_md(d['kind'])} | {_md(d['id'])} |" for d in teardown["deleted"]]
            if teardown["remaining"]:
                lines += ["", "| left | id | status |", "|---|---|---|"]
                lines += [f"| {_md(r['kind'])} | {_md(r['id'])} | {_md(r['status'])} |" for r in teardown["remaining"]]
        lines.append("")
    if doc.get("failback"):
        lines += failback_lines(doc["failback"])
    return "\n".join(lines)


def failback_rows(switch: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, DR before, primary after, verdict) of a failback's data check, for both renderings."""
    rows = []
    for db in switch["databases"]:
        rows.append((f"{db['identifier']}: marker row", db["source"], "found" if db["marker_found"] else "MISSING",
                     "ok" if db["marker_found"] else "LOST"))
        rows += [(f"{db['identifier']}.{t['table']} rows", str(t["before"]), str(t["after"]),
                  "ok" if t["after"] >= t["before"] else "LOST") for t in db["tables"]]
    for b in switch["buckets"]:
        rows.append((f"s3://{b['source']} objects", str(b["dr_objects"]), str(b["primary_objects"]),
                     "ok" if b["ok"] else f"{len(b['mismatches'])} mismatch(es) of {b['sample']} sampled"))
    return rows


def failback_lines(switch: dict[str, Any]) -> list[str]:
    lines = ["## Switch back", "",
             f"Downtime: {seconds_text(switch['downtime_seconds'])} from writes stopped (the approval, "
             f"{_md(switch['writes_stopped_at'])}) to verified service on the primary ({_md(switch['restored_at'])})"
             + ("; switched back by an earlier run of this failback" if switch["resumed"] else "") + ".", "",
             f"Data check: {'passed' if switch['data_check_ok'] else 'FAILED'}.", ""]
    rows = failback_rows(switch)
    if rows:
        lines += ["| check | DR before | primary after | verdict |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
        lines.append("")
    return lines


# -- the timeline chart --------------------------------------------------------------------------------------

_SVG_HEAD = re.compile(r"^.*?(?=<svg\b)", re.S)  # XML declaration, DOCTYPE, comments before the root
_NAMESPACES = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_SIZE = re.compile(r'(<svg\b[^>]*?)\s+width="[^"]*"\s+height="[^"]*"')


def _inline(svg: str) -> str:
    svg = _SVG_HEAD.sub("", svg, count=1)
    svg = _METADATA.sub("", svg)
    svg = _NAMESPACES.sub("", svg)
    svg = svg.replace("xlink:href=", "href=")
    # Scale with the page (the viewBox keeps the proportions).
    return _SIZE.sub(r'\1 width="100%"', svg, count=1).strip()


def _label(text: str) -> str:
    return text.replace("$", r"\$")  # no mathtext from a step name


_CHART_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "pilotlight-report", "font.family": "sans-serif",
                   "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"], "font.size": 9,
                   "axes.spines.top": False, "axes.spines.right": False}


def timeline_figure(doc: dict[str, Any]) -> Any:
    """The timeline as a matplotlib Figure (draw it inside ``matplotlib.rc_context(_CHART_SETTINGS)``)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    steps = doc["steps"]
    rto = doc["rto"]
    ends = [s["end_seconds"] for s in steps if s["end_seconds"] is not None]
    run_end = doc["duration_seconds"] if doc["duration_seconds"] is not None else max(ends + [0.0])
    span = max([run_end, rto["objective_seconds"], rto["seconds"] or 0.0, 1.0])
    unit, scale = ("minutes", 60.0) if span >= 180 else ("seconds", 1.0)
    fig = Figure(figsize=(10, 1.6 + 0.3 * max(len(steps), 1)), dpi=72, layout="constrained")
    ax = fig.add_subplot()
    for i, step in enumerate(steps):
        start = step["start_seconds"]
        end = step["end_seconds"] if step["end_seconds"] is not None else run_end
        # A step that took no time still gets a sliver, so every step has a visible bar.
        width = max(end - start, span * 0.003)
        colour = FAILED if step["status"] == "failed" else CRITICAL if step["on_critical_path"] else OTHER
        bars = ax.barh(i, width / scale, left=start / scale, height=0.6, color=colour,
                       hatch="//" if step["end_seconds"] is None else None, edgecolor="white", linewidth=0.5)
        bars.patches[0].set_gid(f"step-{i}")
    ax.set_yticks(range(len(steps)), labels=[_label(s["name"]) for s in steps])
    ax.set_ylim(len(steps) - 0.5, -0.5)  # first step on top
    ax.set_xlim(0, span * 1.04 / scale)
    ax.set_xlabel(f"{unit} since the execution started")
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    handles = [Patch(color=CRITICAL, label="critical path to service restored"),
               Patch(color=OTHER, label="other steps")]
    if any(s["status"] == "failed" for s in steps):
        handles.append(Patch(color=FAILED, label="failed step"))
    objective, measured = rto["objective_seconds"], rto["seconds"]
    # Each line's label sits on the side away from the other line, so close lines stay readable.
    early = measured is not None and measured <= objective
    lines = [(objective, OBJECTIVE, "--", "rto-objective", f"RTO objective {fmt_duration(objective)}",
              "left" if early or measured is None else "right")]
    if measured is not None:
        lines.append((measured, MEASURED, "-", "rto-measured", f"measured RTO {fmt_duration(measured)}",
                      "right" if early else "left"))
    for at, colour, style, gid, text, side in lines:
        ax.axvline(at / scale, color=colour, linestyle=style, linewidth=1.5, gid=gid)
        ax.text(at / scale, 1.01, f" {text} ", transform=ax.get_xaxis_transform(), color=colour, fontsize=8,
                ha=side, va="bottom", gid=f"{gid}-label")
        handles.append(Line2D([0], [0], color=colour, linestyle=style, label=text))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
    return fig


def timeline_svg(doc: dict[str, Any]) -> str:
    """One horizontal bar per step (``<g id="step-N">``), the critical path marked, lines at the RTO objective
    (``id="rto-objective"``) and the measured RTO (``id="rto-measured"``); ready to inline in HTML."""
    import matplotlib

    with matplotlib.rc_context(_CHART_SETTINGS):
        out = io.StringIO()
        timeline_figure(doc).savefig(out, format="svg",
                                     metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _inline(out.getvalue())


# -- HTML ------------------------------------------------------------------------------------------------------


@functools.cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pilotlight")
    except PackageNotFoundError:
        return "unknown"


def to_html(doc: dict[str, Any]) -> str:
    import markupsafe

    template = _environment().get_template("report.html.j2")
    return template.render(doc=doc, rows=_rows(doc), probes=probe_rows(doc), canaries=canary_rows(doc),
                           failback=failback_rows(doc["failback"]) if doc.get("failback") else None,
                           readiness_line=_readiness_line(doc["readiness_at_start"], doc["kind"]),
                           chart=markupsafe.Markup(timeline_svg(doc)), seconds=seconds_text, version=_version())
