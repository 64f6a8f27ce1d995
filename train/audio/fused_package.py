"""`dfd export --checkpoint PICTURE --audio-checkpoint SOUND`: one package holding a picture model and a sound model,
fused by a stated rule at a threshold chosen on validation.

    PKG/model.safetensors, config.json, README.md        the picture model's package (train.score.card), whose
                                                         config.json gains "fusion" and whose card lists both
    PKG/sound/model.safetensors, config.json, README.md  the sound model's (train.audio.audio_package)

The fused threshold is chosen by the rule export uses for one model (train.score.metrics.choose_threshold: the EER
point, or with --threshold-at-fpr the lowest threshold at that false-positive rate) on the fused validation scores
(train.audio.fuse) of the videos both models scored: the picture's val videos (its run's explain scores, else its val
split scored at export) joined with the sound's (its run's val_windows.csv, a video's P(fake) the mean of its
windows'). `dfd check --model PKG` (and `dfd evaluate --checkpoint PKG`) then fuse the two by the package's rule and
call a video fake at the fused threshold; a video without sound is judged on its picture at the picture's own."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dfd.files import write_text
from train.paths import CARD, CONFIG, PackageError, is_package
from train.score import metrics
from train.score.card import val_scores
from train.score.threshold import describe

from .audio_package import _run_of, export_audio, val_videos
from .fuse import FUSE_RULES, fuse

SOUND_FOLDER = "sound"


def fusion_of(reference: str | Path) -> dict | None:
    """A fused package's "fusion" section (rule, threshold, sound folder); None for anything else."""
    if not is_package(reference):
        return None
    try:
        data = json.loads((Path(reference) / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    fusion = data.get("fusion") if isinstance(data, dict) else None
    if fusion is None:
        return None
    threshold = fusion.get("threshold") if isinstance(fusion, dict) else None
    value = threshold.get("value") if isinstance(threshold, dict) else None
    if (not isinstance(fusion, dict) or fusion.get("rule") not in FUSE_RULES or isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value <= 1):
        raise PackageError(f"{Path(reference) / CONFIG}: its fusion section needs a rule ({', '.join(FUSE_RULES)}) "
                           "and a threshold value from 0 to 1 (export it again)")
    return fusion


def sound_model_of(reference: str | Path) -> Path:
    """The sound model's folder inside a fused package."""
    folder = Path(reference) / fusion_of(reference).get("sound", SOUND_FOLDER)
    if not (folder / CONFIG).is_file():
        raise PackageError(f"{folder}: the fused package's sound model is missing (export it again)")
    return folder


def fused_threshold(picture: pd.DataFrame, sound: pd.DataFrame, rule: str, at_fpr: float | None,
                    where: str) -> dict:
    """choose_threshold on the fused scores of the videos both scored; PackageError when none or one class."""
    both = picture.merge(sound, on="video_id", suffixes=("_picture", "_sound"))
    if both.empty:
        raise PackageError(f"{where}: no validation video was scored by both models (the picture's and the sound's "
                           "val videos do not meet): train them on the same dataset")
    fused = fuse(both["p_fake_picture"], both["p_fake_sound"], rule)
    try:
        chosen = metrics.choose_threshold(both["label_picture"], fused, at_fpr)
    except ValueError as err:
        raise PackageError(f"{where}: cannot choose the fused threshold on the {len(both)} validation videos both "
                           f"models scored: {err}") from None
    return {**chosen, "split": "val", "level": "video", "aggregate": f"{rule} of picture and sound",
            "source": f"the {len(both)} validation videos both models scored"}


def export_fused(picture_export, checkpoint: Path, config, audio: str | Path, out: Path, rule: str,
                 at_fpr: float | None, shards, manifests, device: str) -> dict:
    """`picture_export()` writes the picture's package into out (train.score.card.export, as for one model); then
    the sound's into out/sound, the fused threshold, config.json's "fusion" and the card's section. Returns
    config.json."""
    if rule not in FUSE_RULES:
        raise PackageError(f"unknown fusion rule {rule!r}; allowed: {', '.join(FUSE_RULES)}")
    val = val_scores(checkpoint, config, shards, manifests, device)  # scored once: the picture's threshold too
    threshold = fused_threshold(val[0][["video_id", "label", "p_fake"]], val_videos(_run_of(Path(audio))), rule,
                                at_fpr, f"{checkpoint} + {audio}")
    package = picture_export(val=val)
    sound = export_audio(audio, out / SOUND_FOLDER, at_fpr)
    package["fusion"] = {"rule": rule, "sound": SOUND_FOLDER, "threshold": threshold,
                         "picture_threshold": package["threshold"]["value"],
                         "sound_threshold": sound["threshold"]["value"],
                         "no_sound": "judged on the picture alone, at the picture's threshold"}
    write_text(out / CONFIG, json.dumps(metrics.json_safe(package), indent=2) + "\n")
    card = (out / CARD).read_text().replace("- Sound is not judged. ", "- The sound is judged too (see Picture and "
                                            "sound). ")
    card = card.replace("\n## Training data", card_section(package, sound) + "\n## Training data", 1)
    write_text(out / CARD, card.replace("## Files\n\n", f"## Files\n\n- `{SOUND_FOLDER}/`: the sound model's package "
                                        "(its own `model.safetensors`, `config.json` and `README.md`)\n", 1))
    return package


def card_section(package: dict, sound: dict) -> str:
    """The card's "Picture and sound" section: both models, the rule, the fused threshold and how it was chosen."""
    fusion, t = package["fusion"], package["fusion"]["threshold"]
    formula = ("1 - (1 - p_picture) (1 - p_sound)" if fusion["rule"] == "noisy-or" else "max(p_picture, p_sound)")
    return (f"## Picture and sound\n\nThis package holds two models: the picture model above (`model.safetensors`, "
            f"`{package['architecture']}`, its own threshold {fusion['picture_threshold']:.4f}) and a sound model in "
            f"`{fusion['sound']}/` ({sound.get('model') or 'audio classifier'} over {len(sound['columns'])} "
            f"features of the sound, its own threshold {fusion['sound_threshold']:.4f}; its card is "
            f"`{fusion['sound']}/README.md`). A video's P(fake) is the **{fusion['rule']}** of the two: "
            f"{formula}. It is called fake at P(fake) >= **{t['value']:.4f}**, chosen at {describe(t)} of the "
            f"fused scores ({t['real']} real and {t['fake']} fake validation videos that both models scored; FPR "
            f"{t['fpr']:.3f}, TPR {t['tpr']:.3f} there). A video without sound is judged on its picture alone, at "
            "the picture's threshold. `dfd check VIDEO --model THIS_FOLDER` scores both and applies this rule.\n\n")


def at_fused_threshold(result: dict, fusion: dict) -> dict:
    """`dfd evaluate --checkpoint PKG`: the fused videos called at the package's fused threshold (accuracy, balanced
    accuracy, FPR, TPR), added to result["audio"] and to its metrics.json."""
    videos = pd.read_parquet(Path(result["out"]) / "video_predictions.parquet", columns=["label", "fused"])
    t = float(fusion["threshold"]["value"])
    labels, called = videos["label"].to_numpy(), videos["fused"].to_numpy() >= t
    real, fake = labels == 0, labels == 1
    result["audio"]["fused_at_threshold"] = {
        "threshold": t, "rule": fusion["rule"], "how": describe(fusion["threshold"]), "videos": int(len(labels)),
        "accuracy": metrics.accuracy(labels, videos["fused"], t),
        "balanced_accuracy": metrics.balanced_accuracy(labels, videos["fused"], t),
        "fpr": float(called[real].mean()) if real.any() else None,
        "tpr": float(called[fake].mean()) if fake.any() else None}
    saved = json.loads((Path(result["out"]) / "metrics.json").read_text())
    saved["audio"]["fused_at_threshold"] = result["audio"]["fused_at_threshold"]
    write_text(Path(result["out"]) / "metrics.json", json.dumps(metrics.json_safe(saved), indent=2) + "\n")
    return result["audio"]["fused_at_threshold"]
