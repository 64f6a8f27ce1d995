"""`dfd zoo` (`python -m train.zoo_command`): published detectors: list them, fetch their files, import them
exactly into model packages. The work is train.zoo; the entries are data (train.zoo.entries)."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import CONTEXT, reported, setup_logging, verbose_option
from train.zoo.entries import DATASETS, ENTRIES, Entry, entry


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Published deepfake detectors (the zoo): `list` them with their licences and reported figures, `fetch` their
    files, `import` them into this toolkit's model packages (exact conversions, no pickle in the package).

    Several are licensed for NON-COMMERCIAL use only: `dfd zoo list` says which."""


def _describe(e: Entry) -> list[str]:
    lines = [f"{e.name}: {e.title}",
             f"  licence: {e.licence.line()}",
             f"  source: {e.code}",
             "  weights: " + ", ".join(sorted({f.url.rsplit('/', 1)[0] + '/' if f.host == 'github' else f.url
                                              for f in e.files})) + f" ({e.files[0].host}, {len(e.files)} file(s))"]
    for f in e.figures:
        flag = "" if f.verified else " [not re-verified]"
        lines.append(f"  reported: {f.test_set} {f.metric} {f.value:.4g} ({f.protocol}; {f.source}){flag}; "
                     f"benchmark it as --test {DATASETS[f.test_set]}=...")
    if not e.figures:
        lines.append(f"  reported: {e.figures_note or 'none recorded'}")
    lines.append(f"  preprocessing: {e.preprocessing.summary()}; input {e.input.size[0]}x{e.input.size[1]}, "
                 f"mean {tuple(round(m, 4) for m in e.input.mean)}, std {tuple(round(s, 4) for s in e.input.std)}")
    return lines


@main.command("list", context_settings=CONTEXT)
@click.argument("name", required=False)
def list_(name: str | None) -> None:
    """Every entry (or NAME's): source, licences, the figures the authors report, their preprocessing."""
    with reported():
        chosen = [entry(name)] if name else list(ENTRIES.values())
    for i, e in enumerate(chosen):
        click.echo(("\n" if i else "") + "\n".join(_describe(e)))


@main.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Download folder [default: $DFD_ZOO_CACHE or ~/.cache/dfd/zoo]; files go in CACHE/NAME/.")
@verbose_option
def fetch(name: str, cache: Path | None, verbose: bool) -> None:
    """Download NAME's published files (GitHub releases, the Hugging Face Hub). For files on Google Drive, or
    without internet: one line saying where to get them and where to put them (exit 1)."""
    setup_logging(verbose)
    from train.zoo.fetch import fetch as fetch_files

    with reported():
        e = entry(name)
        paths = fetch_files(e, cache)
    click.echo(f"{name}: {e.licence.line()}")
    for path in paths:
        click.echo(str(path))


@main.command("import", context_settings=CONTEXT)
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The package folder to write (made if missing; its three files are replaced) [default: "
                   "$DFD_ZOO_CACHE or ~/.cache/dfd/zoo /NAME/package, which zoo:NAME names].")
@verbose_option
def import_(name: str, files: tuple[Path, ...], out: Path | None, verbose: bool) -> None:
    """Convert NAME's published FILE(s), in the authors' layout, into a model package in --out: model.safetensors,
    config.json (source, licences, reported figures, preprocessing, architecture) and README.md (the model card).
    A file that is not NAME's is refused in one line and nothing is written."""
    setup_logging(verbose)
    from train.paths import zoo_folder
    from train.zoo.importer import CARD, CONFIG, WEIGHTS, import_entry

    with reported():
        e = entry(name)
        out = out or zoo_folder(name)
        config = import_entry(name, list(files), out)
    click.echo(f"{out}: {WEIGHTS}, {CONFIG}, {CARD}; {name} ({config['members']} member(s))")
    click.echo(f"licence: {e.licence.line()}")
    if out == zoo_folder(name):
        click.echo(f"use it as --model zoo:{name}")


if __name__ == "__main__":
    main()
