"""Pure unit tests of the trainer: LR spread, one-cycle vs fastai, freezing, head, recipes, metrics, transforms."""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from helpers.augment import eval_transform, only  # noqa: E402
from helpers.fastai_reference import fastai_one_cycle  # noqa: E402
from train.augment.reference import train_transform  # noqa: E402
from train.config import (RECIPES_DIR, Augment, RecipeError, Stage, load_recipe, parse_image_size,  # noqa: E402
                          recipe_from_dict)
from train.data.decode import decode_resized  # noqa: E402
from train.fit import schedule  # noqa: E402
from train.fit.loop import make_optimizer, make_scheduler  # noqa: E402
from train.model import build_model, layer_groups, param_groups, set_frozen  # noqa: E402
from train.score.metrics import compute_metrics  # noqa: E402


def test_slice_spreads_geometrically_over_three_groups():
    assert schedule.spread_lr((2e-4, 1e-2)) == pytest.approx([2e-4, 1.4142e-3, 1e-2], rel=1e-4)
    assert schedule.spread_lr((2e-4, 2e-2)) == pytest.approx([2e-4, 2e-3, 2e-2])
    assert schedule.spread_lr(1e-2) == [1e-2, 1e-2, 1e-2]


def _torch_curve(stage_lr, total):
    model = build_model("resnet18")
    opt = make_optimizer(model, 0.01)
    sched = make_scheduler(opt, stage_lr, total)
    lrs, moms = [], []
    for _ in range(total):
        lrs.append([next(g["lr"] for g in opt.param_groups if g["layer_group"] == i) for i in range(3)])
        moms.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("total", [40, 400])
def test_one_cycle_matches_fastai_formula(total):
    lrs, moms = _torch_curve((2e-4, 1e-2), total)
    spread = schedule.spread_lr((2e-4, 1e-2))
    expected = np.array([[fastai_one_cycle(i / total, hi)[0] for hi in spread] for i in range(total)])
    expected_mom = np.array([fastai_one_cycle(i / total, 1.0)[1] for i in range(total)])
    # OneCycleLR puts the peak at step pct*N - 1 where fastai has it at pct*N: one step of phase shift at most.
    tol = 1.0 / (schedule.PCT_START * total) * math.pi
    assert np.abs(lrs - expected).max() <= tol * np.array(spread).max()
    assert np.abs(moms - expected_mom).max() <= tol * 0.1
    # the shape itself: start lr/25, peak lr at 25%, end near lr/1e5; beta1 0.95 -> 0.85 -> 0.95
    assert lrs[0] == pytest.approx(np.array(spread) / 25, rel=1e-6)
    assert lrs.argmax(axis=0).tolist() == [int(0.25 * total) - 1] * 3
    assert lrs.max(axis=0) == pytest.approx(spread)
    assert lrs[-1, 2] < 1e-2 / 1e4 and moms[0] == pytest.approx(0.95) and moms.min() == pytest.approx(0.85)


def test_fastai_formula_endpoints():
    assert fastai_one_cycle(0.0, 1.0) == pytest.approx((1 / 25, 0.95))
    assert fastai_one_cycle(0.25, 1.0) == pytest.approx((1.0, 0.85))
    assert fastai_one_cycle(1.0 - 1e-12, 1.0)[0] == pytest.approx(1e-5, rel=1e-3)


def test_frozen_trains_only_head_and_batchnorm():
    model = build_model("resnet18")
    set_frozen(model, True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    body_trainable = {n for n in trainable if n.startswith("0.")}
    bn_names = {f"0.{n}.{k}" for n, m in model[0].named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                for k in ("weight", "bias")}
    assert body_trainable == bn_names and bn_names
    assert all(n in trainable for n, _ in model[1].named_parameters(prefix="1"))
    set_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_step_leaves_body_conv_weights_unchanged():
    model = build_model("resnet18")
    set_frozen(model, True)
    opt = make_optimizer(model, 0.01)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = model(torch.randn(4, 3, 64, 64)).sum()
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "0.0.weight" not in changed and "0.7.1.conv2.weight" not in changed
    assert "1.4.weight" in changed and "0.1.weight" in changed  # head linear and a BatchNorm


@pytest.mark.parametrize("arch,features", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_head_shapes(arch, features):
    model = build_model(arch)
    head = model[1]
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["AdaptiveConcatPool2d", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                     "Dropout", "Linear"]
    assert head[2].num_features == 2 * features and head[4].in_features == 2 * features
    assert head[4].out_features == 512 and head[8].out_features == 2
    assert [head[3].p, head[7].p] == [0.25, 0.5]
    model.eval()
    assert model(torch.randn(2, 3, 64, 96)).shape == (2, 2)


def test_layer_groups_and_weight_decay_groups():
    model = build_model("resnet18")
    groups = layer_groups(model)
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    pg = param_groups(model, 0.01)
    assert [g["weight_decay"] for g in pg] == [0.01, 0.0] * 3
    no_decay = {id(p) for g in pg if g["weight_decay"] == 0 for p in g["params"]}
    named = dict(model.named_parameters())
    assert id(named["0.1.weight"]) in no_decay and id(named["1.4.weight"]) not in no_decay
    assert id(named["0.0.weight"]) not in no_decay


def test_seed_recipe_is_the_reports():
    recipe = load_recipe("seed")
    assert recipe.batch_size == 64 and recipe.image_size == (720, 1280)
    assert recipe.stages == (Stage(5, (2e-4, 1e-2), False), Stage(3, (2e-4, 2e-2), False), Stage(3, 1e-2, True))
    demo = load_recipe("demo")
    assert demo.image_size == (112, 192) and demo.lr_find_steps == 30


GOOD = {"batch_size": 8, "image_size": 64, "augment": {"blur": 0.1}, "stage": [{"epochs": 1, "lr": 1e-3}]}


@pytest.mark.parametrize("change,field", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "8"}, "batch_size"),
    ({"image_size": "64x"}, "image_size"),
    ({"image_size": 8}, "image_size"),
    ({"augment": {"blurr": 0.1}}, "augment.blurr"),
    ({"augment": {"jpeg": 1.5}}, "augment.jpeg"),
    ({"stage": []}, "stage"),
    ({"stage": [{"epochs": 0, "lr": 1e-3}]}, "stage[1].epochs"),
    ({"stage": [{"epochs": 1, "lr": [1e-2, 1e-3]}]}, "stage[1].lr"),
    ({"stage": [{"epochs": 1, "lr": -1}]}, "stage[1].lr"),
    ({"stage": [{"epochs": 1}]}, "stage[1].lr"),
    ({"stage": [{"epochs": 1, "lr": 1e-3, "frozen": "yes"}]}, "stage[1].frozen"),
    ({"stage": [{"epochs": 1, "lr": 1e-3, "freeze": True}]}, "stage[1].freeze"),
    ({"epochs": 3}, "epochs"),
    ({"lr_find_steps": 1}, "lr_find_steps"),
])
def test_invalid_recipes_name_the_field(change, field):
    with pytest.raises(RecipeError, match=rf"^{__import__('re').escape(field)}:"):
        recipe_from_dict({**GOOD, **change})


