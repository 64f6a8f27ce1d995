"""`dfd check` (`python -m train.check`): one verdict per video, with a page that shows why.

Each video is decoded with the pipeline's own frame code at the model's settings, its faces found and cropped as the
faces stage does (a faces model), or its clips kept by the same decode at the video's own rate (a clip model, at the
run's clip spec; for a face-clips model each clip's face tubes cut as the faces stage cuts them), every face (or
frame, clip, tube) scored, and one line printed: the verdict at the model's
decision threshold, P(fake) and the strongest evidence. The work is train.score.one_video (scoring) and
train.report.verdict_page (the page)."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option
from dfd.errors import UsageProblem
from dfd.files import writable_folder
from train.audio.classifier import load as load_audio
from train.audio.sound_of_files import sound_verdict
from train.audio.fused_package import fusion_of, sound_model_of
from train.audio.sync_of_files import sync_detector, sync_verdict
from train.audio.syncnet import SYNCNET_ENV, SYNCNET_LICENCE, load_syncnet
from train.report.verdict_page import write_page
from train.config import CLIP_INPUTS
from train.score.face_tubes import check_face_clip_video, tube_cutter
from train.score.one_video import check_clip_video, check_video
from train.score.checkpoints import load_ensemble
from train.score.on_batches import Scorer
from train.score.package import zoo_facts
from train.score.threshold import decision_threshold, describe
from train.score.verdict import FAILED, SOUND_THRESHOLD, SYNC_RULES, SYNC_THRESHOLD, UNCERTAIN, as_json, line
from train.score.videos import VIDEO_EXTENSIONS, clip_spec, face_cropper, find_videos, frame_settings, video_names

log = logging.getLogger(__name__)


class CheckError(UsageProblem):
    """check cannot start as asked (no videos, --html with several videos)."""


def page_paths(names: list[str], videos: list[Path], out: Path) -> list[Path]:
    """OUT/NAME.html per video (NAME without its extension), distinct, and never one of the videos themselves: where
    two videos would share a page (face.mp4, face.mkv) or a page would land on a video checked (clip.html), those
    keep their extension (face.mp4.html), then take a number (-2, -3, ...) while still taken."""
    inputs = {v.resolve() for v in videos}
    flat = [name.replace("/", "__") for name in names]
    stems = [out / (f.rsplit(".", 1)[0] + ".html") for f in flat]
    clash = {s for s in stems if stems.count(s) > 1 or s.resolve() in inputs}
    chosen: list[Path] = []
    for stem, full in zip(stems, flat):
        path = out / (full + ".html") if stem in clash else stem
        n = 1
        while path in chosen or path.resolve() in inputs:
            n += 1
            path = out / f"{full}-{n}.html"
        chosen.append(path)
    return chosen


def settings_of(ensemble, sampled: tuple, threshold: dict, audio=None, audio_path: Path | None = None,
                fuse_rule: str = "noisy-or", clips: tuple | None = None) -> dict:
    """What the page's settings table shows (with an audio model, its settings too)."""
    config, (settings, source) = ensemble.config, sampled
    rows = {"models": ", ".join(map(str, ensemble.paths)), "input": config.input,
            "image size (h, w)": list(config.image_size), "aggregate": config.aggregate,
            "threshold": f"{threshold['value']:.4f}: {describe(threshold)}",
            "frames": f"fps {settings.fps:g}, inside {settings.size[0]}x{settings.size[1]}, JPEG quality "
                      f"{settings.quality}, skip frames {settings.skip_frames} (from {source})", "device": str(ensemble.dev.device)}
    if clips is not None:
        spec, where = clips
        rows["clips"] = (f"{spec.frames} consecutive frames at the video's own rate from each sampled second, "
                         f"inside {spec.size[0]}x{spec.size[1]}, JPEG quality {spec.quality}, at most "
                         f"{spec.per_video or 'every'} per video (from {where}); a clip cut short by the end is "
                         "not scored")
    if config.faces:
        rows["faces"] = json.dumps(config.faces.to_dict(), sort_keys=True)
    if len(ensemble.models) > 1:
        rows["Grad-CAM"] = f"of the first model ({ensemble.paths[0]})"
    if audio is not None:
        spec = audio.spec
        rows["audio model"] = (f"{audio_path} ({'logistic' if audio.hidden == 0 else f'mlp-{audio.hidden}'} over "
                               f"{len(audio.columns)} features)")
        rows["sound"] = (f"windows of {spec.window_s:g} s every {spec.hop_s:g} s, silence under {spec.min_rms_db:g} dBFS "
                         f"skipped; P(fake) of the sound = the mean over its windows; threshold {audio.threshold:g}"
                         + ("" if audio.threshold == SOUND_THRESHOLD else " (the package's, chosen on its validation)"))
        rows["fusion"] = (f"{fuse_rule}; fake when the picture reaches its threshold or the sound reaches "
                          f"{audio.threshold:g}")
    return rows


