"""The grouped split: pure functions (pipeline.split.hashed) and what the real pipeline wrote for `tiny_dataset`."""
from __future__ import annotations

import collections

import pytest

from pipeline.split.hashed import assign_split, class_weights, group_unit, part_of

from helpers.manifests import read_manifest


def test_unlabelled_videos_go_to_test():
    assert {assign_split(None, f"g{i}", 0, 0.3) for i in range(50)} == {"test"}


def test_deterministic_from_group_and_seed():
    groups = [f"group{i}" for i in range(500)]
    first = [assign_split("real", g, 7, 0.3) for g in groups]
    assert first == [assign_split("fake", g, 7, 0.3) for g in groups]  # the label does not move a group
    assert first == [assign_split("real", g, 7, 0.3) for g in reversed(groups)][::-1]  # nor the order
    other = [assign_split("real", g, 8, 0.3) for g in groups]
    assert first != other  # a new seed reshuffles
    assert all(0 <= group_unit(g, 7) < 1 for g in groups)


def test_adding_groups_never_moves_old_ones():
    old = {f"g{i}": assign_split("real", f"g{i}", 0, 0.3) for i in range(1000)}
    more = {f"g{i}": assign_split("real", f"g{i}", 0, 0.3) for i in range(3000)}
    assert all(more[g] == s for g, s in old.items())


def test_growing_the_val_fraction_only_moves_train_to_val():
    groups = [f"g{i}" for i in range(2000)]
    small = [assign_split("real", g, 1, 0.2) for g in groups]
    big = [assign_split("real", g, 1, 0.4) for g in groups]
    assert not any(s == "val" and b == "train" for s, b in zip(small, big))


@pytest.mark.parametrize("fraction", [0.3, 0.1, 0.5])
def test_achieved_ratio_near_the_target(fraction):
    splits = collections.Counter(assign_split("fake", f"{i:05d}-{i * 7919 % 1013}", 0, fraction) for i in range(5000))
    assert set(splits) == {"train", "val"}
    # binomial sd for 5000 draws is at most 0.0071: 4 sd
    assert abs(splits["val"] / 5000 - fraction) < 0.03


def test_zero_fraction_puts_everything_in_train():
    assert {assign_split("real", f"g{i}", 0, 0.0) for i in range(200)} == {"train"}


def test_class_weights():
    assert class_weights(25, 75) == {"real": 2.0, "fake": 100 / 150}
    w = class_weights(10, 30)
    assert 10 * w["real"] == pytest.approx(30 * w["fake"])  # both classes count equally
    assert class_weights(0, 5) == {"real": 0.0, "fake": 0.5}  # n / (2 n_class); an absent class weighs 0


def test_parts_keep_groups_whole():
    groups = [f"g{i}" for i in range(300)]
    parts = collections.Counter(part_of(g, 3) for g in groups)
    assert set(parts) == {1, 2, 3} and min(parts.values()) > 60
    assert all(part_of(g, 1) == 1 for g in groups)


def test_fakes_share_their_originals_split(tiny_dataset):
    """In the real run every fake sits in the split of its original, and the split is assign_split's."""
    videos = read_manifest(tiny_dataset["manifests"])["videos"]
    by_id = {v["video_id"]: v for v in videos}
    fakes = [v for v in videos if v["label"] == "fake"]
    assert len(fakes) == 16
    for v in fakes:
        original = by_id[v["original"]]
        assert v["group"] == original["video_id"] == original["group"]
        assert v["split"] == original["split"]
    for v in videos:
        assert v["split"] == assign_split(v["label"], v["group"], 0, 0.3)
    groups = collections.defaultdict(set)
    frames = read_manifest(tiny_dataset["manifests"])["frames"]
    for f in frames:
        groups[by_id[f["video_id"]]["group"]].add(f["split"])
    assert all(len(s) == 1 for s in groups.values()), "a group's frames are on both sides"
    assert {v["split"] for v in videos} == {"train", "val"}
