"""Issue 11 item 13: a FaceForensics++ fake TTT_SSS is grouped with everything that involves TTT or SSS, so one
person never sits on both sides of the split; resplit moves a dataset split the old way to it."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd

from helpers.clips import make_clip
from helpers.commands import run_pipeline
from pipeline.sources.discover import discover, identities, link_groups
from pipeline.split.hashed import assign_split

ROOT = Path(__file__).resolve().parents[2]
YT = "original_sequences/youtube/c23/videos"


def _ffpp_tree(root: Path, n: int, pairs: list[tuple[int, int]]) -> Path:
    for i in range(n):
        path = root / YT / f"{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for t, s in pairs:
        path = root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / f"{t:03d}_{s:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def _people_splits(videos, seed=0, fraction=0.3) -> dict[str, set[str]]:
    """person id -> the splits of every video that involves that person."""
    seen: dict[str, set[str]] = {}
    for v in videos:
        split = assign_split(v.label, v.group, seed, fraction)
        for person in identities(v.source, v.label, v.path, v.group if v.label else v.video_id):
            seen.setdefault(person, set()).add(split)
    return seen


def test_no_person_on_both_sides_of_the_split(tmp_path):
    rng = random.Random(0)
    pairs = [(t, rng.choice([s for s in range(80) if s != t])) for t in range(0, 80, 2)]
    _, videos = discover(_ffpp_tree(tmp_path, 80, pairs))
    fakes = [v for v in videos if v.label == "fake"]
    assert len(fakes) == 40
    by_name = {Path(v.path).stem: v for v in videos}
    for t, s in pairs:
        fake = by_name[f"{t:03d}_{s:03d}"]
        assert fake.group == by_name[f"{t:03d}"].group == by_name[f"{s:03d}"].group
    assert all(len(splits) == 1 for splits in _people_splits(videos).values())
    assert {assign_split("real", v.group, 0, 0.3) for v in videos} == {"train", "val"}  # still a split


def test_components_are_stable_under_unrelated_additions(tmp_path):
    _, before = discover(_ffpp_tree(tmp_path / "a", 10, [(0, 1), (2, 3)]))
    _, after = discover(_ffpp_tree(tmp_path / "b", 12, [(0, 1), (2, 3), (10, 11)]))
    old = {Path(v.path).name: v.group for v in before}
    assert all(old[Path(v.path).name] == v.group for v in after if Path(v.path).name in old)


def test_link_groups_is_a_union_find():
    assert link_groups([("c",), ("c", "a"), ("b",), ("a", "d"), ("e", "b")]) == ["a", "a", "b", "a", "b"]


def test_resplit_moves_an_old_dataset_to_identity_groups(tmp_path):
    """Seed chosen so that the old grouping put real 001 (the source of fake 000_001) in the other split."""
    root = tmp_path / "videos"
    for name, box in (("000", False), ("001", False), ("000_001", True)):
        folder = YT if "_" not in name else "manipulated_sequences/Deepfakes/c23/videos"
        make_clip(root / folder / f"{name}.mp4", seconds=1.0, box=box)
    seed = next(s for s in range(100) if assign_split("real", "ffpp-youtube-000", s, 0.5)
                != assign_split("real", "ffpp-youtube-001", s, 0.5))
    args = ["--videos", str(root), "--shards", str(tmp_path / "shards"), "--manifests", str(tmp_path / "manifests"),
            "--size", "64x36", "--seed", str(seed), "--val-fraction", "0.5", "--workers", "2"]
    old = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "oldgrouping.py"), "pipeline.run", *args],
                         capture_output=True, text=True, cwd=ROOT)
    assert old.returncode == 0, old.stderr
    splits = pd.read_parquet(tmp_path / "manifests" / "videos.parquet").set_index("video_id")["split"]
    assert splits.nunique() == 2  # the leak, as the old code split it
    proc = run_pipeline(root, tmp_path, "--size", "64x36", check=False)  # today's code refuses to mix groupings
    assert proc.returncode == 2 and "pipeline.resplit" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "pipeline.resplit", "--shards", str(tmp_path / "shards"),
                           "--manifests", str(tmp_path / "manifests"), "--seed", str(seed), "--val-fraction", "0.5"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    videos = pd.read_parquet(tmp_path / "manifests" / "videos.parquet")
    assert videos["split"].nunique() == 1 and videos["group"].nunique() == 1
    frames = pd.read_parquet(tmp_path / "manifests" / "frames.parquet")
    assert set(frames["split"]) == set(videos["split"]) and frames["video_id"].nunique() == 3
    config = json.loads((tmp_path / "manifests" / "parts" / "config.json").read_text())
    assert config["grouping"] == "identities"
    run_pipeline(root, tmp_path, "--size", "64x36")  # and later runs go on
