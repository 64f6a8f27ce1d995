"""Checkpoints to models: which file a name means (best | last | a run folder | a path), and ensembles, loaded
together only when they take the same input."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import nn

from dfd.errors import ToolkitError
from train.config import TrainConfig
from train.model import Device, load_checkpoint

log = logging.getLogger(__name__)

NAMES = ("best", "last")  # a run folder's checkpoints/NAME.pt


class CheckpointError(ToolkitError, RuntimeError):
    """No checkpoint where one was named, or checkpoints that do not fit together; the message says which."""


def resolve_checkpoint(checkpoint: str | Path, run_dir: str | Path | None = None) -> Path:
    """The checkpoint file meant by: best | last (in `run_dir`; best falls back to last, saying so), a run folder
    (its checkpoints/best.pt, else last.pt), or a file."""
    if str(checkpoint) in NAMES and run_dir is not None:
        folder = Path(run_dir) / "checkpoints"
        path = folder / f"{checkpoint}.pt"
        if not path.is_file() and str(checkpoint) == "best" and (folder / "last.pt").is_file():
            log.warning("%s has no best.pt; using last.pt", folder)
            path = folder / "last.pt"
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}; pass --checkpoint best, last or a .pt file of this "
                                  "trainer")
        return path
    path = Path(checkpoint)
    if path.is_dir():
        for name in NAMES:
            if (path / "checkpoints" / f"{name}.pt").is_file():
                return path / "checkpoints" / f"{name}.pt"
        raise CheckpointError(f"{path} is a folder without checkpoints/best.pt or last.pt")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass --checkpoint best, last, a run folder or a .pt file "
                              "of this trainer")
    return path


def input_settings(config: TrainConfig) -> dict:
    """What a model must be fed to mean what it learnt: input kind, image size, and the frame (and face) settings
    (a setting an older run did not record is left out)."""
    settings = {"input": config.input, "image_size": list(config.image_size)}
    if config.frames:
        settings["pipeline"] = config.frames
    if config.faces:
        settings["faces"] = config.faces
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
    paths = [resolve_checkpoint(c) for c in checkpoints]
    models, configs = [], []
    for path in paths:
        model, config = load_checkpoint(path, map_location="cpu")
        models.append(dev.prepare(model).eval())
        configs.append(config)
    settings = check_same_inputs([(str(p), input_settings(c)) for p, c in zip(paths, configs)])
    return Ensemble(models, paths, configs, settings, dev)
