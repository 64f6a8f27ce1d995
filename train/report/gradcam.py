"""Grad-CAM heatmaps for image classifiers, plus overlay and pointing-game helpers (the grids: train.report.figures)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


logger = logging.getLogger(__name__)

# Attributes under which our models (and common third-party ones) keep their backbone.
_BACKBONE_ATTRS = ("body", "backbone", "encoder", "features")

TargetClass = Union[None, int, Sequence[int], torch.Tensor, np.ndarray]


class ActivationRecorder:
    """Context manager that records the output of one layer during forward passes.

    A forward hook stores the layer's output tensor (the last call wins if the layer
    runs several times) and hands a clone on to the rest of the network, so that an
    in-place op downstream (e.g. ``ReLU(inplace=True)``) cannot overwrite the recorded
    activation. Gradients are then taken with ``torch.autograd.grad`` with respect to
    the recorded tensor, which is exact, needs no (in-place-fragile) full backward
    hook and leaves the parameters' ``.grad`` untouched. The hook is removed on exit,
    also when the body raised.
    """

    def __init__(self, layer: nn.Module):
        if not isinstance(layer, nn.Module):
            raise TypeError(f"target layer must be an nn.Module, got {type(layer).__name__}")
        self.layer = layer
        self.activations: torch.Tensor | None = None
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _hook(self, module: nn.Module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ValueError(
                f"target layer {type(module).__name__} returned {type(output).__name__}; "
                "Grad-CAM needs a tensor output of shape (N, C, h, w)"
            )
        self.activations = output
        return output.clone()

    def __enter__(self) -> "ActivationRecorder":
        self.activations = None
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _contains_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def _resolve_last_block(module: nn.Module) -> nn.Module | None:
    """Last block of the last conv stage inside ``module`` (None when it has no conv child)."""
    stage = getattr(module, "layer4", None)
    if isinstance(stage, nn.Sequential) and len(stage) > 0:
        return stage[-1]
    conv_children = [c for c in module.children() if _contains_conv(c)]
    if not conv_children:
        return None
    last = conv_children[-1]
    if isinstance(getattr(last, "layer4", None), nn.Sequential):
        return _resolve_last_block(last)
    if isinstance(last, nn.Sequential):
        # A stage (Sequential of blocks): take its last conv-containing block.
        blocks = [b for b in last.children() if _contains_conv(b)]
        return blocks[-1] if blocks else last
    return last


def find_target_layer(model: nn.Module) -> nn.Module:
    """Default Grad-CAM layer: the last block of the backbone's last stage.

    Looks for the backbone at ``model.body`` (and similar attribute names), at
    ``model[0]`` for fastai-style ``nn.Sequential(body, head)`` models, then in the
    model itself. A torchvision ResNet (anywhere on that path) yields ``layer4[-1]``;
    otherwise the last ``Conv2d``-containing child, or the last block of it when that
    child is an ``nn.Sequential`` stage. Raises ``ValueError`` when nothing is found.
    """
    for module in model.modules():  # a body that names its own layer (train.model.TimmBody: the last stage)
        if callable(getattr(module, "gradcam_layer", None)):
            return module.gradcam_layer()
    candidates: list[nn.Module] = []
    for attr in _BACKBONE_ATTRS:
        sub = getattr(model, attr, None)
        if isinstance(sub, nn.Module):
            candidates.append(sub)
    if isinstance(model, nn.Sequential) and len(model) > 1:
        first = model[0]
        # fastai-style Sequential(body, head): the body is a container and the only
        # child with convolutions (a stem followed by more conv stages is not a body).
        if any(_contains_conv(c) for c in first.children()) and not any(
            _contains_conv(c) for c in list(model.children())[1:]
        ):
            candidates.append(first)
    candidates.append(model)
    for candidate in candidates:
        layer = _resolve_last_block(candidate)
        if layer is not None:
            logger.debug("Grad-CAM default target layer: %s", type(layer).__name__)
            return layer
    raise ValueError(
        f"no default Grad-CAM target layer found in {type(model).__name__}: it has no "
        "torchvision-style layer4 and no child module containing an nn.Conv2d; "
        "pass target_layer explicitly"
    )


def _target_indices(target_class: TargetClass, logits: torch.Tensor) -> torch.Tensor:
    n, num_classes = logits.shape
    if target_class is None:
        return logits.argmax(dim=1)
    if isinstance(target_class, (bool, np.bool_)):
        raise TypeError("target_class must be an int or a sequence of ints, not a bool")
    if isinstance(target_class, (int, np.integer)):
        targets = torch.full((n,), int(target_class), dtype=torch.long)
    else:
        if isinstance(target_class, torch.Tensor):
            targets = target_class.detach().cpu()
        else:
            targets = torch.as_tensor(np.asarray(target_class))
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise TypeError(f"target_class must hold integers, got dtype {targets.dtype}")
        targets = targets.reshape(-1).to(torch.long)
        if targets.numel() != n:
            raise ValueError(f"target_class has {targets.numel()} entries for a batch of {n} images")
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"target_class {targets.tolist()} out of range for {num_classes} classes")
    return targets.to(logits.device)


def _normalise_per_image(cams: torch.Tensor) -> torch.Tensor:
    flat = cams.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    hi = flat.max(dim=1).values[:, None, None]
    span = hi - lo
    ok = span > torch.finfo(cams.dtype).eps
    return torch.where(ok, (cams - lo) / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(cams))


def _recorded(model: nn.Module, images: torch.Tensor, target_layer: nn.Module,
              target_class: TargetClass) -> tuple[torch.Tensor, torch.Tensor]:
    """(the target layer's output, d(target logit)/d(that output)) for one batch, the model in eval mode; its
    per-module train/eval flags and its parameters' requires_grad are restored and the hook removed."""
    modes = {m: m.training for m in model.modules()}
    params = list(model.parameters())
    grad_flags = [p.requires_grad for p in params]
    try:
        with torch.enable_grad():  # also when called under torch.no_grad()
            model.eval()
            # Frozen backbones still need a graph from the logit back to the layer.
            for p in params:
                p.requires_grad_(True)
            # The input joins the graph too (for layers with no parameters upstream); the
            # clone keeps it a non-leaf so in-place ops on it inside the model stay legal.
            x = images.detach()
            if x.is_floating_point():
                x = x.requires_grad_(True).clone()
            with ActivationRecorder(target_layer) as recorder:
                logits = model(x)
                activations = recorder.activations
            if activations is None:
                raise ValueError("the target layer was not called during the model's forward pass")
            if not isinstance(logits, torch.Tensor):
                raise ValueError(f"model returned {type(logits).__name__}; expected a logits tensor")
            if logits.dim() == 1:
                logits = logits[:, None]
            if logits.dim() != 2 or logits.shape[0] != images.shape[0]:
                raise ValueError(f"model output has shape {tuple(logits.shape)}; expected (N, num_classes)")
            targets = _target_indices(target_class, logits.detach())
            if not activations.requires_grad:
                raise ValueError("the target layer's output does not depend on the input or parameters")
            score = logits.gather(1, targets[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activations, allow_unused=True)
            if grads is None:
                grads = torch.zeros_like(activations)
    finally:
        for p, flag in zip(params, grad_flags):
            p.requires_grad_(flag)
        for m, mode in modes.items():
            m.training = mode

    return activations, grads


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target_layer: nn.Module | None = None,
    target_class: TargetClass = None,
) -> torch.Tensor:
    """Grad-CAM maps (N, H, W) in [0, 1] for a batch of normalised images (N, 3, H, W).

    For each image, ``ReLU(sum_c w_c * A_c)`` where ``A`` is the target layer's output
    and ``w_c`` the spatial mean of d(target logit)/dA_c; upsampled bilinearly to the
    input size and min-max normalised per image (an all-zero map stays zero).
    ``target_class``: None (the predicted class), one int for all images, or N ints.
    A model with a single logit per image ((N,) or (N, 1) output) explains that logit.
    The model runs in eval mode; its per-module train/eval flags and its parameters'
    ``requires_grad`` are restored afterwards and the hook is always removed.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("grad_cam needs autograd; call it outside torch.inference_mode()")
    if target_layer is None:
        target_layer = find_target_layer(model)
    height, width = images.shape[-2:]
    activations, grads = _recorded(model, images, target_layer, target_class)
    if activations.dim() != 4 or activations.shape[0] != images.shape[0]:
        raise ValueError(
            f"target layer output has shape {tuple(activations.shape)}; expected (N, C, h, w) "
            f"with N={images.shape[0]}"
        )
    activations = activations.detach().float()
    weights = grads.detach().float().mean(dim=(2, 3), keepdim=True)
    cams = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cams = F.interpolate(cams, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return _normalise_per_image(cams.clamp_min(0.0))


def clip_grad_cam(model: nn.Module, clips: torch.Tensor, target_class: TargetClass = None) -> torch.Tensor:
    """Grad-CAM of a clip model (train.clip_model): where and when, maps (N, T, H, W) in [0, 1] for a batch of
    normalised clips (N, T, 3, H, W).

    The model's `gradcam_layer()` output A (a TALL thumbnail's map, each frame's map of a temporal model, the 3D
    map (t, h, w) of R(2+1)D) gives ``ReLU(sum_c w_c * A_c)`` with ``w_c`` the mean of d(target logit)/dA_c over
    the map (per frame for a temporal model); the model's `frame_maps` lays it out as one map per frame at the
    input size. Min-max normalised per clip, not per frame, so that the frames of a clip compare: the frame with
    the strongest evidence holds the clip's maximum."""
    if not isinstance(clips, torch.Tensor) or clips.dim() != 5:
        raise ValueError(f"clips must be a tensor of shape (N, T, 3, H, W), got {getattr(clips, 'shape', type(clips))}")
    if not callable(getattr(model, "frame_maps", None)):
        raise ValueError(f"{type(model).__name__} is not a clip model (it has no frame_maps)")
    activations, grads = _recorded(model, clips, find_target_layer(model), target_class)
    dims = tuple(range(2, activations.dim()))
    weights = grads.detach().float().mean(dim=dims, keepdim=True)
    cams = F.relu((weights * activations.detach().float()).sum(dim=1))
    maps = model.frame_maps(cams, clips.shape[1], tuple(clips.shape[-2:])).clamp_min(0.0)
    n, t, h, w = maps.shape
    return _normalise_per_image(maps.reshape(n, t * h, w)).view(n, t, h, w)


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def overlay(image_uint8_hwc: np.ndarray, heatmap_hw, alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with matplotlib's jet map, over a uint8 H x W x 3 image."""
    from matplotlib import colormaps

    image = np.asarray(image_uint8_hwc)
    heat = _to_numpy(heatmap_hw).astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} does not match image size {image.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colour = colormaps["jet"](np.clip(np.nan_to_num(heat), 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * image.astype(np.float64) + alpha * colour
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def heatmap_peak(heatmap_hw) -> tuple[int, int]:
    """(y, x) pixel coordinates of the heatmap's maximum.

    Bilinear upsampling of a coarse map clamps at the borders: a strongest cell on the edge becomes a flat strip
    from the cell's centre out to the image edge. The peak is the cell's centre, i.e. the pixel of that plateau
    nearest the image centre (the first maximum's pixel would sit on the edge for top and left cells).
    """
    heat = _to_numpy(heatmap_hw)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"heatmap must be a non-empty H x W array, got shape {heat.shape}")
    top = heat.max()
    tolerance = 1e-6 * max(abs(float(top)), 1.0)
    ys, xs = np.nonzero(heat >= top - tolerance)
    y0, x0 = np.unravel_index(int(np.argmax(heat)), heat.shape)
    near = (np.abs(ys - y0) <= heat.shape[0] // 4) & (np.abs(xs - x0) <= heat.shape[1] // 4)  # the first plateau
    ys, xs = ys[near], xs[near]
    centre_y, centre_x = (heat.shape[0] - 1) / 2, (heat.shape[1] - 1) / 2
    i = int(np.argmin((ys - centre_y) ** 2 + (xs - centre_x) ** 2))
    return int(ys[i]), int(xs[i])


def pointing_game(heatmaps, boxes) -> float:
    """Share of heatmaps whose peak lies inside its box (normalised x0, y0, x1, y1, inclusive).

    The peak pixel is tested at its centre, ((x + 0.5) / W, (y + 0.5) / H).
    """
    maps = list(heatmaps) if not isinstance(heatmaps, (torch.Tensor, np.ndarray)) else heatmaps
    box_arr = _to_numpy(boxes).astype(np.float64).reshape(-1, 4)
    if len(maps) == 0:
        raise ValueError("pointing_game needs at least one heatmap")
    if len(maps) != len(box_arr):
        raise ValueError(f"{len(maps)} heatmaps but {len(box_arr)} boxes")
    hits = 0
    for heat, (x0, y0, x1, y1) in zip(maps, box_arr):
        heat = _to_numpy(heat)
        y, x = heatmap_peak(heat)
        cy, cx = (y + 0.5) / heat.shape[0], (x + 0.5) / heat.shape[1]
        hits += int(x0 <= cx <= x1 and y0 <= cy <= y1)
    return hits / len(maps)
