"""Issue 26 item 4 for face-clips models: a `dfd train --input face-clips` run scored everywhere. `dfd evaluate` on
the face-clip shards; `dfd check` and `dfd predict` on video files cut each clip's face tubes with the faces stage's
own code (MTCNN on the sampled frames, one box per tube) and score what the shards hold for the same clips; a clip
without a face is a stated row; `dfd export` keeps the face and clip settings and the package scores alike; `dfd
benchmark` takes the run and refuses a test set without face tubes in one line. One real run on real DFDC faces
(tests/helpers/face_clips.py: face_clip_dataset, face_clip_run in tests/conftest.py). The commands run in this
process (click's CliRunner): a fresh interpreter per command would cost more than the scoring itself."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import torch
from click.testing import CliRunner

import train.benchmark
import train.check
import train.evaluate
import train.export
import train.predict
from helpers.pages import assert_self_contained, shoot
from pipeline.dataset import Dataset
from train.checkpoint import load_checkpoint
from train.data.clip_streams import ClipShards, ClipValStream
from train.model import Device
from train.score.on_batches import predict


def _cli(main, *args, code: int = 0):
    """A command run in this process; its exit code checked, never a traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code and (result.exception is None or isinstance(result.exception, SystemExit)), (
        result.output)
    return result


def _tubes(data: dict) -> pd.DataFrame:
    return pd.read_parquet(data["manifests"] / "face_clips.parquet")


def _shard_scores(run, data) -> pd.Series:
    """Every val tube's P(fake) by the run's last checkpoint, read from the face-clip shards (what training saw)."""
    model, config = load_checkpoint(run / "checkpoints" / "last.pt")
    urls = ClipShards(Dataset.open(data["shards"], data["manifests"]), "face-clips").urls("val")
    rows = predict(model, ClipValStream(urls, config.image_size, 4), Device(torch.device("cpu")))
    return rows.set_index("key").p_fake


def _video(data: dict, name: str):
    return data["videos"] / "dfdc_train_part_0" / f"{name}.mp4"


def test_dfd_evaluate_scores_the_face_clip_shards(face_clip_run, face_clip_dataset, tmp_path):
    out = tmp_path / "eval"
    proc = _cli(train.evaluate.main, "--checkpoint", face_clip_run / "checkpoints" / "last.pt", "--shards",
                      face_clip_dataset["shards"], "--split", "val", "--out", out, "--device", "cpu", "--workers", "0")
    result = json.loads((out / "metrics.json").read_text())
    tubes = pd.read_parquet(out / "predictions.parquet")
    videos = pd.read_parquet(out / "video_predictions.parquet")
    table = _tubes(face_clip_dataset)
    val = table[(table.split == "val") & (table.status == "done")]
    assert result["unit"] == "clip" and result["input"]["input"] == "face-clips"
    assert sorted(tubes.key) == sorted(val.key) and result["clip"]["clips"] == len(val) == 4
    assert set(videos.video_id) == {"breal", "dfake"}  # the faceless val video has no tube to score
    starts = val.set_index("key").start
    assert np.allclose(tubes.set_index("key").second, starts.loc[tubes.key])  # each tube at its clip's start
    mean = tubes.groupby("video_id").p_fake.mean()  # the run's aggregate (mean) over a video's tubes
    assert np.allclose(videos.set_index("video_id").p_fake.loc[mean.index], mean)
    last = pd.read_csv(face_clip_run / "metrics.csv").iloc[-1]  # the trainer's own metrics on the same split
    assert result["clip"]["clips"] == last.val_frames and result["video"]["videos"] == last.val_videos
    assert np.isclose(result["video"]["log_loss"], last.video_log_loss)
    assert "| clip |" in proc.stdout and "4 clips, 2 videos" in proc.stdout


