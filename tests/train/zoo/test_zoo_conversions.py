"""Exact conversions, proved: each entry's network built from the library its authors used (random weights),
saved in the published layout, imported by the real command line, loaded as a package: the package's P(fake)
equals the reference's on the same input (max abs difference < 1e-4)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers.zoo_reference import (DFBEfficientNetB4Reference, DFBXceptionReference, SBIReference, WinnerReference,
                                   clip_vit_l14, p_fake_package, prepare, run_zoo, save_effort, save_gend,
                                   sharpen, with_svd_residuals)
from train.zoo import load_zoo_package
from train.zoo.entries import entry

TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _few_threads(tmp_path):
    """Two CPU cores are shared: one forward at a time, small batches. The published files and packages (up to
    2.4 GB a test for the ViT-L/14s) are deleted after each test, so a run does not fill the disk."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    shutil.rmtree(tmp_path, ignore_errors=True)


def _import(name, files, out):
    """The real command line; its output and the card state the licence (non-commercial ones prominently)."""
    proc = run_zoo("import", name, *files, "--out", out)
    assert proc.returncode == 0, proc.stderr
    e = entry(name)
    licence = next(line for line in proc.stdout.splitlines() if line.startswith("licence:"))
    card = (out / "README.md").read_text()
    assert ("NON-COMMERCIAL" in licence) == e.licence.non_commercial
    assert ("**NON-COMMERCIAL USE ONLY.**" in card.split("## Licence")[0]) == e.licence.non_commercial
    assert e.licence.weights in card and e.code in card and all(f.test_set in card for f in e.figures)
    model, config = load_zoo_package(out)
    assert config["zoo"]["name"] == name and config["zoo"]["licence"]["non_commercial"] == e.licence.non_commercial
    assert config["zoo"]["preprocessing"]["frames_per_video"] == e.preprocessing.frames_per_video
    assert [i["file"] for i in config["imported"]] == [f.name for f in files]
    assert config["classes"] == ["real", "fake"] and config["input"]["size"] == list(e.input.size)
    return model, config


def _compare(name, reference_p, model, x) -> float:
    """Max |P(fake)| difference below TOLERANCE, on inputs the reference tells apart (so every layer counts)."""
    got = p_fake_package(model, x)
    diff = (got - reference_p).abs().max().item()
    print(f"{name}: P(fake) reference {reference_p.tolist()}, max |reference - package| = {diff:.3g}")
    assert diff < TOLERANCE, (name, diff, got, reference_p)
    assert (reference_p.max() - reference_p.min()).item() > 100 * TOLERANCE, "the reference ignores its input"
    assert ((reference_p > 0.001) & (reference_p < 0.999)).all(), "P(fake) saturated: the check would be weak"
    return diff


def test_dfdc_winner_two_members(tmp_path):
    """timm tf_efficientnet_b7 at 380 px, 'state_dict' + 'module.' + the unused ImageNet classifier; a sigmoid
    logit becomes [real, fake]; two members average their P(fake)."""
    refs, files = [], []
    x = torch.randn(2, 3, 380, 380)
    for seed in (0, 1):
        torch.manual_seed(seed)
        ref = prepare(WinnerReference(), x, seed)
        ref.save(tmp_path / f"final_{seed}")
        refs.append(ref)
        files.append(tmp_path / f"final_{seed}")
    expected = torch.stack([r.p_fake(x) for r in refs]).mean(0)
    del refs
    model, config = _import("dfdc-winner", files, tmp_path / "pkg")
    assert config["members"] == 2 and config["architecture"]["outputs"] == 1
    assert config["input"]["mean"] == [0.485, 0.456, 0.406]
    _compare("dfdc-winner", expected, model, x)


def test_sbi_entries_differ_only_in_their_files_and_figures():
    """sbi-raw is sbi-c23's network, layout, input and preprocessing trained on other data: the conversion below,
    proved on sbi-c23, is the same code path for both (one B4 at 380 px fewer in CI)."""
    c23, raw = entry("sbi-c23"), entry("sbi-raw")
    same = ("architecture", "layout", "input", "preprocessing", "licence", "code")
    assert [getattr(c23, f) == getattr(raw, f) for f in same] == [True] * len(same)
    assert c23.files != raw.files and c23.figures != raw.figures


