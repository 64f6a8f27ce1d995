"""One video's verdict as data: the scored faces (or frames), the video's P(fake) by the model's aggregation rule,
the call at the decision threshold, and the strongest evidence (which face track, which seconds). With an audio
model (dfd check --audio-model) also the sound's windows and the fused P(fake): the video is called fake when its
picture reaches the image model's threshold or its sound reaches SOUND_THRESHOLD (a fake picture or a fake voice
makes a fake video); its P(fake) is the fusion rule's (train.audio.fuse). Pure: the scoring (train.score.one_video,
train.audio.sound_of_files) fills it, the command prints it, the page (train.report.verdict_page) draws it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.score import metrics
from train.score.localisation import segments_at

FAKE, REAL, NO_FACE, FAILED = "FAKE", "REAL", "NO FACE", "FAILED"
SYNC_THRESHOLD = 0.5  # lip sync's p_fake at which picture and sound are called apart (train.audio.sync's rule)
SYNC_RULES = ("off", "uncertain")  # how the verdict uses lip sync (dfd check --sync-verdict); off: reported only
UNCERTAIN = 0.15  # "uncertain": the picture's P(fake) within this of its threshold (and the sound's of 0.5, if any)
SOUND_THRESHOLD = 0.5  # the audio detector is trained class-balanced (train.audio.classifier): 0.5 is its own EER-like point


@dataclass
class Sound:
    """The sound's part of a checked video: its windows (start second, P(fake)), the video's P(fake) (their mean;
    None without sound to score, with the note saying why), the fusion rule and the fused P(fake)."""

    rule: str
    model: str
    window_s: float
    hop_s: float
    p_fake: float | None = None
    starts: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)
    note: str | None = None
    fused: float | None = None  # the rule over picture and sound (the picture's alone without sound)
    threshold: float = SOUND_THRESHOLD  # an exported audio package's own (chosen on its validation), else 0.5
    fused_threshold: float | None = None  # a fused package's (train.audio.fused_package): the call is fused >= it


@dataclass
class Sync:
    """Lip sync of a checked video (dfd check --sync, train.audio.sync): the sound's lag at the best agreement of
    mouth and speech, that agreement, its margin over the other lags, the agreement per sliding window, and p_fake
    by `rule`; p_fake None (with the note saying why) when there is nothing to measure."""

    rule: str
    p_fake: float | None = None
    offset_s: float | None = None
    agreement: float | None = None
    confidence: float | None = None
    in_sync: float | None = None
    starts: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)
    note: str | None = None
    fps: float | None = None
    seconds: float | None = None
    lags_s: list[float] = field(default_factory=list)
    correlation: list[float] = field(default_factory=list)
    window_s: float | None = None  # the sliding windows' length
    use: str = "off"  # SYNC_RULES: whether the verdict uses it

    def as_dict(self) -> dict:
        return {"p_fake": self.p_fake, "offset_s": self.offset_s, "agreement": self.agreement,
                "confidence": self.confidence, "in_sync": self.in_sync, "threshold": SYNC_THRESHOLD,
                "rule": self.rule, "verdict_use": self.use, "note": self.note, "fps": self.fps,
                "seconds": self.seconds, "window_s": self.window_s, "windows": [{"start": s, "agreement": a}
                                                     for s, a in zip(self.starts, self.windows)]}


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
    clip: np.ndarray | None = None      # clips: uint8 TxHxWx3, the model's input (crop is its middle frame)
    status: str | None = None           # clips: the clips stage's status (done, gap, corrupt)


@dataclass
class Verdict:
    path: Path
    input: str                          # frames | faces | clips (an item per clip, at its first frame's second)
    #                                     | face-clips (an item per face tube, at its clip's first frame's second)
    threshold: dict
    aggregate: str
    items: list[Item] = field(default_factory=list)
    jpegs: list[bytes] = field(default_factory=list)  # the sampled frames as the pipeline made them
    seconds: list[float] = field(default_factory=list)
    size: tuple[int, int] | None = None  # the frames' width, height
    error: str | None = None
    timings: dict = field(default_factory=dict)
    sound: Sound | None = None
    sync: Sync | None = None
    unscored: list[dict] = field(default_factory=list)  # face-clips: the clips without a face (start, status, warning)

    @property
    def p_picture(self) -> float | None:
        if not self.items:
            return None
        return metrics.aggregate([i.p_fake for i in self.items], self.aggregate,
                                 seconds=[i.second for i in self.items])

    @property
    def p_fake(self) -> float | None:
        """The picture's P(fake), or with sound the fused one (the sound's alone where no face was found)."""
        if self.sound is not None and self.sound.fused is not None:
            return self.sound.fused
        return self.p_picture

    @property
    def label(self) -> str:
        if self.error is not None:
            return FAILED
        picture, sound = self.p_picture, self.sound.p_fake if self.sound else None
        if picture is None and sound is None:
            return NO_FACE
        if sound is not None and picture is not None and self.sound.fused_threshold is not None:
            fake = self.sound.fused >= self.sound.fused_threshold  # a fused package: its rule at its threshold
        else:
            fake = ((picture is not None and picture >= self.threshold["value"])
                    or (sound is not None and sound >= self.sound.threshold))
        return FAKE if fake or self.sync_decides() else REAL

    def sync_decides(self) -> bool:
        """--sync-verdict uncertain: lip sync calls the video fake where the picture (and the sound, if judged) is
        uncertain, within UNCERTAIN of its threshold, and the sync's p_fake reaches SYNC_THRESHOLD."""
        sync, picture = self.sync, self.p_picture
        if sync is None or sync.use != "uncertain" or sync.p_fake is None or sync.p_fake < SYNC_THRESHOLD:
            return False
        sound = self.sound.p_fake if self.sound else None
        return ((picture is None or abs(picture - self.threshold["value"]) <= UNCERTAIN)
                and (sound is None or abs(sound - self.sound.threshold) <= UNCERTAIN))

    def tracks(self) -> list[dict]:
        """Per face track (frames models: one track, None): id, P(fake) by the rule, peak, seconds; strongest first."""
        out = []
        for track in sorted({i.track for i in self.items}, key=lambda t: -1 if t is None else t):
            items = [i for i in self.items if i.track == track]
            scores = [i.p_fake for i in items]
            p_fake = metrics.aggregate(scores, self.aggregate, seconds=[i.second for i in items])
            out.append({"track": track, "p_fake": p_fake, "max": max(scores),
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


def clip_p_fake(tubes: list[float], rule: str) -> float:
    """A clip's P(fake) from its face tubes': the run's rule over one clip (frame_max: the max over its faces)."""
    return metrics.aggregate(tubes, rule, seconds=[0.0] * len(tubes))


def face_clip_rows(verdict: Verdict) -> list[dict]:
    """A face-clips verdict's clips in time order: per clip its start, P(fake) (clip_p_fake over its tubes), status
    and tubes; a clip without a face with p_fake None, its status (no_face) and why."""
    by_start: dict[float, list[Item]] = {}
    for item in verdict.items:
        by_start.setdefault(item.second, []).append(item)
    rows = [{"start": s, "p_fake": clip_p_fake([i.p_fake for i in items], verdict.aggregate), "status": items[0].status,
             "tubes": [{"face": i.face, "track": i.track, "box": list(i.box), "p_fake": i.p_fake} for i in items]}
            for s, items in by_start.items()]
    rows += [{"start": r["start"], "p_fake": None, "status": r["status"], "clip_status": r["clip_status"],
              "warning": r["warning"], "tubes": []} for r in verdict.unscored]
    return sorted(rows, key=lambda r: r["start"])


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
    who = ("clips" if verdict.input == "clips" else "frames") if ev["track"] is None else f"face track {ev['track']} (of {ev['tracks']})"
    where = "at" if ev["above_threshold"] else "most suspicious at"
    gaps = np.diff(sorted(verdict.seconds))
    step = float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0
    return f"{who} {where} {seconds_text(ev['seconds'], step)}, peak P(fake) {ev['max']:.3f}"


def sound_text(verdict: Verdict) -> str:
    """The sound's part of the line: its P(fake) at its threshold and its most suspicious seconds, or the note."""
    sound = verdict.sound
    if sound is None:
        return ""
    if sound.p_fake is None:
        return f"sound: {sound.note}"
    above = [s for s, p in zip(sound.starts, sound.windows) if p >= sound.threshold]
    where = f", fake-sounding windows starting at {seconds_text(above, sound.hop_s)}" if above else ""
    return f"sound P(fake) {sound.p_fake:.3f} (threshold {sound.threshold:.3f}{where})"


def sync_text(sync: Sync | None) -> str:
    """Lip sync's part of the line: its p_fake, the sound's lag and the agreement, or why there is none."""
    if sync is None:
        return ""
    if sync.p_fake is None:
        return f"; lip sync: not measured ({sync.note})"
    return (f"; lip sync P(fake) {sync.p_fake:.3f} (sound lag {sync.offset_s:+.2f} s, agreement {sync.agreement:.2f}, "
            f"margin {sync.confidence:.2f}; verdict use: {sync.use})")


def line(verdict: Verdict, name: str) -> str:
    """The one line `dfd check` prints per video (with lip sync's part where measured)."""
    text = _line(verdict, name)
    return text if verdict.error is not None else text + sync_text(verdict.sync)


def _line(verdict: Verdict, name: str) -> str:
    if verdict.error is not None:
        return f"{name}: {FAILED}: {verdict.error}"
    t = verdict.threshold["value"]
    sound = verdict.sound
    if verdict.p_picture is None:
        no_face = (f"no face in the first frame of any of its {len(verdict.seconds)} clips"
                   if verdict.input == "face-clips" else f"no face found in {len(verdict.seconds)} sampled frames")
        if sound is None or sound.p_fake is None:
            return f"{name}: {NO_FACE}: {no_face}; no verdict" + (f"; {sound_text(verdict)}" if sound else "")
        return f"{name}: {verdict.label} P(fake) {verdict.p_fake:.3f} from the sound alone ({no_face}); " + sound_text(
            verdict)
    if sound is None:
        return (f"{name}: {verdict.label} P(fake) {verdict.p_fake:.3f} (threshold {t:.3f}); strongest: "
                f"{evidence_text(verdict)}")
    fused = f" {sound.rule} of picture and sound" if sound.p_fake is not None else ""
    if fused and sound.fused_threshold is not None:
        fused += f" (fused threshold {sound.fused_threshold:.3f})"
    return (f"{name}: {verdict.label} P(fake) {verdict.p_fake:.3f}{fused}; picture P(fake) {verdict.p_picture:.3f} "
            f"(threshold {t:.3f}), strongest: {evidence_text(verdict)}; {sound_text(verdict)}")


def picture_segments(verdict: Verdict) -> list[dict]:
    """The predicted fake segments of the picture: runs of sampled seconds whose P(fake) (a faces model: the most
    suspicious face's) reaches the decision threshold, [{start, end, score}] (train.score.localisation)."""
    peak: dict[float, float] = {}
    for item in verdict.items:
        peak[item.second] = max(peak.get(item.second, 0.0), item.p_fake)
    return segments_at(list(peak), list(peak.values()), verdict.threshold["value"]) if peak else []


def sound_segments(sound: Sound) -> list[dict]:
    """The predicted fake segments of the sound: runs of windows whose P(fake) reaches the sound's threshold, from
    the end of the window before the run to the start of the one after (train.score.localisation)."""
    if not sound.starts:
        return []
    return segments_at(sound.starts, sound.windows, sound.threshold, sound.hop_s, window=sound.window_s)


def as_json(verdict: Verdict, name: str) -> dict:
    """The same verdict for `--json` (one object per line)."""
    ev = verdict.evidence()
    return metrics.json_safe({
        "video": name, "path": str(verdict.path), "verdict": verdict.label, "p_fake": verdict.p_fake,
        "threshold": verdict.threshold["value"], "threshold_rule": verdict.threshold.get("rule"),
        "aggregate": verdict.aggregate, "input": verdict.input, "error": verdict.error,
        "frames": len(verdict.seconds), "items": len(verdict.items), "evidence": ev,
        "tracks": [{k: v for k, v in t.items()} for t in verdict.tracks()], "timings": verdict.timings,
        "p_picture": verdict.p_picture, "segments": picture_segments(verdict), "sync": None if verdict.sync is None else verdict.sync.as_dict(),
        **({"clips": [{"start": i.second, "p_fake": i.p_fake, "status": i.status} for i in verdict.items]}
           if verdict.input == "clips" else
           {"clips": face_clip_rows(verdict)} if verdict.input == "face-clips" else {}),
        "sound": None if verdict.sound is None else {
            "p_fake": verdict.sound.p_fake, "threshold": verdict.sound.threshold, "rule": verdict.sound.rule,
            "fused_threshold": verdict.sound.fused_threshold,
            "note": verdict.sound.note, "model": verdict.sound.model, "window_s": verdict.sound.window_s,
            "hop_s": verdict.sound.hop_s, "segments": sound_segments(verdict.sound),
            "windows": [{"start": s, "p_fake": p} for s, p in zip(verdict.sound.starts, verdict.sound.windows)]}})
