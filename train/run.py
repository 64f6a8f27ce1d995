"""`dfd train` (`python -m train.run`): fine-tune a detector on the shards with the seed's staged one-cycle recipe."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import click

from dfd.cli import DEVICES, command, default, reported, setup_logging, threads_option, verbose_option
from dfd.files import writable_folder
from dfd.threads import free_cores
from pipeline.dataset import FAKE_FACES, DatasetError, is_local
from train.audio.data import FAKE_AUDIO
from train.audio.grouping import GROUP_BY
from train.config import (AGGREGATES, ARCHS, AUGMENT_IMPLS, BALANCES, SAMPLE_BY, SYNTHETIC_FAKES,
                          TRAIN_INPUTS, TUNES, VIDEO_ARCHS, TrainConfig)
from train.fit import distributed
from train.fit.init import init_input, read_start, with_init
from train.fit.loop import fit
from train.report.explanation import run_explain

log = logging.getLogger(__name__)


def d(name: str):
    return default(TrainConfig, name)


def generalisation_options(f):
    """--synthetic-fakes, --synthetic-share, --real-only, --tune, --sample-by: None when not given, so a recipe's
    [train] table can set them (TrainConfig.from_recipe)."""
    recipe_or = "the recipe's, else {}".format
    options = [
        click.option("--synthetic-fakes", type=click.Choice(SYNTHETIC_FAKES), default=None,
                     help="--input faces: turn real faces into synthetic fakes in the train stream; sbi: "
                          "self-blended images (a face blended with a changed copy of itself through a deformed "
                          "mask from its landmarks, Shiohara & Yamasaki 2022)."),
        click.option("--synthetic-share", type=click.FloatRange(0, 1, min_open=True), default=None,
                     show_default=recipe_or(d("synthetic_share")), help="Share of real faces made synthetic fakes."),
        click.option("--real-only/--with-fake-videos", default=None, show_default=recipe_or("with fake videos"),
                     help="Train on the real videos only; the synthetic fakes are the fakes (the SBI setting)."),
        click.option("--tune", type=click.Choice(TUNES), default=None, show_default=recipe_or(d("tune")),
                     help="full: the recipe's stages (frozen or not); frozen: head and BatchNorm in every stage "
                          "(a ViT: the head alone); norm: the head and every LayerNorm/norm layer (GenD), for "
                          "CLIP/DINOv2 ViTs."),
        click.option("--sample-by", type=click.Choice(SAMPLE_BY), default=None, show_default=recipe_or(d("sample_by")),
                     help="uniform, or loss: draw train items with a probability growing with their last epoch's "
                          "loss, with a floor (train.data.sampling)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def default_workers() -> int:
    """Loader processes per training process: the free cores (dfd.threads) torchrun's local processes share, at
    most 8."""
    return max(1, min(8, free_cores() // distributed.env_context().local_world_size))


@command()
@click.option("--shards", required=True,
              help="Shards: a folder (make shards), a URL prefix such as s3://bucket/shards (fsspec), or a webdataset "
                   "template with {name}, e.g. 'pipe:aws s3 cp s3://bucket/shards/{name} -'.")
@click.option("--manifests", type=click.Path(path_type=Path), help="Folder with dataset.json [default: SHARDS/../manifests].")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder [default: runs/DATE-TIME].")
@click.option("--recipe", default="seed", help="Built-in recipe name (seed, demo) or a TOML file.")
@click.option("--arch", default=None, show_default=f"the recipe's, else {d('arch')}",
              help=f"Backbone: {', '.join(ARCHS)} (torchvision) or any timm model name, e.g. efficientnet_b4, "
                   "tf_efficientnet_b7, xception41, convnext_tiny, or a ViT: vit_base_patch16_clip_224.openai, "
                   "vit_large_patch14_clip_224.openai, vit_small_patch14_dinov2.lvd142m. With --input clips a "
                   f"clip model: {', '.join(VIDEO_ARCHS)}, tall:ARCH (TALL's thumbnail of the frames) or "
                   "temporal:ARCH (ARCH on every frame, a temporal head).")
@click.option("--weights", default=None, show_default=d("weights"),
              help="imagenet | none | PATH (state dict or checkpoint): the backbone's starting weights; "
                   "r2plus1d_18: kinetics (its Kinetics-400 weights).")
@click.option("--init", "init", default=None,
              help="Fine-tune from a model: a package folder (dfd export; dfd zoo import), zoo:NAME, "
                   "hf://OWNER/NAME, a run folder or a checkpoint. Its architecture, weights, input kind and size, "
                   "normalisation and face crop are the start; the recipe's stages run on --shards.")
@click.option("--input", "input_", type=click.Choice((*TRAIN_INPUTS, "audio")), default=None,
              show_default="the recipe's, else frames",
              help="frames: whole frames; faces: the faces stage's crops (SHARDS/faces/, faces.parquet); clips: runs "
                   "of T consecutive frames (SHARDS/clips/, clips.parquet; `dfd shards --clip-frames T`); audio: the "
                   "sound (SHARDS/audio/, audio.parquet): bispectral and log-mel features of its windows and a small "
                   "network (train.audio; the image options do not apply).")
@click.option("--fake-audio", type=click.Choice(FAKE_AUDIO), default="manipulated", show_default=True,
              help="--input audio: manipulated leaves out the fakes whose sound is their original's "
                   "(audio_manipulated false; unknown is kept); all keeps every fake video's sound.")
@click.option("--group-by", type=click.Choice(GROUP_BY), default="speaker", show_default=True,
              help="--input audio: the sound detector's features and model are chosen on folds with no group on both "
                   "sides: speaker (videos.parquet's speaker, else the identity group: DFDC's original), original, "
                   "group (identity), video (each alone: leaky), split (the dataset's own train/val).")
@click.option("--skip-start", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="--input audio: leave out the windows that start before this second, in training and scoring "
                   "(a fake whose sound is silent at the start is then not caught by its silence).")
@click.option("--fake-faces", type=click.Choice(FAKE_FACES), default=d("fake_faces"),
              help="--input faces: manipulated drops from training the faces of fake videos that the faces stage "
                   "found untouched (manipulated false; unknown is kept); all keeps every face.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default=None,
              show_default=f"the recipe's, else {d('aggregate')}",
              help="A video's score from its frames' or faces' P(fake): mean, median, or confident (the DFDC "
                   "winner's rule: the mean of the confidently fake items when there are enough of them).")
@click.option("--image-size", help="Model input WIDTHxHEIGHT, as the pipeline's --size (e.g. 1280x720), or N for "
                                   "NxN; overrides the recipe (faces with a frames recipe: 224). A value narrower "
                                   "than tall is refused.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Overrides the recipe; per process under torchrun.")
@click.option("--workers", type=click.IntRange(min=0), default=default_workers, show_default="free cores per process, max 8",
              help="DataLoader worker processes (per process under torchrun).")
@click.option("--device", type=click.Choice(DEVICES), default=d("device"))
@click.option("--amp/--no-amp", default=d("amp"), help="Mixed precision (CUDA only).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model (CUDA; slow first steps).")
@click.option("--seed", type=int, default=d("seed"))
@click.option("--lr-find/--no-lr-find", "lr_find_flag", default=d("lr_find"), help="LR range test before the first stage.")
@click.option("--lr-find-only", is_flag=True, help="Run the LR finder alone and stop.")
@click.option("--balance", type=click.Choice(BALANCES), default=d("balance"),
              help="mix: resampled real + fake streams at 50:50; weights: class weights in the loss; none.")
@click.option("--augment-impl", type=click.Choice(AUGMENT_IMPLS), default=d("augment_impl"),
              help="Where the ten augmentations run. albumentations: the plain pipeline in the loader workers; fused: "
                   "the same draws, one warp + LUTs; device: the workers only decode and the GPU augments each batch; "
                   "auto: on a GPU with both image sides >= 448, device with up to 8 workers and fused with more, "
                   "else albumentations. What each costs, measured and dated: docs/performance.md.")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=d("shuffle_buffer"),
              help="Samples in the shuffle buffer.")
@click.option("--stop-after-epochs", type=click.IntRange(min=1), help="Stop after N epochs (continue with --resume).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt.")
@click.option("--dev-run", is_flag=True, help="Every step of the real path on two batches each.")
@click.option("--explain/--no-explain", "explain", default=True,
              help="After training, explain the run (predictions, top losses, Grad-CAM, report.html).")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ground-truth manipulation boxes (JSON, e.g. the demo's boxes.json) for the Grad-CAM pointing game.")
@click.option("--tensorboard", is_flag=True,
              help="Also log per-epoch metrics, learning rates and figures to RUN/tensorboard/ (needs the "
                   "tensorboard extra); view with: tensorboard --logdir runs")
@generalisation_options
@threads_option
@verbose_option
def main(shards, manifests, out, recipe, image_size, batch_size, input_, compile_model, lr_find_flag, resume,
         explain, boxes, verbose, fake_audio, init, group_by, skip_start, **options) -> None:
    """Fine-tune a ResNet (or any timm backbone) on the shards with the seed's staged one-cycle recipe.

    Under `torchrun --nproc_per_node=N -m train.run ...` it trains with DistributedDataParallel (NCCL on GPUs,
    gloo on the CPU); --batch-size is per process and rank 0 alone writes the run folder.
    """
    ctx = distributed.env_context()
    setup_logging(verbose, rank=ctx.rank)
    if input_ == "audio":
        _train_audio(shards, manifests, out, fake_audio, options["seed"], options["dev_run"], explain, group_by,
                     skip_start)
        return
    if resume and out is None:
        raise click.UsageError("--resume needs --out, the run folder to continue")
    try:
        with reported("rerun with --resume: training goes on from the last checkpoint (checkpoints/last.pt)"):
            distributed.init(options["device"])
            shards = str(shards)
            if manifests is None and not is_local(shards):
                raise DatasetError(f"--shards {shards} is not a local folder: pass --manifests (the folder with "
                                   "dataset.json)")
            start = read_start(init) if init and not resume else None
            if start is not None:
                input_ = init_input(start, input_)
            weights = options.pop("weights")
            config = TrainConfig.from_recipe(
                recipe, image_size, batch_size, input_, shards=shards,
                manifests=str(manifests or Path(shards).parent / "manifests"),
                out=str(out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")), compile=compile_model,
                lr_find=lr_find_flag, **options, **({"weights": weights} if weights is not None else {}))
            if start is not None:
                config = with_init(config, start, {"arch": options["arch"], "weights": weights,
                                                   "image_size": image_size})
            config = dataclasses.replace(config, out=distributed.broadcast(config.out))  # one folder for all ranks
            writable_folder(config.out)
            root = fit(config, resume=resume, explain=_explainer(config, boxes) if explain else None)
    finally:
        distributed.shutdown()
    if ctx.main:
        click.echo(f"run folder: {root}")


def _train_audio(shards, manifests, out, fake_audio: str, seed: int, dev_run: bool, explain: bool, group_by: str,
                 skip_start: float) -> None:
    from train.audio.features import AudioFeatures
    from train.audio.fit_audio import run_audio

    with reported("rerun the same command"):
        root = run_audio(str(shards), str(manifests or Path(shards).parent / "manifests"),
                         writable_folder(out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")), fake_audio,
                         epochs=20 if dev_run else 300, seed=seed, explain=explain, group_by=group_by,
                         spec=AudioFeatures(skip_start_s=skip_start))
    click.echo(f"run folder: {root}")


def _explainer(config: TrainConfig, boxes: Path | None):
    def explain(run_dir: Path, dev) -> None:
        run_explain(run_dir, shards=config.shards, manifests=config.manifests, device=str(dev.device),
                    dev_run=config.dev_run, boxes=boxes)
    return explain


if __name__ == "__main__":
    main()
