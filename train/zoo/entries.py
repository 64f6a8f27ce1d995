"""The published detectors as data: one frozen Entry each (source, licences, reported figures, preprocessing, layout).

Everything the zoo does with a detector is read from its Entry: `dfd zoo list` prints it, `dfd zoo fetch` downloads
its files, `dfd zoo import` converts them by its Layout into its Architecture and writes its preprocessing and
figures into the package. Facts were read from the authors' code (see /work/shared/DESIGN.md, "the zoo"); a figure
with verified=False was not re-read from the source while writing it and says so wherever it is shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dfd.errors import UsageProblem
from pipeline.spec import IMAGENET_MEAN, IMAGENET_STD, ModelInput

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HOSTS = ("github", "huggingface", "gdrive")       # how a file is fetched (gdrive: by hand)
BOXES = ("per_side", "aligned")                     # detector box grown by `margin` per side | 5-point similarity
RESIZES = ("isotropic_pad", "stretch", "aligned")   # long side to size + centred zero pad | to size x size | warp
FACE_RULES = ("each", "max", "largest")             # every face is a sample | max over a frame's | largest only
VIDEO_RULES = ("mean", "confident")                 # mean of the samples | the DFDC winner's confident strategy
CONVERTERS = ("efficientnet_pytorch", "hf_clip", "svd_merge")
# metric -> (level, measure): what a published figure is, for the benchmark's published-vs-measured table
METRICS = {"video AUC": ("video", "auc"), "frame AUC": ("frame", "auc"), "log loss": ("video", "log_loss")}
# test sets by name: the protocol's test split of each dataset
DATASETS = {"Celeb-DF-v2": "celebdf-v2-test", "DFD": "ffpp-dfd", "DFDC": "dfdc-test",
            "DFDC-preview": "dfdc-preview-test", "FFIW": "ffiw-test", "FF++ c23": "ffpp-c23-test",
            "DFDC private": "dfdc-private-test"}


class ZooError(UsageProblem):
    """A zoo name or option that does not exist (exit 2)."""


@dataclass(frozen=True)
class WeightFile:
    """One published weight file: its name as published and where it is."""

    name: str
    url: str
    host: str
    repo: str = ""            # the Hugging Face repository (host huggingface)

    def __post_init__(self) -> None:
        if self.host not in HOSTS:
            raise ValueError(f"host is {self.host!r}, not one of {', '.join(HOSTS)}")


@dataclass(frozen=True)
class Figure:
    """One figure the authors report, with its protocol."""

    test_set: str
    metric: str               # "video AUC", "frame AUC", "log loss"
    value: float
    protocol: str
    source: str
    verified: bool = False    # True: read from `source` while writing this entry

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric is {self.metric!r}, not one of {', '.join(METRICS)}")
        if self.test_set not in DATASETS:
            raise ValueError(f"test_set is {self.test_set!r}, not one of {', '.join(DATASETS)}")


@dataclass(frozen=True)
class Preprocessing:
    """The authors' way from a video to the network's input, and from frame scores to a video score."""

    frames_per_video: int
    detector: str             # the authors' face detector (ours is MTCNN; the crop rule follows theirs)
    detector_settings: str
    box: str                  # BOXES
    margin: float             # per_side: share of the box's width/height added on each side; aligned: crop scale
    resize: str               # RESIZES
    face_size: int
    frame_score: str
    video_score: str
    no_face_score: float | None
    note: str = ""
    face_rule: str = "largest"            # FACE_RULES: how a frame's faces become samples
    video_rule: str = "mean"              # VIDEO_RULES: how samples become the video's score (per member)
    video_params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name, value, allowed in (("box", self.box, BOXES), ("resize", self.resize, RESIZES),
                                     ("face_rule", self.face_rule, FACE_RULES),
                                     ("video_rule", self.video_rule, VIDEO_RULES)):
            if value not in allowed:
                raise ValueError(f"preprocessing.{name} is {value!r}, not one of {', '.join(allowed)}")

    @property
    def alignment(self) -> str:
        return "five_point" if self.box == "aligned" else "none"

    def summary(self) -> str:
        box = (f"box + {self.margin:.3g} per side" if self.box == "per_side"
               else f"5-point alignment at {self.margin:g}")
        resize = {"isotropic_pad": "isotropic resize, zero pad", "stretch": "stretched",
                  "aligned": "aligned crop"}[self.resize]
        return (f"{self.frames_per_video} frames, {self.detector}, {box}, {resize} to {self.face_size}; "
                f"{self.frame_score}; video: {self.video_score}")


@dataclass(frozen=True)
class Layout:
    """How a published file holds its weights: wrapper keys, prefixes, the head's and the body's key prefixes,
    keys the runtime does not use, and the converters from the authors' library's names to timm's."""

    description: str
    wrappers: tuple[str, ...] = ()     # dict keys holding the state dict, tried in order (else the dict itself)
    strip: tuple[str, ...] = ()        # prefixes removed where present (DataParallel's "module.")
    require: str = ""                  # the prefix every key has (removed)
    drop: tuple[str, ...] = ()         # regular expressions of keys the runtime does not use
    head: tuple[str, ...] = ()         # prefixes of the linear head's keys, tried in order
    body: str = ""                     # prefix of the backbone's keys
    convert: tuple[str, ...] = ()      # CONVERTERS applied to the body, in order

    def __post_init__(self) -> None:
        if not set(self.convert) <= set(CONVERTERS):
            raise ValueError(f"convert is {self.convert!r}, not made of {', '.join(CONVERTERS)}")


