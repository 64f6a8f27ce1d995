"""`make measure-face-geometry`: what a landmark-geometry plausibility check would remove from MTCNN's detections on
every real clip in ../shared/data (issue 21 item 12: the confident false "face" in a blurred skyline).

Frames as `make shards` makes them (1 fps, 1280x720), the faces stage's detector with its default FaceSettings.
Per detection, from MTCNN's five landmarks (eyes, nose, mouth corners) in the frame of the eye line (roll removed):
eye distance / box width, nose and mouth-centre depth below the eye line / box height, mouth width / box width,
whether eyes < nose < mouth along that axis and whether the landmarks lie in the box (5% slack). Writes a CSV
and the box crops (to look at by eye) to --out, and prints what each rule would remove.
"""
from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import click
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.spec import FaceCrop  # noqa: E402
from pipeline.stages.faces import FaceDetector  # noqa: E402
from pipeline.stages.faces.crop import decode_jpeg  # noqa: E402
from pipeline.ffmpeg.extract import extract  # noqa: E402

log = logging.getLogger("measure_face_geometry")
DATA = ROOT.parent / "shared" / "data"


def geometry(box, landmarks) -> dict:
    """Roll-free landmark geometry of one detection, relative to its box."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left, right, nose, mouth_l, mouth_r = lm
    eyes = right - left
    dist = float(np.linalg.norm(eyes))
    u = eyes / max(dist, 1e-6)
    down = np.array([-u[1], u[0]])
    mid = (left + right) / 2
    nose_y, mouth_y = float((nose - mid) @ down), float(((mouth_l + mouth_r) / 2 - mid) @ down)
    slack_x, slack_y = 0.05 * w, 0.05 * h
    inside = bool(np.all((lm[:, 0] >= x0 - slack_x) & (lm[:, 0] <= x1 + slack_x)
                         & (lm[:, 1] >= y0 - slack_y) & (lm[:, 1] <= y1 + slack_y)))
    return {"eye_dist": dist / w, "nose_depth": nose_y / h, "mouth_depth": mouth_y / h,
            "mouth_width": float((mouth_r - mouth_l) @ u) / w, "ordered": 0 < nose_y < mouth_y, "inside": inside}


def clip_rows(path: Path, detector: FaceDetector, crops: Path) -> list[dict]:
    _, frames = extract(str(path), 1.0, (1280, 720), 2, 600)
    rows = []
    for t, frame in enumerate(frames):
        image = decode_jpeg(frame.jpeg)
        for k, face in enumerate(detector.detect([image])[0]):
            x0, y0, x1, y1 = (int(v) for v in face.box)
            name = f"{path.stem}_{t:03d}_{k}.jpg"
            cv2.imwrite(str(crops / name), cv2.cvtColor(image[max(0, y0):y1, max(0, x0):x1], cv2.COLOR_RGB2BGR))
            rows.append({"clip": path.name, "second": frame.second, "face": k, "score": round(face.score, 4),
                         "width": round(x1 - x0), "crop": name, **geometry(face.box, face.landmarks)})
    return rows


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("face-geometry"),
              show_default=True, help="Folder for geometry.csv and the crops.")
def main(out: Path):
    """Landmark geometry of every detection on the real clips, and what each rule would remove."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    crops = out / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    detector = FaceDetector(FaceCrop(), "cpu")
    rows = []
    for path in sorted(DATA.glob("dfdc_sample/*/*.mp4")) + sorted(DATA.glob("ffpp_sample/**/*.mp4")):
        rows += clip_rows(path, detector, crops)
        log.info("%s: %d detections", path.name, sum(r["clip"] == path.name for r in rows))
    with open(out / "geometry.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("%d detections on %d clips", len(rows), len({r["clip"] for r in rows}))
    for key in ("eye_dist", "nose_depth", "mouth_depth", "mouth_width"):
        v = np.array([r[key] for r in rows])
        log.info("%-11s min %.2f p5 %.2f median %.2f max %.2f", key, v.min(), *np.percentile(v, [5, 50]), v.max())
    for rule, bad in (("eyes < nose < mouth", lambda r: not r["ordered"]),
                      ("landmarks in the box", lambda r: not r["inside"]),
                      ("eye distance >= 0.3 box width", lambda r: r["eye_dist"] < 0.3)):
        removed = [r["crop"] for r in rows if bad(r)]
        log.info("rule %s removes %d: %s", rule, len(removed), ", ".join(removed) or "-")


if __name__ == "__main__":
    main()
