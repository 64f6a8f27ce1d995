"""A stand-in for the faces stage in trainer tests: face shards, faces.parquet and dataset.json's "faces" section,
written exactly as the faces contract says (docs in HELPERS/issue 10), with a fixed centred "detection" per frame
instead of MTCNN, so trainer tests stay fast and do not depend on what a detector finds in lavfi test patterns."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import simplejpeg

from pipeline.core.shards import member
from train.data.streams import read_shard

SETTINGS = {"detect_size": 640, "min_score": 0.9, "min_size": 10, "margin": 0.3, "face_size": 64, "max_faces": 4}


def centre_box(w: int, h: int) -> tuple[float, float, float, float]:
    return (w * 0.35, h * 0.25, w * 0.65, h * 0.75)


def crop(image: np.ndarray, box, margin: float, size: int) -> np.ndarray:
    """The faces stage's crop: a square around the box grown by margin per side, black outside, resized."""
    x0, y0, x1, y1 = box
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))))
    x, y = int(round((x0 + x1) / 2 - side / 2)), int(round((y0 + y1) / 2 - side / 2))
    h, w = image.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x), max(0, y), min(w, x + side), min(h, y + side)
    out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = image[sy0:sy1, sx0:sx1]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def write_faces(shards: Path, manifests: Path, no_face: set[str] = frozenset(), untouched: set[str] = frozenset(),
                face_size: int = 64) -> pd.DataFrame:
    """Face shards (one per frame shard) + faces.parquet + dataset.json["faces"]; returns the faces table.

    Videos in `no_face` get no face; fake videos in `untouched` get manipulated=False, other fakes True.
    """
    shards, manifests = Path(shards), Path(manifests)
    settings = {**SETTINGS, "face_size": face_size}
    dataset = json.loads((manifests / "dataset.json").read_text())
    (shards / "faces").mkdir(exist_ok=True)
    rows, entries = [], []
    for entry in dataset["shards"]:
        name = f"faces/{entry['name']}"
        blob, n = b"", 0
        for sample in read_shard(str(shards / entry["name"])):
            meta = json.loads(sample["json"])
            if meta["video_id"] in no_face:
                continue
            image = simplejpeg.decode_jpeg(sample["jpg"], colorspace="RGB")
            h, w = image.shape[:2]
            box = centre_box(w, h)
            fake = meta["label"] == "fake"
            row = {"key": sample["__key__"], "video_id": meta["video_id"], "second": float(meta["second"]),
                   "split": meta["split"], "label": meta["label"], "face": 0, "track": 0,
                   "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "score": 0.99,
                   "landmarks": None, "crop_key": f"{sample['__key__']}_0", "crop_shard": name,
                   "diff": (0.0 if meta["video_id"] in untouched else 0.3) if fake else None,
                   "manipulated": (meta["video_id"] not in untouched) if fake else None,
                   "note": None if fake else "real video"}
            jpeg = simplejpeg.encode_jpeg(crop(image, box, settings["margin"], face_size), quality=90,
                                          colorspace="RGB")
            blob += member(f"{row['crop_key']}.jpg", jpeg) + member(f"{row['crop_key']}.json",
                                                                     json.dumps(row).encode())
            rows.append(row)
            n += 1
        (shards / name).write_bytes(blob + b"\0" * 1024)
        entries.append({"name": name, "split": entry["split"], "label": entry["label"], "faces": n,
                        "bytes": len(blob) + 1024})
    faces = pd.DataFrame(rows)
    faces.to_parquet(manifests / "faces.parquet", index=False)
    counts: dict = {}
    for (split, label), n in faces.groupby(["split", "label"]).size().items():
        counts.setdefault(split, {})[label] = int(n)
    videos = set(pd.read_parquet(manifests / "frames.parquet", columns=["video_id"])["video_id"])
    dataset["faces"] = {"settings": settings, "frames_with_faces": int(faces["key"].nunique()),
                        "faces": int(len(faces)), "videos_without_faces": len(videos - set(faces["video_id"])),
                        "counts": counts, "shards": entries}
    (manifests / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return faces
