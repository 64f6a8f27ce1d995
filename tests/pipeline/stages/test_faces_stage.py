"""The faces stage on real clips: MTCNN on real frames, the FF++ pairs' diff, bad input, resume after kill -9,
resplit, --part K/N + pipeline.merge. Frame shards of the real clips are made once per session at 0.5 fps."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.clips import make_dfdc_tree
from helpers.commands import pipeline_argv, run_module
from helpers.paths import REPO, SHARED_DATA
from pipeline.spec import FaceCrop
from pipeline.stages.faces import FaceDetector, faces_of_video
from pipeline.stages.faces.crop import decode_jpeg
from pipeline.dataset import read_member

FFPP = SHARED_DATA / "ffpp_sample"
DFDC = SHARED_DATA / "dfdc_sample"
needs_data = pytest.mark.skipif(not (FFPP.is_dir() and DFDC.is_dir()), reason="../shared/data not present")
FACES_ARGS = ("--device", "cpu", "--workers", "2")


def faces_argv(out: Path, *args: str) -> list[str]:
    return ["--shards", str(out / "shards"), "--manifests", str(out / "manifests"), *FACES_ARGS, *args]


def faces_table(out: Path) -> list[dict]:
    return pq.read_table(out / "manifests" / "faces.parquet").to_pylist()


def copy_frames(src: Path, dst: Path) -> Path:
    """The frame shards and the pipeline's manifests of `src`, without any faces output."""
    shutil.copytree(src / "shards", dst / "shards", ignore=shutil.ignore_patterns("faces"))
    shutil.copytree(src / "manifests", dst / "manifests", ignore=shutil.ignore_patterns("faces*"))
    data = json.loads((dst / "manifests" / "dataset.json").read_text())
    data.pop("faces", None)
    (dst / "manifests" / "dataset.json").write_text(json.dumps(data))
    return dst


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory) -> Path:
    """The FF++ pairs at 0.25 fps (default 1280x720 box), then the faces stage, uninterrupted."""
    out = tmp_path_factory.mktemp("faces-ffpp")
    run_module("pipeline.run", *pipeline_argv(FFPP, out / "frames", "--fps", "0.25"))
    shutil.copytree(out / "frames", out / "ref")
    run_module("pipeline.faces", *faces_argv(out / "ref"))
    return out


@pytest.fixture(scope="module")
def dfdc(tmp_path_factory) -> Path:
    """The four 1080p DFDC clips at 0.5 fps, then the faces stage with its defaults."""
    out = tmp_path_factory.mktemp("faces-dfdc")
    run_module("pipeline.run", *pipeline_argv(DFDC, out, "--fps", "0.5"))
    run_module("pipeline.faces", *faces_argv(out))
    return out


def test_grace_hopper_and_min_size():
    import cv2

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    settings = FaceCrop(detect_size=320, face_size=64)
    detector = FaceDetector(settings, "cpu")
    (faces,) = detector.detect([img])
    assert len(faces) == 1 and faces[0].score > 0.99
    x0, y0, x1, y1 = faces[0].box
    assert 150 < x0 < 200 and 100 < y0 < 150 and 330 < x1 < 380 and 320 < y1 < 370  # her face, in full-size px
    assert faces[0].landmarks.shape == (5, 2)
    rows = faces_of_video([img], [0.0], detector, settings)
    assert len(rows) == 1 and rows[0]["crop"].shape == (64, 64, 3) and rows[0]["face"] == 0
    big = FaceDetector(FaceCrop(detect_size=320, min_size=300), "cpu")
    assert big.detect([img]) == [[]]


