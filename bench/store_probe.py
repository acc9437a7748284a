"""What the proxy's SQLite store has written, seen from outside the proxy.

* commits: the WAL index (the ``-shm`` file) starts with a header whose third 32-bit word,
  ``iChange``, SQLite bumps on every write transaction, checkpoints or not;
* bytes: what the store's writer thread passed to write calls (``/proc`` per-thread ``wchar``),
  pages of the WAL and of checkpoints alike;
* size: the database and WAL files on disk.

The proxy needs no hook for any of it, so the benchmark measures the code as shipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from bench.process import PinnedProcess

__all__ = ["StoreCounters", "StoreProbe"]

_ICHANGE = struct.Struct("=I")  # native byte order, at offset 8 of the WAL-index header
_ICHANGE_OFFSET = 8


@dataclass(frozen=True, slots=True)
class StoreCounters:
    commits: int
    bytes_written: int
    file_bytes: int  # database + WAL

    def __sub__(self, earlier: StoreCounters) -> StoreCounters:
        return StoreCounters(
            self.commits - earlier.commits,
            self.bytes_written - earlier.bytes_written,
            self.file_bytes - earlier.file_bytes,
        )


class StoreProbe:
    __slots__ = ("_db", "_process")

    def __init__(self, db: Path, process: PinnedProcess) -> None:
        self._db = db
        self._process = process

    def read(self) -> StoreCounters:
        return StoreCounters(
            commits=self._commits(),
            bytes_written=self._process.side_thread_write_bytes(),
            file_bytes=sum(_size(self._db.with_name(self._db.name + s)) for s in ("", "-wal")),
        )

    def _commits(self) -> int:
        shm = self._db.with_name(self._db.name + "-shm")
        try:
            with shm.open("rb") as file:
                header = file.read(_ICHANGE_OFFSET + _ICHANGE.size)
        except FileNotFoundError:
            return 0
        if len(header) < _ICHANGE_OFFSET + _ICHANGE.size:
            return 0
        return int(_ICHANGE.unpack_from(header, _ICHANGE_OFFSET)[0])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
