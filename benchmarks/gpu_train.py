"""(c) GPU training throughput: resnet-18 at 224 and 720x1280, batch 64, AMP on and off, channels_last.

    python benchmarks/gpu_train.py [--steps 20] [--shards DIR --manifests DIR] [--workers N] [--augment-impl fused]

For each size and AMP setting: synthetic uint8 batches already on the GPU (the GPU's own ceiling), and, with
--shards (default: the shard `make bench-train` leaves in bench-out/train, if there), the real loader (TrainStream
with the seed recipe's probabilities, `--workers` processes, pinned memory) feeding the same training step.
Reported: images/s, peak allocated GPU memory, and the share of the timed wall time the step loop spent waiting
for the next batch (data wait: time in `next(loader)`, the GPU synchronised before and after each step's wait is
measured so queued GPU work is not counted as waiting). Exits cleanly, with a message and status 0, where CUDA is
not available.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SIZES = {"224": (224, 224), "720x1280": (720, 1280)}
DEFAULT_SHARDS = Path("bench-out/train/shards")


def synthetic_batches(size: tuple[int, int], batch: int, device: torch.device):
    images = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    while True:
        yield images, labels


def measure(batches, dev, steps: int, batch: int, warmup: int = 3) -> dict:
    """Train `steps` steps after `warmup`; images/s, peak allocated GPU memory, share of time waiting for data."""
    from train.engine import make_scaler, train_step
    from train.model import build_model
    from train.run import make_optimizer

    torch.manual_seed(0)
    model = dev.prepare(build_model("resnet18"))
    model.train()
    opt = make_optimizer(model, 0.01)
    scaler = make_scaler(dev)
    batches = iter(batches)
    for _ in range(warmup):
        images, labels, *_rest = next(batches)
        train_step(model, images, labels, opt, scaler, dev, None)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    waiting, start = 0.0, time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        images, labels, *_rest = next(batches)
        waiting += time.perf_counter() - t
        train_step(model, images, labels, opt, scaler, dev, None)  # .item() on the loss synchronises
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"img_per_s": steps * batch / seconds, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "data_wait_share": waiting / seconds, "seconds": seconds}


def real_batches(args, size: tuple[int, int], batch: int):
    from train.config import Augment
    from train.data import TrainStream, load_manifest, make_loader

    manifest = load_manifest(args.shards, args.manifests or args.shards.parent / "manifests")
    stream = TrainStream(manifest, size, Augment(), batch, args.steps + 5, "mix", 256, 0,
                         augment_impl=args.augment_impl)
    return make_loader(stream, args.workers, pin_memory=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shards", type=Path, help=f"Shards for the real loader [default: {DEFAULT_SHARDS} if there].")
    parser.add_argument("--manifests", type=Path, help="Folder with dataset.json [default: SHARDS/../manifests].")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Loader workers [default: all cores].")
    parser.add_argument("--augment-impl", choices=("fused", "albumentations"), default="fused")
    parser.add_argument("--sizes", default=",".join(SIZES), help="Comma-separated subset of: " + ", ".join(SIZES))
    parser.add_argument("--out", type=Path, default=Path("bench-out/gpu_train.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train: CUDA is not available on this machine; nothing measured (not run: run it on a GPU machine).")
        return 0
    from train.engine import Device

    if args.shards is None and (DEFAULT_SHARDS / "../manifests/dataset.json").resolve().is_file():
        args.shards = DEFAULT_SHARDS
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, batch {args.batch}, channels_last, "
          f"{args.steps} timed steps; real loader: {args.shards or 'none (no --shards)'} with {args.workers} workers "
          f"({args.augment_impl} augmentations), {os.cpu_count()} cores")
    results = []
    for name in args.sizes.split(","):
        size = SIZES[name]
        for amp in (True, False):
            dev = Device.resolve("cuda", amp=amp, channels_last=True)
            sources = [("synthetic", lambda: synthetic_batches(size, args.batch, dev.device))]
            if args.shards:
                sources.append(("loader", lambda: real_batches(args, size, args.batch)))
            for source, make in sources:
                try:
                    r = measure(make(), dev, args.steps, args.batch)
                except torch.cuda.OutOfMemoryError:
                    r = {"img_per_s": float("nan"), "peak_gib": float("nan"), "data_wait_share": float("nan"),
                         "error": "out of memory"}
                torch.cuda.empty_cache()
                r.update(size=name, amp=str(dev.amp_dtype) if amp else "off", input=source)
                results.append(r)
                print(f"{name:>9s}  amp={r['amp']:<15s} {source:<9s} {r['img_per_s']:8.1f} img/s  "
                      f"peak {r['peak_gib']:.2f} GiB  waiting for data {r['data_wait_share']:.0%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
