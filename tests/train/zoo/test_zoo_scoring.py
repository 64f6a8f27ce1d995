"""A zoo package works wherever a package works: loaded by the house's package loader behind its own
normalisation, described as a faces model, and checked end to end (`dfd zoo import` with the default --out, then
`dfd check --model zoo:NAME` on a real DFDC clip)."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.commands import run_module
from helpers.zoo_reference import DFBXceptionReference, prepare
from pipeline.spec import ModelInput
from train.model import normalize
from train.paths import resolve
from train.score.checkpoints import load_model, stored_threshold
from train.zoo.entries import entry, entry_dict
from train.zoo.runtime import OwnInput, aggregate_of, face_crop_of

CLIP = Path("/work/shared/data/dfdc_sample/dfdc_train_part_0/abqwwspghj.mp4")
NAME = "deepfakebench-xception"


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory) -> Path:
    """DeepfakeBench's Xception with random weights, in the authors' layout, imported by the real command line
    without --out: into $DFD_ZOO_CACHE/NAME/package, where zoo:NAME finds it."""
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(4)
    ref = prepare(DFBXceptionReference(), torch.randn(2, 3, 256, 256), 4)
    ref.save(root / "xception_best.pth")
    cache = root / "cache"
    proc = run_module("train.zoo_command", "import", NAME, root / "xception_best.pth",
                      env={"DFD_ZOO_CACHE": str(cache)})
    assert f"use it as --model zoo:{NAME}" in proc.stdout
    assert (cache / NAME / "package" / "model.safetensors").is_file()
    return cache


def test_own_input_is_the_package_normalisation_exactly():
    """SBI's plain /255, CLIP's mean and std and a BGR model: the ImageNet batch undone and redone."""
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    clip_mean, clip_std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    for spec in (ModelInput(mean=(0, 0, 0), std=(1, 1, 1)), ModelInput(mean=clip_mean, std=clip_std),
                 ModelInput(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), colour="bgr")):
        seen = OwnInput(nn.Identity(), spec)(normalize(pixels))
        order = [2, 1, 0] if spec.colour == "bgr" else [0, 1, 2]
        mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
        direct = (pixels[:, order].double() / spec.scale - mean.double()) / std.double()
        assert (seen.double() - direct).abs().max() < 2e-6, spec


def test_each_entry_crops_by_its_authors_rule():
    """The winner: box + h // 3 per side, isotropic resize with a centred pad to 380, every face, confident strategy;
    SBI: + 1/8 per side, stretched to 380; the aligned crops at 1.3: a square of 1.3 x the long side."""
    config = {"zoo": entry_dict(entry("dfdc-winner"))}
    winner = face_crop_of(config)
    assert (winner.box, winner.margin, winner.resize, winner.face_size, winner.max_faces) == (
        "per_side", pytest.approx(1 / 3), "isotropic_pad", 380, 4)
    assert aggregate_of(config) == "winner"  # confident, with the literal "fakes > 11" of the winner's code
    sbi = face_crop_of({"zoo": entry_dict(entry("sbi-c23"))})
    assert (sbi.box, sbi.margin, sbi.resize, sbi.face_size) == ("per_side", pytest.approx(1 / 8), "stretch", 380)
    assert aggregate_of({"zoo": entry_dict(entry("sbi-c23"))}) == "frame_max"  # SBI: max over a frame's faces
    for name in ("gend-clip-l14", "effort-clip-l14", "deepfakebench-efficientnet-b4"):
        crop = face_crop_of({"zoo": entry_dict(entry(name))})
        assert (crop.box, crop.margin, crop.resize) == ("scale", pytest.approx(0.15), "stretch"), name


def test_package_loader_dispatches_a_zoo_package(zoo_cache, monkeypatch):
    """load_model on zoo:NAME: the network fed the toolkit's ImageNet batch gives the logits of the network fed
    its own normalisation; the config is a faces model at the package's input size."""
    monkeypatch.setenv("DFD_ZOO_CACHE", str(zoo_cache))
    folder = resolve(f"zoo:{NAME}")
    model, config = load_model(folder)
    assert isinstance(model, OwnInput) and stored_threshold(folder) is None
    assert (config.input, config.image_size, config.aggregate, config.arch) == ("faces", (256, 256), "mean",
                                                                                "legacy_xception")
    assert config.faces.detector == "mtcnn" and config.frames.fps == pytest.approx(3.2)
    assert (config.faces.box, config.faces.margin, config.faces.resize) == ("scale", pytest.approx(0.15), "stretch")
    torch.manual_seed(1)
    pixels = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        via_toolkit = model(normalize(pixels))
        direct = model.net((pixels.float() / 255 - 0.5) / 0.5)
    assert (via_toolkit - direct).abs().max() < 1e-4


