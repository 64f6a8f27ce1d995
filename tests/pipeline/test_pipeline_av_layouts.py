"""Issue 27 item 2: the audio-visual datasets' layouts (FakeAVCeleb, LAV-DF, AV-Deepfake1M) read by the real
`dfd shards` from small trees of lavfi clips: picture and sound labels beside the label, the official split, the
fake periods kept per video and each frame labelled from them."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.commands import run_module
from helpers.sound import av_clip
from pipeline.core.manifest import consolidate
from pipeline.sources.discover import discover
from pipeline.sources.periods import frame_label, parse_periods, window_label


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One real 2 s H.264 + AAC clip (lavfi picture, a sine's sound), copied to every path of the trees."""
    return av_clip(tmp_path_factory.mktemp("clip") / "c.mp4", ["-f", "lavfi", "-i", "sine=f=440:d=2"])


def _place(clip, root, *rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / rel)


def _shards(root, out, *args):
    run_module("dfd", "shards", "--videos", root, "--shards", out / "shards", "--manifests", out / "manifests",
               "--workers", "1", "--size", "64x36", *args)
    videos = pd.read_parquet(out / "manifests" / "videos.parquet").set_index("video_id")
    frames = pd.read_parquet(out / "manifests" / "frames.parquet")
    return videos, frames


def test_periods_label_moments_and_windows():
    periods, error = parse_periods([[1.5, 2.0], [0.5, 1.0]], "x")
    assert error is None and periods == ((0.5, 1.0), (1.5, 2.0))
    assert parse_periods([[2, 1]], "meta.json record 3")[1].startswith("fake period [2, 1] in meta.json record 3")
    assert [frame_label(t, "fake", periods) for t in (0.0, 0.5, 0.99, 1.0, 1.7)] == [
        "real", "fake", "fake", "real", "fake"]
    assert frame_label(0.0, "fake", None) == "fake"  # no periods given: the video's label
    assert window_label(1.0, 1.5, "fake", periods) == "real" and window_label(0.9, 1.6, "fake", periods) == "fake"
    assert window_label(0.0, 2.0, "fake", ()) == "real"  # the sound was not modified


def test_fakeavceleb_labels_picture_and_sound(clip, tmp_path):
    root = tmp_path / "FakeAVCeleb_v1.2"
    _place(clip, root, "RealVideo-RealAudio/African/men/id00076/00109.mp4",
           "RealVideo-FakeAudio/African/men/id00076/00109_fake.mp4",
           "FakeVideo-RealAudio/African/men/id00076/00109_id00166_wavtolip.mp4",
           "FakeVideo-FakeAudio/Asian/women/id00200/00001_id00076_fsgan-wav2lip.mp4",
           "RealVideo-RealAudio/Asian/women/id00200/00001.mp4",
           "RealVideo-RealAudio/Asian/women/id00166/00007.mp4")
    assert discover(tmp_path)[0] == "mixed" and discover(root)[0] == "fakeavceleb"
    videos, frames = _shards(root, tmp_path)
    got = videos[["label", "picture_label", "sound_label", "speaker", "original"]].sort_index()
    assert got.loc["fakeavceleb-rvfa-id00076-00109_fake"].tolist() == [
        "fake", "real", "fake", "id00076", "fakeavceleb-rvra-id00076-00109"]
    assert got.loc["fakeavceleb-fvra-id00076-00109_id00166_wavtolip", ["label", "picture_label", "sound_label"]
                   ].tolist() == ["fake", "fake", "real"]
    assert got.loc["fakeavceleb-rvra-id00200-00001", ["label", "picture_label", "sound_label"]].tolist() == [
        "real", "real", "real"]
    # id00076's fake carries id00166's face and id00200's fake id00076's: one identity group, one side of the split
    assert videos["group"].nunique() == 1 and videos["split"].nunique() == 1
    fvra = frames[frames["video_id"] == "fakeavceleb-fvra-id00076-00109_id00166_wavtolip"]
    assert set(fvra["picture_label"]) == {"fake"}
    assert set(frames[frames["video_id"] == "fakeavceleb-rvfa-id00076-00109_fake"]["picture_label"]) == {"real"}
    # a videos fragment written before these columns existed still joins (its rows read null there)
    fragment = sorted((tmp_path / "manifests" / "parts").glob("*.videos.parquet"))[0]
    old = pq.read_table(fragment)
    pq.write_table(old.drop_columns(["picture_label", "sound_label", "speaker", "fake_periods"]), fragment)
    consolidate(tmp_path / "manifests")
    joined = pd.read_parquet(tmp_path / "manifests" / "videos.parquet")
    assert len(joined) == 6 and joined["picture_label"].isna().sum() == old.num_rows


