"""The training command (`python -m train.run`): TrainConfig -> LR finder -> one-cycle stages -> artifacts."""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import torch

from torch.nn.parallel import DistributedDataParallel

from pipeline.diskfull import is_full, one_line
from train import artifacts, distributed
from train.artifacts import RunFolder
from train.augment import denormalize, normalize
from train.config import (AGGREGATES, ARCHS, AUGMENT_IMPLS, BALANCES, DEVICES, FACE_IMAGE_SIZE, FAKE_FACES, INPUTS,
                          RecipeError, TrainConfig, load_recipe, parse_image_size, resolve_augment_impl)
from train.data import (CLASS_NAMES, DataError, Manifest, TrainStream, ValStream, is_local, load_manifest, make_loader,
                        train_batches_per_epoch, worker_seed)
from train.device_augment import DeviceAugmented
from train.engine import Device, NonFiniteLossError, evaluate, train_one_epoch
from train.lr_find import lr_find
from train.model import WeightsError, create_model, group_lrs, param_groups, set_frozen
from train.schedule import DIV_FACTOR, FINAL_DIV_FACTOR, MOMS, PCT_START, spread_lr

log = logging.getLogger(__name__)

DEV_RUN_BATCHES = 2
TENSORBOARD_FIGURES = ("batch.png", "lr_find.png", "lr_schedule.png", "losses.png", "top_losses.png", "best.png",
                       "gradcam_worst.png", "gradcam_best.png", "pointing.png")
TABLE = ("stage", "epoch", "train_loss", "val_loss", "accuracy", "balanced_accuracy", "roc_auc", "log_loss",
         "video_log_loss", "video_auc")
RESUME_OVERRIDABLE = ("workers", "device", "stop_after_epochs", "tensorboard")


class TrainError(RuntimeError):
    """A run cannot go on; the message says why and what was kept."""


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    stage: int = 1            # the stage being trained (1-based)
    epoch: int = 0            # epochs of that stage completed
    step: int = 0             # optimizer steps over the whole run
    frozen: bool = True       # the model's current freeze state (fastai learners start frozen)
    best_log_loss: float = float("inf")
    history: list = field(default_factory=list)
    lr_find: dict | None = None


# Building blocks ----------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model: torch.nn.Module, weight_decay: float, beta1: float = MOMS[0]) -> torch.optim.AdamW:
    """fastai's Adam: decoupled weight decay (none on BatchNorm and biases), beta2 0.99, eps 1e-5."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=1e-3, betas=(beta1, 0.99), eps=1e-5)


def make_scheduler(optimizer: torch.optim.Optimizer, lr, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """fastai's fit_one_cycle for one stage: one cycle over total_steps batches, LRs spread over the groups."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=group_lrs(optimizer, spread_lr(lr, 3)), total_steps=total_steps, pct_start=PCT_START,
        anneal_strategy="cos", div_factor=DIV_FACTOR, final_div_factor=FINAL_DIV_FACTOR, cycle_momentum=True,
        base_momentum=MOMS[1], max_momentum=MOMS[0])


def train_loader(config: TrainConfig, manifest: Manifest, n_batches: int, stage: int, epoch: int):
    """The stream of one epoch; its randomness depends only on (seed, stage, epoch), so a resume replays it."""
    stream = TrainStream(manifest, config.image_size, config.recipe.augment, config.batch_size, n_batches,
                         config.balance, config.shuffle_buffer, worker_seed(config.seed, stage, epoch),
                         augment_impl=config.augment_impl)
    loader = make_loader(stream, config.workers, pin_memory=torch.cuda.is_available())
    if config.augment_impl == "device":  # the workers only decode; the batch is augmented where it trains
        return DeviceAugmented(loader, Device.resolve(config.device, config.amp, config.channels_last).device,
                               release=stream.pool.release)
    return loader


def val_loader(config: TrainConfig, manifest: Manifest):
    stream = ValStream(manifest.urls("val"), config.image_size, config.batch_size)
    return make_loader(stream, config.workers, pin_memory=torch.cuda.is_available())