def test_check_a_real_clip_with_a_zoo_package(zoo_cache, tmp_path):
    out = tmp_path / "pages"
    proc = run_module("train.check", CLIP, "--model", f"zoo:{NAME}", "--out", out, "--device", "cpu", "--json",
                      env={"DFD_ZOO_CACHE": str(zoo_cache)}, check=False)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["verdict"] in ("FAKE", "REAL") and 0 <= row["p_fake"] <= 1 and row["items"] > 0
    page = Path(row["page"])
    assert page.is_file() and page.parent == out
    (zoo,) = row["zoo"]
    e = entry(NAME)
    assert zoo["name"] == NAME and zoo["source"] == e.code and zoo["non_commercial"] is True
    assert zoo["licence"].startswith("NON-COMMERCIAL USE ONLY") and "CC BY-NC 4.0" in zoo["licence"]
    assert (zoo["detector_used"], zoo["detector_authors"]) == ("MTCNN", "dlib")
    assert zoo["preprocessing"] == e.preprocessing.summary()
    text = html.unescape(page.read_text())
    for shown in (f"Published detector {NAME}", e.code, "NON-COMMERCIAL USE ONLY", e.preprocessing.summary(),
                  "MTCNN ran here (this toolkit's detector); the authors used dlib"):
        assert shown in re.sub(r"<[^>]+>", "", text), shown


def test_predict_images_scores_each_face_image(zoo_cache, tmp_path, monkeypatch):
    """`dfd predict --images DIR`: a row per image (path, p_fake), each stretched to the input and normalised as
    the package says (the network fed directly agrees); a file that is not an image: one line naming it, exit 1."""
    import cv2
    import pandas as pd

    faces = tmp_path / "faces"
    (faces / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pictures = {faces / "a.png": rng.integers(0, 256, (300, 200, 3), dtype=np.uint8),
                faces / "sub" / "b.png": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)}
    for path, rgb in pictures.items():
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    env = {"DFD_ZOO_CACHE": str(zoo_cache)}
    proc = run_module("train.predict", "--images", faces, "--checkpoint", f"zoo:{NAME}", "--out", tmp_path / "p.csv",
                      "--device", "cpu", env=env)
    assert "2 of 2 images scored" in proc.stdout
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["path"].tolist() == [str(p) for p in sorted(pictures)] and table["error"].isna().all()
    monkeypatch.setenv("DFD_ZOO_CACHE", str(zoo_cache))
    model, _ = load_model(resolve(f"zoo:{NAME}"))
    for path, rgb in pictures.items():
        x = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_LINEAR) if rgb.shape[:2] != (256, 256) else rgb
        with torch.no_grad():
            direct = model.net((torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5)
        expected = float(direct.softmax(dim=1)[0, 1])
        assert table.set_index("path").loc[str(path), "p_fake"] == pytest.approx(expected, abs=1e-5)
    (faces / "broken.jpg").write_text("not a picture")
    proc = run_module("train.predict", "--images", faces, "--checkpoint", f"zoo:{NAME}", "--out", tmp_path / "q.csv",
                      "--device", "cpu", env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{faces / 'broken.jpg'}: not a readable image" in proc.stderr
    proc = run_module("train.predict", "--images", tmp_path / "none", "--checkpoint", f"zoo:{NAME}", "--device", "cpu",
                      env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "none: not a folder" in proc.stderr


def test_a_zoo_package_with_an_unusable_crop_names_its_config(zoo_cache, tmp_path):
    """Issue 28 item 5: a negative margin in a zoo package's preprocessing was a usage error (exit 2, at first
    naming no file); a package that cannot be used is a failure naming its config.json (exit 1), like any package."""
    from click.testing import CliRunner

    import train.check

    folder = tmp_path / "package"
    shutil.copytree(zoo_cache / NAME / "package", folder)
    config = json.loads((folder / "config.json").read_text())
    config["zoo"]["preprocessing"].update(box="per_side", margin=-0.1, resize="stretch")
    (folder / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(train.check.main, [str(CLIP), "--model", str(folder), "--no-html", "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {folder / 'config.json'}: zoo.preprocessing: margin is -0.1, not a number in [0, 2]")