def test_recipe_file_errors_name_file_and_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('batch_size = 8\nimage_size = "64x64"\n[[stage]]\nepochs = 1\nlr = [1e-3]\n')
    with pytest.raises(RecipeError, match=r"bad.toml: stage\[1\].lr"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="no built-in recipe"):
        load_recipe("nope")


def test_image_size_forms():
    """One convention, WIDTHxHEIGHT (as the pipeline's --size); ambiguous values are refused, not transposed."""
    assert parse_image_size("1280x720") == (720, 1280)  # -> (height, width) inside
    assert parse_image_size(96) == (96, 96) and parse_image_size("96") == (96, 96)
    with pytest.raises(RecipeError, match="narrower than tall.*write 1280x720"):
        parse_image_size("720x1280")
    with pytest.raises(RecipeError, match="WIDTHxHEIGHT"):
        parse_image_size([720, 1280])


def test_valley_and_smoothing():
    lrs = list(np.logspace(-7, 1, 100))
    losses = [2.0] * 30 + list(np.linspace(2.0, 0.5, 40)) + list(np.linspace(0.5, 20, 30))
    suggestion = schedule.suggest_lr(lrs, losses)
    assert lrs[30] < suggestion < lrs[70]
    smoother = schedule.SmoothedLoss()
    smoothed = [smoother.add(x) for x in (1.0, 1.0, 1.0)]
    assert smoothed == pytest.approx([1.0, 1.0, 1.0])  # debiased: a constant stays constant


def test_metrics_frame_and_video_level():
    labels = [0, 0, 1, 1, 1, 1]
    p = [0.2, 0.4, 0.9, 0.6, 0.3, 0.1]
    videos = ["a", "a", "b", "b", "c", "c"]
    m = compute_metrics(labels, p, videos)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["roc_auc"] == pytest.approx(5 / 8)  # pairs where a fake outscores a real
    # video scores: a=0.3 (real), b=0.75, c=0.2 (fake)
    expected = -(math.log(0.7) + math.log(0.75) + math.log(0.2)) / 3
    assert m["video_log_loss"] == pytest.approx(expected)
    assert m["video_auc"] == pytest.approx(0.5) and m["videos"] == 3


@pytest.mark.parametrize("size", [(64, 64), (112, 112), (224, 224), (720, 1280)])
def test_augmentations_build_and_run_without_warnings(size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # albumentations 2.x only warns about renamed or ignored arguments
        transform = train_transform(size, only(*Augment.__dataclass_fields__), seed=0)
        out = transform(image=image)["image"]
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_eval_transform_and_small_decode():
    import simplejpeg
    image = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    decoded = decode_resized(simplejpeg.encode_jpeg(image, quality=90), (112, 200))
    assert decoded.shape == (112, 200, 3) and decoded.dtype == np.uint8
    x = eval_transform(112)(image)
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32 and abs(float(x.mean())) < 0.5
    with pytest.raises(ValueError, match="uint8"):
        eval_transform(112)(image.astype(np.float32))


def test_builtin_recipe_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """`make demo` writes into demo/ and then asks for --recipe demo: the name means the built-in recipe."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert load_recipe("demo") == load_recipe(RECIPES_DIR / "demo.toml")
    (tmp_path / "mine").write_text((RECIPES_DIR / "seed.toml").read_text())
    assert load_recipe("mine") == load_recipe("seed")  # a file without suffix is still read