def class_weights(config: TrainConfig, manifest: Manifest) -> torch.Tensor | None:
    if config.balance != "weights":
        return None
    weights = manifest.class_weights
    if not all(name in weights for name in CLASS_NAMES):
        raise DataError(f"--balance weights needs class_weights for {CLASS_NAMES} in dataset.json, got {weights}")
    return torch.tensor([float(weights[name]) for name in CLASS_NAMES])


def batches_per_epoch(config: TrainConfig, manifest: Manifest) -> int:
    """Per process: an epoch is the manifest's train frames once, shared by the torchrun ranks."""
    if config.dev_run:
        return DEV_RUN_BATCHES
    world = distributed.env_context().world_size
    return max(1, train_batches_per_epoch(manifest, config.batch_size) // world)


def for_training(model: torch.nn.Module, config: TrainConfig, dev: Device) -> torch.nn.Module:
    """The module the optimizer steps through: DDP under torchrun (rebuilt per stage, as freezing changes which
    parameters get gradients), compiled with --compile."""
    net = model
    if distributed.active():
        net = DistributedDataParallel(model, device_ids=[dev.device.index] if dev.device.type == "cuda" else None)
    return torch.compile(net) if config.compile else net


def stage_epochs(config: TrainConfig, stage) -> int:
    return 1 if config.dev_run else stage.epochs


# Steps of a run -----------------------------------------------------------------------------------------------


def run_lr_finder(config: TrainConfig, manifest: Manifest, model, dev: Device, run: RunFolder,
                  weights: torch.Tensor | None) -> dict:
    """The range test before the first stage, in that stage's freeze state, with its own optimizer."""
    set_frozen(model, config.recipe.stages[0].frozen)
    steps = DEV_RUN_BATCHES if config.dev_run else config.recipe.lr_find_steps
    optimizer = make_optimizer(model, config.weight_decay, beta1=0.9)
    result = lr_find(model, train_loader(config, manifest, steps, 0, 0), optimizer, dev, num_steps=steps,
                     class_weights=weights)
    artifacts.plot_lr_find(run.figure("lr_find.png"), result.lrs, result.losses, result.suggestion)
    return result.to_dict()


def save_batch_figure(config: TrainConfig, manifest: Manifest, run: RunFolder) -> None:
    images, labels, *_ = next(iter(train_loader(config, manifest, 1, 0, 1)))
    shown = denormalize(normalize(images))  # what the model sees, back in pixels
    artifacts.plot_batch(run.figure("batch.png"), shown, labels.tolist(), CLASS_NAMES)


def checkpoint_state(model, optimizer, scheduler, config: TrainConfig, progress: Progress) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "config": config.to_dict(), "progress": dataclasses.asdict(progress), "rng": artifacts.rng_state()}


def end_of_epoch(run: RunFolder, model, optimizer, scheduler, config: TrainConfig, progress: Progress,
                 row: dict) -> None:
    """Checkpoint (atomic) to last.pt, and to best.pt on a new lowest val log loss; metrics.csv; the table row.

    Every rank keeps the same progress; only rank 0 writes.
    """
    progress.history.append(row)
    is_best = row["log_loss"] < progress.best_log_loss
    if is_best:
        progress.best_log_loss = row["log_loss"]
    if not distributed.is_main():
        return
    state = checkpoint_state(model, optimizer, scheduler, config, progress)
    artifacts.save_checkpoint(run.last, state)
    if is_best:
        artifacts.save_checkpoint(run.best, state)
    run.write_metrics(progress.history)
    if run.tensorboard is not None:
        run.tensorboard.epoch(row, len(progress.history))
    click.echo(format_row(row))


def format_row(row: dict) -> str:
    return "  ".join(f"{row[k]:>8}" if isinstance(row[k], int) else f"{row[k]:8.4f}" for k in TABLE)


def enter_stage(model, optimizer, stage, progress: Progress) -> None:
    """Apply the stage's freeze state; changing it clears the optimizer's moments, as fastai's freeze_to does."""
    set_frozen(model, stage.frozen)
    if stage.frozen != progress.frozen:
        optimizer.state = collections.defaultdict(dict)
        progress.frozen = stage.frozen


