"""One ffmpeg process per video -> JPEG bytes for each sampled second, plus what ffmpeg said about the video."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import selectors
import signal
import subprocess
import time

import ffmpeg

from dfd.errors import ToolkitError

from .config import SKIP_FRAMES_BEFORE
from .audio import AUDIO_FD, AUDIO_INPUT_OFFSET, AudioTrack, audio_messages, parse_stream
from .ffmpeg import ffmpeg_version, find_ffmpeg, passthrough_args, version_tuple

log = logging.getLogger(__name__)

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"(?:displaymatrix|display matrix): rotation of (-?[\d.]+) degrees", re.I)
_PTS_TIME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.e+-]+)")
_LEVEL = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\] )*\[(error|fatal|panic)\] (.*)$")


class FrameError(ToolkitError, RuntimeError):
    """A video that cannot be turned into frames; the message is one line, ffmpeg's own where it has one."""


class FrameTimeout(FrameError):
    """ffmpeg ran past the timeout (not retried with every frame decoded: it would only time out again)."""


@dataclasses.dataclass
class VideoInfo:
    duration: float | None = None
    width: int | None = None  # displayed size: rotation applied
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    pts_times: list[float] = dataclasses.field(default_factory=list)
    skip_frames: str = SKIP_FRAMES_BEFORE  # what the decode that stands skipped ("noref" or "none")
    audio: AudioTrack | None = None  # the sound, where extract was asked for it


@dataclasses.dataclass
class Frame:
    index: int
    second: float
    jpeg: bytes
    width: int
    height: int


def frame_graph(path: str, fps: float, box: tuple[int, int], quality: int, binary: str,
                skip_frames: str = SKIP_FRAMES_BEFORE):
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
    early stop (see pipeline.audio)."""
    stream = ffmpeg.input(path, threads=1, itsoffset=AUDIO_INPUT_OFFSET, vn=None)["a:0"]
    return stream.output(f"pipe:{AUDIO_FD}", **{"c:a": "pcm_s16le", "ac": 1, "ar": rate, "f": "s16le",
                                                "threads": 1})


def ffmpeg_command(path: str, fps: float, box: tuple[int, int], quality: int, binary: str | None = None,
                   skip_frames: str = SKIP_FRAMES_BEFORE, audio_rate: int | None = None) -> list[str]:
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


def parse_stderr(text: str) -> VideoInfo:
    """What ffmpeg's log tells about the input (before 'Output #0'), the selected frames' times and errors."""
    info = VideoInfo()
    in_input = True
    for line in text.splitlines():
        if "Output #0" in line:
            in_input = False
        if in_input:
            _parse_input_line(line, info)
        pts = _PTS_TIME.search(line)
        if pts and "showinfo" in line:
            info.pts_times.append(float(pts.group(2)))
        level = _LEVEL.match(line.strip())
        if level:
            info.errors.append(level.group(2).strip())
    if info.rotation % 180 == 90 and info.width:
        info.width, info.height = info.height, info.width
    return info


def _parse_input_line(line: str, info: VideoInfo) -> None:
    if (m := _DURATION.search(line)) and info.duration is None:
        info.duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    elif (m := _VIDEO.search(line)) and info.width is None and "attached pic" not in line:
        info.width, info.height = int(m.group(1)), int(m.group(2))
        if fm := _FPS.search(line):
            info.fps = float(fm.group(1)) * (1000 if fm.group(2) else 1)
    elif (m := _ROTATION.search(line)) and info.rotation == 0:
        info.rotation = round(float(m.group(1))) % 360


