"""The model: torchvision ResNet body + fastai head, three layer groups, freezing, optimizer param groups."""
from __future__ import annotations

import logging
import pickle
import urllib.error
import zipfile
from pathlib import Path

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)

BACKBONES = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1),
}
N_CLASSES = 2
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


class WeightsError(RuntimeError):
    """Initial weights could not be obtained or loaded; the message says what to pass instead."""


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: max pool and average pool to 1x1, concatenated (2x the channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.max = nn.AdaptiveMaxPool2d(1)
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max(x), self.avg(x)], dim=1)


def make_head(n_features: int, n_classes: int = N_CLASSES) -> nn.Sequential:
    """fastai's create_head: concat pool, flatten, BN, dropout 0.25, linear 512, ReLU, BN, dropout 0.5, linear."""
    head = nn.Sequential(
        AdaptiveConcatPool2d(), nn.Flatten(),
        nn.BatchNorm1d(2 * n_features), nn.Dropout(0.25), nn.Linear(2 * n_features, 512, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_classes, bias=False),
    )
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)
    return head


def _backbone(arch: str, pretrained: bool) -> nn.Module:
    builder, weights = BACKBONES[arch]
    if not pretrained:
        return builder(weights=None)
    try:
        return builder(weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise WeightsError(f"could not get the ImageNet weights for {arch} ({err}); without internet pass "
                           "--weights none (random init) or --weights PATH (a state dict or a checkpoint "
                           f"of this trainer; torchvision's file is {weights.url.rsplit('/', 1)[-1]})") from None


def build_model(arch: str = "resnet18", pretrained: bool = False) -> nn.Sequential:
    """nn.Sequential(body, head): body = the ResNet without avgpool/fc (children 0..7), fastai's head."""
    net = _backbone(arch, pretrained)
    body = nn.Sequential(*list(net.children())[:-2])
    return nn.Sequential(body, make_head(net.fc.in_features))


def layer_groups(model: nn.Sequential) -> list[list[nn.Parameter]]:
    """fastai's resnet split: stem..layer2 | layer3..layer4 | head."""
    body, head = model[0], model[1]
    return [list(body[:6].parameters()), list(body[6:].parameters()), list(head.parameters())]


def _bn_params(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, BN_TYPES) for p in m.parameters(recurse=False)}


def set_frozen(model: nn.Sequential, frozen: bool) -> None:
    """frozen: only the last group (head) and every BatchNorm train (fastai's freeze with train_bn); else all train."""
    bn = _bn_params(model)
    groups = layer_groups(model)
    for group in groups[:-1]:
        for p in group:
            p.requires_grad_(not frozen or id(p) in bn)
    for p in groups[-1]:
        p.requires_grad_(True)


def param_groups(model: nn.Sequential, weight_decay: float) -> list[dict]:
    """Two optimizer groups per layer group: with decay, and without (BatchNorm weights and all biases).

    Order: [g0 decay, g0 no-decay, g1 decay, g1 no-decay, g2 decay, g2 no-decay]; use group_lrs() for LRs.
    """
    no_decay = _bn_params(model) | {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
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


def _as_model_keys(state: dict) -> dict:
    """Keys of a bare torchvision ResNet (conv1.weight, layer1.0...) -> this model's (0.0.weight, 0.4.0...); fc dropped."""
    if any(k.startswith(("0.", "1.")) for k in state):
        return state
    return {f"0.{TORCHVISION_BODY.index(k.split('.')[0])}.{k.split('.', 1)[1]}": v
            for k, v in state.items() if k.split(".")[0] in TORCHVISION_BODY}


def load_weights(model: nn.Sequential, path: str | Path) -> None:
    """Initial weights from a checkpoint of this trainer, a whole-model state dict or a torchvision ResNet's.

    The body must match exactly; the head is taken when present and kept fresh otherwise.
    """
    state = _as_model_keys(read_state_dict(path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch, e.g. resnet50 weights for a resnet18
        raise WeightsError(f"--weights {path}: does not fit the model: {str(err).splitlines()[-1].strip()}") from None
    body_missing = [k for k in missing if k.startswith("0.")]
    if body_missing or unexpected:
        raise WeightsError(f"--weights {path}: does not match {len(body_missing)} body keys of the model and has "
                           f"{len(unexpected)} unexpected keys (e.g. {(body_missing + unexpected)[:3]})")
    log.info("loaded initial weights from %s", path)


def create_model(arch: str, weights: str) -> nn.Sequential:
    """arch + --weights (imagenet | none | PATH) -> model on the CPU."""
    if weights == "imagenet":
        return build_model(arch, pretrained=True)
    model = build_model(arch, pretrained=False)
    if weights != "none":
        load_weights(model, weights)
    return model


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Sequential, dict]:
    """A checkpoint of this trainer -> (model in eval mode with its weights, the run's config dict)."""
    try:
        data = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"{path}: not a checkpoint of this trainer ({err.__class__.__name__})") from None
    if not isinstance(data, dict) or "model" not in data or "config" not in data:
        raise WeightsError(f"{path}: not a checkpoint of this trainer (needs 'model' and 'config')")
    model = build_model(data["config"]["arch"], pretrained=False)
    model.load_state_dict(data["model"])
    model.eval()
    return model, data["config"]
