"""The ffmpeg command line for one video: the frame filter graph and the sound as a second output.

The ffmpeg command line for one video: the frame filter graph (select one frame per interval, fit the box, JPEGs to
stdout) and the sound as a second output of the same process.
"""
from __future__ import annotations

import ffmpeg

from pipeline.spec import DECODE_ALL, Clips
from pipeline.ffmpeg.locate import ffmpeg_version, find_ffmpeg, passthrough_args, version_tuple

# The sound is read from a second opening of the file with its video discarded (no second video decode), its
# timestamps moved this far back so that ffmpeg, which feeds the output that is furthest behind, finishes the whole
# audio before the picture gets going; the early stop after the last sampled frame then never cuts the sound.
AUDIO_INPUT_OFFSET = -1000
AUDIO_FD = 3  # ffmpeg writes the PCM to this pipe (pipe:3)
CLIP_FD = 4   # and the clips' JPEGs to this one (pipe:4)
NO_LIMIT = 10**9  # the clip count of a run without --clips-per-video


def frame_graph(path: str, fps: float, box: tuple[int, int], quality: int, binary: str,
                skip_frames: str = DECODE_ALL, clips: Clips | None = None, clip_stride: int = 1):
    """The ffmpeg-python graph: first frame of every 1/fps interval, then fit inside the box (turned for portrait),
    never upscaled, each kept frame's time logged by showinfo, JPEGs to stdout. skip_frames "noref": the video
    decoder skips the frames no other frame refers to (-skip_frame:v noref, an input option), so an interval's first
    decoded frame is kept; "none": every frame is decoded. With `clips`, the decoded picture is split and a second
    branch of the same graph keeps the clips (clip_branch) on pipe:4; a list of the graph's outputs then."""
    skip = {"skip_frame:v": "noref"} if skip_frames == "noref" else {}
    stream = ffmpeg.input(path, threads=1, **skip)["V:0"]  # the first real video stream (no cover art)
    stream = stream.filter("setpts", "PTS-STARTPTS")
    if clips is not None:
        branches = stream.split()
        stream = branches[0]
    stream = stream.filter("select", f"isnan(prev_selected_t)+gt(floor(t*{fps}),floor(prev_selected_t*{fps}))")
    frames = _jpegs(_showinfo(_fit(stream, box), binary), "pipe:1", quality, binary)
    if clips is None:
        return frames
    return [frames, clip_branch(branches[1], fps, clips, clip_stride, binary)]


def clip_select(fps: float, frames: int, limit: int | None, stride: int) -> str:
    """The select expression of the clips: a clip starts at the first frame of a 1/fps interval (the frame the
    frames branch samples) whose index is a multiple of `stride`, once the clip before it has ended, while fewer
    than `limit` have started; it keeps that frame and the next frames-1 decoded frames (`n` counts every decoded
    frame: they are consecutive). State in the expression's variables: 0 the clip's first n + 1, 1 clips started,
    2 the last interval seen + 1."""
    interval = f"floor(t*{fps})"
    start = (f"gt({interval}+1,ld(2))*gt(eq(ld(0),0)+gte(n-ld(0)+1,{frames}),0)*lt(ld(1),{limit or NO_LIMIT})"
             f"*eq(mod({interval},{stride}),0)")
    keep = f"gt(ld(0),0)*lt(n-ld(0)+1,{frames})"
    return (f"if({start},st(0,n+1)*0+st(1,ld(1)+1)*0+st(2,{interval}+1)*0+1,"
            f"st(2,max(ld(2),{interval}+1))*0+{keep})")


def clip_branch(stream, fps: float, clips: Clips, stride: int, binary: str):
    """The clips' branch: clip_select, fitted in the clips' box like the frames, times logged, JPEGs to pipe:4."""
    stream = stream.filter("select", clip_select(fps, clips.frames, clips.per_video, stride))
    return _jpegs(_showinfo(_fit(stream, clips.size), binary), f"pipe:{CLIP_FD}", clips.quality, binary)


def _fit(stream, box: tuple[int, int]):
    long_side, short_side = box
    # swscale's bilinear filter widens with the scale factor when shrinking (antialiased, like an area filter),
    # and costs ~3-5% less of the whole decode than the default bicubic on 1080p -> 720p.
    return stream.filter("scale", w=f"if(gte(iw,ih),min(iw,{long_side}),min(iw,{short_side}))",
                         h=f"if(gte(iw,ih),min(ih,{short_side}),min(ih,{long_side}))",
                         force_original_aspect_ratio="decrease", force_divisible_by=2, flags="bilinear")


def _showinfo(stream, binary: str):
    # showinfo gives each kept frame's time; checksum=0 skips its per-plane checksums and stats (~1% of the CPU).
    return stream.filter("showinfo", checksum=0) if _showinfo_checksum_option(binary) else stream.filter("showinfo")


def _jpegs(stream, pipe: str, quality: int, binary: str):
    passthrough = passthrough_args(binary)  # ['-fps_mode' or '-vsync', 'passthrough']
    return stream.output(pipe, **{"c:v": "mjpeg", "q:v": quality, "threads": 1, "f": "image2pipe",
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
                   skip_frames: str = DECODE_ALL, audio_rate: int | None = None, clips: Clips | None = None,
                   clip_stride: int = 1) -> list[str]:
    """The frame command: frame_graph compiled with our binary (one decode and one filter thread per video); with
    `audio_rate`, the sound as a second output of the same process (audio_output); with `clips`, the clips as a
    further output of the same decode (clip_branch)."""
    binary = binary or find_ffmpeg()
    outputs = frame_graph(path, fps, box, quality, binary, skip_frames, clips, clip_stride)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if audio_rate:
        outputs.append(audio_output(path, audio_rate))
    graph = ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]
    return graph.compile(cmd=[
        binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-filter_complex_threads", "1"])


def showinfo_of(cmd: list[str], pipe: str) -> str | None:
    """The name ffmpeg logs the showinfo filter feeding output `pipe` under (Parsed_showinfo_N, N the filter's place
    in -filter_complex, where ffmpeg-python writes one filter per chain and `-map [LABEL] ... pipe` per output)."""
    if "-filter_complex" not in cmd or pipe not in cmd:
        return None
    chains = cmd[cmd.index("-filter_complex") + 1].split(";")
    labels = {chain.rsplit("[", 1)[-1].rstrip("]"): i for i, chain in enumerate(chains) if "showinfo" in chain}
    maps = [i for i in range(cmd.index(pipe)) if cmd[i] == "-map"]
    label = cmd[maps[-1] + 1].strip("[]") if maps else None
    return f"Parsed_showinfo_{labels[label]}" if label in labels else None


def _showinfo_checksum_option(binary: str) -> bool:
    """showinfo's `checksum` option exists from ffmpeg 5.0 on (git builds included)."""
    return version_tuple(ffmpeg_version(binary)) >= (5, 0)
