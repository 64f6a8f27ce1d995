"""`dfd check` (train.check): one line per video, JSON lines, the verdict page (rendered in headless Chromium), a
video without a face, a file that is not a video; the faces path with real MTCNN on demodata.faces clips."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from demodata.faces import generate
from demodata.synthetic import PART_NAME
from helpers.clips import make_clip
from helpers.commands import run_module
from helpers.models import untrained_checkpoint
from helpers.pages import assert_self_contained, shoot
from train.score import metrics
from train.score.verdict import Item, Verdict, evidence_text, seconds_text


@pytest.fixture(scope="module")
def faces_clips(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("check")
    videos = generate(root / "videos", n_videos=4, seconds=2.0, size=(256, 144), seed=0, workers=2, progress=False)
    clips = sorted((videos / PART_NAME).glob("*.mp4"))
    noface = make_clip(root / "plain" / "noface.mp4", size=(256, 144), seconds=2.0, source="testsrc2")
    notes = root / "plain" / "notes.txt"
    notes.write_text("not a video\n")
    model = untrained_checkpoint(root / "model" / "faces.pt", "faces", 64, fps=1.0, box=(256, 144))
    return {"root": root, "clips": clips, "noface": noface, "notes": notes, "model": model}


def test_faces_model_checks_each_video_and_goes_on_past_a_file_that_is_not_one(faces_clips, tmp_path):
    clip = faces_clips["clips"][0]
    out = tmp_path / "pages"
    proc = run_module("train.check", clip, faces_clips["notes"], faces_clips["noface"], "--model",
                      faces_clips["model"], "--out", out, "--device", "cpu", check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3, proc.stdout
    assert re.match(rf"{clip.name}: (FAKE|REAL) P\(fake\) [01]\.\d{{3}} \(threshold 0\.500\); strongest: face track "
                    r"\d+ \(of \d+\) .*s, peak P\(fake\) [01]\.\d{3} -> ", lines[0]), lines[0]
    assert lines[1].startswith("notes.txt: FAILED: not a readable video (ffmpeg: ") and "Invalid data" in lines[1]
    assert lines[2].startswith("noface.mp4: NO FACE: no face found in 2 sampled frames")
    assert sorted(p.name for p in out.iterdir()) == [f"{clip.stem}.html", "noface.html"]
    page = (out / f"{clip.stem}.html").read_text()
    assert_self_contained(page)
    assert clip.name in page and "Grad-CAM" in page and "P(fake) over time" in page and "Settings used" in page
    assert 'class="box"' in page  # the face box over the source frame
    assert "no face was found" in (out / "noface.html").read_text().lower()


def test_json_lines_carry_the_same_verdicts(faces_clips, tmp_path):
    clips = faces_clips["clips"][:2]
    proc = run_module("train.check", *clips, faces_clips["noface"], "--model", faces_clips["model"], "--json",
                      "--no-html", "--device", "cpu")
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["video"] for r in rows] == [c.name for c in clips] + ["noface.mp4"]
    for row in rows[:2]:
        assert row["verdict"] == ("FAKE" if row["p_fake"] >= row["threshold"] else "REAL")
        assert row["items"] > 0 and row["evidence"]["track"] is not None and row["page"] is None
    assert rows[2]["verdict"] == "NO FACE" and rows[2]["p_fake"] is None and rows[2]["frames"] == 2
    # the per-face scores are predict's: the same model on the same clips through train.predict
    frames_csv = tmp_path / "faces.csv"
    run_module("train.predict", *clips, "--checkpoint", faces_clips["model"], "--out", tmp_path / "sub.csv",
               "--frames-out", frames_csv, "--device", "cpu", "-q")
    import pandas as pd
    sub = pd.read_csv(tmp_path / "sub.csv").set_index("filename")["label"]
    for row in rows[:2]:
        assert row["p_fake"] == pytest.approx(sub[row["video"]], abs=1e-6)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(faces_clips, tmp_path):
    page = tmp_path / "one.html"
    run_module("train.check", faces_clips["clips"][1], "--model", faces_clips["model"], "--html", page,
               "--device", "cpu")
    image = shoot(page, tmp_path)
    assert image.shape[:2] == (2400, 1280)
    assert image[..., :3].std() > 0.05
    top = image[:400, :, :3]
    badge = ((top[..., 0] > 0.6) & (top[..., 1] < 0.35)) | ((top[..., 1] > 0.55) & (top[..., 0] < 0.3))
    assert badge.sum() > 200  # the red FAKE or green REAL badge was drawn


def test_html_needs_one_video(faces_clips, tmp_path):
    proc = run_module("train.check", *faces_clips["clips"][:2], "--model", faces_clips["model"], "--html",
                      tmp_path / "x.html", check=False)
    assert proc.returncode == 2 and "--html names one page but 2 videos" in proc.stderr


# Pure parts ---------------------------------------------------------------------------------------------------


def test_seconds_text_joins_runs():
    assert seconds_text([7, 1, 2, 3]) == "1-3 s, 7 s"
    assert seconds_text([0, 1 / 3, 2 / 3, 2], step=1 / 3) == "0-0.667 s, 2 s"


def test_evidence_is_the_strongest_track_and_its_seconds_above_the_threshold():
    crop = np.zeros((8, 8, 3), np.uint8)
    items = [Item(s, float(s), p, crop, track=0) for s, p in enumerate([0.1, 0.2, 0.1, 0.1])]
    items += [Item(s, float(s), p, crop, track=1) for s, p in enumerate([0.3, 0.9, 0.95, 0.2])]
    verdict = Verdict(Path("v.mp4"), "faces", {"value": 0.7}, "mean", items, [b""] * 4, [0.0, 1.0, 2.0, 3.0])
    assert verdict.p_fake == pytest.approx(np.mean([0.1, 0.2, 0.1, 0.1, 0.3, 0.9, 0.95, 0.2]))
    assert evidence_text(verdict) == "face track 1 (of 2) at 1-2 s, peak P(fake) 0.950"
    verdict.items += [Item(0, 0.0, 0.99, crop, track=2)]  # a one-frame false detection scoring high
    assert verdict.tracks()[0]["track"] == 2 and verdict.evidence()["track"] == 1
    assert verdict.label == "REAL"  # the mean over all faces (0.65) is under 0.7 ...
    ev = verdict.evidence()
    assert ev["track"] == 1 and ev["seconds"] == [1.0, 2.0] and ev["above_threshold"]  # ... but person 1 is not
    assert evidence_text(verdict) == "face track 1 (of 3) at 1-2 s, peak P(fake) 0.950"
    assert Verdict(Path("n.mp4"), "faces", {"value": 0.5}, "mean", [], [b""], [0.0]).label == "NO FACE"


def test_threshold_at_eer_and_at_a_target_fpr():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.8, 0.9, 0.95])
    eer = metrics.choose_threshold(y, p)
    # EER at score 0.7 (FPR = FNR = 0.25); the threshold sits midway to the next lower score, 0.4
    assert eer["rule"] == "eer" and eer["value"] == pytest.approx(0.55) and eer["fpr"] == 0.25 and eer["tpr"] == 0.75
    strict = metrics.choose_threshold(y, p, at_fpr=0.0)
    assert strict["value"] == pytest.approx(0.75) and strict["fpr"] == 0.0 and strict["tpr"] == 0.75
    loose = metrics.choose_threshold(y, p, at_fpr=0.3)
    assert loose["fpr"] <= 0.3 and loose["value"] == pytest.approx(0.35) and loose["tpr"] == 1.0
    for chosen in (eer, strict, loose):  # the threshold calls on val exactly what its FPR and TPR say
        assert ((p >= chosen["value"]) & (y == 0)).sum() / 4 == chosen["fpr"]
        assert ((p >= chosen["value"]) & (y == 1)).sum() / 4 == chosen["tpr"]
    separated = metrics.choose_threshold([0, 0, 1, 1], [0.1, 0.2, 1.0, 1.0])
    assert separated["value"] == pytest.approx(0.6) and separated["fpr"] == 0.0 and separated["tpr"] == 1.0
    with pytest.raises(ValueError, match="real and fake"):
        metrics.choose_threshold([1, 1], [0.2, 0.3])
