"""Training configuration: Stage, Augment, Recipe (TOML) and TrainConfig, frozen dataclasses that validate themselves.

TrainConfig is saved as config.json in the run folder and in every checkpoint; `TrainConfig.from_checkpoint` is the
one reader of a saved config (older checkpoints included)."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfd.cli import DEVICES
from dfd.errors import ToolkitError
from pipeline.config import ConfigError, parse_size
from pipeline.dataset import FAKE_FACES, INPUTS, is_local
from pipeline.spec import MAX_INPUT, SPEC_VERSION, Clips, FaceCrop, FrameSampling, ModelInput, SpecError, migrate
from train.paths import RunLayout

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).parent / "recipes"
ARCHS = ("resnet18", "resnet34", "resnet50")  # torchvision's; any timm model name is allowed too
# clips: the clip shards of `dfd shards --clip-frames T`; face-clips: the faces stage's face tubes of those clips
# (both train.data.clip_streams)
CLIP_INPUTS = ("clips", "face-clips")
TRAIN_INPUTS = (*INPUTS, *CLIP_INPUTS)
CLIP_LAYOUTS = ("tall", "temporal")  # clip models over a 2D ARCH: --arch tall:ARCH, temporal:ARCH (train.clip_model)
VIDEO_ARCHS = ("r2plus1d_18",)       # torchvision's 3D CNN for clips
BALANCES = ("mix", "weights", "none")
# auto (default): on a GPU at full-frame sizes, device with up to 8 loader workers and fused with more; else
# albumentations (train.augment.resolve_impl; measured in docs/performance.md)
AUGMENT_IMPLS = ("auto", "albumentations", "fused", "device")  # train.augment.reference, .fused, .device
AGGREGATES = ("mean", "median", "confident", "winner", "frame_max")  # a video's score from its items' P(fake)
# (train.score.metrics; winner: confident with the DFDC winner's literal minimum of 12 confident fakes; frame_max:
# the max over each frame's faces, then the mean over frames, as SBI scores)
FACE_IMAGE_SIZE = 224                 # --input faces with a recipe written for frames: the model's input size
MIN_IMAGE = 32                        # no model input side below this (above: pipeline.spec's MAX_INPUT)
RUN_PATHS = ("shards", "manifests", "out")  # the local paths a run records relative to its folder
TUNES = ("full", "frozen", "norm")    # full: the stages' freeze state; frozen: head + norms always; norm: LayerNorm-only
SAMPLE_BY = ("uniform", "loss")       # loss: faces or frames drawn by their last epoch's loss (train.data.sampling)
SYNTHETIC_FAKES = ("sbi",)            # self-blended fakes from real faces (train.augment.sbi)
# A recipe's [train] table: TrainConfig defaults a recipe may set (the command line's value wins)
RECIPE_TRAIN_KEYS = ("arch", "aggregate", "synthetic_fakes", "synthetic_share", "real_only", "tune", "sample_by")
NORM_KEYS = ("mean", "std", "scale", "colour")  # the parts of a ModelInput that TrainConfig.input_norm records
AUGMENTS = ("blur", "median_blur", "hflip", "hsv", "crop_pad", "rotate", "zoom", "brightness", "contrast", "jpeg")


class RecipeError(ToolkitError, ValueError):
    """A recipe or configuration value is invalid; the message names the field."""


def _fail(name: str, message: str) -> None:
    raise RecipeError(f"{name}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


SIZE_CONVENTION = "WIDTHxHEIGHT, as the pipeline's --size and ffmpeg write it (e.g. 1280x720)"


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _fail(name, f"must be one of {', '.join(allowed)}, got {value!r}")


def clip_arch(arch: str) -> tuple[str, str | None] | None:
    """An --arch of a clip model -> (kind, the 2D arch or None): "tall:resnet18" -> ("tall", "resnet18"),
    "r2plus1d_18" -> ("r2plus1d_18", None); None for a frame model's arch."""
    if not isinstance(arch, str):
        return None
    if arch in VIDEO_ARCHS:
        return arch, None
    kind, sep, frame_arch = arch.partition(":")
    return (kind, frame_arch) if sep and kind in CLIP_LAYOUTS else None


