"""Generate a small DFDC-shaped dataset of real photographed faces that MTCNN detects, with part-face-swap fakes.

`python -m demodata.faces --out DIR [--videos N] [--seconds S] [--size WxH] [--seed K] [--check]` writes the same
layout as `demodata.synthetic` (DIR/dfdc_train_part_0/{metadata.json, *.mp4} and DIR/boxes.json), but its people
are cut from real photographs that installed packages ship (matplotlib's `grace_hopper.jpg`; no face data set can
be downloaded here). One photo gives many "people": each identity is a colour (skin tone, white balance, gamma)
and geometry (mirror, width, head size) variant of it. A clip moves its head over a varied, moving lavfi
background; each fake is its original clip with the eyes-nose region replaced by another identity's, misaligned
by a few pixels, rendered at a low resolution, colour-mismatched and blended with a visible seam: the region is
boxes.json's box, inside the face box MTCNN finds.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import click
import cv2
import numpy as np
from tqdm import tqdm

from demodata.synthetic import (FPS, PART_NAME, Motion, SettingsError, SyntheticError, _background, _blocky,
                                _boxes_per_second, _gauss_blur, _parse_size, encode_overlays, plan_ids)
from dfd.cli import reported, setup_logging
from pipeline.ffmpeg.locate import find_ffmpeg

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class Photo:
    """A photograph with one face: where the head is (the sprite's rectangle) and its eyes-nose region.

    Coordinates are the photo's pixels; `head` is (x0, y0, x1, y1); `swap` is the eyes-nose ellipse as
    (centre x, centre y, radius x, radius y), measured with MTCNN's landmarks on the photo.
    """

    name: str
    head: tuple[int, int, int, int]
    swap: tuple[float, float, float, float]

    def path(self) -> Path:
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / self.name

    def load(self) -> np.ndarray:
        """The head rectangle as float32 RGB."""
        from PIL import Image

        with Image.open(self.path()) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        x0, y0, x1, y1 = self.head
        return rgb[y0:y1, x0:x1]


# MTCNN on grace_hopper.jpg (512x600): face box (174, 120, 356, 340), score 0.9998; eyes (222, 192) and (310, 186),
# nose (269, 239), mouth corners (233, 280) and (307, 276). The head rectangle keeps hair, ears and chin.
PHOTOS = (Photo("grace_hopper.jpg", head=(130, 40, 400, 400), swap=(266.0, 215.0, 78.0, 50.0)),)


def available_photos() -> list[Photo]:
    found = [p for p in PHOTOS if p.path().is_file()]
    if not found:
        raise SyntheticError(f"none of the photos {[p.name for p in PHOTOS]} is installed (matplotlib's sample_data)")
    return found


@dataclass(frozen=True)
class Identity:
    """A "person" made from a photo: mirrored or not, wider or narrower, another skin tone and white balance."""

    photo: int
    mirror: bool
    stretch: float  # width factor
    gains: tuple[float, float, float]
    gamma: float
    saturation: float

    @classmethod
    def random(cls, rng: random.Random, n_photos: int) -> "Identity":
        warmth = rng.uniform(-0.18, 0.18)
        level = rng.uniform(0.7, 1.2)
        gains = (level * (1 + warmth), level * rng.uniform(0.92, 1.05), level * (1 - warmth))
        return cls(photo=rng.randrange(n_photos), mirror=rng.random() < 0.5, stretch=rng.uniform(0.86, 1.12),
                   gains=tuple(round(g, 3) for g in gains), gamma=rng.uniform(0.8, 1.25),
                   saturation=rng.uniform(0.6, 1.4))


def _recolour(rgb: np.ndarray, gains, gamma: float, saturation: float) -> np.ndarray:
    grey = rgb.mean(axis=2, keepdims=True)
    out = grey + (rgb - grey) * saturation
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    return np.clip(out * np.asarray(gains, np.float32), 0, 255)


def render_identity(head: np.ndarray, who: Identity, w: int, h: int, shift: tuple[float, float] = (0.0, 0.0),
                    zoom: float = 1.0) -> np.ndarray:
    """The identity's head at w x h (float32 RGB); `shift` (fractions of w, h) and `zoom` misalign a donor."""
    image = head[:, ::-1] if who.mirror else head
    hh, hw = image.shape[:2]
    # zoom about the centre, then shift: an affine warp from the head rectangle to the sprite
    sx, sy = w / hw * zoom, h / hh * zoom
    tx = w / 2 - sx * hw / 2 + shift[0] * w
    ty = h / 2 - sy * hh / 2 + shift[1] * h
    matrix = np.float32([[sx, 0, tx], [0, sy, ty]])
    warped = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_AREA,
                            borderMode=cv2.BORDER_REFLECT_101)
    return _recolour(warped, who.gains, who.gamma, who.saturation)


