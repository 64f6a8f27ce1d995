"""Issue 26 item 4: clip models scored -- a clips run's checkpoint loads (train.checkpoint), `dfd evaluate` on clip
shards (clip- and video-level metrics), `dfd check VIDEO` clip by clip. One tiny real run: lavfi videos -> `dfd
shards --clip-frames 4` -> `dfd train --input clips --recipe demo_clips` dev run (tests/conftest.py clip_run)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import torch

from helpers.commands import run_module
from pipeline.dataset import Dataset
from train.checkpoint import load_checkpoint
from train.clip_model import TemporalModel
from train.data.clip_streams import ClipShards, ClipValStream
from train.model import Device
from train.score.on_batches import predict


def test_a_clips_run_checkpoint_loads_and_gives_its_recorded_val_loss(clip_run, clip_dataset):
    model, config = load_checkpoint(clip_run / "checkpoints" / "last.pt")
    assert isinstance(model, TemporalModel) and not model.training and config.input == "clips"
    shards = ClipShards(Dataset.open(clip_dataset["shards"], clip_dataset["manifests"]))
    rows = predict(model, ClipValStream(shards.urls("val"), config.image_size, 4), Device(torch.device("cpu")))
    assert len(rows) == shards.n_clips("val") and rows.p_fake.between(0, 1).all()
    metrics = pd.read_csv(clip_run / "metrics.csv")
    assert np.isclose(rows.loss.mean(), metrics.val_loss.iloc[-1], rtol=1e-4)


def test_dfd_evaluate_scores_clip_shards_clip_and_video_level(clip_run, clip_dataset, tmp_path):
    out = tmp_path / "eval"
    proc = run_module("train.evaluate", "--checkpoint", clip_run / "checkpoints" / "last.pt", "--shards",
                      clip_dataset["shards"], "--split", "val", "--out", out, "--device", "cpu", "--workers", "0")
    result = json.loads((out / "metrics.json").read_text())
    clips = pd.read_parquet(out / "predictions.parquet")
    videos = pd.read_parquet(out / "video_predictions.parquet")
    table = pd.read_parquet(clip_dataset["manifests"] / "clips.parquet")
    val = table[(table.split == "val") & (table.status == "done")]
    assert result["unit"] == "clip" and "frame" not in result and result["clip"]["clips"] == len(val)
    assert sorted(clips.key) == sorted(val.key) and set(videos.video_id) == set(val.video_id)
    # a video's P(fake) is the run's aggregate of its clips; the metrics are the trainer's own on the same split
    mean = clips.groupby("video_id").p_fake.mean()
    assert result["video"]["aggregate"] == "mean"
    assert np.allclose(videos.set_index("video_id").p_fake.loc[mean.index], mean)
    last = pd.read_csv(clip_run / "metrics.csv").iloc[-1]
    assert result["clip"]["clips"] == last.val_frames and result["video"]["videos"] == last.val_videos
    assert np.isclose(result["clip"]["accuracy"], last.accuracy) and np.isclose(result["video"]["log_loss"],
                                                                                 last.video_log_loss)
    assert "| clip |" in proc.stdout and f"{len(val)} clips, {len(mean)} videos" in proc.stdout


def test_dfd_check_scores_a_video_clip_by_clip(clip_run, clip_dataset, tmp_path):
    table = pd.read_parquet(clip_dataset["manifests"] / "clips.parquet")
    done = table[table.status == "done"]
    video_id = done.video_id.iloc[0]
    path = next(p for p in clip_dataset["videos"].rglob("*.mp4") if p.stem == video_id.rsplit("/", 1)[-1])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    proc = run_module("train.check", path, broken, "--model", clip_run / "checkpoints" / "last.pt", "--json",
                      "--out", tmp_path / "pages", "--device", "cpu", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # the broken file: one row, the others checked
    row, failed = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert failed["verdict"] == "FAILED" and "not a readable video" in failed["error"]
    clips = row["clips"]
    ours = table[table.video_id == video_id].sort_values("clip")
    whole = ours[ours.n_frames == 4]
    # the same clips the pipeline cut (one decode, its clip branch), at the same seconds
    assert row["input"] == "clips" and [c["start"] for c in clips] == list(whole.start)
    assert [c["status"] for c in clips] == list(whole.status)
    assert np.isclose(row["p_fake"], np.mean([c["p_fake"] for c in clips]))  # the run's aggregate: mean
    # each clip's P(fake) is what the model gives that clip from its shard
    _agrees_with_shards([c["p_fake"] for c in clips], whole, clip_run, clip_dataset)
    page = (tmp_path / "pages" / f"{path.stem}.html").read_text()
    assert "P(fake) over time, per clip" in page and "Every clip" in page and page.count("data:image/png") >= 1
    assert f"clip of 4 frames from {clips[0]['start']:.2f} s" in page


def _agrees_with_shards(p_fake: list[float], whole: pd.DataFrame, clip_run, clip_dataset) -> None:
    """Scores of a video's whole clips (rows of clips.parquet) equal the run's model on those clips from the shards
    (the "done" ones: the shards' stream skips the others)."""
    model, config = load_checkpoint(clip_run / "checkpoints" / "last.pt")
    shards = ClipShards(Dataset.open(clip_dataset["shards"], clip_dataset["manifests"]))
    rows = predict(model, ClipValStream(shards.urls(whole.split.iloc[0]), config.image_size, 4),
                   Device(torch.device("cpu")))
    from_shards = rows.set_index("key").p_fake
    compared = [(p, from_shards[key]) for p, key in zip(p_fake, whole.key) if key in from_shards.index]
    assert len(compared) == (whole.status == "done").sum() > 0 and np.allclose(*zip(*compared), atol=1e-5)


def test_export_keeps_the_clip_spec_and_predict_scores_videos_clip_by_clip(clip_run, clip_dataset, tmp_path):
    package = tmp_path / "package"
    run_module("train.export", "--checkpoint", clip_run / "checkpoints" / "last.pt", "--out", package)
    recorded = json.loads((package / "config.json").read_text())
    assert recorded["input"] == "clips" and recorded["clips"]["frames"] == 4
    table = pd.read_parquet(clip_dataset["manifests"] / "clips.parquet")
    video_id = table[table.status == "done"].video_id.iloc[-1]
    path = next(p for p in clip_dataset["videos"].rglob("*.mp4") if p.stem == video_id.rsplit("/", 1)[-1])
    run_module("train.predict", path, "--checkpoint", package, "--out", tmp_path / "sub.csv", "--frames-out",
               tmp_path / "clips.csv", "--device", "cpu", "-q")
    rows = pd.read_csv(tmp_path / "clips.csv")
    whole = table[(table.video_id == video_id) & (table.n_frames == 4)].sort_values("clip")
    assert list(rows.second) == list(whole.start) and list(rows["index"]) == list(range(len(whole)))
    _agrees_with_shards(list(rows.p_fake), whole, clip_run, clip_dataset)
    submission = pd.read_csv(tmp_path / "sub.csv")
    assert np.isclose(submission.label.iloc[0], rows.p_fake.mean())


def test_benchmark_takes_a_clip_run_and_refuses_a_frame_only_test_set(clip_run, clip_dataset, tmp_path):
    import train.benchmark
    from click.testing import CliRunner

    def bench(*args: str):  # in this process: a fresh interpreter would cost more than the scoring
        return CliRunner().invoke(train.benchmark.main, [*map(str, args), "--device", "cpu", "--workers", "0"])

    proc = bench("--checkpoint", f"clips={clip_run / 'checkpoints' / 'last.pt'}", "--test",
                 f"demo@val={clip_dataset['shards']}", "--out", tmp_path / "bench")
    assert proc.exit_code == 0, proc.output
    cell = json.loads((tmp_path / "bench" / "benchmark.json").read_text())["detectors"][0]["tests"]["demo"]
    metrics = json.loads((tmp_path / "bench" / "cells" / "clips" / "demo" / "metrics.json").read_text())
    assert cell["unit"] == "clip" and cell["frames"] == metrics["clip"]["clips"] > 0  # the clips in the frame slot
    assert cell["frame_auc"] == metrics["clip"]["roc_auc"] and cell["videos"] == metrics["video"]["videos"]
    assert "demo clip AUC" in proc.stdout
    manifests = tmp_path / "manifests"
    shutil.copytree(clip_dataset["manifests"], manifests)
    data = json.loads((manifests / "dataset.json").read_text())
    del data["clips"], data["config"]["clips"]  # a dataset sharded without --clip-frames
    (manifests / "dataset.json").write_text(json.dumps(data))
    proc = bench("--checkpoint", f"clips={clip_run}", "--test", f"frames@val={clip_dataset['shards']}:{manifests}",
                 "--out", tmp_path / "b2")
    assert proc.exit_code == 1 and isinstance(proc.exception, SystemExit)  # one line, no traceback
    assert (f"clips on test set frames: {manifests / 'dataset.json'} has no clip shards, and a model of --input "
            "clips is scored on them: make the shards with `dfd shards --clip-frames T`") in proc.output
