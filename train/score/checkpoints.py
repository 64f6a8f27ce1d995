"""Checkpoints to models (which file a reference names: train.paths), and ensembles, loaded together only
when they take the same input. A package (train.score.package) is loaded from safetensors and JSON, never unpickled."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from torch import nn

from train.config import TrainConfig
from train.checkpoint import load_checkpoint
from train.model import Device
from train.paths import CheckpointError, is_package, resolve
from train.score.package import load_package, threshold_of

log = logging.getLogger(__name__)

SCORED_INPUTS = ("frames", "faces", "clips", "face-clips")


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[nn.Sequential, TrainConfig]:
    """A resolved checkpoint (train.paths.resolve) -> (model in eval mode, config): a package folder from safetensors,
    a .pt with torch.load(weights_only=True)."""
    if is_package(path):
        model, config, _ = load_package(path)
        return model.to(map_location), config
    return load_checkpoint(path, map_location=map_location)


def stored_threshold(path: str | Path) -> dict | None:
    """The decision threshold a package stores (chosen on its validation split); None for a .pt checkpoint."""
    return threshold_of(path) if is_package(path) else None


def input_settings(config: TrainConfig) -> dict:
    """What a model must be fed to mean what it learnt: input kind, image size, and the frame (and face) settings
    (a setting an older run did not record is left out)."""
    settings = {"input": config.input, "image_size": list(config.image_size)}
    if config.frames:
        settings["pipeline"] = config.frames.to_dict()
    if config.faces:
        settings["faces"] = config.faces.to_dict()
    return settings


def check_same_inputs(named: Sequence[tuple[str, dict]]) -> dict:
    """Refuse checkpoints whose input settings differ, naming both and the setting; returns the shared settings.
    A setting one checkpoint does not record (an older run) is not compared."""
    first_name, first = named[0]
    for name, settings in named[1:]:
        for key in sorted(set(first) & set(settings)):
            if first[key] != settings[key]:
                raise CheckpointError(f"the checkpoints do not take the same input: {first_name} has {key} = "
                                      f"{first[key]} but {name} has {key} = {settings[key]}; an ensemble needs the "
                                      "same input settings (train them on the same shards and image size)")
    return first


@dataclass
class Ensemble:
    """Loaded models in eval mode on one device, their paths and configs, and the input settings they share."""

    models: list[nn.Module]
    paths: list[Path]
    configs: list[TrainConfig]
    settings: dict
    dev: Device
    thresholds: list[dict | None] = field(default_factory=list)

    @property
    def config(self) -> TrainConfig:
        """The first checkpoint's config: batch size, aggregation rule and face filter default from it."""
        return self.configs[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.settings["image_size"])

    def describe(self) -> list[dict]:
        return [{"checkpoint": str(p), "arch": c.arch, "run": c.out} for p, c in zip(self.paths, self.configs)]


def load_ensemble(checkpoints: Sequence[str | Path], device: str = "auto") -> Ensemble:
    """Every checkpoint (files or run folders) on the device, after checking they take the same input."""
    if not checkpoints:
        raise CheckpointError("pass at least one --checkpoint")
    dev = Device.resolve(device, amp=True, channels_last=False)
    paths = [resolve(c) for c in checkpoints]
    models, configs = [], []
    for path in paths:
        model, config = load_model(path, map_location="cpu")
        if config.input not in SCORED_INPUTS:
            raise CheckpointError(f"{path}: a model of --input {config.input} is not scored yet (evaluate, check, "
                                  f"predict and export take {', '.join(SCORED_INPUTS)})")
        models.append(dev.prepare(model).eval())
        configs.append(config)
    settings = check_same_inputs([(str(p), input_settings(c)) for p, c in zip(paths, configs)])
    return Ensemble(models, paths, configs, settings, dev, [stored_threshold(p) for p in paths])
