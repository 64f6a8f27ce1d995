"""Training and explaining on face crops (--input faces) end to end at 64 px, on face shards written as the faces
contract says (tests/helpers/faces_fixtures.py stands in for the detector): the fake-faces filter, videos without faces,
the checkpoint's face settings, explain's frame-and-box figures and the pointing game in crop coordinates."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.faces_fixtures import centre_box, write_faces
from pipeline.dataset import Dataset, DatasetError, ShardError
from pipeline.spec import FaceCrop
from train.config import FACE_IMAGE_SIZE, Augment, TrainConfig
from train.data.streams import TrainStream
from train.report.pointing import box_in_crop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faces_dataset(tiny_dataset, tmp_path_factory) -> dict:
    """tiny_dataset's shards copied, plus face shards: one real and one fake video without faces, one fake untouched."""
    root = tmp_path_factory.mktemp("faces")
    shutil.copytree(tiny_dataset["shards"], root / "shards")
    shutil.copytree(tiny_dataset["manifests"], root / "manifests")
    frames = pd.read_parquet(root / "manifests" / "frames.parquet")
    videos = frames.groupby("video_id").first()
    train_fakes = sorted(videos[(videos["split"] == "train") & (videos["label"] == "fake")].index)
    train_reals = sorted(videos[(videos["split"] == "train") & (videos["label"] == "real")].index)
    no_face = {train_fakes[0], train_reals[0]}
    untouched = {train_fakes[1]}
    faces = write_faces(root / "shards", root / "manifests", no_face=no_face, untouched=untouched)
    return {"shards": root / "shards", "manifests": root / "manifests", "faces": faces, "no_face": no_face,
            "untouched": untouched, "root": root}


def test_faces_manifest_counts_and_filter(faces_dataset):
    ds = faces_dataset
    faces = ds["faces"]
    kept = Dataset.open(ds["shards"], ds["manifests"], "faces", "manipulated")
    every = Dataset.open(ds["shards"], ds["manifests"], "faces", "all")
    n_untouched = int(faces["video_id"].isin(ds["untouched"]).sum())
    assert n_untouched > 0
    assert every.n_frames("train") == int((faces["split"] == "train").sum())
    assert kept.n_frames("train", "fake") == every.n_frames("train", "fake") - n_untouched
    assert kept.n_frames("val") == every.n_frames("val")  # validation scores every face
    assert kept.drop_untouched and not every.drop_untouched
    assert all(u.split("/")[-2] == "faces" for u in kept.urls("train"))


def test_no_faces_section_is_a_clear_error(tiny_dataset):
    with pytest.raises(DatasetError, match="faces stage"):
        Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"], "faces")


def test_training_stream_drops_untouched_fake_faces_and_skips_faceless_videos(faces_dataset):
    ds = faces_dataset
    videos = set()
    for fake_faces in ("manipulated", "all"):
        dataset = Dataset.open(ds["shards"], ds["manifests"], "faces", fake_faces)
        stream = TrainStream(dataset, (32, 32), Augment.none(), 8, 12, "none", 10, seed=1)
        seen = {v for batch in stream for v in batch[3]}
        videos |= seen
        if fake_faces == "manipulated":
            assert not seen & ds["untouched"]
    assert not videos & ds["no_face"]
    assert ds["untouched"] <= videos  # `all` keeps them


def test_face_image_size_defaults_to_224(faces_dataset):
    ds = faces_dataset
    args = dict(shards=str(ds["shards"]), manifests=str(ds["manifests"]), out="run", arch="resnet18", weights="none",
                batch_size=None, workers=0, device="cpu", amp=False, seed=0, lr_find=False, lr_find_only=False,
                dev_run=True, balance="mix", shuffle_buffer=10, stop_after_epochs=None)
    faces = TrainConfig.from_recipe(recipe="seed", image_size=None, input="faces", **args)
    assert faces.input == "faces" and faces.image_size == (FACE_IMAGE_SIZE, FACE_IMAGE_SIZE)
    assert TrainConfig.from_recipe(recipe="seed", image_size="96", input="faces", **args).image_size == (96, 96)
    assert TrainConfig.from_recipe(recipe="seed", image_size=None, input=None, **args).image_size == (720, 1280)
    assert TrainConfig.from_recipe(recipe="demo_faces", image_size=None, input=None, **args).input == "faces"


def test_box_in_crop_geometry():
    face = (100.0, 50.0, 200.0, 170.0)  # 100 x 120: the crop is 120 * 1.6 = 192 px square, centred at (150, 110)
    assert box_in_crop(face, face, 0.3) == pytest.approx([46 / 192, 36 / 192, 146 / 192, 156 / 192], abs=1e-3)
    assert box_in_crop((400, 400, 420, 420), face, 0.3) is None  # another face's box
    x0, y0, x1, y1 = box_in_crop((0, 0, 160, 120), face, 0.3)  # reaches outside the crop: clipped
    assert x0 == 0 and y0 == 0 and 0 < x1 <= 1


def _boxes_file(ds, path: Path) -> Path:
    """A boxes.json in the demo's format: each fake's face box (normalised), one per second."""
    frames = pd.read_parquet(ds["manifests"] / "frames.parquet")
    out = {}
    for video, group in frames[frames["label"] == "fake"].groupby("video_id"):
        w, h = int(group["width"].iloc[0]), int(group["height"].iloc[0])
        x0, y0, x1, y1 = centre_box(w, h)
        out[f"{video}.mp4"] = [[x0 / w, y0 / h, x1 / w, y1 / h]] * 3
    path.write_text(json.dumps(out))
    return path


