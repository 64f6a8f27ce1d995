"""Scale-out: torchrun with two gloo processes on the CPU, and shards read through a `pipe:` URL."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RECIPE = """
batch_size = 8
image_size = 64
lr_find_steps = 4
[augment]
hflip = 0.5
[[stage]]
epochs = 1
lr = [1e-4, 1e-3]
frozen = false
"""


def _val_frames(manifests: Path) -> int:
    data = json.loads((manifests / "dataset.json").read_text())
    return sum(data["frames"]["val"].values())


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


@pytest.mark.slow
def test_torchrun_two_gloo_processes_one_run_folder_whole_val_set(tiny_dataset, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "runs" / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train.run",
           "--shards", str(tiny_dataset["shards"]), "--manifests", str(tiny_dataset["manifests"]), "--out", str(out),
           "--recipe", str(recipe), "--weights", "none", "--device", "cpu", "--workers", "1", "--no-explain"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]
    rows = _metrics(out)
    assert len(rows) == 1
    assert int(rows[0]["val_frames"]) == _val_frames(tiny_dataset["manifests"])  # both ranks' halves, once each
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "lr_find.png").is_file()
    assert proc.stdout.count("run folder:") == 1  # rank 0 alone reports (and writes)
    # an epoch is the train frames once over both ranks: each rank steps half of the batches
    n_train = sum(json.loads((tiny_dataset["manifests"] / "dataset.json").read_text())["frames"]["train"].values())
    with open(out / "lr.csv") as fh:
        steps = len(list(csv.DictReader(fh)))
    assert steps == max(1, (n_train // 8) // 2)


@pytest.mark.parametrize("template", ["pipe:cat {dir}/{{name}}", "file://{dir}"])
@pytest.mark.slow
def test_training_reads_shards_through_urls(tiny_dataset, tmp_path, template):
    location = template.format(dir=tiny_dataset["shards"])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.run", "--shards", location, "--manifests", str(tiny_dataset["manifests"]),
           "--out", str(out), "--dev-run", "--weights", "none", "--image-size", "64", "--workers", "0",
           "--no-explain", "--no-lr-find"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(_metrics(out)) >= 1
    saved = json.loads((out / "config.json").read_text())
    assert saved["shards"] == location


def test_url_shards_need_a_manifests_folder(tiny_dataset, tmp_path):
    cmd = [sys.executable, "-m", "train.run", "--shards", f"pipe:cat {tiny_dataset['shards']}/{{name}}",
           "--out", str(tmp_path / "run"), "--dev-run", "--weights", "none"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "pass --manifests" in proc.stderr


def test_shard_url_forms():
    from pipeline.dataset import is_local, shard_url

    assert shard_url("shards", "a.tar") == "shards/a.tar"
    assert shard_url("s3://bucket/shards/", "a.tar") == "s3://bucket/shards/a.tar"
    assert shard_url("pipe:aws s3 cp s3://b/{name} -", "a.tar") == "pipe:aws s3 cp s3://b/a.tar -"
    assert is_local("/data/shards") and not is_local("gs://b/s") and not is_local("pipe:cat {name}")
