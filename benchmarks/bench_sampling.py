"""Sampling by loss against uniform sampling at equal steps: val AUC and log loss (frame and video level) of the
last epoch, over seeds, on a faces (or frames) dataset such as `make demo-faces`'s.

    python benchmarks/bench_sampling.py --shards demo-faces/shards [--recipe demo_faces] [--seeds 0,1,2]
                                        [--out bench-out/sampling] [-- extra train options ...]

Each (mode, seed) is one `train.run` with --sample-by uniform or loss and everything else equal (the epoch has
the same number of batches either way, so both take the same steps); the table gives the mean and standard
deviation over the seeds, and bench-out/sampling/results.json every run's row.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("roc_auc", "log_loss", "video_auc", "video_log_loss")


def run(args, mode: str, seed: int, extra: list[str]) -> dict:
    out = args.out / f"{mode}-{seed}"
    cmd = [sys.executable, "-m", "train.run", "--shards", str(args.shards), "--out", str(out), "--recipe",
           args.recipe, "--sample-by", mode, "--seed", str(seed), "--weights", "none", "--no-explain",
           "--no-lr-find", *(["--manifests", str(args.manifests)] if args.manifests else []), *extra]
    subprocess.run(cmd, check=True, cwd=ROOT)
    last = pd.read_csv(out / "metrics.csv").iloc[-1]
    return {"mode": mode, "seed": seed, "epochs": len(pd.read_csv(out / "metrics.csv")),
            **{m: float(last[m]) for m in METRICS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--manifests", type=Path)
    parser.add_argument("--recipe", default="demo_faces")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench-out/sampling"))
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    rows = [run(args, mode, int(seed), extra) for seed in args.seeds.split(",") for mode in ("uniform", "loss")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    table = pd.DataFrame(rows)
    print(f"\nsample-by, last epoch, {len(args.seeds.split(','))} seeds, mean ± sd:")
    print("| sampling | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS))
    for mode, group in table.groupby("mode", sort=False):
        cells = [f"{np.mean(group[m]):.3f} ± {np.std(group[m], ddof=1) if len(group) > 1 else 0:.3f}" for m in METRICS]
        print(f"| {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