@dataclass(frozen=True)
class Architecture:
    """The runtime network: a timm model without classifier (pooled features) + a linear head of our own."""

    timm_name: str
    features: int
    outputs: int                       # 1: one sigmoid logit (mapped to [real, fake]); 2: [real, fake] logits
    normalise: bool = False            # L2-normalise the features before the head
    static_pads_at: int = 0            # > 0: TF "same" pads fixed as computed for this input size
    stem_padding: bool = True          # False: the stem convolution has no padding at all
    reference: str = ""                # what the authors built it with

    def to_dict(self) -> dict:
        return {"library": "timm", "timm_name": self.timm_name, "features": self.features, "outputs": self.outputs,
                "normalise": self.normalise, "static_pads_at": self.static_pads_at,
                "stem_padding": self.stem_padding, "reference": self.reference}


@dataclass(frozen=True)
class Licence:
    code: str
    weights: str
    non_commercial: bool

    def line(self) -> str:
        tag = "NON-COMMERCIAL USE ONLY" if self.non_commercial else "no non-commercial clause"
        return f"{tag}: code {self.code}; weights {self.weights}"


@dataclass(frozen=True)
class Entry:
    """One published detector."""

    name: str
    title: str
    paper: str
    code: str                          # the authors' repository
    files: tuple[WeightFile, ...]
    licence: Licence
    figures: tuple[Figure, ...]
    preprocessing: Preprocessing
    input: ModelInput
    layout: Layout
    architecture: Architecture
    figures_note: str = ""
    max_files: int = 1                 # files one package may hold (an ensemble's members)
    notes: tuple[str, ...] = field(default=())


def _github(repo: str, tag: str, name: str) -> WeightFile:
    return WeightFile(name, f"https://github.com/{repo}/releases/download/{tag}/{name}", "github")


WINNER_FILES = tuple(_github("selimsef/dfdc_deepfake_challenge", "0.0.1",
                             f"final_{seed}_DeepFakeClassifier_tf_efficientnet_b7_ns_0_{epoch}")
                     for seed, epoch in (("111", "36"), ("555", "19"), ("777", "29"), ("777", "31"), ("888", "37"),
                                         ("888", "40"), ("999", "23")))