@pytest.mark.slow
@needs_data
def test_every_real_clip_shows_a_face(dfdc, ffpp):
    """Each real clip (DFDC 1080p incl. the dark abofeumbvv, FF++) has a face in at least 80% of its sampled frames,
    and the faces output agrees with itself: crops in the face shards, counts in dataset.json."""
    for out in (dfdc, ffpp / "ref"):
        frames = pq.read_table(out / "manifests" / "frames.parquet").to_pylist()
        faces = faces_table(out)
        for vid in {f["video_id"] for f in frames}:
            n = sum(f["video_id"] == vid for f in frames)
            with_face = {r["key"] for r in faces if r["video_id"] == vid}
            assert len(with_face) >= 0.8 * n, (vid, len(with_face), n)
        section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
        assert section["faces"] == len(faces) and section["pending_shards"] == []
        assert section["frames_with_faces"] == len({r["key"] for r in faces})
        assert section["settings"]["detect_size"] == 640
        for shard in section["shards"]:
            with tarfile.open(out / "shards" / shard["name"]) as tar:
                names = tar.getnames()
            rows = [r for r in faces if r["crop_shard"] == shard["name"]]
            assert shard["faces"] == len(rows) and names == [f"{r['crop_key']}.{e}" for r in rows for e in ("jpg", "json")]
            assert shard["bytes"] == (out / "shards" / shard["name"]).stat().st_size
        # the face shard names follow the frame shards one to one
        assert {s["name"] for s in section["shards"]} == {f"faces/{f['shard']}" for f in frames}
        for r in faces:
            assert r["x0"] < r["x1"] and r["y0"] < r["y1"] and r["crop_key"] == f"{r['key']}_{r['face']}"


@needs_data
def test_ffpp_pairs_fake_faces_manipulated(ffpp):
    faces = faces_table(ffpp / "ref")
    for r in faces:
        if r["label"] == "real":
            assert r["manipulated"] is False and r["diff"] is None
    for fake in ("ffpp-Deepfakes-c23-519_515", "ffpp-NeuralTextures-c23-004_982"):
        rows = [r for r in faces if r["video_id"] == fake]
        tracks = [r["track"] for r in rows]
        main = max(set(tracks), key=tracks.count)  # the person the clip is about: the manipulated face
        mains = [r for r in rows if r["track"] == main]
        assert all(r["manipulated"] is True and r["diff"] >= 0.04 for r in mains), [r["diff"] for r in mains]
        assert all(r["diff"] is not None and r["note"] is None for r in rows)
    # NeuralTextures 004_982 shows an untouched inset picture with a face (from second 10): not manipulated
    nt = [r for r in faces if r["video_id"] == "ffpp-NeuralTextures-c23-004_982" and r["manipulated"] is False]
    assert nt and min(r["diff"] for r in nt) < 0.02


@needs_data
def test_rerun_is_fast_and_resplit_follows_without_detecting(ffpp, tmp_path):
    ref = ffpp / "ref"
    before = faces_table(ref)
    t0 = time.time()
    proc = run_module("pipeline.faces", *faces_argv(ref))
    assert "0 shards done" in proc.stderr and time.time() - t0 < 20
    assert faces_table(ref) == before
    out = tmp_path / "rs"
    shutil.copytree(ref, out)
    from pipeline.split.hashed import assign_split

    videos = pq.read_table(out / "manifests" / "videos.parquet").to_pylist()
    seed = next(s for s in range(100) if any(assign_split(v["label"], v["group"], s, 0.5) != v["split"]
                                             for v in videos))
    run_module("pipeline.resplit", "--shards", out / "shards", "--manifests", out / "manifests", "--seed", seed,
               "--val-fraction", "0.5")
    section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
    assert section["pending_shards"]  # the repacked frame shards need the faces again
    proc = run_module("pipeline.faces", *faces_argv(out))
    assert " 0 frames detected" in proc.stderr  # all from the detections cache
    after = faces_table(out)
    videos = {v["video_id"]: v["split"] for v in pq.read_table(out / "manifests" / "videos.parquet").to_pylist()}
    frames = {f["key"]: f["shard"] for f in pq.read_table(out / "manifests" / "frames.parquet").to_pylist()}
    assert all(r["split"] == videos[r["video_id"]] and r["crop_shard"] == f"faces/{frames[r['key']]}" for r in after)
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k not in ("split", "crop_shard")} for r in rows),  # noqa: E731
                                key=lambda r: r["crop_key"])
    assert strip(after) == strip(before)
    on_disk = {p.name for p in (out / "shards" / "faces").glob("*")}
    assert on_disk == {Path(s).name for s in frames.values()}  # old face shards removed, no temp files


