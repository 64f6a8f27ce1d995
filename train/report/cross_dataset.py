"""Every checkpoint on every test set: the cross-dataset table as DeepfakeBench prints it (a row per detector, a
column per test set, frame AUC and video AUC, and their average over the test sets).

Each (checkpoint, test set) is one `train.report.evaluation.evaluate` call (so every number comes from
train.score.metrics, as evaluate, explain and training report them); its predictions, ROC and metrics stay in
OUT/cells/DETECTOR/TEST/. `benchmark.json` holds the detail and nothing that changes between two runs of the same
checkpoints on the same shards (no times, no output paths): the same command gives the same bytes. (Another
--workers or --batch-size changes which frames share a batch, and CPU convolutions then differ in the last digits,
~1e-9 in a log loss, as measured; the AUCs did not move.)

benchmark.json:
    {"version": 1, "columns": [TEST, ...],
     "tests": {TEST: {"shards", "manifests", "split"}},
     "detectors": [{"name", "checkpoint", "arch", "input", "image_size",
                    "tests": {TEST: {"frame_auc", "video_auc", "frame_eer", "video_eer", "frame_ap", "video_ap",
                                     "frame_log_loss", "video_log_loss", "frame_accuracy", "video_accuracy",
                                     "unit", "frames", "videos", "real_videos", "fake_videos", "aggregate",
                                     "tta"}},  (unit "clip": a clip model's clips or face tubes in the frame slot)
                    "average": {"frame_auc", "video_auc", "tests"},
                    "published": [...]  (a zoo package: train.report.published's rows)}]}

A test set of labelled face images (`NAME=DIR` with real/ and fake/ subfolders, or `NAME=LABELS.csv`;
train.score.face_images) is one train.report.image_evaluation call: its "tests" entry is {"images"}, its cell's
frame_* keys hold the image-level metrics (a face image is a frame's face crop), video_* are null, and it counts
images, real_images, fake_images and unreadable instead of frames and videos.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import tomllib
from pathlib import Path
from typing import Sequence

import pandas as pd

from dfd.errors import UsageProblem
from dfd.files import write_text
from train.report.av_columns import AvOptions, av_cell, av_markdown
from train.report.comparison import level_name
from train.report.evaluation import evaluate
from train.report.image_evaluation import evaluate_images
from train.report.published import published_markdown, published_rows, reported_of
from train.score.face_images import is_labelled_images
from train.score.tables import markdown_table
from train.score import metrics
from train.paths import CheckpointError, RunLayout, resolve as resolve_checkpoint

log = logging.getLogger(__name__)

DEFAULT_SPLIT = "test"
LEVELS = ("frame", "video")
# benchmark.json's per-cell keys: (name, level, metrics key)
CELL = (("auc", "roc_auc"), ("eer", "eer"), ("ap", "average_precision"), ("log_loss", "log_loss"),
        ("accuracy", "accuracy"), ("balanced_accuracy", "balanced_accuracy"))


class BenchmarkError(UsageProblem, ValueError):
    """A test set or checkpoint spec (or the TOML listing them) that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class TestSet:
    """A sharded split (shards, manifests, split), or labelled face images (images: a folder or a CSV)."""
    __test__ = False  # not a pytest class
    name: str
    shards: str
    manifests: str
    split: str = DEFAULT_SPLIT
    images: str = ""

    def describe(self) -> dict:
        """Its benchmark.json "tests" entry."""
        if self.images:
            return {"images": self.images}
        return {"shards": self.shards, "manifests": self.manifests, "split": self.split}


@dataclasses.dataclass(frozen=True)
class Detector:
    name: str
    checkpoint: str


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _name(name: str, what: str) -> str:
    if not NAME_RE.match(name):
        raise BenchmarkError(f"{what} name {name!r}: use letters, digits and _ . + - (it names a folder and a column)")
    return name


