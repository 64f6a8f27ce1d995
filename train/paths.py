"""A run folder's layout and what a model reference names: the one owner of both, so that every command finds the
same files from any working directory.

A run folder (`dfd train --out RUN`) holds config.json, metrics.csv, lr.csv, checkpoints/{best,last,audio}.pt,
explain.json, predictions.parquet, video_predictions.parquet, pipeline.json, report.html and eval-SPLIT/. Paths a
run records are stored relative to the run folder (`RunLayout.store`) and read back with `RunLayout.resolve`.

A model reference is a .pt file, a run folder (its best.pt, else last.pt), best | last (in a given run folder), a
model package folder, hf://OWNER/NAME[@REVISION] (downloaded), or zoo:NAME (a published detector imported with
`dfd zoo import`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dfd.errors import ToolkitError

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"  # a model package (train.score.package)
FORMAT, FORMAT_VERSION = "dfd-model-package", 1  # its config.json "format", "format_version"
HUB_PREFIX = "hf://"
NAMES = ("best", "last")  # a run folder's checkpoints/NAME.pt, in the order a run folder is resolved
ZOO_PREFIX = "zoo:"


class PackageError(ToolkitError, RuntimeError):
    """A model package that cannot be read or written (missing file, bad JSON, weights that do not fit)."""


class CheckpointError(ToolkitError, RuntimeError):
    """No checkpoint where one was named, or checkpoints that do not fit together; the message says which."""


@dataclass(frozen=True)
class RunLayout:
    """Where each file of a run folder lives."""

    root: Path

    def checkpoint(self, name: str) -> Path:
        return self.root / CHECKPOINTS / f"{name}.pt"

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def lr(self) -> Path:
        return self.root / "lr.csv"

    @property
    def explain(self) -> Path:
        return self.root / "explain.json"

    @property
    def video_predictions(self) -> Path:
        return self.root / "video_predictions.parquet"

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline.json"

    def eval_dir(self, split: str) -> Path:
        return self.root / f"eval-{split}"

    def is_run(self) -> bool:
        """Whether the folder is a run folder (dfd train --out): a checkpoints folder, metrics or explain.json."""
        return self.checkpoints.is_dir() or self.metrics.is_file() or self.explain.is_file()

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> "RunLayout | None":
        """The run folder of RUN/checkpoints/NAME.pt, else None (a checkpoint kept elsewhere)."""
        path = Path(checkpoint).resolve()
        return cls(path.parent.parent) if path.parent.name == CHECKPOINTS else None

    def store(self, path: str | Path) -> str:
        """`path` as a run records it: relative to the run folder."""
        return os.path.relpath(Path(path).resolve(), self.root.resolve())

    def resolve(self, stored: str | Path) -> Path:
        """A path the run recorded, wherever the command runs. Runs written before paths were stored relative to
        the run folder recorded a checkpoint as the training command saw it (RUN/checkpoints/NAME.pt from its
        working folder): its last two parts name the same file here."""
        path = Path(stored)
        if path.is_absolute():
            return path
        if len(path.parts) > 2 and path.parts[-2] == CHECKPOINTS:
            return self.checkpoints / path.name
        return self.root / path


def resolve(reference: str | Path, run_dir: str | Path | None = None) -> Path:
    """The checkpoint file or package folder a reference names (see the module doc); CheckpointError otherwise."""
    text = str(reference)
    if text.startswith(HUB_PREFIX):
        return download(text)
    if text.startswith(ZOO_PREFIX):
        return _zoo_package(text[len(ZOO_PREFIX):])
    if text in NAMES and run_dir is not None:
        return _named(RunLayout(Path(run_dir)), text)
    path = Path(reference)
    if is_package(path):
        return path
    if path.is_dir():
        layout = RunLayout(path)
        for name in NAMES:
            if layout.checkpoint(name).is_file():
                return layout.checkpoint(name)
        raise CheckpointError(f"{path} is a folder without {CHECKPOINTS}/best.pt or last.pt, nor a model package "
                              "(config.json and model.safetensors)")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass --checkpoint best, last, a run folder or a .pt file "
                              "of this trainer")
    return path


def _named(layout: RunLayout, name: str) -> Path:
    """best | last of a run folder; best falls back to last, saying so."""
    path = layout.checkpoint(name)
    if not path.is_file() and name == "best" and layout.checkpoint("last").is_file():
        log.warning("%s has no best.pt; using last.pt", layout.checkpoints)
        path = layout.checkpoint("last")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass --checkpoint best, last or a .pt file of this trainer")
    return path


def zoo_folder(name: str) -> Path:
    """Where zoo:NAME's imported package lives: $DFD_ZOO_CACHE (else ~/.cache/dfd/zoo)/NAME/package, beside the
    files `dfd zoo fetch NAME` downloads."""
    return Path(os.environ.get("DFD_ZOO_CACHE") or Path.home() / ".cache" / "dfd" / "zoo") / name / "package"


def _zoo_package(name: str) -> Path:
    """zoo:NAME -> its imported package; CheckpointError saying how to make it."""
    folder = zoo_folder(name)
    if not is_package(folder):
        raise CheckpointError(f"zoo:{name}: no imported package at {folder}; run `dfd zoo fetch {name}` and "
                              f"`dfd zoo import {name} FILE...` first (`dfd zoo list` names them)")
    return folder

def is_package(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def download(spec: str) -> Path:
    """hf://OWNER/NAME[@REVISION] -> the local snapshot folder of its package files (huggingface_hub's cache).

    Not exercised by the tests (no internet here); the folder it returns is loaded as any package folder."""
    repo = spec[len(HUB_PREFIX):]
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise PackageError(f"{spec}: write hf://OWNER/NAME (optionally @REVISION)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id=repo, revision=revision or None, allow_patterns=[CONFIG, WEIGHTS, CARD])
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise PackageError(f"{spec}: could not download the package from the Hugging Face Hub ({first}); without "
                           "internet, copy the folder (config.json, model.safetensors) here and pass its path") from None
    if not is_package(folder):
        raise PackageError(f"{spec}: the Hub repository has no {CONFIG} and {WEIGHTS} of a model package")
    log.info("%s: downloaded to %s", spec, folder)
    return Path(folder)