def split_jpegs(data: bytes) -> list[bytes]:
    """Cut ffmpeg's image2pipe MJPEG stream into JPEG files: walk the segments to SOS, then find EOI."""
    frames, pos, n = [], 0, len(data)
    while pos < n:
        if data[pos:pos + 2] != b"\xff\xd8":
            raise FrameError(f"unexpected bytes in ffmpeg's JPEG stream at offset {pos}")
        seg = pos + 2
        while seg + 4 <= n and data[seg] == 0xFF and data[seg + 1] != 0xDA:
            seg += 2 + int.from_bytes(data[seg + 2:seg + 4], "big")
        end = data.find(b"\xff\xd9", seg)
        if end < 0:
            raise FrameError("ffmpeg's JPEG stream ends inside a frame")
        frames.append(data[pos:end + 2])
        pos = end + 2
    return frames


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF header, without decoding pixels."""
    pos = 2
    while pos + 9 < len(jpeg):
        marker = jpeg[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(jpeg[pos + 7:pos + 9], "big"), int.from_bytes(jpeg[pos + 5:pos + 7], "big")
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    raise FrameError("JPEG without a frame header")


def expected_frames(duration: float | None, video_fps: float | None, fps: float) -> int | None:
    """How many sampled frames a complete video of this duration gives (the last frame starts 1/fps_in early)."""
    if not duration:
        return None
    last = duration - (1.0 / video_fps if video_fps else 0.0)
    return max(1, math.floor(max(last, 0.0) * fps) + 1)


def one_line(errors: list[str]) -> str:
    """The most telling of ffmpeg's error lines, as one line."""
    for err in errors:
        if "matches no streams" in err:
            return "no video stream"
    wanted = [e for e in errors if not e.startswith(("Error opening input file", "Error opening output"))]
    text = (wanted or errors or ["unknown error"])[0]
    return re.sub(r"\s+", " ", text)[:300]


# Stop ffmpeg once the last frame the select filter can pass is out (saves decoding the video's last second: ~10%
# of the CPU on a 10 s clip at 1 fps). PIPELINE_FULL_DECODE=1 decodes every frame to the end, as before.
EARLY_STOP = os.environ.get("PIPELINE_FULL_DECODE", "") in ("", "0")


def _complete_jpegs(data: bytearray, start: int) -> tuple[int, int]:
    """(complete JPEGs found from `start`, offset where the first incomplete one begins) in ffmpeg's MJPEG stream."""
    found, pos, n = 0, start, len(data)
    while pos + 4 <= n:
        if data[pos:pos + 2] != b"\xff\xd8":
            return found, pos  # not a JPEG start: split_jpegs will say so
        seg = pos + 2
        while seg + 4 <= n and data[seg] == 0xFF and data[seg + 1] != 0xDA:
            seg += 2 + int.from_bytes(data[seg + 2:seg + 4], "big")
        if seg + 4 > n:
            return found, pos
        end = data.find(b"\xff\xd9", seg)
        if end < 0:
            return found, pos
        found, pos = found + 1, end + 2
    return found, pos


def mp4_video_duration(path: str) -> float | None:
    """Seconds of the first video track's media (mdhd) in an MP4/MOV, read from the box headers; None if the file
    is not one or the track says nothing (fragmented, unusual or damaged files: the caller then decodes it all)."""
    return (mp4_tracks(path) or {}).get("vide")


