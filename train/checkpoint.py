"""Checkpoints back to a model: the network a run's config describes (a frame model of train.model, or a clip model
of train.clip_model for an `--input clips` run) and a checkpoint of this trainer -> (model in eval mode, config).
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from train.clip_model import R2Plus1DModel, TallModel, TemporalModel, build_clip_model
from train.config import RecipeError, TrainConfig, clip_arch
from train.model import WeightsError, build_model, size_problem
from train.paths import RunLayout


def model_for(config: TrainConfig, pretrained: bool = False) -> nn.Module:
    """The model a training config describes: a clip model for a clip arch (tall:ARCH, temporal:ARCH,
    r2plus1d_18), else its frame architecture (and zoo network) fed its model input."""
    if clip_arch(config.arch) is not None:
        return build_clip_model(config.arch, pretrained)
    return build_model(config.arch, pretrained, config.network, config.model_input)


def frame_body(model: nn.Module) -> nn.Module | None:
    """The 2D body that sees each frame (or TALL's thumbnail); None for a 3D CNN."""
    if isinstance(model, TallModel):
        return model.frame_model[0]
    if isinstance(model, TemporalModel):
        return model.body
    if isinstance(model, R2Plus1DModel):
        return None
    return model[0]


def sized_model(config: TrainConfig) -> tuple[nn.Module, str | None]:
    """The model a config describes, and why its input size does not fit its body (None when it does): a saved
    config or package can name a size its network cannot take, refused before any weights load."""
    model = model_for(config)
    body = frame_body(model)
    problem = size_problem(body, config.image_size) if body is not None else None
    size = f"{config.image_size[1]}x{config.image_size[0]}"
    return model, (f"image size {size}: --arch {config.arch} {problem}" if problem else None)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """A checkpoint of this trainer -> (model in eval mode with its weights, the run's TrainConfig)."""
    try:
        data = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"{path}: not a checkpoint of this trainer ({err.__class__.__name__})") from None
    if not isinstance(data, dict) or "model" not in data or "config" not in data:
        raise WeightsError(f"{path}: not a checkpoint of this trainer (needs 'model' and 'config')")
    try:
        layout = RunLayout.of_checkpoint(path)
        config = TrainConfig.from_checkpoint(data["config"], layout.root if layout else None)
    except RecipeError as err:
        raise WeightsError(f"{path}: {err}") from None
    model, problem = sized_model(config)
    if problem:
        raise WeightsError(f"{path}: {problem}")
    model.load_state_dict(data["model"])
    model.eval()
    return model, config
