"""`dfd evaluate --checkpoint AUDIO_RUN`: a sound detector alone on a sharded split. Each video's sound is read from
the audio shards and cut into the windows it was trained on (train.audio.data, its own --skip-start); a window's
label is its own where the dataset gives the sound's fake periods, a video's label is its sound's (sound_label
where the dataset has one, else its label, the fakes whose sound is their original's left out as in training).
Writes metrics.json, metrics.md, roc.png, video_predictions.parquet and sound_windows.parquet."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from dfd.files import write_parquet, write_text
from pipeline.dataset import DatasetError
from train.audio.classifier import load
from train.audio.data import AudioSet, sound_table, window_table
from train.audio.features import window_features
from train.paths import CheckpointError, RunLayout
from train.report.figures import plot_roc
from train.report.split_localisation import localisation_markdown, localise
from train.score import metrics
from train.score.tables import markdown_table

log = logging.getLogger(__name__)

COLUMNS = ("n", "log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


def _level(labels, p_fake, key: str) -> dict:
    return {key: int(len(labels)), **(metrics.score(labels, p_fake) if len(labels) else {})}


def sound_markdown(result: dict) -> str:
    rows = [[name, *({**result[level], "n": result[level].get(key)}.get(c) for c in COLUMNS)]
            for name, level, key in (("sound window", "window", "windows"), ("sound video", "video", "videos"))]
    return markdown_table(("level", *COLUMNS), rows) + localisation_markdown(result.get("localisation", {}))


def evaluate_sound(checkpoint: str | Path, shards: str, manifests: str | Path, split: str = "val",
                   out: str | Path | None = None) -> dict:
    """Score the split's sound with the audio model; the metrics dict (also written to out, by default
    RUN/eval-SPLIT beside the run's checkpoints, else PACKAGE/eval-SPLIT)."""
    model = load(checkpoint)
    try:
        table = sound_table(manifests, model.fake_audio)
    except DatasetError as err:
        raise CheckpointError(str(err)) from None
    rows = table[table["split"] == split]
    if rows.empty:
        raise CheckpointError(f"{manifests}: no labelled video with sound in split {split!r}")
    windows, x = window_table(AudioSet(Path(shards), Path(manifests), rows, model.fake_audio), rows, model.spec,
                              window_features)
    windows = windows.assign(p_fake=model.predict(x))
    heard = windows.groupby("video_id")["p_fake"].mean()
    videos = rows[["video_id", "y"]].rename(columns={"y": "label"}).assign(p_fake=rows["video_id"].map(heard))
    silent = int(videos["p_fake"].isna().sum())
    if silent:
        log.warning("%d of %d %s videos have no window of sound to score (silent, or shorter than --skip-start): "
                    "left out of the video metrics", silent, len(videos), split)
    scored = videos.dropna(subset=["p_fake"])
    result = {"checkpoint": str(checkpoint), "split": split, "input": "audio", "spec": dataclasses.asdict(model.spec),
              "fake_audio": model.fake_audio, "without_sound": silent,
              "window": _level(windows["label"], windows["p_fake"], "windows"),
              "video": _level(scored["label"], scored["p_fake"], "videos")}
    out = Path(out) if out else _default_out(Path(checkpoint), split)
    out.mkdir(parents=True, exist_ok=True)
    localised = localise(Path(manifests), None, "frame", out, windows, model.spec)
    if localised:  # a segment-labelled dataset: the sound's fake segments (train.report.split_localisation)
        result["localisation"] = localised
    write_parquet(windows, out / "sound_windows.parquet")
    write_parquet(videos, out / "video_predictions.parquet")
    plot_roc(out / "roc.png", [("sound", windows, scored)])
    write_text(out / "metrics.json", json.dumps(metrics.json_safe(result), indent=2) + "\n")
    write_text(out / "metrics.md", sound_markdown(result))
    return {**result, "out": str(out)}


def _default_out(checkpoint: Path, split: str) -> Path:
    if checkpoint.is_dir():
        return RunLayout(checkpoint).eval_dir(split)
    layout = RunLayout.of_checkpoint(checkpoint)
    return layout.eval_dir(split) if layout is not None else checkpoint.parent / f"eval-{split}"
