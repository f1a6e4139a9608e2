"""``pilotlight console``: the plan's dashboard widget, served on this machine.

The page is the CloudWatch custom widget's (``lambdas/widget.py``): read by the same functions, rendered by the
same templates and renderer, with the same buttons (start a drill, clean up a kept drill, approve or abort a
failover waiting for approval). Here a button is an HTML form, the page re-reads its panel every second
(``/api/state``) so a running drill shows its steps live, and a finished drill links its report
(``/reports/<execution name>``, built from the execution's history by ``reports``).

Why Starlette and uvicorn: a handful of routes over plain functions needs neither a framework's weight nor a
template engine of its own (the page is Jinja2, shared with the widget); Starlette is a small, maintained ASGI
toolkit with the host check this needs, and uvicorn serves it.

Only this machine may use it: it listens on 127.0.0.1 only, answers only requests addressed to 127.0.0.1 or
localhost (a DNS-rebinding page gets 400), and every POST must carry the session token that was generated when
the console started and is embedded in its page (403 without it), so another page open in the browser cannot
start a drill through it.

With ``--sandbox``: the plan's primary estate is seeded in a fresh sandbox, the pilot light built (replicate)
and readiness run as scheduled, then the console serves that sandbox; modeled time is paced for a person
watching (``--pace``, 60 modeled seconds per wall second by default, as the demo).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import click

from commands.common import EXIT_FAILED, load, pace_text, replicate_line, sandbox_estate

HOST = "127.0.0.1"
ALLOWED_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_PORT = 8765
DEFAULT_PACE = 60.0
POLL_MS = 1000
NOTICE_SECONDS = 30.0
ACTIONS = ("start_drill", "clean_up", "approve", "abort")
_EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")

if TYPE_CHECKING:
    from workflows.plan import Plan


@dataclass
class Console:
    """What the server serves: one plan, its state machines, clients to read and act, and the session token."""

    plan: Plan
    config: Any  # lambdas.widget.Config
    clients: Callable[[str], Any]  # service name -> client (sandbox or AWS)
    mode_note: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = DEFAULT_PORT
    notice: dict[str, str] | None = None
    notice_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # Clients are thread-safe, creating them from one session is not: one per service, made once.
        made: dict[str, Any] = {}
        make, guard = self.clients, threading.Lock()

        def cached(service: str) -> Any:
            with guard:
                if service not in made:
                    made[service] = make(service)
                return made[service]

        self.clients = cached

    def view(self) -> dict[str, Any]:
        from lambdas import widget

        return widget.read_state(self.clients("stepfunctions"), self.clients("ssm"), self.config,
                                 report_link=lambda e: f"/reports/{quote(e['name'])}")

    def act(self, action: str, fields: dict[str, str]) -> dict[str, str]:
        from lambdas import widget

        # One action at a time: two quick clicks must not start two drills.
        with self.lock:
            self.notice = widget.perform(self.clients("stepfunctions"), self.config, {"action": action, **fields},
                                         source="pilotlight console", who=getpass.getuser())
            self.notice_until = time.monotonic() + NOTICE_SECONDS
        return self.notice

    def current_notice(self) -> dict[str, str] | None:
        """What the last button did, shown for :data:`NOTICE_SECONDS`."""
        return self.notice if time.monotonic() < self.notice_until else None

    def report_html(self, name: str) -> str | None:
        """The HTML report of the plan's drill or failover execution ``name``; None if there is none."""
        from botocore.exceptions import ClientError

        import reports

        sfn = self.clients("stepfunctions")
        for machine in (self.config.drill_machine, self.config.failover_machine):
            arn = machine.replace(":stateMachine:", ":execution:", 1) + ":" + name
            try:
                sfn.describe_execution(executionArn=arn)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                    continue
                raise
            return reports.to_html(reports.build(sfn, arn, self.plan))
        return None


def digest(view: dict[str, Any], notice: dict[str, str] | None) -> str:
    """What the page shows, less the time it was read: the page swaps its panel only when this changes."""
    shown = {**{k: v for k, v in view.items() if k != "now"}, "notice": notice}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_app(console: Console) -> Any:
    """The Starlette application: the page, its state, the buttons and the reports."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from lambdas import widget

    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
               "Content-Security-Policy": "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"}
    origins = {f"http://{host}:{console.port}" for host in ALLOWED_HOSTS}

    def page(request: Request) -> Response:
        view, notice = console.view(), console.current_notice()
        html = widget.render(view, mode="console", template="console.html.j2", notice=notice, token=console.token,
                             digest=digest(view, notice), poll_ms=POLL_MS, mode_note=console.mode_note)
        return HTMLResponse(html, headers=headers)

    def state(request: Request) -> Response:
        view, notice = console.view(), console.current_notice()
        drill = view["drill"]
        return JSONResponse({
            "digest": digest(view, notice),
            "panel": widget.render(view, mode="console", notice=notice, token=console.token),
            "running": view["running_drill"] is not None or (view["failover"] or {}).get("status") == "RUNNING",
            "drill": None if drill is None else {k: drill[k] for k in ("id", "name", "status", "current",
                                                                       "rto_seconds", "rpo_seconds", "report_url")},
        }, headers=headers)

    async def action(request: Request) -> Response:
        name = request.path_params["action"]
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return PlainTextResponse("forbidden: cross-origin request", status_code=403, headers=headers)
        body = (await request.body()).decode("utf-8", "replace")
        fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        token = fields.pop("token", "")
        if not secrets.compare_digest(token.encode(), console.token.encode()):
            return PlainTextResponse("forbidden: this console's session token is missing or wrong", status_code=403,
                                     headers=headers)
        if name not in ACTIONS:
            return PlainTextResponse(f"unknown action {name!r}", status_code=404, headers=headers)
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(console.act, name, fields)
        return RedirectResponse("/", status_code=303, headers=headers)

    def report(request: Request) -> Response:
        name = request.path_params["name"]
        if not _EXECUTION_NAME.fullmatch(name):
            return PlainTextResponse("not an execution name", status_code=404, headers=headers)
        html = console.report_html(name)
        if html is None:
            return PlainTextResponse(f"no drill or failover execution {name} of {console.plan.name}", status_code=404,
                                     headers=headers)
        return HTMLResponse(html, headers=headers)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/actions/{action}", action, methods=["POST"]),
        Route("/reports/{name}", report, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(ALLOWED_HOSTS))])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def serve(console: Console) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), on 127.0.0.1 only."""
    import uvicorn

    click.echo(f"pilotlight console for {console.plan.name}: http://{HOST}:{console.port}/ (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(build_app(console), host=HOST, port=console.port, log_level="warning",
                                           access_log=False, lifespan="off"))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn hands Ctrl-C back once it has shut down
        server.run()
    click.echo("pilotlight console stopped")


