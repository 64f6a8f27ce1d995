"""ffmpeg's MJPEG stream: the one JPEG marker walk, the stream cut into JPEG files, a JPEG's size.

ffmpeg's MJPEG stream: the one JPEG marker walk (to the scan), cutting the stream into JPEG files (whole, or as far
as it has come) and a JPEG's size from its frame header.
"""
from __future__ import annotations

from pipeline.ffmpeg.stderr import FrameError


def scan_start(data: bytes | bytearray, pos: int) -> int:
    """Where the entropy-coded data of the JPEG that starts at `pos` begins: its segments walked to SOS (or as far
    as the bytes go, or to the first byte that is not a marker)."""
    seg, n = pos + 2, len(data)
    while seg + 4 <= n and data[seg] == 0xFF and data[seg + 1] != 0xDA:
        seg += 2 + int.from_bytes(data[seg + 2:seg + 4], "big")
    return seg


def split_jpegs(data: bytes) -> list[bytes]:
    """Cut ffmpeg's image2pipe MJPEG stream into JPEG files: walk the segments to SOS, then find EOI."""
    frames, pos, n = [], 0, len(data)
    while pos < n:
        if data[pos:pos + 2] != b"\xff\xd8":
            raise FrameError(f"unexpected bytes in ffmpeg's JPEG stream at offset {pos}")
        end = data.find(b"\xff\xd9", scan_start(data, pos))
        if end < 0:
            raise FrameError("ffmpeg's JPEG stream ends inside a frame")
        frames.append(data[pos:end + 2])
        pos = end + 2
    return frames


def complete_jpegs(data: bytearray, start: int) -> tuple[int, int]:
    """(complete JPEGs found from `start`, offset where the first incomplete one begins) in ffmpeg's MJPEG stream."""
    found, pos, n = 0, start, len(data)
    while pos + 4 <= n:
        if data[pos:pos + 2] != b"\xff\xd8":
            return found, pos  # not a JPEG start: split_jpegs will say so
        seg = scan_start(data, pos)
        if seg + 4 > n:
            return found, pos
        end = data.find(b"\xff\xd9", seg)
        if end < 0:
            return found, pos
        found, pos = found + 1, end + 2
    return found, pos


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF header, without decoding pixels."""
    pos = 2
    while pos + 9 < len(jpeg):
        marker = jpeg[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(jpeg[pos + 7:pos + 9], "big"), int.from_bytes(jpeg[pos + 5:pos + 7], "big")
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    raise FrameError("JPEG without a frame header")

