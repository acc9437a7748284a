"""Where the proxy's CPU goes under one load: py-spy samples it while wrk drives it.

py-spy reads the proxy's memory from outside (``--nonblocking``: the proxy is never paused),
so the proxy runs unmodified and the profile costs it nothing but cache noise; py-spy itself
runs on the generator's core. The raw output is collapsed stacks (one ``frame;frame;... count``
line per stack; speedscope and flamegraph.pl read it). The summary ranks functions two ways:

* inclusive: share of samples with the function anywhere on the stack (what a fix could save);
* self: share with the function on top (where the interpreter actually spent the time),
  also summed by package (``aiohttp``, ``prometheus_client``) and by file of our own code.

``--gil`` keeps only samples of the thread holding the GIL: with the loop and the store's
writer thread on one core, a thread waiting for the GIL is not using the CPU, and without the
flag that wait is charged to whatever it was doing (a ``getrandom`` call, say).
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
from pathlib import Path

from bench.stack import Server
from bench.wrk import Load, run_wrk

__all__ = ["Hotspot", "profile"]

_RATE = 500  # samples per second
Hotspot = tuple[str, float]  # "function (file:line)", share of samples


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is missing: pip install py-spy (the bench extra has it)")
    return found


async def profile(
    server: Server, load: Load, seconds: float, out: Path, *, top: int = 25
) -> dict[str, list[Hotspot]]:
    """Sample ``server`` under ``load``; writes ``out`` and returns the top functions."""
    record = await asyncio.create_subprocess_exec(
        py_spy(), "record", "--pid", str(server.process.pid), "--duration", f"{seconds:g}",
        "--rate", str(_RATE), "--nonblocking", "--function", "--gil", "--format", "raw",
        "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await run_wrk(load, seconds)
    if await record.wait() != 0:
        raise RuntimeError(f"py-spy failed on pid {server.process.pid}")
    return summarise(await asyncio.to_thread(out.read_text), top)


def summarise(collapsed: str, top: int) -> dict[str, list[Hotspot]]:
    """Inclusive and self shares per function, the project's own code listed apart."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = _python_frames(stack)
        total += samples
        if frames:
            own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples

    by_package: collections.Counter[str] = collections.Counter()
    for frame, samples in own.items():
        by_package[_package(frame)] += samples

    def ranked(counter: collections.Counter[str], only_ours: bool = False) -> list[Hotspot]:
        found = [(f, n / total) for f, n in counter.most_common() if not only_ours or _ours(f)]
        return [(frame, round(share, 4)) for frame, share in found[:top]]

    return {
        "self_by_package": ranked(by_package),
        "self": ranked(own),
        "ours_inclusive": ranked(inclusive, only_ours=True),
    }


def _python_frames(stack: str) -> list[str]:
    # "function (path:first line)" frames, outermost first (``--function`` merges lines)
    return stack.split(";")


def _package(frame: str) -> str:
    """``aiohttp``, ``router/auth.py``, ``stdlib``: where a frame's code lives."""
    path = frame[frame.rindex("(") + 1 :].rpartition(":")[0]
    if _ours(frame):
        return path
    return path.split("/")[0] if "/" in path else "stdlib"


def _ours(frame: str) -> bool:
    return "(router/" in frame or "(providers/" in frame or "(monitoring/" in frame