@pytest.fixture(scope="module")
def faces_run(faces_dataset, tmp_path_factory) -> Path:
    ds = faces_dataset
    out = tmp_path_factory.mktemp("facesrun") / "run"
    boxes = _boxes_file(ds, out.parent / "boxes.json")
    cmd = [sys.executable, "-m", "train.run", "--shards", str(ds["shards"]), "--manifests", str(ds["manifests"]),
           "--out", str(out), "--input", "faces", "--weights", "none", "--device", "cpu", "--image-size", "64",
           "--batch-size", "8", "--workers", "0", "--dev-run", "--aggregate", "mean", "--boxes", str(boxes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.slow  # a dev run (~30-60 s on a loaded 2-core box)
def test_faces_run_records_input_and_face_settings(faces_run, faces_dataset):
    state = torch.load(faces_run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    config = state["config"]
    assert config["input"] == "faces" and config["fake_faces"] == "manipulated"
    settings = json.loads((faces_dataset["manifests"] / "dataset.json").read_text())["faces"]["settings"]
    # a typed field of the config (pipeline.spec.FaceCrop; older checkpoints: extra.faces)
    assert FaceCrop.from_dict(config["faces"]) == FaceCrop.from_dict(settings)
    assert json.loads((faces_run / "config.json").read_text())["input"] == "faces"


@pytest.mark.slow
def test_faces_explain_keys_figures_and_pointing(faces_run, faces_dataset):
    pred = pd.read_parquet(faces_run / "predictions.parquet")
    faces = faces_dataset["faces"]
    val = faces[faces["split"] == "val"]
    assert sorted(pred["key"]) == sorted(val["crop_key"])  # every val face once, keyed by crop key
    assert (pred["frame_key"] + "_" + pred["face"].astype(str) == pred["key"]).all()
    for name in ("top_losses.png", "best.png", "gradcam_worst.png", "pointing.png", "report.html"):
        assert (faces_run / name).is_file(), name
    explained = json.loads((faces_run / "explain.json").read_text())
    assert explained["input"] == "faces"
    p = explained["pointing"]
    assert p["frames"] == int((val["label"] == "fake").sum())
    # the whole face box inside a 30%-margin crop covers (1 / 1.6)^2 .. of the crop
    assert 0.2 < p["random_point"] < 0.7


def test_predict_video_scores_rule_and_faceless_videos():
    from train.score.face_crops import FACE_ROW_COLUMNS, NO_FACE_NOTE
    from train.score.videos import FRAME_COLUMNS, frames_frame, video_scores

    rows = [{"filename": "a.mp4", "video_id": "a", "p_fake": p, "face": 0} for p in (0.9, 0.95, 0.1, 0.85)]
    rows += [{"filename": "b.mp4", "video_id": "b", "note": NO_FACE_NOTE}, {"filename": "c.mp4", "error": "boom"}]
    frames = frames_frame(rows, FRAME_COLUMNS + FACE_ROW_COLUMNS)
    assert video_scores(frames)["label"].tolist() == pytest.approx([0.7, 0.5, 0.5])
    # confident: 3 of 4 faces above 0.8 (more than 4 // 2.5 = 1): the mean of those
    assert video_scores(frames, rule="confident")["label"].tolist() == pytest.approx([0.9, 0.5, 0.5])


def test_face_counts_keep_unknown_manipulated(tmp_path):
    from pipeline.dataset import face_counts

    pd.DataFrame({"split": ["train"] * 4, "label": ["fake", "fake", "fake", "real"],
                  "manipulated": [True, False, None, False]}).to_parquet(tmp_path / "faces.parquet")
    assert face_counts(tmp_path, drop_untouched=True) == {"train": {"fake": 2, "real": 1}}  # null kept, reals kept
    assert face_counts(tmp_path, drop_untouched=False) == {"train": {"fake": 3, "real": 1}}
    assert face_counts(tmp_path / "none", drop_untouched=True) is None


def test_truncated_face_shard_stops_before_training(faces_dataset, tmp_path):
    """Issue 21 item 6: a face entry records its file size as `bytes`; the pre-training check reads it."""
    shutil.copytree(faces_dataset["shards"], tmp_path / "shards")
    shutil.copytree(faces_dataset["manifests"], tmp_path / "manifests")
    victim = sorted((tmp_path / "shards" / "faces").glob("train-*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[:-1536])
    with pytest.raises(ShardError, match=rf"{victim.name} is truncated"):
        Dataset.open(tmp_path / "shards", tmp_path / "manifests", "faces")
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tmp_path / "shards"), "--manifests",
                           str(tmp_path / "manifests"), "--input", "faces", "--out", str(tmp_path / "run"),
                           "--dev-run", "--weights", "none", "--workers", "0", "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "is truncated" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_deleted_faces_parquet_is_caught_by_verify_and_explain(faces_dataset, tmp_path):
    """Issue 21 item 7: a faces section without its faces.parquet fails pipeline.verify and stops the readers
    with one line naming the file."""
    shutil.copytree(faces_dataset["shards"], tmp_path / "shards")
    shutil.copytree(faces_dataset["manifests"], tmp_path / "manifests")
    (tmp_path / "manifests" / "faces.parquet").unlink()
    proc = subprocess.run([sys.executable, "-m", "pipeline.verify", "--shards", str(tmp_path / "shards"),
                           "--manifests", str(tmp_path / "manifests"), "--deep"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 1 and "faces.parquet: missing" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    with pytest.raises(DatasetError, match="faces.parquet does not exist"):
        Dataset.open(tmp_path / "shards", tmp_path / "manifests", "faces")
