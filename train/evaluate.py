"""`dfd evaluate` (`python -m train.evaluate`): metrics of a checkpoint or an ensemble on a sharded split
(train.report.evaluation)."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, verbose_option, workers_option
from train.report.evaluation import evaluate, markdown_table
from train.score.metrics import RULES
from train.score.predict import TTA_MODES


@command()
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="A checkpoint (.pt), a run folder (its best.pt), a model package folder (dfd export) or "
                   "hf://OWNER/NAME; repeat for an ensemble (mean P(fake)).")
@click.option("--shards", required=True, help="Shards folder, URL prefix or {name} template.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json [default: SHARDS/../manifests].")
@click.option("--split", default="val", help="The split to score: val, test, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: RUN/eval-SPLIT for one checkpoint, runs/ensemble-DATE-TIME for several].")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", help="hflip: also score each mirrored frame.")
@click.option("--aggregate", "rule", type=click.Choice(RULES),
              help="How frames make a video's score (confident = the DFDC winner's rule; see train.score.metrics) "
                   "[default: the first checkpoint's training setting, else mean].")
@device_option()
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@workers_option(2, "DataLoader worker processes.")
@verbose_option
def main(checkpoints, shards, manifests, split, out, tta, rule, device, batch_size, workers, verbose) -> None:
    """Frame- and video-level ROC-AUC, accuracy, balanced accuracy, EER, AP and log loss of a checkpoint or an
    ensemble on a sharded split, as metrics.json, metrics.md and roc.png."""
    setup_logging(verbose)
    manifests = manifests or Path(shards).parent / "manifests"
    with reported():
        result = evaluate(checkpoints, shards, manifests, split, out, tta, rule, device, batch_size, workers)
    click.echo(markdown_table(result), nl=False)
    click.echo(f"{split}: {result['frame']['frames']} frames, {result['video']['videos']} videos; "
               f"-> {result['out']}")


if __name__ == "__main__":
    main()