def parse_test(spec: str, split: str = DEFAULT_SPLIT) -> TestSet:
    """'NAME[@SPLIT]=SHARDS[:MANIFESTS]' (MANIFESTS defaults to SHARDS/../manifests; a ':' inside a URL such as
    s3://... does not end SHARDS), or 'NAME=IMAGES': a folder with real/ and fake/ subfolders or a labels CSV."""
    name, sep, rest = spec.partition("=")
    if not sep or not rest:
        raise BenchmarkError(f"--test {spec!r}: expected NAME=SHARDS[:MANIFESTS], e.g. celebdf=cdf/shards:cdf/manifests")
    name, _, own_split = name.partition("@")
    if is_labelled_images(rest):
        return TestSet(_name(name, "test set"), "", "", "", images=rest)
    cut = [m.start() for m in re.finditer(":", rest) if not rest[m.start():].startswith("://")]
    shards, manifests = (rest[:cut[-1]], rest[cut[-1] + 1:]) if cut else (rest, "")
    manifests = manifests or str(Path(shards).parent / "manifests")
    return TestSet(_name(name, "test set"), shards, manifests, own_split or split)


def parse_checkpoint(spec: str) -> Detector:
    """'[NAME=]CHECKPOINT' (a .pt file or a run folder); the name defaults to the run folder's name."""
    name, sep, path = spec.partition("=")
    if not sep or "/" in name or Path(spec).exists():
        path, name = spec, ""
    resolved = resolve_checkpoint(path)
    if not name:
        layout = RunLayout.of_checkpoint(resolved)
        name = layout.root.name if layout else resolved.stem
    return Detector(_name(name, "detector"), str(path))


def read_config(path: Path, split: str | None = None) -> dict:
    """A TOML listing `[[checkpoint]]` (name, path) and `[[test]]` (name, shards, manifests, split; or name, images)
    tables, and optionally split, aggregate, tta, out; relative paths are relative to the TOML's folder. `split` (the
    command line's) replaces the TOML's top-level split; a test's own split wins over both."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BenchmarkError(f"--config {path}: {err}") from None
    unknown = set(data) - {"checkpoint", "test", "split", "aggregate", "tta", "out"}
    if unknown:
        raise BenchmarkError(f"--config {path}: unknown keys {sorted(unknown)}; allowed: checkpoint, test, split, "
                             "aggregate, tta, out")
    base = Path(path).parent
    where = lambda p: p if re.match(r"^[a-z]+:", p) else str(base / p)  # noqa: E731  (URLs stay as they are)
    split = split or data.get("split", DEFAULT_SPLIT)
    try:
        tests = [TestSet(_name(t["name"], "test set"), "", "", "", images=where(t["images"])) if "images" in t else
                 TestSet(_name(t["name"], "test set"), where(t["shards"]),
                         where(t.get("manifests") or str(Path(t["shards"]).parent / "manifests")),
                         t.get("split", split)) for t in data.get("test", [])]
        detectors = [parse_checkpoint(f"{c['name']}={where(c['path'])}" if c.get("name") else where(c["path"]))
                     for c in data.get("checkpoint", [])]
    except (KeyError, TypeError) as err:
        raise BenchmarkError(f"--config {path}: a [[test]] needs name and shards (or images), a [[checkpoint]] a path "
                             f"(missing {err})") from None
    out = data.get("out")
    return {"tests": tests, "detectors": detectors, "aggregate": data.get("aggregate"), "tta": data.get("tta"),
            "out": where(out) if out else None}


def _cell(result: dict, out: Path) -> dict:
    """One (detector, test) entry of benchmark.json from evaluate's result (a clip model's clips, or a face-clips
    model's tubes, in the frame slot, `unit` saying which; with its audio-visual columns)."""
    unit = result.get("unit", "frame")
    cell = {f"{level}_{name}": result[unit if level == "frame" else level][key] for level in LEVELS
            for name, key in CELL} | av_cell(result)
    videos = pd.read_parquet(out / "video_predictions.parquet")
    cell.update(unit=unit, frames=result[unit][f"{unit}s"], videos=result["video"]["videos"],
                real_videos=int((videos["label"] == 0).sum()), fake_videos=int((videos["label"] == 1).sum()),
                aggregate=result["aggregate"], tta=result["tta"])
    return cell


def _image_cell(result: dict) -> dict:
    """One (detector, image test set) entry: the image-level metrics in the frame slot, no video level."""
    image = result["image"]
    cell = {f"{level}_{name}": image[key] if level == "frame" else None for level in LEVELS for name, key in CELL}
    cell.update(images=image["images"], real_images=image["real"], fake_images=image["fake"],
                unreadable=image["unreadable"], tta=result["tta"])
    return cell


