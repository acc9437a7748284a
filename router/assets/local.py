"""The local-directory asset store: one file per object under ``assets.path``.

Writes go to ``.partial/<this store's token>/`` under a random name, are flushed and
``fsync``ed, then renamed into place (and the directory synced), so after a ``kill -9`` or a
power cut an object is either whole under its key or absent. Several processes may share one
directory (``serve --workers``, or a fleet on a shared disk): each holds an exclusive ``flock``
on ``.partial/<token>.lock`` while open, and ``open`` deletes only what an owner that no longer
holds its lock left behind (a crash releases the lock), never another live copy's file. File
I/O runs on the store's own few threads (``IO_THREADS``), a megabyte at a time on the way in,
so the loop never waits on the disk and a burst of ``fsync``s never starves the loop's default
executor (DNS lookups and other libraries' threads). Serving uses ``local_path`` and the
kernel's sendfile (``router.assets.http``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from router.assets.base import AssetStoreError, StoredObject

_PARTIAL = ".partial"
_LOCK = ".lock"
_WRITE_BATCH = 1 << 20  # bytes gathered before one write in a thread
READ_CHUNK = 256 * 1024
IO_THREADS = 4  # as many copies as usually run at once
_T = TypeVar("_T")
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


class LocalAssetStore:
    """``AssetStore`` over a directory on this host."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._partial = self.root / _PARTIAL / secrets.token_hex(8)  # this store's own
        self._lock: int | None = None  # the descriptor holding the flock on its .lock file

    def __repr__(self) -> str:
        return f"LocalAssetStore(root={str(self.root)!r})"

    async def open(self) -> None:
        self._io = concurrent.futures.ThreadPoolExecutor(IO_THREADS, "asset-io")
        await self._run(self._prepare)

    async def close(self) -> None:
        io, self._io = self._io, None
        if io is not None:
            await asyncio.get_running_loop().run_in_executor(None, io.shutdown)
        lock, self._lock = self._lock, None
        if lock is not None:
            await asyncio.to_thread(_drop, self._partial, lock)

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        target = self._path(key)
        partial = self._partial / secrets.token_hex(12)
        file = partial.open("wb")  # opening is one quick syscall; never lost to a cancel
        size = 0
        try:
            batch: list[bytes] = []
            pending = 0
            async for chunk in chunks:
                batch.append(chunk)
                pending += len(chunk)
                if pending >= _WRITE_BATCH:
                    await self._run(file.writelines, batch)
                    size, batch, pending = size + pending, [], 0
            await self._run(_finish, file, batch, partial, target)
            return size + pending
        except BaseException:
            file.close()  # at once: a second cancel must not leak the handle
            await self._run(_discard, partial)
            raise

    async def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            st = await self._run(path.stat)
        except FileNotFoundError:
            return None
        return StoredObject(key, st.st_size, st.st_mtime)

    async def read(self, key: str, start: int, stop: int) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = path.open("rb")  # opening is one quick syscall; never lost to a cancel
        except FileNotFoundError as exc:
            raise AssetStoreError(f"no object {key}") from exc
        try:
            file.seek(start)  # moves an offset, touches no disk
            left = stop - start
            while left > 0:
                chunk = await self._run(file.read, min(READ_CHUNK, left))
                if not chunk:
                    raise AssetStoreError(f"object {key} is shorter than expected")
                left -= len(chunk)
                yield chunk
        finally:
            file.close()

    async def delete(self, key: str) -> None:
        await self._run(_remove, self._path(key), self.root)

    async def objects(self) -> AsyncIterator[StoredObject]:
        for found in await self._run(self._walk):
            yield found

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._io is None:
            raise AssetStoreError("the asset store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def _path(self, key: str) -> Path:
        # keys are ours (router.assets.base.asset_key), but a key must never leave the root
        if not _SAFE_KEY.fullmatch(key) or ".." in key.split("/") or key.startswith(_PARTIAL):
            raise ValueError(f"bad asset key {key!r}")
        return self.root / key

    def _prepare(self) -> None:
        shared = self.root / _PARTIAL
        shared.mkdir(parents=True, exist_ok=True)
        self._lock = _locked(self._partial.with_suffix(_LOCK))
        self._partial.mkdir()
        for entry in shared.iterdir():  # what crashed owners left mid-copy
            if entry.suffix == _LOCK:
                if entry != self._partial.with_suffix(_LOCK):
                    _clear_if_dead(entry)
            elif not entry.with_suffix(_LOCK).exists():  # its owner has gone, or never locked
                _discard_tree(entry)

    def _walk(self) -> list[StoredObject]:
        found = []
        for directory, subdirectories, files in os.walk(self.root):
            if Path(directory) == self.root and _PARTIAL in subdirectories:
                subdirectories.remove(_PARTIAL)
            for name in files:
                path = Path(directory, name)
                try:
                    st = path.stat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                found.append(
                    StoredObject(path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime)
                )
        return found


def _finish(file: BinaryIO, batch: list[bytes], partial: Path, target: Path) -> None:
    """Write the rest, make it durable, then move it into place in one rename."""
    try:
        file.writelines(batch)
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    _sync_directory(target.parent)


def _sync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _locked(path: Path) -> int:
    """A descriptor of ``path`` (made if missing) holding an exclusive ``flock`` on it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh name: nobody else holds it
    return fd


def _clear_if_dead(lock: Path) -> None:
    """Remove the partial directory of ``lock``'s owner if it no longer holds the lock."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # cleared by another instance meanwhile
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # alive: its copies are in flight
        os.close(fd)
        return
    _drop(lock.with_suffix(""), fd)


def _drop(partial: Path, lock: int) -> None:
    """Remove a partial directory, then its lock file, then let the lock go."""
    try:
        _discard_tree(partial)
        partial.with_suffix(_LOCK).unlink(missing_ok=True)
    finally:
        os.close(lock)


def _discard_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)


def _remove(path: Path, root: Path) -> None:
    path.unlink(missing_ok=True)
    parent = path.parent
    if parent != root:
        with contextlib.suppress(OSError):  # not empty, or gone already
            parent.rmdir()  # the job's directory, once its last object is gone
