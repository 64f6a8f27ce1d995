"""A training run: TrainConfig -> dataset -> model -> LR finder -> one-cycle stages -> run folder (and resume)."""
from __future__ import annotations

import collections
import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dfd.errors import ToolkitError
from pipeline.dataset import CLASS_NAMES, Dataset, DatasetError, is_local
from train.augment import is_deferred, resolve_impl
from train.augment.device import DeviceAugmented
from train.config import CLIP_INPUTS, TrainConfig, clip_arch
from train.clip_model import create_clip_model, tile
from train.data.clip_streams import ClipShards, ClipTrainStream, ClipValStream
from train.data.streams import TrainStream, ValStream, make_loader, train_batches_per_epoch, worker_seed
from train.data.sampling import LossTable
from train.data.blended_fakes import Synthetic
from train.fit import distributed, plots
from train.fit import run_folder as artifacts
from train.fit.engine import NonFiniteLossError, evaluate, train_one_epoch
from train.fit.init import load_start
from train.fit.lr_find import lr_find
from train.fit.run_folder import RunFolder
from train.fit.schedule import DIV_FACTOR, FINAL_DIV_FACTOR, MOMS, PCT_START, spread_lr
from train.model import (Device, check_input_size, create_model, denormalize, group_lrs, normalize, param_groups,
                         set_frozen)
from train.normalisation import IMAGENET, backbone_input

log = logging.getLogger(__name__)

DEV_RUN_BATCHES = 2
TENSORBOARD_FIGURES = ("batch.png", "lr_find.png", "lr_schedule.png", "losses.png", "top_losses.png", "best.png",
                       "gradcam_worst.png", "gradcam_best.png", "pointing.png", "clips_worst.png", "clips_best.png")
TABLE = ("stage", "epoch", "train_loss", "val_loss", "accuracy", "balanced_accuracy", "roc_auc", "log_loss",
         "video_log_loss", "video_auc")
RESUME_OVERRIDABLE = ("workers", "device", "stop_after_epochs", "tensorboard")


class TrainError(ToolkitError, RuntimeError):
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


def train_loader(config: TrainConfig, dataset: Dataset, n_batches: int, stage: int, epoch: int,
                 losses: LossTable | None = None):
    """The stream of one epoch; its randomness depends only on (seed, stage, epoch) (and with --sample-by loss
    the losses recorded so far), so a resume replays it. --input clips: batches of clips (train.data.clip_streams)."""
    if config.input in CLIP_INPUTS:
        stream = ClipTrainStream(ClipShards(dataset, config.input), config.image_size, config.recipe.augment, config.batch_size,
                                 n_batches, config.balance, config.shuffle_buffer,
                                 worker_seed(config.seed, stage, epoch))
        return make_loader(stream, config.workers, pin_memory=torch.cuda.is_available())
    sampler = losses.sampler() if losses is not None and config.sample_by == "loss" else None
    stream = TrainStream(dataset, config.image_size, config.recipe.augment, config.batch_size, n_batches,
                         config.balance, config.shuffle_buffer, worker_seed(config.seed, stage, epoch),
                         augment_impl=config.augment_impl, synthetic=Synthetic.of(config, dataset), sampler=sampler)
    loader = make_loader(stream, config.workers, pin_memory=torch.cuda.is_available())
    if is_deferred(config.augment_impl):  # the workers only read JPEG bytes; decoded and augmented where it trains
        return DeviceAugmented(loader, Device.resolve(config.device, config.amp, config.channels_last).device,
                               config.image_size)
    return loader


def val_loader(config: TrainConfig, dataset: Dataset):
    if config.input in CLIP_INPUTS:
        stream = ClipValStream(ClipShards(dataset, config.input).urls("val"), config.image_size, config.batch_size)
    else:
        stream = ValStream(dataset.urls("val"), config.image_size, config.batch_size)
    return make_loader(stream, config.workers, pin_memory=torch.cuda.is_available())


def class_weights(config: TrainConfig, dataset: Dataset) -> torch.Tensor | None:
    if config.balance != "weights":
        return None
    weights = dataset.class_weights
    if not all(name in weights for name in CLASS_NAMES):
        raise DatasetError(f"--balance weights needs class_weights for {CLASS_NAMES} in dataset.json, got {weights}")
    return torch.tensor([float(weights[name]) for name in CLASS_NAMES])


