"""Trainer benchmarks: (a) loader images/s per worker against an ImageFolder + PIL baseline, (b) CPU step time.

    python benchmarks/bench_train.py [--videos DIR | --shards DIR --manifests DIR] [--n 96] [--out bench-out/train]

Frames: 720p JPEGs (ffmpeg, -q:v 2 as the pipeline writes them) from the mp4s under --videos (e.g. the DFDC
sample), else from ffmpeg's lavfi sources (testsrc2 + mandelbrot). They are written both as a shard with a
dataset.json (the trainer's path) and as an ImageFolder tree (the baseline's path). Each loader runs in this one
process (workers=0, OpenCV and torch on one thread), so images/s is per worker (per core); CPU seconds are
reported too, since a shared machine's wall clock lies.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

from train.augment import decode_resized, to_chw, train_transform  # noqa: E402
from train.config import AUGMENTS, Augment  # noqa: E402
from train.data import TrainStream, load_manifest, make_loader  # noqa: E402
from train.model import build_model  # noqa: E402
from train.run import make_optimizer  # noqa: E402

ALL_ON = Augment(**{name: 1.0 for name in AUGMENTS})  # every augmentation on every image: the worst case


def extract_frames(out: Path, videos: Path | None, n: int) -> list[Path]:
    """n 720p JPEGs at 1 fps from the mp4s under `videos`, or from lavfi sources."""
    out.mkdir(parents=True, exist_ok=True)
    scale = "fps=1,scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2"
    inputs = (sorted(videos.rglob("*.mp4")) if videos else
              ["lavfi:testsrc2=size=1280x720:rate=25", "lavfi:mandelbrot=size=1280x720:rate=25"])
    per = -(-n // len(inputs))
    for i, src in enumerate(inputs):
        args = ["-f", "lavfi", "-i", src[6:]] if str(src).startswith("lavfi:") else ["-i", str(src)]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-t", str(per), "-vf", scale, "-q:v", "2",
                        "-frames:v", str(per), str(out / f"v{i:03d}_%04d.jpg")], check=True)
    frames = sorted(out.glob("*.jpg"))
    return (frames * (-(-n // max(len(frames), 1))))[:n]


def write_shard_and_folder(frames: list[Path], root: Path) -> tuple[Path, Path, Path]:
    """The same JPEGs as a train shard (+ a val shard and dataset.json) and as an ImageFolder tree."""
    shards, manifests, folder = root / "shards", root / "manifests", root / "imagefolder"
    for d in (shards, manifests, folder / "real", folder / "fake"):
        d.mkdir(parents=True, exist_ok=True)
    entries = []
    for split in ("train", "val"):
        for label in ("real", "fake"):
            name = f"{split}-{label}-000000.tar"
            chosen = frames[::2] if label == "real" else frames[1::2]
            with tarfile.open(shards / name, "w", format=tarfile.USTAR_FORMAT) as tar:
                for i, path in enumerate(chosen):
                    key = f"{label}{i:04d}_0000"
                    meta = json.dumps({"key": key, "video_id": f"{label}{i:04d}", "label": label}).encode()
                    for suffix, data in ((".jpg", path.read_bytes()), (".json", meta)):
                        info = tarfile.TarInfo(key + suffix)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    if split == "train":
                        shutil.copy(path, folder / label / f"{key}.jpg")
            entries.append({"name": name, "split": split, "label": label, "frames": len(chosen)})
    counts = {s: {"real": len(frames[::2]), "fake": len(frames[1::2])} for s in ("train", "val")}
    (manifests / "dataset.json").write_text(json.dumps({"version": 1, "frames": counts, "shards": entries,
                                                        "class_weights": {"real": 1.0, "fake": 1.0}}))
    return shards, manifests, folder


def timed(fn, n_images: int) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images": n_images, "wall_s": wall, "cpu_s": cpu, "img_per_s": n_images / wall,
            "img_per_cpu_s": n_images / cpu}


def ours(shards: Path, manifests: Path, size: tuple[int, int], n: int, batch: int = 16) -> dict:
    """The trainer's own TrainStream (decode small, resize, ten augmentations, mix), one process."""
    manifest = load_manifest(shards, manifests)
    n_batches = max(1, n // batch)
    stream = TrainStream(manifest, size, ALL_ON, batch, n_batches, "mix", shuffle_buffer=64, seed=0)
    return timed(lambda: [b for b in make_loader(stream, 0)], n_batches * batch)


class FullFrameAugment:
    """The baseline transform: PIL image -> array -> the same ten augmentations at full size -> resize."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.aug = train_transform((720, 1280), ALL_ON, seed=0)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = self.aug(image=np.asarray(image.convert("RGB")))["image"]
        if array.shape[:2] != self.size:
            array = cv2.resize(array, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return to_chw(array)


def baseline(folder: Path, size: tuple[int, int], n: int, batch: int = 16) -> dict:
    """torchvision ImageFolder + PIL, augmenting full frames, DataLoader with workers=0."""
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=FullFrameAugment(size))
    n = min(n, len(dataset))
    subset = torch.utils.data.Subset(dataset, list(range(n)))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch, shuffle=True, num_workers=0)
    return timed(lambda: [b for b in loader], n)


def components(frames: list[Path], n: int = 32) -> dict:
    """Milliseconds per image of each step, on the first n frames."""
    data = [p.read_bytes() for p in frames[:n]]
    result = {}
    import simplejpeg
    t = time.process_time()
    full = [simplejpeg.decode_jpeg(d) for d in data]
    result["decode_full_ms"] = (time.process_time() - t) / n * 1e3
    t = time.process_time()
    small = [decode_resized(d, (224, 224)) for d in data]
    result["decode_small+resize_224_ms"] = (time.process_time() - t) / n * 1e3
    for name, images, size in (("augment_224_ms", small, (224, 224)), ("augment_720p_ms", full, (720, 1280))):
        aug = train_transform(size, ALL_ON, seed=0)
        t = time.process_time()
        for image in images:
            aug(image=image)
        result[name] = (time.process_time() - t) / n * 1e3
    return result


def step_time(size: int = 64, batch: int = 32, steps: int = 8) -> dict:
    """(b) CPU training step (forward, backward, AdamW) of resnet-18 + head at size px."""
    torch.manual_seed(0)
    model = build_model("resnet18")
    opt = make_optimizer(model, 0.01)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
    times, cpu = [], []
    for i in range(steps + 2):
        t, c = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"size": size, "batch": batch, "threads": torch.get_num_threads(), "median_step_s": float(np.median(times)),
            "min_step_s": float(np.min(times)), "median_cpu_s": float(np.median(cpu)), "img_per_s": batch / float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="Folder of mp4s to take 720p frames from (default: lavfi).")
    parser.add_argument("--n", type=int, default=96, help="Images per loader measurement.")
    parser.add_argument("--out", type=Path, default=Path("bench-out/train"))
    parser.add_argument("--skip-720p", action="store_true", help="Only the 224 px loader comparison.")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    frames = extract_frames(args.out / "frames", args.videos, args.n)
    shards, manifests, folder = write_shard_and_folder(frames, args.out)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"frames: {len(frames)} JPEGs, {np.mean([p.stat().st_size for p in frames]) / 1e3:.0f} kB mean, "
          f"source: {args.videos or 'lavfi testsrc2+mandelbrot'}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print("per-image costs (CPU ms):", {k: round(v, 2) for k, v in components(frames).items()})
    rows = []
    for label, size in (("224", (224, 224)), ("720p", (720, 1280))):
        if label == "720p" and args.skip_720p:
            continue
        rows.append((f"ours {label}", ours(shards, manifests, size, args.n)))
        rows.append((f"ImageFolder+PIL {label}", baseline(folder, size, args.n)))
    print("\n(a) loader, one worker, all ten augmentations on every image (p=1):")
    print(f"{'loader':26s} {'images':>7s} {'img/s':>8s} {'img/CPU-s':>10s}")
    for name, r in rows:
        print(f"{name:26s} {r['images']:7d} {r['img_per_s']:8.1f} {r['img_per_cpu_s']:10.1f}")
    by = dict(rows)
    print(f"speed-up at 224 px per core (CPU time): "
          f"{by['ours 224']['img_per_cpu_s'] / by['ImageFolder+PIL 224']['img_per_cpu_s']:.1f}x")
    torch.set_num_threads(os.cpu_count() or 1)
    r = step_time()
    print(f"\n(b) CPU train step, resnet-18, {r['batch']}x3x{r['size']}x{r['size']}, {r['threads']} threads: "
          f"median {r['median_step_s'] * 1e3:.0f} ms wall (min {r['min_step_s'] * 1e3:.0f} ms), "
          f"{r['median_cpu_s'] * 1e3:.0f} ms CPU, {r['img_per_s']:.0f} img/s")
    (args.out / "results.json").write_text(json.dumps({"loader": dict(rows), "step": r}, indent=1))


if __name__ == "__main__":
    main()
