"""Issue 11 item 3: a full disk stops the pipeline and the trainer with one line, loses nothing, and the same
command finishes the job (fault injection: a writer that raises ENOSPC at the N-th write)."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import dfd.files
import train.fit.run_folder
import train.run
from dfd.diskfull import DiskFullError
from helpers.clips import make_dfdc_tree
from helpers.commands import run_pipeline
from helpers.enospc import FullFile
from pipeline.dataset import read_member
from train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--size", "128x72", "--shard-size", "20KB", "--workers", "2"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_dfdc_tree(tmp_path_factory.mktemp("full") / "videos", n_real=3, fakes_per_real=1, seconds=2.0)


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref")
    run_pipeline(videos, out, *ARGS[:-2])
    return _frames(out)


def _frames(out: Path) -> dict:
    """key -> JPEG bytes, read back from the shards by frames.parquet's offsets."""
    frames = pd.read_parquet(out / "manifests" / "frames.parquet")
    found = {}
    for shard, group in frames.groupby("shard"):
        with open(out / "shards" / shard, "rb") as fh:
            for key, offset in zip(group["key"], group["offset"]):
                name, data = read_member(fh, int(offset))
                assert name == f"{key}.jpg"
                found[key] = data
    return found


@pytest.mark.parametrize("target, n", [
    pytest.param(".tar.tmp", 3, id="shard"),
    pytest.param(".staging", 2, id="staging", marks=pytest.mark.slow),
    pytest.param("parquet", 2, id="manifest", marks=pytest.mark.slow),
])
def test_pipeline_full_disk_one_line_then_same_command_finishes(videos, reference, tmp_path, target, n):
    cmd = [sys.executable, str(ROOT / "tests" / "helpers" / "enospc.py"), str(n), target, "pipeline.run", "--videos", str(videos),
           "--shards", str(tmp_path / "shards"), "--manifests", str(tmp_path / "manifests"), *ARGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: no space left on device while writing "), last
    assert "nothing already written is lost" in last and "rerun the same command" in last
    run_pipeline(videos, tmp_path, *ARGS[:-2])  # space freed: the same command
    assert _frames(tmp_path) == reference
    assert not list((tmp_path / "shards").glob(".*.tmp")) and not list((tmp_path / "manifests").rglob(".*.tmp"))


def test_checkpoint_write_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    train.fit.run_folder.save_checkpoint(path, {"epoch": 1})
    FullFile.count = 0
    # save_checkpoint writes through dfd.files.write_bytes: its `open` is the one that fills the disk
    monkeypatch.setattr(dfd.files, "open", lambda p, mode: FullFile(open(p, mode), 1), raising=False)
    with pytest.raises(DiskFullError, match="last.pt"):
        train.fit.run_folder.save_checkpoint(path, {"epoch": 2, "weights": torch.zeros(1000)})
    monkeypatch.undo()
    assert torch.load(path)["epoch"] == 1 and list(tmp_path.iterdir()) == [path]


def test_figure_write_failure_keeps_the_previous_figure(tmp_path, monkeypatch):
    path = tmp_path / "losses.png"
    fig = plt.figure()
    dfd.files.save_figure(fig, path, dpi=40)
    before = path.read_bytes()
    fig = plt.figure()

    def full_savefig(fname, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fig, "savefig", full_savefig)
    with pytest.raises(DiskFullError, match="losses.png"):
        dfd.files.save_figure(fig, path, dpi=40)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_trainer_prints_one_line(monkeypatch, tmp_path):
    def from_recipe(*args, **kwargs):  # stands in for any step of the run that writes
        raise DiskFullError(str(tmp_path / "checkpoints" / "last.pt"))
    monkeypatch.setattr(TrainConfig, "from_recipe", from_recipe)
    result = CliRunner().invoke(train.run.main, ["--shards", str(tmp_path), "--manifests", str(tmp_path),
                                                 "--weights", "none", "--device", "cpu"])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, (result.output, result.exception)
    assert "last.pt" in lines[0] and "--resume" in lines[0], result.output
