"""`make bench-faces-memory`: the faces stage's (or, with --mode predict, predict's with a faces model) peak memory
against the clip's length, this code and a reference commit side by side in one run.

Clips: a real 1080p DFDC clip from ../shared/data looped with `ffmpeg -stream_loop` (stream copy: real faces,
any length) to each of --seconds. Once, untimed: `pipeline.run` makes their frame shards (1 fps, 1280x720, as
`make shards`), one dataset per length. Then for each length, for the reference commit (extracted with
`git archive`) and for this checkout: `python -m pipeline.faces --device cpu --workers 1` (in-process: the
orchestrator is the worker) on a fresh copy of the frame shards, its peak RSS from wait4 (ru_maxrss).

--mode predict: no frame shards; `python -m train.predict --workers 0 --device cpu` on the looped clip with an
untrained resnet18 faces checkpoint (224 px input, the faces stage's default FaceSettings, frames at 1 fps 1280x720
as `make shards`), written once by this checkout and read by both; peak RSS from wait4 likewise.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402

log = logging.getLogger("bench_faces_memory")
CLIP = ROOT.parent / "shared" / "data" / "dfdc_sample" / "dfdc_train_part_0" / "abofeumbvv.mp4"


def long_clip(src: Path, seconds: int, out: Path) -> Path:
    """`src` looped to `seconds` by stream copy, as an unlabelled folder of one video."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"long{seconds:04d}.mp4"
    subprocess.run([find_ffmpeg(), "-y", "-v", "error", "-stream_loop", "-1", "-i", str(src), "-t", str(seconds),
                    "-map", "0:v", "-c", "copy", str(path)], check=True)
    return out


def run_peak(cmd: list[str], cwd: Path) -> tuple[int, float]:
    """(exit code, peak RSS in GB) of one process, from wait4."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd[:3])} failed: {err[-2000:]}")
    return proc.returncode, usage.ru_maxrss / 2**20  # KiB -> GiB


def checkout(commit: str, where: Path) -> Path:
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def faces_checkpoint(path: Path) -> Path:
    """An untrained faces checkpoint of this trainer's format (what it learnt does not matter for memory)."""
    import torch

    from pipeline.spec import FaceCrop
    from train.config import TrainConfig
    from train.model import build_model

    config = TrainConfig.from_recipe("seed", image_size="224", input="faces", shards="none", manifests="none",
                                     out=str(path.parent), weights="none",
                                     frames={"fps": 1.0, "size": [1280, 720], "quality": 2, "timeout": 600},
                                     faces=FaceCrop())
    torch.manual_seed(0)
    torch.save({"model": build_model(config.arch).state_dict(), "config": config.to_dict()}, path)
    return path


def faces_peaks(codes: dict, seconds: int, videos: Path, tmp: Path) -> dict:
    frames = tmp / f"frames{seconds}"
    subprocess.run([sys.executable, "-m", "pipeline.run", "--videos", str(videos), "--shards",
                    str(frames / "shards"), "--manifests", str(frames / "manifests"), "--workers", "1"],
                   check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peaks = {}
    for name, code in codes.items():
        out = tmp / f"{name}{seconds}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(frames, out)
        _, peaks[name] = run_peak([sys.executable, "-m", "pipeline.faces", "--shards", str(out / "shards"),
                                   "--manifests", str(out / "manifests"), "--device", "cpu", "--workers", "1"], code)
    return peaks


def predict_peaks(codes: dict, seconds: int, videos: Path, tmp: Path) -> dict:
    checkpoint = tmp / "model" / "faces.pt"
    if not checkpoint.is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        faces_checkpoint(checkpoint)
    peaks = {}
    for name, code in codes.items():
        _, peaks[name] = run_peak([sys.executable, "-m", "train.predict", str(videos), "--checkpoint",
                                   str(checkpoint), "--out", str(tmp / f"{name}{seconds}.csv"), "--workers", "0",
                                   "--device", "cpu"], code)
    return peaks


@click.command()
@click.option("--seconds", "lengths", multiple=True, type=int, default=(10, 60, 120), show_default=True,
              help="Clip lengths (repeat the option).")
@click.option("--ref", default="main", show_default=True, help="The commit compared with this checkout.")
@click.option("--mode", type=click.Choice(["faces", "predict"]), default="faces", show_default=True,
              help="faces: the faces stage on frame shards; predict: train.predict with a faces checkpoint.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work folder (default: a temporary one, removed at the end).")
def main(lengths, ref, mode, work):
    """Peak RSS of the faces stage (1 worker, CPU) or of predict with a faces model, per clip length, REF against
    this checkout."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="bench-faces-memory-")) if work is None else work
    try:
        codes = {"ref": checkout(ref, tmp / "ref-code"), "this": ROOT}
        rows = []
        for seconds in lengths:
            videos = long_clip(CLIP, seconds, tmp / f"videos{seconds}")
            peaks = (faces_peaks if mode == "faces" else predict_peaks)(codes, seconds, videos, tmp)
            rows.append((seconds, peaks["ref"], peaks["this"]))
            log.info("%4d s clip (%s): peak RSS %.2f GB (%s) -> %.2f GB (this checkout)", seconds, mode,
                     peaks["ref"], ref, peaks["this"])
        log.info("| clip (%s) | %s peak RSS | this checkout | ratio |\n|---|---|---|---|", mode, ref)
        for seconds, a, b in rows:
            log.info("| %d s | %.2f GB | %.2f GB | %.2f |", seconds, a, b, b / a)
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
