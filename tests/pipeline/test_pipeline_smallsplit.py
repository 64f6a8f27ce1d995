"""Issue 11 item 8: on a small dataset the achieved val share can be far off the requested one: warn with both
numbers and what to do."""
from __future__ import annotations

import dataclasses
import logging

from pipeline.config import PipelineConfig
from pipeline.stages.frames.build import plan
from pipeline.split.hashed import fraction_warning


def test_fraction_warning_numbers():
    pairs = [("real", "train")] * 5 + [("fake", "val")] + [(None, "test")] * 4
    warning = fraction_warning(pairs, 0.3)
    assert "0.17 of the 6 labelled videos" in warning and "requested 0.30" in warning
    assert "--seed" in warning and "pipeline.resplit" in warning
    assert fraction_warning([("real", "train")] * 7 + [("fake", "val")] * 3, 0.3) is None
    assert fraction_warning([(None, "test")], 0.3) is None


def test_plan_warns_on_a_six_group_dataset(tmp_path, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = ["path,label"] + [f"v{i}.mp4,{'REAL' if i % 2 else 'FAKE'}" for i in range(6)]
    for i in range(6):
        (videos / f"v{i}.mp4").write_bytes(b"x")
    (videos / "labels.csv").write_text("\n".join(rows) + "\n")
    config = PipelineConfig(videos=str(videos), shards=str(tmp_path / "s"), manifests=str(tmp_path / "m"),
                            val_fraction=0.3, seed=1)  # seed 1 puts none of the 6 groups in val
    with caplog.at_level(logging.WARNING, logger="pipeline.stages.frames.build"):
        plan(config)
    warned = [r.getMessage() for r in caplog.records if "labelled videos in val" in r.getMessage()]
    assert len(warned) == 1 and "0.00 of the 6 labelled videos in val for a requested 0.30" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.stages.frames.build"):
        plan(dataclasses.replace(config, seed=0, size=(1280, 720), part=(1, 1)))  # 2 of 6
    assert not [r for r in caplog.records if "labelled videos in val" in r.getMessage()]
