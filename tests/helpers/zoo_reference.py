"""The zoo's reference networks, built from the libraries the authors used (timm, efficientnet_pytorch 0.7.1,
transformers' CLIPVisionModel) with random weights, and saved in the authors' published layouts. Written from the
layouts described in train/zoo/entries.py; no author code is copied."""
from __future__ import annotations

import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn

from .paths import REPO


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics and affine parameters, LayerNorm parameters: random, so a misplaced one shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """BatchNorm statistics measured on `x` (train-mode forward, cumulative averages): a random deep network then
    gives outputs that depend on its input, so a comparison of outputs tests every layer."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def sharpen(head: nn.Linear, features: torch.Tensor) -> None:
    """A random head whose log-odds of fake spread over about 2 on these features, centred on 0 and rising from the
    first input to the last: P(fake) then varies with the input without saturating (a default-initialised head on
    random features barely moves), and the members of an ensemble do not cancel each other out."""
    with torch.no_grad():
        w = torch.randn_like(head.weight)

        def log_odds(weight):
            z = features @ weight.T
            return z[:, -1] - (z[:, 0] if z.shape[1] == 2 else 0)

        d = log_odds(w)
        w *= 2 / (d.max() - d.min()).clamp_min(1e-6) * (1 if d[-1] >= d[0] else -1)  # rising: members agree
        head.weight.copy_(w)
        head.bias.zero_()
        head.bias[-1] = -log_odds(w).mean()


def prepare(ref: nn.Module, x: torch.Tensor, seed: int) -> nn.Module:
    """Random norms, BatchNorm statistics of `x`, a head sharpened on `x`'s features."""
    calibrate(randomise_norms(ref, seed), x)
    with torch.no_grad():
        sharpen(ref.head, ref.features(x))
    return ref


def run_zoo(*args, check: bool = False) -> subprocess.CompletedProcess:
    """`python -m train.zoo_command ARGS` from the repository root (the real command line)."""
    proc = subprocess.run([sys.executable, "-m", "train.zoo_command", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def p_fake_package(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).softmax(dim=1)[:, 1]


# ---- the DFDC winner: timm tf_efficientnet_b7_ns + average pool + Linear(2560, 1), sigmoid -------------------

class WinnerReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        import timm
        self.encoder = timm.create_model("tf_efficientnet_b7", pretrained=False, drop_path_rate=0.2)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(2560, 1)

    @property
    def head(self):
        return self.fc

    def features(self, x):
        return self.avg_pool(self.encoder.forward_features(x)).flatten(1)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x)))

    def p_fake(self, x):
        with torch.no_grad():
            return torch.sigmoid(self(x))[:, 0]

    def save(self, path) -> None:
        """As the winner's training saved it: a dict with 'state_dict' of a DataParallel model."""
        torch.save({"epoch": 36, "bce_best": 0.2,
                    "state_dict": {f"module.{k}": v for k, v in self.state_dict().items()}}, path)


# ---- EfficientNet-B4 of efficientnet_pytorch: SBI and DeepfakeBench ------------------------------------------

class SBIReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet
        self.net = EfficientNet.from_name("efficientnet-b4", num_classes=2)

    @property
    def head(self):
        return self.net._fc

    def features(self, x):
        return F.adaptive_avg_pool2d(self.net.extract_features(x), 1).flatten(1)

    def forward(self, x):
        return self.net(x)

    def p_fake(self, x):
        with torch.no_grad():
            return self(x).softmax(dim=1)[:, 1]

    def save(self, path) -> None:
        """As SBI's training saved it: a dict with 'model' (Detector's 'net.' keys), 'optimizer' and 'epoch'."""
        torch.save({"model": self.state_dict(), "epoch": 99,
                    "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]}}, path)


class DFBEfficientNetB4Reference(nn.Module):
    """DeepfakeBench's EfficientNetB4 backbone: the stem replaced by an unpadded Conv2d, _fc removed, last_layer."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet
        self.efficientnet = EfficientNet.from_name("efficientnet-b4")
        self.efficientnet._conv_stem = nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)
        self.efficientnet._fc = nn.Identity()
        self.last_layer = nn.Linear(1792, 2)
        self.adjust_channel = nn.Sequential(nn.Conv2d(1792, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))

    @property
    def head(self):
        return self.last_layer

    def features(self, x):
        return F.adaptive_avg_pool2d(self.efficientnet.extract_features(x), (1, 1)).flatten(1)

    def forward(self, x):
        return self.last_layer(self.features(x))

    def p_fake(self, x):
        with torch.no_grad():
            return self(x).softmax(dim=1)[:, 1]

    def save(self, path) -> None:
        """As DeepfakeBench saves a detector: its state dict, the backbone under 'backbone.'."""
        torch.save({f"backbone.{k}": v for k, v in self.state_dict().items()}, path)


class DFBXceptionReference(nn.Module):
    """timm's legacy_xception (the FaceForensics++/Cadene Xception DeepfakeBench uses), head named last_linear."""

    def __init__(self) -> None:
        super().__init__()
        import timm
        self.net = timm.create_model("legacy_xception", pretrained=False, num_classes=2)
        self.adjust = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))

    @property
    def head(self):
        return self.net.fc

    def features(self, x):
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def forward(self, x):
        return self.net(x)

    def p_fake(self, x):
        with torch.no_grad():
            return self.net(x).softmax(dim=1)[:, 1]

    def save(self, path) -> None:
        state = {("last_linear." + k[3:] if k.startswith("fc.") else k): v for k, v in self.net.state_dict().items()}
        state.update({f"adjust_channel.{k}": v for k, v in self.adjust.state_dict().items()})
        torch.save({f"backbone.{k}": v for k, v in state.items()}, path)


