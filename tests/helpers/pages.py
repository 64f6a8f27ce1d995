"""HTML pages as a person sees them: a screenshot in headless Chromium with no network, and the check that a page
needs nothing outside itself (tests/train/test_check.py, test_train_audio.py)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np


def shoot(page: Path, tmp_path: Path, height: int = 2400) -> np.ndarray:
    """A screenshot of the page in headless Chromium, with no network (the page needs none)."""
    import matplotlib.image as mpimg

    shot = tmp_path / f"{page.stem}.png"
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", f"--window-size=1280,{height}",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    return mpimg.imread(shot)


def assert_self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    sources = re.findall(r'(?:src|href)="([^"#]+)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources), [s[:40] for s in sources]
    assert "http://" not in text and "https://" not in text and "url(" not in text
