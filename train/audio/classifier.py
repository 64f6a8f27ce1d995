"""The audio classifier: standardised window features -> a small MLP (or, hidden=0, logistic regression) -> P(fake).

Trained full-batch with Adam on the class-balanced cross-entropy (each class weighs half, whatever the counts: the
same balance as the image trainer's class weights), for a fixed number of epochs keeping the weights of the epoch
with the lowest validation loss. Saved as tensors and plain values (torch.load weights_only)."""
from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dfd.errors import ToolkitError
from train.paths import CONFIG, WEIGHTS, RunLayout, is_package
from train.score.package import kind_of
from train.score.verdict import SOUND_THRESHOLD

from .features import AudioFeatures

KIND = "audio-bispectral-mel"


class AudioCheckpointError(ToolkitError, RuntimeError):
    """A file that is not an audio checkpoint."""


@dataclasses.dataclass
class AudioModel:
    net: nn.Module
    mean: np.ndarray
    std: np.ndarray
    spec: AudioFeatures
    hidden: int
    columns: list[int]  # which features (spec.names) the net reads
    fake_audio: str = "manipulated"  # which fakes' sound it was trained on (train.audio.data.sound_table)
    threshold: float = SOUND_THRESHOLD  # a video's sound is called fake at this P(fake): a package's own, else 0.5

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, self.columns] - self.mean) / self.std
        with torch.no_grad():
            return torch.sigmoid(self.net(torch.from_numpy(z.astype(np.float32)))).squeeze(1).numpy()


def make_net(n_in: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Sequential(nn.Linear(n_in, 1))
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1))


def _loss(net, z, y, w):
    return nn.functional.binary_cross_entropy_with_logits(net(z).squeeze(1), y, weight=w)


def _weights(y: torch.Tensor) -> torch.Tensor:
    pos = float(y.mean())
    return torch.where(y > 0.5, 0.5 / max(pos, 1e-6), 0.5 / max(1 - pos, 1e-6))


def fit_model(x_train, y_train, x_val, y_val, spec: AudioFeatures, hidden: int = 64, epochs: int = 300,
              lr: float = 3e-3, weight_decay: float = 1e-3, seed: int = 0,
              columns: list[int] | None = None) -> tuple[AudioModel, list[dict]]:
    """Fit on the training windows; (the model at its best validation loss, a row per epoch). One thread: on a
    net this small more threads only add synchronisation (22 s against 1.5 s on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(x_train, y_train, x_val, y_val, spec, hidden, epochs, lr, weight_decay, seed, columns)
    finally:
        torch.set_num_threads(threads)


def _fit(x_train, y_train, x_val, y_val, spec, hidden, epochs, lr, weight_decay, seed, columns):
    torch.manual_seed(seed)
    columns = list(range(x_train.shape[1])) if columns is None else columns
    mean, std = x_train[:, columns].mean(axis=0), x_train[:, columns].std(axis=0) + 1e-6
    zt = torch.from_numpy(((x_train[:, columns] - mean) / std).astype(np.float32))
    zv = torch.from_numpy(((x_val[:, columns] - mean) / std).astype(np.float32))
    yt, yv = torch.tensor(y_train, dtype=torch.float32), torch.tensor(y_val, dtype=torch.float32)
    wt, wv = _weights(yt), _weights(yv)
    net = make_net(len(columns), hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    history, best, best_state = [], float("inf"), None
    for epoch in range(epochs):
        net.train()
        opt.zero_grad()
        loss = _loss(net, zt, yt, wt)
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            val = float(_loss(net, zv, yv, wv))
        history.append({"epoch": epoch + 1, "train_loss": loss.item(), "val_loss": val})
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    return AudioModel(net, mean, std, spec, hidden, columns), history


def save(model: AudioModel, path: Path, extra: dict | None = None) -> None:
    from dfd.files import write_bytes
    import io

    buf = io.BytesIO()
    torch.save({"kind": KIND, "state": model.net.state_dict(), "mean": torch.from_numpy(model.mean),
                "std": torch.from_numpy(model.std), "hidden": model.hidden, "columns": model.columns,
                "spec": dataclasses.asdict(model.spec), **(extra or {})}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())


PACKAGE_KIND = "audio"  # config.json's "kind" of an audio model package (train.audio.audio_package)


def is_audio(reference: str | Path) -> bool:
    """Whether a --checkpoint names an audio model: a run folder with checkpoints/audio.pt (and no image best.pt),
    an audio.pt, or an audio package (config.json kind "audio")."""
    path = Path(reference)
    if path.is_dir():
        if is_package(path):
            return kind_of(path) == PACKAGE_KIND
        return RunLayout(path).checkpoint("audio").is_file() and not RunLayout(path).checkpoint("best").is_file()
    try:
        return path.is_file() and torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("kind") == KIND
    except Exception:  # noqa: BLE001 (anything unreadable is simply not an audio checkpoint; its own loader says why)
        return False


def _from_package(folder: Path) -> AudioModel:
    """An audio package: config.json's spec, hidden units and columns, model.safetensors' net, mean and std."""
    import safetensors.torch

    try:
        config = json.loads((folder / CONFIG).read_text())
        state = safetensors.torch.load_file(str(folder / WEIGHTS), device="cpu")
        spec = AudioFeatures(**config["spec"])
        mean, std = state.pop("features.mean").numpy(), state.pop("features.std").numpy()
        net = make_net(len(config["columns"]), int(config["hidden"]))
        net.load_state_dict(state)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise AudioCheckpointError(f"{folder}: not a readable audio package ({exc})") from None
    net.eval()
    return AudioModel(net, mean, std, spec, int(config["hidden"]), list(config["columns"]),
                      config.get("fake_audio", "manipulated"), float(config["threshold"]["value"]))


def load(path: str | Path) -> AudioModel:
    """An audio checkpoint (a file, a run folder: its checkpoints/audio.pt, or an audio package made by dfd export);
    AudioCheckpointError otherwise."""
    path = Path(path)
    if path.is_dir() and is_package(path) and kind_of(path) == PACKAGE_KIND:
        return _from_package(path)
    if path.is_dir():
        path = RunLayout(path).checkpoint("audio")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise AudioCheckpointError(f"{path}: not a readable audio checkpoint ({exc})") from None
    if not isinstance(ck, dict) or ck.get("kind") != KIND:
        raise AudioCheckpointError(f"{path}: not an audio checkpoint (train.run --input audio makes one)")
    spec = AudioFeatures(**ck["spec"])
    net = make_net(len(ck["columns"]), int(ck["hidden"]))
    net.load_state_dict(ck["state"])
    net.eval()
    return AudioModel(net, ck["mean"].numpy(), ck["std"].numpy(), spec, int(ck["hidden"]), list(ck["columns"]),
                      ck.get("fake_audio", "manipulated"))
