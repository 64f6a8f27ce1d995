"""Checkpoints of this trainer's format with freshly initialised weights (seeded): real networks of a chosen input
kind and settings, for tests of prediction paths where what the model learnt does not matter."""
from __future__ import annotations

from pathlib import Path

import torch

from train.config import TrainConfig
from train.model import build_model

FACES = {"detect_size": 640, "min_score": 0.7, "min_size": 20, "margin": 0.3, "face_size": 64, "max_faces": 4,
         "jpeg_quality": 90, "diff_threshold": 0.1}


def untrained_checkpoint(path: Path, input: str = "faces", image_size: int = 64, fps: float = 1.0,
                         box: tuple[int, int] = (256, 144), faces: dict | None = None, seed: int = 0) -> Path:
    config = TrainConfig.from_recipe("seed", image_size=str(image_size), batch_size=8, input=input, shards="none",
                                     manifests="none", out=str(path.parent), weights="none",
                                     frames={"fps": fps, "size": list(box), "quality": 2, "timeout": 600},
                                     faces=(faces or FACES) if input == "faces" else None)
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": build_model(config.arch).state_dict(), "config": config.to_dict()}, path)
    return path
