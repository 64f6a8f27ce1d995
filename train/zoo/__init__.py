"""The zoo: published deepfake detectors as data (entries), imported exactly into this toolkit's model packages.

    entries.py    one frozen Entry per published detector: source, licences, reported figures, preprocessing,
                  file layout and architecture (data only; nothing else is special-cased)
    layouts.py    a published file (read with safetensors or torch.load(weights_only=True)) -> our state dict
    arch.py       the runtime networks, built from timm alone (no reference library needed to load a package)
    fetch.py      downloads (GitHub releases, the Hugging Face Hub) into a cache; the others say where to get them
    importer.py   import: writes model.safetensors + config.json + README.md; load_zoo_package reads one back

The command is train.zoo_command (`dfd zoo list | fetch | import`).
"""
from __future__ import annotations

__all__ = ["load_zoo_package"]


def __getattr__(name: str):
    """`from train.zoo import load_zoo_package` without importing torch for `dfd zoo list`."""
    if name == "load_zoo_package":
        from train.zoo.importer import load_zoo_package
        return load_zoo_package
    raise AttributeError(f"module 'train.zoo' has no attribute {name!r}")
