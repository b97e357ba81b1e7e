"""``humanscape report``: one self-contained HTML page for a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeCommand


@click.command(cls=HumanscapeCommand)
@click.argument("run_dir", type=click.Path(path_type=Path))
@opt.out_file("Output HTML page (self-contained: opens offline).")
def report(run_dir: Path, out: Path) -> None:
    """One HTML page for a run folder: model cards with the candidates' held-out scores against
    the baseline, every map as an overlay to pan and zoom (colour bar, units, scale), the figures
    and the tables.

    RUN_DIR is the --out folder of any humanscape command (e.g. demo-output).
    """
    from humanscape.report.html import write_report

    for line in write_report(run_dir, out):
        click.echo(line)
