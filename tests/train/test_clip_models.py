"""Issue 26 item 3: the video detectors over clips (N, T, 3, H, W) -- TALL's thumbnail, a temporal head over
per-frame features, R(2+1)D-18 -- their layer groups for the staged recipe, their weights, and Grad-CAM per frame."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from train.clip_model import (KINETICS_MEAN, KINETICS_STD, TallModel, create_clip_model, grid_shape)
from train.config import RecipeError, TrainConfig, clip_arch
from train.model import WeightsError, build_model, layer_groups, normalize, param_groups, set_frozen
from train.report.gradcam import clip_grad_cam

TINY = "test_resnet"  # timm's tiny test network: a real 2D backbone in milliseconds
ARCHS = [f"tall:{TINY}", f"temporal:{TINY}", "r2plus1d_18"]


def clips(n=2, t=4, size=32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_clip_model_gives_two_logits_and_three_groups_that_freeze_like_a_frame_models(arch):
    torch.manual_seed(0)
    model = create_clip_model(arch, "none").train()
    logits = model(normalize(clips()))
    assert logits.shape == (2, 2)
    logits.sum().backward()
    groups = layer_groups(model)
    ids = [id(p) for g in groups for p in g]
    assert len(groups) == 3 and all(groups) and len(ids) == len(set(ids)) == len(list(model.parameters()))
    set_frozen(model, True)
    bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
          for p in m.parameters()}
    for p in groups[0] + groups[1]:
        assert p.requires_grad == (id(p) in bn)
    assert all(p.requires_grad for p in groups[2])
    set_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())
    assert sorted({g["layer_group"] for g in param_groups(model, 0.01)}) == [0, 1, 2]


def test_tall_tiles_the_frames_into_a_grid_and_masks_one_block_in_every_frame():
    assert [grid_shape(t) for t in (1, 3, 4, 8, 9)] == [(1, 1), (2, 2), (2, 2), (3, 3), (3, 3)]
    model = TallModel(build_model(TINY))
    x = torch.arange(1, 4, dtype=torch.float32).view(1, 3, 1, 1, 1).expand(1, 3, 3, 2, 2)  # frame i is all i+1
    grid = model.tile(x)
    assert grid.shape == (1, 3, 4, 4)
    assert grid[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]]  # empty cell black
    model.mask_p = 1.0
    masked = model.mask(torch.ones(2, 4, 3, 12, 12))
    for clip in masked:
        assert (clip == clip[0]).all() and int((clip[0, 0] == 0).sum()) == 16  # a 4x4 block, the same in each frame


def test_r2plus1d_sees_its_own_kinetics_normalisation():
    model = create_clip_model("r2plus1d_18", "none").eval()
    seen = {}
    model.stem.register_forward_pre_hook(lambda m, inputs: seen.update(x=inputs[0]))
    pixels = clips(1, 2, 16)
    with torch.no_grad():
        model(normalize(pixels))
    mean, std = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1), torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
    expected = (pixels[0].permute(1, 0, 2, 3).float() / 255 - mean) / std  # (3, T, H, W)
    assert torch.allclose(seen["x"][0], expected, atol=1e-4)


def test_kinetics_weights_that_cannot_be_fetched_say_what_to_pass(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match=r"Kinetics-400 weights for r2plus1d_18 .*--weights none") as err:
        create_clip_model("r2plus1d_18", "kinetics")
    assert "\n" not in str(err.value)


def test_a_frame_models_checkpoint_starts_the_2d_part_of_a_clip_model(tmp_path):
    torch.manual_seed(1)
    frame = build_model(TINY)
    path = tmp_path / "frame.pt"
    torch.save({"model": frame.state_dict()}, path)
    tall = create_clip_model(f"tall:{TINY}", str(path))
    temporal = create_clip_model(f"temporal:{TINY}", str(path))
    for name, value in frame[0].state_dict().items():
        assert torch.equal(tall.frame_model[0].state_dict()[name], value)
        assert torch.equal(temporal.body.state_dict()[name], value)
    torch.save({"model": build_model("resnet18").state_dict()}, path)
    with pytest.raises(WeightsError, match="does not"):
        create_clip_model(f"tall:{TINY}", str(path))


def test_clip_arch_names_are_checked_like_frame_arches():
    assert clip_arch("tall:resnet18") == ("tall", "resnet18") and clip_arch("r2plus1d_18") == ("r2plus1d_18", None)
    assert clip_arch("resnet18") is None and clip_arch("convnext_tiny") is None
    kw = dict(shards="s", manifests="m", out="o")
    assert TrainConfig.from_recipe("demo", input="clips", arch=f"temporal:{TINY}", **kw).arch == f"temporal:{TINY}"
    assert TrainConfig.from_recipe("demo_clips", **kw).input == "clips"  # the recipe's input and arch
    for arch, input, message in (("tall:no_such_net", "clips", "timm model name"),
                                 ("resnet18", "clips", "needs a clip model"),
                                 ("r2plus1d_18", "frames", "needs --input clips")):
        with pytest.raises(RecipeError, match=message):
            TrainConfig.from_recipe("demo", input=input, arch=arch, **kw)


def cue_in_one_frame(g: torch.Generator, n: int, t: int = 4, size: int = 32):
    """Grey noise clips; a fake (odd index) has a white 10 px square in one random frame only."""
    x = torch.randint(60, 120, (n, t, 3, size, size), generator=g, dtype=torch.uint8)
    labels, where = torch.arange(n) % 2, torch.randint(0, t, (n,), generator=g)
    for i in torch.nonzero(labels).flatten().tolist():
        r, c = torch.randint(0, size - 10, (2,), generator=g).tolist()
        x[i, where[i], :, r:r + 10, c:c + 10] = 250
    return x, labels, where


@pytest.mark.parametrize("arch", [f"temporal:{TINY}", f"tall:{TINY}"])
def test_grad_cam_of_a_clip_model_peaks_on_the_frame_that_holds_the_cue(arch):
    """Where and when: after a few steps on clips whose fake cue is in one frame, the clip's Grad-CAM maximum lies
    in that frame for most fakes (chance: 1 in 4)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = create_clip_model(arch, "none").train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(40):
        x, y, _ = cue_in_one_frame(g, 8)
        loss = torch.nn.functional.cross_entropy(model(normalize(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y, where = cue_in_one_frame(g, 32)
    maps = clip_grad_cam(model, normalize(x[y == 1]), target_class=1)
    assert maps.shape == (16, 4, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    peak_frame = maps.flatten(2).amax(2).argmax(1)
    assert (peak_frame == where[y == 1]).float().mean() >= 0.75


def test_grad_cam_of_r2plus1d_gives_a_map_per_frame():
    model = create_clip_model("r2plus1d_18", "none")
    maps = clip_grad_cam(model, normalize(clips(1, 4, 32)))
    assert maps.shape == (1, 4, 32, 32) and float(maps.max()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="clips must be"):
        clip_grad_cam(model, normalize(clips(1, 4, 32))[0])
