"""Benchmark-grade evaluation of one checkpoint or an ensemble on a sharded split: metrics.json, a table, ROC curves.

`python -m train.evaluate --checkpoint C [--checkpoint C2 ...] --shards S --manifests M [--split val|test]
[--out DIR] [--tta hflip] [--aggregate mean|median|confident]`

Frame- and video-level ROC-AUC, accuracy, balanced accuracy, EER, average precision and log loss (Kaggle's clipping),
all from train.metrics, the module training, explain and predict use. Several checkpoints form an ensemble: the mean
of their P(fake) per frame (and over the mirrored frame with --tta hflip); they must share their input settings.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import click  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from torch import nn  # noqa: E402

from train import metrics  # noqa: E402
from train.data import DataError, ValStream, load_manifest, make_loader  # noqa: E402
from train.engine import TTA_MODES, Device, ensemble_p_fake  # noqa: E402
from train.model import WeightsError, load_checkpoint  # noqa: E402

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("n", "log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


class EvaluateError(RuntimeError):
    """The evaluation cannot run (checkpoints that do not fit together, no frames in the split); says why."""


# Checkpoints and ensembles ----------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its checkpoints/best.pt, else last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise EvaluateError(f"{path} is a folder without checkpoints/best.pt or last.pt")
    if not path.is_file():
        raise EvaluateError(f"no checkpoint at {path}")
    return path


def input_settings(config: dict) -> dict:
    """What a model must be fed to mean what it learnt: input kind, image size, and the frame (and face) settings."""
    extra = config.get("extra") or {}
    settings = {"input": config.get("input", extra.get("input", "frames")),
                "image_size": list(config["recipe"]["image_size"])}
    for key in ("pipeline", "faces"):
        if extra.get(key):
            settings[key] = extra[key]
    if config.get("face_settings"):
        settings["faces"] = config["face_settings"]
    return settings


def check_same_inputs(named: Sequence[tuple[str, dict]]) -> dict:
    """Refuse checkpoints whose input settings differ, naming both and the setting; returns the shared settings.
    A setting one checkpoint does not record (an older run) is not compared."""
    first_name, first = named[0]
    for name, settings in named[1:]:
        for key in sorted(set(first) & set(settings)):
            if first[key] != settings[key]:
                raise EvaluateError(f"the checkpoints do not take the same input: {first_name} has {key} = "
                                    f"{first[key]} but {name} has {key} = {settings[key]}; an ensemble needs the same "
                                    "input settings (train them on the same shards and image size)")
    return first


@dataclass
class Ensemble:
    """Loaded models in eval mode on one device, their paths and configs, and the input settings they share."""

    models: list[nn.Module]
    paths: list[Path]
    configs: list[dict]
    settings: dict
    dev: Device

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.settings["image_size"])

    def describe(self) -> list[dict]:
        return [{"checkpoint": str(p), "arch": c.get("arch"), "run": c.get("out")} for p, c in zip(self.paths, self.configs)]


def load_ensemble(checkpoints: Sequence[str | Path], device: str = "auto") -> Ensemble:
    """Every checkpoint (files or run folders) on the device, after checking they take the same input."""
    if not checkpoints:
        raise EvaluateError("pass at least one --checkpoint")
    dev = Device.resolve(device, amp=True, channels_last=False)
    paths = [resolve_checkpoint(c) for c in checkpoints]
    models, configs = [], []
    for path in paths:
        model, config = load_checkpoint(path, map_location="cpu")
        models.append(dev.prepare(model).eval())
        configs.append(config)
    settings = check_same_inputs([(str(p), input_settings(c)) for p, c in zip(paths, configs)])
    return Ensemble(models, paths, configs, settings, dev)


# Predictions and metrics -------------------------------------------------------------------------------------------


def predict_split(ensemble: Ensemble, urls: Sequence[str], batch_size: int, workers: int,
                  tta: str = "none") -> pd.DataFrame:
    """Per-frame rows (key, video_id, label, p_fake) over every sample of the shards, decoded once for all models."""
    loader = make_loader(ValStream(list(urls), ensemble.image_size, batch_size), min(workers, len(urls)))
    rows: dict[str, list] = {"key": [], "video_id": [], "label": [], "p_fake": []}
    for images, labels, keys, videos in loader:
        rows["p_fake"] += ensemble_p_fake(ensemble.models, images, ensemble.dev, tta).cpu().tolist()
        rows["label"] += labels.tolist()
        rows["key"] += list(keys)
        rows["video_id"] += list(videos)
    return pd.DataFrame(rows)


def markdown_table(result: dict) -> str:
    """The frame and video rows as a GitHub markdown table (4 decimals, n/a for NaN)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "n/a" if not math.isfinite(value) else f"{value:.4f}"
        return str(value)

    lines = ["| level | " + " | ".join(TABLE_COLUMNS) + " |", "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for level, key in (("frame", "frames"), ("video", "videos")):
        row = {**result[level], "n": result[level][key]}
        lines.append(f"| {level} | " + " | ".join(cell(row.get(c)) for c in TABLE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def plot_roc(path: Path, curves: Sequence[tuple[str, pd.DataFrame, pd.DataFrame]]) -> None:
    """Frame-level and video-level ROC curves, one line per (name, frames, videos), AUC in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, level in zip(axes, ("frame", "video")):
        for name, frames, videos in curves:
            table = frames if level == "frame" else videos
            fpr, tpr = metrics.roc(table["label"], table["p_fake"])
            if len(fpr):
                ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(table['label'], table['p_fake']):.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate (reals called fake)")
        ax.set_ylabel("true positive rate (fakes caught)")
        ax.set_title(f"{level} level")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)



def default_out(paths: Sequence[Path], split: str) -> Path:
    """One checkpoint: RUN/eval-SPLIT next to its checkpoints folder; an ensemble: runs/ensemble-DATE-TIME."""
    if len(paths) == 1 and paths[0].parent.name == "checkpoints":
        return paths[0].parent.parent / f"eval-{split}"
    return Path("runs") / f"ensemble-{time.strftime('%Y%m%d-%H%M%S')}"


def evaluate(checkpoints: Sequence[str | Path], shards: str, manifests: str | Path, split: str = "val",
             out: str | Path | None = None, tta: str = "none", rule: str | None = None, device: str = "auto",
             batch_size: int | None = None, workers: int = 2) -> dict:
    """Score the split with the checkpoint(s) (rule None: the first checkpoint's --aggregate); writes metrics.json,
    metrics.md, roc.png, predictions.parquet and video_predictions.parquet to out; returns the metrics dict."""
    ensemble = load_ensemble(checkpoints, device)
    first = ensemble.configs[0]
    rule = rule or first.get("aggregate", "mean")
    if rule not in metrics.RULES:
        raise EvaluateError(f"unknown --aggregate {rule!r}; allowed: {', '.join(metrics.RULES)}")
    manifest = load_manifest(shards, manifests, ensemble.settings["input"], first.get("fake_faces", "manipulated"))
    urls = manifest.urls(split)
    if not urls:
        raise EvaluateError(f"the manifest in {manifests} lists no shards of split {split!r}")
    batch = batch_size or int(ensemble.configs[0]["recipe"]["batch_size"])
    start = time.perf_counter()
    frames = predict_split(ensemble, urls, batch, workers, tta)
    seconds = time.perf_counter() - start
    if frames.empty:
        raise EvaluateError(f"no frames in the {len(urls)} {split} shards")
    if frames["label"].nunique() < 2:
        log.warning("the %s split holds one class only: ROC-AUC, EER and AP are undefined (n/a)", split)
    frame, video, videos = metrics.frame_and_video(frames, rule)
    videos["loss"] = metrics.item_log_losses(videos["label"], videos["p_fake"])
    result = {"checkpoints": ensemble.describe(), "ensemble": len(ensemble.models) > 1, "split": split,
              "tta": tta, "aggregate": rule, "input": ensemble.settings, "log_loss_eps": metrics.KAGGLE_EPS,
              "frame": frame, "video": video, "seconds": seconds,
              "images_per_s": len(frames) / seconds if seconds else None}
    out = Path(out) if out else default_out(ensemble.paths, split)
    out.mkdir(parents=True, exist_ok=True)
    frames.to_parquet(out / "predictions.parquet", index=False)
    videos.to_parquet(out / "video_predictions.parquet", index=False)
    name = "ensemble of " + str(len(ensemble.models)) if result["ensemble"] else ensemble.configs[0].get("arch", "model")
    plot_roc(out / "roc.png", [(name, frames, videos)])
    (out / "metrics.json").write_text(json.dumps(metrics.json_safe(result), indent=2) + "\n")
    (out / "metrics.md").write_text(markdown_table(result))
    result["out"] = str(out)
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="A checkpoint (.pt) or a run folder (its best.pt); repeat for an ensemble (mean P(fake)).")
@click.option("--shards", required=True, help="Shards folder, URL prefix or {name} template.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json [default: SHARDS/../manifests].")
@click.option("--split", default="val", help="The split to score: val, test, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: RUN/eval-SPLIT for one checkpoint, runs/ensemble-DATE-TIME for several].")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", help="hflip: also score each mirrored frame.")
@click.option("--aggregate", "rule", type=click.Choice(metrics.RULES),
              help="How frames make a video's score (confident = the DFDC winner's rule; see train.metrics) "
                   "[default: the first checkpoint's training setting, else mean].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@click.option("--workers", type=click.IntRange(min=0), default=2, help="DataLoader worker processes.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(checkpoints, shards, manifests, split, out, tta, rule, device, batch_size, workers, verbose) -> None:
    """Frame- and video-level ROC-AUC, accuracy, balanced accuracy, EER, AP and log loss of a checkpoint or an
    ensemble on a sharded split, as metrics.json, metrics.md and roc.png."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifests = manifests or Path(shards).parent / "manifests"
    try:
        result = evaluate(checkpoints, shards, manifests, split, out, tta, rule, device, batch_size, workers)
    except (EvaluateError, DataError, WeightsError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(markdown_table(result), nl=False)
    click.echo(f"{split}: {result['frame']['frames']} frames, {result['video']['videos']} videos; "
               f"-> {result['out']}")


if __name__ == "__main__":
    main()
