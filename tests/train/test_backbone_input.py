"""Input normalisation follows the backbone: timm's pretrained config (CLIP's mean and std for a CLIP ViT), ImageNet's
for torchvision's ResNets and for every config that records none (runs before it); the model applies it inside its
forward, so callers keep feeding ImageNet-normalised batches and state dicts keep their keys. End to end: a CLIP
ViT trained by the real command line records CLIP's mean and std, its export records them, and the package's
network is fed them; a fine-tune from that package (--init) keeps them, and resumes without the package."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.commands import run_module
from pipeline.spec import IMAGENET_MEAN, IMAGENET_STD, ModelInput
from train.config import TrainConfig
from train.checkpoint import model_for
from train.model import build_model, normalize
from train.normalisation import backbone_input, norm_of
from train.score.package import load_package
from train.zoo.entries import CLIP_MEAN, CLIP_STD

CLIP_ARCH = "vit_xsmall_patch16_clip_224.tinyclip_yfcc15m"  # 8M parameters; timm's config: OpenAI CLIP mean/std
DATA = Path(__file__).resolve().parents[1] / "helpers" / "data"


def _body_input(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the model's body is given for the (ImageNet-normalised) input x."""
    seen = []
    handle = model[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return seen[0]


def _pixels(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_the_backbone_decides_the_normalisation():
    assert backbone_input(CLIP_ARCH)["mean"] == pytest.approx(CLIP_MEAN)
    assert backbone_input(CLIP_ARCH)["std"] == pytest.approx(CLIP_STD)
    assert backbone_input("legacy_xception")["mean"] == [0.5, 0.5, 0.5]  # timm's inception-style config
    for arch in ("resnet18", "resnet50", "efficientnet_b0"):
        assert backbone_input(arch)["mean"] == list(IMAGENET_MEAN) and backbone_input(arch)["std"] == list(IMAGENET_STD)


def test_a_clip_body_is_fed_clip_normalisation_and_a_resnet_imagenet_exactly():
    pixels = _pixels()
    clip = build_model(CLIP_ARCH, spec=ModelInput(size=(32, 32), **backbone_input(CLIP_ARCH)))
    want = (pixels.float() / 255 - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(_body_input(clip, normalize(pixels)), want, atol=1e-5)
    resnet = build_model("resnet18", spec=ModelInput(size=(32, 32), **backbone_input("resnet18")))
    assert torch.equal(_body_input(resnet, normalize(pixels)), normalize(pixels))  # untouched, bit for bit
    assert list(clip.state_dict()) == list(build_model(CLIP_ARCH).state_dict())  # no new keys


def test_a_bgr_package_input_is_reordered_and_scaled():
    spec = ModelInput(size=(32, 32), colour="bgr", scale=1.0, mean=(100.0 / 255, 0.0, 0.0), std=(1.0, 2.0, 4.0))
    model = build_model("resnet18", spec=spec)
    pixels = _pixels(1)
    want = (pixels.float()[:, [2, 1, 0]] - torch.tensor((100.0 / 255, 0.0, 0.0)).view(1, 3, 1, 1)) \
        / torch.tensor((1.0, 2.0, 4.0)).view(1, 3, 1, 1)
    assert torch.allclose(_body_input(model, normalize(pixels)), want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", ["old_config_frames.json", "old_config_faces.json",
                                  "before_issue29/run_config.json"])
def test_configs_that_record_nothing_keep_imagenet(name):
    config = TrainConfig.from_checkpoint(json.loads((DATA / name).read_text()))
    assert config.input_norm is None
    assert (config.model_input.mean, config.model_input.std) == (IMAGENET_MEAN, IMAGENET_STD)
    model = model_for(config)
    assert not model.adapt
    pixels = _pixels(2)
    assert torch.equal(_body_input(model, normalize(pixels)), normalize(pixels))


def _train(dataset: dict, out: Path, *args: str, check: bool = True):
    return run_module("train.run", "--shards", dataset["shards"], "--manifests", dataset["manifests"], "--out", out,
                      "--recipe", "demo", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--device",
                      "cpu", "--dev-run", "--no-lr-find", "--no-explain", *args, check=check)


@pytest.mark.slow  # two dev runs of a tiny ViT at 32 px and an export (about 40 s on a loaded 2-core box)
def test_clip_run_records_exports_and_fine_tunes_with_clip_normalisation(tiny_dataset, tmp_path):
    run = tmp_path / "clip"
    _train(tiny_dataset, run, "--arch", CLIP_ARCH, "--weights", "none")
    config = json.loads((run / "config.json").read_text())
    assert config["input_norm"]["mean"] == pytest.approx(CLIP_MEAN) and config["init"] is None
    package = tmp_path / "package"
    run_module("train.export", "--checkpoint", run, "--out", package)
    exported = json.loads((package / "config.json").read_text())
    assert exported["normalization"]["mean"] == pytest.approx(CLIP_MEAN)
    assert exported["model_input"]["std"] == pytest.approx(CLIP_STD)
    model, loaded, _ = load_package(package)
    assert model.adapt and norm_of(model.spec) == norm_of(loaded.model_input) == config["input_norm"]

    tuned = tmp_path / "tuned"  # --init from the export: its arch, size and normalisation; one stage, then resume
    proc = _train(tiny_dataset, tuned, "--init", package, "--stop-after-epochs", "1")
    config = json.loads((tuned / "config.json").read_text())
    assert config["arch"] == CLIP_ARCH and config["input_norm"]["mean"] == pytest.approx(CLIP_MEAN)
    assert config["init"]["kind"] == "package" and config["init"]["path"] == str(package.resolve())
    assert config["weights"] == "none" and "starting from" in proc.stderr
    shutil.rmtree(package)  # a resumed run starts from its own checkpoint, not the package
    _train(tiny_dataset, tuned, "--init", package, "--resume")
    assert len((tuned / "metrics.csv").read_text().splitlines()) == 3  # header + the demo recipe's two stages
