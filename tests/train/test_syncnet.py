"""Issue 27 item 1: SyncNet's published weights load into our network (train.audio.syncnet). The authors'
architecture is written here from their published definition (joonson/syncnet_python, SyncNetModel.S) as plain
torch with random weights, saved in their layout (a torch-saved state dict), loaded by our loader and compared
output for output; their MFCC, offset search and confidence on inputs whose answer is known; a bad file named."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from train.audio.syncnet import (FPS, RATE, SyncNetError, distances, embeddings, load_syncnet, mfcc, p_fake_of,
                                 search)


class AuthorsS(nn.Module):
    """SyncNetModel.S as published: the towers' layers in the authors' order."""

    def __init__(self, num_layers_in_fc_layers=1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), nn.BatchNorm2d(64),
            nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            nn.Conv2d(64, 192, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), nn.BatchNorm2d(192),
            nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            nn.Conv2d(192, 384, kernel_size=(3, 3), padding=(1, 1)), nn.BatchNorm2d(384), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=(3, 3), padding=(1, 1)), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=(3, 3), padding=(1, 1)), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=(0, 0)), nn.BatchNorm2d(512), nn.ReLU())
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, num_layers_in_fc_layers))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                      nn.Linear(512, num_layers_in_fc_layers))
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0), nn.BatchNorm3d(96),
            nn.ReLU(inplace=True), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256),
            nn.ReLU(inplace=True), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0), nn.BatchNorm3d(512), nn.ReLU(inplace=True))

    def forward_aud(self, x):
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.view((mid.size()[0], -1)))

    def forward_lip(self, x):
        mid = self.netcnnlip(x)
        return self.netfclip(mid.view((mid.size()[0], -1)))


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    """Their network with random weights and random batch-norm statistics, saved as syncnet_v2.model is."""
    torch.manual_seed(0)
    net = AuthorsS()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(net.state_dict(), path)
    return net.eval(), path


def test_their_state_dict_loads_by_name_and_gives_their_outputs(authors):
    theirs, path = authors
    ours = load_syncnet(path)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    torch.manual_seed(1)
    lips, sound = 255 * torch.rand(2, 3, 5, 224, 224), torch.randn(3, 1, 13, 20)
    with torch.no_grad():
        assert torch.equal(ours.forward_lip(lips), theirs.forward_lip(lips))
        assert torch.equal(ours.forward_aud(sound), theirs.forward_aud(sound))
        assert ours.forward_lip(lips).shape == (2, 1024)


def test_a_bad_weights_file_is_named(tmp_path, authors):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not torch")
    with pytest.raises(SyncNetError, match="bad.model: not SyncNet's weights"):
        load_syncnet(bad)
    other = tmp_path / "other.model"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(SyncNetError, match="other.model: not SyncNet's weights"):
        load_syncnet(other)
    from click.testing import CliRunner

    import train.check
    import train.evaluate

    for command in (train.check.main, train.evaluate.main):  # the licence shown where the weights are taken
        shown = " ".join(CliRunner().invoke(command, ["--help"], terminal_width=200).output.split())
        assert "joonson/syncnet_python, MIT licence" in shown and "DFD_SYNCNET" in shown


def test_mfcc_is_their_100_hz_13_coefficients():
    t = np.arange(RATE) / RATE
    tone = 3000 * np.sin(2 * np.pi * 440 * t)
    got = mfcc(tone)
    assert got.shape == (13, 99)  # 1 s: 1 + ceil((16000 - 400) / 160) frames of 25 ms every 10 ms, as framesig
    assert np.allclose(got[0, 5:-5], got[0, 50], atol=1e-6)  # a steady tone: a steady log energy
    loud = mfcc(10 * tone)
    assert np.allclose(loud[0] - got[0], 2 * np.log(10), atol=1e-6)  # c0 is the frame's log energy (power)


def test_offset_search_finds_the_shift_put_in():
    """Embeddings of the sound that are the lips' shifted by 3 frames (the sound 3 frames late): the least mean
    distance lies at that shift, their offset is -3 (their sign), and p_fake calls a 3-frame lag in sync."""
    torch.manual_seed(2)
    base = torch.randn(60, 16)
    lips, sound = base[:40], torch.cat([torch.randn(3, 16), base[:37]])  # sound[i + 3] = lips[i]
    found = search(distances(lips, sound))
    assert found.offset == -3 and found.confidence > 1
    s, p = p_fake_of(found)
    assert p < 0.5 and s == pytest.approx(found.confidence, abs=1e-5)
    far = torch.cat([torch.randn(12, 16), base[:28]])  # 12 frames late: outside the in-sync shifts
    s_far, p_far = p_fake_of(search(distances(lips, far)))
    assert p_far > 0.5 > p


def test_embeddings_stack_five_frames_and_twenty_mfcc(authors):
    _, path = authors
    net = load_syncnet(path)
    faces = np.random.default_rng(0).integers(0, 255, (8, 224, 224, 3), dtype=np.uint8)
    sound = np.random.default_rng(1).standard_normal(int(8 / FPS * RATE)) * 1000
    lips, sounds = embeddings(net, faces, mfcc(sound), len(sound), batch=2)
    assert lips.shape == sounds.shape == (3, 1024)  # 8 frames: stacks starting at 0, 1, 2 (the authors' count)
    with torch.no_grad():
        one = net.forward_lip(torch.from_numpy(faces[1:6].transpose(3, 0, 1, 2)).float()[None])
    assert torch.allclose(lips[1], one[0], atol=1e-5)


def test_face_crop_is_the_authors_box_around_the_landmarks():
    """A frame whose face box (as the landmarks place it) is white on black: the 224x224 crop is the authors' window,
    bs above the face's centre to 1.8 bs below, 1.4 bs either side, so the white fills its middle columns."""
    from train.audio.syncnet_of_files import face_crop

    frame = np.zeros((360, 640, 3), np.uint8)
    points = np.array([[300, 150], [340, 150], [320, 170], [305, 190], [335, 190]], np.float64)  # eyes, nose, mouth
    bs = np.linalg.norm(points[3:].mean(0) - points[:2].mean(0)) + 1  # 41
    frame[130:211, 279:361] = 255  # a box of side 2 bs around the centre (320, 170)
    crop = face_crop(frame, points)
    assert crop.shape == (224, 224, 3)
    rows = np.flatnonzero(crop[:, 112, 0] > 128)
    cols = np.flatnonzero(crop[int(224 / 2.8) + 5, :, 0] > 128)
    assert abs(rows[0] - 0) <= 3 and abs(rows[-1] - 224 * 2 / 2.8) <= 4  # white from the top to 2 bs of 2.8 bs
    assert abs(cols[0] - 224 * 0.4 / 2.8) <= 4 and abs(cols[-1] - 224 * 2.4 / 2.8) <= 4
    edge = face_crop(frame, points - [300, 140])  # a face at the frame's corner: padded with the authors' grey
    assert (edge[:20, :20] == 110).all()


