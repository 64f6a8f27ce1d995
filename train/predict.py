"""`dfd predict` (`python -m train.predict`): score videos with a trained checkpoint (or an ensemble) and write
Kaggle's DFDC submission (`filename,label`, label = P(fake)); `--shards DIR --split test` scores a sharded split.
The work is train.score.videos: the pipeline's own frames, the val transform, a score per video."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option, workers_option
from dfd.files import write_csv
from train.score.metrics import RULES
from train.score.on_batches import TTA_MODES
from train.score.videos import FAILED_SCORE, find_videos, predict_inputs, video_names


@command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              help="A checkpoint of train.run (runs/NAME/checkpoints/best.pt), a run folder, a model package folder "
                   "(dfd export) or hf://OWNER/NAME; repeat for an ensemble (mean P(fake); the checkpoints must take "
                   "the same input).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("submission.csv"),
              help="Kaggle DFDC submission: filename,label with label = P(fake) of the video.")
@click.option("--frames-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-frame CSV (filename, video_id, key, index, second, label, p_fake, error); a video that "
                   "failed has one row with its error.")
@click.option("--shards", help="Score a split that is already sharded instead of videos (with --split): a folder, a "
                               "URL prefix (s3://...) or a template such as 'pipe:aws s3 cp s3://b/{name} -'.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json: the frame settings, and the shard list with --shards "
                   "[default: the run's pipeline.json, then the checkpoint config's manifests; SHARDS/../manifests "
                   "with --shards].")
@click.option("--split", default="test", help="With --shards: the split to score.")
@click.option("--images", type=click.Path(path_type=Path),
              help="Score a folder of face images instead (each image one face crop, no detection; resized and "
                   "normalised as the model's package says): OUT has path,p_fake,error.")
@workers_option(2, "Videos decoded in parallel (one single-threaded ffmpeg each) while the model scores; 0 = serial.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@device_option()
@click.option("--clip", type=click.FloatRange(0.0, 0.5, max_open=True), default=0.0,
              help="Clip each video's label to [clip, 1 - clip] (top DFDC entries used about 0.01); 0 = raw.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", help="hflip: also score each mirrored frame.")
@click.option("--aggregate", "rule", type=click.Choice(RULES), default=None, show_default="the checkpoint's, else mean",
              help="How frames (or faces) make a video's label (confident = the DFDC winner's rule; see train.score.metrics).")
@click.option("--audio-checkpoint", type=click.Path(exists=True, path_type=Path),
              help="An audio detector (train.run --input audio: its run folder or checkpoints/audio.pt): each video's "
                   "sound is scored too and fused with its picture's (--fuse); a video without sound is scored on "
                   "its picture alone. With --shards the sound is the split's audio shards (SHARDS/audio, "
                   "audio.parquet). OUT then has the fused label; OUT.verdicts.csv the picture's, the sound's and a "
                   "note; --frames-out also a row per window of sound (start, audio_p_fake).")
@click.option("--fuse", "fuse_rule", type=click.Choice(("noisy-or", "max")), default="noisy-or", show_default=True,
              help="How the two verdicts make one: noisy-or 1-(1-p_picture)(1-p_sound), or max (either fake part "
                   "makes a fake video).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@threads_option
@verbose_option
def main(inputs, checkpoints, out, frames_out, shards, manifests, split, images, workers, batch_size, device, clip, tta, rule,
         audio_checkpoint, fuse_rule, quiet, verbose) -> None:
    """Score videos (files or folders, searched recursively) or a sharded split with a trained checkpoint.

    Each video is decoded exactly as the training shards were (pipeline.frames: same fps, size and JPEG quality),
    its frames scored with the validation transform (by each --checkpoint, averaged; with --tta hflip also mirrored),
    and its label is the --aggregate rule over its frames' P(fake) (the mean by default). A video that
    cannot be read gets label 0.5 in the submission and an error row in --frames-out; the others go on.

    Exit status: 0 when every video was scored, 1 when any video failed, 2 on a usage error.
    """
    setup_logging(verbose)
    if sum(map(bool, (inputs, shards, images))) != 1:
        raise click.UsageError("give either videos/folders, --shards DIR (with --split) or --images DIR: one of them")
    if images:
        _images(images, checkpoints, out, device, batch_size)
    with reported():
        frames, scores, stats = predict_inputs(inputs, checkpoints, shards, manifests, split, workers, batch_size,
                                               device, clip, tta, rule, progress=not quiet)
        if audio_checkpoint:
            sound, windows = _sounds(inputs, audio_checkpoint, shards, manifests, split, frames)
            frames, scores = _with_sound(sound, windows, frames, scores, fuse_rule, out)
        write_csv(scores, out)
        if frames_out:
            write_csv(frames, frames_out)
    click.echo(f"{stats['videos'] - stats['failed']} of {stats['videos']} videos scored -> {out}"
               + (f"; {stats['failed']} failed (label {FAILED_SCORE} in the submission"
                  + (f", errors in {frames_out})" if frames_out else "; pass --frames-out for the errors)")
                  if stats["failed"] else "")
               + (f"; {stats['no_face']} without any face (label {FAILED_SCORE}, noted in --frames-out)"
                  if stats.get("no_face") else ""))
    sys.exit(1 if stats["failed"] else 0)


def _images(folder: Path, checkpoints, out: Path, device: str, batch_size: int | None) -> None:
    """--images: a row per image (path, p_fake, error); exit 1 when any could not be read."""
    from train.score.face_images import score_images

    with reported():
        table, failed = score_images(folder, checkpoints, device, batch_size)
        write_csv(table, out)
    click.echo(f"{len(table) - failed} of {len(table)} images scored -> {out}"
               + (f"; {failed} could not be read (named above, error in {out})" if failed else ""))
    sys.exit(1 if failed else 0)


def _sounds(inputs, audio_checkpoint: Path, shards, manifests, split: str, frames):
    """(filename, sound, note per video; filename, start, audio_p_fake per window): the files' own sound, or with
    --shards the split's audio shards (audio.parquet), matched to the frames' file names by video id."""
    from train.audio.classifier import load

    model = load(audio_checkpoint)
    if not shards:
        from train.audio.sound_of_files import score_sounds

        paths = find_videos(inputs)
        return score_sounds(model, paths, video_names(paths, inputs))
    from train.audio.sound_of_split import split_sounds

    names = frames.drop_duplicates("video_id").set_index("video_id")["filename"]
    sound, windows = split_sounds(model, shards, manifests or Path(shards).parent / "manifests", split, names.index)
    return (sound.assign(filename=sound["video_id"].map(names)).drop(columns="video_id"),
            windows.assign(filename=windows["video_id"].map(names)))


def _with_sound(sound, windows, frames, scores, rule: str, out: Path):
    """The sound's verdicts fused into the submission; OUT.verdicts.csv; the windows added to the frame rows."""
    import pandas as pd

    from train.audio.fuse import fused_scores

    verdicts = fused_scores(scores, sound, rule, set(frames.loc[frames["error"].notna(), "filename"]))
    write_csv(verdicts, out.with_name(out.stem + ".verdicts.csv"))
    return pd.concat([frames, windows], ignore_index=True), verdicts[["filename", "label"]]


if __name__ == "__main__":
    main()
