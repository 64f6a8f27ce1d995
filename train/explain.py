"""Explain a run: val predictions, video scores and metrics, top losses, Grad-CAM, the pointing game, report.html.

`python -m train.explain --run runs/NAME [--checkpoint best|last|PATH] [--boxes boxes.json] [--k N]`, and
`run_explain(run_dir, ...)`, which `python -m train.run` calls at the end of training.

Every metric comes from train.metrics: log loss clipped as Kaggle's scorer did (P in [1e-15, 1 - 1e-15]); the
video-level log loss with predictions clipped to [0.01, 0.99], as top DFDC submissions clipped their own scores,
is reported next to it, labelled so.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tarfile
from pathlib import Path
from typing import Iterable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import click  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from pipeline.diskfull import is_full, one_line  # noqa: E402
from pipeline.shards import read_member  # noqa: E402
from train.augment import decode_resized, normalize, to_chw  # noqa: E402
from train.data import CLASS_NAMES, LABELS, ValStream, load_manifest, make_loader, read_shard  # noqa: E402
from train.artifacts import save_figure  # noqa: E402
from train.engine import Device, predict  # noqa: E402
from train.gradcam import grad_cam, heatmap_peak, overlay, plot_gradcam_grid, pointing_game  # noqa: E402
from train.model import load_checkpoint  # noqa: E402
from train import metrics  # noqa: E402
from train.metrics import KAGGLE_EPS, SUBMISSION_CLIP, json_safe  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_K = 9               # fastai's plot_top_losses default: a 3x3 grid
POINTING_MAX_FRAMES = 2000  # Grad-CAM over at most this many val fakes for the pointing game
POINTING_FIGURE_N = 12
PREDICTION_COLUMNS = ("key", "video_id", "second", "label", "p_fake", "loss")


class ExplainError(RuntimeError):
    """The run cannot be explained (no checkpoint, no val split, bad boxes file); the message says why."""


# Metrics ------------------------------------------------------------------------------------------------------


clipped_log_loss = metrics.log_loss  # Kaggle's clipping; the one definition is train.metrics


def video_predictions(frames: pd.DataFrame, rule: str = "mean") -> pd.DataFrame:
    """A row per video: label, p_fake (the aggregation rule over its frames; mean by default), frames, and the
    video's own log loss (Kaggle's clipping)."""
    videos = metrics.video_scores(frames, rule)
    videos["loss"] = metrics.item_log_losses(videos["label"], videos["p_fake"])
    videos["label_name"] = [CLASS_NAMES[int(v)] for v in videos["label"]]
    return videos[["video_id", "label", "label_name", "p_fake", "frames", "loss"]]


def run_metrics(frames: pd.DataFrame, videos: pd.DataFrame, rule: str = "mean") -> dict:
    """Frame and video metrics of train.metrics.score, the mean frame loss, and (labelled as such) the video log
    loss with scores clipped as top DFDC submissions clipped them."""
    clip = SUBMISSION_CLIP
    video = metrics.score(videos["label"], videos["p_fake"])
    video["log_loss_clipped"] = metrics.log_loss(videos["label"], videos["p_fake"], eps=clip)
    frame = {"loss": float(frames["loss"].mean()), **metrics.score(frames["label"], frames["p_fake"])}
    return {"frame": {"frames": int(len(frames)), **frame},
            "video": {"videos": int(len(videos)), **video, "aggregate": rule, "submission_clip": [clip, 1 - clip]},
            "log_loss_eps": KAGGLE_EPS}


# Predictions --------------------------------------------------------------------------------------------------


def resolve_checkpoint(run_dir: Path, checkpoint: str | Path) -> Path:
    """best | last | a path -> the checkpoint file; best falls back to last (and says so)."""
    folder = run_dir / "checkpoints"
    if str(checkpoint) in ("best", "last"):
        path = folder / f"{checkpoint}.pt"
        if not path.is_file() and str(checkpoint) == "best" and (folder / "last.pt").is_file():
            log.warning("%s has no best.pt; explaining last.pt", folder)
            path = folder / "last.pt"
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise ExplainError(f"no checkpoint at {path}; pass --checkpoint best, last or a .pt file of this trainer")
    return path


def attach_seconds(pred: pd.DataFrame, manifests: Path, fps: float) -> pd.DataFrame:
    """Add `second` from frames.parquet (the manifest), else from the key's frame index and the sampling rate."""
    path = manifests / "frames.parquet"
    seconds = None
    if path.is_file():
        table = pd.read_parquet(path, columns=["key", "second"])
        seconds = pred["key"].map(dict(zip(table["key"], table["second"])))
    if seconds is None or seconds.isna().any():
        from_key = pred["key"].str.rsplit("_", n=1).str[-1].astype(float) / fps
        seconds = from_key if seconds is None else seconds.fillna(from_key)
    return pred.assign(second=seconds.astype(float))