def _score(det: Detector, test: TestSet, folder: Path, aggregate, tta, device, batch_size, workers,
           av: AvOptions = AvOptions()) -> tuple:
    """(evaluate's result, the benchmark cell) of one detector on one test set."""
    if test.images:
        log.info("benchmark: %s on %s (images %s)", det.name, test.name, test.images)
        result = evaluate_images([det.checkpoint], test.images, folder, tta, device, batch_size)
        return result, _image_cell(result)
    log.info("benchmark: %s on %s (%s split)", det.name, test.name, test.split)
    try:
        result = evaluate([det.checkpoint], test.shards, test.manifests, test.split, folder, tta, aggregate, device,
                          batch_size, workers, **av.evaluate_kwargs(test.manifests, det.checkpoint))
    except CheckpointError as err:  # e.g. a clip model on a test set without clip shards
        raise CheckpointError(f"{det.name} on test set {test.name}: {err}") from None
    return result, _cell(result, folder)


def average(cells: Sequence[dict]) -> dict:
    """The mean frame and video AUC over the test sets where it is defined (DeepfakeBench's 'Avg.')."""
    out = {}
    for level in LEVELS:
        values = [c[f"{level}_auc"] for c in cells if _finite(c.get(f"{level}_auc"))]
        out[f"{level}_auc"] = float(sum(values) / len(values)) if values else None
    out["tests"] = len(cells)
    return out


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def run_benchmark(detectors: Sequence[Detector], tests: Sequence[TestSet], out: str | Path,
                  aggregate: str | None = None, tta: str = "none", device: str = "auto",
                  batch_size: int | None = None, workers: int = 2, av: AvOptions = AvOptions()) -> dict:
    """Every detector on every test set; writes benchmark.json, benchmark.md and benchmark.html to out; `av`: the
    sound, fused and lip-sync columns (train.report.av_columns)."""
    from train.report.comparison import write_benchmark_page

    if not detectors or not tests:
        raise BenchmarkError("a benchmark needs at least one --checkpoint and one --test")
    for kind, names in (("detector", [d.name for d in detectors]), ("test set", [t.name for t in tests])):
        if len(set(names)) != len(names):
            raise BenchmarkError(f"two {kind}s share a name in {names}: name them (NAME=...)")
    out = Path(out)
    rows = []
    described = {t.name: t.describe() for t in tests}
    for det in detectors:
        row = {"name": det.name, "checkpoint": det.checkpoint, "tests": {}}
        for test in tests:
            result, row["tests"][test.name] = _score(det, test, out / "cells" / det.name / test.name, aggregate,
                                                     tta, device, batch_size, workers, av)
            row.update(arch=result["checkpoints"][0]["arch"], input=result["input"]["input"],
                       image_size=result["input"]["image_size"])
        row["average"] = average(list(row["tests"].values()))
        reported = reported_of(det.checkpoint)
        if reported is not None:
            row.update(entry=reported["entry"], published_note=reported["note"],
                       published=published_rows(reported, described, row["tests"]))
        rows.append(row)
    bench = metrics.json_safe({"version": 1, "columns": [t.name for t in tests], "tests": described,
                               "log_loss_eps": metrics.KAGGLE_EPS, "detectors": rows})
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "benchmark.json", json.dumps(bench, indent=2, sort_keys=True) + "\n")
    write_text(out / "benchmark.md", benchmark_markdown(bench))
    write_benchmark_page(bench, out / "benchmark.html")
    return bench


def benchmark_markdown(bench: dict) -> str:
    """DeepfakeBench's layout: a row per detector; per test set its frame (or image) AUC and video AUC; then the
    average; then, where a detector is a zoo package, the published-versus-measured table."""
    columns = ["detector", *(f"{t} {level_name(bench, t, level)} AUC" for t in bench["columns"] for level in LEVELS),
               *(f"avg {level} AUC" for level in LEVELS)]
    rows = [[d["name"], *(d["tests"][t][f"{level}_auc"] for t in bench["columns"] for level in LEVELS),
             *(d["average"][f"{level}_auc"] for level in LEVELS)] for d in bench["detectors"]]
    return markdown_table(columns, rows) + av_markdown(bench) + published_markdown(bench)
