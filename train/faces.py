"""The trainer's side of face crops: faces.parquet rows for predictions, source frames by offset, crop geometry
(a frame box in a face crop's coordinates), and figures that show each crop beside the frame and box it came from.

The faces stage (pipeline.faces) writes the crops; this module only reads what it wrote (faces.parquet,
frames.parquet, the frame shards) and mirrors its crop geometry: a square of side max(w, h) * (1 + 2 * margin)
centred on the face box (pipeline.faces.crop.crop_window), padded where it leaves the frame.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FACE_COLUMNS = ("frame_key", "face", "x0", "y0", "x1", "y1")


def attach_faces(pred: pd.DataFrame, manifests: Path) -> pd.DataFrame:
    """Per-face predictions (key = crop_key) + the frame key, second, face index and face box from faces.parquet."""
    path = Path(manifests) / "faces.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the faces stage writes it next to dataset.json")
    faces = pd.read_parquet(path, columns=["crop_key", "key", "second", "face", "x0", "y0", "x1", "y1"])
    faces = faces.rename(columns={"key": "frame_key", "crop_key": "key"})
    out = pred.merge(faces, on="key", how="left", validate="one_to_one")
    missing = out["frame_key"].isna()
    if missing.any():
        log.warning("%d predicted faces are not in %s (e.g. %s): shown without their frame", int(missing.sum()),
                    path, out.loc[missing, "key"].iloc[0])
        out.loc[missing, "frame_key"] = out.loc[missing, "key"].str.rsplit("_", n=1).str[0]
    return out.assign(second=out["second"].astype(float))


def crop_window(box: Sequence[float], margin: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the square crop around a face box, in frame pixels (as pipeline.faces.crop does)."""
    try:
        from pipeline.faces.crop import crop_window as stage_window
    except ImportError:  # the faces stage is not installed with this tree: its formula
        x0, y0, x1, y1 = box
        side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))))
        return int(round((x0 + x1) / 2 - side / 2)), int(round((y0 + y1) / 2 - side / 2)), side
    return stage_window(tuple(box), margin)


def box_in_crop(frame_box: Sequence[float], face_box: Sequence[float], margin: float) -> list[float] | None:
    """A box in frame pixels -> the same box normalised to the face crop ([0, 1], clipped), or None when the box's
    centre is not inside the crop (the box belongs to another face of the frame)."""
    cx0, cy0, side = crop_window(face_box, margin)
    x0, y0, x1, y1 = ((frame_box[0] - cx0) / side, (frame_box[1] - cy0) / side,
                      (frame_box[2] - cx0) / side, (frame_box[3] - cy0) / side)
    if not (0 <= (x0 + x1) / 2 <= 1 and 0 <= (y0 + y1) / 2 <= 1):
        return None
    return [float(np.clip(v, 0.0, 1.0)) for v in (x0, y0, x1, y1)]


