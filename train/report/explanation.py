"""Explain a run: val predictions, video scores and metrics, top losses, Grad-CAM, the pointing game, report.html.

`run_explain(run_dir, ...)`, which `dfd explain` and the end of `dfd train` call.

Every metric comes from train.score.metrics: log loss clipped as Kaggle's scorer did (P in [1e-15, 1 - 1e-15]);
the video-level log loss with predictions clipped to [0.01, 0.99], as top DFDC submissions clipped their own
scores, is reported next to it, labelled so.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import simplejpeg

from dfd.files import write_text
from pipeline.dataset import CLASS_NAMES, Dataset
from pipeline.spec import FaceCrop
from train.augment.sbi import landmarks_in_crop
from train.config import CLIP_INPUTS, TrainConfig
from train.data.decode import decode_resized
from train.data.streams import ValStream, make_loader, read_shard
from train.model import Device, resolve_device
from train.report.clip_explanation import clip_predictions, explain_clips
from train.report.figures import plot_pointing, top_loss_figures
from train.report.page import write_report
from train.report.pointing import (BLEND_POINTING_MAX, ExplainError, blend_pointing, face_boxes_for_pointing,
                                   load_boxes, pointing)
from train.score import metrics
from train.score.checkpoints import load_model
from train.paths import CheckpointError, RunLayout, resolve as resolve_checkpoint
from train.score.metrics import KAGGLE_EPS, SUBMISSION_CLIP, json_safe
from train.score.on_batches import predict

log = logging.getLogger(__name__)

DEFAULT_K = 9               # fastai's plot_top_losses default: a 3x3 grid
PREDICTION_COLUMNS = ("key", "video_id", "second", "label", "p_fake", "loss")
FACE_COLUMNS = ("frame_key", "face", "x0", "y0", "x1", "y1")


def video_predictions(frames: pd.DataFrame, rule: str = "mean") -> pd.DataFrame:
    """A row per video: label, p_fake (the aggregation rule over its frames; mean by default), frames, and the
    video's own log loss (Kaggle's clipping)."""
    videos = metrics.video_scores(frames, rule)
    videos["loss"] = metrics.item_log_losses(videos["label"], videos["p_fake"])
    videos["label_name"] = [CLASS_NAMES[int(v)] for v in videos["label"]]
    return videos[["video_id", "label", "label_name", "p_fake", "frames", "loss"]]


def run_metrics(frames: pd.DataFrame, videos: pd.DataFrame, rule: str = "mean") -> dict:
    """Frame and video metrics of train.score.metrics.score, the mean frame loss, and (labelled as such) the video log
    loss with scores clipped as top DFDC submissions clipped them."""
    clip = SUBMISSION_CLIP
    video = metrics.score(videos["label"], videos["p_fake"])
    video["log_loss_clipped"] = metrics.log_loss(videos["label"], videos["p_fake"], eps=clip)
    frame = {"loss": float(frames["loss"].mean()), **metrics.score(frames["label"], frames["p_fake"])}
    return {"frame": {"frames": int(len(frames)), **frame},
            "video": {"videos": int(len(videos)), **video, "aggregate": rule, "submission_clip": [clip, 1 - clip]},
            "log_loss_eps": KAGGLE_EPS}


# Predictions --------------------------------------------------------------------------------------------------


def val_predictions(model, urls: list[str], image_size, batch_size: int, workers: int, dev: Device) -> pd.DataFrame:
    """Every val frame once, through the trainer's own ValStream and train.score.on_batches.predict."""
    loader = make_loader(ValStream(urls, tuple(image_size), batch_size), min(workers, len(urls)))
    return predict(model, loader, dev)


