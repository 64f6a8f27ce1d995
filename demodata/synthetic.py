"""Generate a small synthetic DFDC-shaped dataset (real clips plus blended "face-swap" fakes)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import string
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from dfd.cli import reported, setup_logging
from dfd.errors import ToolkitError
from pipeline.ffmpeg.locate import find_ffmpeg

log = logging.getLogger(__name__)

PART_NAME = "dfdc_train_part_0"
FPS = 25
FAKES_PER_REAL = 3  # DFDC is ~84% fake; 1 real : 3 fakes gives 75%.

# Skin tones (RGB), light to dark, and hair colours used to draw the face sprites.
SKIN_TONES = [
    (241, 204, 178), (228, 185, 152), (214, 164, 126), (198, 140, 102),
    (176, 118, 84), (141, 90, 62), (112, 72, 50), (86, 56, 40),
]
HAIR_COLOURS = [(30, 22, 18), (70, 45, 25), (120, 80, 40), (200, 170, 110), (90, 90, 90), (20, 20, 30)]
IRIS_COLOURS = [(60, 40, 25), (70, 110, 160), (80, 120, 70), (110, 80, 40)]


class SettingsError(ToolkitError, ValueError):
    """A generator setting out of range (video count, length, size)."""


class SyntheticError(ToolkitError, RuntimeError):
    """ffmpeg failed while writing a synthetic clip."""


# --------------------------------------------------------------------------- face sprites


def _soft_ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float,
                  px: float, feather_px: float = 1.0) -> np.ndarray:
    """Anti-aliased ellipse mask; u, v in normalised sprite units, px = pixels per unit."""
    d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    edge_px = (1.0 - d) * min(rx, ry) * px  # approx. signed distance to the rim in pixels
    return np.clip(edge_px / feather_px + 0.5, 0.0, 1.0)


def _blend(img: np.ndarray, mask: np.ndarray, colour) -> None:
    m = mask[..., None]
    img *= 1.0 - m
    img += m * np.asarray(colour, dtype=np.float32)


def _gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = img
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, w in enumerate(k):
            acc += w * np.take(p, np.arange(i, i + n), axis=axis)
        out = acc
    return out


@dataclass
class FaceParams:
    skin: tuple
    hair: tuple
    iris: tuple
    eye_dx: float
    eye_y: float
    eye_rx: float
    eye_ry: float
    brow_dy: float
    mouth_y: float
    mouth_rx: float
    mouth_ry: float
    hairline: float
    light: float

    @classmethod
    def random(cls, rng: random.Random) -> "FaceParams":
        return cls(
            skin=rng.choice(SKIN_TONES), hair=rng.choice(HAIR_COLOURS), iris=rng.choice(IRIS_COLOURS),
            eye_dx=rng.uniform(0.30, 0.40), eye_y=rng.uniform(-0.16, -0.04),
            eye_rx=rng.uniform(0.13, 0.18), eye_ry=rng.uniform(0.06, 0.09),
            brow_dy=rng.uniform(0.14, 0.20), mouth_y=rng.uniform(0.40, 0.50),
            mouth_rx=rng.uniform(0.18, 0.30), mouth_ry=rng.uniform(0.045, 0.08),
            hairline=rng.uniform(-0.62, -0.45), light=rng.uniform(-0.25, 0.25),
        )


def _render_face(p: FaceParams, w: int, h: int, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw a cartoon face filling a w x h sprite. Returns (rgb float32 HxWx3, alpha HxW)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xs + 0.5) / w * 2 - 1
    v = (ys + 0.5) / h * 2 - 1
    px = min(w, h) / 2.0
    alpha = _soft_ellipse(u, v, 0, 0, 1.0, 1.0, px, 1.5)

    r2 = u**2 + v**2
    shade = (1.0 - 0.22 * r2 + p.light * u)[..., None]
    img = np.asarray(p.skin, np.float32) * shade
    noise = np.random.default_rng(rng_seed).normal(0, 1, (h, w, 1)).astype(np.float32)
    img = img + 15.0 * _gauss_blur(noise, 1.2)  # faint skin texture

    # hair cap with a wavy hairline
    hair = np.clip((p.hairline + 0.06 * np.cos(u * 7) - v) * px / 1.5 + 0.5, 0, 1) * alpha
    _blend(img, hair, p.hair)
    # cheeks
    for s in (-1, 1):
        _blend(img, 0.18 * _soft_ellipse(u, v, s * 0.42, 0.2, 0.16, 0.1, px, 8), (200, 90, 90))
    # eyebrows
    for s in (-1, 1):
        outer = _soft_ellipse(u, v, s * p.eye_dx, p.eye_y - p.brow_dy, p.eye_rx * 1.1, 0.035, px)
        _blend(img, outer, tuple(0.8 * c for c in p.hair))
    # eyes: white, iris, pupil, highlight
    for s in (-1, 1):
        cx = s * p.eye_dx
        _blend(img, _soft_ellipse(u, v, cx, p.eye_y, p.eye_rx, p.eye_ry, px), (245, 245, 240))
        ir = p.eye_ry * 0.95
        _blend(img, _soft_ellipse(u, v, cx, p.eye_y, ir, ir, px), p.iris)
        _blend(img, _soft_ellipse(u, v, cx, p.eye_y, ir * 0.5, ir * 0.5, px), (10, 10, 10))
        _blend(img, _soft_ellipse(u, v, cx + ir * 0.3, p.eye_y - ir * 0.3, ir * 0.22, ir * 0.22, px),
               (255, 255, 255))
    # nose: shadow + nostrils
    _blend(img, 0.35 * _soft_ellipse(u, v, 0.04, 0.15, 0.07, 0.17, px, 4), tuple(0.6 * c for c in p.skin))
    for s in (-1, 1):
        _blend(img, 0.7 * _soft_ellipse(u, v, s * 0.06, 0.28, 0.03, 0.02, px), tuple(0.4 * c for c in p.skin))
    # mouth: lips + dark line
    _blend(img, _soft_ellipse(u, v, 0, p.mouth_y, p.mouth_rx, p.mouth_ry, px), (170, 60, 65))
    _blend(img, _soft_ellipse(u, v, 0, p.mouth_y, p.mouth_rx * 0.9, 0.012, px), (60, 15, 20))
    return np.clip(img, 0, 255), alpha


@dataclass
class Swap:
    """A fake's manipulation: a low-resolution, colour-mismatched donor face blended into the face's centre.

    What face-swap generators of the DFDC era left behind, exaggerated so that a small CNN trained from scratch
    on a few hundred frames at ~96x160 px picks it up: the donor face is generated at a low resolution and
    upsampled (blocky, blurred, no fine detail), its colour transfer is off (a warm, washed-out cast against
    the host's own skin around it), and it is pasted with a narrow feather that leaves a visible seam.
    """

    donor: FaceParams
    grid: int  # the donor is rendered at grid rows (x the sprite's aspect) and upsampled: the generator's resolution
    blur_sigma_frac: float  # extra blur, as a fraction of sprite height
    gains: tuple  # per-channel colour gains (colour mismatch of the pasted face)
    contrast: float
    mask_ry: float
    mask_rx: float
    seam: float  # brightening of the blending seam (0 = none)


def _random_swap(rng: random.Random, host: FaceParams) -> Swap:
    donor = FaceParams.random(rng)
    while donor.skin == host.skin:
        donor.skin = rng.choice(SKIN_TONES)
    # A consistently warm, washed-out paste (bad colour transfer), upsampled from a low-resolution generator.
    gains = (rng.uniform(1.15, 1.3), rng.uniform(0.9, 0.98), rng.uniform(0.62, 0.75))
    return Swap(donor=donor, grid=rng.randint(14, 18), blur_sigma_frac=rng.uniform(0.008, 0.015), gains=gains,
                contrast=rng.uniform(0.5, 0.65), mask_rx=rng.uniform(0.72, 0.8), mask_ry=rng.uniform(0.7, 0.78),
                seam=rng.uniform(0.25, 0.35))


def _blocky(img: np.ndarray, rows: int) -> np.ndarray:
    """Area-downsample to `rows` rows (keeping the aspect) and upsample by pixel repetition: a low-res generator."""
    h, w = img.shape[:2]
    cols = max(1, round(rows * w / h))
    yb = np.minimum((np.arange(h) * rows) // h, rows - 1)
    xb = np.minimum((np.arange(w) * cols) // w, cols - 1)
    sums = np.zeros((rows, cols, img.shape[2]), np.float64)
    np.add.at(sums, (yb[:, None], xb[None, :]), img)
    counts = np.zeros((rows, cols), np.float64)
    np.add.at(counts, (yb[:, None], xb[None, :]), 1.0)
    small = (sums / counts[..., None]).astype(np.float32)
    return small[yb[:, None], xb[None, :]]


def _apply_swap(host_rgb: np.ndarray, alpha: np.ndarray, swap: Swap, seed: int) -> tuple[np.ndarray, tuple]:
    """Blend the swap into the host sprite. Returns (rgb, bbox in sprite pixels (x0, y0, x1, y1))."""
    h, w = alpha.shape
    donor, _ = _render_face(swap.donor, w, h, seed)
    donor = _blocky(donor, swap.grid)
    donor = _gauss_blur(donor, max(0.6, swap.blur_sigma_frac * h))
    mean = donor.mean(axis=(0, 1), keepdims=True)
    donor = (donor - mean) * swap.contrast + mean * 1.08
    donor = donor * np.asarray(swap.gains, np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xs + 0.5) / w * 2 - 1
    v = (ys + 0.5) / h * 2 - 1
    d = np.sqrt((u / swap.mask_rx) ** 2 + ((v - 0.04) / swap.mask_ry) ** 2)
    # narrow feather: fully donor inside d < 0.85, fading out to d = 1, with a brighter seam along the edge
    t = np.clip((1.0 - d) / 0.15, 0, 1)
    mask = (t * t * (3 - 2 * t)) * alpha
    seam = swap.seam * np.clip(1.0 - np.abs(d - 0.92) / 0.08, 0, 1) * alpha
    out = host_rgb * (1 - mask[..., None]) + np.clip(donor, 0, 255) * mask[..., None]
    out = out + seam[..., None] * (255.0 - out)
    yy, xx = np.nonzero(np.maximum(mask, seam) > 0.02)
    bbox = (int(xx.min()), int(yy.min()), int(xx.max()) + 1, int(yy.max()) + 1)
    return out, bbox


def _write_rgba(path: Path, rgb: np.ndarray, alpha: np.ndarray) -> None:
    rgba = np.concatenate([rgb, alpha[..., None] * 255.0], axis=2)
    path.write_bytes(np.round(rgba).astype(np.uint8).tobytes())


# --------------------------------------------------------------------------- backgrounds


def _tint(rng: random.Random) -> str:
    """A random colour mix so the same source looks different from clip to clip."""
    m = [rng.uniform(0.0, 0.35) for _ in range(6)]
    d = [rng.uniform(0.55, 1.0) for _ in range(3)]
    return (f"format=rgb24,colorchannelmixer=rr={d[0]:.2f}:rg={m[0]:.2f}:rb={m[1]:.2f}:"
            f"gr={m[2]:.2f}:gg={d[1]:.2f}:gb={m[3]:.2f}:br={m[4]:.2f}:bg={m[5]:.2f}:bb={d[2]:.2f}")


def _rand_colour(rng: random.Random) -> str:
    return "0x%02x%02x%02x" % tuple(rng.randrange(256) for _ in range(3))


BACKGROUNDS = ["testsrc2", "mandelbrot", "smptehdbars", "cellauto", "life", "gradients",
               "noise", "sierpinski", "colorspectrum", "rgbtestsrc"]


def _background(kind: str, rng: random.Random, w: int, h: int, seconds: float) -> str:
    """A lavfi source + filter chain (one string) producing a moving, varied background."""
    s = f"s={w}x{h}:r={FPS}"
    hue = f"hue=h={rng.uniform(0, 360):.1f}:s={rng.uniform(0.6, 1.3):.2f}"
    scroll = f"scroll=h={rng.uniform(-0.004, 0.004):.4f}:v={rng.uniform(-0.003, 0.003):.4f}"
    if kind == "testsrc2":
        return f"testsrc2={s},{hue}"
    if kind == "mandelbrot":
        return (f"mandelbrot={s}:maxiter=200:start_scale={rng.uniform(1.0, 3.0):.2f}"
                f":end_scale={rng.uniform(0.05, 0.3):.2f}:end_pts={seconds * 2:.1f},{hue}")
    if kind == "smptehdbars":
        return f"smptehdbars={s},{scroll},{hue}"
    if kind == "cellauto":
        return (f"cellauto={s}:rule={rng.choice([18, 30, 45, 90, 110, 150])}"
                f":random_fill_ratio={rng.uniform(0.2, 0.7):.2f}:random_seed={rng.randrange(1 << 30)}"
                f",gblur=sigma=1.5,{_tint(rng)}")
    if kind == "life":
        return (f"life={s}:mold={rng.randint(5, 40)}:ratio={rng.uniform(0.1, 0.5):.2f}"
                f":seed={rng.randrange(1 << 30)}:life_color={_rand_colour(rng)}"
                f":death_color={_rand_colour(rng)}:mold_color={_rand_colour(rng)},gblur=sigma=1")
    if kind == "gradients":
        n = rng.randint(3, 6)
        cols = ":".join(f"c{i}={_rand_colour(rng)}" for i in range(n))
        return (f"gradients={s}:n={n}:{cols}:speed={rng.uniform(0.02, 0.06):.3f}"
                f":seed={rng.randrange(1 << 30)}:type={rng.choice(['linear', 'radial', 'circular', 'spiral'])}")
    if kind == "noise":  # blotchy coloured noise, like an out-of-focus textured wall
        return (f"color=c={_rand_colour(rng)}:{s},noise=alls={rng.randint(60, 100)}:allf=t"
                f":all_seed={rng.randrange(1 << 30)},gblur=sigma={rng.uniform(0.8, 2.5):.1f},"
                f"{_tint(rng)},{scroll}")
    if kind == "sierpinski":
        return f"sierpinski={s}:seed={rng.randrange(1 << 30)}:type={rng.choice(['carpet', 'triangle'])},{_tint(rng)}"
    if kind == "colorspectrum":
        return f"colorspectrum={s}:type={rng.choice(['black', 'white', 'all'])},{scroll},{hue}"
    if kind == "rgbtestsrc":
        return f"rgbtestsrc={s},{scroll},{hue}"
    raise ValueError(f"unknown background {kind!r}")


# --------------------------------------------------------------------------- clip planning


@dataclass
class Motion:
    x0: float
    y0: float
    ax: float
    ay: float
    fx: float
    fy: float
    px: float
    py: float

    def expr(self) -> tuple[str, str]:
        return (f"{self.x0:.3f}+{self.ax:.3f}*sin(2*PI*{self.fx:.4f}*t+{self.px:.4f})",
                f"{self.y0:.3f}+{self.ay:.3f}*sin(2*PI*{self.fy:.4f}*t+{self.py:.4f})")

    def at(self, t: float) -> tuple[int, int]:
        """Top-left corner as ffmpeg's overlay places it (truncated, even for yuv420)."""
        x = self.x0 + self.ax * math.sin(2 * math.pi * self.fx * t + self.px)
        y = self.y0 + self.ay * math.sin(2 * math.pi * self.fy * t + self.py)
        return int(x) & ~1, int(y) & ~1


@dataclass
class Group:
    """One real clip and the fakes derived from it (rendered by a single ffmpeg process)."""

    real_id: str
    fake_ids: list
    width: int
    height: int
    background: str
    audio_hz: float | None
    face: FaceParams
    sprite_w: int
    sprite_h: int
    motion: Motion
    swaps: list
    seed: int
    fake_bboxes: list = field(default_factory=list)  # sprite-pixel bbox per fake, filled when rendered


def _make_ids(rng: random.Random, n: int) -> list[str]:
    ids: list[str] = []
    seen = set()
    while len(ids) < n:
        vid = "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
        if vid not in seen:
            seen.add(vid)
            ids.append(vid)
    return ids


def plan_ids(rng: random.Random, n_videos: int) -> tuple[list[str], list[list[str]], list[str]]:
    """DFDC-like ids: (real ids, each real's fakes, shuffled background kinds), FAKES_PER_REAL fakes per real."""
    n_real = max(1, math.ceil(n_videos / (FAKES_PER_REAL + 1)))
    ids = _make_ids(rng, max(n_videos, n_real))
    real_ids, fake_ids = ids[:n_real], ids[n_real:]
    per_real: list[list[str]] = [[] for _ in range(n_real)]
    for i, fid in enumerate(fake_ids):
        per_real[i % n_real].append(fid)
    kinds = BACKGROUNDS[:]
    rng.shuffle(kinds)
    return real_ids, per_real, kinds


def _plan(n_videos: int, seconds: float, size: tuple[int, int], seed: int) -> list[Group]:
    rng = random.Random(seed)
    real_ids, per_real, kinds = plan_ids(rng, n_videos)
    groups = []
    for i, rid in enumerate(real_ids):
        portrait = i % 6 == 1
        w, h = (size[1], size[0]) if portrait else size
        audio = None if i % 3 == 1 else rng.uniform(200, 1000)
        face = FaceParams.random(rng)
        sh = int(round(rng.uniform(0.6, 0.76) * min(w, h))) // 2 * 2
        sw = int(round(sh * rng.uniform(0.74, 0.84))) // 2 * 2
        # keep the face inside the frame at every position of its (sinusoidal) path
        # slow drift (< ~50 px/s) so a per-second box stays tight around the face
        ax = rng.uniform(0.10, 0.35) * (w - sw) / 2
        ay = rng.uniform(0.05, 0.30) * (h - sh) / 2
        x0 = rng.uniform(ax, w - sw - ax)
        y0 = rng.uniform(ay, h - sh - ay)
        motion = Motion(x0, y0, ax, ay, rng.uniform(0.03, 0.10), rng.uniform(0.03, 0.10),
                        rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))
        swaps = [_random_swap(rng, face) for _ in per_real[i]]
        groups.append(Group(rid, per_real[i], w, h, _background(kinds[i % len(kinds)], rng, w, h, seconds), audio, face,
                            sw, sh, motion, swaps, rng.randrange(1 << 30)))
    return groups


