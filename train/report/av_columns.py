"""The sound, fused and lip-sync columns of `dfd benchmark` (--audio-checkpoint, --sync): what evaluate is asked
for on each sharded test set, the entries each cell gets from its result, and the table of them printed after the
main one (video-level AUC, AP and balanced accuracy of the sound alone, the fused verdict and lip sync)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from train.score.tables import markdown_table

COLUMNS = (("sound", "sound video"), ("fused", "fused video"), ("sync", "lip sync video"))
METRICS = (("auc", "roc_auc"), ("ap", "average_precision"), ("balanced_accuracy", "balanced_accuracy"))


@dataclasses.dataclass(frozen=True)
class AvOptions:
    """audio_checkpoint: a sound detector scored with every detector (fused by fuse_rule); sync: manifests ->
    the function evaluate calls with its video table (train.audio.sync_options.sync_function), None: no lip sync."""

    audio_checkpoint: str | Path | None = None
    fuse_rule: str = "noisy-or"
    sync: Callable | None = None

    def evaluate_kwargs(self, manifests, checkpoint=None) -> dict:
        """What evaluate is given for one detector on one test set: a fused package (train.audio.fused_package)
        brings its own sound model and rule where no --audio-checkpoint is given, as `dfd evaluate` takes it."""
        from train.audio.fused_package import fusion_of, sound_model_of

        audio, rule = self.audio_checkpoint, self.fuse_rule
        fusion = fusion_of(checkpoint) if checkpoint is not None and audio is None else None
        if fusion is not None:
            audio, rule = sound_model_of(checkpoint), fusion["rule"]
        return {"audio_checkpoint": audio, "fuse_rule": rule, "sync": self.sync(manifests) if self.sync else None}


def _levels(result: dict) -> dict:
    audio = result.get("audio", {})
    return {"sound": audio.get("sound"), "fused": audio.get("fused"), "sync": result.get("sync")}


def av_cell(result: dict) -> dict:
    """A benchmark cell's sound_/fused_/sync_ entries (video AUC, AP, balanced accuracy, videos scored)."""
    cell = {}
    for name, level in _levels(result).items():
        if level is not None:
            cell.update({f"{name}_video_{key}": level.get(m) for key, m in METRICS})
            cell[f"{name}_videos"] = level.get("videos")
    if "sync" in result:
        cell["sync_not_measured"] = result["sync"]["not_measured"]
    return cell


def av_markdown(bench: dict) -> str:
    """The table of the audio-visual columns ("" when no cell has any)."""
    rows = []
    for d in bench["detectors"]:
        for test in bench["columns"]:
            cell = d["tests"][test]
            for name, label in COLUMNS:
                if f"{name}_videos" in cell:
                    rows.append([d["name"], test, label, cell[f"{name}_videos"],
                                 *(cell.get(f"{name}_video_{key}") for key, _ in METRICS)])
    if not rows:
        return ""
    return "\n" + markdown_table(("detector", "test set", "column", "videos", "AUC", "AP", "balanced accuracy"), rows)
