"""The zoo's runtime networks: a timm backbone (pooled features) + a linear head, in the [real, fake] convention.

Built from timm alone, so a package loads without the authors' libraries. Two details make the conversions exact:
TF-ported EfficientNets whose authors used efficientnet_pytorch pad every strided convolution by the "same" rule
computed once for the design input size (380 px), not per input, so those pads are fixed here (`static_pads`;
train.linear_head.StaticPadConv2d), and a one-logit sigmoid head becomes the logits [0, z] (softmax gives
sigmoid(z) for fake).
"""
from __future__ import annotations

import contextlib
import math

import timm
import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from torch import nn

from train.linear_head import StaticPadConv2d, fix_pads  # noqa: F401 (StaticPadConv2d: named here too)


def same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "same" padding of one side: (before, after) for an input of `size`."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def static_pads(model: nn.Module, size: int, stem_padding: bool = True) -> dict[str, list[int]]:
    """The pads of every dynamic-"same" convolution of a timm TF EfficientNet as efficientnet_pytorch fixes them for
    a `size` x `size` input: sizes tracked through the convolutions in order (their registration order is the
    forward order), ceil(size / stride) after each. Without stem padding the stem pads nothing (the tracked size
    is unchanged: efficientnet_pytorch computed the later pads before the stem was replaced)."""
    pads = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d) or module.stride == (1, 1) and not isinstance(module, Conv2dSame):
            continue
        (kh, kw), (sh, sw), (dh, dw) = module.kernel_size, module.stride, module.dilation
        if isinstance(module, Conv2dSame):
            top, bottom = same_pad(size, kh, sh, dh)
            left, right = same_pad(size, kw, sw, dw)
            pads[name] = [0, 0, 0, 0] if name == "conv_stem" and not stem_padding else [left, right, top, bottom]
        size = math.ceil(size / sh)
    return pads


class ZooNet(nn.Module):
    """features = net(x) (pooled); optionally L2-normalised; head; one logit z -> [0, z]."""

    def __init__(self, net: nn.Module, features: int, outputs: int, normalise: bool) -> None:
        super().__init__()
        self.net = net
        self.head = nn.Linear(features, outputs, device=_device_of(net))
        self.normalise = normalise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net(x)
        if self.normalise:
            features = F.normalize(features, p=2, dim=1)
        logits = self.head(features)
        if logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


class ZooEnsemble(nn.Module):
    """Members with one input: log of the mean of their softmax, so P(fake) is the mean of theirs."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, members, 2): each member's own logits (a video rule applied per member, e.g. the winner's)."""
        return torch.stack([m(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.member_logits(x).softmax(dim=2).mean(dim=1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def build_net(arch: dict, empty: bool = False) -> ZooNet:
    """One member from config.json's "architecture" (Architecture.to_dict() + "static_pads"); `empty` builds it on
    the meta device (shapes only: fill it with load_state_dict(assign=True))."""
    with torch.device("meta") if empty else contextlib.nullcontext():
        net = timm.create_model(arch["timm_name"], pretrained=False, num_classes=0)
        fix_pads(net, arch.get("static_pads") or {})
        return ZooNet(net, int(arch["features"]), int(arch["outputs"]), bool(arch["normalise"]))


def build(arch: dict, members: int, empty: bool = False) -> nn.Module:
    """The package's network: one ZooNet, or a ZooEnsemble of `members`."""
    nets = [build_net(arch, empty) for _ in range(members)]
    return nets[0] if members == 1 else ZooEnsemble(nets)


def resolved(arch: dict) -> dict:
    """An Architecture's dict with its static pads computed (what config.json stores)."""
    out = dict(arch)
    if arch.get("static_pads_at"):
        with torch.device("meta"):
            net = timm.create_model(arch["timm_name"], pretrained=False, num_classes=0)
        out["static_pads"] = static_pads(net, int(arch["static_pads_at"]), bool(arch.get("stem_padding", True)))
    return out
