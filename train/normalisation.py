"""What a backbone expects as input, and the one affine map from the toolkit's batches to it.

Every batch the toolkit makes is normalised with ImageNet's mean and std (train.model.normalize): the convention
every caller keeps. A backbone trained otherwise (CLIP's mean and std, timm models with 0.5/0.5, a published
detector fed [0, 1] pixels) gets its own normalisation inside the model: `to_backbone(spec)` is the per-channel
gain and bias (and colour order) that turn an ImageNet-normalised batch into the spec's (pixel / scale, minus mean,
over std), applied by the model's forward (train.model.Detector, train.zoo.runtime.OwnInput). The spec is recorded
once, when a run starts (train.fit), in its config (TrainConfig.input_norm) and so in every checkpoint and
package; a config that records none was trained with ImageNet's.
"""
from __future__ import annotations

import torch

from pipeline.spec import IMAGENET_MEAN, IMAGENET_STD, ModelInput
from train.config import ARCHS

IMAGENET = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": 255.0, "colour": "rgb"}


def backbone_input(arch: str) -> dict:
    """The normalisation `arch`'s pretrained weights expect: timm's pretrained config resolved as timm's own
    resolve_data_config does (the named tag's, else the architecture's default tag), ImageNet's for torchvision's
    ResNets and for a timm name without a pretrained config. The input size and interpolation timm gives are not
    taken: the recipe sets the size and the toolkit's data path its resizing."""
    if arch in ARCHS:  # torchvision's ImageNet ResNets
        return dict(IMAGENET)
    import timm
    from timm.data import resolve_data_config

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        return dict(IMAGENET)
    data = resolve_data_config({}, pretrained_cfg=cfg.to_dict())
    return {"mean": [float(v) for v in data["mean"]], "std": [float(v) for v in data["std"]], "scale": 255.0,
            "colour": "rgb"}


def norm_of(spec: ModelInput) -> dict:
    """The normalisation parts of a ModelInput, as TrainConfig.input_norm records them."""
    return {"mean": list(spec.mean), "std": list(spec.std), "scale": float(spec.scale), "colour": spec.colour}


def is_imagenet(spec: ModelInput) -> bool:
    """The spec is the toolkit's own convention: nothing to do to an ImageNet-normalised batch."""
    return norm_of(spec) == IMAGENET


def to_backbone(spec: ModelInput) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(channel order, gain, bias) with spec's normalisation = x[:, order] * gain + bias for an ImageNet-normalised
    x: pixel = x * in_std + in_mean, out = (pixel / scale - mean) / std. gain and bias are float32, (1, 3, 1, 1)."""
    in_mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64) * 255
    in_std = torch.tensor(IMAGENET_STD, dtype=torch.float64) * 255
    order = [2, 1, 0] if spec.colour == "bgr" else [0, 1, 2]
    in_mean, in_std = in_mean[order], in_std[order]
    mean = torch.tensor(spec.mean, dtype=torch.float64)
    std = torch.tensor(spec.std, dtype=torch.float64)
    gain = in_std / (spec.scale * std)
    bias = (in_mean / spec.scale - mean) / std
    return order, gain.float().view(1, 3, 1, 1), bias.float().view(1, 3, 1, 1)
