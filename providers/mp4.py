"""The few facts about an MP4 an edit or extension needs: its length and its frame size.

Edits and extensions may start from an uploaded video instead of a render the upstream holds;
the new job's ``size`` and ``seconds`` are then the upload's, and an extension's stitched total
is the upload's length plus the new segment. ``probe`` reads them from the ISO-BMFF boxes
(``moov/mvhd`` for the duration, the first ``moov/trak/tkhd`` with a frame size for width and
height) without decoding anything; ``header`` writes the same boxes, so the simulated upstream
serves renders whose length and size can be read back. Shared by the simulator (both ways)
and the router (reading client uploads): it knows nothing of either.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_BOX = struct.Struct(">I4s")
_FIXED_ONE = 0x00010000  # 1.0 in 16.16 fixed point
_MATRIX = struct.pack(">9I", _FIXED_ONE, 0, 0, 0, _FIXED_ONE, 0, 0, 0, 0x40000000)
_TIMESCALE = 1000


@dataclass(slots=True, frozen=True)
class VideoInfo:
    """What ``probe`` read: whole seconds (rounded, at least 1) and the frame size."""

    seconds: int
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def probe(data: bytes) -> VideoInfo | None:
    """The length and frame size of an MP4, or None when the boxes do not say."""
    moov = _child(data, 0, len(data), b"moov")
    if moov is None:
        return None
    mvhd = _child(data, *moov, b"mvhd")
    duration = _duration(data, *mvhd) if mvhd is not None else None
    frame = None
    for kind, start, end in _boxes(data, *moov):
        if kind == b"trak":
            tkhd = _child(data, start, end, b"tkhd")
            frame = _frame(data, *tkhd) if tkhd is not None else None
            if frame is not None:
                break
    if duration is None or frame is None:
        return None
    return VideoInfo(max(1, round(duration)), *frame)


def header(width: int, height: int, seconds: int, total: int) -> bytes:
    """The first bytes of an MP4 of ``total`` bytes: ``ftyp``, a ``moov`` saying ``seconds``
    and ``width`` x ``height``, and the head of one ``mdat`` box holding the rest."""
    ftyp = _box(b"ftyp", b"mp42" + struct.pack(">I", 0) + b"mp42isom")
    duration = seconds * _TIMESCALE
    mvhd = _box(
        b"mvhd",
        struct.pack(">4I", 0, 0, 0, _TIMESCALE)
        + struct.pack(">IIH", duration, _FIXED_ONE, 0x0100)
        + bytes(10)
        + _MATRIX
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _box(
        b"tkhd",
        struct.pack(">6I", 3, 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">4H", 0, 0, 0, 0)
        + _MATRIX
        + struct.pack(">2I", width << 16, height << 16),
    )
    moov = _box(b"moov", mvhd + _box(b"trak", tkhd))
    head = ftyp + moov
    if total < len(head) + _BOX.size:
        raise ValueError(f"an MP4 with these boxes needs at least {len(head) + _BOX.size} bytes")
    return head + _BOX.pack(total - len(head), b"mdat")


def _box(kind: bytes, payload: bytes) -> bytes:
    return _BOX.pack(_BOX.size + len(payload), kind) + payload


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box from ``start`` to ``end``."""
    at = start
    while at + _BOX.size <= end:
        size, kind = _BOX.unpack_from(data, at)
        head = _BOX.size
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > end:
                return
            size = struct.unpack_from(">Q", data, at + 8)[0]
            head = 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - at
        if size < head or at + size > end:
            return
        yield kind, at + head, at + size
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, lo, hi in _boxes(data, start, end):
        if found == kind:
            return lo, hi
    return None


def _duration(data: bytes, start: int, end: int) -> float | None:
    """Seconds from an ``mvhd`` payload (version 0: 32-bit times, version 1: 64-bit)."""
    version = data[start] if start < end else None
    layout = {0: (">II", 12), 1: (">IQ", 20)}.get(version) if version is not None else None
    if layout is None or start + layout[1] + struct.calcsize(layout[0]) > end:
        return None
    timescale, duration = struct.unpack_from(layout[0], data, start + layout[1])
    return duration / timescale if timescale else None


def _frame(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Whole-pixel width and height from a ``tkhd`` payload; None for a track without a frame
    (sound)."""
    version = data[start] if start < end else None
    offset = {0: 76, 1: 88}.get(version) if version is not None else None
    if offset is None or start + offset + 8 > end:
        return None
    width, height = struct.unpack_from(">II", data, start + offset)
    if width >> 16 == 0 or height >> 16 == 0:
        return None
    return width >> 16, height >> 16
