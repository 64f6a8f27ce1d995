"""Temporal localisation end to end: `dfd evaluate` on a segment-labelled dataset reports AP and AR, and a model
that sees the fake seconds localises them far better than chance.

The data: a tiny LAV-DF tree made here. Each clip is 6 s of lavfi grey with ffmpeg's noise filter over it
(changing every frame, its own seed per clip; 128x72, 10 fps, H.264); a fake's picture carries a filled white box
over its middle during its fake periods only (ffmpeg drawbox enabled for gte(t, start) * lt(t, end)), its
metadata.json record giving those periods (modify_video true); the real clips have no box. Periods start and end
a quarter second off the 2 fps sampling grid, so no sampled frame sits on a boundary. `dfd shards` (real ffmpeg)
samples 2 frames a second at 64x36 and labels each frame from the periods; a real resnet-18 (random init, 32 px
input) is trained in the test for three epochs (18 steps) on the train split's frames with their own labels, saved
as a checkpoint, and evaluated by the real `dfd evaluate` on the dev (val) split. The sound: a tone (its own pitch
per clip) where the clip is real, white noise during a fake's periods (modify_audio true as well); the real sound
trainer (`dfd train --input audio`) learns it and `--audio-checkpoint` scores it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.commands import run_module
from helpers.models import untrained_checkpoint
from pipeline.dataset import Dataset
from train.data.streams import ValStream
from train.model import Device, build_model
from train.report.split_localisation import PROPOSALS
from train.score.localisation import as_segments, iou, localisation_metrics, proposals

SECONDS = 6.0
# (file, split, fake periods); an empty list: a real clip
CLIPS = [("train/a.mp4", "train", [[1.25, 3.25]]), ("train/b.mp4", "train", [[0.25, 1.75], [3.75, 5.25]]),
         ("train/c.mp4", "train", [[2.75, 5.75]]), ("train/d.mp4", "train", []), ("train/e.mp4", "train", []),
         ("train/f.mp4", "train", [[0.75, 2.25]]),
         ("dev/g.mp4", "dev", [[1.75, 4.25]]), ("dev/h.mp4", "dev", [[0.25, 1.25], [3.25, 4.75]]),
         ("dev/i.mp4", "dev", [[3.75, 5.75]]), ("dev/j.mp4", "dev", []), ("dev/k.mp4", "dev", [])]


def _clip(path, periods, seed: int) -> None:
    enable = "+".join(f"gte(t,{a})*lt(t,{b})" for a, b in periods) or "0"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x505050:s=128x72:r=10:d={SECONDS},noise=alls=40:allf=t+u:all_seed={seed},"
                    f"drawbox=x=32:y=18:w=64:h=36:color=white:t=fill:enable='{enable}'",
                    "-f", "lavfi", "-i", f"aevalsrc='if({enable},0.3*(2*random(0)-1),0.3*sin(2*PI*(300+20*{seed})*t))'"
                    f":s=16000:d={SECONDS}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   check=True)


@pytest.fixture(scope="module")
def lavdf(tmp_path_factory):
    root = tmp_path_factory.mktemp("lavdf")
    tree = root / "LAV-DF"
    records = []
    for seed, (file, split, periods) in enumerate(CLIPS):
        _clip(tree / file, periods, seed)
        records.append({"file": file, "split": split, "n_fakes": len(periods), "fake_periods": periods,
                        "duration": SECONDS, "original": None, "modify_video": bool(periods),
                        "modify_audio": bool(periods)})
    (tree / "metadata.json").write_text(json.dumps(records))
    run_module("dfd", "shards", "--videos", tree, "--shards", root / "shards", "--manifests", root / "manifests",
               "--workers", "1", "--size", "64x36", "--fps", "2")
    return root


@pytest.fixture(scope="module")
def trained(lavdf):
    """A random resnet-18 trained for a few epochs on the train frames with their own (periods') labels."""
    path = lavdf / "run" / "checkpoints" / "best.pt"
    untrained_checkpoint(path, input="frames", image_size=32, fps=2.0, box=(64, 36))
    data = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(data["config"]["arch"])
    model.load_state_dict(data["model"])
    dataset = Dataset.open(str(lavdf / "shards"), lavdf / "manifests", "frames", need=())
    labels = dataset.table("frames", ["key", "picture_label"]).set_index("key")["picture_label"].eq("fake")
    dev = Device("cpu")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(3):
        for images, _, keys, _ in ValStream(dataset.urls("train"), (32, 32), 12):
            loss = torch.nn.functional.cross_entropy(model(dev.inputs(images)),
                                                     torch.tensor(labels.loc[list(keys)].to_numpy(), dtype=torch.long))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    torch.save({**data, "model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def audio_run(lavdf):
    """The real sound trainer on the train split's sound (its windows labelled by the sound's periods)."""
    run_module("dfd", "train", "--input", "audio", "--shards", lavdf / "shards", "--manifests", lavdf / "manifests",
               "--out", lavdf / "audio-run")
    return lavdf / "audio-run"


@pytest.mark.slow  # shards, two short trainings and the evaluate command: ~90 s on a loaded 2-core box
def test_evaluate_reports_localisation_and_a_model_that_sees_the_cue_beats_chance(lavdf, trained, audio_run,
                                                                                    tmp_path):
    out = tmp_path / "eval"
    proc = run_module("dfd", "evaluate", "--checkpoint", trained, "--shards", lavdf / "shards", "--manifests",
                      lavdf / "manifests", "--split", "val", "--out", out, "--device", "cpu", "--workers", "0",
                      "--audio-checkpoint", audio_run)
    assert "| localisation | fake videos | segments | AP@0.5 |" in proc.stdout and "| sound | 3 | 4 |" in proc.stdout
    assert "| picture + sound | 3 | 4 |" in proc.stdout
    sound = json.loads((out / "metrics.json").read_text())["localisation"]["sound"]
    assert sound["segments"] == 4 and all(0 <= v <= 1 for v in [*sound["ap"].values(), *sound["ar"].values()])
    # every video's sound proposals, inside the video
    found = json.loads((out / PROPOSALS).read_text())["sound"]
    assert set(found) == {f"lavdf-dev-{n}" for n in "ghijk"}
    assert all(0 <= s < e <= SECONDS for rows in found.values() for _, s, e in rows)
    # the sound alone (`dfd evaluate --checkpoint AUDIO_RUN`): the same windows, the same sound row
    alone = run_module("dfd", "evaluate", "--checkpoint", audio_run, "--shards", lavdf / "shards", "--manifests",
                       lavdf / "manifests", "--split", "val", "--out", tmp_path / "sound")
    assert "| sound | 3 | 4 |" in alone.stdout
    assert json.loads((tmp_path / "sound" / "metrics.json").read_text())["localisation"]["sound"] == sound
    result = json.loads((out / "metrics.json").read_text())["localisation"]["picture"]
    assert (result["videos"], result["with_segments"], result["segments"]) == (5, 3, 4)
    assert set(result["ap"]) == {"0.5", "0.75", "0.9", "0.95"} and set(result["ar"]) == {"100", "50", "30", "20",
                                                                                            "10", "5"}
    assert "AR@50" in (out / "metrics.md").read_text()
    assert set(json.loads((out / PROPOSALS).read_text())["picture"]) == {f"lavdf-dev-{n}" for n in "ghijk"}
    # chance: the same frames' scores shuffled over the split, the same proposals and periods
    frames = pd.read_parquet(out / "predictions.parquet")
    seconds = pd.read_parquet(lavdf / "manifests" / "frames.parquet").set_index("key")["second"]
    frames = frames.assign(time=frames["key"].map(seconds))
    periods = {f"lavdf-{f[:-4].replace('/', '-')}": p for f, _, p in CLIPS}
    rng = np.random.default_rng(0)
    chance = []
    for _ in range(20):
        shuffled = frames.assign(p_fake=rng.permutation(frames["p_fake"].to_numpy()))
        chance.append(localisation_metrics([(proposals(g["time"], g["p_fake"], end=SECONDS), as_segments(periods[v]))
                                            for v, g in shuffled.groupby("video_id")])["ap"]["0.5"])
    print("AP@0.5", result["ap"]["0.5"], "AR@5", result["ar"]["5"], "chance AP@0.5", np.mean(chance))
    assert result["ap"]["0.5"] >= 0.8 and result["ap"]["0.5"] > np.mean(chance) + 0.5
    assert result["ar"]["5"] > 0.8


@pytest.mark.slow  # the shards and training of the test above (shared), then one check
def test_check_marks_the_predicted_segments_on_its_page_and_in_json(lavdf, trained, tmp_path):
    video = lavdf / "LAV-DF" / "dev" / "h.mp4"  # fake periods [0.25, 1.25] and [3.25, 4.75]
    proc = run_module("dfd", "check", video, "--model", trained, "--json", "--out", tmp_path, "--device", "cpu")
    got = json.loads(proc.stdout.splitlines()[-1])
    segments = as_segments([[s["start"], s["end"]] for s in got["segments"]])
    assert all(0 <= s["score"] <= 1 for s in got["segments"])
    truth = as_segments([[0.25, 1.25], [3.25, 4.75]])
    assert len(segments) == 2 and iou(segments, truth).max(axis=0).min() > 0.5, got["segments"]
    page = Path(got["page"]).read_text()
    assert 'id="segments"' in page and f"{segments[1][0]:.2f}-{segments[1][1]:.2f} s" in page


def test_a_dataset_without_periods_is_evaluated_as_before(tiny_dataset, tmp_path):
    from train.report.evaluation import evaluate

    checkpoint = untrained_checkpoint(tmp_path / "c.pt", input="frames", image_size=32, box=(128, 72))
    result = evaluate([checkpoint], str(tiny_dataset["shards"]), tiny_dataset["manifests"], out=tmp_path / "e",
                      device="cpu", workers=0)
    assert "localisation" not in result and not (tmp_path / "e" / PROPOSALS).exists()
    assert "localisation" not in (tmp_path / "e" / "metrics.md").read_text()
