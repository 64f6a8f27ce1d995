"""Issue 26: `dfd explain` of a clip model (train.report.clip_explanation) -- a dev run of `dfd train --input clips`
that explains itself at the end, as frame runs do: predictions per val clip, Grad-CAM where and when (a strip of
each clip's frames and their maps, the frame holding each clip's peak), report.html saying the pointing game does
not apply instead of failing on --boxes."""
from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.clips import write_tiny_boxes
from helpers.commands import run_module
from helpers.pages import assert_self_contained, shoot
from train.report.clip_explanation import clip_cams, clips_by_key, peak_frames
from train.score.checkpoints import load_model
from pipeline.dataset import Dataset
from train.data.clip_streams import ClipShards


@pytest.fixture(scope="module")
def explained_run(clip_dataset, tmp_path_factory) -> Path:
    """A dev run of tall:test_resnet on 4-frame clips at 32 px, with --boxes; train.run explains it at the end."""
    out = tmp_path_factory.mktemp("clipexplain") / "run"
    boxes = write_tiny_boxes(clip_dataset, out.parent / "boxes.json")
    run_module("train.run", "--shards", clip_dataset["shards"], "--manifests", clip_dataset["manifests"],
               "--out", out, "--recipe", "demo_clips", "--dev-run", "--weights", "none", "--image-size", "32",
               "--batch-size", "4", "--workers", "0", "--device", "cpu", "--input", "clips",
               "--arch", "tall:test_resnet", "--boxes", boxes)
    return out


def test_peak_frames_finds_the_frame_holding_the_clips_maximum():
    cams = np.zeros((3, 4, 5, 5))
    cams[0, 2, 1, 1], cams[0, 0] = 1.0, 0.5      # peak in frame 2, which holds 1 / (1 + 12.5) of the mass
    cams[1] = 0.3                                  # every frame alike: no peak in time
    cams[2, 3, 4, 4] = 0.9
    peak, share = peak_frames(cams)
    assert peak.tolist() == [2, -1, 3]
    assert share[0] == pytest.approx(1 / 13.5) and np.isnan(share[1]) and share[2] == pytest.approx(1.0)


def test_a_clip_run_ends_with_predictions_per_val_clip(explained_run, clip_dataset):
    clips = pd.read_parquet(clip_dataset["manifests"] / "clips.parquet")
    val = clips[(clips["split"] == "val") & (clips["status"] == "done")].set_index("key")
    pred = pd.read_parquet(explained_run / "predictions.parquet").set_index("key")
    assert sorted(pred.index) == sorted(val.index)
    assert np.allclose(pred["second"], val.loc[pred.index, "start"].astype(float))
    videos = pd.read_parquet(explained_run / "video_predictions.parquet").set_index("video_id")
    assert np.allclose(videos.loc[pred["video_id"].unique(), "p_fake"], pred.groupby("video_id")["p_fake"].mean())
    explained = json.loads((explained_run / "explain.json").read_text())
    assert explained["unit"] == "clip" and explained["frame"]["frames"] == len(val)
    assert explained["pointing"] is None and "not played" in explained["pointing_note"]
    when = explained["when"]
    assert when["frames"] == 4
    for name, label in (("fake", "fake"), ("real", "real")):
        counts = when["classes"][name]
        assert len(counts["peak_frame_counts"]) == 4
        assert sum(counts["peak_frame_counts"]) + counts["no_peak"] == counts["clips"]
        assert counts["clips"] == min(8, int((val["label"] == label).sum()))  # a dev run counts 8 per class


def test_the_shown_clips_peak_frames_are_their_grad_cams(explained_run, clip_dataset):
    explained = json.loads((explained_run / "explain.json").read_text())
    model, config = load_model(explained_run / "checkpoints" / "best.pt")
    urls = ClipShards(Dataset.open(clip_dataset["shards"], clip_dataset["manifests"])).urls("val")
    keys = explained["top"]["worst"]
    clips = clips_by_key(urls, keys, config.image_size)
    cams = clip_cams(model, [clips[key] for key in keys])
    assert cams.shape[:2] == (len(keys), 4)
    assert peak_frames(cams)[0].tolist() == explained["top"]["worst_peak_frames"]


def test_report_shows_where_and_when_and_says_the_pointing_game_does_not_apply(explained_run):
    page = (explained_run / "report.html").read_text()
    for name in ("clips_worst.png", "clips_best.png"):
        match = re.search(rf'<img alt="{re.escape(name)}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert match, f"{name} not embedded"
        assert base64.b64decode(match.group(1)) == (explained_run / name).read_bytes()
    assert "Where and when" in page and "Not for a clip model" in page and "not played" in page
    assert "Clip- and video-level metrics" in page and "clip ROC-AUC" in page and '<th class="">clips</th>' in page
    assert "top_losses.png: not in the run folder" not in page  # frame figures are not asked of a clip run
    assert_self_contained(page)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_clip_report_renders_in_headless_chromium(explained_run, tmp_path):
    image = shoot(explained_run / "report.html", tmp_path, height=1600)
    assert image.shape[:2] == (1600, 1280) and image[..., :3].std() > 0.05
