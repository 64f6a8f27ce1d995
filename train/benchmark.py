"""`dfd benchmark` (`python -m train.benchmark`): every checkpoint on every test set, the cross-dataset table
(train.report.cross_dataset)."""
from __future__ import annotations

import functools
import time
from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option, workers_option
from dfd.files import writable_folder
from train.audio.fuse import FUSE_RULES
from train.audio.sync_options import sync_function, sync_options
from train.report.av_columns import AvOptions
from train.report.cross_dataset import (DEFAULT_SPLIT, BenchmarkError, benchmark_markdown, parse_checkpoint, parse_test,
                                    read_config, run_benchmark)
from train.score.metrics import RULES
from train.score.on_batches import TTA_MODES


@command()
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="[NAME=]CHECKPOINT",
              help="A detector: a checkpoint (.pt), a run folder (its best.pt), a model package folder, "
                   "hf://OWNER/NAME or zoo:NAME (an imported published detector); repeatable. NAME (default: the run folder's name) "
                   "heads its row.")
@click.option("--test", "tests", multiple=True, metavar="NAME[@SPLIT]=SHARDS[:MANIFESTS] | NAME=IMAGES",
              help="A test set: its shards and manifests (default SHARDS/../manifests), scored on SPLIT "
                   "(default --split); or IMAGES, labelled face images: a folder with real/ and fake/ subfolders or "
                   "a CSV path,label (each image one face crop, no detection; image-level metrics). Repeatable. "
                   "NAME heads its columns and is how a zoo detector's published figures find their test set: name "
                   "it by the figure's dataset id or test-set name as `dfd zoo list` prints them (case aside, "
                   "spaces as hyphens), e.g. celebdf-v2-test or Celeb-DF-v2=..., ffpp-c23-test or FF++-c23=...")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A TOML with [[checkpoint]] (name, path) and [[test]] (name, shards, manifests, split; or name, "
                   "images) tables and optionally split, aggregate, tta, out; --checkpoint and --test add to it.")
@click.option("--split", default=None,
              help=f"The split of each test set to score where its spec does not say [default: the config's split, "
                   f"else {DEFAULT_SPLIT}].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: the config's out, else runs/benchmark-DATE-TIME].")
@click.option("--aggregate", "rule", type=click.Choice(RULES),
              help="How frames make a video's score [default: each checkpoint's training setting, else mean].")
@click.option("--tta", type=click.Choice(TTA_MODES), default=None, help="hflip: also score each mirrored frame.")
@click.option("--audio-checkpoint", type=click.Path(exists=True, path_type=Path),
              help="A sound detector (its run folder, audio.pt or package): each sharded test set's sound is scored "
                   "too and fused with every detector's picture (--fuse), as `dfd evaluate --audio-checkpoint`; "
                   "the sound and fused columns follow the main table.")
@click.option("--fuse", "fuse_rule", type=click.Choice(FUSE_RULES), default="noisy-or", show_default=True,
              help="How picture and sound make one verdict: noisy-or or max.")
@sync_options
@device_option()
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@workers_option(2, "DataLoader worker processes.")
@threads_option
@verbose_option
def main(checkpoints, tests, config_file, split, out, rule, tta, audio_checkpoint, fuse_rule, with_sync, sync_weights,
         device, batch_size, workers, verbose) -> None:
    """Score every checkpoint on every test set: a row per detector, frame (or image) and video AUC per test set
    and their average, printed as markdown; benchmark.json (EER, AP, log loss, counts), benchmark.md and
    benchmark.html.

    Published versus measured: for a zoo package (`dfd zoo import`), every figure its authors report is printed
    beside the figure of the same kind measured on the test set of that name, with the difference (measured minus
    reported). A figure whose metric differs from what was measured (a video AUC on a folder of face images) is
    shown but not compared; a figure not re-verified against its source says "as reported, not re-verified"; a
    figure no test set matched names the test-set names that would match it."""
    setup_logging(verbose)
    with reported():
        listed = read_config(config_file, split) if config_file else {"tests": [], "detectors": [],
                                                                       "aggregate": None, "tta": None, "out": None}
        test_sets = [*listed["tests"], *(parse_test(t, split or DEFAULT_SPLIT) for t in tests)]
        detectors = [*listed["detectors"], *(parse_checkpoint(c) for c in checkpoints)]
        if not detectors or not test_sets:
            raise BenchmarkError("pass at least one --checkpoint and one --test (or a --config listing them)")
        out = writable_folder(out or listed["out"] or Path("runs") / time.strftime("benchmark-%Y%m%d-%H%M%S"))
        bench = run_benchmark(detectors, test_sets, out, rule or listed["aggregate"], tta or listed["tta"] or "none",
                              device, batch_size, workers, AvOptions(audio_checkpoint, fuse_rule, functools.partial(
                                  sync_function, device=device, weights=sync_weights) if with_sync else None))
    click.echo(benchmark_markdown(bench), nl=False)
    click.echo(f"{len(bench['detectors'])} detectors x {len(bench['columns'])} test sets -> {out}/benchmark.json")


if __name__ == "__main__":
    main()
