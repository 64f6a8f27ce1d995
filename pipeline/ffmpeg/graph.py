"""The ffmpeg command line for one video: the frame filter graph and the sound as a second output.

The ffmpeg command line for one video: the frame filter graph (select one frame per interval, fit the box, JPEGs to
stdout) and the sound as a second output of the same process.
"""
from __future__ import annotations

import ffmpeg

from pipeline.spec import DECODE_ALL
from pipeline.ffmpeg.locate import ffmpeg_version, find_ffmpeg, passthrough_args, version_tuple

# The sound is read from a second opening of the file with its video discarded (no second video decode), its
# timestamps moved this far back so that ffmpeg, which feeds the output that is furthest behind, finishes the whole
# audio before the picture gets going; the early stop after the last sampled frame then never cuts the sound.
AUDIO_INPUT_OFFSET = -1000
AUDIO_FD = 3  # ffmpeg writes the PCM to this pipe (pipe:3)


def frame_graph(path: str, fps: float, box: tuple[int, int], quality: int, binary: str,
                skip_frames: str = DECODE_ALL):
    """The ffmpeg-python graph: first frame of every 1/fps interval, then fit inside the box (turned for portrait),
    never upscaled, each kept frame's time logged by showinfo, JPEGs to stdout. skip_frames "noref": the video
    decoder skips the frames no other frame refers to (-skip_frame:v noref, an input option), so an interval's first
    decoded frame is kept; "none": every frame is decoded."""
    long_side, short_side = box
    skip = {"skip_frame:v": "noref"} if skip_frames == "noref" else {}
    stream = ffmpeg.input(path, threads=1, **skip)["V:0"]  # the first real video stream (no cover art)
    stream = stream.filter("setpts", "PTS-STARTPTS")
    stream = stream.filter("select", f"isnan(prev_selected_t)+gt(floor(t*{fps}),floor(prev_selected_t*{fps}))")
    # swscale's bilinear filter widens with the scale factor when shrinking (antialiased, like an area filter),
    # and costs ~3-5% less of the whole decode than the default bicubic on 1080p -> 720p.
    stream = stream.filter("scale", w=f"if(gte(iw,ih),min(iw,{long_side}),min(iw,{short_side}))",
                           h=f"if(gte(iw,ih),min(ih,{short_side}),min(ih,{long_side}))",
                           force_original_aspect_ratio="decrease", force_divisible_by=2, flags="bilinear")
    # showinfo gives each kept frame's time; checksum=0 skips its per-plane checksums and stats (~1% of the CPU).
    stream = stream.filter("showinfo", checksum=0) if _showinfo_checksum_option(binary) else stream.filter("showinfo")
    passthrough = passthrough_args(binary)  # ['-fps_mode' or '-vsync', 'passthrough']
    return stream.output("pipe:1", **{"c:v": "mjpeg", "q:v": quality, "threads": 1, "f": "image2pipe",
                                      passthrough[0].lstrip("-"): passthrough[1]})


def audio_output(path: str, rate: int):
    """The sound as a second output of the same ffmpeg process: a second opening of the file whose video is
    discarded (-vn: its packets are read, never decoded), its first audio stream to mono s16le at `rate` on
    pipe:3. Its timestamps are moved back by AUDIO_INPUT_OFFSET so that all of it is out before the picture's
    early stop (see pipeline.stages.sound.wav)."""
    stream = ffmpeg.input(path, threads=1, itsoffset=AUDIO_INPUT_OFFSET, vn=None)["a:0"]
    return stream.output(f"pipe:{AUDIO_FD}", **{"c:a": "pcm_s16le", "ac": 1, "ar": rate, "f": "s16le",
                                                "threads": 1})


def ffmpeg_command(path: str, fps: float, box: tuple[int, int], quality: int, binary: str | None = None,
                   skip_frames: str = DECODE_ALL, audio_rate: int | None = None) -> list[str]:
    """The frame command: frame_graph compiled with our binary (one decode and one filter thread per video); with
    `audio_rate`, the sound as a second output of the same process (audio_output)."""
    binary = binary or find_ffmpeg()
    graph = frame_graph(path, fps, box, quality, binary, skip_frames)
    if audio_rate:
        graph = ffmpeg.merge_outputs(graph, audio_output(path, audio_rate))
    return graph.compile(cmd=[
        binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-filter_complex_threads", "1"])


def _showinfo_checksum_option(binary: str) -> bool:
    """showinfo's `checksum` option exists from ffmpeg 5.0 on (git builds included)."""
    return version_tuple(ffmpeg_version(binary)) >= (5, 0)

