"""`dfd compare` (`python -m train.compare`): runs side by side in one self-contained HTML page
(train.report.comparison)."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import command, reported, setup_logging
from train.report.comparison import compare, runs_markdown


@command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("compare.html"),
              help="The HTML page to write.")
@click.option("--markdown", is_flag=True, help="Also print the table as markdown.")
@click.option("--benchmark", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A benchmark.json of train.benchmark: its cross-dataset table goes on the page too.")
def main(runs, out, markdown, benchmark) -> None:
    """Put runs of train.run side by side in one self-contained HTML page (table, loss curves, ROC curves)."""
    setup_logging()
    with reported():
        path, loaded = compare(runs, out, benchmark)
    if markdown:
        click.echo(runs_markdown(loaded), nl=False)
    click.echo(f"comparison of {len(loaded)} runs: {path}")


if __name__ == "__main__":
    main()
