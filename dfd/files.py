"""Atomic writes of every kind of output (bytes and text, figures, CSV and Parquet tables), and the one file checksum.

Each writes a temporary file beside the target and renames it when complete, inside `writing()`, so a crash or a
full disk never leaves a half-written file in place of a good one (a full disk raises DiskFullError naming it)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from dfd.diskfull import writing
from dfd.errors import UsageProblem


class NotWritable(UsageProblem):
    """An output folder the command cannot write (read-only, no permission, a file in the way): said before any
    work starts, so nothing is computed for nothing."""


def writable_folder(folder: str | Path, option: str = "--out") -> Path:
    """Prove that files can be written in `folder` (the `option` that named it) before the work starts: a probe
    file is created and removed in the folder, or, where the folder is not made yet, in the nearest folder above
    it (nothing is left behind and no folder is made). NotWritable names the folder and the reason otherwise."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it is" if existing == folder else f"{existing} is"
        raise NotWritable(f"{option} {folder}: cannot write there: {where} a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dfd-probe-", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        where = "" if existing == folder else f" (in {existing}, where it would be made)"
        raise NotWritable(f"{option} {folder}: cannot write there{where}: {exc.strerror or exc}; choose a "
                          "writable folder") from None
    return folder


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read a chunk at a time (shards are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_bytes(path: str | Path, data: bytes, durable: bool = False) -> None:
    """`durable` also fsyncs: safe against power loss, not only against kill -9."""
    path = Path(path)
    tmp = _tmp(path)
    with writing(path, cleanup=tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def save_figure(fig, path: str | Path, dpi: int) -> None:
    """savefig to a temporary file, then rename; the figure is closed either way."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with writing(path, cleanup=tmp):
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
            os.replace(tmp, path)
    finally:
        plt.close(fig)


def write_csv(frame, path: str | Path, float_format: str = "%.6f") -> None:
    """A pandas DataFrame as CSV (parent folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with writing(path, cleanup=tmp):
        frame.to_csv(tmp, index=False, float_format=float_format)
        os.replace(tmp, path)


def write_parquet(frame, path: str | Path) -> None:
    """A pandas DataFrame as Parquet, without its index; or a pyarrow Table as it is (the pipeline's manifests)."""
    path = Path(path)
    tmp = _tmp(path)
    with writing(path, cleanup=tmp):
        if hasattr(frame, "to_parquet"):
            frame.to_parquet(tmp, index=False)
        else:
            import pyarrow.parquet as pq  # here: the trainer's commands that never write a table stay light
            pq.write_table(frame, tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def parquet_writer(path: str | Path, schema):
    """A pyarrow ParquetWriter for a table written in pieces (a manifest joined from its fragments); the file is
    renamed into place when the block ends without an error."""
    import pyarrow.parquet as pq
    path = Path(path)
    tmp = _tmp(path)
    with writing(path, cleanup=tmp):
        with pq.ParquetWriter(tmp, schema) as writer:
            yield writer
        os.replace(tmp, path)
