"""Real H.264 clips made with ffmpeg's lavfi sources, DFDC-shaped folders of them, and the boxes drawn into fakes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pipeline.ffmpeg.locate import find_ffmpeg

SOURCES = ["testsrc2", "mandelbrot", "smptehdbars", "rgbtestsrc", "testsrc", "yuvtestsrc", "pal100bars", "cellauto"]


def make_clip(path: Path, size=(160, 90), seconds: float = 2.0, rate="25", audio: bool = False,
              source: str = "testsrc2", box: bool = False, extra: list[str] | None = None) -> Path:
    """An H.264 clip from a lavfi source; `box` draws a filled rectangle (a crude 'manipulation')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    src = f"{source}=size={w}x{h}:rate={rate}" if source != "cellauto" else f"cellauto=size={w}x{h}:rate={rate}"
    vf = ["format=yuv420p"]
    if box:
        vf.insert(0, f"drawbox=x={w // 4}:y={h // 4}:w={w // 3}:h={h // 3}:color=red@0.8:t=fill")
    cmd = [find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", src]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd += ["-t", str(seconds), "-vf", ",".join(vf), "-c:v", "libx264", "-preset", "ultrafast"]
    cmd += ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    cmd += (extra or []) + [str(path)]
    subprocess.run(cmd, check=True)
    return path


def make_dfdc_tree(root: Path, n_real: int = 8, fakes_per_real: int = 2, seconds: float = 2.0,
                   size=(160, 90), part: str = "dfdc_train_part_0") -> Path:
    """A DFDC-shaped part folder: reals from varied sources, fakes of each with a box drawn in."""
    folder = root / part
    meta = {}
    for i in range(n_real):
        real = f"real{part[-1]}{i:03d}"
        make_clip(folder / f"{real}.mp4", size, seconds, source=SOURCES[i % len(SOURCES)])
        meta[f"{real}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        for j in range(fakes_per_real):
            fake = f"fake{part[-1]}{i:03d}x{j}"
            make_clip(folder / f"{fake}.mp4", size, seconds, source=SOURCES[i % len(SOURCES)], box=True)
            meta[f"{fake}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{real}.mp4"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return root


# make_clip(box=True) draws each fake's "manipulation" at x = w/4 .. w/4 + w/3, y = h/4 .. h/4 + h/3
TINY_BOX = [0.25, 0.25, 0.25 + 1 / 3, 0.25 + 1 / 3]


def write_tiny_boxes(tiny_dataset: dict, path: Path) -> Path:
    """boxes.json in the demo generator's format (file name -> boxes per second) for the fixture's fakes."""
    import pandas as pd

    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    fakes = videos[videos["label"] == "fake"]
    boxes = {Path(p).name: [TINY_BOX] * 3 for p in fakes["path"]}
    path.write_text(json.dumps(boxes))
    return path
