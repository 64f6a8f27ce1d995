"""bench-check: seconds per 10-s 1080p clip for `dfd check` on the CPU, frames and faces paths, split into decode,
detection, scoring and page; wall and CPU seconds (the machine is shared: CPU-s say what the work costs).

Runs the command's own functions (load_ensemble, check_video, write_page) over the real DFDC clips in
../shared/data/dfdc_sample (1920x1080, 10.02 s) with randomly initialised resnet-18 checkpoints (speed does not
depend on the weights) at the pipeline's default frame settings (1 fps, fit in 1280x720, -q:v 2):

  faces : the faces stage's default FaceSettings (MTCNN at 640 px, crops of 320 px), the model at 224x224;
  frames: the seed recipe's input (the whole frame at 1280x720).

Torch runs on --threads threads (default 2: the target is "under 15 s per clip on 2 cores, faces path, page
included"). CPU-s = this process's user+system time plus that of its ffmpeg children, per clip.

Usage: .venv/bin/python benchmarks/bench_check.py [--clips DIR] [--threads 2] [--paths faces,frames] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from pipeline.spec import FaceCrop  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.model import build_model  # noqa: E402
from train.report.verdict_page import write_page  # noqa: E402
from train.score.one_video import check_video  # noqa: E402
from train.score.checkpoints import load_ensemble  # noqa: E402
from train.score.on_batches import Scorer  # noqa: E402
from train.score.threshold import DEFAULT  # noqa: E402
from train.score.videos import face_cropper, find_videos, frame_settings  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "dfdc_sample"
FRAMES = {"fps": 1.0, "size": [1280, 720], "quality": 2, "timeout": 600}
PHASES = ("decode_s", "detect_s", "resize_s", "score_s", "page_s")


def make_checkpoint(folder: Path, input: str) -> Path:
    faces = FaceCrop() if input == "faces" else None
    config = TrainConfig.from_recipe("seed", input=input, shards="none", manifests="none", out=str(folder),
                                     weights="none", frames=FRAMES, faces=faces)
    torch.manual_seed(0)
    path = folder / f"{input}.pt"
    torch.save({"model": build_model("resnet18").state_dict(), "config": config.to_dict()}, path)
    return path


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(checkpoint: Path, paths: list[Path], out: Path) -> list[dict]:
    ensemble = load_ensemble([checkpoint], "cpu")
    config = ensemble.config
    settings, _ = frame_settings(ensemble.paths[0], config)
    cropper = face_cropper(config, ensemble.image_size, "cpu")
    scorer = Scorer(ensemble.models, ensemble.dev, config.batch_size)
    described = [{"name": str(checkpoint), "arch": config.arch, "input": config.input}]
    rows = []
    for path in paths:
        cpu, start = cpu_seconds(), time.perf_counter()
        verdict = check_video(path, scorer, settings, ensemble.image_size, cropper, dict(DEFAULT), config.aggregate)
        if verdict.error:
            raise SystemExit(f"{path}: {verdict.error}")
        write_page(verdict, path.name, out / f"{config.input}-{path.stem}.html", ensemble.models[0], described, {})
        rows.append({"clip": path.name, "input": config.input, "wall_s": time.perf_counter() - start,
                     "cpu_s": cpu_seconds() - cpu, "frames": len(verdict.seconds), "items": len(verdict.items),
                     **{k: verdict.timings.get(k, 0.0) for k in PHASES}})
    return rows


def report(rows: list[dict]) -> None:
    for input in dict.fromkeys(r["input"] for r in rows):
        mine = [r for r in rows if r["input"] == input]
        mean = {k: sum(r[k] for r in mine) / len(mine) for k in ("wall_s", "cpu_s", "items", *PHASES)}
        split = ", ".join(f"{k[:-2]} {mean[k]:.2f}" for k in PHASES if mean[k])
        print(f"{input:6s}: {mean['wall_s']:.2f} s per clip wall ({split}), {mean['cpu_s']:.2f} CPU-s per clip, "
              f"{mean['items']:.1f} {'faces' if input == 'faces' else 'frames'} scored per clip, {len(mine)} clips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS, help="Folder of videos (searched recursively).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 cores).")
    parser.add_argument("--paths", default="faces,frames", help="Which paths to measure, in order.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "check.json", help="The rows as JSON.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = find_videos([args.clips])
    if not paths:
        raise SystemExit(f"no clips in {args.clips}")
    print(f"{len(paths)} clips from {args.clips}; torch {torch.__version__} on {args.threads} threads, "
          f"{os.cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for input in args.paths.split(","):
            checkpoint = make_checkpoint(Path(tmp), input)
            measure(checkpoint, paths[:1], Path(tmp))  # warm-up: page cache, torch kernels, MTCNN weights
            rows += measure(checkpoint, paths, Path(tmp))
    report(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"rows: {args.out}")


if __name__ == "__main__":
    main()