def head_alpha(w: int, h: int) -> np.ndarray:
    """A soft ellipse filling the sprite: the head cut out of the photo's own background."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xs + 0.5) / w * 2 - 1
    v = (ys + 0.5) / h * 2 - 1
    d = np.sqrt((u / 0.98) ** 2 + (v / 0.99) ** 2)
    feather = 0.12
    return np.clip((1.0 - d) / feather, 0.0, 1.0)


# --------------------------------------------------------------------------- the fakes' swap


@dataclass(frozen=True)
class Swap:
    """Another identity's eyes-nose region pasted into the face, as early face-swap generators left it:
    misaligned by a few pixels, upsampled from a low resolution, colour-mismatched, with a visible seam."""

    donor: Identity
    shift: tuple[float, float]
    zoom: float
    rows: int          # the donor region is rendered at about this many rows over the sprite's height
    gains: tuple[float, float, float]
    contrast: float
    scale_rx: float    # the pasted ellipse, relative to the photo's eyes-nose ellipse
    scale_ry: float
    seam: float

    @classmethod
    def random(cls, rng: random.Random, host: Identity, n_photos: int) -> "Swap":
        donor = Identity.random(rng, n_photos)
        while donor.mirror == host.mirror and abs(donor.stretch - host.stretch) < 0.05:
            donor = Identity.random(rng, n_photos)
        gains = (rng.uniform(1.12, 1.28), rng.uniform(0.9, 1.0), rng.uniform(0.65, 0.8))
        return cls(donor=donor, shift=(rng.uniform(-0.03, 0.03), rng.uniform(-0.025, 0.025)),
                   zoom=rng.uniform(0.94, 1.08), rows=rng.randint(22, 30), gains=gains,
                   contrast=rng.uniform(0.6, 0.75), scale_rx=rng.uniform(1.0, 1.2), scale_ry=rng.uniform(1.0, 1.25),
                   seam=rng.uniform(0.2, 0.3))


def swap_ellipse(photo: Photo, swap: Swap, mirror: bool) -> tuple[float, float, float, float]:
    """The pasted ellipse in sprite-normalised units (centre u, centre v, radius u, radius v), all in [0, 1]."""
    x0, y0, x1, y1 = photo.head
    cx, cy, rx, ry = photo.swap
    u = (cx - x0) / (x1 - x0)
    return (1 - u if mirror else u, (cy - y0) / (y1 - y0), rx / (x1 - x0) * swap.scale_rx,
            ry / (y1 - y0) * swap.scale_ry)


def apply_swap(host: np.ndarray, head: np.ndarray, photo: Photo, mirror: bool, swap: Swap
               ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Blend the swap into the host sprite; returns (rgb, the manipulated box (x0, y0, x1, y1) in sprite pixels)."""
    h, w = host.shape[:2]
    donor = render_identity(head, swap.donor, w, h, swap.shift, swap.zoom)
    donor = _blocky(donor, swap.rows)
    donor = _gauss_blur(donor, max(0.6, 0.006 * h))
    mean = donor.mean(axis=(0, 1), keepdims=True)
    donor = np.clip(((donor - mean) * swap.contrast + mean * 1.05) * np.asarray(swap.gains, np.float32), 0, 255)
    cu, cv, ru, rv = swap_ellipse(photo, swap, mirror)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt((((xs + 0.5) / w - cu) / ru) ** 2 + (((ys + 0.5) / h - cv) / rv) ** 2)
    t = np.clip((1.0 - d) / 0.2, 0, 1)
    mask = t * t * (3 - 2 * t)
    seam = swap.seam * np.clip(1.0 - np.abs(d - 0.95) / 0.07, 0, 1)
    out = host * (1 - mask[..., None]) + donor * mask[..., None]
    out = out + seam[..., None] * (255.0 - out)
    yy, xx = np.nonzero(np.maximum(mask, seam) > 0.004)  # any change of a level or more
    return out, (int(xx.min()), int(yy.min()), int(xx.max()) + 1, int(yy.max()) + 1)


# --------------------------------------------------------------------------- clips


