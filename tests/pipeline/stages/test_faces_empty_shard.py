"""A frame shard in which MTCNN finds no face (lavfi testsrc clips) beside ones with faces (real DFDC clips): the
faces stage writes no face shard for it and lists none, its done marker tells a rerun that it is done, and every
reader (verify, Dataset.open, the train stream with two workers, explain) takes the dataset (issue 21 item 12)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers.clips import make_clip
from helpers.commands import pipeline_argv, run_module
from helpers.paths import REPO, SHARED_DATA
from pipeline.dataset import Dataset

DFDC = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0"
pytestmark = pytest.mark.skipif(not DFDC.is_dir(), reason="../shared/data not present")
EMPTY = "train-fake-000000.tar"  # seed 3 puts the testsrc fake alone in it (checked below)
FACES = ("--device", "cpu", "--workers", "2", "--min-size", "20", "--face-size", "64")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Two real DFDC clips (faces) and a testsrc real + fake pair (no face), frames at 0.5 fps 640x360."""
    root = tmp_path_factory.mktemp("mixed")
    part = root / "videos" / "dfdc_train_part_0"
    part.mkdir(parents=True)
    for name in ("lynaeydofd", "abofeumbvv"):
        os.symlink(DFDC / f"{name}.mp4", part / f"{name}.mp4")
    make_clip(part / "blank1.mp4", (320, 180), 3.0, source="testsrc")
    make_clip(part / "blank2.mp4", (320, 180), 3.0, source="testsrc", box=True)
    (part / "metadata.json").write_text(json.dumps({
        "lynaeydofd.mp4": {"label": "REAL"}, "abofeumbvv.mp4": {"label": "FAKE", "original": "atvmxvwyns.mp4"},
        "blank1.mp4": {"label": "REAL"}, "blank2.mp4": {"label": "FAKE", "original": "blank1.mp4"}}))
    run_module("pipeline.run", *pipeline_argv(root / "videos", root, "--fps", "0.5", "--size", "640x360",
                                              "--seed", "3"))
    frames = pq.read_table(root / "manifests" / "frames.parquet").to_pandas()
    assert set(frames[frames["shard"] == EMPTY]["video_id"]) == {"blank2"}
    assert set(frames["shard"]) == {EMPTY, "train-real-000000.tar", "val-fake-000000.tar"}
    run_module("pipeline.faces", "--shards", root / "shards", "--manifests", root / "manifests", *FACES)
    return root


def _section(root: Path) -> dict:
    return json.loads((root / "manifests" / "dataset.json").read_text())["faces"]


def test_no_face_shard_for_a_frame_shard_without_faces(mixed):
    section = _section(mixed)
    assert section["faces"] > 0 and section["videos_without_faces"] == 2
    assert {s["name"] for s in section["shards"]} == {"faces/train-real-000000.tar", "faces/val-fake-000000.tar"}
    assert all(s["faces"] > 0 for s in section["shards"])
    assert not (mixed / "shards" / "faces" / EMPTY).exists()
    done = json.loads((mixed / "manifests" / "faces_parts" / f"{EMPTY[:-4]}.done.json").read_text())
    assert done["faces"] == 0 and done["frames"] == 2
    verify = run_module("pipeline.verify", "--shards", mixed / "shards", "--manifests", mixed / "manifests",
                        "--deep", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # resume: the frame shard without faces is done, nothing is detected again
    again = run_module("pipeline.faces", "--shards", mixed / "shards", "--manifests", mixed / "manifests", *FACES)
    assert "0 shards done, 3 skipped" in again.stderr, again.stderr
    assert _section(mixed)["shards"] == section["shards"]
    dataset = Dataset.open(mixed / "shards", mixed / "manifests", input="faces")
    assert dataset.urls("train") == [str(mixed / "shards" / "faces" / "train-real-000000.tar")]


def test_an_empty_face_shard_listed_by_older_runs_is_left_out(mixed, tmp_path):
    """What the stage wrote before: a 1024-byte empty tar listed with faces 0. Dataset.open leaves it out."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for path in (mixed / "manifests").glob("*.*"):
        (manifests / path.name).write_bytes(path.read_bytes())
    data = json.loads((manifests / "dataset.json").read_text())
    data["faces"]["shards"].append({"name": f"faces/{EMPTY}", "split": "train", "label": "fake", "faces": 0,
                                    "bytes": 1024, "size": 1024})
    (manifests / "dataset.json").write_text(json.dumps(data))
    dataset = Dataset.open(mixed / "shards", manifests, input="faces")
    assert f"faces/{EMPTY}" not in {s["name"] for s in dataset.shards}


@pytest.mark.slow  # one tiny epoch with two DataLoader workers, then explain (~1 min on a loaded 2-core box)
def test_train_with_two_workers_and_explain_take_it(mixed, tmp_path):
    """Before: the empty face shard was listed, the second worker was given only it and cycled over it for ever
    (the run hung in its first epoch)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "train.run", "--shards", str(mixed / "shards"), "--manifests",
           str(mixed / "manifests"), "--out", str(out), "--input", "faces", "--fake-faces", "all", "--weights",
           "none", "--device", "cpu", "--image-size", "64", "--batch-size", "2", "--workers", "2", "--balance",
           "none", "--stop-after-epochs", "1", "--no-lr-find", "--explain"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "checkpoints" / "last.pt").is_file()
    assert list(out.rglob("*.html")), "explain wrote no page"