def parse_image_size(value: Any, name: str = "image_size") -> tuple[int, int]:
    """'1280x720' (WIDTHxHEIGHT, the one convention of the project) or a single N (NxN) -> (height, width).

    A value narrower than tall (e.g. '720x1280', HxW in the old convention) is refused rather than transposed,
    as is a [a, b] list (which side is which?)."""
    if isinstance(value, bool):
        _fail(name, f"expected N or {SIZE_CONVENTION}, got {value!r}")
    if isinstance(value, int):
        size = (value, value)
    elif isinstance(value, str) and value.strip().isdigit():
        size = (int(value), int(value))
    elif isinstance(value, str):
        try:
            w, h = parse_size(value)
        except ConfigError:
            _fail(name, f"expected N or {SIZE_CONVENTION}, got {value!r}")
        if w < h:
            _fail(name, f"{value!r} is narrower than tall: sizes are {SIZE_CONVENTION}; for landscape frames "
                        f"write {h}x{w} (not transposed for you: the old convention was HxW)")
        size = (h, w)
    elif isinstance(value, (list, tuple)):
        _fail(name, f"got the list {list(value)!r}: write a string in {SIZE_CONVENTION}, or N for NxN")
    else:
        _fail(name, f"expected N or {SIZE_CONVENTION}, got {value!r}")
    check_image_size(size, name)
    return size


def check_image_size(size: Any, name: str = "image_size") -> tuple[int, int]:
    """A (height, width) pair of integers, each side in MIN_IMAGE..MAX_INPUT: what any recipe, saved config or package
    may ask of the model's input (a bigger one is refused before anything is allocated)."""
    if not isinstance(size, (list, tuple)) or len(size) != 2 \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        _fail(name, f"must be a (height, width) pair of integers, got {size!r}")
    if min(size) < MIN_IMAGE or max(size) > MAX_INPUT:
        _fail(name, f"each side must be in {MIN_IMAGE}..{MAX_INPUT}, got {size[1]}x{size[0]} (WIDTHxHEIGHT)")
    return (int(size[0]), int(size[1]))


@dataclass(frozen=True)
class Stage:
    """One fit_one_cycle call: epochs, lr (a number or (lo, hi) = fastai's slice(lo, hi)), frozen."""

    epochs: int
    lr: float | tuple[float, float]
    frozen: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            _fail("epochs", f"must be an integer >= 1, got {self.epochs!r}")
        if isinstance(self.lr, list):
            object.__setattr__(self, "lr", tuple(self.lr))
        lr = self.lr
        if isinstance(lr, tuple):
            if len(lr) != 2 or not all(_is_number(v) and v > 0 for v in lr) or lr[0] > lr[1]:
                _fail("lr", f"a slice must be [lo, hi] with 0 < lo <= hi, got {list(lr)!r}")
            object.__setattr__(self, "lr", (float(lr[0]), float(lr[1])))
        elif _is_number(lr) and lr > 0:
            object.__setattr__(self, "lr", float(lr))
        else:
            _fail("lr", f"must be a positive number or [lo, hi], got {lr!r}")
        if not isinstance(self.frozen, bool):
            _fail("frozen", f"must be true or false, got {self.frozen!r}")


