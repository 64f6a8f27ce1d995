"""Issue 28 item 7: `dfd check --audio-model` does not judge damaged sound as speech: the verdict says why and stands
on the picture alone, while the same clip with its sound intact is judged on both. Real clips (helpers.sound
.damaged_clip: audio packets overwritten with noise, picture untouched), a real image network and a real audio
network (untrained: what they learnt does not matter here)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.commands import run_module
from helpers.models import untrained_checkpoint
from helpers.sound import damaged_clip
from train.audio.classifier import AudioModel, make_net, save
from train.audio.features import AudioFeatures


def test_check_does_not_judge_damaged_sound(tmp_path):
    intact, damaged = damaged_clip(tmp_path / "clips")
    spec = AudioFeatures()
    torch.manual_seed(0)
    n = len(spec.names)
    save(AudioModel(make_net(n, 0), np.zeros(n), np.ones(n), spec, 0, list(range(n))), tmp_path / "audio.pt")
    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    proc = run_module("train.check", intact, damaged, "--model", model, "--audio-model", tmp_path / "audio.pt",
                      "--json", "--no-html", "--device", "cpu")
    rows = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    good, bad = rows[intact.name], rows[damaged.name]
    assert good["sound"]["p_fake"] is not None and good["sound"]["windows"]
    assert bad["sound"]["p_fake"] is None and bad["sound"]["windows"] == []
    assert "damaged: decodes to" in bad["sound"]["note"] and bad["sound"]["note"].endswith("picture alone")
    assert bad["p_fake"] == pytest.approx(bad["p_picture"])
