"""The report's ten augmentations on the training device: the loader workers only read and decode, the GPU augments.

At 720x1280 the augmentations cost a CPU core far more than the JPEG decode (`make bench-train`'s cost table): a
7 px median blur alone takes ~50 ms of one core, a warp ~4-9 ms. An H100 augments a batch of 64 such frames with the
seed recipe's probabilities in ~51 ms (docs/performance.md), so with `--augment-impl device` a loader worker does only
what must happen on the CPU (read the tar, decode the JPEG, draw the parameters: ~7x the images per core) and hands
the batch over with its draws; `DeviceAugmented` applies them to the uint8 batch on the device before normalisation.

What stays the same as the plain albumentations pipeline:
- the draws: `train.augment.fused.sample`, the very probabilities, parameter ranges and order;
- the geometry: flip, crop-and-pad, rotate and zoom are the fused path's one affine matrix (`fused.geometry`),
  here resampled with `grid_sample` (bilinear, mirrored borders about the edge pixels as OpenCV's REFLECT_101);
- HSV, brightness and contrast use the fused path's lookup tables (albucore's own arithmetic); the colour
  conversions follow OpenCV's 8-bit RGB<->HSV formulas (H in 0..179), so a pixel lands within one level;
- blur is the mean over the k x k window with mirrored borders, median blur the median with replicated borders
  (OpenCV's): exact (on CUDA the median is a compiled min/max selection network, see `median_network`);
- the JPEG round trip encodes and decodes at the drawn quality (torchvision: nvJPEG on CUDA, libjpeg on the CPU),
  with the channels reversed around it because albumentations hands the RGB array to cv2.imencode, which reads it
  as BGR: the same chroma planes, so the same artefacts; the encoders differ in rounding (within a few levels).
tests/train/test_device_augment.py checks each augmentation against albumentations for fixed parameters.
"""
from __future__ import annotations

import functools
import logging
import warnings
from collections import defaultdict
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from train.augment.fused import Draw, FusedAugment, brightness_contrast_lut, geometry, hsv_lut

log = logging.getLogger(__name__)

# OpenCV's 8-bit HSV division tables (color_hsv.simd.hpp): fixed point with 12 fractional bits
_HSV_SHIFT = 12
_SDIV = torch.tensor([0] + [int(round((255 << _HSV_SHIFT) / i)) for i in range(1, 256)], dtype=torch.int32)
_HDIV = torch.tensor([0] + [int(round((180 << _HSV_SHIFT) / (6.0 * i))) for i in range(1, 256)], dtype=torch.int32)
# HSV -> RGB: which of (v, v(1-s), v(1-sf), v(1-s(1-f))) is b, g, r in each 60-degree sector (OpenCV's sector_data)
_SECTORS = torch.tensor([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]], dtype=torch.int64)


