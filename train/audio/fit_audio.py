"""`train.run --input audio`: features of the sound's windows, the classifier, the run folder and its report."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dfd.files import write_csv, write_text
from train.score.metrics import compute_metrics, json_safe
from train.paths import RunLayout

from .data import open_audio, window_table
from .grouping import FOLDS, assign_folds, group_keys
from .window_figures import explain_windows, write_report
from .features import AudioFeatures, window_features
from .classifier import fit_model, load, save

log = logging.getLogger(__name__)

# (name, hidden units, which features): what the run compares on folds of unseen groups (train.audio.grouping);
# it keeps the one with the best video AUC there. On `make demo-audio` (36 training clips, validated on the pipeline's
# split where a speaker's other clips sit on both sides) logistic regression over all 72 features had reached 0.88
# against 0.81 for a 64-unit MLP; held to unseen speakers the choice is made again on every run (metrics.json's
# comparison, docs: README "sound detector").
MODELS = (("logistic, bispectral + log-mel", 0, "all"), ("mlp-64, bispectral + log-mel", 64, "all"),
          ("logistic, bispectral only", 0, "bispectral"), ("mlp-64, bispectral only", 64, "bispectral"),
          ("logistic, log-mel only", 0, "mel"), ("mlp-64, log-mel only", 64, "mel"))
SCORES = ("video_auc", "roc_auc", "video_log_loss", "log_loss", "video_balanced_accuracy")


def _columns(spec: AudioFeatures, which: str) -> list[int]:
    n = len(spec.names)
    return {"all": list(range(n)), "bispectral": list(range(spec.n_bispectral)),
            "mel": list(range(spec.n_bispectral, n))}[which]


@dataclasses.dataclass
class Windows:
    """Every window of the pooled videos: meta (video_id, label, start, fold), features x."""

    meta: pd.DataFrame
    x: np.ndarray

    def part(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[mask], self.meta["label"].to_numpy()[mask]


def _windows(audio, videos: pd.DataFrame, spec: AudioFeatures) -> Windows:
    meta, x = window_table(audio, videos, spec, window_features)
    return Windows(meta.assign(fold=meta["video_id"].map(videos.set_index("video_id")["fold"])), x)


def _cross_validate(w: Windows, spec, hidden: int, which: str, epochs: int, seed: int) -> np.ndarray:
    """P(fake) of every validated window (fold >= 0) by a model that was trained on the other folds (NaN for the
    windows that only train)."""
    folds = w.meta["fold"].to_numpy()
    p = np.full(len(folds), np.nan)
    for f in sorted(set(folds) - {-1}):
        model, _ = fit_model(*w.part(folds != f), *w.part(folds == f), spec, hidden=hidden, epochs=epochs,
                             seed=seed, columns=_columns(spec, which))
        p[folds == f] = model.predict(w.x[folds == f])
    return p


def _compare(w: Windows, spec, hidden: int, epochs: int, seed: int) -> tuple[list[dict], dict]:
    """Every model of MODELS (the --hidden one first) on the folds: (comparison rows, the best one's row by video
    AUC on unseen groups)."""
    first = f"mlp-{hidden}, bispectral + log-mel" if hidden else "logistic, bispectral + log-mel"
    validated = w.meta["fold"].to_numpy() >= 0
    val = w.meta[validated]
    comparison = []
    for name, h, which in ((first, hidden, "all"), *[m for m in MODELS if m[0] != first]):
        p = _cross_validate(w, spec, h, which, epochs, seed)[validated]
        row = compute_metrics(val["label"], p, val["video_id"])
        comparison.append({"model": name, "hidden": h, "features": which, **{k: row[k] for k in SCORES}})
        log.info("audio %s: video AUC %.3f, window AUC %.3f (validation folds)", name, row["video_auc"], row["roc_auc"])
    best = max(comparison, key=lambda c: (np.nan_to_num(c["video_auc"], nan=-1.0), -comparison.index(c)))
    return comparison, best


def run_audio(shards: str, manifests: str, out: str | Path, fake_audio: str = "manipulated", hidden: int = 0,
              epochs: int = 300, seed: int = 0, spec: AudioFeatures | None = None, explain: bool = True,
              group_by: str = "speaker", folds: int = FOLDS) -> Path:
    """Train the audio detector; the run folder (checkpoints/audio.pt, metrics.json, history.csv,
    val_windows.csv, report.html with the top and bottom windows). Every model of MODELS is scored on folds of
    unseen groups (--group-by); the best one by video AUC there is kept, trained on every fold but fold 0 and
    stopped on fold 0's loss: metrics["val"] and val_windows.csv are its scores of fold 0 (groups it never heard),
    metrics["cross_validated"] its row of the comparison (every fold)."""
    out, spec = Path(out), spec or AudioFeatures()
    started = time.time()
    audio = open_audio(shards, manifests, fake_audio, pooled=group_by != "split")
    videos = audio.videos[audio.videos["split"].isin(["train", "val"])].copy()
    videos["fold"] = assign_folds(videos, group_by, folds, seed)
    w = _windows(audio, videos, spec)
    grouping = _grouping(videos, group_by, seed, folds)
    log.info("audio: %d videos with sound in %d folds by %s (%d groups); features of %.0f s windows from %.1f s",
             len(videos), grouping["folds"], group_by, grouping["groups"], spec.window_s, spec.skip_start_s)
    comparison, kept = _compare(w, spec, hidden, epochs, seed)
    name, folds_of = kept["model"], w.meta["fold"].to_numpy()
    model, history = fit_model(*w.part(folds_of != 0), *w.part(folds_of == 0), spec, hidden=kept["hidden"],
                               epochs=epochs, seed=seed, columns=_columns(spec, kept["features"]))
    val_meta = w.meta[folds_of == 0].assign(p_fake=model.predict(w.x[folds_of == 0]))
    row = compute_metrics(val_meta["label"], val_meta["p_fake"], val_meta["video_id"])
    save(model, RunLayout(out).checkpoint("audio"), {"fake_audio": fake_audio, "grouping": grouping})
    write_csv(pd.DataFrame(history), out / "history.csv")
    write_csv(val_meta, out / "val_windows.csv")
    metrics = {"model": name, "fake_audio": fake_audio, "features": spec.names, "spec": dataclasses.asdict(spec),
               "grouping": grouping, "train_videos": int((videos["fold"] != 0).sum()),
               "val_videos": int(val_meta["video_id"].nunique()), "train_windows": int((folds_of != 0).sum()),
               "val_windows": int(len(val_meta)), "val": row, "cross_validated": kept, "comparison": comparison,
               "seconds": round(time.time() - started, 1)}
    if explain:
        metrics["explain"] = explain_windows(audio, val_meta, spec, out)
    write_text(out / "metrics.json", json.dumps(json_safe(metrics), indent=2))
    write_report(out, json_safe(metrics))
    alone = next(c for c in comparison if c["model"].startswith("logistic, bispectral only"))
    log.info("held-out clip-level AUC %.3f (%s, %d folds by %s); bispectral features alone %.3f; the kept "
             "model on fold 0 (%d videos) %.3f", kept["video_auc"], name, grouping["folds"], group_by,
             alone["video_auc"], metrics["val_videos"], row["video_auc"])
    return out


def _grouping(videos: pd.DataFrame, by: str, seed: int, folds: int) -> dict:
    """What the folds were made of (metrics.json, the checkpoint): enough to cut them again (train.explain)."""
    keys = group_keys(videos, by) if by != "split" else videos["split"]
    return {"by": by, "seed": seed, "requested_folds": folds, "folds": int(len(set(videos["fold"]) - {-1})),
            "groups": int(keys.nunique()), "with_speaker": int(videos["speaker"].notna().sum()),
            "videos": int(len(videos))}


def validation_videos(audio, grouping: dict | None) -> pd.DataFrame:
    """The videos a run was validated on (fold 0 of its grouping; the val split for runs made before grouping)."""
    if not grouping:
        return audio.split("val")
    videos = audio.videos[audio.videos["split"].isin(["train", "val"])]
    folds = assign_folds(videos, grouping["by"], grouping["requested_folds"], grouping["seed"])
    return videos[folds == 0]


def explain_run(run_dir: str | Path, shards: str, manifests: str | Path, k: int = 4) -> dict:
    """`train.explain` on an audio run: its checkpoint scores the val windows of these shards again, then
    val_windows.csv, the top and bottom windows (spectrograms beside their bicoherence), metrics.json and
    report.html are rewritten."""
    run_dir = Path(run_dir)
    model = load(run_dir)
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {"model": "audio", "comparison": []}
    grouping = metrics.get("grouping")
    audio = open_audio(shards, manifests, metrics.get("fake_audio", "manipulated"),
                       pooled=bool(grouping) and grouping["by"] != "split")
    val_meta, x_val = window_table(audio, validation_videos(audio, grouping), model.spec, window_features)
    val_meta = val_meta.assign(p_fake=model.predict(x_val))
    metrics["val"] = compute_metrics(val_meta["label"], val_meta["p_fake"], val_meta["video_id"])
    metrics["explain"] = explain_windows(audio, val_meta, model.spec, run_dir, k)
    write_csv(val_meta, run_dir / "val_windows.csv")
    write_text(path, json.dumps(json_safe(metrics), indent=2))
    write_report(run_dir, json_safe(metrics))
    return metrics
