"""Model packages: a folder in the Hugging Face Hub's layout that holds a trained model without any pickle.

    model.safetensors   the weights only (safetensors: a JSON header and raw tensors; loading executes nothing)
    config.json         everything prediction needs: architecture, input kind, image size, normalisation, class
                        order, frame and face settings, aggregation rule, the decision threshold and how it was
                        chosen, and the run's full training config (read back by TrainConfig.from_checkpoint)
    README.md           the model card (written by train.score.card)

`hf://OWNER/NAME[@REVISION]` names a package on the Hub, downloaded with huggingface_hub.snapshot_download (its
cache; only those three files). Loading a package reads JSON and safetensors, never torch.load.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import safetensors.torch
from safetensors import SafetensorError
from torch import nn

from dfd.errors import UsageProblem
from dfd.files import writable_folder, write_bytes, write_text
from pipeline.spec import ModelInput, SpecError
from train.config import RecipeError, TrainConfig
from train.paths import CARD, CONFIG, FORMAT, FORMAT_VERSION, WEIGHTS, PackageError, RunLayout, is_package
from train.checkpoint import sized_model
from train.model import is_torchvision
from train.zoo.importer import KIND as ZOO_KIND

log = logging.getLogger(__name__)

CLASSES = ("real", "fake")  # the model's output order: index 1 is P(fake), label 1 is fake (pipeline.dataset)
# the top-level fields that must agree with the training config (a hand edit of one but not the other is refused)
CHECKED = ("architecture", "input", "image_size", "aggregate", "model_input")


def package_config(config: TrainConfig, threshold: dict, source: dict) -> dict:
    """config.json: the prediction settings at the top, the training config whole under "training"."""
    spec = config.model_input
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "architecture": config.arch, "library": "torchvision" if is_torchvision(config.arch) else "timm",
        "head": "fastai (concat pool, BN, dropout, linear 512, ReLU, BN, dropout, linear 2)" if config.network is None
        else f"linear ({config.network['features']} -> {config.network['outputs']}) on the pooled features",
        "classes": list(CLASSES),
        "input": config.input, "image_size": list(config.image_size), "image_size_order": "height, width",
        "normalization": {"mean": list(spec.mean), "std": list(spec.std), "scale": spec.scale,
                          "note": f"{spec.colour.upper()} uint8 / {spec.scale:g}, minus mean, over std (the "
                                  "backbone's)"},
        "model_input": spec.to_dict(),
        "frames": config.frames.to_dict() if config.frames else None,
        "faces": config.faces.to_dict() if config.faces else None,
        "clips": config.clips.to_dict() if config.clips else None,
        "aggregate": config.aggregate, "threshold": threshold,
        "source": source, "training": config.to_dict(),
    }


class ReplaceRefused(UsageProblem):
    """`dfd export --out` names a folder whose files the package would replace without being asked to."""


def may_write_package(out: str | Path, sha256: str, replace: bool = False) -> None:
    """Before any work: `out` can be written, is not a run folder (its config.json is the run's own: compare,
    explain and --resume read it), and holds no package files of another model unless `replace`. A package of the
    same checkpoint (its source sha256) is exported again without asking."""
    out = writable_folder(out)
    if RunLayout(out).is_run():
        raise ReplaceRefused(f"--out {out} is a run folder: the package's {CONFIG} would replace the run's own "
                             f"(dfd compare, explain and --resume read it); write it elsewhere, e.g. "
                             f"--out {out / 'package'}")
    present = [name for name in (WEIGHTS, CONFIG, CARD) if (out / name).exists()]
    if not present or replace or _source_sha256(out) == sha256:
        return
    what = "another model's package" if is_package(out) else ", ".join(present)
    raise ReplaceRefused(f"--out {out} already holds {what}; pass --replace to replace it, or choose another --out")


def _source_sha256(folder: Path) -> str | None:
    try:
        source = json.loads((folder / CONFIG).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source.get("sha256") if isinstance(source, dict) else None


def write_package(out: str | Path, model: nn.Module, config: dict, card: str) -> Path:
    """The three files (each written atomically) into `out`; returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(out / WEIGHTS, safetensors.torch.save(state, metadata={"format": "pt"}))
    write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    write_text(out / CARD, card)
    return out


