"""Thumbnails and sprite sheets made from a stored MP4 with ffmpeg (Debian's package).

For upstreams that have none (the relay kind): a frame from the first second as WebP, and a
JPEG sheet of up to 25 frames (one a second, 5 by 5, each 160 pixels wide). ffmpeg runs as a
child process with no shell, at most ``concurrency`` at once and each for at most ``timeout``
seconds (then it is killed), so a broken file costs a bounded amount of CPU. What it writes is
then stored like any copy (``router.assets.copier``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

GENERATED = ("thumbnail", "spritesheet")
_FILTERS = {
    "thumbnail": ["-frames:v", "1", "-vf", "scale=min(iw\\,480):-2", "-c:v", "libwebp"],
    "spritesheet": [
        "-frames:v", "1", "-vf", "fps=1,scale=160:-2,tile=5x5", "-c:v", "mjpeg", "-q:v", "5",
    ],
}  # fmt: skip
_SUFFIX = {"thumbnail": ".webp", "spritesheet": ".jpg"}


class ThumbnailFailed(Exception):
    """ffmpeg is missing, failed, or took too long."""


class Thumbnailer:
    def __init__(self, *, concurrency: int, timeout: float = 60.0, ffmpeg: str = "ffmpeg") -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = timeout
        self._ffmpeg = shutil.which(ffmpeg)

    @property
    def available(self) -> bool:
        return self._ffmpeg is not None

    async def render(self, video: Path, variant: str, directory: Path) -> Path:
        """Make ``variant`` (thumbnail or spritesheet) of ``video`` in ``directory``; its path."""
        if self._ffmpeg is None:
            raise ThumbnailFailed("ffmpeg is not installed")
        out = directory / f"{variant}{_SUFFIX[variant]}"
        argv = [self._ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(video)]
        argv += [*_FILTERS[variant], str(out)]
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                async with asyncio.timeout(self._timeout):  # (wait_for may swallow a cancel)
                    _, errors = await process.communicate()
            except BaseException:  # the timeout, or a cancelled copy: never leave it running
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
        if process.returncode != 0 or not out.exists():
            detail = errors.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise ThumbnailFailed(f"ffmpeg {variant}: exit {process.returncode}: {detail[0]}")
        return out
