"""Issue 11 item 11: the README and docs/manifest.md say what the code does (recipe overrides, the run folder's
files, the trainer never listing the shards folder)."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from pathlib import Path

import pytest

import train.run
from pipeline.dataset import Dataset
from train.config import Recipe

ROOT = Path(__file__).resolve().parents[2]
README = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())


def test_the_trainer_never_lists_the_shards_folder(tiny_dataset, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the shards folder was listed")
    for owner, name in ((pathlib.Path, "glob"), (pathlib.Path, "iterdir"), (pathlib.Path, "rglob"),
                        (os, "listdir"), (os, "scandir")):
        monkeypatch.setattr(owner, name, refuse)
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    assert dataset.urls("train")
    docs = re.sub(r"\s+", " ", (ROOT / "docs" / "manifest.md").read_text())
    assert "never lists the shards folder" in docs


def test_readme_names_exactly_the_options_that_override_a_recipe():
    options = {p.name.rstrip("_").replace("_", "-") for p in train.run.main.params}  # **options included
    overriding = {f.name.replace("_", "-") for f in dataclasses.fields(Recipe)} & options
    assert overriding  # image-size, batch-size, ...
    sentence = README[README.index("Of the recipe's keys"):].split("override the file")[0]
    assert {o for o in re.findall(r"`--([a-z-]+)`", sentence)} == overriding, sentence
    assert "any option on the command line overrides" not in README


def test_readme_lists_every_file_the_code_writes_to_a_run_folder():
    written = set()
    for name in ("paths.py", "fit/run_folder.py", "fit/loop.py", "report/explanation.py", "report/figures.py", "report/page.py",
                 "run.py"):
        written |= set(re.findall(r'"([a-z_]+\.(?:png|json|parquet|csv|html))"', (ROOT / "train" / name).read_text()))
    written -= {"dataset.json", "frames.parquet", "videos.parquet", "faces.parquet"}  # the manifests it reads
    section = README[README.index("A run folder holds"):][:900]
    assert {n for n in written if f"`{n}`" not in section} == set()


@pytest.mark.slow
def test_readme_lists_every_file_of_a_real_run(tiny_run):
    section = README[README.index("A run folder holds"):][:900]
    for path in tiny_run.rglob("*"):
        if path.is_file() and path.parent.name != "checkpoints":
            assert f"`{path.name}`" in section, path.name