def test_check_names_a_bad_weights_file_in_one_line(tmp_path):
    from click.testing import CliRunner

    import train.check
    from helpers.models import untrained_checkpoint
    from helpers.sound import av_clip

    bad = tmp_path / "syncnet_v2.model"
    bad.write_bytes(b"\x00" * 64)
    clip = av_clip(tmp_path / "mute.mp4", None, 1.0)
    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    result = CliRunner().invoke(train.check.main, [str(clip), "--model", str(model), "--sync", "--no-html",
                                                   "--device", "cpu"], env={"DFD_SYNCNET": str(bad)})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{bad}: not SyncNet's weights" in result.output


@pytest.mark.slow
def test_syncnet_measures_a_real_clip(authors, tmp_path):
    """The whole path on a real DFDC clip with their architecture's (random) weights: MTCNN, 25 fps face crops,
    MFCC, the offset search; a Sync with SyncNet's rule (and its licence) and the authors' ranges."""
    import subprocess

    from helpers.sound import dfdc_clips
    from pipeline.ffmpeg.locate import find_ffmpeg
    from train.audio.sync_of_files import SyncSpan, sync_detector, sync_verdict

    clip = tmp_path / "real.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-t", "3.4", "-i", str(dfdc_clips()[2]), "-vf",
                    "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip)], check=True)
    sync = sync_verdict(clip, sync_detector("cpu"), SyncSpan(seconds=3.4), weights=authors[1])
    assert sync.note is None and 0 <= sync.p_fake <= 1 and "MIT licence" in sync.rule and sync.fps == FPS
    assert len(sync.lags_s) == 31 and -0.6 <= sync.offset_s <= 0.6 and sync.confidence >= 0
    assert 75 <= len(sync.windows) <= 80  # 3.4 s at 25 fps, less the last stack's 5 frames
    # dfd check with DFD_SYNCNET: the same Sync in --json, and the page names SyncNet and its licence
    from helpers.commands import run_module
    from helpers.models import untrained_checkpoint

    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    proc = run_module("train.check", clip, "--model", model, "--sync", "--json", "--out", tmp_path / "pages",
                      "--device", "cpu", env={"DFD_SYNCNET": str(authors[1])})
    row = json.loads(proc.stdout)
    assert row["sync"]["p_fake"] == pytest.approx(sync.p_fake, abs=1e-5) and row["sync"]["rule"] == sync.rule
    page = " ".join(open(row["page"]).read().split())
    assert "SyncNet (joonson/syncnet_python's published weights, MIT licence" in page
