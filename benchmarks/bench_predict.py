"""bench-predict: videos/s of train.predict on the CPU for 10 s 1080p DFDC clips, and the share spent decoding.

Scores the real clips in ../shared/data/dfdc_sample with a randomly initialised resnet-18 checkpoint (the speed
does not depend on the weights) under the pipeline's default frame settings (1 fps, fit in 1280x720, -q:v 2) and
the seed recipe's input size (1280x720, WIDTHxHEIGHT), through train.predict's own functions:

  1. serial (--workers 0): decode a video, then score it; decode share = decode time / wall time;
  2. pipelined (--workers N threads, one single-threaded ffmpeg each): decoding overlaps scoring.

Usage: .venv/bin/python benchmarks/bench_predict.py [--clips DIR] [--image-size 1280x720] [--workers 2] [--repeat 1]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from pipeline.ffmpeg import find_ffmpeg  # noqa: E402
from train.config import TrainConfig, load_recipe, parse_image_size  # noqa: E402
from train.model import build_model  # noqa: E402
from train.score.videos import find_videos, frame_settings, load_scorer, predict_videos  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "dfdc_sample"


def make_run(folder: Path, image_size: tuple[int, int], batch_size: int) -> Path:
    """A run folder with a random resnet-18 checkpoint and the pipeline's default frame settings."""
    (folder / "checkpoints").mkdir(parents=True)
    recipe = dataclasses.replace(load_recipe("seed"), batch_size=batch_size, image_size=tuple(image_size))
    config = TrainConfig(shards=str(folder / "none"), manifests=str(folder / "none"), out=str(folder),
                         recipe=recipe, arch="resnet18", weights="none").to_dict()  # what train.run saves
    torch.manual_seed(0)
    ckpt = folder / "checkpoints" / "best.pt"
    torch.save({"model": build_model("resnet18").state_dict(), "config": config}, ckpt)
    (folder / "pipeline.json").write_text(json.dumps({"config": {"fps": 1.0, "size": [1280, 720], "quality": 2}}))
    return ckpt


def measure(ckpt: Path, paths: list[Path], workers: int, batch_size: int) -> dict:
    scorer, config = load_scorer(ckpt, "cpu", batch_size)
    settings = frame_settings(ckpt, config)
    frames, stats = predict_videos(scorer, paths, settings, config.image_size, workers, progress=False)
    if stats["failed"]:
        raise SystemExit(f"{stats['failed']} clips failed to decode: {frames['error'].dropna().tolist()}")
    stats["frames"] = int(frames["p_fake"].notna().sum())
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS, help="Folder of videos (searched recursively).")
    parser.add_argument("--image-size", default="1280x720", help="Model input WIDTHxHEIGHT (seed recipe: 1280x720).")
    parser.add_argument("--workers", type=int, default=2, help="Decode threads in the pipelined run.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="Score the clip list this many times.")
    args = parser.parse_args()
    paths = find_videos([args.clips]) * args.repeat
    if not paths:
        raise SystemExit(f"no clips in {args.clips}")
    size = parse_image_size(args.image_size, "--image-size")
    print(f"{len(paths)} videos from {args.clips}; ffmpeg {find_ffmpeg()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs; model input {size[0]}x{size[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_run(Path(tmp) / "run", size, args.batch_size)
        measure(ckpt, paths[:1], 0, args.batch_size)  # warm-up: page cache, torch kernels
        start = time.perf_counter()
        serial = measure(ckpt, paths, 0, args.batch_size)
        piped = measure(ckpt, paths, args.workers, args.batch_size)
        total = time.perf_counter() - start
    n = len(paths)
    print(f"serial    : {n / serial['wall_s']:.3f} videos/s ({serial['wall_s'] / n:.2f} s/video, "
          f"{serial['frames'] / n:.1f} frames/video): decode {serial['decode_s'] / n:.2f} s/video, "
          f"model {serial['model_s'] / n:.2f} s/video")
    print(f"decode share of the time (serial): {serial['decode_s'] / serial['wall_s']:.1%}")
    print(f"pipelined : {n / piped['wall_s']:.3f} videos/s ({piped['wall_s'] / n:.2f} s/video) with {args.workers} "
          f"decode threads; decode {piped['decode_s'] / n:.2f} s/video of thread time, model "
          f"{piped['model_s'] / n:.2f} s/video")
    print(f"videos/s of train.predict: {n / piped['wall_s']:.3f} (pipelined), {n / serial['wall_s']:.3f} (serial); "
          f"decode share {serial['decode_s'] / serial['wall_s']:.1%}; benchmark took {total:.0f} s")


if __name__ == "__main__":
    main()
