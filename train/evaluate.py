"""`dfd evaluate` (`python -m train.evaluate`): metrics of a checkpoint or an ensemble on a sharded split
(train.report.evaluation)."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option, workers_option
from train.audio.classifier import is_audio
from train.audio.fuse import FUSE_RULES
from train.audio.fused_package import at_fused_threshold, fusion_of, sound_model_of
from train.audio.sync_options import sync_function, sync_options, sync_summary
from train.report.sound_evaluation import evaluate_sound, sound_markdown
from train.report.evaluation import evaluate, metrics_markdown
from train.score.metrics import RULES
from train.score.on_batches import TTA_MODES


@command()
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="A checkpoint (.pt), a run folder (its best.pt), a model package folder (dfd export; a picture + "
                   "sound package scores its sound too, fused by its rule, as with --audio-checkpoint) or "
                   "hf://OWNER/NAME; repeat for an ensemble (mean P(fake)). A sound detector (train.run --input "
                   "audio: its run folder, audio.pt or package) is scored on the split's sound alone.")
@click.option("--shards", help="Shards folder, URL prefix or {name} template.")
@click.option("--images", type=click.Path(exists=True, path_type=Path),
              help="Instead of --shards: labelled face images, a folder with real/ and fake/ subfolders (images "
                   "anywhere below each) or a CSV with columns path,label (0/1 or real/fake; paths relative to the "
                   "CSV). Each image is one face crop (no detection), resized and normalised as the model's package "
                   "says, as `dfd predict --images`; image-level metrics. An unreadable image is named and left "
                   "out.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json [default: SHARDS/../manifests].")
@click.option("--split", default="val", help="The split to score: val, test, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: RUN/eval-SPLIT for one checkpoint, runs/ensemble-DATE-TIME for several].")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", help="hflip: also score each mirrored frame.")
@click.option("--aggregate", "rule", type=click.Choice(RULES),
              help="How frames make a video's score (confident = the DFDC winner's rule; see train.score.metrics) "
                   "[default: the first checkpoint's training setting, else mean].")
@click.option("--audio-checkpoint", type=click.Path(exists=True, path_type=Path),
              help="An audio detector (train.run --input audio: its run folder or checkpoints/audio.pt): the split's "
                   "sound (SHARDS/audio, audio.parquet) is scored too and fused with each video's picture (--fuse); "
                   "metrics of the picture alone, the sound alone and the fused verdict. A video without sound is "
                   "scored on its picture alone, with a note.")
@click.option("--fuse", "fuse_rule", type=click.Choice(FUSE_RULES), default="noisy-or", show_default=True,
              help="How the two verdicts make one: noisy-or 1-(1-p_picture)(1-p_sound), or max.")
@sync_options
@device_option()
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@workers_option(2, "DataLoader worker processes.")
@threads_option
@verbose_option
def main(checkpoints, shards, images, manifests, split, out, tta, rule, audio_checkpoint, fuse_rule, with_sync,
         sync_weights, device, batch_size, workers, verbose) -> None:
    """Frame- (clip-, for a clip model on clip shards) and video-level ROC-AUC, accuracy, balanced accuracy, EER, AP and log loss of a checkpoint or an
    ensemble on a sharded split, as metrics.json, metrics.md and roc.png; with --audio-checkpoint also of the
    sound alone and of the fused verdict. With --images, the same image-level metrics of labelled face images."""
    setup_logging(verbose)
    if bool(shards) == bool(images):
        raise click.UsageError("give either --shards (a sharded split) or --images (labelled face images): one of them")
    if images:
        if audio_checkpoint or with_sync:
            raise click.UsageError("--audio-checkpoint and --sync need --shards (face images have no sound)")
        return _images(checkpoints, images, out, tta, device, batch_size)
    manifests = manifests or Path(shards).parent / "manifests"
    audio = [c for c in checkpoints if is_audio(c)]
    if audio and (len(checkpoints) > 1 or audio_checkpoint):
        raise click.UsageError(f"{audio[0]} is a sound detector: score it alone (one --checkpoint), or with a picture "
                               "model as --audio-checkpoint")
    if audio and with_sync:
        raise click.UsageError("--sync is reported beside a picture model's scores: give a picture --checkpoint "
                               f"(and {audio[0]} as --audio-checkpoint)")
    if audio:
        with reported():
            result = evaluate_sound(audio[0], shards, manifests, split, out)
        click.echo(sound_markdown(result), nl=False)
        click.echo(f"{split}: {result['window']['windows']} windows of sound, {result['video']['videos']} videos"
                   + (f"; {result['without_sound']} without a window of sound" if result["without_sound"] else "")
                   + f" -> {result['out']}")
        return
    with reported():
        fusion = fusion_of(checkpoints[0]) if len(checkpoints) == 1 else None
        if fusion is not None and not audio_checkpoint:  # a fused package: its own sound model, by its own rule
            audio_checkpoint, fuse_rule = sound_model_of(checkpoints[0]), fusion["rule"]
        result = evaluate(checkpoints, shards, manifests, split, out, tta, rule, device, batch_size, workers,
                          audio_checkpoint, fuse_rule,
                          sync_function(manifests, device, sync_weights) if with_sync else None)
        called = at_fused_threshold(result, fusion) if fusion is not None and "audio" in result else None
    click.echo(metrics_markdown(result), nl=False)
    unit = result.get("unit", "frame")
    click.echo(f"{split}: {result[unit][unit + 's']} {unit}s, {result['video']['videos']} videos"
               + (f"; {result['audio']['without_sound']} without sound (scored on the picture alone)"
                  if result.get("audio", {}).get("without_sound") else "") + sync_summary(result)
               + (f"; fused at the package's threshold {called['threshold']:.4f}: balanced accuracy "
                  f"{called['balanced_accuracy']:.4f}" if called else "") + f" -> {result['out']}")


def _images(checkpoints, images: Path, out, tta: str, device: str, batch_size) -> None:
    from train.report.image_evaluation import evaluate_images, image_metrics_markdown

    with reported():
        result = evaluate_images(checkpoints, images, out, tta, device, batch_size)
    level = result["image"]
    click.echo(image_metrics_markdown(result), nl=False)
    click.echo(f"{images}: {level['images']} images ({level['real']} real, {level['fake']} fake)"
               + (f"; {level['unreadable']} could not be read (named above)" if level["unreadable"] else "")
               + f" -> {result['out']}")


if __name__ == "__main__":
    main()
