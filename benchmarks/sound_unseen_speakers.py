"""The sound detector held to voices it never heard, and a silent first second (issue 27 item 4): the figures of
the README's section 4b, made again.

From the DFDC sample's four clips (four voices) `demodata.audio --layout fakeavceleb` makes three FakeAVCeleb trees
of 28 real and 28 fake 2.5 s clips: A, fakes resynthesised by Griffin-Lim; B, fakes that keep the real voice with
their first second silenced; C, Griffin-Lim fakes with their first second silenced. Each is sharded by `dfd
shards`; `train.run --input audio` then compares its six variants on folds by speaker (A also by video and by the
dataset's split), with and without `--skip-start 1`. Last, every variant trained on whole clips is scored on its
held-out speaker's clips with the first second removed. Prints one markdown table (clip-level AUC).

    python benchmarks/sound_unseen_speakers.py --work /tmp/sound-unseen     # about 15 minutes on 2 cores
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.audio.classifier import fit_model  # noqa: E402
from train.audio.data import open_audio  # noqa: E402
from train.audio.features import AudioFeatures  # noqa: E402
from train.audio.fit_audio import MODELS, _columns, _windows  # noqa: E402
from train.audio.grouping import assign_folds  # noqa: E402
from train.score.metrics import compute_metrics  # noqa: E402

DATASETS = {"A": ("griffin-lim", "0"), "B": ("same", "1"), "C": ("griffin-lim", "1")}
RUNS = (("A", "video", "0"), ("A", "split", "0"), ("A", "speaker", "0"), ("A", "speaker", "1"),
        ("B", "speaker", "0"), ("B", "speaker", "1"), ("C", "speaker", "0"), ("C", "speaker", "1"))


def _python(*args) -> None:
    subprocess.run([sys.executable, "-m", *map(str, args)], check=True, cwd=ROOT)


def make(work: Path) -> None:
    for name, (fake, silent) in DATASETS.items():
        d = work / name
        if not (d / "manifests" / "dataset.json").is_file():
            _python("demodata.audio", "--out", d / "videos", "--layout", "fakeavceleb", "--fake", fake,
                    "--silent-start", silent)
            _python("dfd", "shards", "--videos", d / "videos", "--shards", d / "shards", "--manifests",
                    d / "manifests", "--workers", "1", "--size", "64x48")


def train(work: Path) -> dict:
    out = {}
    for name, by, skip in RUNS:
        run = work / name / f"run-{by}-skip{skip}"
        if not (run / "metrics.json").is_file():
            _python("train.run", "--input", "audio", "--shards", work / name / "shards", "--manifests",
                    work / name / "manifests", "--out", run, "--no-explain", "--group-by", by, "--skip-start", skip)
        metrics = json.loads((run / "metrics.json").read_text())
        out[f"{name}, by {by}, skip {skip}"] = {c["model"]: c["video_auc"] for c in metrics["comparison"]}
    return out


def removed_at_test(work: Path, name: str) -> dict:
    """Each variant trained on whole clips of the other speakers, scored on the held-out one's without 0-1 s."""
    audio = open_audio(work / name / "shards", work / name / "manifests", pooled=True)
    videos = audio.videos[audio.videos["split"].isin(["train", "val"])].copy()
    videos["fold"] = assign_folds(videos, "speaker")
    spec = AudioFeatures()
    whole, cut = _windows(audio, videos, spec), _windows(audio, videos, AudioFeatures(skip_start_s=1.0))
    f0, f1 = whole.meta["fold"].to_numpy(), cut.meta["fold"].to_numpy()
    out = {}
    for model_name, hidden, which in MODELS:
        p = np.full(len(f1), np.nan)
        for f in sorted(set(f0)):
            model, _ = fit_model(*whole.part(f0 != f), *whole.part(f0 == f), spec, hidden=hidden,
                                 columns=_columns(spec, which))
            p[f1 == f] = model.predict(cut.x[f1 == f])
        out[model_name] = compute_metrics(cut.meta["label"], p, cut.meta["video_id"])["video_auc"]
    return out


@click.command()
@click.option("--work", required=True, type=click.Path(file_okay=False, path_type=Path))
def main(work: Path) -> None:
    make(work)
    rows = train(work)
    rows.update({f"{n}, by speaker, trained whole, first second removed at test": removed_at_test(work, n)
                 for n in DATASETS})
    names = [m for m, _, _ in MODELS]
    click.echo("| run | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for run, aucs in rows.items():
        click.echo(f"| {run} | " + " | ".join(f"{aucs[n]:.3f}" for n in names) + " |")


if __name__ == "__main__":
    main()
