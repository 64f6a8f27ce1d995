"""Vision transformers as backbones (timm's ViT, CLIP, DINOv2): the patch-token grid, layer groups, --tune, Grad-CAM
on tokens, the offline message and a dev run; tiny ViTs with --weights none at small sizes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from train.config import RecipeError, TrainConfig, load_recipe
from train.model import TimmBody, TokenGrid, WeightsError, build_model, create_model, layer_groups, set_frozen
from train.report.gradcam import find_target_layer, grad_cam

ROOT = Path(__file__).resolve().parents[2]
TINY = "vit_tiny_patch16_224"
FOUNDATION = ("vit_base_patch16_clip_224.openai", "vit_large_patch14_clip_224.openai", "vit_small_patch14_dinov2.lvd142m")


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model(TINY)


def test_token_grid_puts_each_patch_token_back_in_its_cell():
    n, prefix, c, h, w = 2, 1, 3, 2, 3
    tokens = torch.arange(n * (prefix + h * w) * c, dtype=torch.float32).reshape(n, prefix + h * w, c)
    grid = TokenGrid(prefix, (16, 16))(tokens, (32, 48))
    assert grid.shape == (n, c, h, w)
    for k in range(h * w):
        assert torch.equal(grid[:, :, k // w, k % w], tokens[:, prefix + k])
    with pytest.raises(ValueError, match="grid"):
        TokenGrid(prefix, (16, 16))(tokens, (32, 64))


def test_vit_layer_groups_patch_embed_and_first_half_of_blocks(vit):
    groups = layer_groups(vit)
    names = {id(p): n for n, p in vit.named_parameters()}
    lower, upper = ({names[id(p)] for p in g} for g in groups[:2])
    assert sum(map(len, groups)) == len(names)
    assert {"0.net.cls_token", "0.net.pos_embed", "0.net.patch_embed.proj.weight"} <= lower
    blocks = len(vit[0].net.blocks)
    assert {int(n.split(".")[3]) for n in lower if ".blocks." in n} == set(range(blocks // 2))
    assert {int(n.split(".")[3]) for n in upper if ".blocks." in n} == set(range(blocks // 2, blocks))
    assert "0.net.norm.weight" in upper
    assert {id(p) for p in groups[2]} == {id(p) for p in vit[1].parameters()}


def test_tune_norm_trains_layernorms_and_head_only(vit):
    head = {id(p) for p in vit[1].parameters()}
    norms = {id(p) for m in vit[0].modules() if isinstance(m, nn.LayerNorm) for p in m.parameters(recurse=False)}
    set_frozen(vit, False, "norm")
    trainable = {id(p) for p in vit.parameters() if p.requires_grad}
    assert trainable == head | norms and len(norms) == 2 * (2 * len(vit[0].net.blocks) + 1)
    set_frozen(vit, False, "frozen")  # a ViT has no BatchNorm: the head alone, whatever the stage says
    assert {id(p) for p in vit.parameters() if p.requires_grad} == head
    set_frozen(vit, False, "full")
    assert all(p.requires_grad for p in vit.parameters())
    set_frozen(vit, True, "full")
    assert {id(p) for p in vit.parameters() if p.requires_grad} == head
    set_frozen(vit, False)


def test_any_multiple_of_the_patch_and_gradcam_on_the_token_grid(vit):
    vit.train()
    vit.zero_grad()
    vit(torch.randn(2, 3, 64, 96)).sum().backward()  # 4x6 patches; position embeddings resampled
    assert [n for n, p in vit.named_parameters() if p.grad is None] == []
    assert find_target_layer(vit) is vit[0].grid
    cams = grad_cam(vit, torch.randn(2, 3, 64, 96), target_class=1)
    assert cams.shape == (2, 64, 96) and torch.isfinite(cams).all()


def test_foundation_names_are_accepted_and_a_dinov2_builds():
    recipe = load_recipe("demo")
    for arch in FOUNDATION:
        assert TrainConfig(shards="s", manifests="m", out="o", recipe=recipe, arch=arch, tune="norm").arch == arch
    model = build_model(FOUNDATION[2])
    assert isinstance(model[0], TimmBody) and model[0].grid.patch == (14, 14)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 56, 56)).shape == (1, 2)
    with pytest.raises(RecipeError, match="tune"):
        TrainConfig(shards="s", manifests="m", out="o", recipe=recipe, arch=TINY, tune="lora")


def test_clip_offline_names_the_alternatives(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsError, match="--weights none.*--weights PATH"):
        create_model(FOUNDATION[0], "imagenet")


def test_a_timm_vit_state_dict_file_loads(tmp_path):
    import timm

    full = timm.create_model(TINY, pretrained=False)
    torch.save(full.state_dict(), tmp_path / "vit.pth")
    model = create_model(TINY, str(tmp_path / "vit.pth"))
    assert torch.equal(model[0].net.pos_embed, full.pos_embed)
    assert torch.equal(model[0].net.blocks[3].attn.qkv.weight, full.blocks[3].attn.qkv.weight)


@pytest.mark.slow
def test_dev_run_vit_tune_norm_on_cpu(tiny_dataset, tmp_path):
    from train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tiny_dataset["shards"]),
                           "--manifests", str(tiny_dataset["manifests"]), "--out", str(out), "--arch", TINY,
                           "--tune", "norm", "--weights", "none", "--device", "cpu", "--image-size", "64",
                           "--batch-size", "8", "--workers", "0", "--dev-run", "--no-explain"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model, config = load_checkpoint(out / "checkpoints" / "last.pt")
    assert config.tune == "norm" and config.arch == TINY and model[0].grid is not None
