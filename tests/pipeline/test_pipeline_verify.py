"""Issue 11 item 2: checksums per frame (frames.parquet, the sample json) and per shard (dataset.json);
`python -m pipeline.verify` names each bad shard and key; a corrupt JPEG in training is skipped with a warning."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.core import manifest as pm
from pipeline.dataset import Dataset
from train.data.streams import ValStream, make_loader

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ds(tiny_dataset, tmp_path) -> dict:
    shards, manifests = tmp_path / "shards", tmp_path / "manifests"
    shutil.copytree(tiny_dataset["shards"], shards)
    shutil.copytree(tiny_dataset["manifests"], manifests)
    return {"shards": shards, "manifests": manifests}


def _verify(ds, *args):
    return subprocess.run([sys.executable, "-m", "pipeline.verify", "--shards", str(ds["shards"]), "--manifests",
                           str(ds["manifests"]), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def _corrupt(ds) -> tuple[str, str]:
    """Zero up to 2,000 bytes inside the largest JPEG of a train shard (same length: sizes still agree)."""
    frames = pd.read_parquet(ds["manifests"] / "frames.parquet")
    row = frames[frames["split"] == "train"].sort_values("bytes").iloc[-1]
    path = ds["shards"] / row["shard"]
    with open(path, "rb") as fh:
        fh.seek(int(row["offset"]))
        with tarfile.open(fileobj=fh, mode="r:") as tar:
            start = tar.next().offset_data
    n = min(2000, int(row["bytes"]) - 400)
    data = bytearray(path.read_bytes())
    data[start + 300: start + 300 + n] = bytes(n)
    path.write_bytes(bytes(data))
    return row["shard"], row["key"]


def test_checksums_are_recorded(tiny_dataset):
    frames = pd.read_parquet(tiny_dataset["manifests"] / "frames.parquet")
    assert frames["crc32"].notna().all()
    data = json.loads((tiny_dataset["manifests"] / "dataset.json").read_text())
    for entry in data["shards"]:
        path = tiny_dataset["shards"] / entry["name"]
        assert entry["size"] == path.stat().st_size and len(entry["sha256"]) == 64


def test_verify_passes_a_good_dataset_and_names_a_corrupt_shard_and_key(ds):
    proc = _verify(ds, "--deep")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
    shard, key = _corrupt(ds)
    proc = _verify(ds)
    assert proc.returncode == 1 and f"BAD {shard}: sha256 differs" in proc.stdout, proc.stdout
    assert key not in proc.stdout  # the quick check names the shard only
    proc = _verify(ds, "--deep")
    assert proc.returncode == 1 and f"BAD {shard} {key}: JPEG bytes differ from the recorded crc32" in proc.stdout
    Dataset.open(ds["shards"], ds["manifests"])  # same size: the trainer's quick check still lets it through


def test_training_skips_a_corrupt_jpeg_with_a_counted_warning(ds, caplog):
    shard, key = _corrupt(ds)
    dataset = Dataset.open(ds["shards"], ds["manifests"])
    with caplog.at_level(logging.WARNING, logger="train.data.decode"):
        keys = [k for b in make_loader(ValStream(dataset.urls("train"), (32, 32), 8), 0) for k in b[2]]
    frames = pd.read_parquet(ds["manifests"] / "frames.parquet")
    assert sorted(keys) == sorted(set(frames.loc[frames["split"] == "train", "key"]) - {key})
    warnings = [r.getMessage() for r in caplog.records if "skipped corrupt frame" in r.getMessage()]
    assert len(warnings) == 1 and "(1 so far in this worker)" in warnings[0]
    assert key in warnings[0] and shard in warnings[0]
    # and in worker processes: no crash, the same frames
    keys2 = [k for b in make_loader(ValStream(dataset.urls("train"), (32, 32), 8), 2) for k in b[2]]
    assert sorted(keys2) == sorted(keys)


def test_old_manifests_without_checksums_still_load_and_verify(ds):
    parts = pm.parts_dir(ds["manifests"])
    for fragment in parts.glob("*.frames.parquet"):  # as written before checksums existed
        pq.write_table(pq.read_table(fragment).drop(["crc32"]), fragment)
    for record in parts.glob("*.shard.json"):
        record.unlink()
    pm.consolidate(ds["manifests"])
    frames = pd.read_parquet(ds["manifests"] / "frames.parquet")
    assert frames["crc32"].isna().all() and len(frames) > 0
    assert all("sha256" not in e for e in json.loads((ds["manifests"] / "dataset.json").read_text())["shards"])
    Dataset.open(ds["shards"], ds["manifests"])
    proc = _verify(ds, "--deep")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no checksums recorded" in proc.stdout


def test_verify_refuses_a_shard_name_with_a_path(ds):
    path = ds["manifests"] / "dataset.json"
    data = json.loads(path.read_text())
    data["shards"][0]["name"] = "../../etc/passwd"
    path.write_text(json.dumps(data))
    proc = _verify(ds)
    assert proc.returncode == 2 and "shards[0].name" in proc.stderr
