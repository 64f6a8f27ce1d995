"""Issue 11 item 7: one size convention, WIDTHxHEIGHT, for the pipeline's --size and the trainer's --image-size
(and recipes); both --help texts say so and an ambiguous value is refused with a message, never transposed."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

import pipeline.run
import train.run
from train.config import load_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_help_states_the_convention():
    for command in (pipeline.run.main, train.run.main):
        text = re.sub(r"\s+", " ", CliRunner().invoke(command, ["--help"]).output)
        assert "WIDTHxHEIGHT" in text and "narrower than tall is refused" in text


def test_portrait_shaped_values_are_refused(tmp_path):
    result = CliRunner().invoke(pipeline.run.main, ["--videos", str(tmp_path), "--size", "720x1280"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output
    result = CliRunner().invoke(train.run.main, ["--shards", str(tmp_path), "--manifests", str(tmp_path),
                                                 "--image-size", "720x1280", "--weights", "none"])
    assert result.exit_code != 0 and "narrower than tall" in result.output and "1280x720" in result.output


def test_recipes_follow_it():
    seed = load_recipe("seed")
    assert seed.image_size == (720, 1280)  # (height, width) inside: 1280 wide, 720 high like the frames
    text = (ROOT / "train" / "recipes" / "seed.toml").read_text()
    assert 'image_size = "1280x720"' in text and "HxW" not in text
    assert load_recipe("demo").image_size == (112, 192)