DFDC_WINNER = Entry(
    name="dfdc-winner",
    title="DFDC 1st place (Selim Seferbekov): seven EfficientNet-B7 (noisy student) classifiers",
    paper="https://www.kaggle.com/competitions/deepfake-detection-challenge (1st place solution)",
    code="https://github.com/selimsef/dfdc_deepfake_challenge",
    files=WINNER_FILES,
    licence=Licence("MIT", "MIT (released with the repository; trained on DFDC data, whose terms apply)", False),
    figures=(Figure("DFDC private", "log loss", 0.42798, "Kaggle's private test set (4,000 videos); video score: "
                    "confident strategy per model, mean of seven", "Kaggle private leaderboard"),),
    preprocessing=Preprocessing(
        32, "mtcnn", "facenet-pytorch MTCNN on the half-size frame, thresholds 0.7/0.8/0.8", "per_side", 1 / 3,
        "isotropic_pad", 380, "sigmoid of one logit per face", "confident strategy per model, then the mean of "
        "the seven models", 0.5, "box grown by h // 3 and w // 3 per side, clipped to the frame; INTER_AREA to "
        "shrink, INTER_CUBIC to grow; every face of every frame is a sample; in the confident strategy, "
        "sz // 2.5 is floor division",
        face_rule="each", video_rule="confident",
        video_params=(("fake_above", 0.8), ("min_fakes", 11), ("fake_share_divisor", 2.5), ("real_below", 0.2),
                      ("real_share", 0.9))),
    input=ModelInput(size=(380, 380), interpolation="area", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    layout=Layout("the winner's DeepFakeClassifier checkpoint (dict 'state_dict', DataParallel 'module.' keys)",
                  wrappers=("state_dict",), strip=("module.",), drop=(r"^encoder\.classifier\.",),
                  head=("fc.",), body="encoder."),
    architecture=Architecture("tf_efficientnet_b7", 2560, 1, reference="timm tf_efficientnet_b7_ns (TF 'same' "
                              "padding) + average pool + Linear(2560, 1)"),
    max_files=7,
    notes=("One package holds up to seven members; its output is the mean of their P(fake); the confident "
           "strategy applies per member.",),
)


def _sbi(variant: str, file_id: str, figures: tuple[float, ...]) -> Entry:
    sets = ("Celeb-DF-v2", "DFD", "DFDC", "DFDC-preview", "FFIW")
    return Entry(
        name=f"sbi-{variant}",
        title=f"Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): EfficientNet-B4 trained on FF++ {variant}",
        paper="https://arxiv.org/abs/2204.08376",
        code="https://github.com/mapooon/SelfBlendedImages",
        files=(WeightFile(f"FF{variant}.tar", f"https://drive.google.com/file/d/{file_id}/view", "gdrive"),),
        licence=Licence("research use only (commercial use needs a licence agreement with the authors)",
                        "research use only (same licence)", True),
        figures=tuple(Figure(name, "video AUC", value / 100, "trained on FF++ only (cross-dataset)",
                             "SelfBlendedImages README, 'Test'", True) for name, value in zip(sets, figures)),
        preprocessing=Preprocessing(
            32, "retinaface", "RetinaFace (ResNet-50), every face of the frame", "per_side", 1 / 8, "stretch", 380,
            "softmax P(fake), max over the frame's faces", "mean over frames", None,
            "score of a video without faces not recorded", face_rule="max"),
        input=ModelInput(size=(380, 380), interpolation="linear", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        layout=Layout("SBI's checkpoint (dict 'model', Detector's 'net.' keys: efficientnet_pytorch names)",
                      wrappers=("model",), require="net.", head=("_fc.",), convert=("efficientnet_pytorch",)),
        architecture=Architecture("tf_efficientnet_b4", 1792, 2, static_pads_at=380,
                                  reference="efficientnet_pytorch 0.7.1 EfficientNet-B4 (static 'same' padding "
                                            "for 380 px), _fc Linear(1792, 2)"),
    )


SBI_RAW = _sbi("raw", "12sLyqBp0VFwdpA-oZLdIOkOTkz_ZnIhV", (93.82, 97.87, 73.01, 85.70, 84.52))
SBI_C23 = _sbi("c23", "1X0-NYT8KPursLZZdxduRQju6E52hauV0", (92.87, 98.16, 71.96, 85.51, 83.22))

_CLIP_INPUT = ModelInput(size=(224, 224), interpolation="cubic", mean=CLIP_MEAN, std=CLIP_STD)
_CLIP_ARCH = dict(timm_name="vit_large_patch14_clip_quickgelu_224", features=1024, outputs=2)

GEND = Entry(
    name="gend-clip-l14",
    title="GenD (Yermakov et al., WACV 2026): CLIP ViT-L/14 with tuned LayerNorms, L2-normalised features",
    paper="https://arxiv.org/abs/2508.06248",
    code="https://github.com/yermandy/GenD",
    files=(WeightFile("model.safetensors", "https://huggingface.co/yermandy/GenD_CLIP_L_14", "huggingface",
                      repo="yermandy/GenD_CLIP_L_14"),),
    licence=Licence("MIT", "MIT (Hugging Face model card)", False),
    figures=(),
    figures_note="not recorded yet: take them from the paper's tables before benchmarking",
    preprocessing=Preprocessing(
        32, "scrfd", "SCRFD (insightface), detection threshold 0.1", "aligned", 1.3, "aligned", 224,
        "softmax P(fake)", "mean over frames", None, "CLIP processor resize (bicubic) to 224"),
    input=_CLIP_INPUT,
    layout=Layout("GenD's Hugging Face model (feature_extractor.vision_model: transformers CLIP names; "
                  "model.linear: the head)", drop=(r"^feature_extractor\.visual_projection\.", r"position_ids$"),
                  head=("model.linear.",), body="feature_extractor.vision_model.", convert=("hf_clip",)),
    architecture=Architecture(**_CLIP_ARCH, normalise=True,
                              reference="transformers CLIPVisionModel (ViT-L/14) pooler output, L2-normalised, "
                                        "Linear(1024, 2)"),
)

EFFORT = Entry(
    name="effort-clip-l14",
    title="Effort (Yan et al., ICML 2025): CLIP ViT-L/14 with an SVD residual in self-attention, trained on FF++",
    paper="https://arxiv.org/abs/2411.15633",
    code="https://github.com/YZY-stack/Effort-AIGI-Detection",
    files=(WeightFile("effort_clip_L14_trainOn_FaceForensic.pth",
                      "https://github.com/YZY-stack/Effort-AIGI-Detection (README: checkpoint links)", "gdrive"),),
    licence=Licence("not verified here (built on DeepfakeBench, CC BY-NC 4.0)",
                    "not verified here; trained on FaceForensics++ (research-only terms)", True),
    figures=(Figure("Celeb-DF-v2", "frame AUC", 0.956, "trained on FF++ c23", "Effort paper, Table 1"),
             Figure("DFDC", "frame AUC", 0.843, "trained on FF++ c23", "Effort paper, Table 1")),
    preprocessing=Preprocessing(
        32, "dlib", "dlib frontal face detector + 81 landmarks (DeepfakeBench preprocessing)", "aligned", 1.3,
        "aligned", 256, "softmax P(fake)", "mean over frames (DeepfakeBench video AUC)", None,
        "aligned at 256, resized to 224 (cv2 INTER_LINEAR)"),
    input=ModelInput(size=(224, 224), interpolation="linear", mean=CLIP_MEAN, std=CLIP_STD),
    layout=Layout("Effort's checkpoint (backbone: transformers CLIP names with SVDResidualLinear in self_attn; "
                  "head)", wrappers=("state_dict", "model"), strip=("module.",),
                  drop=(r"\.(U_r|S_r|V_r)$", r"position_ids$"), head=("head.",), body="backbone.",
                  convert=("svd_merge", "hf_clip")),
    architecture=Architecture(**_CLIP_ARCH, reference="transformers CLIPVisionModel (ViT-L/14) whose self-attention "
                                                      "linears are weight_main + U diag(S) V; Linear(1024, 2)"),
)


def _deepfakebench(name: str, title: str, file: str, arch: Architecture, layout: Layout,
                   figures: tuple[tuple[str, float], ...]) -> Entry:
    return Entry(
        name=name, title=title, paper="https://arxiv.org/abs/2307.01426", code="https://github.com/SCLBD/DeepfakeBench",
        files=(_github("SCLBD/DeepfakeBench", "v1.0.1", file),),
        licence=Licence("CC BY-NC 4.0", "CC BY-NC 4.0", True),
        figures=tuple(Figure(test, "frame AUC", value, "trained on FF++ c23 (DeepfakeBench protocol)",
                             "DeepfakeBench paper, Table 2") for test, value in figures),
        preprocessing=Preprocessing(
            32, "dlib", "dlib frontal face detector + 81 landmarks", "aligned", 1.3, "aligned", 256,
            "softmax P(fake)", "mean over frames (video AUC)", None),
        input=ModelInput(size=(256, 256), interpolation="linear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        layout=layout, architecture=arch)


DFB_XCEPTION = _deepfakebench(
    "deepfakebench-xception", "DeepfakeBench Xception (Yan et al., NeurIPS 2023 D&B)", "xception_best.pth",
    Architecture("legacy_xception", 2048, 2, reference="DeepfakeBench's Xception (FaceForensics++ port, timm "
                                                       "legacy_xception's layers), last_linear Linear(2048, 2)"),
    Layout("DeepfakeBench's detector checkpoint ('backbone.' keys, Xception names, last_linear head)",
           wrappers=("state_dict",), strip=("module.",), require="backbone.", drop=(r"^adjust_channel\.",),
           head=("last_linear.1.", "last_linear.")),
    (("FF++ c23", 0.9637), ("Celeb-DF-v2", 0.7365), ("DFDC", 0.7077)))

DFB_EFFICIENTNET_B4 = _deepfakebench(
    "deepfakebench-efficientnet-b4", "DeepfakeBench EfficientNet-B4 (Yan et al., NeurIPS 2023 D&B)",
    "effnb4_best.pth",
    Architecture("tf_efficientnet_b4", 1792, 2, static_pads_at=380, stem_padding=False,
                 reference="efficientnet_pytorch 0.7.1 EfficientNet-B4 (static 'same' padding for 380 px) with an "
                           "unpadded stem Conv2d(3, 48, 3, stride 2), last_layer Linear(1792, 2)"),
    Layout("DeepfakeBench's detector checkpoint ('backbone.' keys, efficientnet_pytorch names, last_layer head)",
           wrappers=("state_dict",), strip=("module.",), require="backbone.", drop=(r"^adjust_channel\.",),
           head=("last_layer.",), body="efficientnet.", convert=("efficientnet_pytorch",)),
    (("FF++ c23", 0.9567), ("Celeb-DF-v2", 0.7487), ("DFDC", 0.6955)))

ENTRIES: dict[str, Entry] = {e.name: e for e in (DFDC_WINNER, SBI_C23, SBI_RAW, GEND, EFFORT, DFB_XCEPTION,
                                                  DFB_EFFICIENTNET_B4)}


def entry(name: str) -> Entry:
    """The entry called `name`; ZooError (exit 2) listing the names otherwise."""
    if name not in ENTRIES:
        raise ZooError(f"no zoo entry {name!r}; the entries are: {', '.join(ENTRIES)}")
    return ENTRIES[name]


def entry_dict(e: Entry) -> dict:
    """An entry's facts as JSON-ready data (written into config.json by import)."""
    p = e.preprocessing
    return {
        "name": e.name, "title": e.title, "paper": e.paper, "code": e.code,
        "files": [{"name": f.name, "url": f.url, "host": f.host, **({"repo": f.repo} if f.repo else {})}
                  for f in e.files],
        "licence": {"code": e.licence.code, "weights": e.licence.weights,
                    "non_commercial": e.licence.non_commercial},
        "reported": [{"test_set": f.test_set, "dataset": DATASETS[f.test_set], "metric": f.metric,
                      "level": METRICS[f.metric][0], "measure": METRICS[f.metric][1], "value": f.value,
                      "protocol": f.protocol, "source": f.source, "verified": f.verified} for f in e.figures],
        "reported_note": e.figures_note,
        "preprocessing": {"frames_per_video": p.frames_per_video, "detector": p.detector,
                          "detector_settings": p.detector_settings, "box": p.box, "margin": p.margin,
                          "resize": p.resize, "face_size": p.face_size, "frame_score": p.frame_score,
                          "video_score": p.video_score, "no_face_score": p.no_face_score, "note": p.note,
                          "alignment": p.alignment, "face_rule": p.face_rule, "video_rule": p.video_rule,
                          "video_params": dict(p.video_params), "summary": p.summary()},
        "layout": e.layout.description, "notes": list(e.notes),
    }
