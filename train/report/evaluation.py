"""Benchmark-grade evaluation of one checkpoint or an ensemble on a sharded split: metrics.json, a table, ROC curves.

Frame- (or, for a clip model, clip-) and video-level ROC-AUC, accuracy, balanced accuracy, EER, average precision and log loss (Kaggle's clipping),
all from train.score.metrics, the module training, explain and predict use. Several checkpoints form an ensemble:
the mean of their P(fake) per frame (and over the mirrored frame with --tta hflip); they must share their input
settings. A clip model (`--input clips`) is scored on the split's clip shards (`dfd shards --clip-frames T`):
each clip's P(fake), and a video's as the aggregate of its clips; a face-clips model on its face-clip shards (the
faces stage's face tubes, train.score.clip_split), a row per tube, a video the aggregate of its tubes.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from dfd.files import writable_folder, write_parquet, write_text
from pipeline.dataset import LABELS, Dataset, read_table
from train.config import CLIP_INPUTS
from train.data.clip_streams import ClipShards, ClipValStream
from train.data.streams import ValStream, make_loader
from train.report.figures import plot_roc
from train.report.split_localisation import localisation_markdown, localise
from train.score.tables import markdown_table
from train.score import metrics
from train.score.checkpoints import Ensemble, load_ensemble
from train.score.clip_split import clip_shards, with_clip_starts
from train.paths import CheckpointError, RunLayout
from train.score.on_batches import predict_loader

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("n", "log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


def metrics_markdown(result: dict) -> str:
    """The frame (or clip) and video rows of an evaluation as a GitHub markdown table (with --audio-checkpoint also
    the sound's windows and videos and the fused videos)."""
    unit = result.get("unit", "frame")
    levels = [(unit, result[unit], f"{unit}s"), ("video", result["video"], "videos")]
    if "audio" in result:
        a = result["audio"]
        levels += [("sound window", a["window"], "windows"), ("sound video", a["sound"], "videos"),
                   (f"fused video ({a['fuse']})", a["fused"], "videos")]
    if "sync" in result:
        levels.append(("lip sync video", result["sync"], "videos"))
    rows = [[name, *({**level, "n": level.get(key)}.get(c) for c in TABLE_COLUMNS)] for name, level, key in levels]
    return markdown_table(("level", *TABLE_COLUMNS), rows) + localisation_markdown(result.get("localisation", {}))


def _level(labels, p_fake, key: str) -> dict:
    """metrics.score of one level with its count; the count alone where there is nothing to score."""
    return {key: int(len(labels)), **(metrics.score(labels, p_fake) if len(labels) else {})}


def with_sound(videos: pd.DataFrame, audio_checkpoint: str | Path, shards: str, manifests: str | Path, split: str,
               rule: str = "noisy-or") -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The sound's verdicts of the split's videos (train.audio.sound_of_split) fused with their pictures' (train.audio.fuse):
    (the audio metrics: sound windows, sound videos, fused videos; the video table with sound, fused, note and
    video_label columns; the windows with their video's label). A video without sound is fused as its picture alone.

    Which label each column is scored against: `label` and `p_fake` stay the picture's (fake if any of its frames is,
    train.score.metrics.video_scores); `sound`, `fused` and the windows are scored against `video_label`, the
    video's overall label in videos.parquet (fake if its picture or its sound is), as before per-frame labels."""
    from train.audio.fuse import fused_scores
    from train.audio.classifier import load
    from train.audio.sound_of_split import split_sounds

    sound, windows = split_sounds(load(audio_checkpoint), shards, manifests, split, videos["video_id"])
    fused = fused_scores(videos[["video_id", "p_fake"]].rename(columns={"p_fake": "label"}), sound, rule,
                         on="video_id")
    videos = videos.assign(sound=fused["sound"].to_numpy(), fused=fused["label"].to_numpy(),
                           note=fused["note"].to_numpy(), video_label=overall_labels(manifests, videos))
    windows = windows.merge(videos[["video_id", "video_label"]].rename(columns={"video_label": "label"}),
                            on="video_id")
    heard = videos[videos["sound"].notna()]
    silent = int(len(videos) - len(heard))
    if silent:
        log.warning("%d of %d %s videos have no sound to score: fused as their picture alone", silent, len(videos),
                    split)
    result = {"checkpoint": str(audio_checkpoint), "fuse": rule, "without_sound": silent,
              "window": _level(windows["label"], windows["audio_p_fake"], "windows"),
              "sound": _level(heard["video_label"], heard["sound"], "videos"),
              "fused": _level(videos["video_label"], videos["fused"], "videos"),
              "notes": videos["note"].dropna().value_counts().to_dict()}
    return result, videos, windows


def overall_labels(manifests: str | Path, videos: pd.DataFrame) -> np.ndarray:
    """Each video's overall label 0/1 (videos.parquet's `label`: fake if its picture or its sound is); its picture
    label where videos.parquet does not know it."""
    table = read_table(manifests, "videos", ["video_id", "label"]).drop_duplicates("video_id").set_index("video_id")
    overall = videos["video_id"].map(table["label"].map(LABELS))
    return overall.where(overall.notna(), videos["label"]).to_numpy()


def _sound_spec(audio_checkpoint):
    """The audio model's window settings (None without one)."""
    from train.audio.classifier import load

    return load(audio_checkpoint).spec if audio_checkpoint else None


def default_out(paths: Sequence[Path], split: str) -> Path:
    """One checkpoint: RUN/eval-SPLIT next to its checkpoints folder; an ensemble: runs/ensemble-DATE-TIME."""
    layout = RunLayout.of_checkpoint(paths[0]) if len(paths) == 1 else None
    if layout is not None:
        return layout.eval_dir(split)
    return Path("runs") / f"ensemble-{time.strftime('%Y%m%d-%H%M%S')}"


def labelled_urls(dataset: Dataset, split: str, shards: str, source: Dataset | ClipShards | None = None) -> list[str]:
    """The split's shards (of `source`: the dataset's frame shards, or its ClipShards) of real and fake videos:
    unlabelled ones are left out, saying how many videos (metrics need labels); a split of unlabelled videos only
    is refused, pointing to `dfd predict`."""
    source = source or dataset
    urls = source.urls(split)
    if not urls:
        raise CheckpointError(f"the manifest in {dataset.manifests} lists no shards of split {split!r}")
    unlabelled = source.urls(split, "unlabelled")
    if not unlabelled:
        return urls
    n = "some"
    if dataset.has_table("videos"):
        videos = dataset.table("videos", ["split", "label", "status"])
        n = int(((videos["split"] == split) & videos["label"].isna() & (videos["status"] == "done")).sum())
    if len(unlabelled) == len(urls):
        raise CheckpointError(f"split {split!r} of {dataset.manifests} holds unlabelled videos only ({n}): metrics "
                              f"need labels; score them with `dfd predict --shards {shards} --split {split}`")
    log.warning("split %s: %s unlabelled videos left out (metrics need labels; `dfd predict` scores them)", split, n)
    return [u for u in urls if u not in unlabelled]


def predict_split(ensemble: Ensemble, urls: Sequence[str], batch_size: int, workers: int,
                  tta: str = "none", clips: bool = False) -> pd.DataFrame:
    """Per-frame (per-clip with `clips`) rows (key, video_id, label, p_fake) over every sample of the shards, decoded
    once for all models, sorted by key: loader workers finish in any order, and sums taken in one order give the
    same last digit."""
    stream = (ClipValStream if clips else ValStream)(list(urls), ensemble.image_size, batch_size)
    loader = make_loader(stream, min(workers, len(urls)))
    frames = predict_loader(ensemble.models, loader, ensemble.dev, tta)
    return frames.sort_values("key", kind="stable").reset_index(drop=True)


def evaluate(checkpoints: Sequence[str | Path], shards: str, manifests: str | Path, split: str = "val",
             out: str | Path | None = None, tta: str = "none", rule: str | None = None, device: str = "auto",
             batch_size: int | None = None, workers: int = 2, audio_checkpoint: str | Path | None = None,
             fuse_rule: str = "noisy-or", sync: Callable | None = None) -> dict:
    """Score the split with the checkpoint(s) (rule None: the first checkpoint's --aggregate); writes metrics.json,
    metrics.md, roc.png, predictions.parquet and video_predictions.parquet to out; returns the metrics dict. With
    an audio checkpoint, also the sound and the fused verdict (with_sound): result["audio"], video_predictions'
    sound, fused and note columns (p_fake stays the picture's) and sound_windows.parquet. `sync` (the command's:
    lip sync of each video's file, train.audio.sync_of_split.with_sync, which decodes videos, as a report may not):
    video table -> (result["sync"], the table with its sync, sync_offset_s and sync_note columns)."""
    ensemble = load_ensemble(checkpoints, device)
    out = writable_folder(Path(out) if out else default_out(ensemble.paths, split))
    first = ensemble.config
    rule = rule or first.aggregate
    if rule not in metrics.RULES:
        raise CheckpointError(f"unknown --aggregate {rule!r}; allowed: {', '.join(metrics.RULES)}")
    clips = ensemble.settings["input"] in CLIP_INPUTS  # a face-clips model: each face tube is one clip row
    unit = "clip" if clips else "frame"
    dataset = Dataset.open(shards, manifests, "frames" if clips else ensemble.settings["input"], first.fake_faces,
                           need=(), check=(split,))
    urls = labelled_urls(dataset, split, shards, clip_shards(dataset, ensemble.settings["input"]) if clips else None)
    start = time.perf_counter()
    frames = predict_split(ensemble, urls, batch_size or first.batch_size, workers, tta, clips)
    frames = with_clip_starts(frames, dataset, ensemble.settings["input"])
    seconds = time.perf_counter() - start
    if frames.empty:
        raise CheckpointError(f"no {unit}s in the {len(urls)} {split} shards")
    if frames["label"].nunique() < 2:
        log.warning("the %s split holds one class only: ROC-AUC, EER and AP are undefined (n/a)", split)
    frame, video, videos = metrics.frame_and_video(frames, rule)
    frame = {f"{unit}s" if k == "frames" else k: v for k, v in frame.items()}
    videos["loss"] = metrics.item_log_losses(videos["label"], videos["p_fake"])
    result = {"checkpoints": ensemble.describe(), "ensemble": len(ensemble.models) > 1, "split": split,
              "tta": tta, "aggregate": rule, "input": ensemble.settings, "log_loss_eps": metrics.KAGGLE_EPS,
              "unit": unit, unit: frame, "video": video, "seconds": seconds,
              "images_per_s": len(frames) / seconds if seconds else None}
    name = f"ensemble of {len(ensemble.models)}" if result["ensemble"] else first.arch
    curves = [(name, frames, videos)]
    out.mkdir(parents=True, exist_ok=True)
    windows = None
    if audio_checkpoint:
        result["audio"], videos, windows = with_sound(videos, audio_checkpoint, shards, manifests, split, fuse_rule)
        write_parquet(windows, out / "sound_windows.parquet")
        overall = videos.assign(label=videos["video_label"])  # sound and fused are scored against it (with_sound)
        curves += [("sound", windows.rename(columns={"audio_p_fake": "p_fake"}), overall.assign(p_fake=videos["sound"])
                    .dropna(subset=["p_fake"])), (f"fused ({fuse_rule})", frames.iloc[:0], overall.assign(
                        p_fake=videos["fused"]))]
    localised = localise(manifests, frames, unit, out, None if windows is None else windows.rename(
        columns={"audio_p_fake": "p_fake"}), _sound_spec(audio_checkpoint))
    if localised:  # a segment-labelled dataset (LAV-DF, AV-Deepfake1M): train.report.split_localisation
        result["localisation"] = localised
    if sync is not None:
        result["sync"], videos = sync(videos)
        curves.append(("lip sync", frames.iloc[:0], videos.assign(p_fake=videos["sync"]).dropna(subset=["p_fake"])))
    write_parquet(frames, out / "predictions.parquet")
    write_parquet(videos, out / "video_predictions.parquet")
    plot_roc(out / "roc.png", curves)
    write_text(out / "metrics.json", json.dumps(metrics.json_safe(result), indent=2) + "\n")
    write_text(out / "metrics.md", metrics_markdown(result))
    result["out"] = str(out)
    return result