def _lavdf_records():
    return [
        {"file": "train/000001.mp4", "n_fakes": 0, "fake_periods": [], "duration": 2.0, "original": None,
         "modify_video": False, "modify_audio": False, "split": "train", "video_frames": 50, "audio_channels": 1,
         "audio_frames": 32000},
        {"file": "train/000002.mp4", "n_fakes": 1, "fake_periods": [[0.4, 1.2]], "duration": 2.0,
         "original": "train/000001.mp4", "modify_video": True, "modify_audio": False, "split": "train",
         "video_frames": 50, "audio_channels": 1, "audio_frames": 32000},
        {"file": "dev/000003.mp4", "n_fakes": 1, "fake_periods": [[1.0, 2.0]], "duration": 2.0,
         "original": "dev/000004.mp4", "modify_video": False, "modify_audio": True, "split": "dev",
         "video_frames": 50, "audio_channels": 1, "audio_frames": 32000},
        {"file": "dev/000004.mp4", "n_fakes": 0, "fake_periods": [], "duration": 2.0, "original": None,
         "modify_video": False, "modify_audio": False, "split": "dev", "video_frames": 50, "audio_channels": 1,
         "audio_frames": 32000},
        {"file": "test/000005.mp4", "n_fakes": 2, "fake_periods": [[0.0, 0.4]], "duration": 2.0,
         "original": None, "modify_video": True, "modify_audio": True, "split": "test", "video_frames": 50,
         "audio_channels": 1, "audio_frames": 32000},
    ]


def test_lavdf_segments_frames_and_official_split(clip, tmp_path):
    root = tmp_path / "LAV-DF"
    records = _lavdf_records()
    _place(clip, root, *(r["file"] for r in records))
    (root / "metadata.json").write_text(json.dumps(records))
    videos, frames = _shards(root, tmp_path, "--fps", "2")
    assert videos.loc["lavdf-train-000002", ["split", "label", "picture_label", "sound_label", "original"]].tolist() \
        == ["train", "fake", "fake", "real", "lavdf-train-000001"]
    assert videos.loc["lavdf-train-000002", "fake_periods"].tolist()[0].tolist() == [0.4, 1.2]
    assert len(videos.loc["lavdf-train-000002", "sound_periods"]) == 0  # the sound was not modified
    assert videos.loc["lavdf-dev-000003", ["split", "picture_label", "sound_label"]].tolist() == ["val", "real", "fake"]
    # frames every 0.5 s: fake where 0.4 <= t < 1.2 and the picture was modified; the audio-only fake's are real
    two = frames[frames["video_id"] == "lavdf-train-000002"].sort_values("second")
    assert (two["second"] - [0.0, 0.5, 1.0, 1.5]).abs().max() < 0.05  # a kept frame may lie a frame late (noref)
    assert two["picture_label"].tolist() == ["real", "fake", "fake", "real"]
    assert set(frames[frames["video_id"] == "lavdf-dev-000003"]["picture_label"]) == {"real"}
    bad = videos.loc["lavdf-test-000005"]  # n_fakes disagrees with its periods: a failed row naming the record
    assert bad["status"] == "failed" and "record 4: n_fakes 2 but 1 fake periods" in bad["error"]
    # a resplit (another seed) keeps the dataset's own split
    run_module("pipeline.resplit", "--shards", tmp_path / "shards", "--manifests", tmp_path / "manifests",
               "--seed", "7", "--val-fraction", "0.5")
    after = pd.read_parquet(tmp_path / "manifests" / "videos.parquet").set_index("video_id")["split"]
    assert after.to_dict() == videos["split"].to_dict()


