"""Training-step throughput (images/s) of each backbone at one size: the trainer's own train_step on random frames.

`python benchmarks/bench_backbones.py [--archs resnet18,efficientnet_b0,...] [--size 128] [--batch 16] [--steps 4]
[--rounds 2] [--device cpu]`

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


def bench(arch: str, dev: Device, size: int, batch: int) -> tuple:
    model = dev.prepare(build_model(arch))
    set_frozen(model, False)
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4, betas=(0.9, 0.99), eps=1e-5)
    scaler = make_scaler(dev)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (batch,))
    params = sum(p.numel() for p in model.parameters())

    def steps(n: int) -> float:
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            train_step(model, images, labels, optimizer, scaler, dev, None)
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return steps, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=DEFAULT_ARCHS)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = Device.resolve(args.device)
    archs = args.archs.split(",")
    runners = {}
    for arch in archs:
        run, params = bench(arch, dev, args.size, args.batch)
        run(1)  # warm-up: allocator, first-call overheads
        runners[arch] = (run, params)
    best = {arch: float("inf") for arch in archs}
    for _ in range(args.rounds):
        for arch in archs:
            best[arch] = min(best[arch], runners[arch][0](args.steps))
    rows = [{"arch": a, "params_M": round(runners[a][1] / 1e6, 2),
             "images_per_s": round(args.steps * args.batch / best[a], 2),
             "step_s": round(best[a] / args.steps, 3)} for a in archs]
    print(f"train step, batch {args.batch}, {args.size}x{args.size}, {dev.device}, torch threads "
          f"{torch.get_num_threads()}, best of {args.rounds} rounds of {args.steps} steps")
    print("| arch | params (M) | images/s | s/step |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['params_M']} | {r['images_per_s']} | {r['step_s']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
