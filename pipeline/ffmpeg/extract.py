"""One ffmpeg process per video -> JPEG bytes per sampled second (and its sound): the select loop, the decode.

One ffmpeg process per video -> JPEG bytes for each sampled second (and its sound): the select loop that reads its
outputs and stops it early, the decode with its fallbacks, and the sound alone for prediction.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import selectors
import signal
import subprocess
import time

import numpy as np

from pipeline.spec import DECODE_ALL, Clips
from pipeline.ffmpeg.graph import AUDIO_FD, CLIP_FD, ffmpeg_command, showinfo_of
from pipeline.ffmpeg.jpeg import complete_jpegs, jpeg_size, split_jpegs
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.ffmpeg.mp4 import mp4_tracks
from pipeline.ffmpeg.stderr import (AudioTrack, FrameError, FrameTimeout, VideoInfo, audio_messages,
                                    errors_between, one_line, parse_stderr, parse_stream)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Frame:
    index: int
    second: float
    jpeg: bytes
    width: int
    height: int

def expected_frames(duration: float | None, video_fps: float | None, fps: float) -> int | None:
    """How many sampled frames a complete video of this duration gives (the last frame starts 1/fps_in early)."""
    if not duration:
        return None
    last = duration - (1.0 / video_fps if video_fps else 0.0)
    return max(1, math.floor(max(last, 0.0) * fps) + 1)


# Stop ffmpeg once the last frame the select filter can pass is out (saves decoding the video's last second: ~10%
# of the CPU on a 10 s clip at 1 fps). PIPELINE_FULL_DECODE=1 decodes every frame to the end, as before.
EARLY_STOP = os.environ.get("PIPELINE_FULL_DECODE", "") in ("", "0")


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
               video_duration: float | None = None, audio: bytearray | None = None,
               clip: bytearray | None = None) -> tuple[bytes, bytes, int, bool]:
    """Run the frame command; (stdout, stderr, exit status, stopped early). With early_stop, ffmpeg is stopped as
    soon as `last_frame_is_out`: the frames and their times are then all there, and nothing after them could be
    selected (JPEG bytes identical to a full run: tests/test_pipeline_early_stop.py). With `audio`, the command
    has the sound output (pipe:3) and its bytes are appended to it; the stop is then a SIGTERM, on which ffmpeg
    flushes and closes that output (the sound is all out by then: audio_output) instead of a SIGKILL. With `clip`,
    the command has the clips' output (pipe:4), whose bytes are appended to it (the caller asks for no early stop:
    the last clip may end after the last sampled frame)."""
    pipes = {fd: os.pipe() for fd, sink in ((AUDIO_FD, audio), (CLIP_FD, clip)) if sink is not None}
    try:
        proc = _start(cmd, {fd: ends[1] for fd, ends in pipes.items()})
    except BaseException:
        for read_fd, _ in pipes.values():
            os.close(read_fd)
        raise
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    frames, start, stopped = 0, 0, False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        for fd, sink in ((AUDIO_FD, audio), (CLIP_FD, clip)):
            if fd in pipes:
                sel.register(pipes[fd][0], selectors.EVENT_READ, sink)
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
                    if not early_stop or stopped or key.data is audio or key.data is clip:
                        continue
                    if key.data is out:
                        found, start = complete_jpegs(out, start)
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
            for read_fd, _ in pipes.values():
                os.close(read_fd)
    returncode = proc.wait()
    return bytes(out), bytes(err), 0 if stopped else returncode, stopped


def _start(cmd: list[str], write_fds: dict[int, int]) -> subprocess.Popen:
    """ffmpeg with stdout and stderr piped and the write ends of the further outputs' pipes (the sound's, the
    clips') passed on under their own numbers (the command's pipe:3 and pipe:4 name them)."""
    names = {f"pipe:{fd}": f"pipe:{write_fd}" for fd, write_fd in write_fds.items()}
    cmd = [names.get(arg, arg) for arg in cmd]
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=tuple(write_fds.values()))
    finally:
        for write_fd in write_fds.values():
            os.close(write_fd)


def extract(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float = 600.0,
            binary: str | None = None, skip_frames: str = DECODE_ALL,
            audio_rate: int | None = None, clips: Clips | None = None) -> tuple[VideoInfo, list[Frame]]:
    """Decode the video once and return its sampled frames. Raises FrameError with a one-line reason.

    skip_frames "noref" skips the frames nothing refers to; where that is not safe or not faithful (ffmpeg reported
    an error, a sampled interval came out empty, or a kept frame lies more than MAX_LAG of its interval past its
    start) the video is decoded again with every frame, and that result stands (info.skip_frames says which).
    With `audio_rate`, the same ffmpeg process also gives the sound (info.audio): a track that cannot be decoded
    is an AudioTrack with status failed, never a reason to lose the frames. With `clips`, the same decode keeps the
    clips' frames (info.clip_jpegs, info.clip_times: pipeline.ffmpeg.graph.clip_select picks them): every frame is
    decoded then, and ffmpeg runs to the end of the video."""
    if not os.path.isfile(path):
        raise FrameError("file not found")
    if os.path.getsize(path) == 0:
        raise FrameError("empty file (0 bytes)")
    tracks = mp4_tracks(path)
    decode = (binary, audio_rate, tracks, clips, clip_stride(clips, _clip_duration(path, tracks, clips, binary), fps))
    if skip_frames == "noref" and clips is None:
        try:
            info, jpegs = _decode_with_sound(path, fps, box, quality, timeout, "noref", decode)
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
    info, jpegs = _decode_with_sound(path, fps, box, quality, timeout, "none", decode)
    return info, _frames(jpegs, info, fps)


def _clip_duration(path: str, tracks: dict | None, clips: Clips | None, binary: str | None) -> float | None:
    """The video's duration where --clips-per-video needs it to spread its clips: the MP4 header's video track, else
    (another container) what ffmpeg says of the file on opening it (header_duration); None where neither knows."""
    if clips is None or clips.per_video is None:
        return None
    return (tracks or {}).get("vide") or header_duration(path, binary)


def header_duration(path: str, binary: str | None = None, timeout: float = 30.0) -> float | None:
    """The container's duration as ffmpeg reports it on opening the file, nothing decoded (`ffmpeg -i FILE` with no
    output, which works with the wheel's ffmpeg too, having no ffprobe); None where it reports none."""
    cmd = [binary or find_ffmpeg(), "-hide_banner", "-nostdin", "-i", path]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return parse_stderr(proc.stderr.decode("utf-8", "replace")).duration