def test_avdeepfake1m_split_files_modalities_and_test_list(clip, tmp_path):
    root = tmp_path / "AV-Deepfake1M"
    train = [{"file": "id00001/abc/00001.mp4", "original": None, "split": "train", "modify_type": "real",
              "audio_model": "", "fake_segments": [], "visual_fake_segments": [], "audio_fake_segments": [],
              "video_frames": 50, "audio_frames": 32000},
             {"file": "id00001/abc/00002.mp4", "original": "id00001/abc/00001.mp4", "split": "train",
              "modify_type": "both_modified", "audio_model": "yourtts", "fake_segments": [[0.0, 0.6], [1.4, 2.0]],
              "visual_fake_segments": [[1.4, 2.0]], "audio_fake_segments": [[0.0, 0.6]],
              "video_frames": 50, "audio_frames": 32000}]
    val = [{"file": "id00002/xyz/00001.mp4", "original": None, "split": "val", "modify_type": "real",
            "audio_model": "", "fake_segments": [], "visual_fake_segments": [], "audio_fake_segments": [],
            "video_frames": 50, "audio_frames": 32000}]
    _place(clip, root, "train/id00001/abc/00001.mp4", "train/id00001/abc/00002.mp4", "val/id00002/xyz/00001.mp4",
           "test/000001.mp4")
    (root / "train_metadata.json").write_text(json.dumps(train))
    (root / "val_metadata.json").write_text(json.dumps(val))
    (root / "test_files.txt").write_text("000001.mp4\n")
    videos, frames = _shards(root, tmp_path, "--fps", "2")
    assert videos["split"].to_dict() == {"av1m-000001": "test", "av1m-id00001-abc-00001": "train",
                                         "av1m-id00001-abc-00002": "train", "av1m-id00002-xyz-00001": "val"}
    fake = videos.loc["av1m-id00001-abc-00002"]
    assert [fake["label"], fake["picture_label"], fake["sound_label"], fake["speaker"], fake["group"]] == [
        "fake", "fake", "fake", "id00001", "av1m-id00001"]
    assert [p.tolist() for p in fake["sound_periods"]] == [[0.0, 0.6]]
    pic = frames[frames["video_id"] == "av1m-id00001-abc-00002"].sort_values("second")["picture_label"].tolist()
    assert pic == ["real", "real", "real", "fake"]  # the picture's own periods, not the sound's
    assert pd.isna(videos.loc["av1m-000001", "label"])


def test_bad_records_are_one_line_each(tmp_path):
    """A record that is not an object, an unknown modify_type, a period running backwards: failed rows naming the
    record; metadata that is not JSON: one DiscoveryError naming the file."""
    from pipeline.sources.video import DiscoveryError

    av1m = tmp_path / "av1m"
    av1m.mkdir()
    (av1m / "train_metadata.json").write_text(json.dumps([
        1, {"file": "a/b/1.mp4", "modify_type": "weird"},
        {"file": "a/b/2.mp4", "modify_type": "audio_modified", "audio_fake_segments": [[2.0, 1.0]]}]))
    layout, videos = discover(av1m)
    errors = sorted(v.error for v in videos)
    assert layout == "avdeepfake1m" and len(errors) == 3
    assert "train_metadata.json record 0: no 'file'" in errors[0]
    assert "record 1: unknown modify_type 'weird'" in errors[1]
    assert "fake period [2.0, 1.0] in" in errors[2] and "record 2" in errors[2]
    lavdf = tmp_path / "lavdf"
    lavdf.mkdir()
    (lavdf / "metadata.json").write_text('[{"file": "x.mp4",')
    with pytest.raises(DiscoveryError, match="metadata.json: cannot read metadata"):
        discover(lavdf)