def _machines(arn: Callable[[str], str]) -> dict[str, str]:
    return {"drill_machine": arn("drill"), "teardown_machine": arn("drill-teardown"),
            "failover_machine": arn("failover")}


def run_sandbox(plan: Plan, port: int, pace: float | None) -> int:
    import boto3

    from lambdas import widget
    from sandbox import Sandbox
    from workflows.executions import follow
    from workflows.readiness import failover_sha256

    with Sandbox() as sb:
        built = sandbox_estate(sb, plan, click.echo, None, source="pilotlight console --sandbox")
        click.echo(replicate_line(built))
        if built.status != "SUCCEEDED" or not (built.output or {}).get("ok"):
            click.echo(f"replicate {built.status}: {built.error or ''} {built.cause or ''}".rstrip(), err=True)
            return EXIT_FAILED
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        ready = follow(sfn, sb.start(plan, "readiness", {"source": "pilotlight console --sandbox",
                                                         "expected_failover_sha256": failover_sha256(plan)}),
                       poll_seconds=0.02)
        click.echo(f"Readiness (as scheduled): {(ready.output or {}).get('status', ready.status)}")
        sb.set_pace(pace)
        config = widget.Config(plan=plan.name, region=plan.dr_region,
                               **_machines(lambda w: sb.state_machine_arn(plan, w)))
        console = Console(plan, config, lambda service: boto3.client(service, region_name=plan.dr_region),
                          f"Sandbox: modeled time on a virtual clock, {pace_text(pace)}. Nothing here touches AWS.",
                          port=port)
        try:
            serve(console)
        finally:
            # Nothing of the sandbox outlives it: stop what is still running (its drills, their teardowns).
            for machine in (config.drill_machine, config.teardown_machine):
                for execution in sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
                    sfn.stop_execution(executionArn=execution["executionArn"], error="ConsoleClosed",
                                       cause="pilotlight console --sandbox stopped")
    return 0


def run_aws(plan: Plan, port: int, profile: str | None, region: str | None) -> int:
    import boto3

    from commands.common import aws_machine
    from lambdas import widget

    machines = _machines(lambda w: aws_machine(plan, profile, region, w)[1])
    session = boto3.Session(profile_name=profile, region_name=region or plan.dr_region)
    config = widget.Config(plan=plan.name, region=region or plan.dr_region, **machines)
    console = Console(plan, config, lambda service: session.client(service),
                      f"AWS: the deployed workflows of {plan.name} in {config.region}; buttons act on them.", port=port)
    serve(console)
    return 0


@click.command("console")
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--sandbox", is_flag=True, help="Serve a fresh sandbox seeded from the plan, its pilot light built.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--profile", default=None, help="AWS profile (without --sandbox).")
@click.option("--region", default=None, help="Region of the deployed workflows (default: the plan's DR region).")
@click.option("--pace", default=DEFAULT_PACE, show_default=True, type=click.FloatRange(min=0),
              help="Sandbox: at most N modeled seconds per wall second, so a person can watch (0: unpaced). "
                   "Never changes a modeled figure.")
def console(plan: str, sandbox: bool, port: int, profile: str | None, region: str | None, pace: float) -> None:
    """Serve PLAN's dashboard widget on http://127.0.0.1:PORT/: readiness, the running or last drill and
    failover step by step, the last drills with their RTO, RPO and report, and the buttons to start a drill,
    clean up a kept drill, and approve or abort a failover waiting for approval.

    Only this machine can reach it, and a button works only from the page it served (each POST carries the
    session token embedded in that page). With --sandbox it serves a fresh sandbox with the pilot light built;
    otherwise the deployed workflows in AWS (the usual credential chain, --profile, --region).
    """
    model = load(plan)
    port = port or free_port()
    code = run_sandbox(model, port, pace or None) if sandbox else run_aws(model, port, profile, region)
    raise SystemExit(code)
