"""`dfd train --init` from a zoo package: DeepfakeBench's Xception with random weights, saved in the authors' layout
and imported; the run starts from exactly the package's network (same P(fake) on the same input), with its input
kind, size, normalisation and face crop; the network's layer groups split body and head; what cannot work is
refused in one line naming both sides; a 1-step run on tiny face shards records its source."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.commands import run_module
from helpers.faces_fixtures import write_faces
from helpers.zoo_reference import DFBXceptionReference
from pipeline.dataset import DatasetError
from train.config import TrainConfig
from train.fit.init import InitError, init_input, load_start, read_start, with_init
from train.fit.loop import open_run
from train.linear_head import LinearHead, PooledBody
from train.checkpoint import load_checkpoint
from train.model import BN_TYPES, create_model, layer_groups, normalize, set_frozen
from train.score.package import load_package
from train.zoo.importer import import_entry
from train.zoo.runtime import face_crop_of

NAME = "deepfakebench-xception"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo-init")
    torch.manual_seed(7)
    DFBXceptionReference().save(root / "xception_best.pth")
    import_entry(NAME, [root / "xception_best.pth"], root / "package")
    (root / "xception_best.pth").unlink()
    return root / "package"


def _config(tmp_path: Path, start, **given) -> TrainConfig:
    base = TrainConfig.from_recipe("demo", input=init_input(start, None), shards="s", manifests="m", out=str(tmp_path))
    return with_init(base, start, given)


def test_the_run_starts_from_exactly_the_package(package, tmp_path):
    start = read_start(package)
    config = _config(tmp_path, start)
    assert (config.arch, config.input, config.image_size, config.weights) == ("legacy_xception", "faces", (256, 256),
                                                                             "none")
    assert config.input_norm == {"mean": [0.5] * 3, "std": [0.5] * 3, "scale": 255.0, "colour": "rgb"}
    zoo = json.loads((package / "config.json").read_text())
    crop = face_crop_of(zoo)
    assert config.recipe.faces == {"margin": crop.margin, "face_size": crop.face_size}
    assert config.init["kind"] == "zoo" and config.init["name"] == NAME
    assert "NON-COMMERCIAL" in config.init["licence"]
    assert config.network["timm_name"] == "legacy_xception"
    model = create_model(config.arch, config.weights, config.network, config.model_input)
    load_start(model, config.init)
    reference, _, _ = load_package(package)  # the scoring path: the zoo network behind OwnInput
    x = normalize(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert torch.allclose(model.eval()(x).softmax(1), reference(x).softmax(1), atol=1e-5)
    assert TrainConfig.from_checkpoint(config.to_dict()) == config  # config.json round-trips


def test_a_zoo_network_splits_into_body_halves_and_its_linear_head(package, tmp_path):
    config = _config(tmp_path, read_start(package))
    model = create_model(config.arch, config.weights, config.network, config.model_input)
    assert isinstance(model[0], PooledBody) and isinstance(model[1], LinearHead)
    lower, upper, head = layer_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(map(id, lower + upper + head)) == sorted(names)
    assert {names[id(p)] for p in head} == {"1.head.weight", "1.head.bias"}
    assert "0.net.conv1.weight" in {names[id(p)] for p in lower}
    assert "0.net.conv4.pointwise.weight" in {names[id(p)] for p in upper}
    set_frozen(model, True)
    bn = {id(p) for m in model.modules() if isinstance(m, BN_TYPES) for p in m.parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == bn | {id(p) for p in head}


def test_what_contradicts_the_package_is_refused_naming_both(package, tmp_path, monkeypatch):
    start = read_start(package)
    with pytest.raises(InitError, match=r"--input frames, but --init .* is a faces model"):
        init_input(start, "frames")
    with pytest.raises(InitError, match=r"--init .* and --weights imagenet both"):
        _config(tmp_path, start, weights="imagenet")
    with pytest.raises(InitError, match=r"--arch resnet18, but --init .* is a legacy_xception"):
        _config(tmp_path, start, arch="resnet18")
    with pytest.raises(InitError, match=r"^--init .*nowhere: no model package, run folder or checkpoint there"):
        read_start(tmp_path / "nowhere")
    monkeypatch.setenv("DFD_ZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InitError, match=r"^--init zoo:sbi-raw: no imported package at .*dfd zoo import sbi-raw"):
        read_start("zoo:sbi-raw")


def test_frames_shards_are_refused_for_a_faces_package(package, tiny_dataset, tmp_path):
    config = dataclasses.replace(_config(tmp_path, read_start(package)), shards=str(tiny_dataset["shards"]),
                                 manifests=str(tiny_dataset["manifests"]))
    with pytest.raises(DatasetError, match=rf"^--init {package} is a faces model, but manifest .* has no faces"):
        open_run(config, resume=False)


@pytest.fixture(scope="module")
def faces_dataset(tiny_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("init-faces")
    shutil.copytree(tiny_dataset["shards"], root / "shards")
    shutil.copytree(tiny_dataset["manifests"], root / "manifests")
    write_faces(root / "shards", root / "manifests")
    return {"shards": root / "shards", "manifests": root / "manifests"}


def _train(dataset: dict, out: Path, *args, check: bool = True):
    return run_module("train.run", "--shards", dataset["shards"], "--manifests", dataset["manifests"], "--out", out,
                      "--recipe", "demo", "--image-size", "64", "--batch-size", "4", "--workers", "0", "--device",
                      "cpu", "--dev-run", "--no-lr-find", "--no-explain", "--stop-after-epochs", "1", *args,
                      check=check)


@pytest.mark.slow  # a dev run of Xception at 64 px on tiny face shards (about 30 s on a loaded 2-core box)
def test_fine_tune_a_zoo_package_on_face_shards(package, faces_dataset, tmp_path):
    run = tmp_path / "run"
    proc = _train(faces_dataset, run, "--init", package)
    assert "was made for 256x256 inputs; training at 64x64" in proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["init"]["kind"] == "zoo" and config["network"]["timm_name"] == "legacy_xception"
    assert config["input"] == "faces" and config["input_norm"]["mean"] == [0.5] * 3
    model, saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert isinstance(model[0], PooledBody) and saved.init == config["init"]
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    run_module("train.export", "--checkpoint", run / "checkpoints" / "last.pt", "--out", tmp_path / "package")
    exported, _, data = load_package(tmp_path / "package")
    assert data["head"].startswith("linear") and data["normalization"]["mean"] == [0.5] * 3
    card = (tmp_path / "package" / "README.md").read_text()
    assert f"fine-tuned from zoo `{package}`" in card and "NON-COMMERCIAL" in card
    x = normalize(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-5)