# ---- CLIP ViT-L/14 of transformers: GenD and Effort ----------------------------------------------------------

def clip_vit_l14(seed: int = 0):
    """transformers' CLIPVisionModel with the ViT-L/14 (224 px) configuration, random weights, random norms."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768,
                              hidden_act="quick_gelu", layer_norm_eps=1e-5)
    model = CLIPVisionModel(config)
    with torch.no_grad():  # CLIP's init leaves the embeddings small; larger ones make the check sharper
        _tower(model).embeddings.class_embedding.normal_(0, 0.5)
        _tower(model).embeddings.position_embedding.weight.normal_(0, 0.1)
    return randomise_norms(model, seed)


def _tower(model):
    """The vision transformer itself (transformers 4 nests it as .vision_model; 5 does not)."""
    return getattr(model, "vision_model", model)


def tower_state(model) -> dict:
    """The vision transformer's state dict in the names the authors' checkpoints use (embeddings..., encoder...,
    pre_layrnorm, post_layernorm), whatever transformers' version nests."""
    return _tower(model).state_dict()


class SVDResidual(nn.Module):
    """Effort's self-attention linear as its checkpoint stores it: weight_main + U_residual diag(S) V_residual."""

    def __init__(self, linear: nn.Linear, g: torch.Generator) -> None:
        super().__init__()
        out_f, in_f = linear.weight.shape
        u = F.normalize(torch.randn(out_f, 1, generator=g), dim=0)
        v = F.normalize(torch.randn(1, in_f, generator=g), dim=1)
        s = torch.rand(1, generator=g) + 0.5
        self.weight_main = nn.Parameter(linear.weight.detach() - (u * s) @ v, requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().clone())
        self.S_residual, self.U_residual, self.V_residual = nn.Parameter(s), nn.Parameter(u), nn.Parameter(v)
        self.S_r = nn.Parameter(torch.ones(in_f - 1), requires_grad=False)  # the kept singular values (unused)

    def forward(self, x):
        return F.linear(x, self.weight_main + self.U_residual @ torch.diag(self.S_residual) @ self.V_residual,
                        self.bias)


def save_gend(tower, head: nn.Linear, path) -> None:
    """As GenD's Hugging Face model.safetensors: the CLIP tower under feature_extractor.vision_model (with the unused
    visual projection), the head under model.linear."""
    import safetensors.torch

    state = {f"feature_extractor.vision_model.{k}": v for k, v in tower_state(tower).items()}
    state["feature_extractor.visual_projection.weight"] = torch.randn(768, 1024)
    state.update({f"model.linear.{k}": v for k, v in head.state_dict().items()})
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def save_effort(tower, head: nn.Linear, path) -> None:
    """As Effort's checkpoint: the tower (with its SVD residuals) under backbone., the head under head."""
    state = {f"backbone.{k}": v for k, v in tower_state(tower).items()}
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    torch.save(state, path)


def with_svd_residuals(model, seed: int = 1):
    """Every self-attention linear of a CLIPVisionModel replaced by an SVDResidual (same effective weight)."""
    g = torch.Generator().manual_seed(seed)
    for layer in _tower(model).encoder.layers:
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(layer.self_attn, name, SVDResidual(getattr(layer.self_attn, name), g))
    return model


# ---- any entry: random-weight files in the published layout (benchmarks/bench_zoo.py) ---------------------------

def _random_head(head: nn.Linear, seed: int) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.01)
        head.bias.zero_()
    return head


def write_published(name: str, folder, members: int = 1) -> list:
    """`members` files of entry `name`, as its authors publish them, with random weights (norms left at their
    defaults: for timing and for running the command line, not for comparing outputs); the paths, named as the
    authors name them."""
    from pathlib import Path

    from train.zoo.entries import entry

    e, folder = entry(name), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [e.files[i % len(e.files)].name for i in range(members)]
    paths = [folder / (n if names.count(n) == 1 else f"{i}_{n}") for i, n in enumerate(names)]
    torch.manual_seed(0)
    if name in ("gend-clip-l14", "effort-clip-l14"):
        tower = clip_vit_l14(seed=0)
        tower = with_svd_residuals(tower) if name == "effort-clip-l14" else tower
        for i, path in enumerate(paths):
            (save_gend if name == "gend-clip-l14" else save_effort)(tower, _random_head(nn.Linear(1024, 2), i), path)
        return paths
    builders = {"dfdc-winner": WinnerReference, "sbi-c23": SBIReference, "sbi-raw": SBIReference,
                "deepfakebench-efficientnet-b4": DFBEfficientNetB4Reference,
                "deepfakebench-xception": DFBXceptionReference}
    ref = randomise_norms(builders[name]())
    for i, path in enumerate(paths):
        _random_head(ref.head, i)
        ref.save(path)
    return paths
