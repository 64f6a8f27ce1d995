"""The audio run's pictures: the validation windows scored most and least fake, each as a log-mel spectrogram with
its bicoherence magnitude, and the run's report page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dfd.files import save_figure, write_text
from pipeline.stages.sound.wav import log_mel
from train.templates import render

from .features import AudioFeatures, bicoherence_image


def window_figure(items: list[tuple[dict, np.ndarray, int]], spec: AudioFeatures, path: Path, title: str) -> None:
    """One row per window: its log-mel spectrogram and its bicoherence magnitude, titled video, start, label, score."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 2, figsize=(9, 2.4 * len(items)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.2]})
    for (info, w, rate), (ax_s, ax_b) in zip(items, axes):
        mel = log_mel(w.astype(np.float64), rate, bands=64, hop_s=0.01, nfft=512)
        ax_s.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=mel.max() - 80, vmax=mel.max(),
                    extent=[info["start"], info["start"] + len(w) / rate, 0, 64])
        ax_s.set_ylabel("mel band")
        ax_s.set_title(f"{info['video_id']} @ {info['start']:.0f} s, {'fake' if info['label'] else 'real'}, "
                       f"P(fake) {info['p_fake']:.3f}", fontsize=9)
        img = bicoherence_image(w, spec)
        hz = rate / spec.segment * spec.max_bin
        ax_b.imshow(img.T, origin="lower", cmap="viridis", vmin=0, vmax=max(0.3, float(img.max())),
                    extent=[0, hz, 0, hz])
        ax_b.set_title("bicoherence |b(f1, f2)|", fontsize=9)
        ax_b.set_xlabel("f1 (Hz)")
        ax_b.set_ylabel("f2 (Hz)")
    axes[-1][0].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def explain_windows(audio, windows: pd.DataFrame, spec: AudioFeatures, out: Path, k: int = 4) -> dict:
    """top_windows.png and bottom_windows.png in OUT from the scored validation windows."""
    from .features import windows as cut

    ranked = windows.sort_values("p_fake", ascending=False)
    picks = {"top_windows.png": ranked.head(k), "bottom_windows.png": ranked.tail(k).iloc[::-1]}
    wanted = {v for rows in picks.values() for v in rows["video_id"]}
    sound = {row.video_id: (samples, rate) for row, samples, rate in
             audio.sounds(audio.videos[audio.videos["video_id"].isin(wanted)])}
    for name, rows in picks.items():
        items = []
        for r in rows.to_dict("records"):
            samples, rate = sound[r["video_id"]]
            w = dict(cut(samples, rate, spec)).get(r["start"])
            if w is not None:
                items.append((r, w, rate))
        if items:
            window_figure(items, spec, out / name, "highest P(fake)" if name.startswith("top") else "lowest P(fake)")
    return {name: rows[["video_id", "start", "label", "p_fake"]].to_dict("records") for name, rows in picks.items()}


def write_report(out: Path, metrics: dict) -> None:
    """report.html (train/templates/audio_report.html.j2): the metrics, the feature comparison, the top and bottom
    windows."""
    figures = [(f, t) for f, t in (("top_windows.png", "Windows scored most fake"),
                                   ("bottom_windows.png", "Windows scored least fake")) if (out / f).is_file()]
    write_text(out / "report.html", render("audio_report.html.j2", metrics=metrics, figures=figures,
                                           val=[(k, json.dumps(v)) for k, v in metrics["val"].items()],
                                           comparison=metrics.get("comparison", [])))
