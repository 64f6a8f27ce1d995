"""The model: a torchvision ResNet or any timm backbone + fastai head, three layer groups, freezing, param groups;
its input convention (ImageNet normalisation) and where it runs (Device). (Checkpoints back to a model: train.checkpoint.)

`--arch resnet18|resnet34|resnet50` is torchvision's ResNet (as the seed trained); any other name is a timm model
(`efficientnet_b4`, `tf_efficientnet_b7`, `xception41`, `convnext_tiny`, ...) whose `forward_features` gives the
last feature map. Every backbone gets the same head and three layer groups, stem and the first half of the stages |
the other stages (and any final conv/norm) | head, so freezing and discriminative LRs mean the same for all.
A vision transformer (`vit_base_patch16_clip_224.openai`, `vit_small_patch14_dinov2.lvd142m`, ...) gives its patch
tokens laid back on the patch grid (TokenGrid: prefix tokens dropped), so the same head and Grad-CAM apply; its
groups are patch embedding and the first half of the blocks | the rest | head; `--tune` (set_frozen) picks what
trains. A run initialised from a zoo package (`dfd train --init`) keeps the package's network instead: a timm
backbone's pooled features and a linear head (train.linear_head), grouped the same way.

Every caller feeds the model ImageNet-normalised batches (normalize); the model (Detector) turns them into its
backbone's normalisation (train.normalisation: CLIP's, timm's pretrained config's, a package's) in its forward,
with no parameters and nothing in its state dict, so checkpoints keep their keys and every call site its code.
"""
from __future__ import annotations

import contextlib
import logging
import pickle
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from dfd.errors import ToolkitError, UsageProblem
from pipeline.spec import IMAGENET_MEAN, IMAGENET_STD, MAX_INPUT, ModelInput
from train.config import MIN_IMAGE
from train.linear_head import build_pooled, timm_halves
from train.normalisation import is_imagenet, to_backbone

log = logging.getLogger(__name__)

BACKBONES = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
}
N_CLASSES = 2
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # timm's BatchNormAct2d subclasses BatchNorm2d
NORM_TYPES = (*BN_TYPES, nn.LayerNorm, nn.GroupNorm)  # no weight decay (fastai's norm_types); LayerNorm2d included
TIMM_HEAD_PARTS = ("head", "fc_norm", "head_drop")  # timm modules forward_features never runs


class WeightsError(ToolkitError, RuntimeError):
    """Initial weights could not be obtained or loaded; the message says what to pass instead."""


class DeviceError(UsageProblem, RuntimeError):
    """The device asked for is not there."""


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: max pool and average pool to 1x1, concatenated (2x the channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.max = nn.AdaptiveMaxPool2d(1)
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max(x), self.avg(x)], dim=1)


class AdaptiveConcatPool3d(AdaptiveConcatPool2d):
    """The same over a video feature map (N, C, t, h, w): max and average over time and space, concatenated."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.max = nn.AdaptiveMaxPool3d(1)
        self.avg = nn.AdaptiveAvgPool3d(1)


def make_head(n_features: int, n_classes: int = N_CLASSES, pool: nn.Module | None = None) -> nn.Sequential:
    """fastai's create_head: concat pool, flatten, BN, dropout 0.25, linear 512, ReLU, BN, dropout 0.5, linear.
    `pool` replaces the 2D concat pool (AdaptiveConcatPool3d for a video feature map, Identity for vectors of
    2 x n_features)."""
    head = nn.Sequential(
        pool if pool is not None else AdaptiveConcatPool2d(), nn.Flatten(),
        nn.BatchNorm1d(2 * n_features), nn.Dropout(0.25), nn.Linear(2 * n_features, 512, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_classes, bias=False),
    )
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)
    return head


def is_torchvision(arch: str) -> bool:
    return arch in BACKBONES


def check_arch(arch: str) -> None:
    """Refuse a name that is neither one of torchvision's ResNets here nor a timm model, naming what is allowed."""
    import timm

    if not is_torchvision(arch) and not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:12]}*")[:8]
        raise ValueError(f"unknown --arch {arch!r}: use {', '.join(BACKBONES)} (torchvision) or a timm model name "
                         f"(timm.list_models()){'; similar: ' + ', '.join(close) if close else ''}")


