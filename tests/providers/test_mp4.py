"""``providers.mp4``: what ``header`` writes, ``probe`` reads back; anything else reads as None."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.mp4 import VideoInfo, header, probe


@given(
    width=st.integers(1, 4096),
    height=st.integers(1, 4096),
    seconds=st.integers(1, 600),
    tail=st.integers(0, 4096),
)
def test_a_written_header_reads_back(width: int, height: int, seconds: int, tail: int) -> None:
    data = header(width, height, seconds, 300 + tail)
    assert probe(data) == VideoInfo(seconds, width, height)


@given(st.binary(max_size=2048))
def test_any_bytes_probe_to_an_answer_or_none_never_an_error(data: bytes) -> None:
    found = probe(data)
    assert found is None or isinstance(found, VideoInfo)


@given(st.binary(max_size=512), st.integers(0, 400))
def test_a_damaged_header_never_raises(noise: bytes, at: int) -> None:
    data = bytearray(header(1280, 720, 8, 1024))
    data[at : at + len(noise)] = noise
    found = probe(bytes(data))
    assert found is None or isinstance(found, VideoInfo)


def test_a_64_bit_box_size_and_a_version_1_movie_header_are_read() -> None:
    mvhd = struct.pack(">I4sB3xQQIQ", 40, b"mvhd", 1, 0, 0, 1000, 12_500)
    tkhd_payload = bytes([0]) + bytes(75) + struct.pack(">II", 640 << 16, 480 << 16)
    tkhd = struct.pack(">I4s", 8 + len(tkhd_payload), b"tkhd") + tkhd_payload
    trak = struct.pack(">I4s", 8 + len(tkhd), b"trak") + tkhd
    body = mvhd + trak
    moov = struct.pack(">I4sQ", 1, b"moov", 16 + len(body)) + body
    assert probe(moov) == VideoInfo(12, 640, 480)
    assert VideoInfo(12, 640, 480).size == "640x480"


def test_a_sound_track_has_no_frame_and_a_header_needs_room() -> None:
    data = bytearray(header(0, 0, 4, 1024))  # a zero frame: a sound track's tkhd
    assert probe(bytes(data)) is None
    with pytest.raises(ValueError, match="at least"):
        header(1280, 720, 4, 100)