def test_sbi(tmp_path, name="sbi-c23"):
    """efficientnet_pytorch EfficientNet-B4 (static 'same' pads for 380 px), 'model' + 'net.'; inputs in [0, 1]."""
    torch.manual_seed(2)
    x = torch.rand(2, 3, 380, 380)  # RGB / 255, no mean/std
    ref = prepare(SBIReference(), x, 2)
    ref.save(tmp_path / "FF.tar")
    expected = ref.p_fake(x)
    model, config = _import(name, [tmp_path / "FF.tar"], tmp_path / "pkg")
    assert config["input"]["mean"] == [0.0, 0.0, 0.0] and config["input"]["std"] == [1.0, 1.0, 1.0]
    assert config["architecture"]["static_pads"]["conv_stem"] == [0, 1, 0, 1]
    _compare(name, expected, model, x)


def test_deepfakebench_efficientnet_b4(tmp_path):
    """DeepfakeBench's B4 at its 256 px: an unpadded stem and efficientnet_pytorch's pads fixed for 380 px."""
    torch.manual_seed(3)
    x = torch.randn(2, 3, 256, 256)
    ref = prepare(DFBEfficientNetB4Reference(), x, 3)
    ref.save(tmp_path / "effnb4_best.pth")
    expected = ref.p_fake(x)
    model, config = _import("deepfakebench-efficientnet-b4", [tmp_path / "effnb4_best.pth"], tmp_path / "pkg")
    assert config["architecture"]["static_pads"]["conv_stem"] == [0, 0, 0, 0]
    assert config["input"]["size"] == [256, 256] and config["input"]["mean"] == [0.5, 0.5, 0.5]
    _compare("deepfakebench-efficientnet-b4", expected, model, x)


def test_deepfakebench_xception(tmp_path):
    """timm legacy_xception saved as DeepfakeBench's detector: 'backbone.', last_linear, unused adjust_channel."""
    torch.manual_seed(4)
    x = torch.randn(2, 3, 256, 256)
    ref = prepare(DFBXceptionReference(), x, 4)
    ref.save(tmp_path / "xception_best.pth")
    expected = ref.p_fake(x)
    model, _ = _import("deepfakebench-xception", [tmp_path / "xception_best.pth"], tmp_path / "pkg")
    _compare("deepfakebench-xception", expected, model, x)


def test_gend(tmp_path):
    """transformers CLIPVisionModel ViT-L/14 (QuickGELU, CLIP mean/std), pooled output L2-normalised, linear head;
    saved as GenD's Hugging Face model.safetensors (with the unused visual projection)."""
    ref = clip_vit_l14(seed=5)
    x = torch.randn(2, 3, 224, 224)
    head = torch.nn.Linear(1024, 2)
    with torch.no_grad():
        features = torch.nn.functional.normalize(ref(pixel_values=x).pooler_output, dim=1)
    sharpen(head, features)
    save_gend(ref, head, tmp_path / "model.safetensors")
    with torch.no_grad():
        expected = head(features).softmax(1)[:, 1]
    del ref
    model, config = _import("gend-clip-l14", [tmp_path / "model.safetensors"], tmp_path / "pkg")
    assert config["architecture"]["normalise"] is True
    assert config["input"]["mean"] == [0.48145466, 0.4578275, 0.40821073]
    _compare("gend-clip-l14", expected, model, x)


def test_effort(tmp_path):
    """Effort: the self-attention linears as weight_main + U diag(S) V (merged by the import into plain weights)."""
    ref = with_svd_residuals(clip_vit_l14(seed=6))
    x = torch.randn(2, 3, 224, 224)
    head = torch.nn.Linear(1024, 2)
    with torch.no_grad():
        features = ref(pixel_values=x).pooler_output
    sharpen(head, features)
    save_effort(ref, head, tmp_path / "effort.pth")
    with torch.no_grad():
        expected = head(features).softmax(1)[:, 1]
    del ref
    model, config = _import("effort-clip-l14", [tmp_path / "effort.pth"], tmp_path / "pkg")
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "NON-COMMERCIAL" in card and json.loads((tmp_path / "pkg" / "config.json").read_text())["zoo"]
    _compare("effort-clip-l14", expected, model, x)
