"""A zoo package as the scoring code takes any package: its network fed the toolkit's batches, and a TrainConfig.

The scoring code (train.score.on_batches) normalises every uint8 batch with ImageNet's mean and std
(train.model.normalize). `OwnInput` wraps a zoo network so that it undoes that and applies the package's own
ModelInput instead (pixel / scale, minus mean, over std, in its colour order): one affine map per channel
(train.normalisation.to_backbone, as train.model.Detector does), so the network sees what it would see fed
directly. `zoo_train_config` describes the package as a faces model: its input size and normalisation, the frames
of its authors' sampling, its face crop (train.zoo.here), and the video rule where the toolkit has it;
`describe_zoo` is what a verdict page says of it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dfd.errors import ToolkitError
from pipeline.spec import ModelInput
from train.config import Augment, Recipe, Stage, TrainConfig
from train.normalisation import norm_of, to_backbone
from train.paths import CONFIG
from train.zoo.here import USED, authors_detector, differences, face_crop_of, frame_sampling_of
from train.zoo.importer import ZooPackageError, load_zoo_package

__all__ = ["OwnInput", "aggregate_of", "describe_zoo", "face_crop_of", "load_for_scoring", "zoo_train_config"]

BATCH_SIZE = 8            # faces per forward pass (--batch-size overrides)


class OwnInput(nn.Module):
    """net(x') where x' = the package's normalisation of the pixels that ImageNet-normalised `x` holds."""

    def __init__(self, net: nn.Module, spec: ModelInput) -> None:
        super().__init__()
        self.net = net
        self.order, gain, bias = to_backbone(spec)
        self.spec = spec
        self.register_buffer("gain", gain, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def gradcam_layer(self) -> nn.Module:
        """Grad-CAM's layer (train.report.gradcam): the last feature stage of the (first member's) timm network."""
        net = self.net.members[0] if hasattr(self.net, "members") else self.net
        return net.net.get_submodule(net.net.feature_info[-1]["module"])

    def gradcam_model(self) -> nn.Module:
        """What the page's Grad-CAM runs: this network, or of an ensemble its first member alone behind the same
        normalisation (a backward pass through all seven of the DFDC winner's B7s at 380 px held ~16 GB)."""
        if not hasattr(self.net, "members"):
            return self
        return OwnInput(self.net.members[0], self.spec).to(self.gain.device).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order != [0, 1, 2]:
            x = x[:, self.order]
        return self.net(x * self.gain.to(x.dtype) + self.bias.to(x.dtype))


def aggregate_of(config: dict) -> str:
    """The toolkit's aggregation rule for the entry's face and video rules: the winner's confident strategy as its
    code has it (more than 11 confident fakes too), the mean over frames of the max over a frame's faces (face rule
    max: SBI), else the mean over every face."""
    p = config["zoo"]["preprocessing"]
    if p.get("video_rule", "mean") == "confident":
        return "winner"
    return "frame_max" if p.get("face_rule") == "max" else "mean"


def zoo_train_config(config: dict, folder: Path) -> TrainConfig:
    """A TrainConfig-compatible description of a zoo package (nothing to train: no shards, one placeholder stage)."""
    spec = ModelInput.from_dict(config["input"], where=str(folder / "config.json"))
    p = config["zoo"]["preprocessing"]
    recipe = Recipe(batch_size=BATCH_SIZE, image_size=tuple(spec.size), augment=Augment.none(),
                    stages=(Stage(1, 1e-4),), input="faces")
    frames = frame_sampling_of(p)
    return TrainConfig(shards="", manifests="", out=str(folder), recipe=recipe, arch=config["architecture"]["timm_name"],
                       weights="none", input="faces", aggregate=aggregate_of(config), frames=frames,
                       faces=face_crop_of(config, str(folder / "config.json")), input_norm=norm_of(spec))


def describe_zoo(config: dict) -> dict:
    """What a verdict says of a zoo package: name, title, source, licence (NON-COMMERCIAL stated where it is), the
    authors' preprocessing, which face detector ran here versus theirs, and every way running it here differs from
    the authors' preprocessing (train.zoo.here.differences)."""
    z = config["zoo"]
    p, lic = z["preprocessing"], z["licence"]
    tag = "NON-COMMERCIAL USE ONLY" if lic["non_commercial"] else "no non-commercial clause"
    theirs = authors_detector(p)
    return {"name": z["name"], "title": z["title"], "source": z["code"], "paper": z["paper"],
            "licence": f"{tag}: code {lic['code']}; weights {lic['weights']}",
            "non_commercial": bool(lic["non_commercial"]), "preprocessing": p["summary"],
            "detector_used": USED, "detector_authors": theirs,
            "detector": f"{USED} ran here (this toolkit's detector); the authors used {theirs} "
                        f"(their settings: {p['detector_settings']})",
            "aligned_by_authors": p.get("alignment", "none") == "five_point", "differences": differences(config),
            "gradcam": (f"of the first of its {config['members']} members (OwnInput.gradcam_model)"
                        if int(config.get("members", 1)) > 1 else "")}


def load_for_scoring(folder: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """A zoo package -> (its network behind OwnInput, in eval mode on the CPU; its TrainConfig; config.json)."""
    folder = Path(folder)
    net, config = load_zoo_package(folder)
    try:
        spec = ModelInput.from_dict(config["input"], where=str(folder / CONFIG))
        described = zoo_train_config(config, folder)
    except ToolkitError as err:  # a hand-edited size or crop (a negative margin): the file named, exit 1
        named = str(err) if str(folder / CONFIG) in str(err) else f"{folder / CONFIG}: {err}"
        raise ZooPackageError(named) from None
    except (KeyError, TypeError, ValueError) as err:
        detail = f"no {err}" if isinstance(err, KeyError) else str(err)
        raise ZooPackageError(f"{folder / CONFIG}: the authors' preprocessing cannot be used ({detail})") from None
    return OwnInput(net, spec).eval(), described, config