def lr_logger(run: RunFolder, optimizer, progress: Progress, rows: list):
    def on_step(loss: float) -> None:
        lrs = [next(g["lr"] for g in optimizer.param_groups if g["layer_group"] == i) for i in range(3)]
        rows.append([progress.step, progress.stage, *lrs, optimizer.param_groups[0]["betas"][0], loss])
        progress.step += 1
    return on_step


def train_epoch(config, manifest, model, net, optimizer, scheduler, dev, run, progress, weights, val) -> dict:
    """One epoch of the current stage: train `net` (the model, or its DDP/compiled wrapper), evaluate the model,
    return the metrics row."""
    n_batches = batches_per_epoch(config, manifest)
    rows: list = []
    stats = train_one_epoch(net, train_loader(config, manifest, n_batches, progress.stage, progress.epoch + 1),
                            optimizer, scheduler, dev, n_batches, weights,
                            desc=f"stage {progress.stage} epoch {progress.epoch + 1}",
                            on_step=lr_logger(run, optimizer, progress, rows))
    if distributed.is_main():
        run.log_lr(rows)
        if run.tensorboard is not None:
            run.tensorboard.lrs(rows)
    stats["train_loss"] = distributed.weighted_mean(stats["train_loss"], stats["train_images"])
    stats["images_per_s"] = distributed.weighted_mean(stats["images_per_s"], 1.0) * distributed.env_context().world_size
    metrics = evaluate(model, val, dev, max_batches=DEV_RUN_BATCHES if config.dev_run else None,
                       rule=config.aggregate)
    metrics["val_frames"], metrics["val_videos"] = metrics.pop("frames"), metrics.pop("videos")
    progress.epoch += 1
    return {"stage": progress.stage, "epoch": progress.epoch, "step": progress.step, **stats, **metrics}


def run_stages(config, manifest, model, optimizer, dev, run, progress: Progress, resume_state: dict | None) -> None:
    weights = class_weights(config, manifest)
    val = val_loader(config, manifest)
    epochs_done_now = 0
    for index, stage in enumerate(config.recipe.stages, 1):
        if index < progress.stage:
            continue
        epochs = stage_epochs(config, stage)
        if progress.epoch >= epochs:  # the checkpoint closed this stage
            progress.stage, progress.epoch = index + 1, 0
            continue
        enter_stage(model, optimizer, stage, progress)
        net = for_training(model, config, dev)  # once per stage: freezing changes which parameters train
        scheduler = make_scheduler(optimizer, stage.lr, epochs * batches_per_epoch(config, manifest))
        if resume_state is not None and progress.epoch > 0:
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
        resume_state = None
        while progress.epoch < epochs:
            if config.stop_after_epochs is not None and epochs_done_now >= config.stop_after_epochs:
                log.info("stopping after %d epochs as asked; continue with --resume", epochs_done_now)
                return
            try:
                row = train_epoch(config, manifest, model, net, optimizer, scheduler, dev, run, progress, weights,
                                  val)
            except NonFiniteLossError as err:
                raise TrainError(f"{err} in stage {progress.stage}, epoch {progress.epoch + 1}, step {progress.step}; "
                                 f"stopped. The last good checkpoint is {run.last} (if any epoch finished); "
                                 "try a lower learning rate") from None
            end_of_epoch(run, model, optimizer, scheduler, config, progress, row)
            epochs_done_now += 1
        progress.stage, progress.epoch = index + 1, 0


# The whole run -----------------------------------------------------------------------------------------------


def restore(config: TrainConfig, run: RunFolder) -> tuple[TrainConfig, dict]:
    """--resume: the saved config (with workers/device/stop_after_epochs from the command line) and state."""
    if not run.last.is_file():
        raise TrainError(f"--resume: no checkpoint at {run.last}")
    state = artifacts.load_state(run.last)
    saved = TrainConfig.from_dict(state["config"])
    overrides = {k: getattr(config, k) for k in RESUME_OVERRIDABLE}
    return dataclasses.replace(saved, **overrides), state


