"""The root ``humanscape`` group: global options, and every command and group registered once."""

from __future__ import annotations

import os

import click

from humanscape import __version__
from humanscape.cli import economy, flows, migration, population, report, scenes, settlements
from humanscape.cli.boundary import HumanscapeGroup, configure_logging


@click.group(
    "humanscape",
    cls=HumanscapeGroup,
    help="Population, prosperity, settlements, migration and commuting from satellite imagery.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--verbose", "-v", is_flag=True, help="Log details; show tracebacks of real bugs.")
@click.version_option(__version__, "--version", prog_name="humanscape")
def cli(verbose: bool) -> None:
    # bound GDAL's block cache (default 5 % of RAM) so that memory stays flat as rasters grow, in
    # this process and the Dask workers it starts; the user's own setting wins
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    configure_logging(verbose)


for command in (*scenes.COMMANDS, report.report):
    cli.add_command(command)
for group in (
    settlements.group,
    population.group,
    economy.group,
    migration.group,
    flows.group,
):
    cli.add_command(group)


def main() -> None:  # pragma: no cover - the console script
    """Entry point of the ``humanscape`` console script."""
    cli()
