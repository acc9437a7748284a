"""A benchmark process pinned to one core, and what /proc says about it.

The proxy and the floor servers run on core 0, everything else on core 1 (``taskset``), so a
server's CPU time is its own. CPU time is ``utime + stime`` of ``/proc/<pid>/stat``, which sums
every thread (the job store's writer thread included), over the process and its children (a
``serve --workers N`` supervisor and its workers, who inherit its core), and so is ``minflt``
(minor page faults); memory is ``VmRSS``.
Nothing here needs psutil: /proc has all of it on the Linux boxes this runs on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["CLIENT_CORE", "SERVER_CORE", "PinnedProcess"]

SERVER_CORE = 0  # the proxy and the floors, one at a time under load
CLIENT_CORE = 1  # wrk, the upstream simulators and the runner itself
_TICKS = os.sysconf("SC_CLK_TCK")
_STOP_WAIT = 15.0  # seconds to exit after SIGTERM before SIGKILL


class PinnedProcess:
    """One child process started as ``taskset -c CORE argv...``; its pid is the command's own."""

    __slots__ = ("_log", "_popen", "name")

    def __init__(self, name: str, core: int, argv: Sequence[str], log: Path, cwd: Path) -> None:
        self.name = name
        self._log = log.open("wb")
        # taskset execs the command, so the pid we get is the server's, not taskset's
        self._popen = subprocess.Popen(
            ["taskset", "-c", str(core), *argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far of every thread of the process and of its
        children (``serve --workers N``: the supervisor and its N workers together)."""
        return sum(_cpu_seconds(pid) for pid in self.tree())

    def minor_faults(self) -> int:
        """Minor page faults so far of every thread of the process and of its children: each
        is a page the kernel zeroed and mapped in because the process touched fresh memory
        (a C heap that hands freed memory back and takes it again pays one per 4 KiB)."""
        return sum(_minor_faults(pid) for pid in self.tree())

    def rss_bytes(self) -> int:
        """``VmRSS`` of the process itself (with ``--workers``, of the supervisor alone)."""
        return _rss_bytes(self.pid)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The process and its children stopped (``SIGSTOP``) for the block, then continued:
        a server left idle on the measured core still wakes for its timers, and each wake-up
        takes the core and its caches from the one being measured."""
        tree = self.tree()
        for pid in tree:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in tree:
                os.kill(pid, signal.SIGCONT)

    def tree(self) -> list[int]:
        """This process's pid, then its direct children's (read from ``/proc``)."""
        return [self.pid, *_children(self.pid)]

    def context_switches(self) -> int:
        """Times any of its threads gave up the CPU so far, by choice or not: on one core,
        a thread handing work to another (the job store's writer) pays in these."""
        return self._sum_per_thread(
            "status", ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")
        )

    def side_thread_write_bytes(self) -> int:
        """Bytes passed to write calls by every thread but the main one.

        In the proxy the main thread runs the event loop (its writes are socket writes) and
        the only other thread is the job store's SQLite writer, so this is SQLite's output.
        """
        return self._sum_per_thread("io", ("wchar:",), main_thread=False)

    def _sum_per_thread(
        self, file: str, fields: tuple[str, ...], *, main_thread: bool = True
    ) -> int:
        """The ``fields`` of ``/proc/<pid>/task/<tid>/<file>`` summed over its threads."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            if not main_thread and int(task.name) == self.pid:
                continue
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                for line in (task / file).read_text().splitlines():
                    if line.startswith(fields):
                        total += int(line.split()[1])
        return total

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after a while; always reaped."""
        if self.alive():
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(_STOP_WAIT)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._log.close()


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` from field 3 on (the command name, field 2, may hold spaces)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):  # a child that just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _minor_faults(pid: int) -> int:
    try:
        return int(_stat_fields(pid)[7])
    except (FileNotFoundError, ProcessLookupError):  # a child that just exited
        return 0


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def _children(parent: int) -> list[int]:
    """Pids whose parent is ``parent``: every ``/proc/<pid>/stat`` read (a few hundred on
    these machines, ~1 ms), since ``/proc/<pid>/task/<tid>/children`` is not always built in."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if int(_stat_fields(int(entry.name))[1]) == parent:
                found.append(int(entry.name))
    return sorted(found)
