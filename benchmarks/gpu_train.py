"""(c) GPU training throughput: resnet-18 at 224 and 720x1280, batch 64, AMP on and off, channels_last.

    python benchmarks/gpu_train.py [--steps 48] [--shards DIR --manifests DIR] [--workers N]
                                   [--loaders albumentations,fused,device:4] [--sizes 224,720x1280] [--amp on,off]

For each size and AMP setting: synthetic uint8 batches already on the GPU (the GPU's own ceiling), and, with
--shards (default: the shard `make bench-train` leaves in bench-out/train, if there), the real loader (TrainStream
with the seed recipe's probabilities, pinned memory) feeding the same training step, once per entry of --loaders
(IMPL or IMPL:WORKERS; WORKERS defaults to --workers, all cores). Reported: images/s, peak allocated GPU memory, and the share of the timed wall
time the GPU waited for the next batch (time in `next(loader)`; each step ends with `loss.item()`, so no GPU work
is queued while the loop waits). With `device`, the loader workers only read the tars (JPEG bytes and the draws);
the JPEGs are decoded on the GPU (torchvision's batched nvJPEG decode) and augmented there after the batch arrives:
that time is reported apart (decode + augment ms per batch) and is not counted as waiting. Each loader's images/s
is also given as its share of the synthetic ceiling (issue 20's target: device with 8 workers >= 90% at 224 and at
720x1280). Without --shards and without bench-train's shard, only the synthetic ceiling is measured. Exits
cleanly, with a message and status 0, where CUDA is not available.
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
sys.path.insert(0, str(ROOT / "tests"))  # helpers.augment.only: test- and benchmark-only, not shipped

import torch  # noqa: E402

SIZES = {"224": (224, 224), "720x1280": (720, 1280)}
TARGET_SHARE = 0.90  # issue 20: device with 8 loader workers at >= 90% of the synthetic ceiling, both sizes
DEFAULT_SHARDS = Path("bench-out/train/shards")


def synthetic_batches(size: tuple[int, int], batch: int, device: torch.device):
    images = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    while True:
        yield images, labels


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work (nothing to wait for on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(batches, dev, steps: int, batch: int, warmup: int = 3, augment=None) -> dict:
    """Train `steps` steps after `warmup`; images/s, peak allocated GPU memory, share of time waiting for data.
    augment: for the device implementation, (images on the GPU, draws) -> augmented images, timed apart."""
    from train.fit.engine import make_scaler, train_step
    from train.fit.loop import make_optimizer
    from train.model import build_model

    torch.manual_seed(0)
    model = dev.prepare(build_model("resnet18"))
    model.train()
    opt = make_optimizer(model, 0.01)
    scaler = make_scaler(dev)
    batches = iter(batches)
    def step() -> tuple[float, float]:
        t = time.perf_counter()
        images, labels, *rest = next(batches)
        waited = time.perf_counter() - t
        augmenting = 0.0
        if augment is not None:
            t = time.perf_counter()
            images = augment(images, rest[-1])
            sync(dev.device)
            augmenting = time.perf_counter() - t
        train_step(model, images, labels, opt, scaler, dev, None)  # .item() on the loss synchronises
        return waited, augmenting

    for _ in range(warmup):
        step()
    sync(dev.device)
    cuda = dev.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    waiting, augmenting, start = 0.0, 0.0, time.perf_counter()
    for _ in range(steps):
        w, a = step()
        waiting, augmenting = waiting + w, augmenting + a
    sync(dev.device)
    seconds = time.perf_counter() - start
    return {"img_per_s": steps * batch / seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "data_wait_share": waiting / seconds, "augment_ms_per_batch": augmenting / steps * 1e3,
            "seconds": seconds}


def default_shards() -> Path | None:
    """bench-train's shard (bench-out/train), made here from the DFDC sample's 720p frames if it is not there yet,
    so that `make bench-gpu` alone measures the real loaders (None without the sample: synthetic only)."""
    if (DEFAULT_SHARDS / "../manifests/dataset.json").resolve().is_file():
        return DEFAULT_SHARDS
    videos = ROOT.parent / "shared" / "data" / "dfdc_sample"
    if not videos.is_dir():
        return None
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_train import extract_frames, write_shard_and_folder

    root = DEFAULT_SHARDS.parent
    write_shard_and_folder(extract_frames(root / "frames", videos, 64), root)
    return DEFAULT_SHARDS


def real_batches(args, size: tuple[int, int], batch: int, impl: str, workers: int):
    """The trainer's loader for `impl` (for device: JPEG bytes and draws; device_step decodes and augments)."""
    from pipeline.dataset import Dataset
    from train.config import Augment
    from train.data.streams import TrainStream, make_loader

    dataset = Dataset.open(args.shards, args.manifests or args.shards.parent / "manifests")
    stream = TrainStream(dataset, size, Augment(), batch, args.steps + 5, "mix", 256, 0, augment_impl=impl)
    yield from make_loader(stream, workers, pin_memory=True)