@needs_data
def test_kill_then_rerun_equals_clean_run(ffpp, tmp_path):
    out = copy_frames(ffpp / "frames", tmp_path / "killed")
    cmd = [sys.executable, "-m", "pipeline.faces", *faces_argv(out)[:-4], "--device", "cpu", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    parts, deadline = out / "manifests" / "faces_parts", time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if parts.is_dir() and list(parts.glob("*.done.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_done = len(list(parts.glob("*.done.json")))
    assert 1 <= n_done < len(list((out / "shards").glob("*.tar")))
    proc = run_module("pipeline.faces", *faces_argv(out))
    assert f"{n_done} skipped" in proc.stderr
    ref = ffpp / "ref"
    assert faces_table(out) == faces_table(ref)
    for tar in (ref / "shards" / "faces").glob("*.tar"):
        assert (out / "shards" / "faces" / tar.name).read_bytes() == tar.read_bytes()
    assert not list((out / "shards" / "faces").glob(".*"))


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_data
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_kill_parent_only_workers_die_and_rerun_at_once(ffpp, tmp_path):
    """SIGKILL of the orchestrator alone (as the OOM killer does) while its 2 pool workers are busy: the workers
    die with it, none keeps the stage's lock, and the same command rerun at once completes like a clean run."""
    out = copy_frames(ffpp / "frames", tmp_path / "orphans")
    cmd = [sys.executable, "-m", "pipeline.faces", *faces_argv(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline, workers = time.time() + 120, []
    try:
        while time.time() < deadline and proc.poll() is None:
            workers = [p for p in _children(proc.pid) if _alive(p)]
            if len(workers) >= 2 and (out / "shards" / "faces").is_dir():  # a worker is writing a face shard
                break
            time.sleep(0.02)
        assert proc.poll() is None and len(workers) >= 2, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only
        proc.wait()
        rerun = run_module("pipeline.faces", *faces_argv(out), check=False)  # at once
        gone = time.time() + 10
        while time.time() < gone and any(_alive(p) for p in workers):
            time.sleep(0.05)
        orphans = [p for p in workers if _alive(p)]
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    assert not orphans, f"pool workers outlived their parent: {orphans}"
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ref = ffpp / "ref"
    assert faces_table(out) == faces_table(ref)
    for tar in (ref / "shards" / "faces").glob("*.tar"):
        assert (out / "shards" / "faces" / tar.name).read_bytes() == tar.read_bytes()


@pytest.mark.slow
@needs_data
def test_parts_then_merge(ffpp, tmp_path):
    out = copy_frames(ffpp / "frames", tmp_path / "parts")
    run_module("pipeline.faces", *faces_argv(out, "--part", "1/2"))
    assert not (out / "manifests" / "faces.parquet").exists()
    run_module("pipeline.merge", "--manifests", out / "manifests")
    section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
    n_shards = len(list((out / "shards").glob("*.tar")))
    assert len(section["shards"]) + len(section["pending_shards"]) == n_shards
    assert section["faces"] == len(faces_table(out))
    run_module("pipeline.faces", *faces_argv(out, "--part", "2/2"))
    run_module("pipeline.merge", "--manifests", out / "manifests")
    assert faces_table(out) == faces_table(ffpp / "ref")
    section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
    assert section["faces"] == len(faces_table(out)) and section["pending_shards"] == []
    # a later single-machine run finds everything done
    proc = run_module("pipeline.faces", *faces_argv(out))
    assert f"0 shards done, {n_shards} skipped" in proc.stderr


def test_missing_frame_shard_fails_that_shard_only(ffpp, tmp_path):
    out = copy_frames(ffpp / "frames", tmp_path / "missing")
    tars = sorted((out / "shards").glob("*.tar"))
    victim = tars[0]
    victim.unlink()
    proc = run_module("pipeline.faces", *faces_argv(out), check=False)
    assert proc.returncode == 1 and victim.name in proc.stderr, proc.stderr[-3000:]
    assert f"{len(tars) - 1} shards done" in proc.stderr, proc.stderr[-3000:]
    section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
    assert section["pending_shards"] == [victim.name] and len(section["shards"]) == len(tars) - 1


def test_no_faces_and_undecodable_frame(tmp_path):
    """Clips without a face: 0 faces, counted; a frame JPEG broken inside its shard: counted, named, run goes on."""
    videos = make_dfdc_tree(tmp_path / "videos", n_real=1, fakes_per_real=1, seconds=3.0, size=(192, 108))
    run_module("pipeline.run", *pipeline_argv(videos, tmp_path))
    frames = pq.read_table(tmp_path / "manifests" / "frames.parquet").to_pylist()
    broken = frames[1]
    with open(tmp_path / "shards" / broken["shard"], "r+b") as fh:
        name, _ = read_member(fh, broken["offset"])
        fh.seek(broken["offset"] + 512)
        fh.write(b"\0" * 64)  # no JPEG start marker any more
    proc = run_module("pipeline.faces", *faces_argv(tmp_path, "--detect-size", "160"))
    assert broken["key"] in proc.stderr and "1 undecodable" in proc.stderr
    section = json.loads((tmp_path / "manifests" / "dataset.json").read_text())["faces"]
    assert section["faces"] == 0 and section["videos_without_faces"] == 2 and section["undecodable_frames"] == 1
    assert faces_table(tmp_path) == []
    assert section["shards"] == [] and not list((tmp_path / "shards" / "faces").glob("*.tar"))  # none without faces
    data = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert data["videos"] and data["shards"]  # the pipeline's keys are kept
    # the pipeline's consolidate (a rerun over finished work) keeps the faces section
    run_module("pipeline.run", *pipeline_argv(videos, tmp_path))
    again = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert again["faces"]["videos_without_faces"] == 2


def test_ffpp_faces_output_consistent(ffpp):
    out = ffpp / "ref"
    frames = pq.read_table(out / "manifests" / "frames.parquet").to_pylist()
    faces = faces_table(out)
    for vid in {f["video_id"] for f in frames}:  # every FF++ clip shows its face in every sampled frame
        assert {r["key"] for r in faces if r["video_id"] == vid} == {f["key"] for f in frames if f["video_id"] == vid}
    section = json.loads((out / "manifests" / "dataset.json").read_text())["faces"]
    assert section["faces"] == len(faces) and section["frames_with_faces"] == len(frames)
    assert {s["name"] for s in section["shards"]} == {f"faces/{f['shard']}" for f in frames}
    with tarfile.open(out / "shards" / section["shards"][0]["name"]) as tar:
        member = tar.extractfile(tar.getmembers()[1])
        row = json.loads(member.read())
    assert row == next(r for r in faces if r["crop_key"] == row["crop_key"])


def test_real_frames_api_reads_by_offset(tmp_path):
    """faces_of_video on frames read by manifest offset from a real DFDC shard (the lit real clip lynaeydofd)."""
    if not DFDC.is_dir():
        pytest.skip("../shared/data not present")
    part = tmp_path / "videos" / "dfdc_train_part_0"
    part.mkdir(parents=True)
    os.symlink(DFDC / "dfdc_train_part_0" / "lynaeydofd.mp4", part / "lynaeydofd.mp4")
    (part / "metadata.json").write_text(json.dumps({"lynaeydofd.mp4": {"label": "REAL", "split": "train"}}))
    run_module("pipeline.run", *pipeline_argv(tmp_path / "videos", tmp_path, "--fps", "0.3", "--size", "640x360"))
    frames = pq.read_table(tmp_path / "manifests" / "frames.parquet").to_pylist()
    images = []
    for f in frames:
        with open(tmp_path / "shards" / f["shard"], "rb") as fh:
            images.append(decode_jpeg(read_member(fh, f["offset"])[1]))
    settings = FaceCrop(detect_size=480, min_size=20, face_size=96)
    rows = faces_of_video(images, [f["second"] for f in frames], FaceDetector(settings, "cpu"), settings)
    assert {r["frame"] for r in rows} == set(range(len(frames)))
    assert all(r["crop"].shape == (96, 96, 3) for r in rows)
    assert len({r["track"] for r in rows if r["face"] == 0}) == 1  # one person, one track


@needs_data
def test_batched_gpu_path_on_cpu_matches(ffpp, tmp_path):
    """The --device cuda code path (several videos per MTCNN call, one process) run with a CPU detector gives the
    faces of the per-video CPU path (no GPU here; this checks the batching and bookkeeping, not CUDA)."""
    from pipeline.stages.faces import plan as stage_plan, worker

    out = copy_frames(ffpp / "frames", tmp_path / "batched")
    settings = FaceCrop()
    worker.init_worker(settings.to_dict(), "cpu", 1)
    p = stage_plan.plan(out / "shards", out / "manifests", settings, (1, 1))
    assert p["todo"] == p["all_shards"]
    for shard in p["todo"]:
        done = worker.process_shard(stage_plan.make_task(p, shard, {}), str(out / "shards"), str(out / "manifests"),
                                    settings.to_dict(), device="cuda")
        assert done["detected"] == done["frames"]
    ref = faces_table(ffpp / "ref")
    for shard in p["todo"]:
        rows = pq.read_table(out / "manifests" / "faces_parts" / f"{shard[:-4]}.faces.parquet").to_pylist()
        expect = [r for r in ref if r["crop_shard"] == f"faces/{shard}"]
        assert [r["crop_key"] for r in rows] == [r["crop_key"] for r in expect]
        for a, b in zip(rows, expect):
            assert a["x0"] == pytest.approx(b["x0"], abs=1e-3) and a["y1"] == pytest.approx(b["y1"], abs=1e-3)
            assert a["manipulated"] == b["manipulated"] and a["track"] == b["track"]


def test_verify_checks_face_shards(ffpp, tmp_path):
    """Each face shard's sha256 is recorded when it is sealed (done marker, dataset.json's faces section), and
    pipeline.verify names a face shard whose bytes changed or that lost its tail."""
    out = shutil.copytree(ffpp / "ref", tmp_path / "copy")
    shards, manifests = out / "shards", out / "manifests"
    section = json.loads((manifests / "dataset.json").read_text())["faces"]
    assert section["shards"] and all(len(s["sha256"]) == 64 for s in section["shards"])
    ok = run_module("pipeline.verify", "--shards", shards, "--manifests", manifests)
    assert ok.stdout.strip().endswith("OK") and "no checksums" not in ok.stdout
    first, second = (shards / s["name"] for s in section["shards"][:2])
    data = bytearray(first.read_bytes())
    data[1000] ^= 0xFF  # inside the first crop's JPEG, same size
    first.write_bytes(bytes(data))
    second.write_bytes(second.read_bytes()[:-1024])
    bad = run_module("pipeline.verify", "--shards", shards, "--manifests", manifests, check=False)
    assert bad.returncode == 1
    lines = [line for line in bad.stdout.splitlines() if line.startswith("BAD")]
    assert len(lines) == 2, bad.stdout
    assert f"faces/{first.name}: sha256 differs" in lines[0] or f"faces/{first.name}: sha256 differs" in lines[1]
    assert any(f"faces/{second.name}: " in line and "bytes" in line for line in lines)