def val_predictions(model, urls: list[str], image_size, batch_size: int, workers: int, dev: Device) -> pd.DataFrame:
    """Every val frame once, through the trainer's own ValStream and engine.predict."""
    loader = make_loader(ValStream(urls, tuple(image_size), batch_size), min(workers, len(urls)))
    return predict(model, loader, dev)


def fetch_images(urls: Iterable[str], keys: Sequence[str], size, manifests: Path | None = None) -> dict[str, np.ndarray]:
    """uint8 HxWx3 frames at the model's input size for the wanted keys, read back from the shards: by their
    frames.parquet offsets where the shards are local files, else (or for any key not found so) by a scan."""
    wanted = set(keys)
    found = _images_by_offset(urls, wanted, size, manifests) if manifests is not None else {}
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


def _images_by_offset(urls: Iterable[str], wanted: set[str], size, manifests: Path) -> dict[str, np.ndarray]:
    """Seek straight to each frame's `.jpg` member (parsed by tarfile from its recorded offset, its name checked
    against the key) instead of reading shards."""
    path = Path(manifests) / "frames.parquet"
    local = {Path(u).name: u for u in urls if Path(u).is_file()}
    if not wanted or not local or not path.is_file():
        return {}
    rows = pd.read_parquet(path, columns=["key", "shard", "offset", "bytes"], filters=[("key", "in", sorted(wanted))])
    found = {}
    for shard, group in rows[rows["shard"].isin(list(local))].groupby("shard"):
        with open(local[shard], "rb") as fh:
            for key, offset in zip(group["key"], group["offset"]):
                try:
                    name, data = read_member(fh, int(offset))
                except (tarfile.TarError, EOFError):
                    continue  # not where the manifest says: the scan finds it
                if name == f"{key}.jpg":
                    found[key] = decode_resized(data, tuple(size))
    return found


# Boxes and the pointing game -----------------------------------------------------------------------------------


def load_boxes(path: str | Path) -> dict[str, list[list[float]]]:
    """boxes.json: {file name or video id: [x0, y0, x1, y1] or one such box per whole second} -> id -> boxes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ExplainError(f"boxes file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ExplainError(f"boxes file {path}: expected an object mapping video file names to boxes")
    boxes = {}
    for name, value in data.items():
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape == (4,):
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
            raise ExplainError(f"boxes file {path}: {name} needs [x0, y0, x1, y1] or a list of them, got {value!r}")
        boxes[Path(name).stem] = arr.tolist()
    return boxes


def box_at(boxes: dict, video_id: str, second: float) -> list[float] | None:
    """The video's box for that second (the last one past the end), or None when the video has no box."""
    per_second = boxes.get(video_id)
    if per_second is None:
        return None
    return per_second[min(max(int(math.floor(second + 1e-6)), 0), len(per_second) - 1)]


def box_area(box: Sequence[float]) -> float:
    x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in box)
    return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


def pointing(model, urls: list[str], pred: pd.DataFrame, boxes: dict, size, batch_size: int,
             max_frames: int = POINTING_MAX_FRAMES, manifests: Path | None = None,
             wanted: dict | None = None) -> tuple[dict, list]:
    """Grad-CAM (class fake) on val fakes with a box; share whose peak is inside. Also the random-point rate.

    `wanted` (key -> normalised box in the image) replaces the frame boxes looked up in `boxes` (face crops)."""
    fakes = pred[pred["label"] == LABELS["fake"]]
    if wanted is None:
        wanted = {k: box_at(boxes, v, s) for k, v, s in zip(fakes["key"], fakes["video_id"], fakes["second"])}
        wanted = {k: b for k, b in wanted.items() if b is not None}
    if not wanted:
        raise ExplainError("--boxes: no val fake has a box in the file (video ids are the file names without "
                           f"extension; e.g. {sorted(boxes)[:3]})")
    keys = sorted(wanted)
    if len(keys) > max_frames:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_frames).astype(int)]
    images = fetch_images(urls, keys, size, manifests)
    hits, shown, empty = [], [], 0
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        batch = torch.stack([to_chw(images[k]) for k in chunk])
        cams = grad_cam(model, normalize(batch.to(next(model.parameters()).device)), target_class=LABELS["fake"])
        for key, cam in zip(chunk, cams.cpu()):
            hits.append(pointing_game(cam[None], [wanted[key]]))
            empty += int(cam.max() <= 0)  # no positive evidence: the peak is pixel (0, 0), counted as a miss
            if len(shown) < POINTING_FIGURE_N:
                shown.append((key, images[key], cam.numpy(), wanted[key]))
    result = {"frames": len(keys), "videos": int(fakes.loc[fakes["key"].isin(keys), "video_id"].nunique()),
              "hits": int(sum(hits)), "pointing_game": float(np.mean(hits)),
              "random_point": float(np.mean([box_area(wanted[k]) for k in keys])), "empty_maps": empty,
              "target_class": "fake"}
    return result, shown


