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


# Bytes a median blur's chunk may take: the unfolded k x k windows (the CPU's and the sort fallback's memory), or
# the network's wires where torch.compile cannot fuse them.
MEDIAN_CHUNK_BYTES = 1 << 30
MEDIAN_MAX_CHUNK = 64  # at most 7 chunk shapes (64, 32, ..., 1) per kernel and size: torch.compile caches 8


def median_chunks(n: int, k: int, shape: tuple[int, int]) -> list[int]:
    """How many images each call takes: powers of two (a few compiled shapes, each call whole) no larger than
    MEDIAN_CHUNK_BYTES allows, largest first, summing to n."""
    per_image = 3 * (shape[0] + k) * (shape[1] + k) * k * k
    cap = min(MEDIAN_MAX_CHUNK, max(1, MEDIAN_CHUNK_BYTES // per_image))
    cap = 1 << (cap.bit_length() - 1)
    sizes = [cap] * (n // cap)
    rest = n % cap
    sizes += [1 << b for b in reversed(range(rest.bit_length())) if rest >> b & 1]
    return sizes


def median_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.medianBlur(k) of uint8 N3HW images (replicated borders), batched: the images go in chunks of
    median_chunks (memory-bounded, powers of two), not one by one. CUDA: the compiled median network; CPU: the
    median of the unfolded windows."""
    p = k // 2
    out = torch.empty_like(x)
    fn = _median_fn(k, x.device)
    start = 0
    for n in median_chunks(x.shape[0], k, tuple(x.shape[2:])):
        padded = F.pad(x[start:start + n].float(), (p, p, p, p), mode="replicate").to(torch.uint8)
        if fn is not None:
            try:
                out[start:start + n] = fn(padded)
                start += n
                continue
            except Exception as err:  # noqa: BLE001 (no Triton or no compiler: any failure to compile)
                log.warning("median blur: torch.compile failed (%s); using a segmented sort on the GPU", err)
                _COMPILED[k] = fn = None
        windows = padded.unfold(2, k, 1).unfold(3, k, 1)  # n, 3, H, W, k, k (a view)
        windows = windows.reshape(*windows.shape[:4], k * k)
        out[start:start + n] = windows.sort(dim=-1).values[..., k * k // 2] if x.is_cuda else \
            windows.median(dim=-1).values
        start += n
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


# The JPEG round trip's qualities in bins of this width (60, 65, ..., 95): one batched encode and decode per bin
# (nvJPEG takes one quality per call), at most 8 calls per batch; a drawn quality moves by at most 2 levels.
JPEG_QUALITY_BIN = 5


def quality_bin(quality: int) -> int:
    """The bin's quality a drawn one is encoded at (rounded to the nearest multiple of JPEG_QUALITY_BIN)."""
    return int(JPEG_QUALITY_BIN * round(quality / JPEG_QUALITY_BIN))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG round trip at `quality` of each uint8 N3HW image, the whole batch in one encode and one decode call
    (nvJPEG on CUDA, libjpeg on the CPU)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    # channels reversed, as albumentations' cv2.imencode reads an RGB array as BGR: the same chroma planes
    images = list(x.flip(1).contiguous().unbind(0))
    try:
        with warnings.catch_warnings():  # torchvision 0.29 announces torchcodec; its JPEG codecs still work
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = decode_jpeg(_to_host(encode_jpeg(images, quality=int(quality))), device=x.device)
    except (RuntimeError, ValueError) as err:  # a torchvision without nvJPEG: do these on the CPU
        if x.device.type == "cpu":
            raise
        log.debug("JPEG round trip on the CPU (%s)", err)
        decoded = decode_jpeg(encode_jpeg(list(x.flip(1).cpu().contiguous().unbind(0)), quality=int(quality)))
        decoded = [t.to(x.device) for t in decoded]
    return torch.stack(decoded).flip(1)


def _to_host(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
    """Encoded files (nvJPEG's on the GPU) as host tensors, which decode_jpeg reads: one copy for the batch."""
    if not encoded or encoded[0].device.type == "cpu":
        return list(encoded)
    return list(torch.cat(encoded).cpu().split([int(e.numel()) for e in encoded]))


def decode_batch(jpegs, size: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """A JpegBatch (train.data.batches: the files one after the other, and their lengths) -> uint8 N3HW at
    size=(h, w) on `device`: one batched decode (nvJPEG on CUDA; libjpeg on the CPU), then each group of images that
    share a decoded shape resized in one call (bilinear, antialiased when shrinking, as the CPU's INTER_AREA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    files = list(jpegs.data.split([int(n) for n in jpegs.lengths]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        images = decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
    out = torch.empty((len(images), 3, *size), dtype=torch.uint8, device=device)
    for shape, idx in _groups([tuple(im.shape[1:]) for im in images]).items():
        batch = torch.stack([images[i] for i in idx])
        if shape != tuple(size):
            shrink = shape[0] >= size[0] and shape[1] >= size[1]
            batch = _to_u8(F.interpolate(batch.float(), size=tuple(size), mode="bilinear", align_corners=False,
                                         antialias=shrink))
        out[torch.tensor(idx, device=out.device)] = batch
    return out


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
    each(_groups([None if d.jpeg is None else quality_bin(d.jpeg) for d in draws]), jpeg)
    return x


class DeferredAugment:
    """The loader workers' half: the fused path's draw for each image (train.data.batches.jpeg_batches calls
    `draw()`), which DeviceAugmented applies on the device once it has decoded the batch there."""

    deferred = True
    contiguous = False

    def __init__(self, size: tuple[int, int], probs, seed: int) -> None:
        self.fused = FusedAugment(size, probs, seed=seed)

    def draw(self) -> Draw:
        return self.fused.draw()


class DeviceAugmented:
    """Wraps a loader of (JpegBatch, labels, keys, videos, draws) batches: each batch's JPEGs are decoded on `device`
    at `size` (decode_batch) and augmented there (augment_batch); yields (uint8 N3HW on the device, labels, keys,
    videos) like the other loaders."""

    def __init__(self, loader: Iterable, device: torch.device | str, size: tuple[int, int]) -> None:
        self.loader, self.device, self.size = loader, torch.device(device), tuple(size)

    def __iter__(self) -> Iterator:
        for jpegs, labels, keys, videos, draws in self.loader:
            yield augment_batch(decode_batch(jpegs, self.size, self.device), draws), labels, keys, videos
