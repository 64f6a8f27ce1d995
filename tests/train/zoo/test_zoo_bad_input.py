"""Bad input to `dfd zoo import`: a file that is not the named entry's (wrong keys, wrong shapes, a truncated
download, a pickle holding code) is refused in one line naming the file and what does not match, exit 1, nothing
written and nothing run; usage mistakes exit 2. All through the real command line."""
from __future__ import annotations

import pickle

import pytest
import torch

from helpers.zoo_reference import SBIReference, run_zoo


class Payload:
    """Unpickling this runs Path.touch(marker): what a malicious checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _refused(proc, *words, code: int = 1) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    last = err.splitlines()[-1]
    assert last.startswith("Error: "), err
    for word in words:
        assert word in last, (word, last)
    return last


@pytest.fixture(scope="module")
def sbi_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sbi") / "FFc23.tar"
    torch.manual_seed(0)
    SBIReference().save(path)
    return path


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker, out = tmp_path / "ran", tmp_path / "pkg"
    for i, save in enumerate((torch.save, lambda obj, p: pickle.dump(obj, open(p, "wb")))):
        path = tmp_path / f"evil{i}.pth"
        save({"model": {"net._fc.weight": torch.zeros(2, 1792), "x": Payload(marker)}}, path)
        last = _refused(run_zoo("import", "sbi-c23", path, "--out", out), str(path), "refused")
        assert "not plain weights" in last
        assert not marker.exists(), "the pickle's code ran"
        assert not out.exists()


def test_keys_of_another_model_are_refused(tmp_path, sbi_file):
    out = tmp_path / "pkg"
    last = _refused(run_zoo("import", "deepfakebench-xception", sbi_file, "--out", out), str(sbi_file),
                    "no weights found", "'backbone.'")
    assert "top-level keys epoch, model, optimizer" in last
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(sbi_file, weights_only=True)["model"], bare)
    last = _refused(run_zoo("import", "deepfakebench-xception", bare, "--out", out), str(bare),
                    "keys not under 'backbone.'", "(net._conv_stem.weight, net._bn0.weight")
    assert not out.exists()


def test_wrong_shapes_are_refused(tmp_path):
    torch.manual_seed(0)
    ref = SBIReference()
    ref.net._fc = torch.nn.Linear(1792, 3)  # a 3-class head: not SBI's
    path = tmp_path / "three.tar"
    ref.save(path)
    out = tmp_path / "pkg"
    last = _refused(run_zoo("import", "sbi-c23", path, "--out", out), str(path), "wrong shapes", "head.weight")
    assert "(3, 1792) instead of (2, 1792)" in last
    assert not out.exists()


def test_missing_and_unexpected_keys_are_refused(tmp_path):
    path = tmp_path / "partial.tar"
    torch.save({"model": {"net._fc.weight": torch.zeros(2, 1792), "net._fc.bias": torch.zeros(2),
                          "net._conv_stem.weight": torch.zeros(48, 3, 3, 3), "net.extra.weight": torch.zeros(1)}},
               path)
    last = _refused(run_zoo("import", "sbi-c23", path, "--out", tmp_path / "pkg"), str(path), "keys do not match",
                    "missing", "unexpected net.extra.weight")
    assert not (tmp_path / "pkg").exists()


def test_a_truncated_download_is_refused(tmp_path, sbi_file):
    path = tmp_path / "FFc23.tar"
    path.write_bytes(sbi_file.read_bytes()[: sbi_file.stat().st_size // 2])
    _refused(run_zoo("import", "sbi-c23", path, "--out", tmp_path / "pkg"), str(path), "truncated")
    assert not (tmp_path / "pkg").exists()


def test_a_file_without_weights_is_refused(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, path)
    _refused(run_zoo("import", "sbi-c23", path, "--out", tmp_path / "pkg"), str(path), "no weights")
    path.write_text("not a checkpoint at all\n")
    _refused(run_zoo("import", "sbi-c23", path, "--out", tmp_path / "pkg"), str(path))
    assert not (tmp_path / "pkg").exists()


def test_usage_mistakes_exit_2(tmp_path, sbi_file):
    _refused(run_zoo("import", "no-such-model", sbi_file, "--out", tmp_path / "pkg"), "no-such-model", code=2)
    _refused(run_zoo("import", "sbi-c23", tmp_path / "absent.tar", "--out", tmp_path / "pkg"), "absent.tar", code=2)
    _refused(run_zoo("import", "sbi-c23", sbi_file, sbi_file, "--out", tmp_path / "pkg"), "at most 1", code=2)
    (tmp_path / "file").write_text("x")
    proc = run_zoo("import", "sbi-c23", sbi_file, "--out", tmp_path / "file")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "pkg").exists()


def test_tensors_that_cannot_be_joined_are_refused(tmp_path):
    """q, k and v of different widths (not a CLIP layer): a one-line refusal, not a traceback."""
    path = tmp_path / "effort.pth"
    torch.save({"backbone.encoder.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4),
                "backbone.encoder.layers.0.self_attn.k_proj.weight": torch.zeros(4, 3),
                "backbone.encoder.layers.0.self_attn.v_proj.weight": torch.zeros(4, 4),
                "head.weight": torch.zeros(2, 1024), "head.bias": torch.zeros(2)}, path)
    _refused(run_zoo("import", "effort-clip-l14", path, "--out", tmp_path / "pkg"), str(path), "cannot convert")
    assert not (tmp_path / "pkg").exists()
