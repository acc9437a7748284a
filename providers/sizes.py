"""``WxH`` sizes, the aspect ratios that name them (``1280x720`` is ``16:9``), and the
resolution + ratio pairs newer upstream kinds take instead (``1280x720`` is ``720p`` + ``16:9``).

Both sides speak in ratios: relay upstreams take ``aspect_ratio`` and the client-facing relay
dialect reads it, and newer upstream kinds take a resolution plus a ratio. One module, so
neither side borrows the other's helpers.

``NAMED_SIZES`` is the one table between a catalogue size and a resolution + ratio pair, read
both ways (``named`` for a create, ``size_named`` for what an upstream or a simulator reads
back). It holds only pairs every vendor renders at the same pixel size: 480p is left out on
purpose, since vendors disagree on its 16:9 width (854, 864 and 848 are all in use), so a
480p render is never the exact size a client asked for. ``Geometry`` is what one wire format
can say: a size it cannot name, or seconds it cannot ask for, is refused when the config is
read, long before a render (``router.config.sections``).
"""

from __future__ import annotations

from dataclasses import dataclass

LANDSCAPE, PORTRAIT = "16:9", "9:16"

# (resolution, aspect ratio) -> WxH, for the pairs whose pixel size no vendor disputes.
NAMED_SIZES: dict[tuple[str, str], str] = {
    ("720p", "16:9"): "1280x720",
    ("720p", "9:16"): "720x1280",
    ("720p", "1:1"): "720x720",
    ("720p", "4:3"): "960x720",
    ("720p", "3:4"): "720x960",
    ("1080p", "16:9"): "1920x1080",
    ("1080p", "9:16"): "1080x1920",
    ("1080p", "1:1"): "1080x1080",
    ("1080p", "4:3"): "1440x1080",
    ("1080p", "3:4"): "1080x1440",
}
_NAMES = {size: pair for pair, size in NAMED_SIZES.items()}
NAMED_RESOLUTIONS = frozenset(resolution for resolution, _ in NAMED_SIZES)
NAMED_RATIOS = frozenset(ratio for _, ratio in NAMED_SIZES)


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


def named(size: str) -> tuple[str, str] | None:
    """``(resolution, ratio)`` naming ``size`` exactly (``("720p", "16:9")``), or None."""
    return _NAMES.get(size)


def size_named(resolution: str, ratio: str) -> str | None:
    """The ``WxH`` size a resolution + ratio pair renders at, or None when not exact."""
    return NAMED_SIZES.get((resolution.lower(), ratio))


@dataclass(frozen=True, slots=True, kw_only=True)
class Geometry:
    """What one wire format can ask for: resolutions, ratios and whole seconds.

    Empty ``resolutions`` means the format names no resolution (the model renders its own),
    so only the ratio must be expressible; the operator narrows ``sizes`` to what that model
    renders. ``any_size`` formats take ``WxH`` as it is.
    """

    resolutions: frozenset[str] = frozenset()
    ratios: frozenset[str] = frozenset()
    min_seconds: int = 1
    max_seconds: int = 60
    seconds: frozenset[int] = frozenset()  # when not empty, only these lengths
    any_size: bool = False

    def renders_size(self, size: str) -> bool:
        if self.any_size:
            return True
        pair = named(size)
        if pair is None:
            return False
        resolution, ratio = pair
        return ratio in self.ratios and (not self.resolutions or resolution in self.resolutions)

    def renders_seconds(self, seconds: int) -> bool:
        if self.seconds:
            return seconds in self.seconds
        return self.min_seconds <= seconds <= self.max_seconds
