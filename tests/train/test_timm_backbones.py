"""timm backbones: layer groups, freezing, Grad-CAM's layer, weights from files and offline, dev runs at 64 px."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from train.config import RecipeError, TrainConfig, load_recipe
from train.checkpoint import load_checkpoint
from train.model import BN_TYPES, TimmBody, WeightsError, build_model, create_model, layer_groups, param_groups, set_frozen
from train.report.gradcam import find_target_layer

ROOT = Path(__file__).resolve().parents[2]
TIMM_ARCHS = ("efficientnet_b0", "xception41", "convnext_tiny")
LAST_STAGE = {"efficientnet_b0": "blocks.6", "xception41": "blocks.12", "convnext_tiny": "stages.3"}


@pytest.fixture(scope="module", params=TIMM_ARCHS)
def timm_model(request):
    return request.param, build_model(request.param)


def test_layer_groups_cover_every_parameter_once(timm_model):
    arch, model = timm_model
    groups = layer_groups(model)
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert all(groups), arch
    assert {id(p) for p in groups[2]} == {id(p) for p in model[1].parameters()}  # the head
    names = {id(p): n for n, p in model.named_parameters()}
    lower = [names[id(p)] for p in groups[0]]
    assert any(".stem" in n or ".conv_stem" in n for n in lower)  # the stem is in the first group
    last = LAST_STAGE[arch]
    assert not any(n.startswith(f"0.net.{last}.") for n in lower)  # the last stage is not
    optimizer_groups = param_groups(model, 0.01)
    assert sum(len(g["params"]) for g in optimizer_groups) == len(ids)


def test_frozen_trains_only_head_and_batchnorm(timm_model):
    arch, model = timm_model
    set_frozen(model, True)
    bn = {id(p) for m in model.modules() if isinstance(m, BN_TYPES) for p in m.parameters(recurse=False)}
    head = {id(p) for p in model[1].parameters()}
    for name, p in model.named_parameters():
        assert p.requires_grad == (id(p) in head or id(p) in bn), name
    if arch == "convnext_tiny":  # LayerNorm only: frozen means the head alone in the body
        assert not any(p.requires_grad for p in model[0].parameters())
    set_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())


def test_every_parameter_gets_a_gradient_and_gradcam_uses_the_last_stage(timm_model):
    arch, model = timm_model
    model.train()
    model.zero_grad()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert find_target_layer(model) is model[0].net.get_submodule(LAST_STAGE[arch])


def test_weights_path_takes_a_timm_state_dict_and_a_checkpoint(tmp_path):
    import timm

    torch.manual_seed(1)
    full = timm.create_model("efficientnet_b0", pretrained=False)  # with its 1000-class classifier
    path = tmp_path / "timm_b0.pth"
    torch.save(full.state_dict(), path)
    model = create_model("efficientnet_b0", str(path))
    assert torch.equal(model[0].net.conv_stem.weight, full.conv_stem.weight)
    assert torch.equal(model[0].net.bn2.running_mean, full.bn2.running_mean)
    ckpt = tmp_path / "ckpt.pt"
    config = TrainConfig(shards="s", manifests="m", out=str(tmp_path), recipe=load_recipe("demo"),
                         arch="efficientnet_b0", weights="none")  # a checkpoint holds a whole saved TrainConfig
    torch.save({"model": model.state_dict(), "config": config.to_dict()}, ckpt)
    again, config = load_checkpoint(ckpt)
    assert isinstance(again[0], TimmBody) and config.arch == "efficientnet_b0"
    assert torch.equal(again[0].net.conv_stem.weight, full.conv_stem.weight)
    with pytest.raises(WeightsError, match="does not"):
        create_model("convnext_tiny", str(path))


def test_imagenet_offline_names_the_alternatives(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, no retries
    with pytest.raises(WeightsError, match="--weights none.*--weights PATH"):
        create_model("efficientnet_b0", "imagenet")


def test_unknown_arch_is_refused_with_the_choices():
    with pytest.raises(RecipeError, match="timm model name"):
        TrainConfig(shards="s", manifests="m", out="o", recipe=load_recipe("demo"), arch="resnet_nope_99")
    with pytest.raises(ValueError, match="unknown --arch"):
        build_model("resnet_nope_99")


@pytest.mark.slow
@pytest.mark.parametrize("arch", TIMM_ARCHS)
def test_dev_run_at_64px_on_cpu(arch, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tiny_dataset["shards"]),
                           "--manifests", str(tiny_dataset["manifests"]), "--out", str(out), "--arch", arch,
                           "--weights", "none", "--device", "cpu", "--image-size", "64", "--batch-size", "8",
                           "--workers", "0", "--dev-run", "--no-explain"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model, config = load_checkpoint(out / "checkpoints" / "last.pt")
    assert config.arch == arch and isinstance(model[0], TimmBody)
    assert isinstance(model[1][-1], nn.Linear) and model[1][-1].out_features == 2