def frame_sizes(manifests: Path, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """frame key -> (width, height) from frames.parquet."""
    rows = pd.read_parquet(Path(manifests) / "frames.parquet", columns=["key", "width", "height"],
                           filters=[("key", "in", sorted(set(keys)))])
    return {k: (int(w), int(h)) for k, w, h in zip(rows["key"], rows["width"], rows["height"])}


def fetch_frames(shards: str | Path, manifests: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Full frames (uint8 RGB) for frame keys, read by their frames.parquet offsets from local frame shards
    (pipeline.shards.read_member); keys it cannot find so are left out."""
    import simplejpeg

    from pipeline.shards import read_member

    wanted = sorted(set(keys))
    path = Path(manifests) / "frames.parquet"
    if not wanted or not path.is_file() or not Path(str(shards)).is_dir():
        return {}
    rows = pd.read_parquet(path, columns=["key", "shard", "offset"], filters=[("key", "in", wanted)])
    found = {}
    for shard, group in rows.groupby("shard"):
        file = Path(str(shards)) / shard
        if not file.is_file():
            continue
        with open(file, "rb") as fh:
            for key, offset in zip(group["key"], group["offset"]):
                try:
                    name, data = read_member(fh, int(offset))
                    if name == f"{key}.jpg":
                        found[key] = simplejpeg.decode_jpeg(data, colorspace="RGB")
                except (OSError, ValueError) as err:
                    log.warning("frame %s of %s not read: %s", key, shard, err)
    return found


def face_boxes_for_pointing(pred: pd.DataFrame, boxes: dict, manifests: Path, margin: float) -> dict[str, list]:
    """crop key -> the manipulated box (boxes.json, normalised to the frame) in the crop's coordinates, for val
    fake faces whose crop holds the box's centre (a fake's box belongs to the swapped face only)."""
    from train.explain import box_at

    fakes = pred[pred["label"] == 1]
    sizes = frame_sizes(manifests, list(fakes["frame_key"]))
    wanted = {}
    for row in fakes.itertuples():
        box = box_at(boxes, row.video_id, row.second)
        if box is None or row.frame_key not in sizes or pd.isna(row.x0):
            continue
        w, h = sizes[row.frame_key]
        in_crop = box_in_crop((box[0] * w, box[1] * h, box[2] * w, box[3] * h), (row.x0, row.y0, row.x1, row.y1),
                              margin)
        if in_crop is not None:
            wanted[row.key] = in_crop
    return wanted


def plot_faces_with_frames(path: Path, crops: list[np.ndarray], frames: list[np.ndarray | None], face_boxes: list,
                           titles: list[str], suptitle: str, ncols: int = 3) -> None:
    """A grid of (crop | the frame it came from, its face box drawn) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(crops)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.6 * 2 * ncols, 2.7 * nrows + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6] * ncols})
    for ax in axes.flat:
        ax.axis("off")
    for i, (crop, frame, box, title) in enumerate(zip(crops, frames, face_boxes, titles)):
        a, b = axes[i // ncols][2 * (i % ncols)], axes[i // ncols][2 * (i % ncols) + 1]
        a.imshow(crop)
        a.set_title(title, fontsize=8)
        if frame is not None:
            b.imshow(frame)
            x0, y0, x1, y1 = box
            b.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
            b.set_title("source frame", fontsize=8)
    fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def top_loss_figures(run_dir: Path, model, urls, pred: pd.DataFrame, size, k: int, shards, manifests: Path) -> dict:
    """top_losses.png / best.png (face crop | source frame with its box) and gradcam_worst.png / gradcam_best.png
    (Grad-CAM of the predicted class on the crop | source frame)."""
    import torch

    from train.augment import normalize, to_chw
    from train.explain import fastai_title, fetch_images
    from train.gradcam import grad_cam, overlay

    worst = pred.sort_values("loss", ascending=False, kind="stable").head(k)
    right = pred[(pred["p_fake"] >= 0.5).astype(int) == pred["label"]]
    best = right.sort_values("loss", ascending=True, kind="stable").head(k)
    crops = fetch_images(urls, list(worst["key"]) + list(best["key"]), size)
    frames = fetch_frames(shards, manifests, list(worst["frame_key"]) + list(best["frame_key"]))
    written = {}
    for name, cam_name, rows, heading in (("top_losses.png", "gradcam_worst.png", worst, "worst"),
                                          ("best.png", "gradcam_best.png", best, "best")):
        if rows.empty:
            log.warning("no faces for %s (no correctly classified val face?)", name)
            continue
        pics = [crops[key] for key in rows["key"]]
        titles = [fastai_title(row) for row in rows.itertuples()]
        sources = [frames.get(key) for key in rows["frame_key"]]
        boxes = [(r.x0, r.y0, r.x1, r.y1) for r in rows.itertuples()]
        plot_faces_with_frames(run_dir / name, pics, sources, boxes, titles, "Prediction/Actual/Loss/Probability")
        batch = normalize(torch.stack([to_chw(p) for p in pics]).to(next(model.parameters()).device))
        cams = grad_cam(model, batch)
        plot_faces_with_frames(run_dir / cam_name, [overlay(p, c) for p, c in zip(pics, cams.cpu().numpy())],
                               sources, boxes, titles, f"Grad-CAM of the predicted class ({heading} faces)")
        written[heading] = list(rows["key"])
    return written


# Prediction ---------------------------------------------------------------------------------------------------

NO_FACE_NOTE = "no face found: label 0.5"
FACE_ROW_COLUMNS = ("face", "track", "x0", "y0", "x1", "y1", "note")


class FaceCropper:
    """train.predict's faces: the faces stage's own detector, tracker and crop (pipeline.faces.faces_of_video)
    with the checkpoint's FaceSettings, each crop JPEG-encoded at the stage's quality and decoded at the model's
    input size as the training stream did, so the model sees at prediction what it saw in training."""

    def __init__(self, settings: dict, size: tuple[int, int], device: str = "auto") -> None:
        from pipeline.faces import FaceDetector, FaceSettings

        self.settings = FaceSettings.from_dict(settings)
        self.quality = int(settings.get("jpeg_quality", 90))
        self.size = tuple(size)
        self.detector = FaceDetector(self.settings, device=device)
        self.seconds = 0.0

    def __call__(self, images: Sequence[np.ndarray], seconds: Sequence[float]) -> tuple[list[dict], np.ndarray]:
        """Face rows (frame index into images, face, track, box) and their crops at the model's size (uint8 NHWC)."""
        import time

        from pipeline.faces import faces_of_video
        from pipeline.faces.crop import encode_jpeg
        from train.augment import decode_resized

        start = time.perf_counter()
        rows = faces_of_video(list(images), list(seconds), self.detector, self.settings)
        crops = [decode_resized(encode_jpeg(r.pop("crop"), self.quality), self.size) for r in rows]
        self.seconds += time.perf_counter() - start
        return rows, (np.stack(crops) if crops else np.zeros((0, *self.size, 3), np.uint8))


def face_rows(cropper: FaceCropper, scorer, item, base: dict) -> list[dict]:
    """One decoded video -> a row per face with its P(fake); a video without any face gets one row with a note
    (and no p_fake: its submission label is the 0.5 prior)."""
    rows, crops = cropper(list(item.images), item.seconds)
    if not rows:
        log.warning("%s: no face in %d frames; label 0.5", item.path, len(item.seconds))
        return [{**base, "note": NO_FACE_NOTE}]
    p_fake = scorer(crops)
    stem = base["video_id"]
    return [{**base, "key": f"{stem}_{item.indices[r['frame']]:04d}_{r['face']}", "index": item.indices[r["frame"]],
             "second": r["second"], "p_fake": p, "face": r["face"], "track": r["track"], "x0": r["x0"],
             "y0": r["y0"], "x1": r["x1"], "y1": r["y1"], "note": None} for r, p in zip(rows, p_fake)]
