"""What every pilotlight command shares: exit codes, plan loading, JSON output and JSON errors, options, live
progress, the sandbox estate a rehearsal starts from, and the deployed state machines in AWS.

Exit codes: 0 ok, 1 workflow failed, 2 usage error, 3 invalid plan, 4 precondition not met.

With ``--json`` a command prints exactly one JSON document on stdout, whatever happens: its result, or, when
it fails before it has one, ``{"error": {"code": ..., "message": ..., "exit": N}}``. :class:`PilotlightGroup`
does that for every command, so no command handles it itself.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from workflows.plan import Plan

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID_PLAN, EXIT_PRECONDITION = 0, 1, 2, 3, 4
# reports.DEFAULT_REPORT_DIR, written out: the commands' help does not import the report renderer (a test
# holds the two equal).
DEFAULT_REPORT_DIR = "pilotlight-reports"
# The error document's code when a command ends with only an exit code.
_EXIT_NAMES = {EXIT_FAILED: "Failed", EXIT_USAGE: "UsageError", EXIT_INVALID_PLAN: "InvalidPlan",
               EXIT_PRECONDITION: "PreconditionNotMet"}
_EXIT_MEANINGS = {EXIT_FAILED: "the command failed", EXIT_USAGE: "usage error", EXIT_INVALID_PLAN: "invalid plan",
                  EXIT_PRECONDITION: "precondition not met"}


class CommandError(click.ClickException):
    """A failure a command reports: its message, exit code and ``code`` (the JSON error document's name for it);
    ``details`` are added to that document."""

    exit_code = EXIT_FAILED
    code = "Failed"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class Precondition(CommandError):
    exit_code = EXIT_PRECONDITION
    code = "PreconditionNotMet"


class InvalidPlan(CommandError):
    """A plan file that cannot be used: one ``<file>: <field.path>: <problem>`` line per problem on stderr."""

    exit_code = EXIT_INVALID_PLAN
    code = "InvalidPlan"

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {line}" for line in problems),
                         {"plan": path, "valid": False, "problems": problems})

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


_documents = [0]  # JSON documents printed by this invocation


def emit_json(document: Any) -> None:
    _documents[0] += 1
    click.echo(json.dumps(document, indent=2, default=str))


def error_document(code: str, message: str, exit_status: int, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "exit": exit_status}, **(details or {})}


_CREDENTIAL_CODES = {"AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
                     "InvalidClientTokenId", "UnrecognizedClientException"}


def _aws_error(exc: Exception) -> CommandError | None:
    """An AWS error nothing closer to it handled, as a command error rather than a traceback."""
    if not type(exc).__module__.startswith("botocore"):
        return None
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

    if isinstance(exc, NoCredentialsError | ProfileNotFound | NoRegionError):
        return Precondition(f"no usable AWS credentials or region ({exc}); use --profile / --region")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        cls = Precondition if err.get("Code") in _CREDENTIAL_CODES else CommandError
        return cls(f"AWS answered {err.get('Code')}: {err.get('Message', '')} ({exc.operation_name})",
                   {"aws_error": err.get("Code")})
    return CommandError(f"AWS call failed: {type(exc).__name__}: {exc}", {"aws_error": type(exc).__name__})


class PilotlightGroup(click.Group):
    """The command group: click's own handling of errors and exits, plus what a ``--json`` run promises.

    A command run with ``--json`` that ends with a failure before printing its document (an invalid plan, a
    usage error, a refused precondition, a bare exit code) gets the error document on stdout; the message
    still goes to stderr. An AWS error no command handled is reported as one, not as a traceback.
    """

    def _wants_json(self, args: Sequence[str]) -> bool:
        positional = [i for i, a in enumerate(args) if not a.startswith("-")]
        if not positional:
            return False
        command = self.commands.get(args[positional[0]])
        takes_json = command is not None and any("--json" in getattr(p, "opts", ()) for p in command.params)
        return takes_json and "--json" in args[positional[0] + 1:]

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        as_json = self._wants_json(args)
        _documents[0] = 0
        error: click.ClickException | None = None
        message = ""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            status = result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK
        except click.ClickException as exc:
            error, status = exc, exc.exit_code
        except click.Abort:
            message, status = "aborted", EXIT_FAILED
            click.echo("Aborted!", err=True)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_FAILED)
            if isinstance(exc.code, str):
                message = exc.code
                click.echo(message, err=True)
        except Exception as exc:
            mapped = _aws_error(exc)
            if mapped is None:
                if as_json and not _documents[0]:
                    emit_json(error_document("InternalError", f"{type(exc).__name__}: {exc}", EXIT_FAILED))
                raise
            error, status = mapped, mapped.exit_code
        if error is not None:
            error.show()
            message = error.format_message()
        if as_json and status != EXIT_OK and not _documents[0]:
            code = getattr(error, "code", None) or (type(error).__name__ if error is not None
                                                   else _EXIT_NAMES.get(status, "Failed"))
            emit_json(error_document(code, message or _EXIT_MEANINGS.get(status, "the command failed"), status,
                                     getattr(error, "details", None)))
        if standalone_mode:
            sys.exit(status)
        return status


def load(path: str) -> Plan:
    """The plan at ``path``; an invalid one ends the command with exit 3, one line per problem."""
    from workflows.plan import PlanError, load_plan

    try:
        return load_plan(path)
    except PlanError as exc:
        raise InvalidPlan(path, exc.problems) from exc


def workflow_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every workflow command shares."""

    @click.option("--sandbox", is_flag=True, help="Rehearse in a fresh in-process sandbox seeded from the plan.")
    @click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
    @click.option("--profile", default=None, help="AWS profile (without --sandbox).")
    @click.option("--region", default=None, help="Region of the deployed workflows (default: the plan's DR region).")
    @click.option("--pace", default=None, type=click.FloatRange(min=0, min_open=True),
                  help="Sandbox: at most N modeled seconds per wall second, for watching (default: as fast "
                       "as the CPU allows). Never changes a modeled figure.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def progress_printer(as_json: bool, offset: float = 0.0) -> Callable[[Any], None]:
    """Live progress lines; ``offset``: seconds to add to each (the demo counts from the outage's start)."""
    symbols = {"started": "▶", "update": "…", "done": "✓", "failed": "✗"}

    def show(p: Any) -> None:
        from workflows.executions import fmt_duration

        detail = f"  {p.detail}" if p.detail else ""
        click.echo(f"[{fmt_duration(p.at + offset):>8}] {symbols.get(p.kind, ' ')} {p.step}{detail}", err=as_json)

    return show


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def exit_code(result: Any) -> int:
    from lambdas.errors import GUARD_ERRORS

    if result.status == "SUCCEEDED":
        return EXIT_OK
    if result.error in {cls.__name__ for cls in GUARD_ERRORS}:
        return EXIT_PRECONDITION
    return EXIT_FAILED


# `pilotlight demo` paces modeled time for a person watching: the reference failover (about 45
# modeled minutes with hardening) takes about a minute on the wall. Figures are the same unpaced.


def pace_text(pace: float | None) -> str:
    return f"paced at {pace:g} modeled seconds per wall second" if pace else "unpaced"


def sandbox_estate(
    sb: Any, plan: Plan, say: Callable[..., None], progress: Callable[[Any], None] | None, *, source: str,
    paced: bool = False,
) -> Any:
    """Seed the primary estate, deploy, and build the pilot light with the replicate workflow.

    The pilot light is not what is being watched: it is built unpaced unless ``paced``.
    """
    seeded = sb.seed(plan)
    say(f"Sandbox: {plan.primary_region} -> {plan.dr_region}, modeled time on a virtual clock "
        f"({pace_text(sb.pace)})")
    say(f"Seeded primary estate: {len(seeded['environments'])} environment(s), "
        f"{len(seeded['databases'])} database(s), {len(seeded['buckets'])} bucket pair(s)")
    arns = sb.deploy(plan)
    say(f"Deployed state machines: {', '.join(sorted(arns))}")
    say("Building the pilot light: replicate")
    return sb.run_replicate(plan, pace=sb.pace if paced else None, source=source, on_progress=progress)


def pilot_light_built(result: Any, *, complete: bool = True) -> None:
    """End a rehearsal whose pilot light was not built: the replicate run failed (or, ``complete``, left
    something out), so there is nothing to fail over, drill or check."""
    if result.status == "SUCCEEDED" and (not complete or (result.output or {}).get("ok")):
        return
    raise CommandError(
        f"the pilot light was not built: replicate {result.status} {result.error or ''} {result.cause or ''}".rstrip(),
        {"replicate": {"status": result.status, "error": result.error, "cause": result.cause,
                       "failed_step": result.failed_step}})


def replicate_line(result: Any) -> str:
    counts = (result.output or {}).get("counts") or {}
    made = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing to do"
    return f"Pilot light {'built' if (result.output or {}).get('ok') else 'INCOMPLETE'}: {made}"


def aws_machine(plan: Plan, profile: str | None, region: str | None, workflow: str) -> tuple[Any, str]:
    import boto3
    import botocore.exceptions

    from workflows import render as renderer

    region = region or plan.dr_region
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        account = session.client("sts").get_caller_identity()["Account"]
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.ProfileNotFound,
            botocore.exceptions.ClientError) as exc:
        raise Precondition(f"no usable AWS credentials ({exc}); use --profile") from exc
    arn = f"arn:aws:states:{region}:{account}:stateMachine:{renderer.state_machine_name(plan, workflow)}"
    return session.client("stepfunctions"), arn


def aws_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")(func)
    func = click.option("--region", default=None, help="Region of the deployed workflows (default: DR region).")(func)
    return click.option("--profile", default=None, help="AWS profile.")(func)
