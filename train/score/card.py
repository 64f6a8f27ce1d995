"""`dfd export`'s work: a checkpoint of a run -> a model package (written by train.score.package, beside its reader)
with a model card rendered from train/templates/card.md.j2 with the run's facts: training data (datasets, counts, split), recipe, validation metrics, the decision threshold and how
it was chosen, the benchmark table when there is one, intended use and limits.

The threshold is chosen on the validation split's video scores: the run folder's (explain's
video_predictions.parquet, when explain scored this very checkpoint), else the val shards scored now.
A benchmark table is read from RUN/benchmark/benchmark.json (`python -m train.benchmark`), shaped
{"tests": {NAME: {"frame_auc": .., "video_auc": .., ...}}}; every numeric field becomes a column.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from dfd.files import sha256_file
from pipeline.dataset import Dataset, DatasetError, read_dataset_json
from pipeline.spec import Clips, FrameSampling
from train.config import CLIP_INPUTS, TrainConfig
from train.score.clip_split import with_clip_starts
from train.data.clip_streams import ClipShards, ClipValStream
from train.data.streams import ValStream, make_loader
from train.checkpoint import load_checkpoint
from train.model import Device
from train.score.tables import markdown_table
from train.score import metrics
from train.paths import PackageError, RunLayout, is_package
from train.score.package import may_write_package, package_config, write_package
from train.score.on_batches import predict_loader
from train.score.threshold import by_hand, describe, from_videos, run_videos
from train.templates import render

log = logging.getLogger(__name__)
CARD_WHAT = {"faces": "faces", "face-clips": "face tubes"}  # what a card says a model scores (default: frames)

BENCHMARK = Path("benchmark") / "benchmark.json"
METRIC_COLUMNS = ("n", "log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


def score_val(checkpoint: Path, config: TrainConfig, shards: str | None, manifests: Path | None,
              device: str) -> pd.DataFrame:
    """Per-item val rows (video_id, label, p_fake) of this checkpoint from the val shards (a clip model's: from the
    val clip shards)."""
    shards, manifests = shards or config.shards, Path(manifests or config.manifests)
    clips = config.input in CLIP_INPUTS
    try:
        dataset = Dataset.open(shards, manifests, "frames" if clips else config.input, config.fake_faces,
                               need=("val",), check=("val",))
        urls = ClipShards(dataset, config.input).urls("val") if clips else dataset.urls("val")
    except DatasetError as err:
        raise PackageError(f"{checkpoint}: the threshold is chosen on the validation split, but {err}; pass --shards "
                           "and --manifests of the data it was trained on (or run `dfd explain` on the run)") from None
    model, _ = load_checkpoint(checkpoint)
    dev = Device.resolve(device, amp=False, channels_last=False)
    loader = make_loader((ClipValStream if clips else ValStream)(urls, config.image_size, config.batch_size), 0)
    log.info("scoring the val split (%d shards) for the threshold", len(urls))
    return with_clip_starts(predict_loader([dev.prepare(model).eval()], loader, dev), dataset, config.input)


def val_scores(checkpoint: Path, config: TrainConfig, shards, manifests, device) -> tuple[pd.DataFrame, dict]:
    """(the checkpoint's val videos: video_id, label, p_fake; validation metrics {"frame": .., "video": ..,
    "source": ..}): the run's explain scores of this very checkpoint, else the val split scored now."""
    videos = run_videos(checkpoint)
    if videos is not None:
        layout = RunLayout.of_checkpoint(checkpoint)
        explained = json.loads(layout.explain.read_text())
        return videos, {"frame": explained.get("frame"), "video": explained.get("video"),
                        "source": str(layout.video_predictions)}
    items = score_val(checkpoint, config, shards, manifests, device)
    frame, video, videos = metrics.frame_and_video(items, config.aggregate)
    return videos, {"frame": frame, "video": video, "source": f"the val split of {shards or config.shards} scored at "
                                                               "export"}


def validation(checkpoint: Path, config: TrainConfig, shards, manifests, device, at_fpr,
               manual: float | None = None, val: tuple | None = None) -> tuple[dict, dict]:
    """(threshold, validation metrics {"frame": .., "video": .., "source": ..}); `manual`: the threshold the user
    gave (--threshold), recorded as chosen by hand; `val`: val_scores already computed (a fused export's)."""
    videos, scores = val or val_scores(checkpoint, config, shards, manifests, device)
    source = scores["source"]
    if manual is not None:
        return by_hand(manual, videos, source, config.aggregate), scores
    try:
        threshold = from_videos(videos, at_fpr, source, config.aggregate)
    except ValueError as err:
        raise PackageError(f"{checkpoint}: cannot choose a threshold on the validation split: {err}; give one by "
                           "hand with --threshold P (recorded in the card as chosen by hand)") from None
    return threshold, scores


def data_section(config: TrainConfig) -> str:
    """Datasets, counts and split from the manifests the run trained on (when they are still there)."""
    try:
        data = read_dataset_json(config.manifests)
    except DatasetError as err:
        return f"The training manifests are not available here ({err}).\n"
    rows = [[split, level, *(data.get(level, {}).get(split, {}).get(label, 0) for label in ("real", "fake"))]
            for split in ("train", "val") for level in ("videos", "frames")]
    faces = data.get("faces") if isinstance(data.get("faces"), dict) else {}
    if config.input == "faces" and isinstance(faces.get("counts"), dict):
        rows += [[split, "faces", *(faces["counts"].get(split, {}).get(label, 0) for label in ("real", "fake"))]
                 for split in ("train", "val")]
    text = markdown_table(("split", "count", "real", "fake"), rows)
    sources = _sources(config.manifests)
    source = data.get("config", {}).get("videos")
    return (f"Videos from `{source}`{f' ({sources})' if sources else ''}, decoded by the pipeline "
            f"(manifests `{config.manifests}`, split ratio {data.get('split_ratio', {}).get('videos')}; fakes are "
            "split with their originals, so no person is on both sides).\n\n" + text)