def device_step(device: torch.device, size: tuple[int, int]):
    """What train.augment.device.DeviceAugmented does to a device batch: decode the JPEGs there, then augment."""
    from train.augment.device import augment_batch, decode_batch

    return lambda jpegs, draws: augment_batch(decode_batch(jpegs, size, device), draws)


def augment_costs(device: str, size: tuple[int, int], batch: int, shards: Path | None, reps: int = 5) -> dict:
    """GPU ms per batch of train.augment.device.augment_batch: each augmentation alone (p=1) and the seed recipe's
    probabilities, on real frames from the shard where there is one."""
    import random

    from helpers.augment import only
    from train.augment.device import augment_batch
    from train.augment.fused import sample
    from train.config import AUGMENTS, Augment

    x = (_frames(shards, size, batch) if shards is not None
         else torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8)).to(device)
    rng = random.Random(0)
    cases = {name: only(name) for name in AUGMENTS}
    cases["seed probabilities"] = Augment()
    out = {}
    for name, probs in cases.items():
        draws = [[sample(rng, probs, size) for _ in range(batch)] for _ in range(reps + 1)]
        augment_batch(x, draws[0])  # warm-up (cuDNN, nvJPEG, allocator)
        sync(device)
        t = time.perf_counter()
        for d in draws[1:]:
            augment_batch(x, d)
        sync(device)
        out[name] = (time.perf_counter() - t) / reps * 1e3
    return out


def cuda_vs_cpu(shards: Path | None, size=(720, 1280), batch: int = 4) -> dict:
    """The same draws on the same frames through augment_batch on CUDA and on the CPU: max and mean |difference|
    per augmentation alone (p=1). nvJPEG and libjpeg round differently; everything else should agree closely."""
    import random

    from helpers.augment import only
    from train.augment.device import augment_batch
    from train.augment.fused import sample
    from train.config import AUGMENTS

    x = next(synthetic_batches(size, batch, torch.device("cpu")))[0] if shards is None else _frames(shards, size, batch)
    rng = random.Random(1)
    out = {}
    for name in AUGMENTS:
        draws = [sample(rng, only(name), size) for _ in range(batch)]
        diff = (augment_batch(x.cuda(), draws).cpu().int() - augment_batch(x, draws).int()).abs().float()
        out[name] = (int(diff.max()), float(diff.mean()))
    return out


