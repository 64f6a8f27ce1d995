"""One video's verdict as data: the scored faces (or frames), the video's P(fake) by the model's aggregation rule,
the call at the decision threshold, and the strongest evidence (which face track, which seconds). Pure: the
scoring (train.score.check) fills it, the command prints it, the page (train.report.verdict) draws it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.score import metrics

FAKE, REAL, NO_FACE, FAILED = "FAKE", "REAL", "NO FACE", "FAILED"


@dataclass
class Item:
    """One scored face (or, for a frames model, one frame): where and when, its P(fake), what the model saw."""

    frame: int                          # index into Verdict.jpegs / seconds
    second: float
    p_fake: float
    crop: np.ndarray                    # uint8 HxWx3 at the model's input size: exactly the model's input
    track: int | None = None            # faces: the faces stage's track id (one person across seconds)
    face: int | None = None
    box: tuple[float, float, float, float] | None = None  # faces: x0, y0, x1, y1 in frame pixels


@dataclass
class Verdict:
    path: Path
    input: str                          # frames | faces
    threshold: dict
    aggregate: str
    items: list[Item] = field(default_factory=list)
    jpegs: list[bytes] = field(default_factory=list)  # the sampled frames as the pipeline made them
    seconds: list[float] = field(default_factory=list)
    size: tuple[int, int] | None = None  # the frames' width, height
    error: str | None = None
    timings: dict = field(default_factory=dict)

    @property
    def p_fake(self) -> float | None:
        if not self.items:
            return None
        return metrics.aggregate([i.p_fake for i in self.items], self.aggregate)

    @property
    def label(self) -> str:
        if self.error is not None:
            return FAILED
        if self.p_fake is None:
            return NO_FACE
        return FAKE if self.p_fake >= self.threshold["value"] else REAL

    def tracks(self) -> list[dict]:
        """Per face track (frames models: one track, None): id, P(fake) by the rule, peak, seconds; strongest first."""
        out = []
        for track in sorted({i.track for i in self.items}, key=lambda t: -1 if t is None else t):
            items = [i for i in self.items if i.track == track]
            scores = [i.p_fake for i in items]
            out.append({"track": track, "p_fake": metrics.aggregate(scores, self.aggregate), "max": max(scores),
                        "faces": len(items), "seconds": sorted({i.second for i in items})})
        return sorted(out, key=lambda t: -t["p_fake"])

    def evidence(self) -> dict | None:
        """The strongest track and the seconds where its P(fake) reaches the threshold (else its top three). Only
        tracks seen more than a quarter as often as the longest compete: a one-frame false detection (a vase, a
        poster) is not the person the video is about, however high it scores."""
        tracks = self.tracks()
        if not tracks:
            return None
        longest = max(t["faces"] for t in tracks)
        top = next(t for t in tracks if 4 * t["faces"] > longest)
        items = sorted((i for i in self.items if i.track == top["track"]), key=lambda i: -i.p_fake)
        above = sorted({i.second for i in items if i.p_fake >= self.threshold["value"]})
        return {"track": top["track"], "track_p_fake": top["p_fake"], "max": top["max"],
                "seconds": above or sorted({i.second for i in items[:3]}), "above_threshold": bool(above),
                "tracks": len(tracks)}


def seconds_text(seconds: list[float], step: float = 1.0) -> str:
    """[1, 2, 3, 7] -> '1-3 s, 7 s': runs of consecutive samples (`step` apart: 1 / fps) joined."""
    runs: list[list[float]] = []
    for s in sorted(seconds):
        if runs and s - runs[-1][-1] <= step * 1.01:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]:.3g}-{r[-1]:.3g} s" if len(r) > 1 else f"{r[0]:.3g} s" for r in runs)


def evidence_text(verdict: Verdict) -> str:
    ev = verdict.evidence()
    if ev is None:
        return ""
    who = "frames" if ev["track"] is None else f"face track {ev['track']} (of {ev['tracks']})"
    where = "at" if ev["above_threshold"] else "most suspicious at"
    gaps = np.diff(sorted(verdict.seconds))
    step = float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0
    return f"{who} {where} {seconds_text(ev['seconds'], step)}, peak P(fake) {ev['max']:.3f}"


def line(verdict: Verdict, name: str) -> str:
    """The one line `dfd check` prints per video."""
    if verdict.error is not None:
        return f"{name}: {FAILED}: {verdict.error}"
    if verdict.p_fake is None:
        return f"{name}: {NO_FACE}: no face found in {len(verdict.seconds)} sampled frames; no verdict"
    t = verdict.threshold["value"]
    return (f"{name}: {verdict.label} P(fake) {verdict.p_fake:.3f} (threshold {t:.3f}); strongest: "
            f"{evidence_text(verdict)}")


def as_json(verdict: Verdict, name: str) -> dict:
    """The same verdict for `--json` (one object per line)."""
    ev = verdict.evidence()
    return metrics.json_safe({
        "video": name, "path": str(verdict.path), "verdict": verdict.label, "p_fake": verdict.p_fake,
        "threshold": verdict.threshold["value"], "threshold_rule": verdict.threshold.get("rule"),
        "aggregate": verdict.aggregate, "input": verdict.input, "error": verdict.error,
        "frames": len(verdict.seconds), "items": len(verdict.items), "evidence": ev,
        "tracks": [{k: v for k, v in t.items()} for t in verdict.tracks()], "timings": verdict.timings})