def with_pipeline_settings(config: TrainConfig) -> TrainConfig:
    """Keep the frame settings the shards were made with (fps, size, JPEG quality) in the config, hence in every
    checkpoint: train.predict decodes new videos the same way from the checkpoint alone."""
    try:
        made = json.loads((Path(config.manifests) / "dataset.json").read_text()).get("config") or {}
    except (OSError, json.JSONDecodeError):
        return config
    settings = {k: made[k] for k in ("fps", "size", "quality") if k in made}
    return dataclasses.replace(config, extra={**config.extra, "pipeline": settings}) if settings else config


def with_face_settings(config: TrainConfig) -> TrainConfig:
    """--input faces: keep the faces stage's FaceSettings (dataset.json "faces"."settings") in the config, hence
    in every checkpoint, so that train.predict detects and crops new videos' faces exactly as the shards were."""
    if config.input != "faces":
        return config
    try:
        faces = json.loads((Path(config.manifests) / "dataset.json").read_text()).get("faces") or {}
    except (OSError, json.JSONDecodeError):
        return config
    settings = faces.get("settings")
    if not settings:
        raise DataError(f"{Path(config.manifests) / 'dataset.json'} has no faces settings; rerun the faces stage")
    return dataclasses.replace(config, extra={**config.extra, "faces": settings})


def fit(config: TrainConfig, resume: bool = False, boxes: Path | None = None, explain: bool = True) -> Path:
    """Train as the config says; returns the run folder. Raises DataError, WeightsError, TrainError."""
    run = RunFolder(config.out)
    main_rank = distributed.is_main()
    state = None
    if resume:
        config, state = restore(config, run)
    manifest = load_manifest(config.shards, config.manifests, config.input, config.fake_faces)
    config = with_face_settings(with_pipeline_settings(config))
    dev = Device.resolve(config.device, config.amp, config.channels_last)
    config = dataclasses.replace(config, augment_impl=resolve_augment_impl(config.augment_impl, dev.device.type,
                                                                           config.image_size, config.workers))
    seed_everything(config.seed)
    model = create_model(config.arch, "none" if resume else config.weights)
    if main_rank:
        run.create()
        run.write_config(config.to_dict())
        if config.tensorboard:
            run.tensorboard = artifacts.TensorBoardLog(run.root / "tensorboard")
    progress = Progress()
    if state is not None:
        model.load_state_dict(state["model"])
        progress = Progress(**state["progress"])
    model = dev.prepare(model)
    optimizer = make_optimizer(model, config.weight_decay)
    if state is None:
        if main_rank:
            run.start_lr_log(3, keep_steps=0)
            save_batch_figure(config, manifest, run)
        if config.lr_find or config.lr_find_only:  # on rank 0 alone; the others wait for its result
            found = run_lr_finder(config, manifest, model, dev, run, class_weights(config, manifest)) \
                if main_rank else None
            progress.lr_find = distributed.broadcast(found)
            if main_rank:
                click.echo(f"LR finder suggests {progress.lr_find['suggestion']:.2e}"
                           if progress.lr_find["suggestion"] else "LR finder: no suggestion")
        if config.lr_find_only:
            if run.tensorboard is not None:
                run.tensorboard.figures(run.root, ("lr_find.png", "batch.png"))
                run.tensorboard.close()
            return run.root
    else:
        if main_rank:
            run.start_lr_log(3, keep_steps=progress.step)
        optimizer.load_state_dict(state["optimizer"])
        artifacts.set_rng_state(state["rng"])
    if main_rank:
        click.echo("  ".join(f"{k:>8}" for k in TABLE))
    try:
        run_stages(config, manifest, model, optimizer, dev, run, progress, state)
        if main_rank:
            finish(config, run, progress, dev, boxes, explain)
    finally:
        if run.tensorboard is not None:
            run.tensorboard.close()
    distributed.barrier()
    return run.root


def finish(config: TrainConfig, run: RunFolder, progress: Progress, dev: Device, boxes: Path | None,
           explain: bool) -> None:
    """Figures from lr.csv and the history, then train.explain when that module exists."""
    lr_log = run.read_lr()
    artifacts.plot_lr_schedule(run.figure("lr_schedule.png"), lr_log)
    artifacts.plot_losses(run.figure("losses.png"), lr_log, progress.history, [r["step"] for r in progress.history])
    if explain:
        from train.explain import run_explain

        run_explain(run.root, shards=config.shards, manifests=config.manifests, device=str(dev.device),
                    dev_run=config.dev_run, boxes=boxes)
    if run.tensorboard is not None:
        run.tensorboard.figures(run.root, TENSORBOARD_FIGURES, step=len(progress.history))