# Figures ------------------------------------------------------------------------------------------------------


def fastai_title(row) -> str:
    """fastai's plot_top_losses title: prediction/actual / loss / probability of the actual class."""
    predicted = CLASS_NAMES[int(row.p_fake >= 0.5)]
    actual = CLASS_NAMES[int(row.label)]
    p_actual = row.p_fake if int(row.label) == 1 else 1 - row.p_fake
    return f"{predicted}/{actual} / {row.loss:.2f} / {p_actual:.2f}"


def plot_frames(path: Path, images: list[np.ndarray], titles: list[str], suptitle: str, ncols: int = 3) -> None:
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    h, w = images[0].shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.6 * nrows * h / w + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    fig.suptitle(suptitle)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_pointing(path: Path, shown: list, result: dict) -> None:
    """Grad-CAM (class fake) over val fakes, the known manipulated box in white, the heatmap peak as a cross."""
    ncols = min(4, len(shown))
    nrows = -(-len(shown) // ncols)
    h, w = shown[0][1].shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows * h / w + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (key, image, cam, box) in zip(axes.flat, shown):
        ax.imshow(overlay(image, cam))
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                               edgecolor="white", linewidth=1.5))
        py, px = heatmap_peak(cam)
        inside = x0 <= (px + 0.5) / w <= x1 and y0 <= (py + 0.5) / h <= y1
        ax.plot([px], [py], marker="x", color="lime" if inside else "red", markersize=10, mew=2.5)
        ax.set_title(f"{key} {'hit' if inside else 'miss'}", fontsize=8)
    fig.suptitle(f"pointing game {result['pointing_game']:.1%} of {result['frames']} val fakes "
                 f"(random point {result['random_point']:.1%})")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def top_loss_figures(run_dir: Path, model, urls, pred: pd.DataFrame, size, k: int,
                     manifests: Path | None = None) -> dict:
    """top_losses.png / best.png and their Grad-CAM versions: the k worst and the k most confidently right."""
    worst = pred.sort_values("loss", ascending=False, kind="stable").head(k)
    right = pred[(pred["p_fake"] >= 0.5).astype(int) == pred["label"]]
    best = right.sort_values("loss", ascending=True, kind="stable").head(k)
    images = fetch_images(urls, list(worst["key"]) + list(best["key"]), size, manifests)
    written = {}
    for name, cam_name, rows, heading in (("top_losses.png", "gradcam_worst.png", worst, "worst"),
                                          ("best.png", "gradcam_best.png", best, "best")):
        if rows.empty:
            log.warning("no frames for %s (no correctly classified val frame?)", name)
            continue
        pics = [images[key] for key in rows["key"]]
        titles = [fastai_title(row) for row in rows.itertuples()]
        plot_frames(run_dir / name, pics, titles, "Prediction/Actual/Loss/Probability")
        batch = normalize(torch.stack([to_chw(p) for p in pics]).to(next(model.parameters()).device))
        cams = grad_cam(model, batch)  # the predicted class of each frame
        plot_gradcam_grid(pics, list(cams.cpu()), titles, run_dir / cam_name, ncols=3)
        written[heading] = list(rows["key"])
    return written


# The whole thing ----------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_pipeline_settings(run_dir: Path, manifests: Path) -> None:
    """Copy the pipeline's frame settings next to the checkpoints, so `train.predict` finds them with the run."""
    dataset = read_json(manifests / "dataset.json")
    if dataset.get("config"):
        keep = {k: dataset["config"].get(k) for k in ("fps", "size", "quality", "timeout")}
        (run_dir / "pipeline.json").write_text(json.dumps({"config": keep, "ffmpeg": dataset.get("ffmpeg")},
                                                          indent=2) + "\n")


