"""Video detectors: models of a clip of T consecutive frames (N, T, 3, H, W), ImageNet-normalised as every frame
model's input (train.model.normalize), to two logits; the same three layer groups, freezing and discriminative LRs
as the frame models (train.model.layer_groups / set_frozen / param_groups).

`--arch` names (train.config.clip_arch):
- `tall:ARCH` -- TALL (Xu et al., ICCV 2023): the T frames tiled into one thumbnail image, a grid of
  ceil(sqrt(T)) columns (4 frames -> 2x2; an empty cell is zero), seen by any 2D model train.model builds
  (torchvision ResNets, timm names); in training a random block at the same place in every frame may be masked
  (`mask_p`; TALL's masking, off unless asked);
- `temporal:ARCH` -- a 2D body on every frame, each frame's feature map concat-pooled to a vector, then a temporal
  head: two 1D convolutions over time (kernel 3, residual) and a max+mean pool over time into the fastai head. A
  1D convolution was chosen over a GRU or a transformer layer because the cues it is for (flicker, jitter of a
  swapped face) live between neighbouring frames, which a kernel of 3 sees directly; it has few parameters to
  learn from little data, runs all frames at once (a GRU steps through them), and takes any T;
- `r2plus1d_18` -- torchvision's R(2+1)D-18 3D CNN, Kinetics-400 weights with `--weights kinetics` (or
  `imagenet`, read as "the pretrained ones"), renormalising the toolkit's ImageNet input to Kinetics' mean and std
  inside the model; its classifier is the fastai head over a 3D concat pool.
Each model names its Grad-CAM layer and how that layer's map becomes one map per frame (`frame_maps`, used by
train.report.gradcam.clip_grad_cam).
"""
from __future__ import annotations

import math
import urllib.error

import torch
import torch.nn.functional as F
from torch import nn

from train.config import clip_arch
from train.model import (IMAGENET_MEAN, IMAGENET_STD, N_CLASSES, AdaptiveConcatPool2d, AdaptiveConcatPool3d,
                         TimmBody, WeightsError, body_groups, build_model, layer_groups, make_head, read_state_dict)

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's R2Plus1D_18_Weights.KINETICS400_V1 transforms
KINETICS_STD = (0.22803, 0.22145, 0.216989)
TALL_MASK_SIDE = 1 / 3  # TALL's masked block: a third of the frame's side


def grid_shape(frames: int) -> tuple[int, int]:
    """(rows, columns) of TALL's thumbnail for T frames: ceil(sqrt(T)) columns, as many rows as needed."""
    cols = math.ceil(math.sqrt(frames))
    return math.ceil(frames / cols), cols


def tile(x: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, C, H, W) -> TALL's thumbnails (N, C, rows*H, cols*W), frames left to right, top to bottom; an
    empty cell is zero (the mean colour once normalised; black in a uint8 figure)."""
    n, t, c, h, w = x.shape
    rows, cols = grid_shape(t)
    if rows * cols > t:
        x = torch.cat([x, x.new_zeros(n, rows * cols - t, c, h, w)], dim=1)
    return x.reshape(n, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, rows * h, cols * w)


def _check_clips(x: torch.Tensor) -> None:
    if x.ndim != 5 or x.shape[2] != 3:
        raise ValueError(f"a clip model takes clips (N, T, 3, H, W), got shape {tuple(x.shape)}")


def frame_gradcam_layer(body: nn.Module) -> nn.Module:
    """A 2D body's Grad-CAM layer: a TimmBody's own choice, else the ResNet's last block (layer4[-1])."""
    return body.gradcam_layer() if isinstance(body, TimmBody) else body[-1][-1]


