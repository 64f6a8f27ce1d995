"""Checkpoints written before the typed config still load: their config (written by the previous code's
TrainConfig.to_dict, with the frame and face settings under `extra`, kept in tests/helpers/data) goes through
TrainConfig.from_checkpoint and every reader of a checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from train.config import RecipeError, TrainConfig
from train.checkpoint import load_checkpoint
from train.model import build_model
from train.score.checkpoints import input_settings, load_ensemble
from pipeline.spec import FaceCrop, FrameSampling
from train.score.videos import face_cropper, frame_settings

DATA = Path(__file__).resolve().parents[1] / "helpers" / "data"


def old_checkpoint(tmp_path: Path, name: str) -> Path:
    """A checkpoint file as the previous trainer wrote it: its config verbatim, real weights of its arch."""
    config = json.loads((DATA / name).read_text())
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": build_model(config["arch"]).state_dict(), "config": config, "optimizer": {},
                "scheduler": {}, "progress": {"stage": 1, "epoch": 1}, "rng": {}}, path)
    return path


def test_frames_checkpoint_of_the_previous_trainer_loads(tmp_path):
    path = old_checkpoint(tmp_path, "old_config_frames.json")
    model, config = load_checkpoint(path)
    saved = json.loads((DATA / "old_config_frames.json").read_text())
    assert isinstance(config, TrainConfig)
    assert config.arch == saved["arch"] and config.image_size == tuple(saved["recipe"]["image_size"])
    assert config.batch_size == saved["recipe"]["batch_size"] and config.input == "frames"
    assert config.faces is None and config.frames == FrameSampling.from_dict(saved["extra"]["pipeline"])
    assert not model.training
    assert input_settings(config) == {"input": "frames", "image_size": list(config.image_size),
                                      "pipeline": FrameSampling.from_dict(saved["extra"]["pipeline"]).to_dict()}
    settings, _ = frame_settings(path, config)
    # a checkpoint from before skip_frames decoded every frame
    assert (settings.fps, settings.size, settings.quality, settings.skip_frames) == (4.0, (256, 144), 2, "none")
    x = torch.zeros(2, 3, *config.image_size)
    assert model(x).shape == (2, 2)


def test_faces_checkpoint_keeps_its_frame_and_face_settings(tmp_path):
    path = old_checkpoint(tmp_path, "old_config_faces.json")
    saved = json.loads((DATA / "old_config_faces.json").read_text())
    _, config = load_checkpoint(path)
    assert config.input == "faces" and config.aggregate == "confident"
    assert config.frames == FrameSampling.from_dict(saved["extra"]["pipeline"])
    assert config.faces == FaceCrop.from_dict(saved["extra"]["faces"])
    assert config.to_dict()["faces"]["face_size"] == 96 and "extra" not in config.to_dict()
    settings, _ = frame_settings(path, config)  # prediction decodes as the shards were made, from the checkpoint alone
    assert (settings.fps, settings.size, settings.quality) == (3.0, (384, 216), 2)
    cropper = face_cropper(config, config.image_size, "cpu")
    assert cropper.settings.face_size == 96 and cropper.settings.min_size == 30 and cropper.quality == 90
    ensemble = load_ensemble([path.parent.parent], "cpu")  # a run folder -> its best.pt
    assert ensemble.settings["faces"] == FaceCrop.from_dict(saved["extra"]["faces"]).to_dict()
    assert ensemble.config.input == "faces"


def test_a_saved_config_round_trips_and_a_broken_one_is_named():
    saved = json.loads((DATA / "old_config_faces.json").read_text())
    config = TrainConfig.from_checkpoint(saved)
    assert TrainConfig.from_checkpoint(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(RecipeError, match="no recipe"):
        TrainConfig.from_checkpoint({"arch": "resnet18"})
    broken = {**saved, "recipe": {**saved["recipe"], "batch_size": 0}}
    with pytest.raises(RecipeError, match="batch_size"):
        TrainConfig.from_checkpoint(broken)
