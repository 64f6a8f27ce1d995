"""Sizes a user, a recipe, a saved config or a package can set: an image size the backbone cannot take (a ViT's
patch) is refused before training in one line naming the sizes that work, and every size is bounded, so a package
asking for a 100,000-pixel input or face is refused in one line naming its file before anything is allocated."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest

from helpers.clips import make_clip
from helpers.commands import run_module
from dfd.errors import ToolkitError
from helpers.models import untrained_checkpoint
from pipeline.spec import SpecError
from train.config import RecipeError, load_recipe
from train.checkpoint import load_checkpoint
from train.model import InputSizeError, check_input_size
from train.score.package import load_package, package_config, write_package
from train.zoo.entries import entry, entry_dict
from train.zoo.runtime import face_crop_of

VIT = "vit_tiny_patch16_224"
HUGE = 100_000


def _refused(proc, code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and all(w in last for w in words), (words, last)
    return last


def test_a_vit_size_off_its_patch_is_refused_before_training(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    proc = run_module("train.run", "--shards", tiny_dataset["shards"], "--manifests", tiny_dataset["manifests"],
                      "--out", out, "--arch", VIT, "--weights", "none", "--device", "cpu", "--image-size", "72",
                      "--batch-size", "4", "--workers", "0", "--dev-run", "--no-explain", check=False)
    _refused(proc, 2, "--image-size 72x72", VIT, "16x16 patch", "64 or 80")
    assert not out.exists(), "nothing of the run is written"


def test_what_timm_tells_in_advance():
    check_input_size(VIT, (64, 96))  # multiples of the patch: fine (position embeddings resampled)
    check_input_size("resnet18", (33, 47))
    with pytest.raises(InputSizeError, match=r"1274 or 1288 wide and 714 or 728 high"):
        check_input_size("vit_small_patch14_dinov2.lvd142m", (720, 1280))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("sizes")
    model, config = load_checkpoint(untrained_checkpoint(root / "frames.pt", input="frames"))
    write_package(root / "pkg", model, package_config(config, {"value": 0.5, "chosen": "test"}, {}), "card")
    return {"pkg": root / "pkg", "video": make_clip(root / "v.mp4", seconds=1.0)}


def _edited(package, tmp_path, where: str):
    edited = tmp_path / where
    shutil.copytree(package["pkg"], edited)
    path = edited / "config.json"
    data = json.loads(path.read_text())
    if where == "image_size":  # both places agree, as an export would write them
        data["image_size"] = data["training"]["recipe"]["image_size"] = [HUGE, HUGE]
    elif where == "model_input":
        data["model_input"]["size"] = [HUGE, HUGE]
    elif where == "face_size":
        data["training"]["faces"] = {"face_size": HUGE}
    else:
        data["training"]["frames"]["size"] = [HUGE, HUGE]
    path.write_text(json.dumps(data))
    return edited


def test_a_huge_input_in_a_package_is_one_line_naming_its_file(package, tmp_path):
    edited = _edited(package, tmp_path, "image_size")
    proc = run_module("train.check", package["video"], "--model", edited, "--no-html", "--device", "cpu",
                      check=False)
    _refused(proc, 1, str(edited / "config.json"), "image_size", str(HUGE))


@pytest.mark.parametrize("where", ["model_input", "face_size", "frame_size"])
def test_every_size_a_package_sets_is_bounded(package, tmp_path, where):
    edited = _edited(package, tmp_path, where)
    with pytest.raises(ToolkitError, match=rf"^{re.escape(str(edited / 'config.json'))}: .*{HUGE}"):
        load_package(edited)


def test_saved_configs_and_recipes_are_bounded_too():
    seed = load_recipe("seed")
    with pytest.raises(RecipeError, match="image_size: each side must be in 32..4096"):
        dataclasses.replace(seed, image_size=(HUGE, HUGE))
    with pytest.raises(RecipeError, match="faces.face_size"):
        dataclasses.replace(seed, faces={"face_size": HUGE})
    zoo = entry_dict(entry("sbi-c23"))
    zoo["preprocessing"]["face_size"] = HUGE
    with pytest.raises(SpecError, match=r"^PKG/config.json: zoo.preprocessing: face_size is 100000"):
        face_crop_of({"zoo": zoo}, "PKG/config.json")
