"""A folder the next command cannot write: chmod 555 for a user, a read-only bind mount (`unshare -m`, a real
EROFS) for root, whom permissions do not stop; None where neither can be had (the test then skips)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BIND = 'mount --bind -o ro "$0" "$0" && exec "$@"'


def read_only_prefix(folder: Path) -> list[str] | None:
    """The argv prefix that runs a command with `folder` read-only ([] after chmod 555 when not root)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        return None
    prefix = ["unshare", "-m", "sh", "-c", BIND, str(folder)]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True, text=True)
    if probe.returncode == 0 or "Read-only" not in probe.stderr:
        (folder / "probe").unlink(missing_ok=True)
        return None  # no mount namespace here (a container without CAP_SYS_ADMIN)
    return prefix