def clip_stride(clips: Clips | None, video_duration: float | None, fps: float) -> int:
    """Every how many sampled intervals a clip may start: with --clips-per-video K and a known duration (the MP4
    header's, or the container's: _clip_duration), the K clips are spread over the video; else 1 (each second, the
    first K where K is set)."""
    if clips is None or clips.per_video is None or not video_duration:
        return 1
    return max(1, (expected_frames(video_duration, None, fps) or 1) // clips.per_video)


def _decode_with_sound(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float,
                       skip_frames: str, decode: tuple) -> tuple[VideoInfo, list[bytes]]:
    """One decode (_decode), the sound with it where asked for and present; where the sound's part fails the whole
    command, the picture alone again and the sound's reason in info.audio. `decode`: (binary, audio_rate, the MP4
    tracks, clips, clip stride)."""
    binary, audio_rate, tracks, clips, stride = decode
    want_audio = bool(audio_rate) and (tracks is None or "soun" in tracks)
    try:
        info, jpegs = _decode(path, fps, box, quality, timeout, binary, skip_frames,
                              audio_rate if want_audio else None, tracks, clips=(clips, stride))
    except FrameTimeout:
        raise
    except FrameError as exc:
        if not want_audio:
            raise
        # the sound's part of the command failed the whole run (no audio stream in a file whose headers we do not
        # read, a codec ffmpeg cannot decode ...): the picture alone, and the reason for the sound
        info, jpegs = _decode(path, fps, box, quality, timeout, binary, skip_frames, None, tracks, quiet_sound=True,
                              clips=(clips, stride))
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
            skip_frames: str, audio_rate: int | None, tracks: dict | None, quiet_sound: bool = False,
            clips: tuple[Clips | None, int] = (None, 1)) -> tuple[VideoInfo, list[bytes]]:
    """One run of the frame command (with the sound where audio_rate is given, the clips where `clips` (the spec,
    the stride) has one); FrameError if the frames fail. `quiet_sound`: the picture alone after the sound failed
    the command: what ffmpeg's stream probe logged about the sound's decoder is the sound's reason (already
    given), not the picture's."""
    cmd = ffmpeg_command(path, fps, box, quality, binary, skip_frames, audio_rate, *clips)
    video_duration = (tracks or {}).get("vide") if EARLY_STOP else None
    # with the sound, stop early only where the MP4 header tells the sound's length (checked afterwards); with
    # clips, never (the last clip may run past the last sampled frame)
    early = EARLY_STOP and clips[0] is None and (not audio_rate or bool(tracks and tracks.get("soun")))
    pcm = bytearray() if audio_rate else None
    clip = bytearray() if clips[0] else None
    stdout, stderr, returncode, stopped = run_ffmpeg(cmd, fps, timeout, early, video_duration, pcm, clip)
    text = stderr.decode("utf-8", "replace")
    info = parse_stderr(text, showinfo_of(cmd, "pipe:1") if clip is not None else None)
    if stopped and (len(split_jpegs(stdout)) != len(info.pts_times) or not _sound_complete(pcm, audio_rate, tracks)):
        # cannot happen if the stop was right: decode it all instead
        log.warning("%s: the early stop left frames or sound incomplete; decoding it all", path)
        pcm = bytearray() if audio_rate else None
        stdout, stderr, returncode, _ = run_ffmpeg(cmd, fps, timeout, early_stop=False, audio=pcm)
        text = stderr.decode("utf-8", "replace")
        info = parse_stderr(text)
    if audio_rate:
        info.audio, audio_errors = _track(text, pcm, audio_rate, (tracks or {}).get("soun"))
        info.errors = [e for e in info.errors if e not in audio_errors]  # the sound's errors do not fail frames
    elif quiet_sound:
        sound_errors = audio_messages(text, parse_stream(text, 0)[0], None)[0]
        info.errors = [e for e in info.errors if e not in sound_errors]
    if clip is not None:
        _clips_of(info, text, cmd, clip)
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


