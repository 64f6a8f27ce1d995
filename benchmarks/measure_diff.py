"""`make measure-diff`: how well the faces stage's `diff` separates manipulated faces from untouched pixels, per
manipulation method, on the FF++ pairs in ../shared/data (frame shards and faces made here with the real stage).

For every fake face compared with its original (the stage's own alignment), three measures of the same box:
  whole  the stage's measure: 1 - mean SSIM of the blurred 96 px grey box (pipeline.stages.faces.diff.box_diff);
  local  the 90th percentile of the 1 - SSIM map of that box (where a reenactment changes a part of the face);
  mouth  the whole measure on the box around the mouth corners and the nose tip (from MTCNN's landmarks).
Background: the same measures on boxes of the face's size moved off the face (left and right of it, clipped to
the frame, skipped where they overlap the face), which neither method changes; their share at or above a
threshold is the false-positive rate. Prints, per method and measure, the median, 10th percentile and share at or
above each threshold, and the background's.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.dataset import MemberReader  # noqa: E402
from pipeline.stages.faces.crop import decode_jpeg  # noqa: E402
from pipeline.stages.faces.diff import BLUR, PATCH, _grey, align, box_diff  # noqa: E402

log = logging.getLogger("measure_diff")
FFPP = ROOT.parent / "shared" / "data" / "ffpp_sample"
THRESHOLDS = (0.02, 0.03, 0.04, 0.05)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    saa, sbb, sab = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))


def _patch(grey, box):
    h, w = grey.shape
    x0, y0, x1, y1 = max(0, int(box[0])), max(0, int(box[1])), min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return cv2.GaussianBlur(cv2.resize(grey[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA), (0, 0), BLUR)


def measures(fake, orig, box, landmarks) -> dict:
    out = {"whole": box_diff(fake, orig, box)}
    a, b = _patch(_grey(fake), box), _patch(_grey(orig), box)
    out["local"] = None if a is None else float(np.percentile(1 - ssim_map(a, b), 90))
    if landmarks is not None:
        pts = np.asarray(landmarks).reshape(-1, 2)
        nose, mouth = pts[2], pts[3:5]
        half = max(8.0, 0.6 * abs(mouth[1, 0] - mouth[0, 0]))
        x0, x1 = min(mouth[:, 0].min(), nose[0]) - half / 2, max(mouth[:, 0].max(), nose[0]) + half / 2
        y0, y1 = nose[1] - half / 2, mouth[:, 1].max() + half
        out["mouth"] = box_diff(fake, orig, (x0, y0, x1, y1))
    else:
        out["mouth"] = None
    return out


def background_boxes(box, w, h):
    x0, y0, x1, y1 = box
    bw = x1 - x0
    for dx in (-1.5 * bw, 1.5 * bw):
        b = (x0 + dx, y0, x1 + dx, y1)
        if b[0] >= 0 and b[2] <= w:
            yield b, dx


def summary(values, name):
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return f"{name}: none"
    shares = " ".join(f">={t:.2f}: {np.mean(v >= t):.0%}" for t in THRESHOLDS)
    return f"{name}: n={len(v)} median {np.median(v):.3f} p10 {np.percentile(v, 10):.3f} p90 {np.percentile(v, 90):.3f} | {shares}"


@click.command()
@click.option("--fps", default=2.0, show_default=True, help="Frames per second sampled from the FF++ clips.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None)
def main(fps, work):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(tempfile.mkdtemp(prefix="measure-diff-")) if work is None else work
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not (work / "manifests" / "faces.parquet").is_file():
        for module, args in (("pipeline.run", ["--videos", str(FFPP), "--fps", str(fps), "--workers", "2"]),
                             ("pipeline.faces", ["--device", "cpu", "--workers", "2"])):
            subprocess.run([sys.executable, "-m", module, "--shards", str(work / "shards"), "--manifests",
                            str(work / "manifests"), *args], check=True, capture_output=True, cwd=ROOT, env=env)
    faces = pq.read_table(work / "manifests" / "faces.parquet").to_pylist()
    frames = {f["key"]: f for f in pq.read_table(work / "manifests" / "frames.parquet").to_pylist()}
    videos = {v["video_id"]: v for v in pq.read_table(work / "manifests" / "videos.parquet").to_pylist()}
    by_second = {(f["video_id"], round(f["second"], 3)): f for f in frames.values()}
    results: dict[str, dict[str, list]] = {}
    with MemberReader(work / "shards") as reader:
        for r in faces:
            v = videos[r["video_id"]]
            if v["label"] != "fake" or r["face"] != 0:
                continue
            f = frames[r["key"]]
            o = by_second.get((v["original"], round(f["second"], 3)))
            if o is None:
                continue
            fake = decode_jpeg(reader.jpeg(f["shard"], f["offset"]))
            orig, _ = align(fake, decode_jpeg(reader.jpeg(o["shard"], o["offset"])))
            if orig is None:
                continue
            method = v["source"].split("/")[-1]
            box = (r["x0"], r["y0"], r["x1"], r["y1"])
            for name, value in measures(fake, orig, box, r["landmarks"]).items():
                results.setdefault(method, {}).setdefault(name, []).append(value)
            h, w = fake.shape[:2]
            for b, dx in background_boxes(box, w, h):
                lm = None if r["landmarks"] is None else (np.asarray(r["landmarks"]).reshape(-1, 2) + [dx, 0])
                m = measures(fake, orig, b, lm)
                for name in ("whole", "local", "mouth"):
                    results.setdefault("background", {}).setdefault(name, []).append(m[name])
    for method, by_measure in sorted(results.items()):
        for name, values in by_measure.items():
            log.info("%-14s %s", method, summary(values, name))
    (work / "measure_diff.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
