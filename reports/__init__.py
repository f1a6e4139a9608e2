"""Reports people hand to an auditor: a drill or failover execution as JSON (with a published schema),
Markdown and one offline HTML page with its timeline, built from the execution's history and output only.

``build`` reads an execution (``reports.model``), ``to_json``/``to_markdown``/``to_html`` render it
(``reports.render``), ``write`` puts the three files in a folder and ``upload`` copies them to the plan's
reports bucket (``reports.store``). The shape is ``reports.schema.Report``.
"""

from __future__ import annotations

from reports.model import build, summarize
from reports.render import FORMATS, to_html, to_json, to_markdown
from reports.store import DEFAULT_REPORT_DIR, bucket_name, render_format, upload, write

__all__ = ["DEFAULT_REPORT_DIR", "FORMATS", "build", "bucket_name", "render_format", "summarize", "to_html", "to_json",
           "to_markdown", "upload", "write"]
