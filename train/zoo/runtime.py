"""A zoo package as the scoring code takes any package: its network fed the toolkit's batches, and a TrainConfig.

The scoring code (train.score.on_batches) normalises every uint8 batch with ImageNet's mean and std
(train.model.normalize). `OwnInput` wraps a zoo network so that it undoes that and applies the package's own
ModelInput instead (pixel / scale, minus mean, over std, in its colour order): one affine map per channel
(train.normalisation.to_backbone, as train.model.Detector does), so the network sees what it would see fed
directly. `zoo_train_config` describes the package as a faces model: its input size and normalisation, the frames
of its authors' sampling, its face crop, and the video rule where the toolkit has it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.spec import FaceCrop, FrameSampling, ModelInput
from train.config import Augment, Recipe, Stage, TrainConfig
from train.normalisation import norm_of, to_backbone
from train.zoo.importer import load_zoo_package

CLIP_SECONDS = 10.0       # the authors' frames per video are spread over a DFDC clip's 10 s: fps = frames / 10
BATCH_SIZE = 8            # faces per forward pass (--batch-size overrides)
FACE_RULE_FACES = {"largest": 1, "max": 4, "each": 4}  # faces a frame gives (max: each scored, mean over them)


class OwnInput(nn.Module):
    """net(x') where x' = the package's normalisation of the pixels that ImageNet-normalised `x` holds."""

    def __init__(self, net: nn.Module, spec: ModelInput) -> None:
        super().__init__()
        self.net = net
        self.order, gain, bias = to_backbone(spec)
        self.register_buffer("gain", gain, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def gradcam_layer(self) -> nn.Module:
        """Grad-CAM's layer (train.report.gradcam): the last feature stage of the (first member's) timm network."""
        net = self.net.members[0] if hasattr(self.net, "members") else self.net
        return net.net.get_submodule(net.net.feature_info[-1]["module"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order != [0, 1, 2]:
            x = x[:, self.order]
        return self.net(x * self.gain.to(x.dtype) + self.bias.to(x.dtype))


def aggregate_of(config: dict) -> str:
    """The toolkit's aggregation rule for the entry's video rule (mean; confident: the metrics module's)."""
    rule = config["zoo"]["preprocessing"].get("video_rule", "mean")
    return rule if rule in ("mean", "confident") else "mean"


def face_crop_of(config: dict, where: str = "") -> FaceCrop:
    """The faces stage's crop for this package: MTCNN (the toolkit's detector) with the authors' box rule (per_side
    with their margin and resize; an aligned crop at 1.3 becomes the scale rule at 1.3, without the alignment),
    their crop size, the faces a frame gives by their face rule; crops re-encoded at JPEG quality 100 (the authors
    did not re-encode)."""
    p = config["zoo"]["preprocessing"]
    if p["box"] == "per_side":
        box, margin, resize = "per_side", float(p["margin"]), p["resize"]
    else:
        box, margin, resize = "scale", round(max(0.0, (float(p["margin"]) - 1) / 2), 6), "stretch"
    return FaceCrop(box=box, margin=min(margin, 2.0), resize=resize if resize == "isotropic_pad" else "stretch",
                    face_size=int(p["face_size"]),
                    max_faces=FACE_RULE_FACES.get(p.get("face_rule", "largest"), 1), jpeg_quality=100,
                    where=f"{where}: zoo.preprocessing: " if where else "faces.")


def zoo_train_config(config: dict, folder: Path) -> TrainConfig:
    """A TrainConfig-compatible description of a zoo package (nothing to train: no shards, one placeholder stage)."""
    spec = ModelInput.from_dict(config["input"], where=str(folder / "config.json"))
    p = config["zoo"]["preprocessing"]
    recipe = Recipe(batch_size=BATCH_SIZE, image_size=tuple(spec.size), augment=Augment.none(),
                    stages=(Stage(1, 1e-4),), input="faces")
    frames = FrameSampling(fps=round(int(p["frames_per_video"]) / CLIP_SECONDS, 3))
    return TrainConfig(shards="", manifests="", out=str(folder), recipe=recipe, arch=config["architecture"]["timm_name"],
                       weights="none", input="faces", aggregate=aggregate_of(config), frames=frames,
                       faces=face_crop_of(config, str(folder / "config.json")), input_norm=norm_of(spec))


DETECTOR_NAMES = {"retinaface": "RetinaFace", "scrfd": "SCRFD", "dlib": "dlib", "mtcnn": "MTCNN"}


def describe_zoo(config: dict) -> dict:
    """What a verdict says of a zoo package: name, title, source, licence (NON-COMMERCIAL stated where it is), the
    authors' preprocessing, and which face detector ran here versus theirs."""
    z = config["zoo"]
    p, lic = z["preprocessing"], z["licence"]
    tag = "NON-COMMERCIAL USE ONLY" if lic["non_commercial"] else "no non-commercial clause"
    theirs = DETECTOR_NAMES.get(p["detector"], p["detector"])
    return {"name": z["name"], "title": z["title"], "source": z["code"], "paper": z["paper"],
            "licence": f"{tag}: code {lic['code']}; weights {lic['weights']}",
            "non_commercial": bool(lic["non_commercial"]), "preprocessing": p["summary"],
            "detector_used": "MTCNN", "detector_authors": theirs,
            "detector": f"MTCNN ran here (this toolkit's detector); the authors used {theirs} "
                        f"({p['detector_settings']})"}


def load_for_scoring(folder: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """A zoo package -> (its network behind OwnInput, in eval mode on the CPU; its TrainConfig; config.json)."""
    folder = Path(folder)
    net, config = load_zoo_package(folder)
    spec = ModelInput.from_dict(config["input"], where=str(folder / "config.json"))
    return OwnInput(net, spec).eval(), zoo_train_config(config, folder), config
