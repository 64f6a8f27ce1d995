"""Issue 11 item 5: the frame command is built with ffmpeg-python (argv pinned, bytes unchanged); dependencies as
declared (every third-party import of the shipped packages is declared, nothing declared goes unused)."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pipeline.ffmpeg.locate
import pipeline.ffmpeg.graph
import pipeline.ffmpeg.stderr
from helpers.clips import make_clip
from helpers.paths import SHARED_DATA
from pipeline.ffmpeg.locate import find_ffmpeg, passthrough_args
from pipeline.ffmpeg.graph import ffmpeg_command

ROOT = Path(__file__).resolve().parents[2]


def legacy_command(path, fps, box, quality, binary):
    """The hand-written command the pipeline used before ffmpeg-python built it (ffmpeg >= 5.0)."""
    long_side, short_side = box
    select = f"select='isnan(prev_selected_t)+gt(floor(t*{fps}),floor(prev_selected_t*{fps}))'"
    scale = (f"scale=w='if(gte(iw,ih),min(iw,{long_side}),min(iw,{short_side}))'"
             f":h='if(gte(iw,ih),min(ih,{short_side}),min(ih,{long_side}))'"
             f":force_original_aspect_ratio=decrease:force_divisible_by=2:flags=bilinear")
    return [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
            "-threads", "1", "-i", path, "-map", "0:V:0", "-an", "-sn", "-dn",
            "-filter_threads", "1", "-vf", f"setpts=PTS-STARTPTS,{select},{scale},showinfo=checksum=0",
            *passthrough_args(binary), "-c:v", "mjpeg", "-q:v", str(quality), "-threads", "1", "-f", "image2pipe",
            "pipe:1"]


@pytest.mark.parametrize("version, showinfo, fps_mode, vsync", [
    ("ffmpeg version 5.1.9-0+deb12u1", "showinfo=checksum=0", ["-fps_mode", "passthrough"], []),
    ("ffmpeg version 4.4.2", "showinfo", [], ["-vsync", "passthrough"]),
])
def test_argv_is_pinned(monkeypatch, version, showinfo, fps_mode, vsync):
    monkeypatch.setattr(pipeline.ffmpeg.graph, "ffmpeg_version", lambda binary=None: version)
    monkeypatch.setattr(pipeline.ffmpeg.locate, "ffmpeg_version", lambda binary=None: version)
    argv = ffmpeg_command("in put.mp4", 1.0, (1280, 720), 2, "/opt/ffmpeg")
    graph = ("[0:V:0]setpts=PTS-STARTPTS[s0];"
             r"[s0]select=isnan(prev_selected_t)+gt(floor(t*1.0)\,floor(prev_selected_t*1.0))[s1];"
             r"[s1]scale=flags=bilinear:force_divisible_by=2:force_original_aspect_ratio=decrease:"
             r"h=if(gte(iw\,ih)\,min(ih\,720)\,min(ih\,1280)):w=if(gte(iw\,ih)\,min(iw\,1280)\,min(iw\,720))[s2];"
             f"[s2]{showinfo}[s3]")
    assert argv == ["/opt/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
                    "-filter_complex_threads", "1", "-threads", "1", "-i", "in put.mp4", "-filter_complex", graph,
                    "-map", "[s3]", "-f", "image2pipe", "-c:v", "mjpeg", *fps_mode, "-q:v", "2", "-threads", "1",
                    *vsync, "pipe:1"]


def _clips(tmp_path):
    clips = [make_clip(tmp_path / "audio.mp4", (160, 90), 3.0, audio=True),
             make_clip(tmp_path / "portrait.mp4", (90, 160), 2.0, source="mandelbrot")]
    real = sorted((SHARED_DATA / "dfdc_sample").rglob("*.mp4"))
    return clips + real[:1]


def test_bytes_and_log_unchanged(tmp_path):
    binary = find_ffmpeg()
    if pipeline.ffmpeg.locate.version_tuple(pipeline.ffmpeg.locate.ffmpeg_version(binary)) < (5, 0):
        pytest.skip("the legacy reference command needs showinfo's checksum option (ffmpeg >= 5.0)")
    clips = _clips(tmp_path)
    for clip in clips:
        for box in ((128, 72), (1280, 720)) if clip.parent == tmp_path else ((1280, 720),):
            new = subprocess.run(ffmpeg_command(str(clip), 1.0, box, 2, binary), capture_output=True, check=True)
            old = subprocess.run(legacy_command(str(clip), 1.0, box, 2, binary), capture_output=True, check=True)
            assert new.stdout == old.stdout and len(new.stdout) > 1000, clip
            times = [pipeline.ffmpeg.stderr.parse_stderr(p.stderr.decode()) for p in (new, old)]
            assert times[0].pts_times == times[1].pts_times and times[0].duration == times[1].duration


# Dependencies as declared --------------------------------------------------------------------------------------

USED_WITHOUT_IMPORT = {  # declared runtime dependencies no shipped module imports by name, and why
    "facenet-pytorch": "the face stage's detector (pipeline.faces)",
    "timm": "train.model's backbones",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: _norm(re.split(r"[<>=!~\[; ]", req, 1)[0])  # noqa: E731
    extras = {k: {name(r) for r in v} for k, v in project.get("optional-dependencies", {}).items()}
    return {name(r) for r in project["dependencies"]}, extras


def _imports(folder: str) -> set[str]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"dfd", "pipeline", "train", "demodata", "__future__"}


def test_dependencies_as_declared():
    runtime, extras = _declared()
    dists = importlib.metadata.packages_distributions()
    imported = {_norm(d) for module in set().union(*map(_imports, ("dfd", "pipeline", "train", "demodata")))
                for d in dists.get(module, [module])}
    optional = set().union(*(v for k, v in extras.items() if k != "dev"))
    assert imported - runtime - optional == set(), "imported by the shipped packages but not declared"
    unused = runtime - imported - {_norm(k) for k in USED_WITHOUT_IMPORT}
    assert unused == set(), "declared but imported nowhere"
    assert "psutil" not in runtime and "fsspec" in runtime
    assert {"pytest", "pytest-timeout"} <= extras["dev"] and not {"pytest", "pytest-timeout"} & runtime
