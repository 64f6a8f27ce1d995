"""(c) GPU training throughput: images/s and peak memory of resnet-18 at 224 and 720x1280, batch 64, AMP on/off.

    python benchmarks/gpu_train.py [--steps 20] [--shards DIR --manifests DIR --workers 8]

Synthetic input always; with --shards also the real loader (TrainStream, ten augmentations) feeding the GPU.
Exits cleanly with a message where CUDA is not available.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from train.engine import Device, make_scaler, train_step  # noqa: E402
from train.model import build_model  # noqa: E402
from train.run import make_optimizer  # noqa: E402

SIZES = {"224": (224, 224), "720x1280": (720, 1280)}


def synthetic_batches(size: tuple[int, int], batch: int, device: torch.device):
    images = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    while True:
        yield images, labels


def measure(batches, dev: Device, steps: int, batch: int, warmup: int = 3) -> dict:
    """Train `steps` steps after `warmup`; images/s and peak allocated GPU memory."""
    torch.manual_seed(0)
    model = dev.prepare(build_model("resnet18"))
    model.train()
    opt = make_optimizer(model, 0.01)
    scaler = make_scaler(dev)
    torch.cuda.reset_peak_memory_stats()
    for i, (images, labels, *_rest) in enumerate(batches):
        if i == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        if i == warmup + steps:
            break
        train_step(model, images, labels, opt, scaler, dev, None)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"img_per_s": steps * batch / seconds, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def real_batches(args, size, batch):
    from train.config import AUGMENTS, Augment
    from train.data import TrainStream, load_manifest, make_loader
    manifest = load_manifest(args.shards, args.manifests)
    stream = TrainStream(manifest, size, Augment(**{k: 0.3 for k in AUGMENTS}), batch, args.steps + 5, "mix", 256, 0)
    return iter(make_loader(stream, args.workers, pin_memory=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--manifests", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("bench-out/gpu_train.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train: CUDA is not available on this machine; nothing to measure (run it on a GPU machine).")
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, batch {args.batch}, channels_last")
    results = []
    for name, size in SIZES.items():
        for amp in (True, False):
            dev = Device.resolve("cuda", amp=amp, channels_last=True)
            sources = [("synthetic", synthetic_batches(size, args.batch, dev.device))]
            if args.shards:
                sources.append(("loader", real_batches(args, size, args.batch)))
            for source, batches in sources:
                try:
                    r = measure(batches, dev, args.steps, args.batch)
                except torch.cuda.OutOfMemoryError:
                    r = {"img_per_s": float("nan"), "peak_gib": float("nan"), "error": "out of memory"}
                    torch.cuda.empty_cache()
                r.update(size=name, amp=str(dev.amp_dtype) if amp else "off", input=source)
                results.append(r)
                print(f"{name:>9s}  amp={r['amp']:<15s} {source:<9s} {r['img_per_s']:8.1f} img/s  "
                      f"peak {r['peak_gib']:.2f} GiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
