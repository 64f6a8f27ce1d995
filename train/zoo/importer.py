"""Import a zoo entry's published files into one of our model packages, and load such a package back.

The package is the house format (model.safetensors, config.json, README.md; train.score.package) with `"kind":
"zoo"`: config.json holds the entry (source, licences, reported figures, the authors' preprocessing), the input
spec (pipeline.spec.ModelInput), the runtime architecture with its fixed pads, and the imported files' sha256.
Nothing is written until every file has been read and converted and fits the architecture.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from dfd.errors import ToolkitError, UsageProblem
from dfd.files import sha256_file, write_bytes, write_text
from pipeline.spec import ModelInput, SpecError
from train.paths import CARD, CONFIG, FORMAT, FORMAT_VERSION, WEIGHTS
from train.zoo import arch as zoo_arch
from train.zoo.entries import Entry, entry, entry_dict
from train.zoo.here import differences
from train.zoo.layouts import LayoutError, check_fits, convert, read_file

log = logging.getLogger(__name__)

# the house's package format (train.paths; train.score.package dispatches "kind": "zoo" here)
CLASSES = ("real", "fake")
KIND = "zoo"


class ZooPackageError(ToolkitError, RuntimeError):
    """A zoo package that cannot be read (exit 1)."""


def _stages(arch: dict) -> list[int]:
    net = zoo_arch.build_net(arch, empty=True).net
    blocks = getattr(net, "blocks", [])
    return [len(stage) if isinstance(stage, nn.Sequential) else 1 for stage in blocks]


def convert_files(e: Entry, files: list[Path], arch: dict) -> dict[str, torch.Tensor]:
    """Every file -> one state dict of the package's network (members.I. prefixes for several files)."""
    if not files:
        raise UsageProblem(f"{e.name}: give the published file(s) to import")
    if len(files) > e.max_files:
        raise UsageProblem(f"{e.name}: at most {e.max_files} file(s), got {len(files)}")
    expected = {k: v for k, v in zoo_arch.build_net(arch, empty=True).state_dict().items()}
    stages = _stages(arch)
    state = {}
    for i, path in enumerate(files):
        member = convert(path, read_file(path), e.layout, stages)
        check_fits(path, member, expected, f"{e.name} ({e.architecture.timm_name} + head)")
        prefix = f"members.{i}." if len(files) > 1 else ""
        state.update({prefix + k: v.detach().to("cpu").contiguous() for k, v in member.items()})
        log.info("%s: converted (%d tensors)", path, len(member))
    return state