def _offline_error(arch: str, err: Exception, file_hint: str) -> WeightsError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
    return WeightsError(f"could not get the ImageNet weights for {arch} ({first}); without internet pass "
                        "--weights none (random init) or --weights PATH (a state dict or a checkpoint "
                        f"of this trainer; {file_hint})")


def _backbone(arch: str, pretrained: bool) -> nn.Module:
    builder, weights = BACKBONES[arch]
    if not pretrained:
        return builder(weights=None)
    try:
        return builder(weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise _offline_error(arch, err, f"torchvision's file is {weights.url.rsplit('/', 1)[-1]}") from None


class TokenGrid(nn.Module):
    """A transformer's tokens (N, prefix + h*w, C) -> the patch tokens as a feature map (N, C, h, w): the prefix
    (class, register) tokens dropped, the rest laid back on the patch grid. Grad-CAM hooks its output."""

    def __init__(self, prefix_tokens: int, patch: tuple[int, int]) -> None:
        super().__init__()
        self.prefix_tokens, self.patch = int(prefix_tokens), tuple(int(p) for p in patch)

    def forward(self, tokens: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        h, w = image_hw[0] // self.patch[0], image_hw[1] // self.patch[1]
        patches = tokens[:, self.prefix_tokens:]
        if patches.shape[1] != h * w:
            raise ValueError(f"{patches.shape[1]} patch tokens do not make the {h}x{w} grid of a "
                             f"{image_hw[0]}x{image_hw[1]} input with {self.patch} patches")
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


class TimmBody(nn.Module):
    """A timm model without its classifier: forward = forward_features, the last feature map (NCHW); for a vision
    transformer (CLIP, DINOv2, ...) its patch tokens on their grid (TokenGrid)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        patch = getattr(getattr(net, "patch_embed", None), "patch_size", None)
        self.grid = TokenGrid(getattr(net, "num_prefix_tokens", 0), patch) if patch is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net.forward_features(x)
        if out.ndim == 3 and self.grid is not None:
            return self.grid(out, x.shape[-2:])
        if out.ndim != 4:
            raise ValueError(f"{self.net.__class__.__name__}.forward_features gave shape {tuple(out.shape)}; the "
                             "fastai head needs a feature map (N, C, H, W): pick a convolutional timm model or a "
                             "vision transformer with a patch grid")
        return out

    @property
    def num_features(self) -> int:
        return int(self.net.num_features)

    def gradcam_layer(self) -> nn.Module:
        """The last feature stage (timm's feature_info), e.g. blocks.6 of an EfficientNet, stages.3 of a ConvNeXt;
        for a transformer the patch-token grid after the last block and norm."""
        if self.grid is not None:
            return self.grid
        return self.net.get_submodule(self.net.feature_info[-1]["module"])

    def split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(stem + the first half of the stages, the rest) by timm's coarse group_matcher (timm_halves)."""
        return timm_halves(self.net)


def _timm_body(arch: str, pretrained: bool) -> TimmBody:
    import timm

    try:
        try:  # a vision transformer takes any input size that is a multiple of its patch (position embeddings resampled)
            net = timm.create_model(arch, pretrained=pretrained, num_classes=0, global_pool="", dynamic_img_size=True)
        except TypeError:  # a convolutional model has no such argument
            net = timm.create_model(arch, pretrained=pretrained, num_classes=0, global_pool="")
    except (urllib.error.URLError, OSError, RuntimeError) as err:  # huggingface_hub's errors are OSErrors
        raise _offline_error(arch, err, "timm's own pytorch_model.bin or model.safetensors for it from the Hugging "
                                        "Face hub works") from None
    for name in TIMM_HEAD_PARTS:  # forward_features never runs them: no parameters that never get a gradient
        if isinstance(getattr(net, name, None), nn.Module):
            setattr(net, name, nn.Identity())
    return TimmBody(net)


class InputSizeError(UsageProblem, ValueError):
    """An image size the backbone cannot take; the message names the sizes that work."""


def _nearest(side: int, step: int) -> list[int]:
    """The multiples of `step` next to `side` within the image-size bounds (MIN_IMAGE..MAX_INPUT)."""
    low, high = side // step * step, -(-side // step) * step
    return [s for s in dict.fromkeys((low, high)) if MIN_IMAGE <= s <= MAX_INPUT] or [-(-MIN_IMAGE // step) * step]


def size_problem(body: nn.Module, size: tuple[int, int]) -> str | None:
    """Why a (height, width) input does not fit a backbone, naming the sizes that work; None when it fits. What timm
    says in advance: a patch embedding needs multiples of its patch (its one size when it is strict); a feature map
    needs each side at least the network's total stride."""
    h, w = size
    net = body.net if isinstance(body, TimmBody) else body
    embed = getattr(net, "patch_embed", None)
    if embed is not None and getattr(embed, "strict_img_size", False) and tuple(embed.img_size) != (h, w):
        fixed = tuple(embed.img_size)
        return f"takes {fixed[1]}x{fixed[0]} images only (--image-size {fixed[1]}x{fixed[0]})"
    patch = getattr(embed, "patch_size", None)
    if patch is not None and not getattr(embed, "dynamic_img_pad", False) and (h % patch[0] or w % patch[1]):
        hs, ws = _nearest(h, patch[0]), _nearest(w, patch[1])
        example = f"{ws[0]}" if ws == hs else f"{ws[0]}x{hs[0]}"
        return (f"takes sides that are multiples of its {patch[1]}x{patch[0]} patch: the nearest are "
                f"{' or '.join(map(str, ws))} wide and {' or '.join(map(str, hs))} high (e.g. --image-size {example})")
    info = getattr(net, "feature_info", None)
    stride = int(info[-1]["reduction"]) if info else 32
    if min(h, w) < stride:
        return f"needs each side at least its total stride, {stride}"
    return None


def check_input_size(arch: str, size: tuple[int, int], where: str = "--image-size") -> None:
    """Refuse, before any work, a (height, width) input the backbone cannot take: the model is built on the meta
    device (no memory, no weights) and asked (size_problem)."""
    if is_torchvision(arch):  # a ResNet takes any size of at least 32
        return
    check_arch(arch)
    try:
        with torch.device("meta"):
            body = _timm_body(arch, pretrained=False)
    except (NotImplementedError, RuntimeError, TypeError, ValueError, AssertionError) as err:  # a build meta cannot run
        log.debug("%s: input size not checked in advance (%s)", arch, err)
        return
    problem = size_problem(body, size)
    if problem:
        raise InputSizeError(f"{where} {size[1]}x{size[0]}: --arch {arch} {problem}")


class Detector(nn.Sequential):
    """nn.Sequential(body, head) that takes ImageNet-normalised batches (normalize) and feeds its body the
    normalisation of its ModelInput (train.normalisation.to_backbone): an identity for ImageNet's, else one
    per-channel affine map (and colour order) held in non-persistent buffers, so the state dict is the
    Sequential's."""

    def __init__(self, *modules: nn.Module, spec: ModelInput | None = None) -> None:
        super().__init__(*modules)  # (body, head); a slice of it gets ImageNet's (identity) input
        self.set_input(spec or ModelInput())

    def set_input(self, spec: ModelInput) -> "Detector":
        """Feed the body `spec`'s normalisation from now on."""
        self.spec = spec
        order, gain, bias = to_backbone(spec)
        self.order = None if order == [0, 1, 2] else order
        self.adapt = not is_imagenet(spec)
        device = next(self.parameters(), torch.empty(0)).device
        self.register_buffer("gain", gain.to(device), persistent=False)
        self.register_buffer("bias", bias.to(device), persistent=False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapt:
            if self.order is not None:
                x = x[:, self.order]
            x = x * self.gain.to(x.dtype) + self.bias.to(x.dtype)
        return super().forward(x)


def build_model(arch: str = "resnet18", pretrained: bool = False, network: dict | None = None,
                spec: ModelInput | None = None) -> Detector:
    """Detector(body, head): body = the ResNet without avgpool/fc (children 0..7), or a TimmBody, with fastai's
    head; with `network` (a zoo package's architecture) its timm backbone's pooled features and linear head. `spec`:
    the input normalisation the body is fed (None: ImageNet's)."""
    if network is not None:
        return Detector(*build_pooled(network), spec=spec)
    if not is_torchvision(arch):
        check_arch(arch)
        body = _timm_body(arch, pretrained)
        return Detector(body, make_head(body.num_features), spec=spec)
    net = _backbone(arch, pretrained)
    body = nn.Sequential(*list(net.children())[:-2])
    return Detector(body, make_head(net.fc.in_features), spec=spec)


def body_groups(body: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """A 2D body's two layer groups: stem..layer2 | layer3..layer4 of a ResNet; its own split of a TimmBody or
    PooledBody."""
    if callable(getattr(body, "split", None)):  # TimmBody, PooledBody
        return body.split()
    return list(body[:6].parameters()), list(body[6:].parameters())


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai's split: stem..layer2 | layer3..layer4 | head for a ResNet; stem + first half of the stages | the rest
    | head for a timm body; a clip model (train.clip_model) names its own three groups (`layer_groups()`)."""
    if callable(getattr(model, "layer_groups", None)):
        return model.layer_groups()
    lower, upper = body_groups(model[0])
    return [lower, upper, list(model[1].parameters())]


def _bn_params(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, BN_TYPES) for p in m.parameters(recurse=False)}


def _norm_params(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}


def set_frozen(model: nn.Sequential, frozen: bool, tune: str = "full") -> None:
    """frozen: only the last group (head) and every BatchNorm train (fastai's freeze with train_bn); else all train.

    tune (--tune) "frozen" keeps that state in every stage (a ViT, without BatchNorm: the head alone, a linear
    probe); "norm" trains the head and every norm layer's affine parameters (LayerNorm, GroupNorm, BatchNorm) in
    every stage, the GenD recipe for foundation ViTs; "full" follows the stages' `frozen`."""
    trainable = _norm_params(model) if tune == "norm" else _bn_params(model)
    frozen = frozen or tune != "full"
    groups = layer_groups(model)
    for group in groups[:-1]:
        for p in group:
            p.requires_grad_(not frozen or id(p) in trainable)
    for p in groups[-1]:
        p.requires_grad_(True)


def param_groups(model: nn.Sequential, weight_decay: float) -> list[dict]:
    """Two optimizer groups per layer group: with decay, and without (norm layers' weights and all biases).

    Order: [g0 decay, g0 no-decay, g1 decay, g1 no-decay, g2 decay, g2 no-decay]; use group_lrs() for LRs.
    """
    no_decay = _norm_params(model) | {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    groups = []
    for i, params in enumerate(layer_groups(model)):
        groups.append({"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay,
                       "layer_group": i})
        groups.append({"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0, "layer_group": i})
    return groups


def group_lrs(optimizer: torch.optim.Optimizer, per_layer_group: list[float]) -> list[float]:
    """Expand one LR per layer group to one per optimizer param group."""
    return [per_layer_group[g["layer_group"]] for g in optimizer.param_groups]


def read_state_dict(path: str | Path) -> dict:
    """A state dict from a plain state-dict file or a checkpoint of this trainer, loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file; pass --weights imagenet, none or a checkpoint path")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise WeightsError(f"--weights {path}: not a PyTorch checkpoint or state dict ({err.__class__.__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"--weights {path}: holds no state dict of tensors")
    return state


TORCHVISION_BODY = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _as_model_keys(state: dict, model: nn.Sequential) -> dict:
    """Keys of a bare backbone -> this model's: a torchvision ResNet's (conv1.weight, layer1.0...) -> 0.0.weight,
    0.4.0...; a timm model's (conv_stem.weight, blocks.0...) -> 0.net.conv_stem.weight...; its classifier dropped."""
    if any(k.startswith(("0.", "1.")) for k in state):
        return state
    if isinstance(getattr(model[0], "net", None), nn.Module):  # TimmBody, PooledBody
        own = set(model[0].net.state_dict())
        return {f"0.net.{k}": v for k, v in state.items() if k in own}
    return {f"0.{TORCHVISION_BODY.index(k.split('.')[0])}.{k.split('.', 1)[1]}": v
            for k, v in state.items() if k.split(".")[0] in TORCHVISION_BODY}


def load_weights(model: nn.Sequential, path: str | Path) -> None:
    """Initial weights from a checkpoint of this trainer, a whole-model state dict, or a bare torchvision ResNet's or
    timm model's state dict (the classifier is dropped).

    The body must match exactly; the head is taken when present and kept fresh otherwise.
    """
    state = _as_model_keys(read_state_dict(path), model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch, e.g. resnet50 weights for a resnet18
        raise WeightsError(f"--weights {path}: does not fit the model: {str(err).splitlines()[-1].strip()}") from None
    body_missing = [k for k in missing if k.startswith("0.")]
    if body_missing or unexpected:
        raise WeightsError(f"--weights {path}: does not match {len(body_missing)} body keys of the model and has "
                           f"{len(unexpected)} unexpected keys (e.g. {(body_missing + unexpected)[:3]})")
    log.info("loaded initial weights from %s", path)


def create_model(arch: str, weights: str, network: dict | None = None, spec: ModelInput | None = None) -> Detector:
    """arch + --weights (imagenet | none | PATH) -> model on the CPU (build_model's network and spec)."""
    if weights == "imagenet" and network is None:
        return build_model(arch, pretrained=True, spec=spec)
    model = build_model(arch, pretrained=False, network=network, spec=spec)
    if weights != "none":
        load_weights(model, weights)
    return model


# Input convention and device ---------------------------------------------------------------------------------


def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ImageNet mean and std in uint8 units, shaped to broadcast over (N)x3xHxW."""
    return (torch.tensor(IMAGENET_MEAN, device=device).view(-1, 1, 1) * 255,
            torch.tensor(IMAGENET_STD, device=device).view(-1, 1, 1) * 255)


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N)x3xHxW, or clips NxTx3xHxW, -> float, ImageNet-normalised; runs on whatever device the batch is on."""
    mean, std = _mean_std(batch.device)
    return batch.to(torch.float32, copy=True).sub_(mean).div_(std)  # in place on one copy (keeps the strides)


def denormalize(batch: torch.Tensor) -> torch.Tensor:
    """Inverse of normalize, clamped to uint8 (for figures)."""
    mean, std = _mean_std(batch.device)
    return (batch.float() * std + mean).clamp(0, 255).to(torch.uint8)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The one reading of --device: auto -> cuda when available, else cpu; cuda asked for without CUDA is refused."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


@dataclass(frozen=True)
class Device:
    """Where and how to compute: the torch device, autocast dtype (None = fp32) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def resolve(cls, name: str = "auto", amp: bool = True, channels_last: bool = True) -> "Device":
        """auto -> cuda when available; AMP and channels_last only on CUDA (bf16 where supported, else fp16)."""
        device = resolve_device(name)
        if device.type != "cuda":
            return cls(device)
        device = torch.device("cuda", torch.cuda.current_device())  # torchrun: this process's GPU (LOCAL_RANK)
        torch.backends.cudnn.benchmark = True  # one input size per run: cuDNN times its kernels once, keeps the fastest
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if amp else None
        return cls(device, dtype, channels_last)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW batch -> normalised float on the device, channels_last on CUDA."""
        x = normalize(images.to(self.device, non_blocking=True))
        if x.ndim == 5:  # clips (N, T, 3, H, W): channels_last is a 4-D layout; the clip models lay them out
            return x.contiguous()
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepare(self, model: nn.Module) -> nn.Module:
        model.to(self.device)
        if getattr(model, "takes_clips", False):  # a 3D CNN's 5-D weights have no channels_last layout
            return model
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