def _boxes_per_second(g: Group, bbox: tuple, seconds: float) -> list[list[float]]:
    """Union of the manipulated box over each whole second, normalised to the frame, 2 px margin."""
    n_frames = int(round(seconds * FPS))
    n_sec = math.ceil(n_frames / FPS)
    out = []
    bx0, by0, bx1, by1 = bbox
    for s in range(n_sec):
        xs, ys = zip(*(g.motion.at(f / FPS) for f in range(s * FPS, min((s + 1) * FPS, n_frames))))
        x0 = max(0, min(xs) + bx0 - 2) / g.width
        y0 = max(0, min(ys) + by0 - 2) / g.height
        x1 = min(g.width, max(xs) + bx1 + 2) / g.width
        y1 = min(g.height, max(ys) + by1 + 2) / g.height
        out.append([round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4)])
    return out


# --------------------------------------------------------------------------- rendering


def _render_group(ffmpeg: str, g: Group, part_dir: Path, tmp: Path, seconds: float) -> None:
    real_rgb, alpha = _render_face(g.face, g.sprite_w, g.sprite_h, g.seed)
    sprites = [tmp / f"{g.real_id}.rgba"]
    _write_rgba(sprites[0], real_rgb, alpha)
    g.fake_bboxes = []
    for k, (fid, swap) in enumerate(zip(g.fake_ids, g.swaps)):
        fake_rgb, bbox = _apply_swap(real_rgb, alpha, swap, g.seed + 1 + k)
        g.fake_bboxes.append(bbox)
        sprites.append(tmp / f"{fid}.rgba")
        _write_rgba(sprites[-1], fake_rgb, alpha)

    encode_overlays(ffmpeg, g, [g.real_id] + list(g.fake_ids), sprites, part_dir, seconds)


