"""Runs side by side: one self-contained HTML page with a sortable table, loss curves and ROC curves.

`dfd compare runs/A runs/B ... [--out compare.html]` (train.compare).

Per run (a folder of train.run): architecture, input, image size, recipe, epochs, best epoch, frame- and video-level
metrics of the explained checkpoint (recomputed with train.score.metrics from its predictions.parquet, so every run is
scored by the same code (train.score.metrics) whatever version wrote it; explain.json where the predictions are missing), training
images/s and time. Figures are base64 PNGs and the sorting script is inline: the page opens from disk, no server.
Click a column header to sort by it (again to reverse); `compare.html#sort=COLUMN` (or `#sort=-COLUMN`) opens sorted.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from dfd.errors import ToolkitError
from dfd.files import write_text
from train.config import RecipeError, TrainConfig
from train.score import metrics
from train.score.tables import markdown_table
from train.templates import render

log = logging.getLogger(__name__)

METRICS = ("log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")
LOWER_IS_BETTER = {"log_loss", "eer"}
# (key, header, kind): kind "text" sorts as text, "num" as a number
COLUMNS = (("run", "run", "text"), ("arch", "arch", "text"), ("input", "input", "text"),
           ("image_size", "image size", "text"), ("recipe", "recipe", "text"), ("epochs", "epochs", "num"),
           ("best_epoch", "best epoch", "num"),
           *((f"video_{m}", f"video {m.replace('_', ' ')}", "num") for m in METRICS),
           *((f"frame_{m}", f"frame {m.replace('_', ' ')}", "num") for m in METRICS),
           ("images_per_s", "train images/s", "num"), ("train_s", "train time (s)", "num"),
           ("wall_s", "wall time (s)", "num"))


class CompareError(ToolkitError, RuntimeError):
    """A folder is not a run of train.run (no config.json or metrics.csv); the message names it."""


@dataclass
class Run:
    """What the page shows of one run folder."""

    root: Path
    name: str
    row: dict
    history: pd.DataFrame
    frames: pd.DataFrame | None = None
    videos: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def recipe_summary(recipe: dict) -> str:
    """Stages as `epochs x lr` (`lo..hi` for a slice, `frozen` where frozen), joined by ' + '."""
    parts = []
    for stage in recipe.get("stages", []):
        lr = stage.get("lr")
        lr_text = f"{lr[0]:g}..{lr[1]:g}" if isinstance(lr, (list, tuple)) else f"{lr:g}"
        parts.append(f"{stage.get('epochs')}x{lr_text}{' frozen' if stage.get('frozen') else ''}")
    return " + ".join(parts) + f", batch {recipe.get('batch_size')}"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _wall_seconds(root: Path) -> float | None:
    """From the run folder's first file write (config.json, batch.png) to its last (the report); the files of the
    run itself and its checkpoints only (not a later eval-SPLIT/ folder)."""
    files = [*root.glob("*"), *root.glob("checkpoints/*")]
    times = [p.stat().st_mtime for p in files if p.is_file()]
    return max(times) - min(times) if len(times) > 1 else None


def load_run(root: str | Path) -> Run:
    """Read a run folder: config.json, metrics.csv, explain.json, predictions.parquet, video_predictions.parquet."""
    root = Path(root)
    saved = _read_json(root / "config.json")
    if not saved or not (root / "metrics.csv").is_file():
        raise CompareError(f"{root} is not a run folder of train.run (needs config.json and metrics.csv)")
    try:
        config = TrainConfig.from_checkpoint(saved, root)
    except RecipeError as err:
        raise CompareError(f"{root / 'config.json'}: {err}") from None
    with (root / "metrics.csv").open() as f:
        history = pd.DataFrame(list(csv.DictReader(f))).apply(pd.to_numeric, errors="coerce")
    explained = _read_json(root / "explain.json")
    size = config.image_size
    row = {"run": root.name, "arch": config.arch, "input": config.input,
           "image_size": f"{size[1]}x{size[0]}",  # WIDTHxHEIGHT, the project's convention (config: (H, W))
           "recipe": recipe_summary(config.to_dict()["recipe"]), "epochs": int(len(history)),
           "best_epoch": None, "images_per_s": None, "train_s": None, "wall_s": _wall_seconds(root)}
    if len(history) and "log_loss" in history:
        row["best_epoch"] = int(history["log_loss"].idxmin()) + 1  # 1-based over all stages, as best.pt was chosen
    if "images_per_s" in history and history["images_per_s"].notna().any():
        row["images_per_s"] = float(history["images_per_s"].mean())
    if "seconds" in history and history["seconds"].notna().any():
        row["train_s"] = float(history["seconds"].sum())
    run = Run(root, root.name, row, history)
    if (root / "predictions.parquet").is_file():
        run.frames = pd.read_parquet(root / "predictions.parquet")
        run.videos = metrics.video_scores(run.frames, explained.get("video", {}).get("aggregate", "mean"))
        for level, table in (("frame", run.frames), ("video", run.videos)):
            for name, value in metrics.score(table["label"], table["p_fake"]).items():
                row[f"{level}_{name}"] = value
    elif explained:
        run.notes.append("no predictions.parquet: metrics from explain.json, no ROC curve")
        for level in ("frame", "video"):
            for name in METRICS:
                row[f"{level}_{name}"] = explained.get(level, {}).get(name)
    else:
        run.notes.append("not explained yet (no explain.json): no checkpoint metrics")
    return run


# Figures -------------------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def loss_figure(runs: Sequence[Run]) -> str:
    """Train and val loss per epoch (epochs counted over all stages), every run on the same axes."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True)
    panels = (("train_loss", "train loss"), ("val_loss", "val loss (mean cross-entropy)"),
              ("video_log_loss", "val video log loss"))
    for ax, (column, title) in zip(axes, panels):
        for i, run in enumerate(runs):
            if column in run.history and run.history[column].notna().any():
                epochs = range(1, len(run.history) + 1)
                ax.plot(epochs, run.history[column], "o-", color=f"C{i}", label=as_text(run.name), markersize=4)
        ax.set_title(title)
        ax.set_xlabel("epoch (all stages)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    ymax = [ax.get_ylim()[1] for ax in axes]
    for ax in axes:  # one loss scale for all three panels, whole epochs on x
        ax.set_ylim(0, 1.08 * max(ymax))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def as_text(name: str) -> str:
    """A run name as matplotlib text, never markup: `$...$` would be rendered (or fail) as mathtext."""
    return name.replace("$", r"\$")


def roc_figure(runs: Sequence[Run]) -> str | None:
    """Frame- and video-level ROC curves of every run with predictions, AUC in the legend."""
    with_curves = [r for r in runs if r.frames is not None and r.frames["label"].nunique() == 2]
    if not with_curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, level in zip(axes, ("frame", "video")):
        for i, run in enumerate(with_curves):
            table = run.frames if level == "frame" else run.videos
            fpr, tpr = metrics.roc(table["label"], table["p_fake"])
            if len(fpr):
                auc = metrics.roc_auc(table["label"], table["p_fake"])
                ax.plot(fpr, tpr, color=f"C{runs.index(run)}", label=f"{as_text(run.name)} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (reals called fake)",
               ylabel="true positive rate (fakes caught)", title=f"{level} level")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


# The page --------------------------------------------------------------------------------------------------------


def _cell(value, kind: str, best: bool) -> dict:
    """One cell of a sortable table: its kind (num | text), the value it sorts by, what it shows, bold or not."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return {"kind": kind, "value": "", "shown": "n/a", "best": False}
    if isinstance(value, float):
        return {"kind": kind, "value": repr(value), "shown": f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}",
                "best": best}
    return {"kind": kind, "value": str(value), "shown": str(value), "best": False}


def _best_values(runs: Sequence[Run]) -> dict[str, float]:
    best = {}
    for level in ("frame", "video"):
        for name in METRICS:
            key = f"{level}_{name}"
            values = [r.row.get(key) for r in runs if isinstance(r.row.get(key), float) and math.isfinite(r.row[key])]
            if len(values) > 1:
                best[key] = min(values) if name in LOWER_IS_BETTER else max(values)
    return best


def runs_rows(runs: Sequence[Run]) -> list[list[dict]]:
    """The cells of the runs table, the best value of each metric column marked."""
    best = _best_values(runs)
    return [[_cell(r.row.get(key), kind, key in best and r.row.get(key) == best[key]) for key, _, kind in COLUMNS]
            for r in runs]


def runs_markdown(runs: Sequence[Run], columns: Sequence[str] = ("run", "arch", "image_size", "epochs", "best_epoch",
                                                                  "video_log_loss", "video_roc_auc", "video_eer",
                                                                  "frame_log_loss", "frame_roc_auc", "images_per_s",
                                                                  "train_s")) -> str:
    """The same rows as the page's table, as markdown (for notes and READMEs)."""
    return markdown_table(columns, [[r.row.get(c) for c in columns] for r in runs])


# The cross-dataset table (train.report.cross_dataset's benchmark.json) -------------------------------------------------


def level_name(bench: dict, test: str, level: str) -> str:
    """A column's level as shown: "image" for the frame slot of a test set of face images, "clip" where every
    detector scored clips there (clip models), "frame/clip" where some did."""
    if level != "frame":
        return level
    if "images" in bench["tests"][test]:
        return "image"
    units = {d["tests"][test].get("unit", "frame") for d in bench["detectors"] if test in d["tests"]}
    return "/".join(sorted(units, key=("frame", "clip").index)) if units else level


def benchmark_columns(bench: dict) -> list[tuple[str, str, str]]:
    """(key, header, kind) of the cross-dataset table: detector, arch, then per test set frame and video AUC, then
    the averages: the order DeepfakeBench prints."""
    tests = [(f"{t}:{level}_auc", f"{t} {level_name(bench, t, level)} AUC", "num") for t in bench["columns"]
             for level in ("frame", "video")]
    return [("detector", "detector", "text"), ("arch", "arch", "text"), *tests,
            ("avg:frame_auc", "avg frame AUC", "num"), ("avg:video_auc", "avg video AUC", "num")]


def _benchmark_value(det: dict, key: str):
    if ":" not in key:
        return det["name"] if key == "detector" else det.get(key)
    test, name = key.split(":", 1)
    return (det["average"] if test == "avg" else det["tests"][test]).get(name)


def benchmark_rows(bench: dict) -> list[list[dict]]:
    """The cells of the cross-dataset table (the best value of each AUC column marked), as the runs table."""
    columns = benchmark_columns(bench)
    best = {}
    for key, _, kind in columns:
        values = [v for d in bench["detectors"] if isinstance(v := _benchmark_value(d, key), float)]
        if kind == "num" and len(values) > 1:
            best[key] = max(values)
    return [[_cell(v := _benchmark_value(d, key), kind, key in best and v == best[key]) for key, _, kind in columns]
            for d in bench["detectors"]]


def published_view(bench: dict) -> list[dict]:
    """Published versus measured (train.report.published's rows), a dict per reported figure of each zoo detector,
    with the values as shown."""
    shown = lambda v, signed=False: ("n/a" if not isinstance(v, (int, float)) or not math.isfinite(v)  # noqa: E731
                                     else f"{v:+.4f}" if signed else f"{v:.4f}")
    return [{"detector": d["name"], "entry": d.get("entry", ""), "test_set": r["test_set"], "test": r["test"],
             "metric": r["metric"], "reported": shown(r["reported"]), "measured_metric": r["measured_metric"],
             "measured": shown(r["measured"]) if r["test"] else "-", "difference": shown(r["difference"], True),
             "source": r["source"], "notes": r["notes"], "verified": r["verified"]}
            for d in bench["detectors"] for r in d.get("published", [])]


def benchmark_view(bench: dict) -> dict:
    """What train/templates/benchmark_section.html.j2 shows of a benchmark.json."""
    return {"columns": benchmark_columns(bench), "rows": benchmark_rows(bench), "tests": list(bench["tests"].items()),
            "published": published_view(bench),
            "no_figures": [(d["name"], d.get("published_note") or "none recorded") for d in bench["detectors"]
                           if "published" in d and not d["published"]]}


def write_benchmark_page(bench: dict, out: Path) -> Path:
    """benchmark.html (train/templates/benchmark.html.j2): the cross-dataset table alone, sortable; one file, no
    server needed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, render("benchmark.html.j2", bench=bench, benchmark=benchmark_view(bench)))
    return out


def write_page(runs: Sequence[Run], out: Path, bench: dict | None = None) -> Path:
    """compare.html (train/templates/compare.html.j2): the table, loss curves on shared axes, ROC curves, and
    notes; one file, no server needed."""
    page = render("compare.html.j2", names=[r.name for r in runs], written=time.strftime("%Y-%m-%d %H:%M:%S"),
                  eps=metrics.KAGGLE_EPS, columns=COLUMNS, rows=runs_rows(runs),
                  notes=[(r.name, str(r.root), n) for r in runs for n in r.notes], losses=loss_figure(runs),
                  roc=roc_figure(runs), benchmark=benchmark_view(bench) if bench else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    return out


def read_benchmark(path: str | Path) -> dict:
    """A benchmark.json of train.benchmark (CompareError naming the file otherwise)."""
    try:
        bench = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CompareError(f"--benchmark {path}: cannot read it ({err})") from None
    if not isinstance(bench, dict) or not {"columns", "detectors", "tests"} <= set(bench):
        raise CompareError(f"--benchmark {path}: not a benchmark.json of train.benchmark")
    return bench


def compare(run_dirs: Sequence[str | Path], out: str | Path = "compare.html",
            benchmark: str | Path | None = None) -> tuple[Path, list[Run]]:
    """compare.html of the runs; with `benchmark` (a benchmark.json), its cross-dataset table too."""
    bench = read_benchmark(benchmark) if benchmark else None
    runs = [load_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    for run in runs:  # two runs/NAME from different parents: tell them apart
        if names.count(run.name) > 1:
            run.name = run.row["run"] = f"{run.root.parent.name}/{run.name}"
    return write_page(runs, Path(out), bench), runs
