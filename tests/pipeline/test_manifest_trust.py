"""Issue 11 item 14: a manifest is untrusted input. Crafted dataset.json / Parquet values that would reach a path,
a URL or a shell command are refused with a message naming the field; nothing runs, nothing outside is read."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.dataset import Dataset, DatasetError, shard_url
from train.score.videos import PredictError, _settings_from, shard_samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ds(tiny_dataset, tmp_path) -> dict:
    shards, manifests = tmp_path / "shards", tmp_path / "manifests"
    shutil.copytree(tiny_dataset["shards"], shards)
    shutil.copytree(tiny_dataset["manifests"], manifests)
    return {"shards": shards, "manifests": manifests, "tmp": tmp_path}


def _craft(ds, index: int, **fields) -> None:
    path = ds["manifests"] / "dataset.json"
    data = json.loads(path.read_text())
    data["shards"][index].update(fields)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "train-real-000000.tar; touch {marker}",
                                  "train-real-000000.tar\n", "$(touch {marker}).tar", "faces/../x.tar"])
def test_crafted_shard_names_are_refused_naming_the_field(ds, name):
    marker = ds["tmp"] / "pwned"
    _craft(ds, 0, name=name.format(marker=marker))
    with pytest.raises(DatasetError, match=r"shards\[0\]\.name"):
        Dataset.open(ds["shards"], ds["manifests"])
    template = f"pipe:cat {ds['shards']}/{{name}}"
    with pytest.raises(DatasetError, match=r"shards\[0\]\.name"):
        Dataset.open(template, ds["manifests"])
    with pytest.raises(PredictError, match=r"shards\[0\]\.name"):
        shard_samples(template, ds["manifests"], "train")
    assert not marker.exists()


@pytest.mark.parametrize("field, value", [("split", "../train"), ("label", "real/../../x"), ("size", "1; rm -rf /")])
def test_other_shard_fields_are_checked(ds, field, value):
    _craft(ds, 0, **{field: value})
    with pytest.raises(DatasetError, match=rf"shards\[0\]\.{field}"):
        Dataset.open(ds["shards"], ds["manifests"])


def test_pipe_templates_quote_the_name():
    assert shard_url("pipe:cat /x/{name}", "train-real-000000.tar") == "pipe:cat /x/train-real-000000.tar"
    assert shard_url("pipe:cat /x/{name}", "a b") == "pipe:cat /x/'a b'"


@pytest.mark.parametrize("config, field", [
    ({"fps": "1,movie=/etc/passwd", "size": [128, 72], "quality": 2}, "frames.fps"),
    ({"fps": 1.0, "size": ["128:movie=/etc/passwd", 72], "quality": 2}, r"frames.size\[0\]"),
    ({"fps": 1.0, "size": [128, 72], "quality": "2 -y /tmp/x"}, "frames.quality"),
    ({"fps": float("inf"), "size": [128, 72], "quality": 2}, "frames.fps"),
])
def test_frame_settings_from_a_manifest_are_checked(config, field):
    with pytest.raises(PredictError, match=field):
        _settings_from(config, "dataset.json")
    assert _settings_from({"fps": 1, "size": [128, 72], "quality": 2}, "x").size == (128, 72)


def test_verify_refuses_a_crafted_frames_parquet(ds):
    path = ds["manifests"] / "frames.parquet"
    frames = pd.read_parquet(path)
    frames.loc[0, "shard"] = "../../../etc/passwd"
    frames.to_parquet(path)
    proc = subprocess.run([sys.executable, "-m", "pipeline.verify", "--shards", str(ds["shards"]), "--manifests",
                           str(ds["manifests"]), "--deep"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "column shard" in proc.stderr and "passwd" in proc.stderr


def test_faces_stage_refuses_a_crafted_frames_parquet(ds):
    """Issue 21 item 2: frames.parquet's shard column reaches the faces stage's paths (the frame shard read, the
    face shard, the fragments and done marker written): one check on the read side refuses it before anything."""
    path = ds["manifests"] / "frames.parquet"
    frames = pd.read_parquet(path)
    victim = frames["shard"].iloc[0]
    outside = ds["tmp"] / "outside"
    outside.mkdir()
    shutil.copy(ds["shards"] / victim, outside / victim)  # readable, so only the check stops it
    crafted = f"./../../outside/{victim}"
    frames.loc[frames["shard"] == victim, "shard"] = crafted
    frames.to_parquet(path)
    before = sorted(p for p in ds["tmp"].rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "pipeline.faces", "--shards", str(ds["shards"]), "--manifests",
                           str(ds["manifests"]), "--device", "cpu", "--workers", "1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "frames.parquet: column shard" in proc.stderr and crafted in proc.stderr
    assert "summary" not in proc.stderr  # refused before any shard was planned
    new = [p for p in ds["tmp"].rglob("*") if p not in before and p.name != ".lock-faces"]
    assert new == [], new


@pytest.mark.parametrize("content", [bytes(range(256)) * 2, b"[1, 2]"])
def test_faces_stage_stops_at_once_on_a_broken_dataset_json(ds, content):
    """Issue 21 item 7: random bytes or a JSON array: one line naming the file, before any face is detected."""
    (ds["manifests"] / "dataset.json").write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "pipeline.faces", "--shards", str(ds["shards"]), "--manifests",
                           str(ds["manifests"]), "--device", "cpu", "--workers", "1"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "dataset.json is not" in proc.stderr and "Traceback" not in proc.stderr
    assert not (ds["shards"] / "faces").exists(), "work was done before the manifest was read"
