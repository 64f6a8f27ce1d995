"""Two verdicts, one video: the picture's P(fake) and the voice's, fused by a stated rule.

A video is fake if its picture or its sound was manipulated. noisy-or (the default) reads the two scores as
independent chances that each part is fake: P(fake) = 1 - (1 - p_picture) (1 - p_sound), so either one alone can
make the video fake and two middling scores add up; max takes the more suspicious of the two. A video without sound
(or whose sound could not be decoded) is scored on its picture alone, with a note saying so."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .features import windows
from .classifier import AudioModel

FUSE_RULES = ("noisy-or", "max")
NO_SOUND = "no sound: scored on the picture alone"
SILENT = "silent sound: scored on the picture alone"


def fuse(p_picture, p_sound, rule: str = "noisy-or"):
    """The video's P(fake) from its picture's and its sound's (arrays or floats; NaN sound: the picture's)."""
    if rule not in FUSE_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; allowed: {', '.join(FUSE_RULES)}")
    a, b = np.asarray(p_picture, dtype=np.float64), np.asarray(p_sound, dtype=np.float64)
    fused = 1 - (1 - a) * (1 - b) if rule == "noisy-or" else np.maximum(a, b)
    return np.where(np.isnan(b), a, fused)


def sound_windows(model: AudioModel, samples: np.ndarray, rate: int) -> pd.DataFrame:
    """start, p_fake of each window of a sound that is not silence (empty: nothing to score)."""
    from .features import window_features

    cut = windows(samples, rate, model.spec)
    if not cut:
        return pd.DataFrame({"start": [], "p_fake": []})
    x = np.stack([window_features(w, rate, model.spec) for _, w in cut])
    return pd.DataFrame({"start": [s for s, _ in cut], "p_fake": model.predict(x)})


def video_sound(model: AudioModel, samples: np.ndarray, rate: int) -> tuple[float, str | None, pd.DataFrame]:
    """(the video's sound P(fake), the mean over its windows, or NaN; a note where NaN; its windows)."""
    w = sound_windows(model, samples, rate)
    if w.empty:
        return float("nan"), SILENT, w
    return float(w["p_fake"].mean()), None, w


def fused_scores(scores: pd.DataFrame, sound: pd.DataFrame, rule: str = "noisy-or",
                 failed: set[str] = frozenset(), on: str = "filename") -> pd.DataFrame:
    """The submission (filename, label) with the sound's verdict fused in: columns picture, sound, label, note.
    `sound` has filename, sound (P(fake) of the sound, NaN where there is none) and note. A video in `failed`
    (its picture could not be scored) keeps its submission label."""
    out = scores.rename(columns={"label": "picture"}).merge(sound[[on, "sound", "note"]], on=on, how="left")
    out["label"] = fuse(out["picture"], out["sound"], rule)
    bad = out[on].isin(failed)
    out.loc[bad, "label"] = out.loc[bad, "picture"]
    out["note"] = out["note"].where(out["sound"].notna(), out["note"].fillna(NO_SOUND))
    return out[[on, "label", "picture", "sound", "note"]]