def _clips_of(info: VideoInfo, text: str, cmd: list[str], clip: bytearray) -> None:
    """The clips' frames of one run into info: their JPEGs, their times, and where the decoder's errors fell."""
    name = showinfo_of(cmd, f"pipe:{CLIP_FD}")
    info.clip_jpegs = split_jpegs(bytes(clip))
    info.clip_times = parse_stderr(text, name).pts_times
    info.clip_errors = errors_between(text, name, info.errors) if info.errors else []


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
    return judged(track, errors, (mp4_tracks(path) or {}).get("soun"))


def _sound_complete(pcm: bytearray | None, rate: int | None, tracks: dict | None) -> bool:
    """After an early stop: the sound is as long as the MP4 header says its track is (to 0.1 s)."""
    if pcm is None:
        return True
    expected = (tracks or {}).get("soun")
    return expected is not None and len(pcm) / 2 / rate >= expected - 0.1


def _track(stderr: str, pcm: bytearray, rate: int, stream_seconds: float | None) -> tuple[AudioTrack, list[str]]:
    """The sound of one run: what the log says about the track, its PCM; and ffmpeg's errors about it."""
    codec, source_rate, channels = parse_stream(stderr)
    errors, warnings = audio_messages(stderr, codec)
    track = AudioTrack(has_audio=codec is not None or bool(pcm), pcm=bytes(pcm), sample_rate=rate, codec=codec,
                       source_rate=source_rate, channels=channels, warning=(errors or warnings or [None])[0])
    return judged(track, errors, stream_seconds), errors


def judged(track: AudioTrack, errors: list[str], stream_seconds: float | None) -> AudioTrack:
    """A track with sound that decoded to nothing, to far less than its stream or to clipping noise marked failed
    (the reason and ffmpeg's first error about it); a partial one keeps a warning that says so."""
    if not track.has_audio:
        return track
    said = f" (ffmpeg: {errors[0]})" if errors else ""
    if not track.pcm:
        track.status, track.error = "failed", f"no sound decoded{': ' + errors[0] if errors else ''}"
        return track
    problem, warning = damage(track.pcm, track.sample_rate, stream_seconds)
    if problem:
        track.status, track.error = "failed", problem + said
    elif warning:
        track.warning = warning + said
    return track


# Decoded sound that is not the track's sound: damaged packets decode to a fraction of the stream and to noise.
MIN_DECODED_SHARE = 0.5  # less of the stream's length (its MP4 header) than this: the sound failed
PARTIAL_SHARE = 0.9      # less than this (but at least MIN_DECODED_SHARE): kept, with a warning that it is partial
CLIPPED_SHARE = 0.01     # more samples than this at full scale is clipping noise, not a recording (the DFDC
                         # sample's speech: none; an MP3 track whose packets hold noise: 3 to 36 %)


def damage(pcm: bytes, rate: int, stream_seconds: float | None) -> tuple[str | None, str | None]:
    """(why the decoded sound is not the track's, or None; a warning, or None). Failed: it decodes to less than
    MIN_DECODED_SHARE of the stream's length (where the container says it), or more than CLIPPED_SHARE of its
    samples sit at full scale; a warning where it decodes to less than PARTIAL_SHARE of the stream."""
    x = np.frombuffer(pcm, dtype="<i2")
    seconds = len(x) / rate
    said = f"{seconds:.2f} s of the stream's {stream_seconds:.2f} s" if stream_seconds else ""
    if stream_seconds and seconds < MIN_DECODED_SHARE * stream_seconds:
        return f"damaged: decodes to {said}", None
    clipped = float(np.mean((x >= 32767) | (x <= -32767))) if len(x) else 0.0
    if clipped > CLIPPED_SHARE:
        return f"damaged: clipping noise ({100 * clipped:.0f}% of the samples at full scale)", None
    if stream_seconds and seconds < PARTIAL_SHARE * stream_seconds:
        return None, f"partial: decodes to {said}"
    return None, None


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
