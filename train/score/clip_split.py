"""A clip model's labelled split (`dfd evaluate --shards`, `dfd benchmark`): the clip shards of a clips model, the
face-clip shards (the faces stage's face tubes) of a face-clips model, refused in one line naming what the test
set lacks; and each face tube's clip start, so that a rule grouping a video's items by frame (frame_max) takes a
clip's tubes together as `dfd check` and `dfd predict` do."""
from __future__ import annotations

import pandas as pd

from pipeline.dataset import Dataset, DatasetError, read_dataset_json
from train.data.clip_streams import ClipShards
from train.paths import CheckpointError


def clip_shards(dataset: Dataset, input: str) -> ClipShards:
    """The dataset's shards a model of --input `input` (clips, face-clips) is scored on; CheckpointError naming
    the dataset.json and the step that makes what is missing."""
    where = dataset.manifests / "dataset.json"
    if dataset.clip_spec is None:
        then = " then `dfd faces` (its face tubes)" if input == "face-clips" else ""
        raise CheckpointError(f"{where} has no clip shards, and a model of --input {input} is scored on "
                              f"{'the face tubes of its clips' if then else 'them'}: make the shards with `dfd shards "
                              f"--clip-frames T`{then}, or score a frames model on it")
    if input == "face-clips" and not isinstance(read_dataset_json(dataset.manifests).get("face_clips"), dict):
        raise CheckpointError(f"{where} has no face-clip shards (face tubes), which a model of --input face-clips is "
                              "scored on: run `dfd faces` on the dataset")
    try:
        return ClipShards(dataset, input)
    except DatasetError as err:
        raise CheckpointError(str(err)) from None


def with_clip_starts(items: pd.DataFrame, dataset: Dataset, input: str) -> pd.DataFrame:
    """A face-clips model's tube rows with `second`, their clip's start (face_clips.parquet); others as they are."""
    if input != "face-clips" or items.empty:
        return items
    starts = dataset.face_clips(["key", "start"], status=None, clip_status=None).dropna(subset=["key"])
    return items.assign(second=items["key"].map(starts.set_index("key")["start"]).astype("float64"))
