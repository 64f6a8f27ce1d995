"""The zoo's entries (data), `dfd zoo list`, `dfd zoo fetch` (no internet here: downloads are faked or refused),
the fixed TF pads against efficientnet_pytorch's own, and the package format shared with train.score.package."""
from __future__ import annotations

import io
import urllib.error

import pytest
from click.testing import CliRunner

import train.score.package as house
from pipeline.spec import ModelInput
from train.zoo import arch as zoo_arch
from train.zoo import fetch as zoo_fetch
from train.zoo import importer as zoo_package
from train.zoo.entries import ENTRIES, entry
from train.zoo_command import main

REQUIRED = {"dfdc-winner", "sbi-c23", "sbi-raw", "gend-clip-l14", "effort-clip-l14", "deepfakebench-xception",
            "deepfakebench-efficientnet-b4"}


def test_every_entry_is_complete_data():
    assert REQUIRED <= set(ENTRIES)
    for e in ENTRIES.values():
        assert e.files and all(f.url.startswith("https://") for f in e.files), e.name
        assert e.licence.code and e.licence.weights, e.name
        assert isinstance(e.input, ModelInput) and ModelInput.from_dict(e.input.to_dict()) == e.input
        assert e.figures or e.figures_note, e.name
        assert e.preprocessing.summary() and e.preprocessing.frames_per_video > 0
        assert e.layout.head and e.architecture.timm_name
    assert entry("dfdc-winner").max_files == 7 and len(entry("dfdc-winner").files) == 7
    assert all(entry(n).licence.non_commercial for n in ("sbi-c23", "sbi-raw", "deepfakebench-xception",
                                                         "deepfakebench-efficientnet-b4", "effort-clip-l14"))
    assert not entry("dfdc-winner").licence.non_commercial and not entry("gend-clip-l14").licence.non_commercial
    assert entry("sbi-c23").input.mean == (0.0, 0.0, 0.0) and entry("sbi-c23").input.std == (1.0, 1.0, 1.0)
    assert entry("gend-clip-l14").input.mean == (0.48145466, 0.4578275, 0.40821073)
    assert entry("gend-clip-l14").architecture.normalise and not entry("effort-clip-l14").architecture.normalise


def test_list_shows_sources_licences_figures_and_preprocessing():
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    blocks = result.output.strip().split("\n\n")
    assert len(blocks) == len(ENTRIES)
    for block, e in zip(blocks, ENTRIES.values()):
        assert block.startswith(f"{e.name}: ") and "licence: " in block and "preprocessing: " in block
        assert "reported: " in block and e.code in block
        assert ("NON-COMMERCIAL" in block) == e.licence.non_commercial
    assert "Celeb-DF-v2 video AUC 0.9287" in result.output  # SBI c23, from its README
    one = CliRunner().invoke(main, ["list", "sbi-raw"])
    assert one.exit_code == 0 and one.output.startswith("sbi-raw: ") and "\n\n" not in one.output.strip()
    assert CliRunner().invoke(main, ["list", "nope"]).exit_code == 2
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0


def test_fetch_google_drive_says_where_to_get_the_file(tmp_path):
    result = CliRunner().invoke(main, ["fetch", "sbi-c23", "--cache", str(tmp_path)])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    line = result.output.strip()
    assert "\n" not in line and "drive.google.com" in line and str(tmp_path / "sbi-c23") in line
    assert "dfd zoo import sbi-c23" in line


def test_fetch_github_downloads_into_the_cache(tmp_path, monkeypatch):
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(b"weights of " + url.encode())

    monkeypatch.setattr(zoo_fetch.urllib.request, "urlopen", fake_urlopen)
    result = CliRunner().invoke(main, ["fetch", "deepfakebench-xception", "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    target = tmp_path / "deepfakebench-xception" / "xception_best.pth"
    assert target.read_bytes().startswith(b"weights of https://github.com/SCLBD/DeepfakeBench/releases/download/")
    assert "NON-COMMERCIAL" in result.output and str(target) in result.output
    CliRunner().invoke(main, ["fetch", "deepfakebench-xception", "--cache", str(tmp_path)])
    assert len(calls) == 1  # already there: kept


def test_fetch_offline_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(zoo_fetch.urllib.request, "urlopen", offline)
    result = CliRunner().invoke(main, ["fetch", "dfdc-winner", "--cache", str(tmp_path)])
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "could not be downloaded" in line and "releases/download/0.0.1" in line
    assert not list((tmp_path / "dfdc-winner").iterdir())


def test_fetch_hugging_face_offline_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kwargs):
        assert kwargs["repo_id"] == "yermandy/GenD_CLIP_L_14" and kwargs["filename"] == "model.safetensors"
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    result = CliRunner().invoke(main, ["fetch", "gend-clip-l14", "--cache", str(tmp_path)])
    assert result.exit_code == 1 and "\n" not in result.output.strip()
    assert "Hugging Face Hub" in result.output and "huggingface.co/yermandy/GenD_CLIP_L_14" in result.output


def test_fixed_pads_are_efficientnet_pytorchs():
    """Our static pads for 380 px equal efficientnet_pytorch's own (Conv2dStaticSamePadding) for B4, stem included."""
    import timm
    import torch
    from efficientnet_pytorch import EfficientNet
    from efficientnet_pytorch.utils import Conv2dStaticSamePadding

    theirs = [list(m.static_padding.padding) for m in EfficientNet.from_name("efficientnet-b4").modules()
              if isinstance(m, Conv2dStaticSamePadding) and m.stride[0] > 1]
    with torch.device("meta"):
        net = timm.create_model("tf_efficientnet_b4", pretrained=False, num_classes=0)
    ours = zoo_arch.static_pads(net, 380)
    assert list(ours.values()) == theirs and len(theirs) == 5
    assert zoo_arch.static_pads(net, 380, stem_padding=False)["conv_stem"] == [0, 0, 0, 0]


def test_the_package_format_is_the_houses(tmp_path):
    assert (zoo_package.FORMAT, zoo_package.FORMAT_VERSION) == (house.FORMAT, house.FORMAT_VERSION)
    assert (zoo_package.WEIGHTS, zoo_package.CONFIG, zoo_package.CARD) == (house.WEIGHTS, house.CONFIG, house.CARD)
    assert zoo_package.CLASSES == house.CLASSES
    (tmp_path / "config.json").write_text('{"format": "dfd-model-package", "training": {}}')
    with pytest.raises(zoo_package.ZooPackageError, match="not a zoo package"):
        zoo_package.load_zoo_package(tmp_path)