def _frames(shards: Path, size: tuple[int, int], batch: int) -> torch.Tensor:
    """uint8 N3HW: the first train shard's JPEGs, decoded at size, repeated to fill the batch."""
    import tarfile

    import numpy as np

    from train.data.decode import decode_resized
    with tarfile.open(next(iter(sorted(Path(shards).glob("train-*.tar"))))) as tar:
        jpgs = [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")][:batch]
    frames = np.stack([decode_resized(j, size) for j in (jpgs * batch)[:batch]])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--shards", type=Path, help=f"Shards for the real loader [default: {DEFAULT_SHARDS} if there].")
    parser.add_argument("--manifests", type=Path, help="Folder with dataset.json [default: SHARDS/../manifests].")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Loader workers [default: all cores].")
    parser.add_argument("--loaders", default="albumentations:8,fused:8,device:8,device",
                        help="Comma-separated loaders to measure: IMPL[:WORKERS], IMPL one of albumentations, fused, "
                             "device.")
    parser.add_argument("--amp", default="on,off", help="AMP settings to measure: on, off or both.")
    parser.add_argument("--sizes", default=",".join(SIZES), help="Comma-separated subset of: " + ", ".join(SIZES))
    parser.add_argument("--out", type=Path, default=Path("bench-out/gpu_train.json"))
    parser.add_argument("--no-costs", action="store_true",
                        help="Skip the GPU augmentation cost table and the CUDA-against-CPU check.")
    parser.add_argument("--smoke-cpu", action="store_true",
                        help="Run the same code on the CPU with tiny sizes (checks the script, measures nothing).")
    args = parser.parse_args()
    if args.smoke_cpu:
        SIZES.clear()
        SIZES.update({"32": (32, 32), "36x64": (36, 64)})
        args.sizes = ",".join(SIZES)
    elif not torch.cuda.is_available():
        print("gpu_train: CUDA is not available on this machine; nothing measured (not run: run it on a GPU machine).")
        return 0
    from train.model import Device

    if args.shards is None:
        args.shards = default_shards()
    device = "cpu" if args.smoke_cpu else "cuda"
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu (smoke test)'}, torch {torch.__version__}, batch {args.batch}, channels_last, "
          f"{args.steps} timed steps; real loader: {args.shards or 'none (no --shards)'} with {args.workers} workers "
          f"({args.loaders}; seed recipe probabilities), {os.cpu_count()} cores")
    torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels (as the trainer)
    results = []
    big = max(SIZES.values(), key=lambda s: s[0] * s[1])
    costs = {} if args.no_costs else augment_costs(device, big, args.batch, args.shards, reps=2 if args.smoke_cpu else 5)
    if costs:
        print(f"GPU augmentation (train.augment.device), ms per batch of {args.batch} at {big[0]}x{big[1]}: "
              + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()), flush=True)
        results.append({"augment_ms_per_batch": costs, "size": f"{big[0]}x{big[1]}"})
    if device == "cuda" and not args.no_costs:
        agree = cuda_vs_cpu(args.shards)
        print("augment_batch, CUDA against CPU (max, mean |difference| in grey levels, 720x1280): "
              + ", ".join(f"{k} {m} / {a:.3f}" for k, (m, a) in agree.items()), flush=True)
        results.append({"cuda_vs_cpu": agree})
    for name in args.sizes.split(","):
        size = SIZES[name]
        for amp in [a == "on" for a in args.amp.split(",")]:
            dev = Device.resolve(device, amp=amp, channels_last=True)
            sources = [("synthetic", lambda: synthetic_batches(size, args.batch, dev.device), None)]
            for spec in (args.loaders.split(",") if args.shards else []):
                impl, _, workers = spec.partition(":")
                workers = int(workers or args.workers)
                sources.append((f"{impl}, {workers} workers",
                                lambda impl=impl, w=workers: real_batches(args, size, args.batch, impl, w),
                                device_step(dev.device, size) if impl == "device" else None))
            for source, make, augment in sources:
                try:
                    r = measure(make(), dev, args.steps, args.batch, augment=augment)
                except torch.cuda.OutOfMemoryError:  # noqa: PERF203
                    r = {"img_per_s": float("nan"), "peak_gib": float("nan"), "data_wait_share": float("nan"),
                         "error": "out of memory"}
                if device == "cuda":
                    torch.cuda.empty_cache()
                if source == "synthetic":  # measured first: the GPU's own ceiling at this size and AMP setting
                    ceiling = r["img_per_s"]
                r.update(size=name, amp=str(dev.amp_dtype) if amp else "off", input=source,
                         share_of_ceiling=r["img_per_s"] / ceiling)
                results.append(r)
                print(f"{name:>9s}  amp={r['amp']:<15s} {source:<22s} {r['img_per_s']:8.1f} img/s  "
                      f"({r['share_of_ceiling']:.0%} of synthetic; target >= {TARGET_SHARE:.0%} with device:8)  "
                      f"peak {r['peak_gib']:.2f} GiB  waiting for data {r['data_wait_share']:.0%}"
                      + (f"  GPU decode + augment {r['augment_ms_per_batch']:.1f} ms/batch" if augment else ""),
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