def _boxes(f, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        size, kind = int.from_bytes(head[:4], "big"), head[4:8]
        body = pos + 8
        if size == 1 and len(head) == 16:
            size, body = int.from_bytes(head[8:16], "big"), pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def mp4_tracks(path: str) -> dict[str, float | None] | None:
    """{handler ('vide', 'soun', ...): seconds of the first track of that kind (None where its mdhd says
    nothing)} of an MP4/MOV from its box headers; None if the file is not one (or is damaged before its moov)."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            moov = next(((b, e) for k, b, e in _boxes(f, 0, end) if k == b"moov"), None)
            if moov is None:
                return None
            tracks: dict[str, float | None] = {}
            for kind, body, stop in _boxes(f, *moov):
                mdia = next(((b, e) for k, b, e in _boxes(f, body, stop) if k == b"mdia"), None) \
                    if kind == b"trak" else None
                if mdia is None:
                    continue
                found = {k: b for k, b, _ in _boxes(f, *mdia) if k in (b"hdlr", b"mdhd")}
                if b"hdlr" not in found or b"mdhd" not in found:
                    continue
                f.seek(found[b"hdlr"] + 8)
                handler = f.read(4).decode("latin-1")
                if handler not in tracks:
                    tracks[handler] = _mdhd_seconds(f, found[b"mdhd"])
            return tracks
    except (OSError, IndexError, ValueError):
        return None


def _mdhd_seconds(f, mdhd: int) -> float | None:
    f.seek(mdhd)
    version = f.read(4)[0]
    f.seek(mdhd + (20 if version == 1 else 12))
    scale_and_duration = f.read(12 if version == 1 else 8)
    timescale = int.from_bytes(scale_and_duration[:4], "big")
    duration = int.from_bytes(scale_and_duration[4:], "big")
    return duration / timescale if timescale and 0 < duration < 2 ** (63 if version else 31) else None


def last_frame_is_out(info: VideoInfo, n_frames: int, fps: float, video_duration: float | None = None) -> bool:
    """True once no later frame can be selected: `n_frames` JPEGs are out, each with its time, the last one in the
    last interval a frame can start in. A frame starts at most half a frame before the end of the video track
    (`video_duration`, from the MP4 header) or of the container's duration (which bounds every stream), whichever
    is shorter; with no duration, frame rate or with an error seen so far, never (decode to the end, as before)."""
    if not (info.duration and info.fps and n_frames and len(info.pts_times) == n_frames) or info.errors:
        return False
    end = min(info.duration, video_duration) if video_duration else info.duration
    last_start = end - 0.5 / info.fps
    last_interval = math.floor(last_start * fps - 1e-9)
    return math.floor(info.pts_times[-1] * fps + 1e-6) >= last_interval and last_start < (last_interval + 1) / fps


def run_ffmpeg(cmd: list[str], fps: float, timeout: float, early_stop: bool = True,
               video_duration: float | None = None,
               audio: bytearray | None = None) -> tuple[bytes, bytes, int, bool]:
    """Run the frame command; (stdout, stderr, exit status, stopped early). With early_stop, ffmpeg is stopped as
    soon as `last_frame_is_out`: the frames and their times are then all there, and nothing after them could be
    selected (JPEG bytes identical to a full run: tests/test_pipeline_early_stop.py). With `audio`, the command
    has the sound output (pipe:3) and its bytes are appended to it; the stop is then a SIGTERM, on which ffmpeg
    flushes and closes that output (the sound is all out by then: audio_output) instead of a SIGKILL."""
    read_fd = write_fd = None
    if audio is not None:
        read_fd, write_fd = os.pipe()
    try:
        proc = _start(cmd, write_fd)
    except BaseException:
        if read_fd is not None:
            os.close(read_fd)
        raise
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    frames, start, stopped = 0, 0, False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        if read_fd is not None:
            sel.register(read_fd, selectors.EVENT_READ, audio)
        try:
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FrameTimeout(f"ffmpeg took longer than {timeout:g} s")
                for key, _ in sel.select(remaining):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    if stopped and key.data is out:
                        continue  # bytes of a frame that could not be selected: dropped
                    key.data.extend(chunk)
                    if not early_stop or stopped or key.data is audio:
                        continue
                    if key.data is out:
                        found, start = _complete_jpegs(out, start)
                        frames += found
                    # the frame's showinfo line (stderr) and its JPEG (stdout) may come in either order
                    info = parse_stderr(err.decode("utf-8", "replace")) if frames else None
                    if frames and last_frame_is_out(info, frames, fps, video_duration):
                        proc.send_signal(signal.SIGKILL if audio is None else signal.SIGTERM)
                        stopped = True
                        del out[start:]
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if read_fd is not None:
                os.close(read_fd)
    returncode = proc.wait()
    return bytes(out), bytes(err), 0 if stopped else returncode, stopped


def _start(cmd: list[str], write_fd: int | None) -> subprocess.Popen:
    """ffmpeg with stdout and stderr piped and, where there is one, the write end of the sound's pipe passed on
    under its own number (the command's pipe:3 names it)."""
    if write_fd is None:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cmd = [f"pipe:{write_fd}" if arg == f"pipe:{AUDIO_FD}" else arg for arg in cmd]
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(write_fd,))
    finally:
        os.close(write_fd)


def extract(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float = 600.0,
            binary: str | None = None, skip_frames: str = SKIP_FRAMES_BEFORE,
            audio_rate: int | None = None) -> tuple[VideoInfo, list[Frame]]:
    """Decode the video once and return its sampled frames. Raises FrameError with a one-line reason.

    skip_frames "noref" skips the frames nothing refers to; where that is not safe or not faithful (ffmpeg reported
    an error, a sampled interval came out empty, or a kept frame lies more than MAX_LAG of its interval past its
    start) the video is decoded again with every frame, and that result stands (info.skip_frames says which).
    With `audio_rate`, the same ffmpeg process also gives the sound (info.audio): a track that cannot be decoded
    is an AudioTrack with status failed, never a reason to lose the frames."""
    if not os.path.isfile(path):
        raise FrameError("file not found")
    if os.path.getsize(path) == 0:
        raise FrameError("empty file (0 bytes)")
    tracks = mp4_tracks(path)
    if skip_frames == "noref":
        try:
            info, jpegs = _decode_with_sound(path, fps, box, quality, timeout, binary, "noref", audio_rate, tracks)
            frames = _frames(jpegs, info, fps)
            problem = "ffmpeg: " + one_line(info.errors) if info.errors else skip_problem(frames, info, fps)
        except FrameTimeout:
            raise
        except FrameError as err:
            problem = str(err)
        if problem is None:
            info.skip_frames = "noref"
            return info, frames
        log.info("%s: skipping non-reference frames is not faithful here (%s); decoding every frame", path, problem)
    info, jpegs = _decode_with_sound(path, fps, box, quality, timeout, binary, "none", audio_rate, tracks)
    return info, _frames(jpegs, info, fps)


def _decode_with_sound(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float,
                       binary: str | None, skip_frames: str, audio_rate: int | None,
                       tracks: dict | None) -> tuple[VideoInfo, list[bytes]]:
    """One decode (_decode), the sound with it where asked for and present; where the sound's part fails the whole
    command, the picture alone again and the sound's reason in info.audio."""
    want_audio = bool(audio_rate) and (tracks is None or "soun" in tracks)
    try:
        info, jpegs = _decode(path, fps, box, quality, timeout, binary, skip_frames,
                              audio_rate if want_audio else None, tracks)
    except FrameTimeout:
        raise
    except FrameError as exc:
        if not want_audio:
            raise
        # the sound's part of the command failed the whole run (no audio stream in a file whose headers we do not
        # read, a codec ffmpeg cannot decode ...): the picture alone, and the reason for the sound
        info, jpegs = _decode(path, fps, box, quality, timeout, binary, skip_frames, None, tracks, quiet_sound=True)
        info.audio = (AudioTrack(sample_rate=audio_rate) if isinstance(exc, _NoSoundStream) else
                      AudioTrack(status="failed", has_audio=True, sample_rate=audio_rate, error=str(exc)))
    if audio_rate and info.audio is None:
        info.audio = AudioTrack(sample_rate=audio_rate)  # no audio stream
    return info, jpegs


# A kept frame may lie at most this fraction of its sampling interval past the interval's start when non-reference
# frames are skipped (250 ms at 1 fps; DFDC's H.264 lags one frame, 33 ms, where a second starts on a B-frame).
MAX_LAG = 0.25


def skip_problem(frames: list[Frame], info: VideoInfo, fps: float) -> str | None:
    """Why a decode that skipped non-reference frames does not stand for the full one, or None: every interval from
    the first on has its frame (full decodes of constant-rate video never leave one out), each within MAX_LAG."""
    expected = expected_frames(info.duration, info.fps, fps)
    if [f.index for f in frames] != list(range(len(frames))) or (expected and len(frames) < expected - 1):
        return "a sampled interval has no decoded frame"
    worst = max(f.second - f.index / fps for f in frames)
    if worst > MAX_LAG / fps + 1e-6:
        return f"a kept frame lies {worst * 1000:.0f} ms past its interval's start"
    return None


class _NoSoundStream(FrameError):
    """The sound's output found no audio stream (ffmpeg refuses the whole command then)."""


def _decode(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float, binary: str | None,
            skip_frames: str, audio_rate: int | None, tracks: dict | None,
            quiet_sound: bool = False) -> tuple[VideoInfo, list[bytes]]:
    """One run of the frame command (with the sound where audio_rate is given); FrameError if the frames fail.
    `quiet_sound`: the picture alone after the sound failed the command: what ffmpeg's stream probe logged about
    the sound's decoder is the sound's reason (already given), not the picture's."""
    cmd = ffmpeg_command(path, fps, box, quality, binary, skip_frames, audio_rate)
    video_duration = (tracks or {}).get("vide") if EARLY_STOP else None
    # with the sound, stop early only where the MP4 header tells the sound's length (checked afterwards)
    early = EARLY_STOP and (not audio_rate or bool(tracks and tracks.get("soun")))
    pcm = bytearray() if audio_rate else None
    stdout, stderr, returncode, stopped = run_ffmpeg(cmd, fps, timeout, early, video_duration, pcm)
    text = stderr.decode("utf-8", "replace")
    info = parse_stderr(text)
    if stopped and (len(split_jpegs(stdout)) != len(info.pts_times) or not _sound_complete(pcm, audio_rate, tracks)):
        # cannot happen if the stop was right: decode it all instead
        log.warning("%s: the early stop left frames or sound incomplete; decoding it all", path)
        pcm = bytearray() if audio_rate else None
        stdout, stderr, returncode, _ = run_ffmpeg(cmd, fps, timeout, early_stop=False, audio=pcm)
        text = stderr.decode("utf-8", "replace")
        info = parse_stderr(text)
    if audio_rate:
        info.audio, audio_errors = _track(text, pcm, audio_rate)
        info.errors = [e for e in info.errors if e not in audio_errors]  # the sound's errors do not fail frames
    elif quiet_sound:
        sound_errors = audio_messages(text, parse_stream(text, 0)[0], None)[0]
        info.errors = [e for e in info.errors if e not in sound_errors]
    if returncode != 0 and audio_rate and "Stream map '1:a:0' matches no streams" in text:
        raise _NoSoundStream("no audio stream")
    if returncode != 0:
        raise FrameError(f"ffmpeg: {one_line(info.errors)} (exit {returncode})")
    jpegs = split_jpegs(stdout)
    if not jpegs:
        raise FrameError(f"no frames decoded{': ffmpeg: ' + one_line(info.errors) if info.errors else ''}")
    expected = expected_frames(info.duration, info.fps, fps)
    partial = [e for e in info.errors if "partial file" in e]  # the demuxer hit EOF inside the data: truncated
    if partial or (info.errors and expected and len(jpegs) < expected - 1):
        raise FrameError(f"truncated or corrupt: {len(jpegs)} of {expected} frames; "
                         f"ffmpeg: {one_line(partial or info.errors)}")
    return info, jpegs


def extract_sound(path: str, rate: int, timeout: float = 600.0, binary: str | None = None) -> AudioTrack:
    """A video's sound alone, as the decode-once pass keeps it (mono s16le at `rate`, ffmpeg's resampler), its
    picture not decoded (-vn): for prediction from video files with an audio checkpoint."""
    if not os.path.isfile(path):
        raise FrameError("file not found")
    cmd = [binary or find_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-threads",
           "1", "-vn", "-i", path, "-map", "0:a:0?", "-c:a", "pcm_s16le", "-ac", "1", "-ar", str(rate), "-f", "s16le",
           "-threads", "1", "pipe:1"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FrameError(f"ffmpeg took longer than {timeout:g} s") from None
    text = proc.stderr.decode("utf-8", "replace")
    codec, source_rate, channels = parse_stream(text, 0)
    if codec is None:
        return AudioTrack(sample_rate=rate)
    errors, warnings = audio_messages(text, codec, 0)
    track = AudioTrack(has_audio=True, pcm=proc.stdout, sample_rate=rate, codec=codec, source_rate=source_rate,
                       channels=channels, warning=(errors or warnings or [None])[0])
    if not proc.stdout:
        track.status, track.error = "failed", f"no sound decoded{': ' + errors[0] if errors else ''}"
    return track


def _sound_complete(pcm: bytearray | None, rate: int | None, tracks: dict | None) -> bool:
    """After an early stop: the sound is as long as the MP4 header says its track is (to 0.1 s)."""
    if pcm is None:
        return True
    expected = (tracks or {}).get("soun")
    return expected is not None and len(pcm) / 2 / rate >= expected - 0.1


def _track(stderr: str, pcm: bytearray, rate: int) -> tuple[AudioTrack, list[str]]:
    """The sound of one run: what the log says about the track, its PCM; and ffmpeg's errors about it."""
    codec, source_rate, channels = parse_stream(stderr)
    errors, warnings = audio_messages(stderr, codec)
    track = AudioTrack(has_audio=codec is not None or bool(pcm), pcm=bytes(pcm), sample_rate=rate, codec=codec,
                       source_rate=source_rate, channels=channels, warning=(errors or warnings or [None])[0])
    if track.has_audio and not pcm:
        track.status, track.error = "failed", f"no sound decoded{': ' + errors[0] if errors else ''}"
    return track, errors


def _frames(jpegs: list[bytes], info: VideoInfo, fps: float) -> list[Frame]:
    times = info.pts_times if len(info.pts_times) == len(jpegs) else [i / fps for i in range(len(jpegs))]
    if len(info.pts_times) != len(jpegs):
        log.warning("ffmpeg reported %d frame times for %d frames; numbering them in order",
                    len(info.pts_times), len(jpegs))
    width, height = jpeg_size(jpegs[0])
    frames, last = [], -1
    for jpeg, t in zip(jpegs, times):
        index = max(math.floor(t * fps + 1e-6), last + 1)
        frames.append(Frame(index, round(t, 6), jpeg, width, height))
        last = index
    return frames