def inputs(videos: tuple, pages: Path | None, one_page: bool) -> list[Path]:
    """The videos to check, refused before any work when there are none, when --html names one page for several
    or names the video itself, or when the pages (`pages`: --html or --out; None: no pages) cannot be written."""
    paths = find_videos(videos)
    if not paths:
        raise CheckError(f"no video in {', '.join(map(str, videos))} (folders are searched for "
                         f"{', '.join(sorted(VIDEO_EXTENSIONS))})")
    if one_page and len(paths) != 1:
        raise CheckError(f"--html names one page but {len(paths)} videos were given; use --out DIR")
    if one_page and pages.resolve() == paths[0].resolve():
        raise CheckError(f"--html {pages} is the video itself; name another file for the page")
    if pages is not None:
        writable_folder(pages.parent if one_page else pages, "--html" if one_page else "--out")
    return paths


@command()
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "--checkpoint", "models", required=True, multiple=True,
              help="A model package folder (dfd export), hf://OWNER/NAME, a run folder or a checkpoint (.pt); repeat "
                   "for an ensemble (mean P(fake); threshold 0.5).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("check"),
              help="Folder for the pages: one VIDEO-NAME.html per video.")
@click.option("--html", "page", type=click.Path(dir_okay=False, path_type=Path),
              help="The page's path (one video only) [default: OUT/VIDEO-NAME.html].")
@click.option("--no-html", is_flag=True, help="Print the verdicts only, write no page.")
@click.option("--json", "as_json_lines", is_flag=True, help="Print one JSON object per video instead of a line.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json: the frame settings, for an old checkpoint that does not store them.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Faces per forward pass [default: the recipe's].")
@click.option("--audio-model", "audio_path", type=click.Path(exists=True, path_type=Path),
              help="An audio detector (train.run --input audio: its run folder or checkpoints/audio.pt): the sound is "
                   "scored too, shown over time on the page, and fused with the picture (--fuse); a video without "
                   "sound says so and is judged on its picture alone.")
@click.option("--fuse", "fuse_rule", type=click.Choice(("noisy-or", "max")), default="noisy-or", show_default=True,
              help="The fused P(fake): noisy-or 1-(1-p_picture)(1-p_sound), or max.")
@click.option("--sync", "with_sync", is_flag=True,
              help="Measure lip sync too (no training data: the mouth's opening against the speech envelope over the "
                   "first 10 s at the native frame rate): the sound's lag, the agreement, P(fake) that picture and "
                   "sound do not belong together, and the agreement over time on the page. A video without sound, "
                   "speech or one face says why instead.")
@click.option("--sync-weights", type=click.Path(dir_okay=False, path_type=Path), envvar=SYNCNET_ENV,
              help=f"With --sync: SyncNet's weights (syncnet_v2.model of joonson/syncnet_python, {SYNCNET_LICENCE}; "
                   f"not shipped, bring your own) instead of the signal-level measure [env {SYNCNET_ENV}].")
@click.option("--sync-verdict", "sync_use", type=click.Choice(SYNC_RULES), default="off", show_default=True,
              help=f"How the verdict uses lip sync: off (reported only) or uncertain (FAKE when the picture's P(fake) "
                   f"lies within {UNCERTAIN:g} of its threshold, and the sound's within {UNCERTAIN:g} of "
                   f"{SOUND_THRESHOLD:g} where judged, and lip sync's P(fake) reaches {SYNC_THRESHOLD:g}).")