@dataclass
class FaceGroup:
    """One real clip and its fakes (one ffmpeg process); the attributes encode_overlays and _boxes_per_second use."""

    real_id: str
    fake_ids: list
    width: int
    height: int
    background: str
    audio_hz: float | None
    who: Identity
    sprite_w: int
    sprite_h: int
    motion: Motion
    swaps: list
    fake_bboxes: list = field(default_factory=list)


def _plan(n_videos: int, seconds: float, size: tuple[int, int], seed: int, photos: list[Photo]) -> list[FaceGroup]:
    rng = random.Random(seed)
    real_ids, per_real, kinds = plan_ids(rng, n_videos)
    groups = []
    for i, rid in enumerate(real_ids):
        portrait = i % 6 == 1
        w, h = (size[1], size[0]) if portrait else size
        who = Identity.random(rng, len(photos))
        x0, y0, x1, y1 = photos[who.photo].head
        sh = int(round(rng.uniform(0.62, 0.9) * min(w, h))) // 2 * 2  # head size: rescaled from clip to clip
        sw = min(w - 4, int(round(sh * (x1 - x0) / (y1 - y0) * who.stretch))) // 2 * 2
        ax = rng.uniform(0.15, 0.4) * (w - sw) / 2
        ay = rng.uniform(0.05, 0.3) * (h - sh) / 2
        motion = Motion(rng.uniform(ax, w - sw - ax), rng.uniform(ay, h - sh - ay), ax, ay,
                        rng.uniform(0.04, 0.12), rng.uniform(0.04, 0.12),
                        rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))
        swaps = [Swap.random(rng, who, len(photos)) for _ in per_real[i]]
        groups.append(FaceGroup(rid, per_real[i], w, h, _background(kinds[i % len(kinds)], rng, w, h, seconds),
                                None if i % 3 == 1 else rng.uniform(200, 1000), who, sw, sh, motion, swaps))
    return groups


def _write_rgba(path: Path, rgb: np.ndarray, alpha: np.ndarray) -> None:
    rgba = np.concatenate([rgb, alpha[..., None] * 255.0], axis=2)
    path.write_bytes(np.round(np.clip(rgba, 0, 255)).astype(np.uint8).tobytes())


def _render_group(ffmpeg: str, g: FaceGroup, photos: list[Photo], heads: list[np.ndarray], part_dir: Path,
                  tmp: Path, seconds: float) -> None:
    photo, head = photos[g.who.photo], heads[g.who.photo]
    real = render_identity(head, g.who, g.sprite_w, g.sprite_h)
    alpha = head_alpha(g.sprite_w, g.sprite_h)
    sprites = [tmp / f"{g.real_id}.rgba"]
    _write_rgba(sprites[0], real, alpha)
    g.fake_bboxes = []
    for fid, swap in zip(g.fake_ids, g.swaps):
        fake, bbox = apply_swap(real, heads[g.who.photo], photo, g.who.mirror, swap)
        g.fake_bboxes.append(bbox)
        sprites.append(tmp / f"{fid}.rgba")
        _write_rgba(sprites[-1], fake, alpha)
    encode_overlays(ffmpeg, g, [g.real_id] + list(g.fake_ids), sprites, part_dir, seconds)