def encode_overlays(ffmpeg: str, g, names: list[str], sprites: list[Path], part_dir: Path, seconds: float) -> None:
    """One ffmpeg process: g's background, each RGBA sprite overlaid along g.motion, one H.264 clip per name.

    `g` needs background, audio_hz, motion, sprite_w, sprite_h and real_id, fake_ids (for the error message);
    sprites are raw RGBA files of sprite_w x sprite_h (one frame, looped by overlay's last-frame repeat).
    """
    n = len(names)
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
           "-t", f"{seconds}", "-f", "lavfi", "-i", g.background]
    for sp in sprites:
        cmd += ["-f", "rawvideo", "-pixel_format", "rgba", "-video_size", f"{g.sprite_w}x{g.sprite_h}",
                "-framerate", str(FPS), "-i", str(sp)]
    if g.audio_hz is not None:
        cmd += ["-f", "lavfi", "-i", f"sine=f={g.audio_hz:.1f}:sample_rate=44100:d={seconds}"]
    xe, ye = g.motion.expr()
    labels = "".join(f"[b{i}]" for i in range(n))
    graph = [f"[0:v]format=yuv420p,split={n}{labels}"]
    for i in range(n):
        graph.append(f"[b{i}][{i + 1}:v]overlay=x='{xe}':y='{ye}':eval=frame:format=yuv420,"
                     f"format=yuv420p[v{i}]")
    if g.audio_hz is not None:
        graph.append(f"[{n + 1}:a]asplit={n}" + "".join(f"[a{i}]" for i in range(n)))
    cmd += ["-filter_complex", ";".join(graph)]
    for i, name in enumerate(names):
        cmd += ["-map", f"[v{i}]"]
        if g.audio_hz is not None:
            cmd += ["-map", f"[a{i}]", "-c:a", "aac", "-b:a", "64k", "-flags:a", "+bitexact"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                "-threads", "1", "-flags:v", "+bitexact", "-fflags", "+bitexact", "-map_metadata", "-1",
                "-movflags", "+faststart", str(part_dir / f"{name}.mp4")]
    log.debug("ffmpeg: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise SyntheticError(f"ffmpeg failed writing {g.real_id}.mp4 (+{len(g.fake_ids)} fakes): {last}")


def generate(out_dir: str | os.PathLike, n_videos: int = 64, seconds: float = 4.0,
             size: tuple[int, int] = (640, 360), seed: int = 0, workers: int = 2,
             progress: bool = True) -> Path:
    """Write a synthetic DFDC-shaped dataset under out_dir and return out_dir.

    Layout: out_dir/dfdc_train_part_0/{metadata.json, <id>.mp4...} and out_dir/boxes.json, which maps
    each fake's file name to a list (indexed by whole second) of [x0, y0, x1, y1] boxes, normalised to
    the frame, that contain the manipulated region during that second. About 1 in 4 clips is real;
    every fake is its `original` real clip with a low-resolution (blocky, blurred), colour-mismatched donor
    face blended into the centre of the face with a visible seam (see Swap). Roughly 1 in 6 real clips
    (with its fakes) is portrait and 1 in 3 has no audio.
    """
    if n_videos < 1:
        raise SettingsError("n_videos must be >= 1")
    if seconds <= 0:
        raise SettingsError("seconds must be > 0")
    w, h = size
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise SettingsError(f"size must be even and at least 32x32, got {w}x{h}")
    out = Path(out_dir)
    part_dir = out / PART_NAME
    part_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg()
    groups = _plan(n_videos, seconds, size, seed)
    n_total = sum(1 + len(g.fake_ids) for g in groups)
    log.info("generating %d clips (%d real) of %.1fs at %dx%d into %s with %s",
             n_total, len(groups), seconds, w, h, part_dir, ffmpeg)

    with tempfile.TemporaryDirectory(prefix="synthetic-") as tmp, \
            tqdm(total=n_total, unit="clip", desc="synthetic", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_render_group, ffmpeg, g, part_dir, Path(tmp), seconds): g for g in groups}
        try:
            for fut in as_completed(futures):
                fut.result()
                bar.update(1 + len(futures[fut].fake_ids))
        finally:  # on a failure, don't start the clips still queued
            pool.shutdown(wait=True, cancel_futures=True)

    metadata: dict[str, dict] = {}
    boxes: dict[str, list] = {}
    for g in groups:
        metadata[f"{g.real_id}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        for fid, bbox in zip(g.fake_ids, g.fake_bboxes):
            metadata[f"{fid}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{g.real_id}.mp4"}
            boxes[f"{fid}.mp4"] = _boxes_per_second(g, bbox, seconds)
    metadata = dict(sorted(metadata.items()))
    (part_dir / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n")
    (out / "boxes.json").write_text(json.dumps(dict(sorted(boxes.items())), indent=1) + "\n")
    stale = sorted(p.name for p in part_dir.glob("*.mp4") if p.name not in metadata)
    if stale:
        log.warning("%d mp4 files in %s are not in the new metadata.json (e.g. %s)", len(stale), part_dir, stale[0])
    log.info("wrote %d clips, metadata.json and boxes.json under %s", n_total, out)
    return out


def _parse_size(ctx, param, value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected WxH, e.g. 640x360") from None
    return w, h


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output dataset root.")
@click.option("--videos", "n_videos", default=64, show_default=True, help="Total clips (about 1 in 4 real).")
@click.option("--seconds", default=4.0, show_default=True, help="Clip length in seconds.")
@click.option("--size", default="640x360", show_default=True, callback=_parse_size,
              help="Landscape frame size WxH (portrait clips use HxW).")
@click.option("--seed", default=0, show_default=True, help="Seed for ids, content and fakes.")
@click.option("--workers", default=2, show_default=True, help="Parallel ffmpeg processes.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (prints ffmpeg commands).")
def main(out_dir: str, n_videos: int, seconds: float, size: tuple[int, int], seed: int, workers: int,
         verbose: bool) -> None:
    """Generate a small synthetic DFDC-shaped dataset (metadata.json, mp4 clips, boxes.json)."""
    setup_logging(verbose)
    with reported():
        generate(out_dir, n_videos=n_videos, seconds=seconds, size=size, seed=seed, workers=workers)


if __name__ == "__main__":
    main()
