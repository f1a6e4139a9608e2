"""pilotlight command line: the command group; each command group lives in ``commands/``.

Exit codes: 0 ok, 1 workflow failed, 2 usage error, 3 invalid plan, 4 precondition not met.
Every workflow command takes ``--sandbox`` (rehearse in a fresh in-process sandbox seeded from
the plan) and ``--json`` (exactly one JSON document on stdout, an error document when it fails;
progress goes to stderr).
"""

from __future__ import annotations

import click

from commands.common import PilotlightGroup


@click.group(cls=PilotlightGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pilotlight")
def cli() -> None:
    """Pilot-light disaster recovery for AWS: Elastic Beanstalk, RDS, S3 and Route 53 on Step Functions."""


def _register_commands() -> None:
    from commands.console import console
    from commands.drill import drill, drill_cleanup
    from commands.failback import failback
    from commands.failover import demo, failover
    from commands.operate import abort, approve, status
    from commands.plan import render, schema, validate
    from commands.readiness import readiness
    from commands.replicate import replicate
    from commands.report import history, report
    from infra.commands import deploy, synth

    for command in (validate, schema, render, failover, replicate, demo, readiness, approve, abort, status,
                    synth, deploy, drill, drill_cleanup, console, report, history, failback):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="pilotlight")


if __name__ == "__main__":
    main()