def package_config(e: Entry, files: list[Path], arch: dict) -> dict:
    """config.json of an imported entry."""
    spec: ModelInput = e.input
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
        "architecture": arch, "members": len(files), "classes": list(CLASSES),
        "input": spec.to_dict(), "image_size": list(spec.size), "image_size_order": "height, width",
        "normalization": {"mean": list(spec.mean), "std": list(spec.std), "scale": spec.scale,
                          "note": f"RGB / {spec.scale:g}, minus mean, over std"},
        "output": "logits [real, fake]: softmax(dim=1)[:, 1] is P(fake)",
        "zoo": entry_dict(e),
        "imported": [{"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files],
    }


def card(config: dict) -> str:
    """README.md: the model card (source, licence with non-commercial use stated first, reported figures, the
    authors' preprocessing and where running it here differs from it)."""
    z = config["zoo"]
    lic = z["licence"]
    warn = ("**NON-COMMERCIAL USE ONLY.** The authors' licence does not allow commercial use of these weights.\n\n"
            if lic["non_commercial"] else "")
    rows = [f"| {f['test_set']} | {f['metric']} | {f['value']:.4f} | {f['protocol']} | {f['source']}"
            f"{'' if f['verified'] else ' (not re-verified)'} |" for f in z["reported"]]
    figures = ("| test set | metric | value | protocol | source |\n|---|---|---|---|---|\n" + "\n".join(rows)
               if rows else z["reported_note"] or "none recorded")
    p = z["preprocessing"]
    no_face = p["no_face_score"]
    files = "\n".join(f"- `{f['file']}` sha256 `{f['sha256']}`" for f in config["imported"])
    return (f"# {z['name']}: {z['title']}\n\n{warn}"
            f"## Licence\n\n- code: {lic['code']}\n- weights: {lic['weights']}\n\n"
            f"## Source\n\n- code: {z['code']}\n- paper: {z['paper']}\n- weights: "
            + ", ".join(f"[{f['name']}]({f['url']})" for f in z["files"]) + f"\n- layout: {z['layout']}\n\n"
            f"Imported exactly (`dfd zoo import`) from:\n{files}\n\n"
            f"## Figures the authors report\n\n{figures}\n\n"
            f"## Preprocessing (the authors')\n\n{p['summary']}.\n\n- detector: {p['detector_settings']} "
            f"(this toolkit's detector is MTCNN; the crop rule recorded here is the authors')\n"
            f"- input: {config['image_size'][0]}x{config['image_size'][1]}, mean {config['normalization']['mean']}, "
            f"std {config['normalization']['std']} of RGB / {config['normalization']['scale']:g}\n"
            f"- score of a video without faces: {'not recorded' if no_face is None else no_face}\n"
            + (f"- {p['note']}\n" if p["note"] else "")
            + "".join(f"- {n}\n" for n in z["notes"])
            + "\n## Run here: differences from the authors' preprocessing\n\n"
            + "".join(f"- {d}\n" for d in differences(config))
            + f"\n## Architecture\n\n{config['architecture']['reference']}; runs as timm "
            f"`{config['architecture']['timm_name']}` + a linear head ({config['members']} member(s)).\n")


def import_entry(name: str, files: list[str | Path], out: str | Path) -> dict:
    """The entry's published files -> a package in `out` (made if missing); returns its config.json."""
    e = entry(name)
    out, paths = Path(out), [Path(f) for f in files]
    if out.exists() and not out.is_dir():
        raise UsageProblem(f"--out {out}: is a file, not a folder")
    for path in paths:
        if not path.is_file():
            raise LayoutError(f"{path}: no such file")
    arch = zoo_arch.resolved(e.architecture.to_dict())
    state = convert_files(e, paths, arch)
    config = package_config(e, paths, arch)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / WEIGHTS, safetensors.torch.save(state, metadata={"format": "pt", "zoo": e.name}))
    write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    write_text(out / CARD, card(config))
    return config


def read_zoo_config(folder: Path) -> dict:
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ZooPackageError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or config.get("kind") != KIND:
        raise ZooPackageError(f"{path}: not a zoo package (format {FORMAT!r}, kind {KIND!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ZooPackageError(f"{path}: format_version {config['format_version']} is newer than this toolkit reads")
    try:
        ModelInput.from_dict(config.get("input") or {}, where=str(path))
    except SpecError as err:
        raise ZooPackageError(str(err)) from None
    return config


def load_zoo_package(folder: str | Path) -> tuple[nn.Module, dict]:
    """A zoo package -> (network in eval mode on the CPU: a normalised NCHW float batch to [real, fake] logits,
    config.json). Reads JSON and safetensors only."""
    folder = Path(folder)
    config = read_zoo_config(folder)
    try:
        state = safetensors.torch.load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ZooPackageError(f"{folder / WEIGHTS}: not a safetensors file ({err})") from None
    try:
        model = zoo_arch.build(config["architecture"], int(config.get("members", 1)), empty=True)
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ZooPackageError(f"{folder / WEIGHTS}: the weights do not fit the architecture of {CONFIG} "
                              f"({str(err).strip().splitlines()[0]})") from None
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ZooPackageError(f"{folder / WEIGHTS}: {', '.join(left[:3])} not filled by the weights")
    return model.eval(), config
