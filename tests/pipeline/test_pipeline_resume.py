"""Resume: kill -9 in the middle and run the same command again; rerun a finished dataset; add videos later."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from helpers.clips import make_dfdc_tree
from helpers.commands import pipeline_argv, run_module
from helpers.ffmpeg_calls import decode_calls, logging_ffmpeg
from helpers.manifests import check_manifest_agrees, read_manifest
from helpers.paths import REPO

pytestmark = pytest.mark.slow  # kills and reruns the pipeline over a reference dataset

ARGS = ("--size", "96x64", "--shard-size", "10KB")
N_VIDEOS = 42  # 14 reals with 2 fakes each


def _tar_stats(shards):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in shards.glob("*.tar")}


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    videos = make_dfdc_tree(root / "videos", n_real=14, fakes_per_real=2, seconds=2.0, size=(96, 64))
    return root, videos


@pytest.fixture(scope="module")
def reference(many):
    """An uninterrupted run."""
    root, videos = many
    out = root / "reference"
    run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS))
    return out, check_manifest_agrees(out / "shards", out / "manifests")


@pytest.fixture(scope="module")
def killed(many):
    """A run killed with SIGKILL (the whole process group: orchestrator, workers, ffmpegs) once shards have sealed.

    Each ffmpeg call is slowed by 0.15 s through a wrapper so that the run is surely still going when it is killed.
    Returns the output folder and the state at the kill: videos in finished shards and videos fully staged.
    """
    root, videos = many
    out = root / "killed"
    wrapper, log = logging_ffmpeg(root / "slow-ffmpeg", delay=0.15)
    env = {**os.environ, "FFMPEG": str(wrapper)}
    cmd = [sys.executable, "-m", "pipeline.run", *pipeline_argv(videos, out, *ARGS)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shards, deadline = out / "shards", time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            sealed = list(shards.glob("*.tar")) if shards.is_dir() else []
            staged = list((shards / ".staging").glob("*.json")) if shards.is_dir() else []
            if len(sealed) >= 3 and staged:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifests" / "dataset.json").exists()
    done = set()
    for part in (out / "manifests" / "parts").glob("*.videos.parquet"):
        done |= set(pq.read_table(part, columns=["video_id"])["video_id"].to_pylist())
    staged = set()
    for meta in (shards / ".staging").glob("*.json"):
        vid = meta.stem
        if json.loads(meta.read_text())["status"] == "done" and (shards / ".staging" / f"{vid}.members").is_file():
            staged.add(vid)
    return out, done, staged - done


def test_kill_leaves_work_half_done(killed):
    out, done, staged = killed
    assert 0 < len(done) < N_VIDEOS
    assert len(done | staged) < N_VIDEOS


def test_resume_after_kill_matches_uninterrupted_run(many, killed, reference):
    root, videos = many
    out, done_at_kill, staged_at_kill = killed
    wrapper, log = logging_ffmpeg(root / "rerun-ffmpeg")
    proc = run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS), env={"FFMPEG": str(wrapper)})
    assert f"{len(done_at_kill)} skipped" in proc.stderr
    resumed = check_manifest_agrees(out / "shards", out / "manifests")
    _, expected = reference
    assert sorted(resumed) == sorted(expected)  # no frame lost, none twice (keys are unique in the manifest)
    assert resumed == expected  # the same JPEG bytes and json members, key by key
    assert not list((out / "shards" / ".staging").glob("*")), "staging files left behind"
    # finished and completely staged work was not decoded again; everything else exactly once
    decoded = [os.path.basename(c.split(" -i ")[1].split(" ")[0])[:-4] for c in decode_calls(log)]
    all_ids = {v["video_id"] for v in read_manifest(out / "manifests")["videos"]}
    assert len(decoded) == len(set(decoded))
    assert set(decoded) == all_ids - done_at_kill - staged_at_kill
    ref_videos = read_manifest(reference[0] / "manifests")["videos"]
    pick = lambda rows: sorted((v["video_id"], v["split"], v["n_frames"], v["status"]) for v in rows)  # noqa: E731
    assert pick(read_manifest(out / "manifests")["videos"]) == pick(ref_videos)


def test_rerun_of_a_finished_dataset_decodes_nothing(many, reference, tmp_path):
    root, videos = many
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    before = _tar_stats(out / "shards")
    wrapper, log = logging_ffmpeg(tmp_path / "ffmpeg")
    proc = run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS), env={"FFMPEG": str(wrapper)})
    assert decode_calls(log) == []  # what "takes seconds" means, without a wall-clock limit on a loaded machine
    assert f"summary: 0 done, 0 failed, {N_VIDEOS} skipped" in proc.stderr
    assert _tar_stats(out / "shards") == before
    assert check_manifest_agrees(out / "shards", out / "manifests") == reference[1]


def test_videos_added_later_are_processed_alone(many, reference, tmp_path):
    root, videos = many
    new_videos, out = tmp_path / "videos", tmp_path / "out"
    shutil.copytree(videos, new_videos)
    shutil.copytree(reference[0], out)
    before = _tar_stats(out / "shards")
    old = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    make_dfdc_tree(new_videos, n_real=1, fakes_per_real=1, seconds=2.0, size=(96, 64), part="dfdc_train_part_9")
    wrapper, log = logging_ffmpeg(tmp_path / "ffmpeg")
    proc = run_module("pipeline.run", *pipeline_argv(new_videos, out, *ARGS), env={"FFMPEG": str(wrapper)})
    assert f"summary: 2 done, 0 failed, {N_VIDEOS} skipped" in proc.stderr
    decoded = sorted(os.path.basename(c.split(" -i ")[1].split(" ")[0]) for c in decode_calls(log))
    assert decoded == ["fake9000x0.mp4", "real9000.mp4"]
    after = _tar_stats(out / "shards")
    assert {k: v for k, v in after.items() if k in before} == before  # old shards untouched
    assert len(after) > len(before)
    frames = check_manifest_agrees(out / "shards", out / "manifests")
    assert set(frames) - set(reference[1]) == {"real9000_0000", "real9000_0001", "fake9000x0_0000", "fake9000x0_0001"}
    assert all(frames[k] == v for k, v in reference[1].items())
    now = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    assert all(now[vid]["split"] == v["split"] for vid, v in old.items())  # adding videos moves no old one
    assert now["fake9000x0"]["split"] == now["real9000"]["split"]
