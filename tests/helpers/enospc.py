"""Fault injection for the full-disk tests: file writes whose path contains TARGET raise ENOSPC from the N-th
write on (counted per process). Used as `python tests/helpers/enospc.py N TARGET MODULE [args...]`; TARGET "parquet"
makes the N-th pyarrow Parquet write fail instead."""
from __future__ import annotations

import builtins
import errno
import runpy
import sys


class FullFile:
    """A binary file whose N-th write (counted over all FullFiles of the process) raises ENOSPC."""

    count = 0

    def __init__(self, fh, n: int):
        self.fh, self.n = fh, n

    def write(self, data):
        FullFile.count += 1
        if FullFile.count >= self.n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def install(n: int, target: str) -> None:
    if target == "parquet":
        import pyarrow.parquet as pq
        real = pq.write_table
        calls = [0]

        def write_table(*args, **kwargs):
            calls[0] += 1
            if calls[0] >= n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)
        pq.write_table = write_table
        return
    real_open = builtins.open

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FullFile(fh, n) if ("w" in mode or "a" in mode) and target in str(path) else fh
    import pipeline.core.shards
    pipeline.core.shards.open = fake_open  # the module's own writes (shards and staging files)
    import dfd.files
    dfd.files.open = fake_open  # staging files are written through dfd.files


if __name__ == "__main__":
    n, target, module, *rest = sys.argv[1:]
    install(int(n), target)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