@dataclass(frozen=True)
class Augment:
    """The probability of each of the report's ten augmentations."""

    blur: float = 0.2
    median_blur: float = 0.2
    hflip: float = 0.5
    hsv: float = 0.3
    crop_pad: float = 0.3
    rotate: float = 0.3
    zoom: float = 0.3
    brightness: float = 0.3
    contrast: float = 0.3
    jpeg: float = 0.3

    def __post_init__(self) -> None:
        for name in AUGMENTS:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                _fail(f"augment.{name}", f"must be a probability in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def none(cls) -> "Augment":
        return cls(**{name: 0.0 for name in AUGMENTS})


SOURCE_KEYS = ("title", "url", "reported", "note")
FACE_KEYS = ("margin", "face_size")  # the faces stage's settings a recipe may expect (pipeline.faces FaceSettings)


def check_source(source: Any) -> dict:
    """A recipe's `[source]` table: title and url (strings), reported = a table of figure name -> number or text
    (the figures the source reports, e.g. `"DFDC private LB log loss" = 0.42798`), an optional note."""
    if not isinstance(source, dict):
        _fail("source", "must be a table with title, url and reported")
    _check_keys(source, SOURCE_KEYS, "source.")
    if not source:
        return {}
    for key in ("title", "url"):
        if not isinstance(source.get(key), str) or not source[key].strip():
            _fail(f"source.{key}", "missing (a non-empty string)")
    reported = source.get("reported", {})
    if not isinstance(reported, dict):
        _fail("source.reported", "must be a table of figure name -> value")
    for name, value in reported.items():
        if not (_is_number(value) or isinstance(value, str)):
            _fail(f"source.reported.{name}", f"must be a number or a string, got {value!r}")
    if not isinstance(source.get("note", ""), str):
        _fail("source.note", "must be a string")
    return {**source, "reported": dict(reported)}


def check_faces(faces: Any) -> dict:
    """A recipe's `[faces]` table: the faces stage settings it was written for (margin, face_size); training warns
    when the face shards were cropped otherwise."""
    if not isinstance(faces, dict):
        _fail("faces", f"must be a table with {', '.join(FACE_KEYS)}")
    _check_keys(faces, FACE_KEYS, "faces.")
    if "margin" in faces and not (_is_number(faces["margin"]) and 0 <= faces["margin"] <= 2):
        _fail("faces.margin", f"must be a share of the box in [0, 2], got {faces['margin']!r}")
    if "face_size" in faces and not (isinstance(faces["face_size"], int) and 16 <= faces["face_size"] <= MAX_INPUT):
        _fail("faces.face_size", f"must be an integer in 16..{MAX_INPUT}, got {faces['face_size']!r}")
    return dict(faces)


@dataclass(frozen=True)
class Recipe:
    """What a recipe TOML holds: batch size, image size, augmentation probabilities and stages; optionally the
    backbone and aggregation rule it was written for, the face crops it expects, and its source with the figures
    the source reports."""

    batch_size: int
    image_size: tuple[int, int]
    augment: Augment
    stages: tuple[Stage, ...]
    lr_find_steps: int = 100
    input: str = "frames"  # what the recipe was written for: its image_size is for this input
    train: dict = field(default_factory=dict)  # [train]: TrainConfig defaults (RECIPE_TRAIN_KEYS)
    faces: dict = field(default_factory=dict)   # [faces]: margin, face_size the crops should have
    source: dict = field(default_factory=dict)  # [source]: title, url, reported = {figure: value}, note

    def __post_init__(self) -> None:
        _check_choice("input", self.input, TRAIN_INPUTS)
        object.__setattr__(self, "image_size", check_image_size(self.image_size))
        _check_keys(self.train, RECIPE_TRAIN_KEYS, "train.")
        object.__setattr__(self, "faces", check_faces(self.faces))
        object.__setattr__(self, "source", check_source(self.source))
        if isinstance(self.lr_find_steps, bool) or not isinstance(self.lr_find_steps, int) or self.lr_find_steps < 2:
            _fail("lr_find_steps", f"must be an integer >= 2, got {self.lr_find_steps!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            _fail("batch_size", f"must be an integer >= 1, got {self.batch_size!r}")
        if not self.stages:
            _fail("stage", "a recipe needs at least one [[stage]] table")


def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            _fail(f"{where}{key}", f"unknown field; allowed: {', '.join(allowed)}")


def recipe_from_dict(data: dict) -> Recipe:
    """Validate a parsed TOML document and build a Recipe; errors name the offending field."""
    _check_keys(data, ("batch_size", "image_size", "lr_find_steps", "input", "augment", "stage", "train", "faces",
                       "source"), "")
    for key in ("train", "faces", "source"):
        if not isinstance(data.get(key, {}), dict):
            _fail(key, "must be a table")
    for key in ("batch_size", "image_size", "stage"):
        if key not in data:
            _fail(key, "missing")
    augment = data.get("augment", {})
    if not isinstance(augment, dict):
        _fail("augment", "must be a table")
    _check_keys(augment, AUGMENTS, "augment.")
    raw_stages = data["stage"]
    if not isinstance(raw_stages, list) or not all(isinstance(s, dict) for s in raw_stages):
        _fail("stage", "must be an array of tables ([[stage]])")
    stages = []
    for i, raw in enumerate(raw_stages, 1):
        _check_keys(raw, ("epochs", "lr", "frozen"), f"stage[{i}].")
        for key in ("epochs", "lr"):
            if key not in raw:
                _fail(f"stage[{i}].{key}", "missing")
        try:
            stages.append(Stage(**raw))
        except RecipeError as err:
            raise RecipeError(f"stage[{i}].{err}") from None
    aug = Augment(**augment)
    return Recipe(batch_size=data["batch_size"], image_size=parse_image_size(data["image_size"]),
                  augment=aug, stages=tuple(stages), lr_find_steps=data.get("lr_find_steps", 100),
                  input=data.get("input", "frames"), train=data.get("train", {}), faces=data.get("faces", {}),
                  source=data.get("source", {}))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe name (seed, demo) or a path to a TOML file -> Recipe."""
    path = Path(name_or_path)
    if not path.suffix and not path.is_file():  # a name: built-in recipes win over folders of that name (demo/)
        path = RECIPES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            builtin = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
            raise RecipeError(f"recipe: no built-in recipe {name_or_path!r}; choose one of {builtin} or a .toml path")
    if not path.is_file():
        raise RecipeError(f"recipe: file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"recipe {path}: not valid TOML: {err}") from None
    try:
        return recipe_from_dict(data)
    except RecipeError as err:
        raise RecipeError(f"recipe {path}: {err}") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; saved as config.json in the run folder and in every checkpoint."""

    shards: str
    manifests: str
    out: str
    recipe: Recipe
    arch: str = "resnet18"
    weights: str = "imagenet"
    workers: int = 2
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    lr_find: bool = True
    lr_find_only: bool = False
    dev_run: bool = False
    balance: str = "mix"
    shuffle_buffer: int = 1000
    weight_decay: float = 0.01
    stop_after_epochs: int | None = None
    channels_last: bool = True
    compile: bool = False
    augment_impl: str = "auto"         # auto | albumentations | fused | device; fit() records the one it resolved to
    tensorboard: bool = False
    input: str = "frames"              # frames | faces (the faces stage's crops: shards/faces/, faces.parquet)
    fake_faces: str = "manipulated"    # faces: drop fake videos' faces the faces stage found untouched, or keep all
    aggregate: str = "mean"            # a video's score from its items' P(fake): mean | median | confident
    frames: FrameSampling | None = None  # how the shards' frames were made (dataset.json), so prediction decodes alike
    faces: FaceCrop | None = None      # input faces: how the faces stage cropped, so prediction crops as training did
    clips: Clips | None = None         # input clips: how the clips were cut (dataset.json), so check/predict cut alike
    synthetic_fakes: str | None = None  # faces: sbi turns real faces into self-blended fakes in the train stream
    synthetic_share: float = 0.5       # the share of real faces turned into synthetic fakes
    real_only: bool = False            # train on real videos only (their synthetic fakes are the fakes)
    tune: str = "full"                 # full | frozen | norm (train.model.set_frozen)
    sample_by: str = "uniform"         # uniform | loss (train.data.sampling)
    # the body's input normalisation (mean, std, scale, colour of pipeline.spec.ModelInput), set when a run starts
    # (train.normalisation.backbone_input, or the --init package's); None: ImageNet's, as every run before it
    input_norm: dict | None = None
    network: dict | None = None        # --init from a zoo package: its network (train.linear_head), else None
    init: dict | None = None           # --init: the package or checkpoint the run started from (train.fit.init)

    def __post_init__(self) -> None:
        self._typed_spec()
        self._check_init()
        self._check_generalisation()
        frame_arch = (clip_arch(self.arch) or (None, self.arch))[1]
        if frame_arch is not None and frame_arch not in ARCHS:
            import timm

            if not isinstance(frame_arch, str) or not timm.is_model(frame_arch):
                _fail("arch", f"must be one of {', '.join(ARCHS)} (torchvision) or a timm model name "
                              f"(timm.list_models()), {', '.join(VIDEO_ARCHS)} or {'|'.join(CLIP_LAYOUTS)}:ARCH "
                              f"for clips, got {self.arch!r}")
        _check_choice("balance", self.balance, BALANCES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("augment_impl", self.augment_impl, AUGMENT_IMPLS)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            _fail("workers", f"must be an integer >= 0, got {self.workers!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            _fail("seed", f"must be an integer, got {self.seed!r}")
        if not isinstance(self.shuffle_buffer, int) or self.shuffle_buffer < 1:
            _fail("shuffle_buffer", f"must be an integer >= 1, got {self.shuffle_buffer!r}")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            _fail("weight_decay", f"must be a number >= 0, got {self.weight_decay!r}")
        if self.stop_after_epochs is not None and self.stop_after_epochs < 1:
            _fail("stop_after_epochs", f"must be >= 1, got {self.stop_after_epochs!r}")
        _check_choice("input", self.input, TRAIN_INPUTS)
        self._check_clips()
        _check_choice("fake_faces", self.fake_faces, FAKE_FACES)
        _check_choice("aggregate", self.aggregate, AGGREGATES)

    def _typed_spec(self) -> None:
        """frames, faces and clips as given in a saved config (dicts of any spec version) become the typed spec."""
        for name, kind in (("frames", FrameSampling), ("faces", FaceCrop), ("clips", Clips)):
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    object.__setattr__(self, name, kind.from_dict(value) if value else None)
                except SpecError as err:
                    _fail(name, str(err))
            elif value is not None and not isinstance(value, kind):
                _fail(name, f"must be a {kind.__name__} or a table of its settings, got {value!r}")

    def _check_init(self) -> None:
        """input_norm makes a valid ModelInput; network and init are tables."""
        if self.input_norm is not None:
            if not isinstance(self.input_norm, dict) or set(self.input_norm) - set(NORM_KEYS):
                _fail("input_norm", f"must be a table of {', '.join(NORM_KEYS)}, got {self.input_norm!r}")
            try:
                ModelInput(size=self.image_size, **self.input_norm, where="input_norm.")
            except (SpecError, TypeError) as err:
                _fail("input_norm", str(err))
        for name in ("network", "init"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                _fail(name, f"must be a table, got {getattr(self, name)!r}")
        if self.network is not None and not {"timm_name", "features", "outputs"} <= set(self.network):
            _fail("network", "needs timm_name, features and outputs (a zoo package's architecture)")

    @property
    def model_input(self) -> ModelInput:
        """What the network is given: the recipe's image size, RGB, area resize, and the recorded normalisation
        (ImageNet's when none is recorded)."""
        return ModelInput(size=self.image_size, **(self.input_norm or {}))

    def _check_clips(self) -> None:
        """--input clips takes a clip model (train.clip_model) and a clip model takes clips."""
        if self.input in CLIP_INPUTS and clip_arch(self.arch) is None:
            _fail("arch", f"--input {self.input} needs a clip model: {', '.join(VIDEO_ARCHS)} or "
                          f"{'|'.join(CLIP_LAYOUTS)}:ARCH (e.g. temporal:resnet18), got {self.arch!r}")
        if self.input not in CLIP_INPUTS and clip_arch(self.arch) is not None:
            _fail("arch", f"{self.arch!r} is a clip model: it needs --input clips or face-clips")
        if self.input in CLIP_INPUTS and self.sample_by != "uniform":
            _fail("sample_by", f"--input {self.input} draws clips uniformly (--sample-by loss reads frames)")

    def _check_generalisation(self) -> None:
        """synthetic fakes, real-only, tune and sample-by: their values and the combinations that make sense."""
        if self.synthetic_fakes is not None:
            _check_choice("synthetic_fakes", self.synthetic_fakes, SYNTHETIC_FAKES)
            if self.input != "faces":
                _fail("synthetic_fakes", "needs --input faces (the blend mask comes from the faces' landmarks)")
            if self.augment_impl == "device":
                _fail("synthetic_fakes", "blends decoded faces in the loader workers: use --augment-impl "
                                         "albumentations, fused or auto, not device (whose workers only read bytes)")
        if not _is_number(self.synthetic_share) or not 0 < self.synthetic_share <= 1:
            _fail("synthetic_share", f"must be in (0, 1], got {self.synthetic_share!r}")
        if not isinstance(self.real_only, bool):
            _fail("real_only", f"must be true or false, got {self.real_only!r}")
        if self.real_only and self.synthetic_fakes is None:
            _fail("real_only", "trains without fake videos: it needs --synthetic-fakes (e.g. sbi) for its fakes")
        _check_choice("tune", self.tune, TUNES)
        _check_choice("sample_by", self.sample_by, SAMPLE_BY)

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    @property
    def image_size(self) -> tuple[int, int]:
        return self.recipe.image_size

    def to_dict(self, run_relative: bool = False) -> dict:
        """Plain JSON-able dict (tuples become lists; the spec parts as their to_dict, with spec_version). With
        `run_relative`, as the run folder records it: local paths relative to the run folder (`out`), so that the
        run reads the same from any working directory (from_checkpoint with `run` resolves them)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(recipe=dataclasses.asdict(self.recipe), spec_version=SPEC_VERSION,
                    frames=self.frames.to_dict() if self.frames else None,
                    faces=self.faces.to_dict() if self.faces else None,
                    clips=self.clips.to_dict() if self.clips else None)
        if run_relative:
            layout = RunLayout(Path(self.out))
            data.update({k: layout.store(data[k]) for k in RUN_PATHS if data[k] and is_local(str(data[k]))},
                        paths="run")
        return json_ready(data)

    @classmethod
    def from_recipe(cls, recipe: str | Path, image_size: str | None = None, batch_size: int | None = None,
                    input: str | None = None, **fields) -> "TrainConfig":
        """A new run's config: the recipe (a built-in name or a TOML file) with the command line's overrides. The
        input is `input`, else the recipe's; a recipe written for frames used on faces gets FACE_IMAGE_SIZE (224)
        unless image_size says otherwise."""
        base = load_recipe(recipe)
        input = input or base.input
        changes: dict = {}
        if image_size is not None:
            changes["image_size"] = parse_image_size(image_size, "--image-size")
        elif input == "faces" and base.input != "faces":
            changes["image_size"] = (FACE_IMAGE_SIZE, FACE_IMAGE_SIZE)
        if batch_size is not None:
            changes["batch_size"] = batch_size
        given = {k: v for k, v in fields.items() if not (v is None and k in RECIPE_TRAIN_KEYS)}  # None: not given
        return cls(recipe=dataclasses.replace(base, **changes), input=input, **{**base.train, **given})

    @classmethod
    def from_checkpoint(cls, data: dict, run: str | Path | None = None) -> "TrainConfig":
        """The config a run saved (config.json, a checkpoint's "config"), also one written before the frame and face
        settings were typed fields (pipeline.spec.migrate reads every older shape); keys no field holds are dropped
        with a warning. Values are validated as on the command line (RecipeError names the field). `run`: the run
        folder the config was read from, against which the paths it recorded relative to it are resolved."""
        if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
            raise RecipeError("config: not a saved training config (no recipe table)")
        try:
            data = migrate("training", data)
        except SpecError as err:
            raise RecipeError(f"config: {err}") from None
        if data.pop("paths", None) == "run" and run is not None:
            layout = RunLayout(Path(run))
            data.update({k: os.path.normpath(layout.resolve(data[k])) for k in RUN_PATHS
                         if isinstance(data.get(k), str) and data[k] and is_local(data[k])})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            log.warning("config: ignoring fields this version does not know: %s", ", ".join(unknown))
        rec = data.pop("recipe")
        try:
            recipe = Recipe(batch_size=rec["batch_size"], image_size=tuple(rec["image_size"]),
                            augment=Augment(**rec["augment"]), stages=tuple(Stage(**s) for s in rec["stages"]),
                            lr_find_steps=rec.get("lr_find_steps", 100), input=rec.get("input", "frames"),
                            train=rec.get("train") or {}, faces=rec.get("faces") or {},
                            source=rec.get("source") or {})
        except (KeyError, TypeError) as err:
            raise RecipeError(f"config: the saved recipe is incomplete ({err})") from None
        try:
            return cls(recipe=recipe, **{k: v for k, v in data.items() if k in names})
        except TypeError as err:  # a field without a default is missing (shards, manifests, out)
            raise RecipeError(f"config: {err}") from None


def json_ready(value: Any) -> Any:
    """Tuples -> lists, recursively, so a config round-trips through JSON and weights_only checkpoints."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
