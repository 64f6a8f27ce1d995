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
                                     "frames", "videos", "real_videos", "fake_videos", "aggregate", "tta"}},
                    "average": {"frame_auc", "video_auc", "tests"}}]}
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
from train.report.evaluation import evaluate
from train.score.tables import markdown_table
from train.score import metrics
from train.paths import RunLayout, resolve as resolve_checkpoint

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
    __test__ = False  # not a pytest class
    name: str
    shards: str
    manifests: str
    split: str = DEFAULT_SPLIT


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
    s3://... does not end SHARDS)."""
    name, sep, rest = spec.partition("=")
    if not sep or not rest:
        raise BenchmarkError(f"--test {spec!r}: expected NAME=SHARDS[:MANIFESTS], e.g. celebdf=cdf/shards:cdf/manifests")
    name, _, own_split = name.partition("@")
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
    """A TOML listing `[[checkpoint]]` (name, path) and `[[test]]` (name, shards, manifests, split) tables, and
    optionally split, aggregate, tta, out; relative paths are relative to the TOML's folder. `split` (the command
    line's) replaces the TOML's top-level split; a test's own split wins over both."""
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
        tests = [TestSet(_name(t["name"], "test set"), where(t["shards"]),
                         where(t.get("manifests") or str(Path(t["shards"]).parent / "manifests")),
                         t.get("split", split)) for t in data.get("test", [])]
        detectors = [parse_checkpoint(f"{c['name']}={where(c['path'])}" if c.get("name") else where(c["path"]))
                     for c in data.get("checkpoint", [])]
    except (KeyError, TypeError) as err:
        raise BenchmarkError(f"--config {path}: a [[test]] needs name and shards, a [[checkpoint]] a path "
                             f"(missing {err})") from None
    out = data.get("out")
    return {"tests": tests, "detectors": detectors, "aggregate": data.get("aggregate"), "tta": data.get("tta"),
            "out": where(out) if out else None}


def _cell(result: dict, out: Path) -> dict:
    """One (detector, test) entry of benchmark.json from evaluate's result."""
    cell = {f"{level}_{name}": result[level][key] for level in LEVELS for name, key in CELL}
    videos = pd.read_parquet(out / "video_predictions.parquet")
    cell.update(frames=result["frame"]["frames"], videos=result["video"]["videos"],
                real_videos=int((videos["label"] == 0).sum()), fake_videos=int((videos["label"] == 1).sum()),
                aggregate=result["aggregate"], tta=result["tta"])
    return cell


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
                  batch_size: int | None = None, workers: int = 2) -> dict:
    """Every detector on every test set; writes benchmark.json, benchmark.md and benchmark.html to out."""
    from train.report.comparison import write_benchmark_page

    if not detectors or not tests:
        raise BenchmarkError("a benchmark needs at least one --checkpoint and one --test")
    for kind, names in (("detector", [d.name for d in detectors]), ("test set", [t.name for t in tests])):
        if len(set(names)) != len(names):
            raise BenchmarkError(f"two {kind}s share a name in {names}: name them (NAME=...)")
    out = Path(out)
    rows = []
    for det in detectors:
        row = {"name": det.name, "checkpoint": det.checkpoint, "tests": {}}
        for test in tests:
            log.info("benchmark: %s on %s (%s split)", det.name, test.name, test.split)
            folder = out / "cells" / det.name / test.name
            result = evaluate([det.checkpoint], test.shards, test.manifests, test.split, folder, tta, aggregate,
                              device, batch_size, workers)
            described = result["checkpoints"][0]
            row.update(arch=described["arch"], input=result["input"]["input"],
                       image_size=result["input"]["image_size"])
            row["tests"][test.name] = _cell(result, folder)
        row["average"] = average(list(row["tests"].values()))
        rows.append(row)
    bench = metrics.json_safe({
        "version": 1, "columns": [t.name for t in tests],
        "tests": {t.name: {"shards": t.shards, "manifests": t.manifests, "split": t.split} for t in tests},
        "log_loss_eps": metrics.KAGGLE_EPS, "detectors": rows})
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "benchmark.json", json.dumps(bench, indent=2, sort_keys=True) + "\n")
    write_text(out / "benchmark.md", benchmark_markdown(bench))
    write_benchmark_page(bench, out / "benchmark.html")
    return bench


def benchmark_markdown(bench: dict) -> str:
    """DeepfakeBench's layout: a row per detector; per test set its frame AUC and video AUC; then the average."""
    columns = ["detector", *(f"{t} {level} AUC" for t in bench["columns"] for level in LEVELS),
               *(f"avg {level} AUC" for level in LEVELS)]
    rows = [[d["name"], *(d["tests"][t][f"{level}_auc"] for t in bench["columns"] for level in LEVELS),
             *(d["average"][f"{level}_auc"] for level in LEVELS)] for d in bench["detectors"]]
    return markdown_table(columns, rows)
