"""Issue 17 item 3: the anchors' recipes as data, each citing its source and the figures it reports (`[source]`);
a recipe's arch, aggregation rule and expected face crops; the DFDC winner's recipe."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.faces_fixtures import write_faces
from train.config import RECIPES_DIR, RecipeError, TrainConfig, load_recipe, recipe_from_dict
from train.model import build_model

ROOT = Path(__file__).resolve().parents[2]
BASE = {"batch_size": 4, "image_size": 64, "stage": [{"epochs": 1, "lr": 1e-3}]}


@pytest.mark.parametrize("path", sorted(RECIPES_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_builtin_recipe_loads_and_a_source_is_complete(path):
    recipe = load_recipe(path.stem)
    if recipe.source:
        assert recipe.source["title"] and recipe.source["url"].startswith("https://")
        assert recipe.source["reported"], "a source without the figures it reports"


def test_the_dfdc_winners_recipe():
    recipe = load_recipe("dfdc_winner")
    assert (recipe.input, recipe.image_size, recipe.batch_size) == ("faces", (380, 380), 12)
    assert recipe.train == {"arch": "tf_efficientnet_b7.ns_jft_in1k", "aggregate": "confident"}
    assert recipe.faces == {"margin": 0.3, "face_size": 380}
    assert recipe.source["url"] == "https://github.com/selimsef/dfdc_deepfake_challenge"
    assert recipe.source["reported"]["DFDC private leaderboard log loss"] == 0.42798


def test_the_command_line_overrides_the_recipes_arch_and_rule():
    kw = dict(shards="s", manifests="m", out="o")
    from_recipe = TrainConfig.from_recipe("dfdc_winner", arch=None, aggregate=None, **kw)
    assert (from_recipe.arch, from_recipe.aggregate) == ("tf_efficientnet_b7.ns_jft_in1k", "confident")
    given = TrainConfig.from_recipe("dfdc_winner", arch="resnet18", aggregate="mean", **kw)
    assert (given.arch, given.aggregate) == ("resnet18", "mean")
    plain = TrainConfig.from_recipe("seed", arch=None, aggregate=None, **kw)
    assert (plain.arch, plain.aggregate) == ("resnet18", "mean")
    # a checkpoint's config keeps the source and the rest of the recipe
    again = TrainConfig.from_checkpoint(json.loads(json.dumps(from_recipe.to_dict())))
    assert again == from_recipe and again.recipe.source == from_recipe.recipe.source


@pytest.mark.parametrize("source, message", [
    ({"url": "https://x"}, "source.title"),
    ({"title": "t", "url": "https://x", "reported": [1]}, "source.reported"),
    ({"title": "t", "url": "https://x", "reported": {"auc": [0.9]}}, "source.reported.auc"),
    ({"title": "t", "url": "https://x", "doi": "10/x"}, "source.doi"),
])
def test_a_bad_source_table_names_the_field(source, message):
    with pytest.raises(RecipeError, match=message.replace(".", r"\.")):
        recipe_from_dict({**BASE, "source": source})


def test_bad_recipe_arch_rule_and_faces_are_refused(tmp_path):
    for extra, message in (({"faces": {"margin": 5}}, "faces.margin"), ({"faces": {"size": 380}}, "faces.size"),
                           ({"arch": "resnet18"}, "arch"), ({"train": {"archh": "resnet18"}}, "train.archh")):
        with pytest.raises(RecipeError, match=message):
            recipe_from_dict({**BASE, **extra})
    bad_rule = tmp_path / "bad_rule.toml"  # values in [train] are checked as the command line's are
    bad_rule.write_text('batch_size = 4\nimage_size = 64\n[train]\naggregate = "max"\n'
                        '[[stage]]\nepochs = 1\nlr = 1e-3\n')
    with pytest.raises(RecipeError, match="aggregate"):
        TrainConfig.from_recipe(bad_rule, shards="s", manifests="m", out="o")


def test_the_b7_trains_a_step_on_the_cpu():
    """The recipe's backbone, built as training builds it (random weights), learns on two 64 px faces."""
    model = build_model("tf_efficientnet_b7.ns_jft_in1k", pretrained=False).train()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.slow
def test_the_winners_recipe_dev_run_reports_its_source(tiny_dataset, tmp_path):
    """`--dev-run` of the recipe on face shards at 64 px (a B0 here for the suite's time: the B7 dev-run's CPU cost
    is measured in the README), and its report shows the source and the figures it reports."""
    shutil.copytree(tiny_dataset["shards"], tmp_path / "shards")
    shutil.copytree(tiny_dataset["manifests"], tmp_path / "manifests")
    write_faces(tmp_path / "shards", tmp_path / "manifests")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tmp_path / "shards"), "--recipe",
                           "dfdc_winner", "--arch", "efficientnet_b0", "--out", str(run), "--dev-run", "--weights",
                           "none", "--image-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the recipe expects faces cropped with face_size=380" in proc.stderr  # the fixture's crops are 64 px
    config = json.loads((run / "config.json").read_text())
    assert config["aggregate"] == "confident" and config["arch"] == "efficientnet_b0"
    page = (run / "report.html").read_text()
    assert 'id="source"' in page and "selimsef/dfdc_deepfake_challenge" in page and "0.42798" in page