def run_explain(run_dir: str | Path, shards: str | Path | None = None, manifests: str | Path | None = None,
                device: str = "cpu", dev_run: bool = False, checkpoint: str | Path = "best",
                boxes: str | Path | None = None, k: int = DEFAULT_K, report: bool = True) -> dict:
    """Explain a run folder; writes predictions, video scores, explain.json, figures and report.html.

    shards/manifests default to the run's config. boxes defaults to the config's extra["boxes"] when set.
    dev_run keeps everything but shrinks k to 4. Returns the metrics written to explain.json.
    """
    run_dir = Path(run_dir)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    model, config = load_checkpoint(ckpt, map_location=device)
    shards = str(shards or config["shards"])
    manifests = Path(manifests or config["manifests"])
    boxes = boxes or (config.get("extra") or {}).get("boxes")
    k = min(k, 4) if dev_run else k
    size = tuple(config["recipe"]["image_size"])
    faces = config.get("input", "frames") == "faces"
    dev = Device(torch.device(device))
    model.to(dev.device)
    manifest = load_manifest(shards, manifests, "faces" if faces else "frames")  # val: every face
    urls = manifest.urls("val")
    fps = float(read_json(manifests / "dataset.json").get("config", {}).get("fps", 1.0))
    log.info("explaining %s with %s on %d val shards", run_dir, ckpt.name, len(urls))

    pred = val_predictions(model, urls, size, config["recipe"]["batch_size"], config.get("workers", 0), dev)
    if pred.empty:
        raise ExplainError(f"no val frames in {len(urls)} val shards")
    if faces:
        from train import faces as face_tools

        pred = face_tools.attach_faces(pred, manifests)
    else:
        pred = attach_seconds(pred, manifests, fps)
    pred = pred.sort_values(["video_id", "second", "key"], kind="stable").reset_index(drop=True)
    pred = pred[list(PREDICTION_COLUMNS) + (list(face_tools.FACE_COLUMNS) if faces else [])]
    pred.to_parquet(run_dir / "predictions.parquet", index=False)
    rule = config.get("aggregate", "mean")
    videos = video_predictions(pred, rule)
    videos.to_parquet(run_dir / "video_predictions.parquet", index=False)

    metrics = {"checkpoint": str(ckpt), "checkpoint_name": ckpt.name, **run_metrics(pred, videos, rule), "k": k,
               "image_size": list(size), "boxes": str(boxes) if boxes else None, "pointing": None}
    if faces:
        metrics["input"] = "faces"
        metrics["top"] = face_tools.top_loss_figures(run_dir, model, urls, pred, size, k, shards, manifests)
    else:
        metrics["top"] = top_loss_figures(run_dir, model, urls, pred, size, k, manifests)
    if boxes:
        wanted = None
        if faces:  # the manipulated box, mapped into the crops of the val fake faces that hold it
            margin = float(((config.get("extra") or {}).get("faces") or {}).get("margin", 0.3))
            wanted = face_tools.face_boxes_for_pointing(pred, load_boxes(boxes), manifests, margin)
            if not wanted:
                raise ExplainError("--boxes: no val fake face holds a box of the file")
        result, shown = pointing(model, urls, pred, load_boxes(boxes), size, config["recipe"]["batch_size"],
                                 manifests=None if faces else manifests, wanted=wanted)
        plot_pointing(run_dir / "pointing.png", shown, result)
        metrics["pointing"] = result
        log.info("pointing game: %.1f%% of %d val fakes (random point %.1f%%)", 100 * result["pointing_game"],
                 result["frames"], 100 * result["random_point"])
    write_pipeline_settings(run_dir, manifests)
    (run_dir / "explain.json").write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    if report:
        from train.report import write_report
        log.info("report: %s", write_report(run_dir))
    return metrics


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Run folder (runs/NAME) with checkpoints/.")
@click.option("--checkpoint", default="best", help="best | last | PATH to a checkpoint of this trainer.")
@click.option("--boxes", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Manipulated regions of the fakes (the demo's videos/boxes.json): runs the pointing game.")
@click.option("--k", type=click.IntRange(min=1), default=DEFAULT_K, help="Frames in the top-loss and best grids.")
@click.option("--shards", help="Shards folder, URL prefix or {name} template [default: the run's config].")
@click.option("--manifests", type=click.Path(path_type=Path), help="Manifests folder [default: the run's config].")
@click.option("--device", default="cpu", help="cpu, cuda, cuda:N.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(run_dir, checkpoint, boxes, k, shards, manifests, device, verbose) -> None:
    """Predictions on the val split, video-level metrics, top losses, Grad-CAM and report.html of a run."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from train.data import DataError
    from train.model import WeightsError
    try:
        metrics = run_explain(run_dir, shards, manifests, device, checkpoint=checkpoint, boxes=boxes, k=k)
    except (ExplainError, DataError, WeightsError) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        if not is_full(err):
            raise
        raise click.ClickException(one_line(err, "rerun the same command")) from None
    v = metrics["video"]
    click.echo(f"video log loss {v['log_loss']:.4f}  AUC {v['roc_auc']:.4f}  accuracy {v['accuracy']:.4f}  "
               f"({v['videos']} videos, {metrics['frame']['frames']} frames)")
    if metrics["pointing"]:
        p = metrics["pointing"]
        click.echo(f"pointing game {p['pointing_game']:.3f} over {p['frames']} val fakes "
                   f"(random point {p['random_point']:.3f})")
    click.echo(f"report: {run_dir / 'report.html'}")


if __name__ == "__main__":
    main()
