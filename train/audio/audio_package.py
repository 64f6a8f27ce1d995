"""`dfd export` of a sound detector: its run folder -> a model package like an image model's (model.safetensors,
config.json with "kind": "audio", README.md), loaded back by train.audio.classifier.load (so `dfd check
--audio-model`, `dfd evaluate --checkpoint` and --audio-checkpoint take the folder). The decision threshold is
chosen on the run's validation scores (val_windows.csv: its fold of unseen groups), a video's P(fake) being the mean
of its windows'."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import safetensors.torch

from dfd.files import write_bytes, write_text
from train.paths import CARD, CONFIG, FORMAT, FORMAT_VERSION, WEIGHTS, PackageError, RunLayout
from train.score import metrics
from train.templates import render

from .classifier import PACKAGE_KIND, AudioModel, load


def _run_of(reference: Path) -> Path:
    """The run folder of an audio run folder or of its checkpoints/audio.pt."""
    layout = RunLayout.of_checkpoint(reference) if reference.is_file() else None
    return layout.root if layout is not None else reference


def val_videos(run: Path) -> pd.DataFrame:
    """The run's validation videos (video_id, label, p_fake: the mean of its windows') from val_windows.csv."""
    path = run / "val_windows.csv"
    if not path.is_file():
        raise PackageError(f"{run}: no val_windows.csv to choose the threshold on; run `dfd explain --run {run} "
                           "--shards ... --manifests ...` first")
    windows = pd.read_csv(path)
    return windows.groupby("video_id", as_index=False).agg(label=("label", "max"), p_fake=("p_fake", "mean"))


def package_config(model: AudioModel, threshold: dict, run_metrics: dict, source: dict) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": PACKAGE_KIND,
            "model": run_metrics.get("model"), "classes": ["real", "fake"], "spec": dataclasses.asdict(model.spec),
            "feature_names": [model.spec.names[i] for i in model.columns], "columns": model.columns,
            "hidden": model.hidden, "fake_audio": model.fake_audio, "aggregate": "mean of the windows' P(fake)",
            "threshold": threshold, "grouping": run_metrics.get("grouping"), "validation": run_metrics.get("val"),
            "cross_validated": run_metrics.get("cross_validated"), "source": source}


def export_audio(reference: str | Path, out: str | Path, at_fpr: float | None = None) -> dict:
    """Write the package; returns its config.json."""
    reference, out = Path(reference), Path(out)
    model = load(reference)
    run = _run_of(reference)
    run_metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    videos = val_videos(run)
    try:
        chosen = metrics.choose_threshold(videos["label"], videos["p_fake"], at_fpr)
    except ValueError as err:
        raise PackageError(f"{run / 'val_windows.csv'}: {err}") from None
    threshold = {**chosen, "split": "val", "level": "video", "aggregate": "mean"}
    config = package_config(model, threshold, run_metrics, {"run": str(run)})
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    state["features.mean"] = _tensor(model.mean)
    state["features.std"] = _tensor(model.std)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / WEIGHTS, safetensors.torch.save(state, metadata={"format": "pt"}))
    write_text(out / CONFIG, json.dumps(metrics.json_safe(config), indent=2) + "\n")
    write_text(out / CARD, render("audio_card.md.j2", config=metrics.json_safe(config), name=out.name))
    return config


def _tensor(values):
    import torch

    return torch.as_tensor(values, dtype=torch.float32).contiguous()