def test_dfd_check_cuts_the_face_tubes_and_states_a_clip_without_a_face(face_clip_run, face_clip_dataset, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    videos = [_video(face_clip_dataset, "breal"), _video(face_clip_dataset, "enoface"), broken]
    proc = _cli(train.check.main, *videos, "--model", face_clip_run / "checkpoints" / "last.pt", "--json",
                "--out", tmp_path / "pages", "--device", "cpu", code=1)  # the broken file: one row, the others checked
    face, faceless, failed = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert failed["verdict"] == "FAILED" and "not a readable video" in failed["error"]
    table = _tubes(face_clip_dataset)
    ours = table[table.video_id == "breal"].sort_values("clip")
    # the same clips and faces the faces stage found, each tube scored as the model scores it from the shards
    assert face["input"] == "face-clips" and [c["start"] for c in face["clips"]] == list(ours.start)
    tubes = [t for c in face["clips"] for t in c["tubes"]]
    assert [t["track"] for t in tubes] == list(ours.track) and np.allclose(
        [t["box"] for t in tubes], ours[["x0", "y0", "x1", "y1"]].to_numpy(), atol=0.01)
    shards = _shard_scores(face_clip_run, face_clip_dataset)
    assert np.allclose([t["p_fake"] for t in tubes], shards.loc[ours.key], atol=1e-5)
    assert np.isclose(face["p_fake"], np.mean([t["p_fake"] for t in tubes]))  # the run's aggregate: mean
    assert faceless["verdict"] == "NO FACE" and faceless["p_fake"] is None and len(faceless["clips"]) == 2
    for clip in faceless["clips"]:  # a clip without a face: a row saying so, no score
        assert clip["status"] == "no_face" and clip["p_fake"] is None and clip["warning"].startswith("no face in")
    page = (tmp_path / "pages" / "breal.html").read_text()
    assert "P(fake) over time, per clip (at its first frame) and face track" in page and "Every clip" in page
    assert "clip of 4 frames from 0.00 s (done, face track 0)" in page and page.count("data:image/png") >= 1
    assert_self_contained(page)
    image = shoot(tmp_path / "pages" / "breal.html", tmp_path)  # rendered in headless Chromium
    top = image[:400, :, :3]
    badge = ((top[..., 0] > 0.6) & (top[..., 1] < 0.35)) | ((top[..., 1] > 0.55) & (top[..., 0] < 0.3))
    assert image[..., :3].std() > 0.05 and badge.sum() > 200  # the red FAKE or green REAL badge was drawn
    assert "No face was found in the 2 clips" in (tmp_path / "pages" / "enoface.html").read_text()


def test_export_keeps_the_tube_settings_and_the_package_predicts_and_checks(face_clip_run, face_clip_dataset,
                                                                            tmp_path):
    package = tmp_path / "package"
    _cli(train.export.main, "--checkpoint", face_clip_run / "checkpoints" / "last.pt", "--out", package)
    recorded = json.loads((package / "config.json").read_text())
    assert recorded["input"] == "face-clips" and recorded["clips"]["frames"] == 4
    assert recorded["faces"]["face_size"] == 64  # the faces stage's settings the tubes were cut with
    videos = [_video(face_clip_dataset, "breal"), _video(face_clip_dataset, "enoface")]
    _cli(train.predict.main, *videos, "--checkpoint", package, "--out", tmp_path / "sub.csv", "--frames-out",
         tmp_path / "tubes.csv", "--device", "cpu", "-q")
    rows = pd.read_csv(tmp_path / "tubes.csv")
    ours = _tubes(face_clip_dataset).query("video_id == 'breal'").sort_values("clip")
    scored = rows[rows.p_fake.notna()]
    assert list(scored.key) == list(ours.key) and list(scored.second) == list(ours.start)
    assert np.allclose(scored.p_fake, _shard_scores(face_clip_run, face_clip_dataset).loc[ours.key], atol=1e-5)
    faceless = rows[rows.filename == "enoface.mp4"]
    assert len(faceless) == 2 and faceless.p_fake.isna().all()
    assert faceless.note.str.startswith("not scored: no face in frame enoface_").all()
    submission = pd.read_csv(tmp_path / "sub.csv").set_index("filename").label
    assert np.isclose(submission["breal.mp4"], scored.p_fake.mean()) and submission["enoface.mp4"] == 0.5
    proc = _cli(train.check.main, videos[0], "--model", package, "--no-html", "--device", "cpu")
    assert proc.stdout.startswith("breal.mp4: REAL" if submission["breal.mp4"] < recorded["threshold"]["value"]
                                  else "breal.mp4: FAKE") and "face track 0" in proc.stdout


def test_benchmark_takes_a_face_clips_run_and_refuses_a_test_set_without_tubes(face_clip_run, face_clip_dataset,
                                                                                  tmp_path):
    data = face_clip_dataset
    proc = _cli(train.benchmark.main, "--checkpoint", f"fc={face_clip_run / 'checkpoints' / 'last.pt'}", "--test",
                f"tubes@val={data['shards']}", "--out", tmp_path / "bench", "--device", "cpu", "--workers", "0")
    cell = json.loads((tmp_path / "bench" / "benchmark.json").read_text())["detectors"][0]["tests"]["tubes"]
    assert cell["unit"] == "clip" and cell["frames"] == 4 and cell["videos"] == 2
    assert "| fc |" in proc.stdout and "tubes clip AUC" in proc.stdout
    assert "tubes clip AUC" in (tmp_path / "bench" / "benchmark.html").read_text()
    manifests = tmp_path / "manifests"
    shutil.copytree(data["manifests"], manifests)
    section = json.loads((manifests / "dataset.json").read_text())
    del section["face_clips"]  # frames and clips, the faces stage not run
    (manifests / "dataset.json").write_text(json.dumps(section))
    proc = _cli(train.benchmark.main, "--checkpoint", f"fc={face_clip_run}", "--test",
                f"frames@val={data['shards']}:{manifests}", "--out", tmp_path / "b2", "--device", "cpu", code=1)
    assert (f"fc on test set frames: {manifests / 'dataset.json'} has no face-clip shards (face tubes), which a "
            "model of --input face-clips is scored on: run `dfd faces`") in proc.output
