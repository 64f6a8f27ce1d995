"""Issue 26 item 3: `dfd train --input clips` -- tiny lavfi videos -> `dfd shards --clip-frames 4` -> clip batches
(N, T, 3, H, W) -> the staged recipe on a clip model (`--recipe demo_clips`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from helpers.commands import run_pipeline
from pipeline.dataset import Dataset
from train.config import Augment
from train.data.clip_streams import ClipShards, ClipTrainStream, ClipValStream
from train.run import main
EVERY = Augment(**{name: 1.0 for name in Augment.__dataclass_fields__})


def test_clip_streams_give_batches_of_clips_with_one_augmentation_per_clip(clip_dataset):
    shards = ClipShards(Dataset.open(clip_dataset["shards"], clip_dataset["manifests"]))
    table = pd.read_parquet(clip_dataset["manifests"] / "clips.parquet")
    done = table.status == "done"
    assert shards.frames == 4 and shards.n_clips("train") == int(((table.split == "train") & done).sum())
    batches = list(ClipTrainStream(shards, (32, 32), EVERY, 4, 3, "mix", 8, seed=0))
    assert len(batches) == 3
    repeated = {k for k, crcs in zip(table.key, table.crc32) if crcs[0] == crcs[1]}  # lavfi repeats some frames
    seen_repeat = 0
    for clips, labels, keys, videos in batches:
        assert clips.shape == (4, 4, 3, 32, 32) and clips.dtype == torch.uint8 and set(labels.tolist()) <= {0, 1}
        assert all(k.startswith(v) for k, v in zip(keys, videos))
        for clip, key in zip(clips, keys):
            if key in repeated:  # two equal frames stay equal after the clip's one draw of every augmentation
                assert torch.equal(clip[0], clip[1])
                seen_repeat += 1
    assert seen_repeat, "no clip with a repeated frame was drawn: the check above did not run"
    val = list(ClipValStream(shards.urls("val"), (32, 32), 3))
    val_keys = [k for _, _, keys, _ in val for k in keys]
    assert sorted(val_keys) == sorted(table.key[(table.split == "val") & (table.status == "done")])
    assert all(b[0].shape[1:] == (4, 3, 32, 32) for b in val)


def _train(dataset: dict, out: Path, *extra: str):
    """`dfd train` in this process (click's runner: the command's own exit code and output)."""
    argv = ["--shards", str(dataset["shards"]), "--manifests", str(dataset["manifests"]), "--out", str(out),
            "--recipe", "demo_clips", "--dev-run", "--weights", "none", "--image-size", "32", "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--no-explain", *extra]
    return CliRunner().invoke(main, argv)


@pytest.mark.slow
def test_dfd_train_input_clips_runs_the_demo_clips_recipe(clip_dataset, tmp_path):
    out = tmp_path / "run"
    result = _train(clip_dataset, out, "--input", "clips", "--arch", "temporal:test_resnet")
    assert result.exit_code == 0, result.output
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    config = json.loads((out / "config.json").read_text())
    assert (config["input"], config["arch"]) == ("clips", "temporal:test_resnet")
    assert any(k.startswith("head.temporal.") for k in state["model"])
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["stage"]) == [1, 2] and np.isfinite(metrics["val_loss"]).all()


def test_clip_input_refusals_are_one_line(clip_dataset, tmp_path):
    result = _train(clip_dataset, tmp_path / "a", "--input", "clips", "--arch", "resnet18")
    assert result.exit_code != 0 and "--input clips needs a clip model" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    frames_only = clip_dataset["root"] / "frames_only"
    run_pipeline(clip_dataset["videos"], frames_only, "--workers", "1")
    result = _train({"shards": frames_only / "shards", "manifests": frames_only / "manifests"}, tmp_path / "b",
                    "--input", "clips", "--arch", "temporal:test_resnet")
    assert result.exit_code == 1 and "has no clips" in result.output and len(result.output.strip().splitlines()) == 1