# Command line ------------------------------------------------------------------------------------------------


def default_workers() -> int:
    """Loader processes per training process: the cores torchrun's local processes share, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // distributed.env_context().local_world_size))


def build_config(shards, manifests, out, recipe, arch, weights, image_size, batch_size, workers, device, amp, seed,
                 lr_find_flag, lr_find_only, dev_run, balance, shuffle_buffer, stop_after_epochs,
                 compile_model=False, augment_impl="auto", tensorboard=False, input=None,
                 fake_faces="manipulated", aggregate="mean") -> TrainConfig:
    """The run's config from the recipe and the command line. The input is --input, else the recipe's; a recipe
    written for frames used on faces gets FACE_IMAGE_SIZE (224) unless --image-size says otherwise."""
    base = load_recipe(recipe)
    input = input or base.input
    changes = {}
    if image_size is not None:
        changes["image_size"] = parse_image_size(image_size, "--image-size")
    elif input == "faces" and base.input != "faces":
        changes["image_size"] = (FACE_IMAGE_SIZE, FACE_IMAGE_SIZE)
    if batch_size is not None:
        changes["batch_size"] = batch_size
    shards = str(shards)
    if manifests is None and not is_local(shards):
        raise DataError(f"--shards {shards} is not a local folder: pass --manifests (the folder with dataset.json)")
    return TrainConfig(
        shards=shards, manifests=str(manifests or Path(shards).parent / "manifests"),
        out=str(out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")), recipe=dataclasses.replace(base, **changes),
        arch=arch, weights=weights, workers=workers, device=device, amp=amp, seed=seed, lr_find=lr_find_flag,
        lr_find_only=lr_find_only, dev_run=dev_run, balance=balance, shuffle_buffer=shuffle_buffer,
        stop_after_epochs=stop_after_epochs, compile=compile_model, augment_impl=augment_impl,
        tensorboard=tensorboard, input=input, fake_faces=fake_faces, aggregate=aggregate)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--shards", required=True,
              help="Shards: a folder (make shards), a URL prefix such as s3://bucket/shards (fsspec), or a webdataset "
                   "template with {name}, e.g. 'pipe:aws s3 cp s3://bucket/shards/{name} -'.")
@click.option("--manifests", type=click.Path(path_type=Path), help="Folder with dataset.json [default: SHARDS/../manifests].")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder [default: runs/DATE-TIME].")
@click.option("--recipe", default="seed", help="Built-in recipe name (seed, demo) or a TOML file.")
@click.option("--arch", default="resnet18",
              help=f"Backbone: {', '.join(ARCHS)} (torchvision) or any timm model name, e.g. efficientnet_b4, "
                   "tf_efficientnet_b7, xception41, convnext_tiny.")
@click.option("--weights", default="imagenet", help="imagenet | none | PATH (state dict or checkpoint).")
@click.option("--input", "input_", type=click.Choice(INPUTS), default=None, show_default="the recipe's, else frames",
              help="frames: whole frames; faces: the faces stage's crops (SHARDS/faces/, faces.parquet).")
@click.option("--fake-faces", type=click.Choice(FAKE_FACES), default="manipulated",
              help="--input faces: manipulated drops from training the faces of fake videos that the faces stage "
                   "found untouched (manipulated false; unknown is kept); all keeps every face.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default="mean",
              help="A video's score from its frames' or faces' P(fake): mean, median, or confident (the DFDC "
                   "winner's rule: the mean of the confidently fake items when there are enough of them).")
@click.option("--image-size", help="Model input WIDTHxHEIGHT, as the pipeline's --size (e.g. 1280x720), or N for "
                                   "NxN; overrides the recipe (faces with a frames recipe: 224). A value narrower "
                                   "than tall is refused.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Overrides the recipe; per process under torchrun.")
@click.option("--workers", type=click.IntRange(min=0), default=default_workers, show_default="cores per process, max 8",
              help="DataLoader worker processes (per process under torchrun).")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--amp/--no-amp", default=True, help="Mixed precision (CUDA only).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model (CUDA; slow first steps).")
@click.option("--seed", type=int, default=0)
@click.option("--lr-find/--no-lr-find", "lr_find_flag", default=True, help="LR range test before the first stage.")
@click.option("--lr-find-only", is_flag=True, help="Run the LR finder alone and stop.")
@click.option("--balance", type=click.Choice(BALANCES), default="mix",
              help="mix: resampled real + fake streams at 50:50; weights: class weights in the loss; none.")
@click.option("--augment-impl", type=click.Choice(AUGMENT_IMPLS), default="auto", show_default=True,
              help="Where the ten augmentations run. albumentations: the plain pipeline in the loader workers; fused: "
                   "the same draws, one warp + LUTs (1.2x per core at 720x1280); device: the workers only decode and "
                   "the GPU augments each batch (7x the images per loader core; on an H100 at 720x1280 with 8 workers "
                   "1.4x the images/s of albumentations); auto: on a GPU with both image sides >= 448, device with "
                   "up to 8 workers and fused with more, else albumentations. See docs/performance.md.")
@click.option("--shuffle-buffer", type=click.IntRange(min=1), default=1000, help="Samples in the shuffle buffer.")
@click.option("--stop-after-epochs", type=click.IntRange(min=1), help="Stop after N epochs (continue with --resume).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.pt.")
@click.option("--dev-run", is_flag=True, help="Every step of the real path on two batches each.")
@click.option("--explain/--no-explain", "explain", default=True,
              help="After training, run train.explain on the run (predictions, top losses, Grad-CAM, report).")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ground-truth manipulation boxes (JSON, e.g. the demo's boxes.json) for the Grad-CAM pointing game.")
@click.option("--tensorboard", is_flag=True,
              help="Also log per-epoch metrics, learning rates and figures to RUN/tensorboard/ (needs the "
                   "tensorboard extra); view with: tensorboard --logdir runs")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(shards, manifests, out, recipe, arch, weights, input_, fake_faces, aggregate, image_size, batch_size, workers,
         device, amp, compile_model, seed, lr_find_flag, lr_find_only, balance, augment_impl, shuffle_buffer,
         stop_after_epochs, resume, dev_run, explain, boxes, tensorboard, verbose) -> None:
    """Fine-tune a ResNet on the shards with the seed's staged one-cycle recipe.

    Under `torchrun --nproc_per_node=N -m train.run ...` it trains with DistributedDataParallel (NCCL on GPUs,
    gloo on the CPU); --batch-size is per process and rank 0 alone writes the run folder.
    """
    ctx = distributed.env_context()
    level = logging.DEBUG if verbose else logging.INFO if ctx.main else logging.WARNING
    logging.basicConfig(level=level, format=f"%(levelname)s {'' if ctx.main else f'[rank {ctx.rank}] '}%(name)s: %(message)s")
    if resume and out is None:
        raise click.UsageError("--resume needs --out, the run folder to continue")
    try:
        distributed.init(device)
        config = build_config(shards, manifests, out, recipe, arch, weights, image_size, batch_size, workers, device,
                              amp, seed, lr_find_flag, lr_find_only, dev_run, balance, shuffle_buffer,
                              stop_after_epochs, compile_model, augment_impl, tensorboard, input_, fake_faces,
                              aggregate)
        config = dataclasses.replace(config, out=distributed.broadcast(config.out))  # one run folder for all ranks
        root = fit(config, resume=resume, boxes=boxes, explain=explain)
    except (RecipeError, DataError, WeightsError, TrainError, artifacts.TensorBoardMissing) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        if not is_full(err):
            raise
        raise click.ClickException(one_line(err, "rerun with --resume: training goes on from the last checkpoint "
                                                 "(checkpoints/last.pt)")) from None
    finally:
        distributed.shutdown()
    if ctx.main:
        click.echo(f"run folder: {root}")


if __name__ == "__main__":
    main()