def read_config(folder: str | Path) -> dict:
    """A package's config.json, checked to be one (format, a training config, a threshold)."""
    path = Path(folder) / CONFIG
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PackageError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PackageError(f"{path}: not a model package of this toolkit (format is not {FORMAT!r})")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise PackageError(f"{path}: format_version {data.get('format_version')} is newer than this toolkit reads "
                           f"({FORMAT_VERSION}); upgrade the toolkit")
    if not isinstance(data.get("training"), dict):
        raise PackageError(f"{path}: has no training config")
    return data


def _check_agrees(path: Path, data: dict, config: TrainConfig) -> None:
    have = {"architecture": config.arch, "input": config.input, "image_size": list(config.image_size),
            "aggregate": config.aggregate, "model_input": config.model_input.to_dict()}
    if "model_input" in data:  # bounded like every spec part
        try:
            data = {**data, "model_input": ModelInput.from_dict(data["model_input"], where=str(path)).to_dict()}
        except SpecError as err:
            raise PackageError(str(err)) from None
    for key in CHECKED:
        if key in data and data[key] != have[key]:
            raise PackageError(f"{path}: {key} is {data[key]!r} but the training config says {have[key]!r}; "
                               "edit neither by hand (export again)")


def kind_of(folder: str | Path) -> str:
    """A package's kind: "zoo" for a published detector imported by `dfd zoo import`, else "" (the toolkit's own)."""
    try:
        data = json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError):
        return ""
    return data.get("kind", "") if isinstance(data, dict) and isinstance(data.get("kind", ""), str) else ""


def zoo_facts(folder: str | Path) -> dict | None:
    """A zoo package's source, licence, preprocessing and detectors for a verdict (train.zoo.runtime.describe_zoo);
    None for any other checkpoint or package."""
    if not is_package(folder) or kind_of(folder) != ZOO_KIND:
        return None
    from train.zoo.importer import read_zoo_config
    from train.zoo.runtime import describe_zoo

    return describe_zoo(read_zoo_config(Path(folder)))


def load_package(folder: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """A package folder -> (model in eval mode on the CPU, its TrainConfig, config.json); no unpickling. A zoo
    package (`"kind": "zoo"`) loads by train.zoo: its network behind its own normalisation, described as a faces
    model (train.zoo.runtime)."""
    folder = Path(folder)
    if kind_of(folder) == ZOO_KIND:
        from train.zoo.runtime import load_for_scoring

        return load_for_scoring(folder)
    if kind_of(folder) == "audio":
        raise PackageError(f"{folder}: a sound detector's package (dfd export of an audio run): pass it as "
                           "--audio-checkpoint / --audio-model, or alone to `dfd evaluate --checkpoint`")
    data = read_config(folder)
    try:
        config = TrainConfig.from_checkpoint(data["training"])
    except RecipeError as err:
        raise PackageError(f"{folder / CONFIG}: {err}") from None
    _check_agrees(folder / CONFIG, data, config)
    try:
        state = safetensors.torch.load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise PackageError(f"{folder / WEIGHTS}: not a safetensors file ({err})") from None
    model, problem = sized_model(config)
    if problem:
        raise PackageError(f"{folder / CONFIG}: {problem}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise PackageError(f"{folder / WEIGHTS}: the weights do not fit a {config.arch} "
                           f"({str(err).splitlines()[0]})") from None
    model.eval()
    return model, config, data


def threshold_of(folder: str | Path) -> dict | None:
    """The stored decision threshold of a package (None for a package without one: a zoo package); one that is
    there but not a number from 0 to 1 is a PackageError, never quietly 0.5."""
    if kind_of(folder) == ZOO_KIND:
        return None
    threshold = read_config(folder).get("threshold")
    if threshold is None:
        return None
    value = threshold.get("value") if isinstance(threshold, dict) else threshold
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise PackageError(f"{Path(folder) / CONFIG}: threshold value {value!r} is not a number from 0 to 1 "
                           "(export again, or write it as a number)")
    return threshold