def _sources(manifests: str) -> str:
    try:
        dataset = Dataset.open(Path(manifests).parent / "shards", manifests, need=(), check=())
        if not dataset.has_table("videos"):
            return ""
        videos = dataset.table("videos", ["source"])
    except (DatasetError, KeyError, ValueError):
        return ""
    return ", ".join(f"{name}: {n} videos" for name, n in videos["source"].value_counts().items())


def recipe_section(config: TrainConfig, run: Path | None) -> str:
    recipe = config.recipe
    stages = "; ".join(f"{s.epochs} epochs at lr {s.lr}{' (frozen)' if s.frozen else ''}" for s in recipe.stages)
    epochs = ""
    if run is not None and (run / "metrics.csv").is_file():
        with (run / "metrics.csv").open() as fh:
            epochs = f" {len(list(csv.DictReader(fh)))} epochs were trained."
    start = f"initial weights: {config.weights}"
    if config.init is not None:  # dfd train --init: what it was fine-tuned from, with a zoo entry's licence
        start = f"fine-tuned from {config.init['kind']} `{config.init['reference']}`" + (
            f"; its licence, which this model inherits: {config.init['licence']}" if config.init.get("licence") else "")
    head = "fastai's head" if config.network is None else "a linear head on its pooled features"
    norm = config.model_input
    return (f"- backbone `{config.arch}` ({start}) with {head}, input {config.input} "
            f"at {recipe.image_size[1]}x{recipe.image_size[0]} (WxH), batch {recipe.batch_size}, normalised with "
            f"mean {list(norm.mean)} and std {list(norm.std)}\n"
            f"- one-cycle stages: {stages}.{epochs}\n- augmentation probabilities: "
            f"{json.dumps(dataclasses.asdict(recipe.augment))}\n- class balance: {config.balance}; fake faces: "
            f"{config.fake_faces}; video score: the `{config.aggregate}` of its {config.input}; seed {config.seed}"
            f"{'; dev run (a smoke test, not a model)' if config.dev_run else ''}\n")


def metrics_section(scores: dict) -> str:
    rows = []
    for level, n in (("frame", "frames"), ("video", "videos")):
        values = scores.get(level) or {}
        rows.append([level, *({**values, "n": values.get(n)}.get(c) for c in METRIC_COLUMNS)])
    return (markdown_table(("level", *METRIC_COLUMNS), rows)
            + f"\nFrom {scores['source']}. Accuracy here thresholds at 0.5; log loss clips as Kaggle's DFDC scorer.\n")


def benchmark_section(run: Path | None) -> str:
    path = run / BENCHMARK if run is not None else None
    if path is None or not path.is_file():
        return "No benchmark: there is no `benchmark/benchmark.json` in the run folder (`python -m train.benchmark`).\n"
    try:
        tests = json.loads(path.read_text())["tests"]
        columns = sorted({k for v in tests.values() for k, x in v.items() if isinstance(x, (int, float))})
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        return f"The benchmark file `{path}` could not be read ({err.__class__.__name__}).\n"
    return (markdown_table(("test set", *columns), [[name, *(row.get(c) for c in columns)]
                                                     for name, row in sorted(tests.items())])
            + f"\nFrom `{path}`.\n")


def card_text(name: str, config: TrainConfig, threshold: dict, scores: dict, run: Path | None, source: dict) -> str:
    """README.md: Hub front matter, then the card's sections (train/templates/card.md.j2)."""
    return render("card.md.j2", name=name, arch=config.arch, what=CARD_WHAT.get(config.input, "frames"),
                  width=config.image_size[1], height=config.image_size[0], checkpoint=source["checkpoint"], run=run,
                  aggregate=config.aggregate, threshold=threshold, how=describe(threshold),
                  data=data_section(config), recipe=recipe_section(config, run), metrics=metrics_section(scores),
                  benchmark=benchmark_section(run))


def export(checkpoint: Path, out: Path, frames: FrameSampling, at_fpr: float | None = None, shards: str | None = None,
           manifests: Path | None = None, device: str = "cpu", manual: float | None = None,
           replace: bool = False, clips: Clips | None = None, val: tuple | None = None) -> dict:
    """Write the package of a .pt checkpoint into `out`; returns its config.json. `frames`: the frame settings the
    model was trained on (train.score.videos.frame_settings), stored when the checkpoint lacks them; `manual`: a
    threshold given by hand; `replace`: replace another model's package in `out` (see may_write_package); `clips`:
    a clip model's clip spec (train.score.videos.clip_spec), stored when the checkpoint lacks it; `val`: its
    val_scores, where the caller has them."""
    if is_package(checkpoint):
        raise PackageError(f"{checkpoint} is already a model package; copy the folder instead")
    digest = sha256_file(checkpoint)
    may_write_package(out, digest, replace)
    model, config = load_checkpoint(checkpoint)
    config = dataclasses.replace(config, frames=config.frames or frames, clips=config.clips or clips)
    threshold, scores = validation(checkpoint, config, shards, manifests, device, at_fpr, manual, val)
    layout = RunLayout.of_checkpoint(checkpoint)
    run = layout.root if layout else None
    source = {"checkpoint": str(checkpoint), "run": str(run) if run else None, "sha256": digest,
              "validation": metrics.json_safe(scores)}
    package = package_config(config, metrics.json_safe(threshold), source)
    name = out.resolve().name
    write_package(out, model, package, card_text(name, config, threshold, scores, run, source))
    return package

