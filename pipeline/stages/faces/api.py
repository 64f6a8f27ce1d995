"""One video's frames -> face rows: detect, link tracks, fill gaps, order, crop. Shared by the stage and
train.predict, so that a model sees at prediction exactly the crops it saw in training."""
from __future__ import annotations

import numpy as np

from pipeline.stages.faces import track
from pipeline.stages.faces.crop import crop_face
from pipeline.stages.faces.detect import Face, FaceDetector
from pipeline.spec import FaceCrop


def detections_to_rows(detections: list[list[Face]], seconds: list[float], settings: FaceCrop,
                       keys: list[str] | None = None, video_id: str | None = None) -> list[dict]:
    """Rows (no crops) from per-frame detections: track ids, gap boxes (score None), face 0 = largest.

    Frames are in time order; a frame that could not be decoded is passed as an empty list.
    """
    boxes = [[f.box for f in faces] for faces in detections]
    ids = track.link(boxes)
    per_frame: list[list[dict]] = [[] for _ in detections]
    for t, (faces, row_ids) in enumerate(zip(detections, ids)):
        for f, k in zip(faces, row_ids):
            lm = None if f.landmarks is None else [float(v) for v in np.asarray(f.landmarks).reshape(-1)]
            per_frame[t].append({"box": f.box, "score": float(f.score), "landmarks": lm, "track": k})
    for t, k, box in track.gaps(boxes, ids):
        per_frame[t].append({"box": box, "score": None, "landmarks": None, "track": k})
    rows = []
    for t, faces in enumerate(per_frame):
        faces.sort(key=lambda f: (-(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]), f["track"]))
        key = keys[t] if keys else None
        for i, f in enumerate(faces[: settings.max_faces]):
            x0, y0, x1, y1 = (float(v) for v in f["box"])
            rows.append({"key": key, "video_id": video_id, "second": float(seconds[t]), "frame": t, "face": i,
                         "track": int(f["track"]), "x0": x0, "y0": y0, "x1": x1, "y1": y1, "score": f["score"],
                         "landmarks": f["landmarks"], "crop_key": f"{key}_{i}" if key else None,
                         "diff": None, "manipulated": None, "note": None})
    return rows


def add_crops(rows: list[dict], images: list[np.ndarray | None], settings: FaceCrop) -> list[dict]:
    for r in rows:
        r["crop"] = crop_face(images[r["frame"]], (r["x0"], r["y0"], r["x1"], r["y1"]), settings.margin,
                              settings.face_size, settings.box, settings.resize)
    return rows


def faces_of_video(images: list[np.ndarray], seconds: list[float], detector: FaceDetector,
                   settings: FaceCrop, keys: list[str] | None = None, video_id: str | None = None) -> list[dict]:
    """Detect, link tracks, fill gaps and crop the faces of one video's frames (RGB uint8, time order).

    Returns faces.parquet rows without split/label/crop_shard (key, video_id and crop_key are None unless `keys`
    and `video_id` are given), each with `frame` (index into `images`) and `crop` ((face_size, face_size, 3) RGB).
    """
    detections = detector.detect(images) if images else []
    return add_crops(detections_to_rows(detections, seconds, settings, keys, video_id), images, settings)
