"""Bad input: every broken video becomes a failed row with a one-line reason; bad arguments exit 2 and write nothing."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers.clips import make_clip
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import check_manifest_agrees, read_manifest
from helpers.paths import SHARED_DATA

DFDC_CLIP = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0" / "lynaeydofd.mp4"

# video id -> words the one-line reason must contain (any of them, case-insensitive)
BAD = {
    "tailcut": ["moov atom not found"],  # a real clip with its tail (and the moov atom there) cut off
    "faststartcut": ["truncated", "partial file"],  # moov first (+faststart), the media data cut in the middle
    "zerobytes": ["0 bytes", "empty"],
    "textfile": ["ffmpeg", "invalid data", "moov"],
    "audioonly": ["no video stream"],
    "missingfile": ["missing"],
    "weirdlabel": ["unknown label", "MAYBE"],
}


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory, ffmpeg):
    work = tmp_path_factory.mktemp("bad")
    root = work / "videos"
    part = root / "dfdc_train_part_3"
    meta = {}
    for i in range(3):  # good videos: a real and its fake, three times
        make_clip(part / f"good{i}.mp4", size=(96, 64), seconds=2.0, source=["testsrc2", "mandelbrot", "testsrc"][i])
        make_clip(part / f"good{i}f.mp4", size=(96, 64), seconds=2.0, box=True)
        meta[f"good{i}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        meta[f"good{i}f.mp4"] = {"label": "FAKE", "split": "train", "original": f"good{i}.mp4"}
    if DFDC_CLIP.is_file():
        data = DFDC_CLIP.read_bytes()
    else:  # pragma: no cover - without the shared data, a generated clip (also moov at the end)
        data = make_clip(work / "src.mp4", size=(160, 90), seconds=3.0).read_bytes()
    (part / "tailcut.mp4").write_bytes(data[: len(data) * 6 // 10])
    fast = make_clip(work / "fast.mp4", size=(160, 90), seconds=4.0, extra=["-movflags", "+faststart"])
    data = fast.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[:4096]  # moov first
    (part / "faststartcut.mp4").write_bytes(data[: len(data) * 6 // 10])
    (part / "zerobytes.mp4").write_bytes(b"")
    (part / "textfile.mp4").write_text("this is not a video\n" * 20)
    subprocess.run([ffmpeg, "-y", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:a", "aac",
                    str(part / "audioonly.mp4")], check=True)
    shutil.copy(part / "good0.mp4", part / "weirdlabel.mp4")
    for name in ("tailcut", "faststartcut", "zerobytes", "textfile", "audioonly", "missingfile"):
        meta[f"{name}.mp4"] = {"label": "REAL", "split": "train", "original": None}
    meta["weirdlabel.mp4"] = {"label": "MAYBE", "split": "train", "original": None}
    (part / "metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def bad_run(bad_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_out")
    proc = run_module("pipeline.run", *pipeline_argv(bad_tree, out, "--size", "96x64"), check=False)
    return out, proc


def test_run_goes_on_and_exits_0(bad_run):
    out, proc = bad_run
    assert proc.returncode == 0, proc.stderr
    assert "6 done, 7 failed, 0 skipped" in proc.stderr


@pytest.mark.parametrize("vid", list(BAD))
def test_each_bad_input_is_a_failed_row(bad_run, vid):
    out, _ = bad_run
    rows = [v for v in read_manifest(out / "manifests")["videos"] if v["video_id"] == vid]
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "failed"
    assert row["error"] and "\n" not in row["error"] and len(row["error"]) <= 400
    assert any(w.lower() in row["error"].lower() for w in BAD[vid]), row["error"]
    assert row["n_frames"] in (None, 0) and row["shard"] is None
    assert row["path"].endswith(f"{vid}.mp4")


def test_good_videos_are_all_in_the_shards(bad_run):
    out, _ = bad_run
    check_manifest_agrees(out / "shards", out / "manifests")
    m = read_manifest(out / "manifests")
    good = {v["video_id"] for v in m["videos"] if v["status"] == "done"}
    assert good == {f"good{i}{s}" for i in range(3) for s in ("", "f")}
    assert {f["video_id"] for f in m["frames"]} == good and len(m["frames"]) == 12
    assert m["dataset"]["failed"] == len(BAD)


def test_summary_lists_the_failures(bad_run):
    _, proc = bad_run
    for vid in BAD:
        assert f"{vid}.mp4" in proc.stderr


def test_strict_exits_1_and_rerun_keeps_the_failures(bad_run, bad_tree):
    out, first = bad_run
    before = read_manifest(out / "manifests")
    proc = run_module("pipeline.run", *pipeline_argv(bad_tree, out, "--size", "96x64", "--strict"), check=False)
    assert proc.returncode == 1, proc.stderr
    assert "--strict" in proc.stderr and "0 done, 7 failed, 6 skipped" in proc.stderr
    after = read_manifest(out / "manifests")
    pick = lambda rows: sorted((v["video_id"], v["status"], v["error"]) for v in rows)  # noqa: E731
    assert pick(after["videos"]) == pick(before["videos"])
    assert after["frames"] == before["frames"]


def test_strict_on_a_clean_dataset_exits_0(tmp_path):
    videos = tmp_path / "videos"
    make_clip(videos / "fine.mp4", size=(96, 64), seconds=1.0)
    proc = run_module("pipeline.run", *pipeline_argv(videos, tmp_path / "out", "--strict"), check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", ["no-such-folder", "no-videos", "size", "val-fraction", "fps", "workers", "part",
                                  "shard-size", "ffmpeg"])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, case):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_clip(videos / "ok.mp4", size=(96, 64), seconds=1.0)
    args, env, words = [], {}, []
    if case == "no-such-folder":
        videos, words = tmp_path / "nope", ["no such folder"]
    elif case == "no-videos":
        videos = tmp_path / "empty"
        videos.mkdir()
        (videos / "notes.txt").write_text("no videos here")
        words = ["no videos found"]
    elif case == "size":
        args, words = ["--size", "nonsense"], ["size", "nonsense"]
    elif case == "val-fraction":
        args, words = ["--val-fraction", "2"], ["val fraction"]
    elif case == "fps":
        args, words = ["--fps", "0"], ["fps"]
    elif case == "workers":
        args, words = ["--workers", "0"], ["workers"]
    elif case == "part":
        args, words = ["--part", "3/2"], ["part"]
    elif case == "shard-size":
        args, words = ["--shard-size", "lots"], ["shard size"]
    elif case == "ffmpeg":
        env, words = {"FFMPEG": str(tmp_path / "no-ffmpeg")}, ["FFMPEG"]
    out = tmp_path / "out"
    argv = pipeline_argv(videos, out, *args)
    proc = run_module("pipeline.run", *argv, env=env, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert any(w.lower() in proc.stderr.lower() for w in words), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "shards").exists() and not (out / "manifests").exists()
