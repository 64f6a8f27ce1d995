"""Issue 29 items 1-2: files written before the typed spec still load through migrate(); a run records its paths
relative to its folder and reads the same from any working directory; model references (zoo: included)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig
from pipeline.dataset import face_crop, frame_sampling
from pipeline.spec import FaceCrop, FrameSampling, migrate
from pipeline.stages.faces.manifest import same_settings
from pipeline.stages.faces.plan import run_settings
from train.config import TrainConfig
from train.checkpoint import load_checkpoint
from train.paths import CheckpointError, RunLayout, resolve
from train.score.threshold import decision_threshold, run_videos

BEFORE = Path(__file__).resolve().parents[1] / "helpers" / "data" / "before_issue29"


def _json(name: str) -> dict:
    return json.loads((BEFORE / name).read_text())


def test_a_dataset_and_run_written_before_the_spec_load_through_migrate():
    dataset = _json("dataset.json")
    frames = frame_sampling(dataset["config"], BEFORE / "dataset.json")
    assert frames == FrameSampling(fps=3.0, size=(384, 216), quality=2, skip_frames="noref")
    faces = face_crop(dataset["faces"], BEFORE / "dataset.json")
    assert faces == FaceCrop(min_size=30, face_size=96, jpeg_quality=90)
    # a faces fragment made before is still "made with the run's settings": nothing is redone or left pending
    assert same_settings(_json("faces_done.json")["settings"], run_settings(faces))
    assert not same_settings(_json("faces_done.json")["settings"], run_settings(FaceCrop(face_size=128)))
    config = TrainConfig.from_checkpoint(_json("run_config.json"))
    assert config.frames == frames and config.faces == faces and config.input == "faces"
    # a part config written before compares equal to this version's settings for the same command
    part = migrate("part", _json("part_config.json"))
    same = PipelineConfig(videos=part["videos"], fps=3.0, size=(384, 216), skip_frames=part["skip_frames"])
    assert all(part[k] == v for k, v in same.frame_settings().items())


def test_a_run_records_its_paths_relative_to_itself(tiny_run, tiny_dataset, tmp_path, monkeypatch):
    saved = json.loads((tiny_run / "config.json").read_text())
    assert saved["paths"] == "run" and not Path(saved["shards"]).is_absolute() and saved["out"] == "."
    assert json.loads((tiny_run / "explain.json").read_text())["checkpoint"] == "checkpoints/best.pt"
    best = (tiny_run / "checkpoints" / "best.pt").resolve()
    here = decision_threshold([best], [None], "mean")
    assert here["rule"] == "eer"  # chosen on the run's own validation videos
    monkeypatch.chdir(tmp_path)  # the same run from another working folder
    _, config = load_checkpoint(best)
    assert Path(config.shards).resolve() == Path(tiny_dataset["shards"]).resolve()
    assert Path(config.manifests).resolve() == Path(tiny_dataset["manifests"]).resolve()
    assert run_videos(best) is not None and decision_threshold([best], [None], "mean") == here


def test_an_older_explain_json_names_its_checkpoint_from_where_training_ran(tmp_path):
    layout = RunLayout(tmp_path / "runs" / "x")
    assert layout.resolve("runs/x/checkpoints/best.pt") == layout.checkpoint("best")
    assert layout.resolve("checkpoints/last.pt") == layout.checkpoint("last")
    assert layout.store(layout.checkpoint("best")) == "checkpoints/best.pt"
    assert RunLayout.of_checkpoint(layout.checkpoint("best")) == RunLayout(layout.root.resolve())
    assert RunLayout.of_checkpoint(tmp_path / "best.pt") is None


def test_model_references(tiny_run, tmp_path, monkeypatch):
    assert resolve(tiny_run) == tiny_run / "checkpoints" / "best.pt"
    assert resolve("last", tiny_run) == tiny_run / "checkpoints" / "last.pt"
    monkeypatch.setenv("DFD_ZOO_CACHE", str(tmp_path / "zoo"))
    with pytest.raises(CheckpointError, match=r"zoo:sbi-c23: no imported package at .*dfd zoo import sbi-c23"):
        resolve("zoo:sbi-c23")
    with pytest.raises(CheckpointError, match="nowhere"):
        resolve(tmp_path / "nowhere")
