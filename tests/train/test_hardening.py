"""Issue 28 (items 1-5, 8, 9): the new commands tried as a new user would. A run reads the same from any folder;
an output folder that cannot be written is one line before any work; export never replaces a run's config.json or
another model's package unasked; pages never collide nor replace a video; the silent or misleading answers say what
is wrong; export takes a threshold by hand; `make check` takes any file name. Real commands on real files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline.resplit
import pipeline.run
import train.benchmark
import train.check
import train.evaluate
import train.export
import train.run
from helpers.clips import make_clip, make_dfdc_tree
from helpers.commands import run_pipeline
from helpers.faces_fixtures import write_faces
from helpers.models import untrained_checkpoint
from helpers.paths import REPO
from helpers.readonly import read_only_prefix


def _invoke(command, *args: object):
    return CliRunner().invoke(command.main, [str(a) for a in args])


def _one_line_error(result, code: int, *words: str) -> str:
    """The command exited `code` with an `Error:` line holding `words`, and no traceback."""
    text = result.output
    assert result.exit_code == code, text
    assert isinstance(result.exception, SystemExit) and "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), text
    return errors[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """2 reals and 2 fakes in a DFDC part plus a loose unlabelled clip: val holds one fake only (a split file,
    --val-fraction 0), test the unlabelled clip only; and two untrained frames checkpoints (two models)."""
    root = tmp_path_factory.mktemp("small")
    videos = make_dfdc_tree(root / "videos", n_real=2, fakes_per_real=1, seconds=1.0)
    make_clip(root / "videos" / "loose.mp4", seconds=1.0, source="mandelbrot")
    (root / "val.csv").write_text("filename,label\nfake0000x0.mp4,1\n")
    run_pipeline(videos, root, "--size", "128x72", "--val-fraction", "0", "--split-file", f"val={root / 'val.csv'}")
    one = untrained_checkpoint(root / "one" / "model.pt", "frames", 64, box=(128, 72))
    two = untrained_checkpoint(root / "two" / "model.pt", "frames", 64, box=(128, 72), seed=1)
    return {"root": root, "videos": videos, "shards": root / "shards", "manifests": root / "manifests",
            "one": one, "two": two, "clip": videos / "dfdc_train_part_0" / "fake0000x0.mp4"}


def test_a_run_checks_and_exports_the_same_from_any_folder(tiny_run, tiny_dataset, tmp_path, monkeypatch):
    """Item 1: the verdict (threshold included) and the export of a run do not depend on the working folder."""
    video = next((tiny_dataset["videos"] / "dfdc_train_part_0").glob("fake*.mp4"))
    verdicts = []
    for where, model in ((tiny_run, "."), (tmp_path, tiny_run)):
        monkeypatch.chdir(where)
        result = _invoke(train.check, video, "--model", model, "--no-html", "--json")
        assert result.exit_code == 0, result.output
        verdicts.append(json.loads(result.stdout.splitlines()[-1]))
    assert verdicts[0]["threshold"] == verdicts[1]["threshold"] and verdicts[0]["verdict"] == verdicts[1]["verdict"]
    assert verdicts[0]["threshold_rule"] == "eer" and verdicts[0]["p_fake"] == verdicts[1]["p_fake"]
    result = _invoke(train.export, "--checkpoint", tiny_run, "--out", tmp_path / "package")
    assert result.exit_code == 0, result.output
    threshold = json.loads((tmp_path / "package" / "config.json").read_text())["threshold"]
    assert threshold["value"] == verdicts[0]["threshold"]


def test_an_output_behind_a_file_is_refused_before_the_work(small, tmp_path):
    """Item 2: every command that writes says, before any work, that it cannot write its output folder."""
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be\n")
    out = blocker / "out"
    one, shards, manifests = small["one"], small["shards"], small["manifests"]
    runs = {
        "check": (train.check, small["clip"], "--model", one, "--out", out),
        "export": (train.export, "--checkpoint", one, "--out", out, "--shards", shards, "--manifests", manifests),
        "benchmark": (train.benchmark, "--checkpoint", one, "--test", f"t@train={shards}", "--out", out,
                      "--workers", "0"),
        "evaluate": (train.evaluate, "--checkpoint", one, "--shards", shards, "--split", "train", "--out", out),
        "shards": (pipeline.run, "--videos", small["videos"], "--shards", out, "--manifests", tmp_path / "m"),
        "train": (train.run, "--shards", shards, "--manifests", manifests, "--out", out, "--dev-run"),
        "train --input audio": (train.run, "--input", "audio", "--shards", shards, "--out", out),
    }
    for name, (command, *args) in runs.items():
        line = _one_line_error(_invoke(command, *args), 2, str(out), "is a file, not a folder")
        assert str(blocker) in line, name
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", ["check", "shards"])
def test_a_read_only_output_folder_is_one_line_before_the_work(small, tmp_path, command):
    """Item 2 with a real read-only folder (EROFS for root, EACCES for a user): exit 2, the folder named, nothing
    scored or decoded first (check used to fail with a traceback after all the work)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = read_only_prefix(locked)
    if prefix is None:
        pytest.skip("no way to make a read-only folder here (root without a mount namespace)")
    out = locked / "out"
    args = {"check": ["train.check", small["clip"], "--model", small["one"], "--out", out],
            "shards": ["pipeline.run", "--videos", small["videos"], "--shards", out, "--manifests", locked]}[command]
    proc = subprocess.run([*prefix, sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"Error: --{'shards' if command == 'shards' else 'out'} {out}: cannot write there" in proc.stderr
    assert "threshold" not in proc.stderr and "videos:" not in proc.stderr
    assert not out.exists()


def test_export_never_replaces_a_run_config_nor_another_models_package_unasked(small, tiny_run, tmp_path):
    """Item 3: --out a run folder is refused (its config.json kept); another model's package only with
    --replace; the same model's package is exported again."""
    config = (tiny_run / "config.json").read_bytes()
    _one_line_error(_invoke(train.export, "--checkpoint", tiny_run, "--out", tiny_run), 2, "is a run folder")
    assert (tiny_run / "config.json").read_bytes() == config and not (tiny_run / "model.safetensors").exists()
    package = tmp_path / "package"
    data = ("--shards", small["shards"], "--manifests", small["manifests"], "--threshold", "0.5")
    assert _invoke(train.export, "--checkpoint", small["one"], "--out", package, *data).exit_code == 0
    first = (package / "model.safetensors").read_bytes()
    _one_line_error(_invoke(train.export, "--checkpoint", small["two"], "--out", package, *data), 2,
                    "already holds another model's package", "--replace")
    assert (package / "model.safetensors").read_bytes() == first
    assert _invoke(train.export, "--checkpoint", small["one"], "--out", package, *data).exit_code == 0
    assert _invoke(train.export, "--checkpoint", small["two"], "--out", package, "--replace", *data).exit_code == 0
    assert (package / "model.safetensors").read_bytes() != first
    readme = tmp_path / "repo"
    readme.mkdir()
    (readme / "README.md").write_text("someone's readme\n")
    _one_line_error(_invoke(train.export, "--checkpoint", small["one"], "--out", readme, *data), 2,
                    "already holds README.md")
    assert (readme / "README.md").read_text() == "someone's readme\n"


def test_pages_never_collide_nor_replace_a_video(small, tmp_path):
    """Item 4: face.mp4 and face.mkv get a page each; a video named clip.html checked into its own folder stays."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(small["clip"], folder / "face.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(folder / "face.mp4"), "-c", "copy", str(folder / "face.mkv")],
                   check=True)
    shutil.copy(small["clip"], folder / "clip.html")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = _invoke(train.check, *(folder / n for n in before), "--model", small["one"], "--out", folder)
    assert result.exit_code == 0, result.output
    pages = sorted(p.name for p in folder.iterdir() if p.name not in before)
    assert pages == ["clip.html.html", "face.mkv.html", "face.mp4.html"]
    assert {n: (folder / n).read_bytes() for n in before} == before
    _one_line_error(_invoke(train.check, folder / "face.mp4", "--model", small["one"], "--html", folder / "face.mp4"),
                    2, "is the video itself")


def test_silent_and_misleading_answers_say_what_is_wrong(small, tmp_path):
    """Item 5: a folder without video, a face shards folder given to a frames model, a split of unlabelled videos,
    a threshold written as a string: each one line naming what is wrong."""
    (tmp_path / "empty").mkdir()
    _one_line_error(_invoke(train.check, tmp_path / "empty", "--model", small["one"]), 2, "no video in",
                    str(tmp_path / "empty"))
    copy = tmp_path / "copy"
    shutil.copytree(small["shards"], copy / "shards")
    shutil.copytree(small["manifests"], copy / "manifests")
    write_faces(copy / "shards", copy / "manifests")
    line = _one_line_error(_invoke(train.evaluate, "--checkpoint", small["one"], "--shards", copy / "shards" / "faces",
                                   "--manifests", copy / "manifests", "--split", "train", "--out", tmp_path / "e"),
                           1, "holds the face shards", f"--shards {copy / 'shards'}")
    assert "truncated" not in line
    _one_line_error(_invoke(train.evaluate, "--checkpoint", small["one"], "--shards", small["shards"], "--split",
                            "test", "--out", tmp_path / "e", "--workers", "1"), 1, "unlabelled videos only (1)",
                    "dfd predict")
    package = tmp_path / "package"
    assert _invoke(train.export, "--checkpoint", small["one"], "--out", package, "--shards", small["shards"],
                   "--manifests", small["manifests"], "--threshold", "0.3").exit_code == 0
    config = json.loads((package / "config.json").read_text())
    config["threshold"]["value"] = "0.3"
    (package / "config.json").write_text(json.dumps(config))
    _one_line_error(_invoke(train.check, small["clip"], "--model", package, "--no-html"), 1,
                    str(package / "config.json"), "threshold value '0.3' is not a number")


def test_unlabelled_videos_of_a_split_are_left_out_and_counted(small, tmp_path, caplog):
    """Item 5: a split of labelled and unlabelled videos is scored on the labelled ones, saying how many were left
    out (it ended in a loader worker's traceback); moved there by resplit, without decoding again."""
    root = tmp_path / "data"
    shutil.copytree(small["shards"], root / "shards")
    shutil.copytree(small["manifests"], root / "manifests")
    (root / "test.csv").write_text("filename,label\nreal0001.mp4,0\nfake0001x0.mp4,1\n")
    result = _invoke(pipeline.resplit, "--shards", root / "shards", "--manifests", root / "manifests",
                     "--val-fraction", "0", "--split-file", f"val={small['root'] / 'val.csv'}",
                     "--split-file", f"test={root / 'test.csv'}")
    assert result.exit_code == 0, result.output
    result = _invoke(train.benchmark, "--checkpoint", small["one"], "--test", f"t@test={root / 'shards'}",
                     "--out", tmp_path / "bench", "--workers", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "split test: 1 unlabelled videos left out" in caplog.text
    cell = json.loads((tmp_path / "bench" / "benchmark.json").read_text())["detectors"][0]["tests"]["t"]
    assert (cell["videos"], cell["real_videos"], cell["fake_videos"]) == (2, 1, 1), cell


def test_export_takes_a_threshold_by_hand_when_val_holds_one_class(small, tmp_path):
    """Item 8: with one class in val the error names --threshold; with it, the card says chosen by hand and
    `dfd check` reports against it."""
    data = ("--shards", small["shards"], "--manifests", small["manifests"])
    _one_line_error(_invoke(train.export, "--checkpoint", small["one"], "--out", tmp_path / "p", *data), 1,
                    "cannot choose a threshold", "0 real and 1 fake", "--threshold P")
    assert not (tmp_path / "p").exists()
    result = _invoke(train.export, "--checkpoint", small["one"], "--out", tmp_path / "p", *data, "--threshold", "0.42")
    assert result.exit_code == 0 and "chosen by hand" in result.output, result.output
    threshold = json.loads((tmp_path / "p" / "config.json").read_text())["threshold"]
    assert threshold["rule"] == "manual" and threshold["value"] == 0.42 and threshold["fpr"] is None
    card = (tmp_path / "p" / "README.md").read_text()
    assert "**0.4200** is called fake: chosen by hand (dfd export --threshold 0.42)" in card and "n/a" in card
    result = _invoke(train.check, small["clip"], "--model", tmp_path / "p", "--no-html")
    assert result.exit_code == 0 and "(threshold 0.420)" in result.stdout, result.output
    assert _invoke(train.export, "--checkpoint", small["one"], "--out", tmp_path / "q", *data, "--threshold", "0.4",
                   "--threshold-at-fpr", "0.1").exit_code == 2


@pytest.mark.skipif(not shutil.which("make"), reason="no make here")
def test_make_check_takes_a_name_with_spaces_and_a_dollar(small, tmp_path):
    """Item 9: VIDEO, MODEL and CHECK_OUT are passed as they are (the Makefile left them unquoted)."""
    folder = tmp_path / "a b$c"
    folder.mkdir()
    video = folder / "my clip $HOME 'x'.mp4"
    shutil.copy(small["clip"], video)
    package = tmp_path / "pkg $1"
    assert _invoke(train.export, "--checkpoint", small["one"], "--out", package, "--shards", small["shards"],
                   "--manifests", small["manifests"], "--threshold", "0.5").exit_code == 0
    out = tmp_path / "out $x"
    venv = Path(sys.prefix)
    proc = subprocess.run(["make", "--no-print-directory", "-o", str(venv / ".installed"), "check", f"VENV={venv}",
                           f"VIDEO={video}", f"MODEL={package}", f"CHECK_OUT={out}"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "MAKEFLAGS": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{video.name}: " in proc.stdout and (out / "my clip $HOME 'x'.html").is_file()
