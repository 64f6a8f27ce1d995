"""Issue 11 item 12: several datasets under one root are each read with their own layout (labels kept), and a
DFDC root with a stray unlabelled folder stays DFDC with a warning."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from helpers.clips import make_clip
from helpers.commands import run_pipeline
from helpers.paths import SHARED_DATA
from pipeline.sources.discover import discover

import pandas as pd


def _link_tree(src: Path, dst: Path) -> None:
    """The shared sample's folders, its videos as symlinks (read-only data, nothing copied)."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".mp4":
                os.symlink(path, target)
            else:
                shutil.copy(path, target)


def _mixed_root(root: Path) -> Path:
    _link_tree(SHARED_DATA / "dfdc_sample", root / "dfdc")
    _link_tree(SHARED_DATA / "ffpp_sample", root / "FaceForensics++")
    (root / "mine").mkdir(parents=True)
    make_clip(root / "mine" / "clips" / "a.mp4", seconds=1.0)
    make_clip(root / "mine" / "clips" / "b.mp4", seconds=1.0, box=True)
    (root / "mine" / "labels.csv").write_text("path,label,original\nclips/a.mp4,REAL,\nclips/b.mp4,FAKE,clips/a.mp4\n")
    make_clip(root / "loose" / "x.mp4", seconds=1.0)
    return root


def test_mixed_root_keeps_every_label(tmp_path, caplog):
    root = _mixed_root(tmp_path / "videos")
    with caplog.at_level(logging.INFO, logger="pipeline.sources"):
        layout, videos = discover(root)
    assert layout == "mixed"
    by_path = {Path(v.path).name: v for v in videos}
    assert len(videos) == 4 + 4 + 2 + 1 and all(v.error is None for v in videos if v.source != "dfdc")
    assert by_path["004_982.mp4"].label == "fake" and by_path["004.mp4"].label == "real"  # not unlabelled
    assert by_path["abofeumbvv.mp4"].label == "fake" and by_path["lynaeydofd.mp4"].label == "real"
    assert by_path["b.mp4"].label == "fake" and by_path["b.mp4"].group == by_path["a.mp4"].video_id
    assert by_path["x.mp4"].label is None
    assert len({v.video_id for v in videos}) == len(videos)  # ids unique across the datasets
    assert by_path["a.mp4"].video_id.startswith("mine-")
    assert any("outside any labelled dataset" in r.getMessage() for r in caplog.records)
    assert any("several datasets" in r.getMessage() for r in caplog.records)


def test_dfdc_root_with_a_stray_unlabelled_folder(tmp_path, caplog):
    root = tmp_path / "videos"
    _link_tree(SHARED_DATA / "dfdc_sample", root)
    make_clip(root / "stray" / "s.mp4", seconds=1.0)
    with caplog.at_level(logging.WARNING, logger="pipeline.sources"):
        layout, videos = discover(root)
    assert layout == "dfdc"
    labels = {Path(v.path).name: v.label for v in videos}
    assert labels["s.mp4"] is None and labels["lynaeydofd.mp4"] == "real" and labels["abofeumbvv.mp4"] == "fake"
    assert any("without metadata.json" in r.getMessage() and "stray" in r.getMessage() for r in caplog.records)


def test_mixed_root_through_the_pipeline(tmp_path):
    root = tmp_path / "videos"
    make_clip(root / "ffpp" / "original_sequences" / "youtube" / "c23" / "videos" / "001.mp4", seconds=1.0)
    make_clip(root / "ffpp" / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / "001_002.mp4", seconds=1.0,
              box=True)
    make_clip(root / "dfdc" / "part0" / "aaa.mp4", seconds=1.0)
    (root / "dfdc" / "part0" / "metadata.json").write_text(json.dumps({"aaa.mp4": {"label": "REAL"}}))
    proc = run_pipeline(root, tmp_path, "--size", "64x36")
    assert "layout mixed" in proc.stderr
    videos = pd.read_parquet(tmp_path / "manifests" / "videos.parquet")
    assert sorted(videos["label"].tolist()) == ["fake", "real", "real"]
