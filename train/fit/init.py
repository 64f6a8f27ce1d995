"""`dfd train --init MODEL`: fine-tune from a model package (one `dfd export` wrote, a zoo package that
`dfd zoo import` wrote, hf://, zoo:NAME) or a run's checkpoint.

The source's architecture (a zoo package's network: its timm backbone's pooled features and linear head,
train.linear_head), weights, input kind, input size, normalisation and, for a faces model, the face crop it was
made for become the run's starting point; the recipe's stages then run on the run's data. What cannot work is
refused in one line naming both sides: --arch, --input or --weights that contradict the source, an ensemble, a
faces model on shards without faces (train.fit.loop.open_run). The run's config records the source (`init`), so
a resumed run starts from its own checkpoint, never the source again.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from dfd.errors import UsageProblem
from train.config import TrainConfig
from train.normalisation import norm_of
from train.paths import CheckpointError, is_package, resolve
from train.score.checkpoints import load_model
from train.score.package import kind_of
from train.zoo.importer import KIND as ZOO_KIND

log = logging.getLogger(__name__)


class InitError(UsageProblem):
    """--init names a model the run cannot start from, or options that contradict it."""


@dataclass(frozen=True)
class Start:
    """What a run starts from: the record config.init keeps, the source's config, its network and weights (state
    dict in the keys of train.model.Detector)."""

    record: dict
    config: TrainConfig
    network: dict | None
    state: dict


def _zoo_start(reference: str, path: Path) -> Start:
    from train.zoo import load_zoo_package
    from train.zoo.runtime import describe_zoo, zoo_train_config

    net, zoo = load_zoo_package(path)
    members = int(zoo.get("members", 1))
    if members != 1:
        raise InitError(f"--init {reference}: an ensemble of {members} networks cannot be fine-tuned as one; import "
                        "one member (`dfd zoo import NAME FILE --out DIR` with one file) and pass that package")
    state = {("0." if k.startswith("net.") else "1.") + k: v for k, v in net.state_dict().items()}
    facts = describe_zoo(zoo)
    if facts["non_commercial"]:
        log.warning("--init %s: %s; a model fine-tuned from it inherits these terms", reference, facts["licence"])
    record = {"reference": reference, "path": str(path.resolve()), "kind": "zoo", "name": facts["name"],
              "licence": facts["licence"]}
    return Start(record, zoo_train_config(zoo, path), dict(zoo["architecture"]), state)


def read_start(reference: str | Path) -> Start:
    """The source --init names (train.paths.resolve: a package folder, zoo:NAME, hf://, a run folder, a .pt)."""
    reference = str(reference)
    try:
        path = resolve(reference)
    except CheckpointError as err:  # zoo:NAME not imported yet says how; a path names what it takes
        if reference.startswith("zoo:"):
            raise InitError(f"--init {err}") from None
        raise InitError(f"--init {reference}: no model package, run folder or checkpoint there; pass a package "
                        "folder, zoo:NAME, hf://OWNER/NAME, a run folder or a checkpoint (.pt)") from None
    if is_package(path) and kind_of(path) == ZOO_KIND:
        return _zoo_start(reference, path)
    model, config = load_model(path)
    kind = "package" if is_package(path) else "checkpoint"
    record = {"reference": reference, "path": str(Path(path).resolve()), "kind": kind, "name": config.arch}
    return Start(record, config, config.network, model.state_dict())


def init_input(start: Start, given: str | None) -> str:
    """The run's input kind: the source's; --input naming another is refused."""
    if given is not None and given != start.config.input:
        raise InitError(f"--input {given}, but --init {start.record['reference']} is a {start.config.input} model: "
                        f"train it on {start.config.input} (leave --input out)")
    return start.config.input


def _fixed_size(timm_name: str) -> bool:
    """timm builds this network for one input size only (a ViT's position embeddings, built without resampling)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(timm_name)
    return bool(cfg is not None and cfg.fixed_input_size)


def with_init(config: TrainConfig, start: Start, given: dict) -> TrainConfig:
    """`config` (TrainConfig.from_recipe with the source's input) starting from `start`. given: the command line's
    arch, weights and image_size (None where not given)."""
    ref, src = start.record["reference"], start.config
    if given.get("weights") is not None:
        raise InitError(f"--init {ref} and --weights {given['weights']} both name the starting weights: pass one")
    if given.get("arch") is not None and given["arch"] != src.arch:
        raise InitError(f"--arch {given['arch']}, but --init {ref} is a {src.arch}: leave --arch out")
    size = src.image_size
    if given.get("image_size") is not None and config.image_size != size:
        if start.network is not None and _fixed_size(start.network["timm_name"]):
            raise InitError(f"--image-size {given['image_size']}, but --init {ref} is a {start.network['timm_name']}, "
                            f"which takes {size[1]}x{size[0]} inputs only: leave --image-size out")
        log.warning("--init %s was made for %dx%d inputs; training at %dx%d as --image-size says", ref, size[1],
                    size[0], config.image_size[1], config.image_size[0])
        size = config.image_size
    recipe = dataclasses.replace(config.recipe, image_size=size)
    if src.input == "faces" and src.faces is not None:  # train.fit.loop warns when the face shards were cut otherwise
        recipe = dataclasses.replace(recipe, faces={"margin": src.faces.margin, "face_size": src.faces.face_size})
    return dataclasses.replace(config, recipe=recipe, arch=src.arch, network=start.network, input=src.input,
                               input_norm=norm_of(src.model_input), weights="none", init=start.record)


def load_start(model: nn.Module, init: dict) -> None:
    """The source's weights into the run's new model (the source read again from the path the run recorded)."""
    start = read_start(init["path"])
    try:
        model.load_state_dict(start.state)
    except RuntimeError as err:
        raise InitError(f"--init {init['reference']}: its weights do not fit the run's model "
                        f"({str(err).strip().splitlines()[0]})") from None
    log.info("starting from %s (%s)", init["reference"], init["kind"])
