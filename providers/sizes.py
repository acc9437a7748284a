"""``WxH`` sizes and the aspect ratios that name them (``1280x720`` is ``16:9``).

Both sides speak in ratios: relay upstreams take ``aspect_ratio`` and the client-facing relay
dialect reads it, and newer upstream kinds take a resolution plus a ratio. One module, so
neither side borrows the other's helpers.
"""

from __future__ import annotations

LANDSCAPE, PORTRAIT = "16:9", "9:16"


def dimensions(size: str) -> tuple[int, int]:
    """``(width, height)`` of a ``WxH`` size (config has checked the shape)."""
    width, _, height = size.partition("x")
    return int(width), int(height)


def aspect_ratio_of(size: str) -> str | None:
    """``16:9`` for a landscape ``WxH`` size, ``9:16`` for a portrait one, None for a square."""
    width, height = dimensions(size)
    if width == height:
        return None
    return LANDSCAPE if width > height else PORTRAIT