class TallModel(nn.Module):
    """TALL's thumbnail layout: (N, T, 3, H, W) -> one (N, 3, rows*H, cols*W) image -> a 2D frame model."""

    takes_clips = True

    def __init__(self, frame_model: nn.Sequential, mask_p: float = 0.0) -> None:
        super().__init__()
        self.frame_model, self.mask_p = frame_model, float(mask_p)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """Training only: with probability mask_p per clip, zero one random block (a third of the side) at the
        same place in every frame of the clip."""
        n, _, _, h, w = x.shape
        side_h, side_w = max(1, round(h * TALL_MASK_SIDE)), max(1, round(w * TALL_MASK_SIDE))
        keep = torch.ones(n, 1, 1, h, w, device=x.device, dtype=x.dtype)
        for i in torch.nonzero(torch.rand(n) < self.mask_p).flatten().tolist():
            y0, x0 = int(torch.randint(0, h - side_h + 1, ())), int(torch.randint(0, w - side_w + 1, ()))
            keep[i, :, :, y0:y0 + side_h, x0:x0 + side_w] = 0
        return x * keep

    def tile(self, x: torch.Tensor) -> torch.Tensor:
        return tile(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_clips(x)
        if self.training and self.mask_p > 0:
            x = self.mask(x)
        return self.frame_model(self.tile(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        return layer_groups(self.frame_model)

    def gradcam_layer(self) -> nn.Module:
        return frame_gradcam_layer(self.frame_model[0])

    def frame_maps(self, cams: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
        """The thumbnail's map (N, h, w) -> (N, T, H, W): upsampled to the thumbnail, cut into its cells."""
        rows, cols = grid_shape(frames)
        h, w = size
        big = F.interpolate(cams[:, None], size=(rows * h, cols * w), mode="bilinear", align_corners=False)[:, 0]
        cells = big.view(-1, rows, h, cols, w).permute(0, 1, 3, 2, 4).reshape(-1, rows * cols, h, w)
        return cells[:, :frames]


TEMPORAL_WIDTH = 256  # the temporal head's channels (each frame's concat-pooled 2C features projected to this)


class TemporalHead(nn.Module):
    """Per-frame vectors (N, T, F) -> a 1x1 projection to TEMPORAL_WIDTH, a residual pair of 1D convolutions over
    time (kernel 3) -> max and mean over time, concatenated -> the fastai head."""

    def __init__(self, n_features: int, width: int = TEMPORAL_WIDTH, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv1d(n_features, width, 1, bias=False), nn.BatchNorm1d(width),
                                     nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(
            nn.Conv1d(width, width, 3, padding=1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, 3, padding=1, bias=False), nn.BatchNorm1d(width),
        )
        self.head = make_head(width, n_classes, pool=nn.Identity())

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x = self.project(vectors.transpose(1, 2))  # (N, width, T)
        x = F.relu(x + self.temporal(x))
        return self.head(torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1))


class TemporalModel(nn.Module):
    """A 2D body on every frame -> each frame's map concat-pooled (2C) -> TemporalHead."""

    takes_clips = True

    def __init__(self, frame_model: nn.Sequential) -> None:
        super().__init__()
        self.body = frame_model[0]
        self.pool = AdaptiveConcatPool2d()
        n_features = frame_model[1][2].num_features  # the fastai head's first BatchNorm1d: 2C
        self.head = TemporalHead(n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_clips(x)
        n, t = x.shape[:2]
        maps = self.body(x.flatten(0, 1))  # (N*T, C, h, w)
        return self.head(self.pool(maps).view(n, t, -1))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        lower, upper = body_groups(self.body)
        return [lower, upper, list(self.head.parameters())]

    def gradcam_layer(self) -> nn.Module:
        return frame_gradcam_layer(self.body)

    def frame_maps(self, cams: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
        """Each frame's map (N*T, h, w) -> (N, T, H, W)."""
        up = F.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return up.view(-1, frames, *size)


class R2Plus1DModel(nn.Module):
    """torchvision's R(2+1)D-18 with the fastai head over a 3D concat pool. Takes the toolkit's ImageNet-normalised
    clips (N, T, 3, H, W) and renormalises them to Kinetics' mean and std (what its weights were trained on)."""

    takes_clips = True

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = (net.stem, net.layer1, net.layer2,
                                                                          net.layer3, net.layer4)
        self.head = make_head(net.fc.in_features, pool=AdaptiveConcatPool3d())
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(KINETICS_STD)  # (x * s_in + m_in - m_k) / s_k
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(KINETICS_MEAN)) / torch.tensor(KINETICS_STD)
        self.register_buffer("scale", scale.view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_clips(x)
        x = x.transpose(1, 2) * self.scale + self.shift  # (N, 3, T, H, W), Kinetics-normalised
        return self.head(self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x))))))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        lower = [*self.stem.parameters(), *self.layer1.parameters(), *self.layer2.parameters()]
        return [lower, [*self.layer3.parameters(), *self.layer4.parameters()], list(self.head.parameters())]

    def gradcam_layer(self) -> nn.Module:
        """layer4's output (N, C, t, h, w): time is strided by 8 there, so T <= 8 frames share one map in time."""
        return self.layer4

    def frame_maps(self, cams: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
        """The map over (t, h, w) -> (N, T, H, W), trilinear."""
        return F.interpolate(cams[:, None], size=(frames, *size), mode="trilinear", align_corners=False)[:, 0]


def _r2plus1d(pretrained: bool) -> nn.Module:
    from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18

    if not pretrained:
        return r2plus1d_18(weights=None)
    weights = R2Plus1D_18_Weights.KINETICS400_V1
    try:
        return r2plus1d_18(weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise WeightsError(f"could not get the Kinetics-400 weights for r2plus1d_18 ({first}); without internet "
                           "pass --weights none (random init) or --weights PATH (torchvision's "
                           f"{weights.url.rsplit('/', 1)[-1]} or a checkpoint of this trainer)") from None


def build_clip_model(arch: str, pretrained: bool = False, mask_p: float = 0.0) -> nn.Module:
    """A clip model for an --arch name of train.config.clip_arch (tall:ARCH, temporal:ARCH, r2plus1d_18)."""
    kind, frame_arch = clip_arch(arch)
    if kind == "tall":
        return TallModel(build_model(frame_arch, pretrained), mask_p)
    if kind == "temporal":
        return TemporalModel(build_model(frame_arch, pretrained))
    return R2Plus1DModel(_r2plus1d(pretrained))


def create_clip_model(arch: str, weights: str, mask_p: float = 0.0) -> nn.Module:
    """arch + --weights (imagenet | kinetics | none | PATH) -> a clip model on the CPU. For r2plus1d_18 `imagenet`
    and `kinetics` both mean its Kinetics weights; a PATH is a checkpoint of this trainer or a bare R(2+1)D state
    dict (its fc dropped)."""
    if weights in ("imagenet", "kinetics"):
        return build_clip_model(arch, pretrained=True, mask_p=mask_p)
    model = build_clip_model(arch, pretrained=False, mask_p=mask_p)
    if weights != "none":
        load_clip_weights(model, weights)
    return model


def _as_clip_keys(state: dict, model: nn.Module) -> dict:
    """A frame model's keys (0.*, 1.*) -> a TALL model's (frame_model.*) or a temporal model's body (body.*; its
    2D head dropped); a bare R(2+1)D's keys (stem.*, layer1.*) stay, its fc dropped; anything else as it is."""
    if not any(k.startswith(("0.", "1.")) for k in state):
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    if isinstance(model, TallModel):
        return {f"frame_model.{k}": v for k, v in state.items()}
    return {f"body.{k[2:]}": v for k, v in state.items() if k.startswith("0.")}


def load_clip_weights(model: nn.Module, path) -> None:
    """Initial weights: a checkpoint of this trainer (a clip model's, or a frame model's for the 2D part of tall
    and temporal), or torchvision's R(2+1)D-18 file. Every body key must match; a head may stay fresh."""
    state = _as_clip_keys(read_state_dict(path), model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise WeightsError(f"--weights {path}: does not fit the model: {str(err).splitlines()[-1].strip()}") from None
    body_missing = [k for k in missing if ".head." not in f".{k}" and not k.startswith("frame_model.1.")]
    if body_missing or unexpected:
        raise WeightsError(f"--weights {path}: does not match {len(body_missing)} body keys of the model and has "
                           f"{len(unexpected)} unexpected keys (e.g. {(body_missing + unexpected)[:3]})")