def attach_seconds(pred: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Add `second` from frames.parquet, else from the key's frame index and the sampling rate."""
    seconds = None
    if dataset.has_table("frames"):
        table = dataset.table("frames", ["key", "second"])
        seconds = pred["key"].map(dict(zip(table["key"], table["second"])))
    if seconds is None or seconds.isna().any():
        fps = dataset.frame_sampling.fps if dataset.frame_sampling else 1.0
        from_key = pred["key"].str.rsplit("_", n=1).str[-1].astype(float) / fps
        seconds = from_key if seconds is None else seconds.fillna(from_key)
    return pred.assign(second=seconds.astype(float))


def attach_faces(pred: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Per-face predictions (key = crop_key) + the frame key, second, face index and face box from faces.parquet."""
    faces = dataset.table("faces", ["crop_key", "key", "second", "face", "x0", "y0", "x1", "y1"])
    faces = faces.rename(columns={"key": "frame_key", "crop_key": "key"})
    out = pred.merge(faces, on="key", how="left", validate="one_to_one")
    missing = out["frame_key"].isna()
    if missing.any():
        log.warning("%d predicted faces are not in faces.parquet (e.g. %s): shown without their frame",
                    int(missing.sum()), out.loc[missing, "key"].iloc[0])
        out.loc[missing, "frame_key"] = out.loc[missing, "key"].str.rsplit("_", n=1).str[0]
    return out.assign(second=out["second"].astype(float))


def images_by_key(dataset: Dataset, urls: Iterable[str], keys: Sequence[str], size) -> dict[str, np.ndarray]:
    """uint8 HxWx3 items at the model's input size for the wanted keys, read back from the shards: frames by their
    frames.parquet offsets where the shards are local files, else (and for any key not found so, and face crops)
    by a scan of the val shards."""
    wanted = set(keys)
    jpegs = dataset.frame_jpegs(wanted) if dataset.input == "frames" else {}
    found = {key: decode_resized(data, tuple(size)) for key, data in jpegs.items()}
    for url in urls:
        if len(found) == len(wanted):
            break
        for sample in read_shard(url):
            key = sample["__key__"]
            if key in wanted and key not in found:
                found[key] = decode_resized(sample["jpg"], tuple(size))
    missing = wanted - set(found)
    if missing:
        raise ExplainError(f"{len(missing)} predicted frames not found again in the val shards, "
                           f"e.g. {sorted(missing)[:3]}")
    return found


def source_frames(dataset: Dataset, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Whole frames (uint8 RGB) for frame keys, from the frame shards; keys not found are left out."""
    return {k: simplejpeg.decode_jpeg(data, colorspace="RGB") for k, data in dataset.frame_jpegs(keys).items()}


# The whole thing ----------------------------------------------------------------------------------------------


def write_pipeline_settings(run_dir: Path, dataset: Dataset) -> None:
    """Copy the pipeline's frame settings next to the checkpoints, so that prediction finds them with the run."""
    if dataset.frame_sampling:
        keep = dataset.frame_sampling.to_dict()
        write_text(run_dir / "pipeline.json", json.dumps({"config": keep, "ffmpeg": dataset.ffmpeg}, indent=2) + "\n")


def run_explain(run_dir: str | Path, shards: str | Path | None = None, manifests: str | Path | None = None,
                device: str = "cpu", dev_run: bool = False, checkpoint: str | Path = "best",
                boxes: str | Path | None = None, k: int = DEFAULT_K, report: bool = True,
                blend: bool | None = None) -> dict:
    """Explain a run folder; writes predictions, video scores, explain.json, figures and report.html.

    shards/manifests default to the run's config. dev_run keeps everything but shrinks k to 4. blend: the pointing
    game against self-blended val real faces' blend masks (None: for runs trained with synthetic fakes). Returns
    the metrics written to explain.json."""
    run_dir = Path(run_dir)
    try:
        ckpt = resolve_checkpoint(checkpoint, run_dir)
    except CheckpointError as err:
        raise ExplainError(str(err)) from None
    model, config = load_model(ckpt, map_location=device)
    clips = config.input in CLIP_INPUTS
    dataset = Dataset.open(str(shards or config.shards), Path(manifests or config.manifests),
                           "frames" if clips else config.input)
    dev = Device(resolve_device(device))
    model.to(dev.device)
    urls = dataset.urls("val")  # val: every face
    log.info("explaining %s with %s on %d val shards", run_dir, ckpt.name, len(urls))
    pred = (clip_predictions if clips else explained_predictions)(model, config, dataset, dev)
    pred.to_parquet(run_dir / "predictions.parquet", index=False)
    videos = video_predictions(pred, config.aggregate)
    videos.to_parquet(run_dir / "video_predictions.parquet", index=False)
    k = min(k, 4) if dev_run else k
    images_of = functools.partial(images_by_key, dataset, urls, size=config.image_size)
    sources_of = functools.partial(source_frames, dataset) if config.input == "faces" else None
    metrics = {"checkpoint": RunLayout(run_dir).store(ckpt), "checkpoint_name": ckpt.name, **run_metrics(pred, videos, config.aggregate),
               "k": k, "image_size": list(config.image_size), "boxes": str(boxes) if boxes else None,
               "pointing": None, **({"input": "faces"} if config.input == "faces" else {})}
    if clips:
        metrics.update(explain_clips(run_dir, model, config, dataset, pred, k, boxes, dev_run))
    else:
        metrics["top"] = top_loss_figures(run_dir, model, pred, k, images_of, sources_of)
    if boxes and not clips:
        metrics["pointing"] = pointing_figure(run_dir, model, config, dataset, pred, load_boxes(boxes), images_of)
    if config.input == "faces" and (blend if blend is not None else config.synthetic_fakes is not None):
        metrics["pointing_blend"] = blend_pointing_figure(run_dir, model, config, dataset, pred, images_of,
                                                          16 if dev_run else BLEND_POINTING_MAX)
    write_pipeline_settings(run_dir, dataset)
    write_text(run_dir / "explain.json", json.dumps(json_safe(metrics), indent=2) + "\n")
    if report:
        log.info("report: %s", write_report(run_dir))
    return metrics


def explained_predictions(model, config: TrainConfig, dataset: Dataset, dev: Device) -> pd.DataFrame:
    """Every val frame (or face) once, with its second (and face box), sorted by video, second and key."""
    urls = dataset.urls("val")
    pred = val_predictions(model, urls, config.image_size, config.batch_size, config.workers, dev)
    if pred.empty:
        raise ExplainError(f"no val frames in {len(urls)} val shards")
    faces = config.input == "faces"
    pred = attach_faces(pred, dataset) if faces else attach_seconds(pred, dataset)
    pred = pred.sort_values(["video_id", "second", "key"], kind="stable").reset_index(drop=True)
    return pred[list(PREDICTION_COLUMNS) + (list(FACE_COLUMNS) if faces else [])]


def blend_pointing_figure(run_dir: Path, model, config: TrainConfig, dataset: Dataset, pred: pd.DataFrame,
                          images_of, limit: int) -> dict:
    """The pointing game against the blend masks of self-blended val real faces, and pointing_blend.png."""
    reals = sorted(pred.loc[pred["label"] == 0, "key"])
    keys = [reals[i] for i in np.unique(np.linspace(0, len(reals) - 1, min(limit, len(reals))).astype(int))]
    rows = dataset.table("faces", ["crop_key", "x0", "y0", "x1", "y1", "landmarks"], keys=keys, key="crop_key")
    margin = (config.faces or dataset.face_crop or FaceCrop()).margin
    points = {r["crop_key"]: landmarks_in_crop(r, margin) for r in rows.to_dict("records")}
    images = images_of([k for k in keys if k in points])
    result, shown = blend_pointing(model, images, points, config.batch_size, seed=config.seed)
    plot_pointing(run_dir / "pointing_blend.png", shown, result, "self-blended val real faces (box: blend mask)")
    log.info("pointing game against the blend mask: %.1f%% of %d self-blended val real faces (random point %.1f%%)",
             100 * result["pointing_game"], result["faces"], 100 * result["random_point"])
    return result


def pointing_figure(run_dir: Path, model, config: TrainConfig, dataset: Dataset, pred: pd.DataFrame, boxes: dict,
                    images_of) -> dict:
    """The pointing game over the val fakes (their faces holding the box, for faces) and pointing.png."""
    wanted = None
    if config.input == "faces":  # the manipulated box, mapped into the crops of the val fake faces that hold it
        margin = (config.faces or FaceCrop()).margin
        wanted = face_boxes_for_pointing(pred, boxes, dataset, margin)
        if not wanted:
            raise ExplainError("--boxes: no val fake face holds a box of the file")
    result, shown = pointing(model, images_of, pred, boxes, config.batch_size, wanted=wanted)
    plot_pointing(run_dir / "pointing.png", shown, result)
    log.info("pointing game: %.1f%% of %d val fakes (random point %.1f%%)", 100 * result["pointing_game"],
             result["frames"], 100 * result["random_point"])
    return result
