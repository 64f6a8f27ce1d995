"""Training-step throughput (images/s) of each backbone at one size: the trainer's own train_step on random frames.

`python benchmarks/bench_backbones.py [--archs resnet18,efficientnet_b0,...] [--tunes full,norm] [--size 128]
[--batch 16] [--steps 4] [--rounds 2] [--device cpu]`

`--tunes` times each backbone with each --tune (full: everything trains; frozen: head and BatchNorm; norm: head and
every norm layer, GenD's recipe for CLIP/DINOv2 ViTs), and reports the trainable parameters and, on CUDA, the peak
allocated memory of its timed steps (`make bench-vit`: CLIP ViT-B/16 and ViT-L/14 at 224, full against norm).

Backbones are timed in turns (round-robin), so on a shared machine they see the same load; the best round of each
is reported (the least disturbed). Random init, random uint8 frames, AdamW over the trainer's param groups, fp32 on
the CPU (AMP on CUDA as the trainer does).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from train.fit.engine import make_scaler, train_step  # noqa: E402
from train.model import Device, build_model, param_groups, set_frozen  # noqa: E402

DEFAULT_ARCHS = "resnet18,efficientnet_b0,xception41,convnext_tiny"


def bench(arch: str, dev: Device, size: int, batch: int, tune: str = "full") -> tuple:
    model = dev.prepare(build_model(arch))
    set_frozen(model, False, tune)
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, betas=(0.9, 0.99), eps=1e-5)
    scaler = make_scaler(dev)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (batch,))
    params = (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad))

    def steps(n: int) -> float:
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(n):
            train_step(model, images, labels, optimizer, scaler, dev, None)
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
            peak[0] = max(peak[0], torch.cuda.max_memory_allocated() / 2**30)
        return time.perf_counter() - start

    peak = [0.0]  # GiB, the most any timed call of this runner allocated
    return steps, params, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=DEFAULT_ARCHS)
    parser.add_argument("--tunes", default="full", help="Comma-separated --tune modes: full, frozen, norm.")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = Device.resolve(args.device)
    cases = [(arch, tune) for arch in args.archs.split(",") for tune in args.tunes.split(",")]
    runners = {}
    for case in cases:
        run, params, peak = bench(case[0], dev, args.size, args.batch, case[1])
        run(1)  # warm-up: allocator, first-call overheads
        runners[case] = (run, params, peak)
    best = {case: float("inf") for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            best[case] = min(best[case], runners[case][0](args.steps))
    rows = [{"arch": a, "tune": t, "params_M": round(runners[a, t][1][0] / 1e6, 2),
             "trainable_M": round(runners[a, t][1][1] / 1e6, 3),
             "images_per_s": round(args.steps * args.batch / best[a, t], 2), "step_s": round(best[a, t] / args.steps, 3),
             "peak_GiB": round(runners[a, t][2][0], 2) if dev.device.type == "cuda" else None} for a, t in cases]
    print(f"train step, batch {args.batch}, {args.size}x{args.size}, {dev.device}, torch threads "
          f"{torch.get_num_threads()}, best of {args.rounds} rounds of {args.steps} steps")
    print("| arch | tune | params (M) | trainable (M) | images/s | s/step | peak GiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['tune']} | {r['params_M']} | {r['trainable_M']} | {r['images_per_s']} | "
              f"{r['step_s']} | {r['peak_GiB'] if r['peak_GiB'] is not None else '-'} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