@device_option()
@threads_option
@verbose_option
def main(videos, models, out, page, no_html, as_json_lines, manifests, batch_size, audio_path, fuse_rule, with_sync,
         sync_use, sync_weights, device, verbose) -> None:
    """Check videos (files, or folders searched recursively): P(fake), the verdict at the model's threshold and the
    strongest evidence (which face track, which seconds), one line per video, and a self-contained HTML page.

    A video without a face says so (no verdict); a file that is not a video gets one line saying so, and the others
    are still checked. With --audio-model the sound is judged too: the video is FAKE when its picture reaches the
    image model's threshold or its sound reaches 0.5, its P(fake) is the --fuse rule of the two, and the page
    shows the sound's P(fake) per window over time. With --sync lip sync is measured and shown (the verdict uses it
    only with --sync-verdict uncertain). Exit status: 0 when every file was checked, 1 when any could not be read, 2 on a usage error.
    """
    setup_logging(verbose)
    with reported():
        paths = inputs(videos, None if no_html else page or out, bool(page))
        ensemble = load_ensemble(models, device)
        config = ensemble.config
        sampled = frame_settings(ensemble.paths[0], config, manifests)
        settings = sampled[0]
        cropper = face_cropper(config, ensemble.image_size, device)
        scorer = Scorer(ensemble.models, ensemble.dev, batch_size or config.batch_size)
        threshold = decision_threshold(ensemble.paths, ensemble.thresholds, config.aggregate)
        log.info("threshold %.4f (%s)", threshold["value"], describe(threshold))
        fusion = fusion_of(ensemble.paths[0]) if len(ensemble.paths) == 1 else None
        if fusion is not None:
            if audio_path is not None:
                raise CheckError(f"{ensemble.paths[0]} holds its own sound model (a fused package): leave out "
                                 "--audio-model")
            audio_path, fuse_rule = sound_model_of(ensemble.paths[0]), fusion["rule"]
        audio = load_audio(audio_path) if audio_path else None
        mouths = sync_detector(device) if with_sync else None
        if with_sync and sync_weights is not None:
            load_syncnet(sync_weights)  # a bad file: one line naming it, before any video
        clips = clip_spec(ensemble.paths[0], config, manifests) if config.input in CLIP_INPUTS else None
        tubes = tube_cutter(config, ensemble.image_size, device)  # a face-clips model: its clips' face tubes
        shown = settings_of(ensemble, sampled, threshold, audio, audio_path, fuse_rule, clips)
        if fusion is not None:
            shown["fusion"] = (f"{fuse_rule}; fake when the fused P(fake) reaches {fusion['threshold']['value']:.4f} "
                               f"(the package's, chosen at {describe(fusion['threshold'])} of the fused scores); "
                               "without sound, the picture at its threshold")
        described = [{"name": str(p), "arch": c.arch, "input": c.input, "zoo": zoo_facts(p)}
                     for p, c in zip(ensemble.paths, ensemble.configs)]
        zoo = [d["zoo"] for d in described if d["zoo"]]
        failed = 0
        names = video_names(paths, videos)
        for path, name, to in zip(paths, names, [page] if page else page_paths(names, paths, out)):
            verdict = (check_face_clip_video(path, scorer, tubes, settings, clips[0], threshold, config.aggregate)
                       if tubes else
                       check_clip_video(path, scorer, settings, clips[0], ensemble.image_size, threshold,
                                        config.aggregate) if clips else
                       check_video(path, scorer, settings, ensemble.image_size, cropper, threshold, config.aggregate))
            if audio is not None and verdict.label != FAILED:
                verdict.sound = sound_verdict(audio, path, verdict.p_picture, fuse_rule, str(audio_path))
                verdict.sound.fused_threshold = fusion["threshold"]["value"] if fusion else None
            if mouths is not None and verdict.label != FAILED:
                verdict.sync = sync_verdict(path, mouths, use=sync_use, weights=sync_weights)
            failed += verdict.label == FAILED
            written = None
            if verdict.label != FAILED and not no_html:
                written = write_page(verdict, name, to, ensemble.models[0], described, shown)
            if as_json_lines:
                click.echo(json.dumps({**as_json(verdict, name), "page": str(written) if written else None,
                                       **({"zoo": zoo} if zoo else {})}))
            else:
                click.echo(line(verdict, name) + (f" -> {written}" if written else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
