"""A timm backbone's pooled features and a linear head: the shape of the published detectors (train.zoo), as the
trainer builds and trains it (`dfd train --init` a zoo package).

`PooledBody` is timm's model without its classifier (its own global pool), the features optionally L2-normalised
(GenD); `LinearHead` is one linear layer whose single logit z becomes the logits [0, z] (softmax gives sigmoid(z)
for fake). TF-ported EfficientNets whose authors fixed their "same" pads for one input size keep those pads
(StaticPadConv2d, `fix_pads`). Layer groups split the body by timm's coarse group matcher (`timm_halves`), as for
the toolkit's own timm bodies (train.model.TimmBody).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class StaticPadConv2d(nn.Conv2d):
    """A convolution after a fixed zero pad (left, right, top, bottom); its weights are named as nn.Conv2d's."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                         conv.groups, conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)
        self.pad = tuple(int(p) for p in pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def fix_pads(model: nn.Module, pads: dict[str, list[int]]) -> None:
    """Replace the named convolutions by StaticPadConv2d with these pads (same parameter names)."""
    for name, pad in pads.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, StaticPadConv2d(getattr(parent, child), pad))


def timm_halves(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(stem + the first half of the stages, the rest) from timm's coarse group_matcher; a parameter no group
    names falls into the second; a model without a matcher is split in parameter order, half and half."""
    from timm.models import group_parameters

    named = dict(net.named_parameters())
    try:
        groups = group_parameters(net, net.group_matcher(coarse=True))
    except (AttributeError, NotImplementedError):
        names = list(named)
        half = len(names) // 2
        return [named[n] for n in names[:half]], [named[n] for n in names[half:]]
    ids = sorted(groups)
    stages = ids[1:]
    first = {ids[0], *stages[:len(stages) // 2]}  # resnet: stem, layer1, layer2 | layer3, layer4
    lower = {n for i in ids if i in first for n in groups[i]}
    return [p for n, p in named.items() if n in lower], [p for n, p in named.items() if n not in lower]


class PooledBody(nn.Module):
    """timm's model without its classifier: pooled features (N, C), L2-normalised when `normalise`."""

    def __init__(self, net: nn.Module, normalise: bool = False) -> None:
        super().__init__()
        self.net = net
        self.normalise = bool(normalise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net(x)
        return F.normalize(features, p=2, dim=1) if self.normalise else features

    def gradcam_layer(self) -> nn.Module:
        """The last feature stage (timm's feature_info), as train.zoo.runtime.OwnInput names it."""
        return self.net.get_submodule(self.net.feature_info[-1]["module"])

    def split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        return timm_halves(self.net)


class LinearHead(nn.Module):
    """One linear layer on the pooled features; one output z -> the logits [0, z]."""

    def __init__(self, features: int, outputs: int) -> None:
        super().__init__()
        self.head = nn.Linear(features, outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        if logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


def build_pooled(network: dict, empty: bool = False) -> tuple[PooledBody, LinearHead]:
    """(body, head) from a zoo package's "architecture" (timm_name, features, outputs, normalise, static_pads);
    `empty` builds on the meta device (shapes only)."""
    import timm

    with torch.device("meta") if empty else contextlib.nullcontext():
        net = timm.create_model(network["timm_name"], pretrained=False, num_classes=0)
        fix_pads(net, network.get("static_pads") or {})
        return (PooledBody(net, bool(network.get("normalise", False))),
                LinearHead(int(network["features"]), int(network["outputs"])))