def _groups(values: Sequence) -> dict:
    """value -> indices of the images that drew it (None skipped)."""
    out = defaultdict(list)
    for i, v in enumerate(values):
        if v is not None:
            out[v].append(i)
    return out


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.blur(k x k, BORDER_REFLECT_101) of uint8 N3HW images."""
    p = k // 2
    padded = F.pad(x.float(), (p, p, p, p), mode="reflect")
    return _to_u8(F.avg_pool2d(padded, k, stride=1))


def _sorting_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort: comparators (i, j), i < j, that sort n wires (n a power of two)."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=None)
def median_network(m: int) -> tuple[tuple[int, int], ...]:
    """Comparators on m wires after which wire m // 2 holds the median (m odd): Batcher's network for the next
    power of two with the extra wires at +inf (their comparators do nothing and are dropped), pruned to the
    comparators the middle wire depends on (319 for a 7x7 window, 113 for 5x5, 24 for 3x3)."""
    net = [(i, j) for i, j in _sorting_network(1 << (m - 1).bit_length()) if j < m]
    need, kept = {m // 2}, []
    for i, j in reversed(net):
        if i in need or j in need:
            need |= {i, j}
            kept.append((i, j))
    return tuple(kept[::-1])


def median_by_network(padded: torch.Tensor, k: int, network: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """The k x k median of an already padded (..., H + k - 1, W + k - 1) tensor: min/max on k*k shifted views.
    Elementwise only, so torch.compile fuses it into one kernel that keeps the window in registers."""
    h, w = padded.shape[-2] - k + 1, padded.shape[-1] - k + 1
    v = [padded[..., dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]
    for i, j in (network if network is not None else median_network(k * k)):
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[k * k // 2]


_COMPILED: dict[int, object] = {}


def _median_fn(k: int, device: torch.device):
    """CUDA: the compiled network (falls back to a segmented sort if torch.compile cannot build it); CPU: None."""
    if device.type != "cuda":
        return None
    if k not in _COMPILED:
        _COMPILED[k] = torch.compile(functools.partial(median_by_network, k=k, network=median_network(k * k)),
                                     dynamic=False)
    return _COMPILED[k]


def median_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.medianBlur(k) of uint8 N3HW images (replicated borders), one image at a time (bounded memory, one
    compiled shape). CUDA: the compiled median network; CPU: torch.median over the unfolded windows."""
    p = k // 2
    out = torch.empty_like(x)
    fn = _median_fn(k, x.device)
    for i in range(x.shape[0]):
        padded = F.pad(x[i:i + 1].float(), (p, p, p, p), mode="replicate").to(torch.uint8)[0]
        if fn is not None:
            try:
                out[i] = fn(padded)
                continue
            except Exception as err:  # noqa: BLE001 (no Triton or no compiler: any failure to compile)
                log.warning("median blur: torch.compile failed (%s); using a segmented sort on the GPU", err)
                _COMPILED[k] = fn = None
        windows = padded.unfold(1, k, 1).unfold(2, k, 1)  # 3, H, W, k, k (a view)
        windows = windows.reshape(*windows.shape[:3], k * k)
        out[i] = windows.sort(dim=-1).values[..., k * k // 2] if x.is_cuda else windows.median(dim=-1).values
    return out


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """uint8 N3HW RGB -> int32 N3HW HSV with OpenCV's 8-bit formulas (H 0..179, S and V 0..255)."""
    rgb = x.to(torch.int32)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    sdiv, hdiv = _SDIV.to(x.device), _HDIV.to(x.device)
    s = (diff * sdiv[v] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    h = torch.where(h < 0, h + 180, h)
    return torch.stack([h, s, v], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """int N3HW HSV (OpenCV 8-bit ranges) -> uint8 N3HW RGB: OpenCV's sector formula in float32, truncated, which
    gives OpenCV 5's cv2.cvtColor(COLOR_HSV2RGB) for ~98.6% of colours and one level less for the rest (rounding
    would differ by one level for a third of them)."""
    h = hsv[:, 0].float() * (6.0 / 180.0)
    s = hsv[:, 1].float() * (1.0 / 255.0)
    v = hsv[:, 2].float() * (1.0 / 255.0)
    h = torch.remainder(h, 6.0)
    sector = torch.floor(h)
    f = h - sector
    sector = sector.long().clamp_(0, 5)
    tab = torch.stack([v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))], dim=1)  # N4HW
    idx = _SECTORS.to(hsv.device)[sector]  # NHW3: b, g, r
    bgr = torch.gather(tab, 1, idx.permute(0, 3, 1, 2))
    grey = (hsv[:, 1] == 0).unsqueeze(1)
    bgr = torch.where(grey, v.unsqueeze(1).expand_as(bgr), bgr)
    return bgr.flip(1).mul_(255.0).floor_().clamp_(0, 255).to(torch.uint8)


def _luts(x: torch.Tensor, tables: Sequence[np.ndarray]) -> torch.Tensor:
    """Image i of the N3HW integer batch x through its own 256-entry table per channel (tables[i]: (256,) or
    (256, 1, 3) / (256, 3) uint8), in one gather: the value v of channel c of image i reads entry
    (i * 3 + c) * 256 + v."""
    n = x.shape[0]
    flat = np.stack([np.broadcast_to(np.asarray(t).reshape(256, -1), (256, 3)).T for t in tables])  # n, 3, 256
    table = torch.as_tensor(np.ascontiguousarray(flat), device=x.device).reshape(-1).to(torch.int32)
    offsets = (torch.arange(n * 3, device=x.device, dtype=torch.int64) * 256).view(n, 3, 1, 1)
    return table[x.long() + offsets]


def hsv_shift(x: torch.Tensor, shifts: Sequence[tuple[float, float, float]]) -> torch.Tensor:
    """albumentations' HueSaturationValue with each image's (hue, sat, val) shift."""
    return hsv_to_rgb(_luts(rgb_to_hsv(x), [hsv_lut(*shift) for shift in shifts]))


def _normalized(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A forward pixel matrix -> affine_grid's theta (destination -> source, align_corners=True coordinates)."""
    h, w = size
    to_norm = np.array([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]])
    return (to_norm @ np.linalg.inv(m) @ np.linalg.inv(to_norm))[:2]


def warp(x: torch.Tensor, matrices: Sequence[np.ndarray]) -> torch.Tensor:
    """cv2.warpAffine(M, bilinear, BORDER_REFLECT_101) of each uint8 N3HW image by its forward 3x3 matrix."""
    size = tuple(x.shape[2:])
    theta = torch.tensor(np.stack([_normalized(m, size) for m in matrices]), dtype=torch.float32, device=x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return _to_u8(F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=True))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG round trip at `quality` of each uint8 N3HW image (nvJPEG on CUDA, libjpeg on the CPU)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    # channels reversed, as albumentations' cv2.imencode reads an RGB array as BGR: the same chroma planes
    images = list(x.flip(1).contiguous().unbind(0))
    try:
        with warnings.catch_warnings():  # torchvision 0.29 announces torchcodec; its JPEG codecs still work
            warnings.simplefilter("ignore", DeprecationWarning)
            encoded = [e.cpu() for e in encode_jpeg(images, quality=int(quality))]  # nvJPEG's bytes come back
            decoded = decode_jpeg(encoded, device=x.device)  # on the GPU; decode_jpeg reads them from host memory
    except (RuntimeError, ValueError) as err:  # a torchvision without nvJPEG: do these few on the CPU
        if x.device.type == "cpu":
            raise
        log.debug("JPEG round trip on the CPU (%s)", err)
        decoded = [t.to(x.device) for t in decode_jpeg(encode_jpeg([t.cpu() for t in images], quality=int(quality)))]
    return torch.stack(decoded).flip(1)


def augment_batch(images: torch.Tensor, draws: Sequence[Draw]) -> torch.Tensor:
    """Apply each image's draw to a uint8 N3HW batch (any device, any memory format), in the pipeline's order:
    blur, median blur, HSV, geometry (flip, crop-and-pad, rotate, zoom), brightness + contrast, JPEG."""
    if len(draws) != images.shape[0]:
        raise ValueError(f"{len(draws)} draws for a batch of {images.shape[0]} images")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 Nx3xHxW batch, got {images.dtype} {tuple(images.shape)}")
    x = images.contiguous()
    x = x.clone() if x.data_ptr() == images.data_ptr() else x
    size = tuple(x.shape[2:])

    def each(groups: dict, fn) -> None:
        for value, idx in groups.items():
            sel = torch.tensor(idx, device=x.device)
            x[sel] = fn(x[sel], value)

    each(_groups([d.blur for d in draws]), box_blur)
    each(_groups([d.median_blur for d in draws]), median_blur)
    hsv = [i for i, d in enumerate(draws) if d.hsv is not None and any(d.hsv)]
    if hsv:
        sel = torch.tensor(hsv, device=x.device)
        x[sel] = hsv_shift(x[sel], [draws[i].hsv for i in hsv])
    matrices = [geometry(d, size) for d in draws]
    moved = [i for i, m in enumerate(matrices) if m is not None]
    if moved:
        sel = torch.tensor(moved, device=x.device)
        x[sel] = warp(x[sel], [matrices[i] for i in moved])
    luts = [brightness_contrast_lut(d.brightness, d.contrast) for d in draws]
    lit = [i for i, lut in enumerate(luts) if lut is not None]
    if lit:
        sel = torch.tensor(lit, device=x.device)
        x[sel] = _luts(x[sel], [luts[i] for i in lit]).to(torch.uint8)
    each(_groups([d.jpeg for d in draws]), jpeg)
    return x


class DeferredAugment:
    """The loader workers' half (a batch writer for train.data.batches.augmented_batches): the decoded image into
    its slot as it is, and the fused path's draw for it, which DeviceAugmented applies on the device."""

    deferred = True
    contiguous = False

    def __init__(self, size: tuple[int, int], probs, seed: int) -> None:
        self.fused = FusedAugment(size, probs, seed=seed)

    def __call__(self, image: np.ndarray, slot: np.ndarray) -> Draw:
        np.copyto(slot, image)
        return self.fused.draw()


class DeviceAugmented:
    """Wraps a loader of (uint8 N3HW, labels, keys, videos, draws) batches: each batch is moved to `device` and
    augmented there; yields (uint8 N3HW on the device, labels, keys, videos) like the other loaders.

    `release` (the stream's BufferPool.release) hands each batch's buffer back to its loader worker once the pixels are
    copied away: after the copy to the GPU (from pageable or pinned memory the host buffer is free when `.to`
    returns), or on the CPU once augment_batch has written its own output."""

    def __init__(self, loader: Iterable, device: torch.device | str, release=None) -> None:
        self.loader, self.device, self.release = loader, torch.device(device), release

    def __iter__(self) -> Iterator:
        for images, labels, keys, videos, draws in self.loader:
            x = images.to(self.device, non_blocking=True)
            augmented = augment_batch(x, draws)
            del x, images
            if self.release is not None:
                self.release(getattr(draws, "token", None))
            yield augmented, labels, keys, videos
