"""Serving a stored object: the ``Range`` and conditional rules (``router.assets.http``),
checked as properties over any header a client may send."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.assets.http import plan

ETAG = "abc123"
sizes = st.integers(min_value=1, max_value=10**12)
offsets = st.integers(min_value=0, max_value=10**12 + 10)


@given(size=sizes, first=offsets, last=offsets)
def test_a_closed_range_is_served_clipped_or_refused(size: int, first: int, last: int) -> None:
    answer = plan({"Range": f"bytes={first}-{last}"}, size, ETAG)
    if last < first:  # not a valid range: ignored
        assert (answer.status, answer.start, answer.stop) == (200, 0, size)
    elif first >= size:
        assert answer.status == 416
        assert answer.headers["Content-Range"] == f"bytes */{size}"
    else:
        stop = min(last + 1, size)
        assert (answer.status, answer.start, answer.stop) == (206, first, stop)
        assert answer.headers["Content-Range"] == f"bytes {first}-{stop - 1}/{size}"


@given(size=sizes, first=offsets)
def test_an_open_range_runs_to_the_end(size: int, first: int) -> None:
    answer = plan({"Range": f"bytes={first}-"}, size, ETAG)
    expected = (206, first, size) if first < size else (416, 0, 0)
    assert (answer.status, answer.start, answer.stop) == expected


@given(size=sizes, suffix=offsets)
def test_a_suffix_range_is_the_last_bytes(size: int, suffix: int) -> None:
    answer = plan({"Range": f"bytes=-{suffix}"}, size, ETAG)
    if suffix == 0:
        assert answer.status == 416
    else:
        assert (answer.status, answer.start, answer.stop) == (206, max(size - suffix, 0), size)


@given(size=sizes, header=st.text(max_size=40))
def test_any_range_header_gets_a_sane_answer(size: int, header: str) -> None:
    answer = plan({"Range": header}, size, ETAG)
    assert answer.status in (200, 206, 416)
    if answer.status != 416:
        assert 0 <= answer.start < answer.stop <= size
    assert answer.headers["ETag"] == f'"{ETAG}"'


def test_conditionals() -> None:
    quoted = f'"{ETAG}"'
    assert plan({"If-None-Match": quoted}, 10, ETAG).status == 304
    assert plan({"If-None-Match": f'"other", W/{quoted}'}, 10, ETAG).status == 304
    assert plan({"If-None-Match": "*"}, 10, ETAG).status == 304
    assert plan({"If-None-Match": '"other"'}, 10, ETAG).status == 200
    assert plan({"Range": "bytes=0-1", "If-Range": quoted}, 10, ETAG).status == 206
    stale = plan({"Range": "bytes=0-1", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, 10, ETAG)
    assert (stale.status, stale.stop) == (200, 10)
    several = plan({"Range": "bytes=0-1,4-5"}, 10, ETAG)
    assert (several.status, several.stop) == (200, 10)  # several ranges: the whole object
