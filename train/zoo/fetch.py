"""Download an entry's published files into a cache folder: GitHub releases by HTTPS, the Hugging Face Hub with
huggingface_hub. Files on Google Drive (or any download that fails, e.g. offline) end in one line saying where to
get each file and where to put it."""
from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from dfd.errors import ToolkitError
from train.zoo.entries import Entry, WeightFile

log = logging.getLogger(__name__)

CACHE_ENV = "DFD_ZOO_CACHE"
TIMEOUT = 60  # seconds without data before a download gives up


class FetchError(ToolkitError, RuntimeError):
    """A file that could not be downloaded (exit 1); the message says where to get it by hand."""


def cache_root() -> Path:
    """$DFD_ZOO_CACHE, else ~/.cache/dfd/zoo."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dfd" / "zoo")


def _by_hand(e: Entry, f: WeightFile, folder: Path, why: str) -> FetchError:
    return FetchError(f"{e.name}: {f.name} {why}; download it from {f.url} and put it in {folder}/ "
                      f"(then: dfd zoo import {e.name} {folder / f.name} --out PACKAGE)")


def _github(e: Entry, f: WeightFile, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(f.url, timeout=TIMEOUT) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise _by_hand(e, f, target.parent, f"could not be downloaded ({str(reason).splitlines()[0][:120]})") \
            from None
    os.replace(partial, target)


def _huggingface(e: Entry, f: WeightFile, folder: Path) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=f.repo, filename=f.name, local_dir=folder))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else err.__class__.__name__
        raise _by_hand(e, f, folder, f"could not be downloaded from the Hugging Face Hub ({first})") from None


def fetch(e: Entry, cache: Path | None = None) -> list[Path]:
    """Every file of the entry in CACHE/NAME/ (files already there are kept); their paths."""
    folder = (cache or cache_root()) / e.name
    paths = []
    for f in e.files:
        target = folder / f.name
        if f.host == "gdrive":
            raise _by_hand(e, f, folder, "is on Google Drive, which this toolkit does not download from")
        if target.is_file() and target.stat().st_size > 0:
            log.info("%s: already there", target)
            paths.append(target)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        log.info("%s: downloading %s", e.name, f.url)
        if f.host == "github":
            _github(e, f, target)
        else:
            target = _huggingface(e, f, folder)
        paths.append(target)
    return paths
