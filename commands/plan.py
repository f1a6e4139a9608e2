"""``pilotlight validate``, ``schema`` and ``render``: the plan file and what it renders to."""

from __future__ import annotations

import click

from commands.common import (
    emit_json,
    load,
)


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(plan: str, as_json: bool) -> None:
    """Check a plan file. Exit 0 when valid; exit 3 with one line per problem, naming the field."""
    model = load(plan)
    if as_json:
        emit_json({"plan": plan, "valid": True, "name": model.name})
    else:
        click.echo(f"{plan}: valid plan '{model.name}' ({model.primary_region} -> {model.dr_region}: "
                   f"{len(model.environments)} environment(s), "
                   + (f"{len(model.compute)} Auto Scaling group(s), " if model.compute else "")
                   + f"{len(model.databases)} database(s), "
                   + (f"{len(model.tables)} table(s), " if model.tables else "")
                   + f"{len(model.buckets)} bucket pair(s))")


@click.command()
@click.option("--report", "report_schema", is_flag=True,
              help="Print the JSON Schema of a drill or failover report (`pilotlight report --format json`) instead.")
def schema(report_schema: bool) -> None:
    """Print the JSON Schema of a plan (for editors), or with --report that of a report."""
    if report_schema:
        from reports.schema import report_json_schema

        emit_json(report_json_schema())
        return
    from workflows.plan import plan_json_schema

    emit_json(plan_json_schema())


@click.command()
@click.argument("plan", type=click.Path(dir_okay=True))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for <workflow>.asl.json files.")
def render(plan: str, out_dir: str) -> None:
    """Write the ASL JSON of every workflow of a plan."""
    from workflows import render as renderer

    for path in renderer.write(load(plan), out_dir):
        click.echo(str(path))


# -- failover ---------------------------------------------------------------------------------
