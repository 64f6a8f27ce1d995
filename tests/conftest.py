"""Shared fixtures: real H.264 clips made with ffmpeg's lavfi sources, and tiny real shards made by the pipeline."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pipeline.ffmpeg import find_ffmpeg  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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


def run_pipeline(videos: Path, out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["python", "-m", "pipeline.run", "--videos", str(videos), "--shards", str(out / "shards"),
           "--manifests", str(out / "manifests"), "--workers", "2", *args]
    import sys
    cmd[0] = sys.executable
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if check and proc.returncode != 0:
        raise AssertionError(f"pipeline failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """8 reals + 16 fakes, 3 s each at 160x90, through the real pipeline at 128x72: shards and manifests."""
    root = tmp_path_factory.mktemp("tiny")
    videos = make_dfdc_tree(root / "videos", n_real=8, fakes_per_real=2, seconds=3.0)
    run_pipeline(videos, root, "--size", "128x72", "--shard-size", "40KB")
    return {"videos": videos, "shards": root / "shards", "manifests": root / "manifests", "root": root}


@pytest.fixture(scope="session")
def tiny_shards(tiny_dataset) -> Path:
    """The shards folder of `tiny_dataset` (its manifests are in the sibling `manifests` folder)."""
    return tiny_dataset["shards"]
