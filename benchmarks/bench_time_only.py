"""A frame model against clip models on fakes that only time reveals (demodata.time_only): video-level val AUC of
the last epoch, mean and spread over training seeds, per cue and model.

    python benchmarks/bench_time_only.py [--cues jitter,shuffle,flicker,patch-flicker]
        [--models frame,tall,temporal,r2plus1d] [--seeds 0,1,2] [--pairs 24] [--size 64x64] [--out bench-out/time_only]

Per cue: `python -m demodata.time_only --videos PAIRS --seconds 4 --size SIZE --cue CUE` (data seed 0, the same
videos for every model and seed), `dfd shards --fps 2 --clip-frames 4` (README 4c), then one `dfd train` per
(model, seed) from random init at --image-size (no weights: offline), the LR finder off (it only suggests):
- frame: timm's test_resnet on single frames, `--recipe demo`;
- tall / temporal: `tall:test_resnet` / `temporal:test_resnet` on the clips, `--recipe demo_clips`;
- r2plus1d: torchvision's R(2+1)D-18 on the clips, `--recipe demo_clips`.
A finished run (its metrics.csv has the recipe's last epoch) is reused with its CPU-s (cpu_s.txt), so an
interrupted benchmark resumes, and runs made apart (e.g. a seed per process) are tabled together.
Writes OUT/results.csv (a row per run: video AUC, item AUC, CPU-s) and OUT/table.md, and prints the table.
"""
from __future__ import annotations

import logging
import resource
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"frame": ("demo", "test_resnet", []), "tall": ("demo_clips", "tall:test_resnet", ["--input", "clips"]),
          "temporal": ("demo_clips", "temporal:test_resnet", ["--input", "clips"]),
          "r2plus1d": ("demo_clips", "r2plus1d_18", ["--input", "clips"])}
log = logging.getLogger("bench_time_only")


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def call(*args: str) -> float:
    """`python -m ARGS` from the repository root; returns its CPU seconds."""
    before = child_cpu()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise click.ClickException(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return child_cpu() - before


def dataset(out: Path, cue: str, pairs: int, size: str) -> Path:
    """The cue's videos and shards (made once): OUT/CUE/{videos,shards,manifests}."""
    root = out / cue
    if not (root / "manifests" / "clips.parquet").is_file():
        log.info("making %s: %d pairs at %s", cue, pairs, size)
        call("demodata.time_only", "--out", str(root / "videos"), "--videos", str(pairs), "--seconds", "4",
             "--size", size, "--cue", cue)
        call("dfd", "shards", "--videos", str(root / "videos"), "--shards", str(root / "shards"), "--manifests",
             str(root / "manifests"), "--fps", "2", "--clip-frames", "4", "--workers", "1")
    return root


def stages_epochs(recipe: str) -> int:
    """Rows a finished run's metrics.csv has: the recipe's epochs over all its stages."""
    import tomllib

    data = tomllib.loads((ROOT / "train" / "recipes" / f"{recipe}.toml").read_text())
    return sum(int(stage["epochs"]) for stage in data["stage"])


def train(root: Path, model: str, seed: int, image_size: str) -> dict:
    recipe, arch, extra = MODELS[model]
    out = root / "runs" / f"{model}-{seed}"
    metrics = out / "metrics.csv"
    cpu = None
    if not (metrics.is_file() and len(pd.read_csv(metrics)) == stages_epochs(recipe)):
        log.info("training %s seed %d on %s", model, seed, root.name)
        if out.exists():
            import shutil
            shutil.rmtree(out)
        cpu = call("dfd", "train", "--shards", str(root / "shards"), "--manifests", str(root / "manifests"),
                   "--out", str(out), "--recipe", recipe, "--arch", arch, "--weights", "none", "--image-size",
                   image_size, "--workers", "0", "--seed", str(seed), "--no-explain", "--no-lr-find", *extra)
        (out / "cpu_s.txt").write_text(f"{cpu:.1f}\n")
    elif (out / "cpu_s.txt").is_file():
        cpu = float((out / "cpu_s.txt").read_text())
    last = pd.read_csv(metrics).iloc[-1]
    return {"cue": root.name, "model": model, "arch": arch, "seed": seed, "video_auc": float(last["video_auc"]),
            "item_auc": float(last["roc_auc"]), "val_items": int(last["val_frames"]),
            "val_videos": int(last["val_videos"]), "cpu_s": cpu}


def table(results: pd.DataFrame) -> str:
    """Markdown: a row per cue, a column per model, video AUC mean ± sd (n) and the item (frame or clip) AUC."""
    models = list(dict.fromkeys(results["model"]))
    lines = ["| cue | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for cue, group in results.groupby("cue", sort=False):
        cells = []
        for model in models:
            runs = group[group["model"] == model]
            if runs.empty:
                cells.append("n/a")
                continue
            sd = f"{np.std(runs['video_auc'], ddof=1):.2f}" if len(runs) > 1 else "n/a"
            cells.append(f"{runs['video_auc'].mean():.2f} ± {sd} (n={len(runs)}; item {runs['item_auc'].mean():.2f})")
        lines.append(f"| {cue} | " + " | ".join(cells) + " |")
    cpu = [results.loc[results["model"] == m, "cpu_s"].dropna() for m in models]
    lines.append("| CPU-s per run | " + " | ".join(f"{c.mean():.0f}" if len(c) else "n/a" for c in cpu) + " |")
    return "\n".join(lines) + "\n"


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--cues", default="jitter,shuffle,flicker,patch-flicker", show_default=True)
@click.option("--models", default=",".join(MODELS), show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--pairs", type=int, default=24, show_default=True, help="Real/fake pairs per cue.")
@click.option("--size", default="64x64", show_default=True, help="The videos' WIDTHxHEIGHT.")
@click.option("--image-size", default="64", show_default=True, help="The models' input size.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-out/time_only"), show_default=True)
def main(cues, models, seeds, pairs, size, image_size, out) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = out.resolve()
    unknown = set(models.split(",")) - set(MODELS)
    if unknown:
        raise click.BadParameter(f"unknown models {sorted(unknown)}; known: {', '.join(MODELS)}", param_hint="--models")
    rows = []
    for seed in (int(s) for s in seeds.split(",")):  # seeds outermost: a cut-short benchmark has every model
        for cue in cues.split(","):
            root = dataset(out, cue, pairs, size)
            for model in models.split(","):
                rows.append(train(root, model, seed, image_size))
                log.info("%s", rows[-1])
                pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    text = table(pd.DataFrame(rows))
    (out / "table.md").write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