def generate(out_dir: str | os.PathLike, n_videos: int = 64, seconds: float = 3.0, size: tuple[int, int] = (384, 216),
             seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """Write the dataset under out_dir and return out_dir (layout and boxes.json as demodata.synthetic.generate).

    About 1 in 4 clips is real; every fake is its `original` with the eyes-nose region swapped (see Swap), and
    boxes.json gives, per whole second, a normalised [x0, y0, x1, y1] box around the swapped region.
    """
    if n_videos < 1:
        raise SettingsError("n_videos must be >= 1")
    if seconds <= 0:
        raise SettingsError("seconds must be > 0")
    w, h = size
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise SettingsError(f"size must be even and at least 64x64 (MTCNN needs faces of 20 px and more), got {w}x{h}")
    photos = available_photos()
    heads = [p.load() for p in photos]
    out = Path(out_dir)
    part_dir = out / PART_NAME
    part_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg()
    groups = _plan(n_videos, seconds, size, seed, photos)
    n_total = sum(1 + len(g.fake_ids) for g in groups)
    log.info("generating %d face clips (%d real) of %.1fs at %dx%d from %s into %s", n_total, len(groups), seconds,
             w, h, ", ".join(p.name for p in photos), part_dir)
    with tempfile.TemporaryDirectory(prefix="faces-") as tmp, \
            tqdm(total=n_total, unit="clip", desc="faces demo", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_render_group, ffmpeg, g, photos, heads, part_dir, Path(tmp), seconds): g
                   for g in groups}
        try:
            for fut in as_completed(futures):
                fut.result()
                bar.update(1 + len(futures[fut].fake_ids))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    metadata: dict[str, dict] = {}
    boxes: dict[str, list] = {}
    for g in groups:
        metadata[f"{g.real_id}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        for fid, bbox in zip(g.fake_ids, g.fake_bboxes):
            metadata[f"{fid}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{g.real_id}.mp4"}
            boxes[f"{fid}.mp4"] = _boxes_per_second(g, bbox, seconds)
    (part_dir / "metadata.json").write_text(json.dumps(dict(sorted(metadata.items())), indent=1) + "\n")
    (out / "boxes.json").write_text(json.dumps(dict(sorted(boxes.items())), indent=1) + "\n")
    log.info("wrote %d clips, metadata.json and boxes.json under %s", n_total, out)
    return out


# --------------------------------------------------------------------------- the check


def detection_rate(out_dir: str | os.PathLike, fps: float = 1.0, max_videos: int | None = None,
                   min_score: float = 0.9) -> dict:
    """Run MTCNN (facenet-pytorch, default thresholds, on the CPU) on the frames the pipeline would keep.

    Returns {"frames", "with_face", "rate", "boxes_inside"}: boxes_inside counts fake frames whose swap box
    (boxes.json) lies inside the detected face box grown by 30% (the crop the faces stage makes).
    """
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image
    import simplejpeg

    from pipeline.ffmpeg.extract import extract

    out = Path(out_dir)
    meta = json.loads((out / PART_NAME / "metadata.json").read_text())
    boxes = json.loads((out / "boxes.json").read_text())
    names = sorted(meta)[:max_videos] if max_videos else sorted(meta)
    torch.set_num_threads(1)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    frames = with_face = fake_frames = inside = 0
    for name in names:
        _, kept = extract(str(out / PART_NAME / name), fps, (4096, 4096), 2)
        for frame in kept:
            rgb = simplejpeg.decode_jpeg(frame.jpeg, colorspace="RGB")
            found, scores = mtcnn.detect(Image.fromarray(rgb))
            frames += 1
            ok = found is not None and any(s >= min_score for s in scores)
            with_face += int(ok)
            if name in boxes and ok:
                fake_frames += 1
                second = min(int(frame.second + 1e-6), len(boxes[name]) - 1)
                bx0, by0, bx1, by1 = np.asarray(boxes[name][second]) * [frame.width, frame.height, frame.width, frame.height]
                x0, y0, x1, y1 = found[int(np.argmax(scores))]
                mx, my = 0.3 * (x1 - x0), 0.3 * (y1 - y0)
                inside += int(bx0 >= x0 - mx and by0 >= y0 - my and bx1 <= x1 + mx and by1 <= y1 + my)
    return {"videos": len(names), "frames": frames, "with_face": with_face, "rate": with_face / max(frames, 1),
            "fake_frames_with_face": fake_frames, "boxes_inside": inside}


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output dataset root.")
@click.option("--videos", "n_videos", default=64, show_default=True, help="Total clips (about 1 in 4 real).")
@click.option("--seconds", default=3.0, show_default=True, help="Clip length in seconds.")
@click.option("--size", default="384x216", show_default=True, callback=_parse_size,
              help="Landscape frame size WxH (portrait clips use HxW).")
@click.option("--seed", default=0, show_default=True, help="Seed for ids, people, backgrounds and fakes.")
@click.option("--workers", default=2, show_default=True, help="Parallel ffmpeg processes.")
@click.option("--check", is_flag=True, help="Then run MTCNN on one frame per second and print the detection rate.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (prints ffmpeg commands).")
def main(out_dir: str, n_videos: int, seconds: float, size: tuple[int, int], seed: int, workers: int, check: bool,
         verbose: bool) -> None:
    """Generate a small DFDC-shaped dataset of real photographed faces (metadata.json, mp4 clips, boxes.json)."""
    setup_logging(verbose)
    with reported():
        generate(out_dir, n_videos=n_videos, seconds=seconds, size=size, seed=seed, workers=workers)
    if check:
        r = detection_rate(out_dir)
        click.echo(f"MTCNN found a face in {r['with_face']} of {r['frames']} frames ({r['rate']:.1%}) of "
                   f"{r['videos']} clips; the swap box lies inside the 30%-margin face crop in {r['boxes_inside']} "
                   f"of {r['fake_frames_with_face']} fake frames")


if __name__ == "__main__":
    main()
