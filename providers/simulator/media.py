"""The simulated upstream's media: fake MP4, WebP and JPEG files, and sending them over HTTP.

Each asset is deterministic per (job id, variant) and never held in memory whole: the first
bytes are a real container header (so sniffers and ``file`` recognise the type), the rest is a
4 KiB block derived from a hash, repeated. Any byte range can be produced directly, so big
bodies stream in chunks and ``Range`` requests cost nothing extra. The bytes are not a playable
video; nothing here decodes or validates media, and nothing here knows about jobs or auth.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from providers.mp4 import header

_BLOCK_SIZE = 4096
MOOV_MIN_BYTES = 512  # smaller MP4s get no moov box (its boxes take 248 bytes)
_THUMBNAIL_BYTES = 2048
_SPRITESHEET_BYTES = 8192


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

    From ``MOOV_MIN_BYTES`` up, the MP4 also carries a ``moov`` box saying ``size`` and
    ``seconds`` (``providers.mp4``), so a render downloaded and uploaded again for an edit or
    an extension reads back as what it is.
    """
    block = hashlib.shake_256(f"{job_id}/{variant.value}".encode()).digest(_BLOCK_SIZE)
    if variant is Variant.VIDEO:
        if video_bytes >= MOOV_MIN_BYTES:
            width, height = (int(side) for side in size.split("x"))
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
    if request.method != "HEAD":  # a StreamResponse would otherwise send the body anyway
        for chunk in asset.chunks(start, stop):
            await response.write(chunk)
    await response.write_eof()
    return response


def _unsatisfiable(asset: Asset) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{asset.size}"})
