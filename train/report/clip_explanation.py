"""Explain a clip model's run (`--input clips | face-clips`): val clip predictions, and Grad-CAM where and when.

`explain_clips(run_dir, model, config, dataset, dev, k)`, which train.report.explanation.run_explain calls for a
clip model. A row of predictions.parquet is a clip (its `second` is the clip's start); a video's score aggregates
its clips as a frame model's aggregates frames. The figures are strips: each explained clip's T frames in a row, and
under them the same frames with the clip's Grad-CAM map of the predicted class (train.report.gradcam.clip_grad_cam,
normalised per clip so that the frames compare), the frame holding the clip's peak framed in red.

"When" (explain.json's `when`): Grad-CAM of class fake over up to WHEN_MAX val clips of each class; per clip the
frame holding the map's maximum (the peak frame) and the share of the map's mass in that frame (1/T where the map
is spread evenly over time). A clip whose frames all peak alike (an all-zero map, or R(2+1)D with T <= 8, whose
last stages see the clip as one step in time) has no peak frame and is counted apart.

The pointing game scores one frame's map against that frame's manipulated box; a clip run does not play it (the
page says so)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle

from dfd.files import save_figure
from pipeline.dataset import Dataset
from train.config import TrainConfig
from train.data.clip_streams import ClipShards, ClipValStream, decode_clip
from train.data.streams import make_loader, read_shard
from train.model import Device, normalize
from train.report.figures import fastai_title
from train.report.gradcam import clip_grad_cam, overlay
from train.report.pointing import ExplainError
from train.score.on_batches import predict

log = logging.getLogger(__name__)

CLIP_K = 6          # clips per strip figure (each is a row of T frames and a row of their maps)
WHEN_MAX = 64       # val clips per class whose peak frame is counted
FAKE = 1
PEAK_TIE = 1e-6     # frames whose maxima differ by less share the peak (no peak frame)
NOT_PLAYED = ("The pointing game scores one frame's Grad-CAM map against that frame's manipulated box; a clip "
              "model's maps are per clip (one per frame, normalised together), so it is not played here: "
              "see 'Where and when' for which frame of a clip holds the peak.")


def clip_predictions(model, config: TrainConfig, dataset: Dataset, dev: Device) -> pd.DataFrame:
    """Every val clip (face tube) once: key, video_id, second (the clip's start), label, p_fake, loss, sorted by
    video, second and key."""
    urls = ClipShards(dataset, config.input).urls("val")
    loader = make_loader(ClipValStream(urls, tuple(config.image_size), config.batch_size), min(config.workers, len(urls)))
    pred = predict(model, loader, dev)
    if pred.empty:
        raise ExplainError(f"no val clips in {len(urls)} val clip shards of {dataset.manifests}")
    table = clip_table(dataset, config.input, ["key", "start"])
    starts = pred["key"].map(dict(zip(table["key"], table["start"].astype(float))))
    if starts.isna().any():
        raise ExplainError(f"{int(starts.isna().sum())} val clips are not in the dataset's clip table, "
                           f"e.g. {pred.loc[starts.isna(), 'key'].iloc[0]}")
    pred = pred.assign(second=starts)
    pred = pred.sort_values(["video_id", "second", "key"], kind="stable").reset_index(drop=True)
    return pred[["key", "video_id", "second", "label", "p_fake", "loss"]]


def clips_by_key(urls: Sequence[str], keys: Sequence[str], size) -> dict[str, np.ndarray]:
    """uint8 (T, H, W, 3) clips at the model's size for the wanted keys, read back from the val clip shards."""
    wanted, found = set(keys), {}
    for url in urls:
        if len(found) == len(wanted):
            break
        for sample in read_shard(url):
            if sample["__key__"] in wanted and sample["__key__"] not in found:
                item = decode_clip(sample, tuple(size))
                if item is not None:
                    found[sample["__key__"]] = item[0]
    missing = wanted - set(found)
    if missing:
        raise ExplainError(f"{len(missing)} predicted clips not found again in the val clip shards, "
                           f"e.g. {sorted(missing)[:3]}")
    return found


def clip_cams(model, clips: Sequence[np.ndarray], target_class=None, batch_size: int = 8) -> np.ndarray:
    """Grad-CAM per frame (N, T, H, W) of uint8 clips (T, H, W, 3): the predicted class (None) or one class."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(clips), batch_size):
        part = np.stack(clips[i:i + batch_size]).transpose(0, 1, 4, 2, 3)
        batch = normalize(torch.from_numpy(np.ascontiguousarray(part)).to(device))
        out.append(clip_grad_cam(model, batch, target_class=target_class).cpu().numpy())
    return np.concatenate(out)


def peak_frames(cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per clip map (T, H, W): the frame holding the maximum (-1 where the frames' maxima tie: no peak in time)
    and the share of the map's mass in that frame (nan without a peak)."""
    tops = cams.reshape(len(cams), cams.shape[1], -1).max(axis=2)
    order = np.sort(tops, axis=1)
    tied = (order[:, -1] - order[:, -2] < PEAK_TIE) if cams.shape[1] > 1 else np.zeros(len(cams), bool)
    peak = np.where(tied, -1, tops.argmax(axis=1))
    mass = cams.reshape(len(cams), cams.shape[1], -1).sum(axis=2)
    total = mass.sum(axis=1)
    share = np.full(len(cams), np.nan)
    ok = ~tied & (total > 0)
    share[ok] = mass[ok, peak[ok]] / total[ok]
    return peak, share


def plot_clip_strips(path: Path, clips: list[np.ndarray], cams: np.ndarray, titles: list[str],
                     times: Sequence[Sequence[float] | None], suptitle: str) -> None:
    """Per clip two rows: its T frames, then each with its Grad-CAM map; the peak frame framed in red."""
    n, t = len(clips), clips[0].shape[0]
    h, w = clips[0].shape[1:3]
    fig, axes = plt.subplots(2 * n, t, figsize=(1.9 * t, 2 * n * 1.9 * h / w + 0.4 * n + 0.5), squeeze=False)
    peaks, _ = peak_frames(cams)
    for i, (clip, cam, title, at) in enumerate(zip(clips, cams, titles, times)):
        for j in range(t):
            top, bottom = axes[2 * i][j], axes[2 * i + 1][j]
            top.imshow(clip[j])
            bottom.imshow(overlay(clip[j], cam[j]))
            when = f"{at[j]:.2f} s" if at is not None and j < len(at) else f"frame {j}"
            top.set_title(f"{title}\n{when}" if j == 0 else when, fontsize=7)
            if j == peaks[i]:
                bottom.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor="red", linewidth=3))
                bottom.set_title("peak", fontsize=7, color="red")
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
    height = fig.get_size_inches()[1]
    fig.suptitle(suptitle, y=1 - 0.1 / height, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    save_figure(fig, path, dpi=90)


def clip_table(dataset: Dataset, input: str, columns: list[str]) -> pd.DataFrame:
    """clips.parquet (face_clips.parquet for face tubes): the done rows' columns."""
    return dataset.face_clips(columns) if input == "face-clips" else dataset.clips(columns)


def frame_times(dataset: Dataset, input: str) -> dict[str, list[float]]:
    """Clip key -> the video times (seconds) of its frames, as the clip table records them."""
    table = clip_table(dataset, input, ["key", "times"])
    return {key: [float(t) for t in times] for key, times in zip(table["key"], table["times"])}


def strip_figures(run_dir: Path, model, pred: pd.DataFrame, k: int, clips_of, times: dict) -> dict:
    """clips_worst.png and clips_best.png: the k worst val clips and the k most confidently right, each a strip
    of its frames and their Grad-CAM maps of the predicted class; returns the keys and each clip's peak frame."""
    k = min(k, CLIP_K)
    worst = pred.sort_values("loss", ascending=False, kind="stable").head(k)
    right = pred[(pred["p_fake"] >= 0.5).astype(int) == pred["label"]]
    best = right.sort_values("loss", ascending=True, kind="stable").head(k)
    clips = clips_of(list(worst["key"]) + list(best["key"]))
    written = {}
    for name, rows, heading in (("clips_worst.png", worst, "worst"), ("clips_best.png", best, "best")):
        if rows.empty:
            log.warning("no clips for %s (no correctly classified val clip?)", name)
            continue
        shown = [clips[key] for key in rows["key"]]
        cams = clip_cams(model, shown)
        titles = [f"{row.key}\n{fastai_title(row)}" for row in rows.itertuples()]
        plot_clip_strips(run_dir / name, shown, cams, titles, [times.get(key) for key in rows["key"]],
                         f"Grad-CAM of the predicted class per frame ({heading} val clips)")
        written[heading] = list(rows["key"])
        written[f"{heading}_peak_frames"] = peak_frames(cams)[0].tolist()
    return written


def when_metrics(model, pred: pd.DataFrame, clips_of, frames: int, limit: int = WHEN_MAX) -> dict:
    """Where in time Grad-CAM of class fake peaks, over up to `limit` val clips per class (evenly spread over the
    sorted keys): per class the count of clips per peak frame, those with no peak in time, and the mean share of
    the map's mass in the peak frame against 1/T."""
    out = {"frames": frames, "uniform_share": 1 / frames, "target": "fake", "classes": {}}
    for label, name in ((1, "fake"), (0, "real")):
        keys = sorted(pred.loc[pred["label"] == label, "key"])
        keys = [keys[i] for i in np.unique(np.linspace(0, len(keys) - 1, min(limit, len(keys))).astype(int))] \
            if keys else []
        if not keys:
            continue
        clips = clips_of(keys)
        peak, share = peak_frames(clip_cams(model, [clips[key] for key in keys], target_class=FAKE))
        out["classes"][name] = {"clips": len(keys), "peak_frame_counts": np.bincount(peak[peak >= 0],
                                                                                      minlength=frames).tolist(),
                                "no_peak": int((peak < 0).sum()),
                                "peak_share_mean": float(np.nanmean(share)) if np.isfinite(share).any() else None}
    return out


def explain_clips(run_dir: Path, model, config: TrainConfig, dataset: Dataset, pred: pd.DataFrame, k: int,
                  boxes, dev_run: bool) -> dict:
    """The clip run's part of explain.json (top, when, pointing_note) and its figures."""
    urls = ClipShards(dataset, config.input).urls("val")
    cache: dict[str, np.ndarray] = {}

    def clips_of(keys):
        todo = [key for key in keys if key not in cache]
        if todo:
            cache.update(clips_by_key(urls, todo, config.image_size))
        return {key: cache[key] for key in keys}

    frames = int(dataset.clip_spec.frames)
    top = strip_figures(run_dir, model, pred, k, clips_of, frame_times(dataset, config.input))
    when = when_metrics(model, pred, clips_of, frames, limit=8 if dev_run else WHEN_MAX)
    if boxes:
        log.warning("--boxes: %s", NOT_PLAYED)
    return {"input": config.input, "unit": "clip", "clip_frames": frames, "top": top, "when": when,
            "pointing_note": NOT_PLAYED}
