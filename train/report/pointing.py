"""The pointing game: where a detector's Grad-CAM peaks against the known manipulated box of each val fake (the
demo's boxes.json), in frames or mapped into the face crops; and the random-point rate to compare it with."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from dfd.errors import ToolkitError
from pipeline.dataset import LABELS, Dataset
from pipeline.stages.faces.crop import crop_window
from train.augment.sbi import self_blend
from train.data.decode import to_chw
from train.model import normalize
from train.report.gradcam import grad_cam, heatmap_peak, pointing_game

POINTING_MAX_FRAMES = 2000  # Grad-CAM over at most this many val fakes for the pointing game
POINTING_FIGURE_N = 12
BLEND_POINTING_MAX = 500  # val real faces made self-blended fakes for the pointing game against the blend mask
BLEND_INSIDE = 0.5        # a pixel is in the blended region where the blend mask is at least this


class ExplainError(ToolkitError, ValueError):
    """A run cannot be explained (no checkpoint, no val split, a bad boxes file); the message says why."""


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


def pointing(model, images_of: Callable[[Sequence[str]], dict], pred: pd.DataFrame, boxes: dict, batch_size: int,
             max_frames: int = POINTING_MAX_FRAMES, wanted: dict | None = None) -> tuple[dict, list]:
    """Grad-CAM (class fake) on val fakes with a box; share whose peak is inside. Also the random-point rate.

    `images_of(keys)` gives the model-size images; `wanted` (key -> normalised box in the image) replaces the frame
    boxes looked up in `boxes` (face crops)."""
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
    images = images_of(keys)
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


def box_in_crop(frame_box: Sequence[float], face_box: Sequence[float], margin: float) -> list[float] | None:
    """A box in frame pixels -> the same box normalised to the face crop ([0, 1], clipped), or None when the box's
    centre is not inside the crop (the box belongs to another face of the frame)."""
    cx0, cy0, side = crop_window(tuple(face_box), margin)
    x0, y0, x1, y1 = ((frame_box[0] - cx0) / side, (frame_box[1] - cy0) / side,
                      (frame_box[2] - cx0) / side, (frame_box[3] - cy0) / side)
    if not (0 <= (x0 + x1) / 2 <= 1 and 0 <= (y0 + y1) / 2 <= 1):
        return None
    return [float(np.clip(v, 0.0, 1.0)) for v in (x0, y0, x1, y1)]


def face_boxes_for_pointing(pred: pd.DataFrame, boxes: dict, dataset: Dataset, margin: float) -> dict[str, list]:
    """crop key -> the manipulated box (boxes.json, normalised to the frame) in the crop's coordinates, for val
    fake faces whose crop holds the box's centre (a fake's box belongs to the swapped face only)."""
    fakes = pred[pred["label"] == LABELS["fake"]]
    rows = dataset.table("frames", ["key", "width", "height"], keys=fakes["frame_key"])
    sizes = {k: (int(w), int(h)) for k, w, h in zip(rows["key"], rows["width"], rows["height"])}
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


def mask_box(region: np.ndarray) -> list[float]:
    """The normalised bounding box of a boolean region (for the figure)."""
    ys, xs = np.nonzero(region)
    h, w = region.shape
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    return [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]


def blend_pointing(model, images: dict[str, np.ndarray], points: dict[str, np.ndarray], batch_size: int,
                   seed: int = 0) -> tuple[dict, list]:
    """Val real faces made self-blended fakes (train.augment.sbi, drawn from `seed`), Grad-CAM (class fake) on
    them: the share whose peak lies in the blended region (blend mask >= BLEND_INSIDE), against the region's share
    of the image (a random point's chance); whether the network looks at the blend, not elsewhere."""
    keys = sorted(images)
    if not keys:
        raise ExplainError("blend pointing game: no val real face to blend")
    rng = np.random.default_rng(seed)
    blends = {k: self_blend(images[k], points[k], rng) for k in keys}
    hits, shown, areas = [], [], []
    device = next(model.parameters()).device
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        batch = torch.stack([to_chw(blends[k].image) for k in chunk])
        cams = grad_cam(model, normalize(batch.to(device)), target_class=LABELS["fake"])
        for key, cam in zip(chunk, cams.cpu().numpy()):
            region = blends[key].mask >= BLEND_INSIDE
            y, x = heatmap_peak(cam)
            hits.append(bool(region[y, x]) and cam.max() > 0)
            areas.append(float(region.mean()))
            if len(shown) < POINTING_FIGURE_N:
                shown.append((key, blends[key].image, cam, mask_box(region)))
    result = {"faces": len(keys), "frames": len(keys), "hits": int(sum(hits)), "pointing_game": float(np.mean(hits)),
              "random_point": float(np.mean(areas)), "target_class": "fake", "region": f"mask >= {BLEND_INSIDE}",
              "seed": seed}
    return result, shown
