"""The simulated upstream's media: a real tiny MP4, WebP and JPEG stand-ins, sent over HTTP.

Each asset is deterministic per (job id, variant) and never held in memory whole: the first
bytes are a real container header, the rest is a 4 KiB block derived from a hash, repeated.
Any byte range can be produced directly, so big bodies stream in chunks and ``Range`` requests
cost nothing extra.

The video decodes: ``mp4_head`` builds (in code, no encoder) an ISO-BMFF file with one video
track of one PNG frame a second, each a solid colour from the job's hash, and the hash blocks
fill a ``free`` box after it up to ``video_bytes``. ffmpeg reads it like any MP4,
so the proxy can make thumbnails of simulated renders (``router.assets.thumbnails``). The
WebP and JPEG stand-ins are headers and noise, not decodable images. Nothing here knows about
jobs or auth.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from providers.mp4 import header

_BLOCK_SIZE = 4096
MOOV_MIN_BYTES = 512  # smaller MP4s get no moov box (its boxes take 248 bytes)
_THUMBNAIL_BYTES = 2048
_SPRITESHEET_BYTES = 8192
FRAME_SCALE = 40  # a frame is 1/40 of the render's size: 18x32 for 720x1280
_TIMESCALE = 1000  # units a second in the MP4's clocks
# identity transform matrix of mvhd and tkhd (16.16 and 2.30 fixed point)
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


class Variant(enum.Enum):
    """The ``variant`` query values of ``GET /videos/{id}/content``."""

    VIDEO = "video"  # the rendered MP4
    THUMBNAIL = "thumbnail"  # a WebP still
    SPRITESHEET = "spritesheet"  # a JPEG grid of frames


@dataclass(slots=True, frozen=True)
class Asset:
    """``size`` bytes: ``head``, then ``block`` repeated by absolute offset, then ``tail``."""

    content_type: str
    size: int
    head: bytes
    block: bytes
    tail: bytes = b""

    def chunks(self, start: int, stop: int, chunk_size: int = 65536) -> Iterator[bytes]:
        """Bytes ``start`` up to (not including) ``stop``, in pieces of at most ``chunk_size``."""
        for lo in range(start, stop, chunk_size):
            yield self._slice(lo, min(lo + chunk_size, stop))

    def _slice(self, lo: int, hi: int) -> bytes:
        body_lo, body_hi = len(self.head), self.size - len(self.tail)
        out = bytearray(self.head[lo:hi])
        a, b = max(lo, body_lo), min(hi, body_hi)
        if a < b:
            offset = a % _BLOCK_SIZE
            repeats = (offset + b - a) // _BLOCK_SIZE + 1
            out += (self.block * repeats)[offset : offset + b - a]
        if hi > body_hi:
            out += self.tail[max(lo, body_hi) - body_hi : hi - body_hi]
        return bytes(out)


def make_asset(
    job_id: str, variant: Variant, video_bytes: int, *, size: str = "720x1280", seconds: int = 4
) -> Asset:
    """The asset a completed job serves for ``variant``; the MP4 is ``video_bytes`` long (>= 64).

    The MP4's ``moov`` says ``size`` and ``seconds`` (``providers.mp4`` reads them back, so a
    render downloaded and uploaded again for an edit or an extension reads as what it is). When
    ``video_bytes`` leaves room for it (``mp4_head``: about 1 KiB for 4 seconds), the MP4 is
    playable; smaller ones carry the boxes only (from ``MOOV_MIN_BYTES``) or not even those.
    """
    block = hashlib.shake_256(f"{job_id}/{variant.value}".encode()).digest(_BLOCK_SIZE)
    if variant is Variant.VIDEO:
        width, height = (int(side) for side in size.split("x"))
        playable = mp4_head(job_id, width, height, seconds)
        if video_bytes >= len(playable) + 8:
            free = struct.pack(">I4s", video_bytes - len(playable), b"free")  # the padding
            return Asset("video/mp4", video_bytes, playable + free, block)
        if video_bytes >= MOOV_MIN_BYTES:
            return Asset(
                "video/mp4", video_bytes, header(width, height, seconds, video_bytes), block
            )
        # An ISO-BMFF file: a 24-byte ftyp box, then one mdat box holding the rest.
        ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", b"mp42", 0, b"mp42isom")
        mdat = struct.pack(">I4s", video_bytes - len(ftyp), b"mdat")
        return Asset("video/mp4", video_bytes, ftyp + mdat, block)
    if variant is Variant.THUMBNAIL:
        # RIFF size counts everything after itself; one lossy VP8 chunk fills the file.
        riff = struct.pack("<4sI4s", b"RIFF", _THUMBNAIL_BYTES - 8, b"WEBP")
        vp8 = struct.pack("<4sI", b"VP8 ", _THUMBNAIL_BYTES - 20)
        return Asset("image/webp", _THUMBNAIL_BYTES, riff + vp8, block)
    # SOI and a JFIF APP0 segment up front, EOI at the end.
    jfif = b"\xff\xd8\xff\xe0" + struct.pack(">H5sBBBHHBB", 16, b"JFIF\x00", 1, 1, 0, 1, 1, 0, 0)
    return Asset("image/jpeg", _SPRITESHEET_BYTES, jfif, block, tail=b"\xff\xd9")


@functools.lru_cache(maxsize=256)  # a job's content is asked for again and again
def mp4_head(job_id: str, width: int, height: int, seconds: int) -> bytes:
    """A playable MP4 (ftyp, moov, mdat) for ``job_id``: ``seconds`` solid-colour PNG frames,
    one a second, each 1/``FRAME_SCALE`` of ``width`` x ``height``, which the track header
    states as the frame size (``providers.mp4.probe`` reads it back)."""
    colours = hashlib.shake_256(job_id.encode()).digest(3 * seconds)
    frame = (max(width // FRAME_SCALE, 2), max(height // FRAME_SCALE, 2))
    frames = [_png(*frame, colours[3 * i : 3 * i + 3]) for i in range(seconds)]
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    moov_size = len(_moov(frames, frame, (width, height), 0))
    data_offset = len(ftyp) + moov_size + 8  # the first frame, just past mdat's header
    return ftyp + _moov(frames, frame, (width, height), data_offset) + _box(b"mdat", *frames)


def _moov(
    frames: list[bytes], frame: tuple[int, int], shown: tuple[int, int], data_offset: int
) -> bytes:
    """One video track whose samples are ``frames`` (each ``frame`` big, shown at ``shown``),
    stored in one chunk at ``data_offset``."""
    width, height = frame
    count, duration = len(frames), len(frames) * _TIMESCALE
    mvhd = _full(
        b"mvhd", 0, struct.pack(">IIIIIH10x", 0, 0, _TIMESCALE, duration, 0x10000, 0x100),
        _MATRIX, bytes(24), struct.pack(">I", 2),
    )  # fmt: skip
    tkhd = _full(
        b"tkhd", 3, struct.pack(">IIIII8xhhH2x", 0, 0, 1, 0, duration, 0, 0, 0),
        _MATRIX, struct.pack(">II", shown[0] << 16, shown[1] << 16),
    )  # fmt: skip
    mdhd = _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, _TIMESCALE, duration, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\0")
    sample_entry = _box(
        b"png ", bytes(6), struct.pack(">H", 1), bytes(16),
        struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1), bytes(32),
        struct.pack(">Hh", 24, -1),
    )  # fmt: skip
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, struct.pack(">I", 1), sample_entry),
        _full(b"stts", 0, struct.pack(">III", 1, count, _TIMESCALE)),
        _full(b"stsc", 0, struct.pack(">IIII", 1, 1, count, 1)),
        _full(
            b"stsz", 0, struct.pack(">II", 0, count), *(struct.pack(">I", len(f)) for f in frames)
        ),
        _full(b"stco", 0, struct.pack(">II", 1, data_offset)),
    )
    dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1)))
    minf = _box(b"minf", _full(b"vmhd", 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, flags: int, *parts: bytes) -> bytes:
    """A "full box": version 0 and 24 bits of flags before its fields."""
    return _box(kind, struct.pack(">I", flags), *parts)


def _png(width: int, height: int, rgb: bytes) -> bytes:
    """A solid-colour RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = (b"\x00" + rgb * width) * height  # filter type 0 before each row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


async def send_asset(request: web.Request, asset: Asset) -> web.StreamResponse:
    """Answer ``request`` with ``asset``, or with the single byte range its ``Range`` asks for."""
    try:
        start, stop, _ = request.http_range.indices(asset.size)
    except ValueError as error:  # malformed or multi-range: aiohttp's own file handler says 416
        raise _unsatisfiable(asset) from error
    if start >= stop:
        raise _unsatisfiable(asset)
    partial = "Range" in request.headers
    response = web.StreamResponse(status=206 if partial else 200)
    response.content_type = asset.content_type
    response.content_length = stop - start
    response.headers["Accept-Ranges"] = "bytes"
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{asset.size}"
    await response.prepare(request)
    try:
        if request.method != "HEAD":  # a StreamResponse would otherwise send the body anyway
            for chunk in asset.chunks(start, stop):
                await response.write(chunk)
        await response.write_eof()
    except ConnectionError:  # a reset, or a lost connection while waiting for it to drain
        # The caller hung up mid-download and the write saw it before aiohttp cancelled this
        # handler (it does on the connection's loss): a real upstream shrugs, so does this one.
        pass
    return response


def _unsatisfiable(asset: Asset) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{asset.size}"})