def batches_per_epoch(config: TrainConfig, dataset: Dataset) -> int:
    """Per process: an epoch is the manifest's train frames once, shared by the torchrun ranks."""
    if config.dev_run:
        return DEV_RUN_BATCHES
    world = distributed.env_context().world_size
    if config.input in CLIP_INPUTS:
        return max(1, ClipShards(dataset, config.input).n_clips("train") // config.batch_size // world)
    return max(1, train_batches_per_epoch(dataset, config.batch_size, config.real_only) // world)


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


def run_lr_finder(config: TrainConfig, dataset: Dataset, model, dev: Device, run: RunFolder,
                  weights: torch.Tensor | None) -> dict:
    """The range test before the first stage, in that stage's freeze state, with its own optimizer."""
    set_frozen(model, config.recipe.stages[0].frozen, config.tune)
    steps = DEV_RUN_BATCHES if config.dev_run else config.recipe.lr_find_steps
    optimizer = make_optimizer(model, config.weight_decay, beta1=0.9)
    result = lr_find(model, train_loader(config, dataset, steps, 0, 0), optimizer, dev, num_steps=steps,
                     class_weights=weights)
    plots.plot_lr_find(run.figure("lr_find.png"), result.lrs, result.losses, result.suggestion)
    return result.to_dict()


def save_batch_figure(config: TrainConfig, dataset: Dataset, run: RunFolder) -> None:
    images, labels, *_ = next(iter(train_loader(config, dataset, 1, 0, 1)))
    if images.ndim == 5:  # clips: each shown as TALL's thumbnail of its frames
        images = tile(images)
    shown = denormalize(normalize(images))  # what the model sees, back in pixels
    plots.plot_batch(run.figure("batch.png"), shown, labels.tolist(), CLASS_NAMES)


def checkpoint_state(model, optimizer, scheduler, config: TrainConfig, progress: Progress) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "config": config.to_dict(run_relative=True), "progress": dataclasses.asdict(progress), "rng": artifacts.rng_state()}


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
    tqdm.write(format_row(row))


def format_row(row: dict) -> str:
    return "  ".join(f"{row[k]:>8}" if isinstance(row[k], int) else f"{row[k]:8.4f}" for k in TABLE)


def enter_stage(model, optimizer, stage, progress: Progress, tune: str = "full") -> None:
    """Apply the stage's freeze state; changing it clears the optimizer's moments, as fastai's freeze_to does."""
    set_frozen(model, stage.frozen, tune)
    if stage.frozen != progress.frozen:
        optimizer.state = collections.defaultdict(dict)
        progress.frozen = stage.frozen


def lr_logger(run: RunFolder, optimizer, progress: Progress, rows: list):
    def on_step(loss: float) -> None:
        lrs = [next(g["lr"] for g in optimizer.param_groups if g["layer_group"] == i) for i in range(3)]
        rows.append([progress.step, progress.stage, *lrs, optimizer.param_groups[0]["betas"][0], loss])
        progress.step += 1
    return on_step


def train_epoch(config, dataset, model, net, optimizer, scheduler, dev, run, progress, weights, val,
                losses: LossTable | None = None) -> dict:
    """One epoch of the current stage: train `net` (the model, or its DDP/compiled wrapper), evaluate the model,
    return the metrics row. `losses` (--sample-by loss) draws this epoch's items and records their losses."""
    n_batches = batches_per_epoch(config, dataset)
    rows: list = []
    loader = train_loader(config, dataset, n_batches, progress.stage, progress.epoch + 1, losses)
    stats = train_one_epoch(net, loader, optimizer, scheduler, dev, n_batches, weights,
                            desc=f"stage {progress.stage} epoch {progress.epoch + 1}",
                            on_step=lr_logger(run, optimizer, progress, rows),
                            on_losses=losses.record if losses is not None else None)
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


def run_stages(config, dataset, model, optimizer, dev, run, progress: Progress, resume_state: dict | None) -> None:
    weights = class_weights(config, dataset)
    val = val_loader(config, dataset)
    losses = LossTable() if config.sample_by == "loss" else None  # in memory: a resumed run starts it afresh
    epochs_done_now = 0
    for index, stage in enumerate(config.recipe.stages, 1):
        if index < progress.stage:
            continue
        epochs = stage_epochs(config, stage)
        if progress.epoch >= epochs:  # the checkpoint closed this stage
            progress.stage, progress.epoch = index + 1, 0
            continue
        enter_stage(model, optimizer, stage, progress, config.tune)
        net = for_training(model, config, dev)  # once per stage: freezing changes which parameters train
        scheduler = make_scheduler(optimizer, stage.lr, epochs * batches_per_epoch(config, dataset))
        if resume_state is not None and progress.epoch > 0:
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
        resume_state = None
        while progress.epoch < epochs:
            if config.stop_after_epochs is not None and epochs_done_now >= config.stop_after_epochs:
                log.info("stopping after %d epochs as asked; continue with --resume", epochs_done_now)
                return
            try:
                row = train_epoch(config, dataset, model, net, optimizer, scheduler, dev, run, progress, weights,
                                  val, losses)
            except NonFiniteLossError as err:
                raise TrainError(f"{err} in stage {progress.stage}, epoch {progress.epoch + 1}, step {progress.step}; "
                                 f"stopped. The last good checkpoint is {run.last} (if any epoch finished); "
                                 "try a lower learning rate") from None
            end_of_epoch(run, model, optimizer, scheduler, config, progress, row)
            epochs_done_now += 1
        progress.stage, progress.epoch = index + 1, 0


# The whole run -----------------------------------------------------------------------------------------------


def restore(config: TrainConfig, run: RunFolder) -> tuple[TrainConfig, dict]:
    """--resume: the saved config (with workers/device/stop_after_epochs from the command line) and state. The
    shards and manifests are the command line's (the dataset may have moved since): a different location is said."""
    if not run.last.is_file():
        raise TrainError(f"--resume: no checkpoint at {run.last}")
    try:
        state = artifacts.load_state(run.last)
    except Exception as err:  # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, zip errors)
        first = str(err).splitlines()[0] if str(err) else ""
        raise TrainError(f"--resume: {run.last} is not a checkpoint of this trainer (truncated or foreign: "
                         f"{type(err).__name__}: {first[:200]}); start a new run, or restore the file") from None
    if not isinstance(state, dict) or not {"config", "model"} <= set(state):
        raise TrainError(f"--resume: {run.last} is not a checkpoint of this trainer (no config and model)")
    try:
        saved = TrainConfig.from_checkpoint(state["config"], run.root)
    except ToolkitError as err:
        raise TrainError(f"--resume: {run.last}: {err}") from None
    overrides = {k: getattr(config, k) for k in RESUME_OVERRIDABLE}
    for key in ("shards", "manifests"):
        if not _same_place(getattr(config, key), getattr(saved, key)):
            log.warning("--resume: %s %s (the run was started with %s)", key, getattr(config, key),
                        getattr(saved, key))
        overrides[key] = getattr(config, key)
    return dataclasses.replace(saved, **overrides), state


def _same_place(a: str, b: str) -> bool:
    """Two shards or manifests locations name the same place (local folders compared resolved)."""
    return str(a) == str(b) or (is_local(str(a)) and is_local(str(b)) and Path(a).resolve() == Path(b).resolve())


def with_dataset_settings(config: TrainConfig, dataset: Dataset) -> TrainConfig:
    """Keep the settings the shards were made with in the config, hence in every checkpoint, so that prediction
    decodes (and, for faces, detects and crops) new videos exactly as the shards were: the frame settings (fps, size,
    JPEG quality) and, with --input faces (or face-clips), the faces stage's settings; with --input clips (or
    face-clips), how the clips were cut."""
    faces = None
    if config.input in ("faces", "face-clips"):
        if dataset.face_crop is None:
            raise DatasetError(f"{dataset.manifests / 'dataset.json'} has no faces settings; rerun the faces stage")
        faces = dataset.face_crop
        differ = {k: (v, getattr(faces, k)) for k, v in config.recipe.faces.items() if getattr(faces, k) != v}
        if differ:
            log.warning("the recipe expects faces cropped with %s, but %s has %s: rerun the faces stage with %s to "
                        "follow it", ", ".join(f"{k}={v}" for k, (v, _) in differ.items()), dataset.manifests,
                        ", ".join(f"{k}={got}" for k, (_, got) in differ.items()),
                        " ".join(f"--{k.replace('_', '-')} {v}" for k, (v, _) in differ.items()))
    clips = dataset.clip_spec if config.input in CLIP_INPUTS else None
    return dataclasses.replace(config, frames=dataset.frame_sampling or config.frames, faces=faces or config.faces,
                               clips=clips or config.clips)


Explainer = Callable[[Path, Device], None]  # what runs on the finished run folder before TensorBoard gets the figures


def open_run(config: TrainConfig, resume: bool) -> tuple[TrainConfig, Dataset, Device, RunFolder, dict | None]:
    """The run's config as it will be saved (resumed, with the dataset's settings and the resolved augmentation
    implementation), its dataset, device and folder, and the checkpoint state when resuming."""
    run = RunFolder(config.out)
    state = None
    if resume:
        config, state = restore(config, run)
    elif config.input_norm is None:  # a new run records its backbone's normalisation (a resumed one keeps its own)
        # a clip model feeds its 2D part ImageNet's normalisation (R(2+1)D turns it into Kinetics' itself)
        norm = dict(IMAGENET) if config.input in CLIP_INPUTS else backbone_input(config.arch)
        config = dataclasses.replace(config, input_norm=norm)
    frame_arch = (clip_arch(config.arch) or (None, config.arch))[1]  # a clip model's 2D part (none for R(2+1)D)
    if frame_arch is not None:
        check_input_size(frame_arch, config.image_size)
    try:
        dataset = Dataset.open(config.shards, config.manifests, "frames" if config.input in CLIP_INPUTS else config.input,
                               config.fake_faces)
    except DatasetError as err:
        if config.init is None:
            raise
        raise DatasetError(f"--init {config.init['reference']} is a {config.input} model, but {err}") from None
    config = with_dataset_settings(config, dataset)
    dev = Device.resolve(config.device, config.amp, config.channels_last)
    impl = ("fused" if config.input in CLIP_INPUTS  # a clip's one draw for all its frames: train.augment.clip_augment
            else resolve_impl(config.augment_impl, dev.device.type, config.image_size, config.workers))
    config = dataclasses.replace(config, augment_impl=impl)
    return config, dataset, dev, run, state


def fit(config: TrainConfig, resume: bool = False, explain: Explainer | None = None) -> Path:
    """Train as the config says; returns the run folder. `explain(run_folder, device)` runs on the finished run
    (rank 0). Raises DatasetError, WeightsError, TrainError."""
    config, dataset, dev, run, state = open_run(config, resume)
    main_rank = distributed.is_main()
    seed_everything(config.seed)
    if config.input in CLIP_INPUTS:
        model = create_clip_model(config.arch, "none" if resume else config.weights)
    else:
        model = create_model(config.arch, "none" if resume else config.weights, config.network, config.model_input)
    if config.init is not None and not resume:
        load_start(model, config.init)
    if main_rank:
        run.create()
        run.write_config(config.to_dict(run_relative=True))
        if config.tensorboard:
            run.tensorboard = artifacts.TensorBoardLog(run.root / "tensorboard")
    progress = Progress()
    if state is not None:
        model.load_state_dict(state["model"])
        progress = Progress(**state["progress"])
    model = dev.prepare(model)
    optimizer = make_optimizer(model, config.weight_decay)
    try:
        if state is None:
            if not start(config, dataset, model, optimizer, dev, run, progress):
                return run.root
        else:
            resume_from(state, optimizer, run, progress)
        if main_rank:
            tqdm.write("  ".join(f"{k:>8}" for k in TABLE))
        run_stages(config, dataset, model, optimizer, dev, run, progress, state)
        if main_rank:
            finish(run, progress, dev, explain)
    finally:
        if run.tensorboard is not None:
            run.tensorboard.close()
    distributed.barrier()
    return run.root


def start(config: TrainConfig, dataset: Dataset, model, optimizer, dev: Device, run: RunFolder,
          progress: Progress) -> bool:
    """A new run: the lr log, the batch figure and the LR finder; False when --lr-find-only says to stop there."""
    main_rank = distributed.is_main()
    if main_rank:
        run.start_lr_log(3, keep_steps=0)
        save_batch_figure(config, dataset, run)
    if config.lr_find or config.lr_find_only:  # on rank 0 alone; the others wait for its result
        found = run_lr_finder(config, dataset, model, dev, run, class_weights(config, dataset)) if main_rank else None
        progress.lr_find = distributed.broadcast(found)
        if main_rank:
            tqdm.write(f"LR finder suggests {progress.lr_find['suggestion']:.2e}"
                       if progress.lr_find["suggestion"] else "LR finder: no suggestion")
    if config.lr_find_only and run.tensorboard is not None:
        run.tensorboard.figures(run.root, ("lr_find.png", "batch.png"))
    return not config.lr_find_only


def resume_from(state: dict, optimizer, run: RunFolder, progress: Progress) -> None:
    if distributed.is_main():
        run.start_lr_log(3, keep_steps=progress.step)
    optimizer.load_state_dict(state["optimizer"])
    artifacts.set_rng_state(state["rng"])


def finish(run: RunFolder, progress: Progress, dev: Device, explain: Explainer | None) -> None:
    """Figures from lr.csv and the history, then the explanation of the run, then TensorBoard's copy of the figures."""
    lr_log = run.read_lr()
    plots.plot_lr_schedule(run.figure("lr_schedule.png"), lr_log)
    plots.plot_losses(run.figure("losses.png"), lr_log, progress.history, [r["step"] for r in progress.history])
    if explain is not None:
        explain(run.root, dev)
    if run.tensorboard is not None:
        run.tensorboard.figures(run.root, TENSORBOARD_FIGURES, step=len(progress.history))
