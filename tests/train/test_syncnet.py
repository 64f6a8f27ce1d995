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
            nn.Conv2d(1, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
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
