"""Tiny shards + dataset.json in the contract's layout (docs/manifest.md), for the trainer's tests."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import simplejpeg


def frame(rng: np.random.Generator, label: str, height: int, width: int) -> np.ndarray:
    """A smooth random scene; fakes carry a brighter, blurred-edged square (a crude 'blended face')."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-80, 80, size=(2, 3))
    image = base + yy[..., None] * slope[0] + xx[..., None] * slope[1] + rng.normal(0, 6, (height, width, 3))
    if label == "fake":
        s = height // 3
        top, left = rng.integers(0, height - s), rng.integers(0, width - s)
        image[top:top + s, left:left + s] = 0.4 * image[top:top + s, left:left + s] + 0.6 * np.array([235, 190, 160])
    return np.clip(image, 0, 255).astype(np.uint8)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def make_dataset(root: Path, videos: dict | None = None, frames_per_video: int = 4, videos_per_shard: int = 2,
                 size: tuple[int, int] = (72, 128), seed: int = 0, splits: tuple[str, ...] = ("train", "val")) -> tuple[Path, Path]:
    """Write root/shards/*.tar and root/manifests/dataset.json; returns (shards, manifests)."""
    videos = videos or {"train": {"real": 4, "fake": 6}, "val": {"real": 2, "fake": 2}}
    rng = np.random.default_rng(seed)
    shards_dir, manifests_dir = root / "shards", root / "manifests"
    shards_dir.mkdir(parents=True, exist_ok=True)
    manifests_dir.mkdir(parents=True, exist_ok=True)
    entries, frames = [], {}
    for split in splits:
        frames[split] = {}
        for label, n_videos in videos.get(split, {}).items():
            ids = [f"{split[:2]}{label[:1]}{i:03d}" for i in range(n_videos)]
            frames[split][label] = n_videos * frames_per_video
            for s, start in enumerate(range(0, n_videos, videos_per_shard)):
                name = f"{split}-{label}-{s:06d}.tar"
                chunk = ids[start:start + videos_per_shard]
                with tarfile.open(shards_dir / name, "w", format=tarfile.USTAR_FORMAT) as tar:
                    for vid in chunk:
                        for sec in range(frames_per_video):
                            key = f"{vid}_{sec:04d}"
                            jpg = simplejpeg.encode_jpeg(frame(rng, label, *size), quality=90, colorspace="RGB")
                            meta = {"key": key, "video_id": vid, "index": sec, "second": float(sec), "label": label,
                                    "split": split, "source": "test", "original": None, "group": vid,
                                    "width": size[1], "height": size[0]}
                            _add(tar, f"{key}.jpg", jpg)
                            _add(tar, f"{key}.json", json.dumps(meta).encode())
                entries.append({"name": name, "split": split, "label": label, "frames": len(chunk) * frames_per_video,
                                "videos": len(chunk), "bytes": (shards_dir / name).stat().st_size})
    train = frames.get("train", {})
    n = sum(train.values())
    weights = {k: n / (2 * v) for k, v in train.items() if v}
    dataset = {"version": 1, "videos": {}, "frames": frames, "failed": 0, "split_ratio": {},
               "class_weights": weights, "shards": entries, "config": {}, "ffmpeg": "none", "created": "test"}
    (manifests_dir / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return shards_dir, manifests_dir
