"""What the model card and the check page say of a zoo package, for every entry, without a network: the source,
the licence, the authors' preprocessing, and where running it here differs from it (another face detector, or the
same one with other settings; no 5-point alignment where the authors align). The page is the real verdict page
(train.report.verdict_page.write_page) of a video in which no face was found, fed what `dfd check` feeds it
(train.score.package.zoo_facts of a package folder). The page's Grad-CAM of an ensemble explains its first member."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from pipeline.spec import FaceCrop, ModelInput
from train.model import normalize
from train.paths import CONFIG, WEIGHTS
from train.report.gradcam import find_target_layer, grad_cam, overlay
from train.report.verdict_page import FAKE_CLASS, gradcams, write_page
from train.score.package import zoo_facts
from train.score.threshold import DEFAULT
from train.score.verdict import NO_FACE, Verdict
from train.zoo.arch import build
from train.zoo.entries import ENTRIES, entry
from train.zoo.here import DETECTOR_NAMES
from train.zoo.importer import card, package_config
from train.zoo.runtime import OwnInput


def _package(name: str, folder: Path) -> dict:
    """config.json of `name` as import writes it, beside an empty weights file (the card and the page read the
    config only)."""
    e = entry(name)
    config = {**package_config(e, [], e.architecture.to_dict()), "members": e.max_files}
    folder.mkdir(parents=True)
    (folder / CONFIG).write_text(json.dumps(config))
    safetensors.torch.save_file({}, str(folder / WEIGHTS))
    return config


def _page_text(facts: dict, out: Path) -> str:
    verdict = Verdict(Path("clip.mp4"), "faces", dict(DEFAULT), "mean", seconds=[0.0, 0.5])
    assert verdict.label == NO_FACE
    models = [{"name": "pkg", "arch": "timm", "input": "faces", "zoo": facts}]
    page = write_page(verdict, "clip.mp4", out, None, models, {})
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())))


@pytest.mark.parametrize("name", list(ENTRIES))
def test_card_and_page_name_source_licence_preprocessing_and_differences(name, tmp_path):
    e = entry(name)
    config = _package(name, tmp_path / "pkg")
    facts = zoo_facts(tmp_path / "pkg")
    assert facts is not None
    text, written = _page_text(facts, tmp_path / "page.html"), card(config)
    theirs = DETECTOR_NAMES[e.preprocessing.detector]
    ours = FaceCrop()
    for shown in (text, re.sub(r"\s+", " ", written)):
        assert e.code in shown and e.licence.weights in shown and e.preprocessing.summary() in shown
        assert ("NON-COMMERCIAL" in shown) == e.licence.non_commercial
        assert f"{ours.detect_size} px, thresholds {'/'.join(f'{t:g}' for t in ours.thresholds)}" in shown
        if theirs == "MTCNN":
            assert "Same face detector, other settings" in shown and e.preprocessing.detector_settings in shown
        else:
            assert f"Different face detector: the authors used {theirs}" in shown
        assert ("No 5-point alignment" in shown) == (e.preprocessing.box == "aligned")
        assert "cropped from there; the authors crop from the frame at its own resolution" in shown
    assert facts["differences"] and all(d in text for d in facts["differences"])
    assert facts["aligned_by_authors"] == (e.preprocessing.box == "aligned")
    assert ("Grad-CAM below: of the first of its" in text) == (config["members"] > 1)


def test_aligned_and_unaligned_entries_are_both_covered():
    """The parametrised test sees each case: an entry on MTCNN, one on another detector, one aligned, one not."""
    p = [e.preprocessing for e in ENTRIES.values()]
    assert {x.detector == "mtcnn" for x in p} == {True, False} and {x.box == "aligned" for x in p} == {True, False}


def test_page_grad_cam_of_an_ensemble_is_its_first_member_alone():
    """The winner's seven B7s at 380 px held ~16 GB in one Grad-CAM backward pass: the page explains the first
    member only (behind the same normalisation), one crop at a time, and gets the same maps as that member alone."""
    torch.manual_seed(0)
    spec = ModelInput(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = OwnInput(build({"timm_name": "resnet10t", "features": 512, "outputs": 1, "normalise": False}, 2),
                     spec).eval()
    first = model.gradcam_model()
    assert first.net is model.net.members[0] and first.spec == spec
    assert find_target_layer(first) is find_target_layer(model)
    crops = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(2)]
    x = normalize(torch.stack([torch.from_numpy(c).permute(2, 0, 1) for c in crops]))
    with torch.no_grad():
        expected_logits = model.net.members[0](x * model.gain + model.bias)
        assert torch.allclose(first(x), expected_logits, atol=1e-5)
    alone = OwnInput(model.net.members[0], spec).eval()
    cams = grad_cam(alone, x, target_class=FAKE_CLASS).numpy()
    assert all(np.array_equal(got, overlay(c, cam)) for got, c, cam in zip(gradcams(model, crops), crops, cams))
    single = OwnInput(model.net.members[1], spec).eval()
    assert single.gradcam_model() is single
