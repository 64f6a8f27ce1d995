"""The faces path end to end, as `make demo-faces` runs it but tiny: demodata.faces clips (plus one clip without
any face) -> pipeline.run -> pipeline.faces (real MTCNN) -> train.run --input faces -> train.predict on videos."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers.clips import make_clip
from demodata.faces import generate
from demodata.synthetic import PART_NAME

ROOT = Path(__file__).resolve().parents[2]
NO_FACE = "nofaceclip"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def faces_demo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("facesdemo")  # seed 0: one group of four in val (split seed 0, 40%)
    videos = generate(root / "videos", n_videos=12, seconds=2.0, size=(256, 144), seed=0, workers=2, progress=False)
    part = videos / PART_NAME
    make_clip(part / f"{NO_FACE}.mp4", size=(256, 144), seconds=2.0, source="testsrc2")
    meta = json.loads((part / "metadata.json").read_text())
    meta[f"{NO_FACE}.mp4"] = {"label": "REAL", "split": "train", "original": None}
    (part / "metadata.json").write_text(json.dumps(meta))
    shards, manifests = root / "shards", root / "manifests"
    for args in (("pipeline.run", "--videos", str(videos), "--shards", str(shards), "--manifests", str(manifests),
                  "--workers", "2", "--size", "256x144", "--fps", "2", "--val-fraction", "0.4"),
                 ("pipeline.faces", "--shards", str(shards), "--manifests", str(manifests), "--workers", "1",
                  "--device", "cpu", "--face-size", "64", "--min-size", "20")):
        proc = _run(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    run = root / "run"
    proc = _run("train.run", "--shards", str(shards), "--manifests", str(manifests), "--out", str(run),
                "--input", "faces", "--weights", "none", "--device", "cpu", "--image-size", "64", "--batch-size", "8",
                "--workers", "0", "--dev-run", "--aggregate", "confident", "--boxes", str(videos / "boxes.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"root": root, "videos": videos, "shards": shards, "manifests": manifests, "run": run}


@pytest.mark.slow
def test_faces_stage_counts_the_faceless_video_and_training_skips_it(faces_demo):
    dataset = json.loads((faces_demo["manifests"] / "dataset.json").read_text())
    assert dataset["faces"]["videos_without_faces"] >= 1
    faces = pd.read_parquet(faces_demo["manifests"] / "faces.parquet")
    assert NO_FACE not in set(faces["video_id"])
    config = json.loads((faces_demo["run"] / "config.json").read_text())
    assert config["input"] == "faces" and config["aggregate"] == "confident"
    assert config["faces"]["face_size"] == 64  # a typed field of the config (older runs: extra.faces)
    explained = json.loads((faces_demo["run"] / "explain.json").read_text())
    assert explained["video"]["aggregate"] == "confident"
    if explained["pointing"]:  # only when the val split holds fakes
        assert explained["pointing"]["frames"] > 0


@pytest.mark.slow
def test_predict_scores_every_face_and_gives_faceless_videos_half(faces_demo, tmp_path):
    out, frames_out = tmp_path / "submission.csv", tmp_path / "faces.csv"
    part = faces_demo["videos"] / PART_NAME
    picks = sorted(p for p in part.glob("*.mp4") if p.stem != NO_FACE)[:3] + [part / f"{NO_FACE}.mp4"]
    proc = _run("train.predict", "--checkpoint", str(faces_demo["run"] / "checkpoints" / "last.pt"),
                *map(str, picks), "--out", str(out), "--frames-out", str(frames_out), "--device", "cpu", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 without any face" in proc.stdout
    submission = pd.read_csv(out)
    assert list(submission["filename"]) == [p.name for p in picks]
    assert submission.set_index("filename").loc[f"{NO_FACE}.mp4", "label"] == 0.5
    rows = pd.read_csv(frames_out)
    faceless = rows[rows["video_id"] == NO_FACE]
    assert len(faceless) == 1 and faceless["p_fake"].isna().all() and "no face" in faceless["note"].iloc[0]
    faced = rows[rows["video_id"] != NO_FACE]
    assert faced["p_fake"].between(0, 1).all() and faced["face"].notna().all()
    assert (faced["key"] == faced["video_id"] + "_" + faced["index"].astype(int).map("{:04d}".format) + "_"
            + faced["face"].astype(int).astype(str)).all()
    # the same crops as the faces stage made: the faces of the same seconds land on the same boxes
    stage = pd.read_parquet(faces_demo["manifests"] / "faces.parquet").set_index("crop_key")
    common = faced[faced["key"].isin(stage.index)]
    assert len(common) > 0
    assert (common["x0"].to_numpy() - stage.loc[common["key"], "x0"].to_numpy()).__abs__().max() < 1.0


@pytest.mark.slow
def test_export_then_check_with_the_package_gives_predicts_scores(faces_demo, tmp_path):
    """The README's path: train (the fixture), export the run, check clips with the exported folder."""
    package = tmp_path / "package"
    proc = _run("train.export", "--checkpoint", str(faces_demo["run"]), "--out", str(package))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = json.loads((package / "config.json").read_text())
    assert config["input"] == "faces" and config["faces"]["face_size"] == 64 and config["aggregate"] == "confident"
    assert config["threshold"]["rule"] == "eer" and 0 <= config["threshold"]["value"] <= 1
    assert "MTCNN" in (package / "README.md").read_text()
    part = faces_demo["videos"] / PART_NAME
    picks = sorted(p for p in part.glob("*.mp4") if p.stem != NO_FACE)[:2] + [part / f"{NO_FACE}.mp4"]
    proc = _run("train.check", *map(str, picks), "--model", str(package), "--json", "--out", str(tmp_path / "pages"),
                "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r["verdict"] for r in rows][-1] == "NO FACE" and all(r["page"] for r in rows)
    out = tmp_path / "sub.csv"
    _run("train.predict", "--checkpoint", str(faces_demo["run"]), *map(str, picks[:2]),
         "--out", str(out), "--device", "cpu", "-q")
    labels = pd.read_csv(out).set_index("filename")["label"]
    for row in rows[:2]:
        assert row["p_fake"] == pytest.approx(labels[row["video"]], abs=1e-6)
        assert row["threshold"] == config["threshold"]["value"]
        assert row["verdict"] == ("FAKE" if row["p_fake"] >= row["threshold"] else "REAL")
