"""Self-blended fakes in the train stream (--synthetic-fakes sbi, --synthetic-share, --real-only) on face shards
written as the faces contract says (tests/helpers/faces_fixtures.py), and the options' checks."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.faces_fixtures import write_faces
from pipeline.dataset import Dataset
from train.config import Augment, RecipeError, TrainConfig, load_recipe
from train.data.streams import TrainStream
from train.data.blended_fakes import SYNTHETIC_SUFFIX, Synthetic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faces_dataset(tiny_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sbi_faces")
    shutil.copytree(tiny_dataset["shards"], root / "shards")
    shutil.copytree(tiny_dataset["manifests"], root / "manifests")
    faces = write_faces(root / "shards", root / "manifests")
    return {"shards": root / "shards", "manifests": root / "manifests", "faces": faces}


def _items(dataset, synthetic, seed=3, n_batches=6, balance="none"):
    stream = TrainStream(dataset, (48, 48), Augment.none(), 8, n_batches, balance, 16, seed=seed,
                         synthetic=synthetic)
    return [(img, int(y), k, v) for images, labels, keys, videos in stream
            for img, y, k, v in zip(images, labels, keys, videos)]


def test_real_only_streams_real_faces_and_blends_a_share(faces_dataset):
    ds = Dataset.open(faces_dataset["shards"], faces_dataset["manifests"], "faces")
    faces = faces_dataset["faces"]
    real_videos = set(faces.loc[faces["label"] == "real", "video_id"])
    items = _items(ds, Synthetic("sbi", 0.5, True, 0.3))
    assert {v for *_, v in items} <= real_videos, "no fake video is read"
    fakes = [k for _, y, k, _ in items if y == 1]
    assert all(k.endswith(SYNTHETIC_SUFFIX) for k in fakes)
    assert all(not k.endswith(SYNTHETIC_SUFFIX) for _, y, k, _ in items if y == 0)
    assert 0.3 < len(fakes) / len(items) < 0.7
    # the same seed gives the same blends; another seed others
    again = _items(ds, Synthetic("sbi", 0.5, True, 0.3))
    assert all(a[2] == b[2] and np.array_equal(a[0], b[0]) for a, b in zip(items, again))
    other = _items(ds, Synthetic("sbi", 0.5, True, 0.3), seed=4)
    assert [k for *_, k, _ in other] != [k for *_, k, _ in items]


def test_with_fake_videos_the_blends_come_on_top(faces_dataset):
    ds = Dataset.open(faces_dataset["shards"], faces_dataset["manifests"], "faces")
    items = _items(ds, Synthetic("sbi", 1.0, False, 0.3), balance="mix")
    faces = faces_dataset["faces"]
    fake_videos = set(faces.loc[faces["label"] == "fake", "video_id"])
    assert all(y == 1 for _, y, _, _ in items), "share 1: every real face became a fake"
    assert any(k.endswith(SYNTHETIC_SUFFIX) for _, _, k, _ in items)
    assert any(v in fake_videos for *_, v in items)


def test_a_blend_changes_the_face_not_the_border(faces_dataset):
    ds = Dataset.open(faces_dataset["shards"], faces_dataset["manifests"], "faces")
    plain = {k: img for img, _, k, _ in _items(ds, None, n_batches=4, balance="none")}
    blended = [(img, k) for img, y, k, _ in _items(ds, Synthetic("sbi", 1.0, True, 0.3), n_batches=4) if y]
    pairs = [(plain[k[:-len(SYNTHETIC_SUFFIX)]].numpy(), img.numpy()) for img, k in blended
             if k[:-len(SYNTHETIC_SUFFIX)] in plain]
    assert pairs
    centre = [np.abs(a[:, 18:30, 18:30].astype(int) - b[:, 18:30, 18:30]).mean() for a, b in pairs]
    assert np.mean(centre) > 1.0


def test_options_are_checked_and_a_recipe_can_set_them():
    recipe = load_recipe("demo_faces")
    base = dict(shards="s", manifests="m", out="o", recipe=recipe)
    with pytest.raises(RecipeError, match="real_only.*synthetic"):
        TrainConfig(**base, input="faces", real_only=True)
    with pytest.raises(RecipeError, match="synthetic_fakes.*faces"):
        TrainConfig(**base, input="frames", synthetic_fakes="sbi")
    with pytest.raises(RecipeError, match="synthetic_share"):
        TrainConfig(**base, input="faces", synthetic_fakes="sbi", synthetic_share=0.0)
    sbi = TrainConfig.from_recipe("sbi", shards="s", manifests="m", out="o", arch=None, real_only=None,
                                  synthetic_fakes=None, tune=None)
    assert (sbi.arch, sbi.synthetic_fakes, sbi.real_only, sbi.image_size) == ("efficientnet_b4", "sbi", True, (380, 380))
    assert sbi.recipe.source["reported"]
    mine = TrainConfig.from_recipe("sbi", shards="s", manifests="m", out="o", arch="resnet18", real_only=False)
    assert mine.arch == "resnet18" and not mine.real_only  # the command line wins
    vit = TrainConfig.from_recipe("foundation", shards="s", manifests="m", out="o")
    assert (vit.arch, vit.tune, vit.image_size) == ("vit_large_patch14_clip_224.openai", "norm", (224, 224))


@pytest.mark.slow
def test_dev_run_real_only_sbi_and_the_blend_pointing_game(faces_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(faces_dataset["shards"]),
                           "--manifests", str(faces_dataset["manifests"]), "--out", str(out), "--input", "faces",
                           "--real-only", "--synthetic-fakes", "sbi", "--weights", "none", "--device", "cpu",
                           "--image-size", "64", "--batch-size", "8", "--workers", "0", "--dev-run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    explained = json.loads((out / "explain.json").read_text())
    blend = explained["pointing_blend"]
    assert blend["faces"] > 0 and 0 <= blend["pointing_game"] <= 1 and 0 < blend["random_point"] < 1
    assert (out / "pointing_blend.png").is_file()
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) >= 1
