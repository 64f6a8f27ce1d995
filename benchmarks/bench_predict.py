"""bench-predict: videos/s of train.predict on 10 s 1080p DFDC clips, frames and faces, and where the time goes.

Scores the real clips in ../shared/data/dfdc_sample with randomly initialised checkpoints (the speed does not
depend on the weights) under the pipeline's default frame settings (pipeline.config.PipelineConfig: 1 fps, fit in
1280x720, -q:v 2, non-reference frames skipped), through train.predict's own functions:

  frames: a resnet-18 on whole frames at the seed recipe's input size (1280x720);
  faces:  the faces stage's MTCNN detector, tracker and crop (train.score.face_crops.FaceCropper, the faces stage's
          default settings), then a resnet-18 on each face crop at 224x224 (FACE_IMAGE_SIZE; --face-arch
          efficientnet_b4 --face-size 380 for the usual DFDC model);

each twice: serial (--workers 0: decode a video, then detect and score it) and pipelined (--workers N threads, one
single-threaded ffmpeg each, decoding the next videos while torch detects and scores on its own threads). Prints
videos/s, the split into decode, detection (detect + track + crop) and scoring per video, and the projected hours
for DFDC's 5,000-clip public test set and for 4,000 clips against Kaggle's 9-hour limit, at the pipelined rate of
this machine (say which: `nproc` is printed). --device cuda runs detection and scoring on the GPU (not batched
across videos: each video's frames are one MTCNN batch).

Usage: .venv/bin/python benchmarks/bench_predict.py [--paths frames,faces] [--workers 2] [--repeat 1] [--device cpu]
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

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.spec import FaceCrop  # noqa: E402
from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402
from train.config import FACE_IMAGE_SIZE, TrainConfig, load_recipe, parse_image_size  # noqa: E402
from train.model import build_model  # noqa: E402
from train.score.face_crops import FaceCropper  # noqa: E402
from train.score.videos import find_videos, frame_settings, load_scorer, predict_videos  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "dfdc_sample"
KAGGLE_HOURS = 9.0                       # DFDC's scoring limit for the private test set, one GPU
PROJECT = (("DFDC public test set", 5000), ("4,000 clips", 4000))


def make_run(folder: Path, arch: str, image_size: tuple[int, int], batch_size: int, faces: bool) -> Path:
    """A run folder with a random checkpoint and the pipeline's default frame settings (faces: the faces stage's
    default settings, as a faces run records them)."""
    (folder / "checkpoints").mkdir(parents=True)
    recipe = dataclasses.replace(load_recipe("seed"), batch_size=batch_size, image_size=tuple(image_size))
    frames = PipelineConfig(videos=str(folder)).frame_sampling()
    config = TrainConfig(shards=str(folder / "none"), manifests=str(folder / "none"), out=str(folder),
                         recipe=recipe, arch=arch, weights="none", input="faces" if faces else "frames",
                         frames=frames, faces=FaceCrop() if faces else None).to_dict()
    torch.manual_seed(0)
    ckpt = folder / "checkpoints" / "best.pt"
    torch.save({"model": build_model(arch).state_dict(), "config": config}, ckpt)
    return ckpt


def measure(ckpt: Path, paths: list[Path], workers: int, batch_size: int, device: str) -> dict:
    """train.predict's predict_videos on the clips; its timings per video (decode is thread time when pipelined)."""
    scorer, config = load_scorer(ckpt, device, batch_size)
    settings, _ = frame_settings(ckpt, config)
    cropper = FaceCropper(config.faces, config.image_size, device) if config.input == "faces" else None
    rows, stats = predict_videos(scorer, paths, settings, config.image_size, workers, progress=False, cropper=cropper)
    if stats["failed"]:
        raise SystemExit(f"{stats['failed']} clips failed to decode: {rows['error'].dropna().tolist()}")
    n = len(paths)
    return {"videos": n, "workers": workers, "videos_per_s": n / stats["wall_s"], "s_per_video": stats["wall_s"] / n,
            "decode_s_per_video": stats["decode_s"] / n, "detect_s_per_video": stats.get("faces_s", 0.0) / n,
            "score_s_per_video": stats["model_s"] / n, "items_per_video": int(rows["p_fake"].notna().sum()) / n,
            "no_face": stats.get("no_face", 0), "skip_frames": settings.skip_frames}


def run_path(name: str, ckpt: Path, paths: list[Path], args) -> dict:
    measure(ckpt, paths[:1], 0, args.batch_size, args.device)  # warm-up: page cache, torch kernels, MTCNN
    serial = measure(ckpt, paths, 0, args.batch_size, args.device)
    piped = measure(ckpt, paths, args.workers, args.batch_size, args.device)
    hours = {label: n / piped["videos_per_s"] / 3600 for label, n in PROJECT}
    return {"path": name, "serial": serial, "pipelined": piped, "projected_hours": hours}


def print_result(r: dict, cpus: int, device: str) -> None:
    item = "faces" if r["path"].startswith("faces") else "frames"
    for mode in ("serial", "pipelined"):
        m = r[mode]
        print(f"{r['path']:<22} {mode:<9}: {m['videos_per_s']:.3f} videos/s ({m['s_per_video']:.2f} s/video, "
              f"{m['items_per_video']:.1f} {item}/video, {m['workers']} decode threads): decode "
              f"{m['decode_s_per_video']:.2f}, detection {m['detect_s_per_video']:.2f}, scoring "
              f"{m['score_s_per_video']:.2f} s/video")
    where = f"{cpus}-core CPU" if device == "cpu" else f"{device} (+ {cpus} CPU cores)"
    for label, h in r["projected_hours"].items():
        print(f"{r['path']:<22} projected: {h:.1f} h for {label} on this {where} "
              f"({'within' if h <= KAGGLE_HOURS else 'over'} Kaggle's {KAGGLE_HOURS:g} h)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS, help="Folder of videos (searched recursively).")
    parser.add_argument("--paths", default="frames,faces", help="Which of frames,faces to measure.")
    parser.add_argument("--image-size", default="1280x720", help="Frames model input WIDTHxHEIGHT (seed recipe).")
    parser.add_argument("--face-size", type=int, default=FACE_IMAGE_SIZE, help="Faces model input (square).")
    parser.add_argument("--face-arch", default="resnet18", help="Faces model (e.g. efficientnet_b4 with 380).")
    parser.add_argument("--workers", type=int, default=2, help="Decode threads in the pipelined runs.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="Score the clip list this many times.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where detection and scoring run.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "bench_predict.json")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    paths = find_videos([args.clips]) * args.repeat
    if not paths:
        raise SystemExit(f"no clips in {args.clips}")
    size = parse_image_size(args.image_size, "--image-size")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(paths)} videos from {args.clips}; ffmpeg {find_ffmpeg()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {cpus} CPUs; device {args.device}; frames input {size[1]}x{size[0]}, "
          f"faces input {args.face_size} ({args.face_arch})")
    results, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.paths.split(","):
            faces = name.strip() == "faces"
            arch, image = (args.face_arch, (args.face_size, args.face_size)) if faces else ("resnet18", size)
            ckpt = make_run(Path(tmp) / name, arch, image, args.batch_size, faces)
            results.append(run_path(f"{name.strip()} {arch}@{image[0]}", ckpt, paths, args))
            print_result(results[-1], cpus, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"clips": len(paths), "cpus": cpus, "device": args.device, "results": results,
                                    "kaggle_hours": KAGGLE_HOURS}, indent=2))
    print(f"benchmark took {time.perf_counter() - start:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
