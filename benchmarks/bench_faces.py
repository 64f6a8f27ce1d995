"""`make bench-faces`: the faces stage's CPU per 1080p DFDC clip against the ffmpeg decode floor, in one run.

Clips: the real DFDC clips in ../shared/data (1920x1080, 10 s), optionally `--copies` times (symlinks, so the
frames repeat but every stage cost is paid again). Once, untimed: `pipeline.run` makes their frame shards (1 fps,
1280x720, as `make shards`). Then, alternately R times:

  floor: `ffmpeg -threads 1 -i CLIP -map 0:v -f null -` per clip (bench_shards' code), CPU from wait4;
  faces: `python -m pipeline.faces --device cpu --workers W` on a fresh copy of the frame shards (no faces
         output, no detections cache), CPU of the whole process tree from wait4, and the workers' own CPU per
         shard (`cpu_seconds` in faces_parts/*.done.json: reading, decoding, detecting, cropping, diff, writing;
         without the interpreter start and model load, which a long run pays once per worker).

Reports medians: CPU-s per clip for both, their ratio, faces per CPU-second, wall faces/s with W workers, and the
projected hours for 119,154 DFDC clips on 16 cores. The GPU path (`--device cuda`) is not measured here.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_shards import REAL_PART, _floor_one, dfdc_tree, load_average, median  # noqa: E402
from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402

log = logging.getLogger("bench_faces")
DFDC_CLIPS = 119_154
TARGET_CORES = 16


def clip_set(copies: int) -> list[tuple[str, Path, dict]]:
    meta = json.loads((REAL_PART / "metadata.json").read_text())
    real = [(name, REAL_PART / name, entry) for name, entry in sorted(meta.items()) if (REAL_PART / name).is_file()]
    clips = []
    for c in range(copies):
        for name, src, entry in real:
            clips.append((name if c == 0 else f"c{c}{name}", src, {**entry, "original": None}
                          if c and entry.get("original") else entry))
    return clips


def make_frames(videos: Path, work: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.run", "--videos", str(videos), "--shards", str(work / "shards"),
           "--manifests", str(work / "manifests"), "--workers", str(os.cpu_count() or 1)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise click.ClickException(f"pipeline.run failed: {proc.stderr[-2000:]}")
    return work


def run_faces(frames: Path, work: Path, workers: int, extra: list[str]) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(frames / "shards", work / "shards")
    shutil.copytree(frames / "manifests", work / "manifests")
    cmd = [sys.executable, "-m", "pipeline.faces", "--shards", str(work / "shards"), "--manifests",
           str(work / "manifests"), "--device", "cpu", "--workers", str(workers), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    # communicate() reaped the child: its rusage (and its workers') is in RUSAGE_CHILDREN; take the difference.
    (work / "faces.log").write_text(err)
    if proc.returncode != 0:
        raise click.ClickException(f"pipeline.faces failed ({proc.returncode}):\n{err[-2000:]}")
    done = [json.loads(p.read_text()) for p in (work / "manifests" / "faces_parts").glob("*.done.json")]
    section = json.loads((work / "manifests" / "dataset.json").read_text())["faces"]
    return {"wall": wall, "worker_cpu": sum(d["cpu_seconds"] for d in done), "faces": section["faces"],
            "frames": section["frames"], "frames_with_faces": section["frames_with_faces"],
            "videos": section["videos"]}


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--copies", default=1, type=int, help="Times the real DFDC clips are used (symlinks).")
@click.option("--workers", default=os.cpu_count() or 1, type=int, help="Faces stage workers.")
@click.option("--repeats", default=2, type=int, help="Alternating floor/faces runs; medians are reported.")
@click.option("--out", default="bench-out/faces", type=click.Path(file_okay=False, path_type=Path))
@click.option("--faces-args", default="", help="Extra pipeline.faces options, e.g. '--detect-size 480'.")
def main(copies: int, workers: int, repeats: int, out: Path, faces_args: str) -> None:
    """Faces stage CPU-seconds per 1080p clip against the single-thread ffmpeg decode floor."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if not REAL_PART.is_dir():
        raise click.ClickException(f"{REAL_PART}: the real DFDC clips are needed")
    ffmpeg = find_ffmpeg()
    clips = clip_set(copies)
    videos = dfdc_tree(out / "videos", clips)
    log.info("%d clips; making their frame shards once (pipeline.run, 1 fps, 1280x720)", len(clips))
    frames = make_frames(videos, out / "frames")
    floors, faces = [], []
    for r in range(repeats):
        floor = sum(_floor_one(ffmpeg, src) for _, src, _ in clips)
        floors.append(floor)
        before = children_cpu()
        result = run_faces(frames, out / "run", workers, faces_args.split())
        result["cpu"] = children_cpu() - before
        faces.append(result)
        log.info("repeat %d: floor %.2f CPU-s, faces %.2f CPU-s (workers %.2f), %.1f s wall, %d faces", r + 1,
                 floor, result["cpu"], result["worker_cpu"], result["wall"], result["faces"])
    n = len(clips)
    floor_clip = median(floors) / n
    total_clip = median([f["cpu"] for f in faces]) / n
    worker_clip = median([f["worker_cpu"] for f in faces]) / n
    last = faces[-1]
    report = {
        "machine": f"{os.cpu_count()} cores, load average {load_average()}", "clips": n, "workers": workers,
        "frames": last["frames"], "frames_with_faces": last["frames_with_faces"], "faces": last["faces"],
        "floor_cpu_per_clip": round(floor_clip, 3),
        "faces_cpu_per_clip_steady": round(worker_clip, 3),
        "faces_cpu_per_clip_whole_process": round(total_clip, 3),
        "faces_cpu_per_frame": round(median([f["worker_cpu"] for f in faces]) / max(1, last["frames"]), 3),
        "ratio_faces_to_floor": round(worker_clip / floor_clip, 2),
        "faces_per_cpu_second": round(last["faces"] / max(1e-9, median([f["worker_cpu"] for f in faces])), 2),
        "faces_per_second_wall": round(last["faces"] / median([f["wall"] for f in faces]), 2),
        "projected_hours_16_cores": {"faces": round(DFDC_CLIPS * worker_clip / TARGET_CORES / 3600, 1),
                                     "decode_floor": round(DFDC_CLIPS * floor_clip / TARGET_CORES / 3600, 1)},
        "gpu": "not measured by this benchmark (pipeline.faces --device cuda batches 8 videos per MTCNN call)",
    }
    (out / "bench_faces.json").write_text(json.dumps(report, indent=2))
    width = max(map(len, report))
    for k, v in report.items():
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
