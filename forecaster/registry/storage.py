"""File-system helpers shared by artifacts and the registry: local paths and fsspec URLs alike.

A :class:`Location` is a resolved ``(filesystem, path)`` pair; :func:`resolve` turns a path, an
fsspec URL (``s3://bucket/models``, ``memory://x`` in tests) or a Location into one. On local
disk writes are fsynced and replacements are atomic (``os.replace``); object stores get plain PUTs,
which S3 and GCS make atomic per object.

Reads are bounded: :func:`read_bounded` checks a file's type and size *before* reading it, so a
FIFO, a device, a symlink or a huge (even sparse) file is refused without hanging or filling
memory.

Writers of one registry model exclude each other with :func:`lock` (``flock`` on local disk).

Crash testing: :func:`failpoint` SIGKILLs the process at a named step when
``$FORECASTER_FAILPOINT`` names it (the steps are listed in :mod:`forecaster.registry`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
from fsspec.implementations.local import LocalFileSystem

FAILPOINT_ENV = "FORECASTER_FAILPOINT"
# Temporary files and directories start with this; whoever holds the lock may delete them.
TMP_PREFIX = ".tmp-"

Kind = Literal["file", "directory", "symlink", "other"]


class UnsafeFileError(OSError):
    """A path is not a regular file (a symlink, FIFO, device, directory or socket)."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} is {what}, not a regular file")
        self.path, self.what = path, what


class FileTooLargeError(OSError):
    """A file is larger than the caller allows; nothing was read."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"{path} is {size} bytes, more than the {limit} allowed")
        self.path, self.size, self.limit = path, size, limit


@dataclass(frozen=True)
class Location:
    """A resolved place: ``fs`` plus a ``path`` on it (no protocol, no trailing slash)."""

    fs: fsspec.AbstractFileSystem
    path: str

    @property
    def local(self) -> bool:
        """Whether this is the local disk (where fsync, flock and atomic rename exist)."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def url(self) -> str:
        """The path for local disk, the full URL (with protocol) otherwise."""
        return self.path if self.local else self.fs.unstrip_protocol(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def child(self, *names: str | int) -> Location:
        return Location(self.fs, "/".join([self.path.rstrip("/"), *map(str, names)]))

    def __str__(self) -> str:
        return self.url


class UnsupportedLocationError(ValueError):
    """An fsspec URL whose protocol is unknown or whose backend package is not installed."""


def resolve(where: str | os.PathLike | Location, **storage_options: Any) -> Location:
    """A :class:`Location` for a local path, an fsspec URL or an already resolved Location."""
    if isinstance(where, Location):
        return where
    try:
        fs, path = fsspec.core.url_to_fs(os.fspath(where), **storage_options)
    except (ImportError, ValueError) as err:  # "Protocol not known", "Install s3fs to ..."
        raise UnsupportedLocationError(f"cannot open {os.fspath(where)!r}: {err}") from err
    return Location(fs, path.rstrip("/") or "/")


# ------------------------------------------------------------------------------------ writing


def fsync_dir(path: str) -> None:
    """Make a local directory's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(loc: Location, data: bytes) -> None:
    """Write a whole file; on local disk also fsync it, as a later rename relies on it."""
    if not loc.local:
        loc.fs.pipe_file(loc.path, data)
        return
    with open(loc.path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_file(loc: Location, data: bytes, failpoint_tag: str | None = None) -> None:
    """Replace a file's contents atomically: readers see the old or the new bytes, never a mix.

    Local disk: an fsynced temp file in the same directory, ``os.replace``, then the directory is
    fsynced. Failpoints ``<tag>:after-temp`` and ``<tag>:after-replace`` fire between the steps.
    """
    if not loc.local:
        loc.fs.pipe_file(loc.path, data)
        return
    parent, base = loc.path.rsplit("/", 1)
    temp = f"{parent}/{TMP_PREFIX}{uuid.uuid4().hex}-{base}"
    write_bytes(Location(loc.fs, temp), data)
    if failpoint_tag:
        failpoint(f"{failpoint_tag}:after-temp")
    os.replace(temp, loc.path)
    if failpoint_tag:
        failpoint(f"{failpoint_tag}:after-replace")
    fsync_dir(parent)


def failpoint(name: str) -> None:
    """Crash-test hook: SIGKILL this process when ``$FORECASTER_FAILPOINT`` equals ``name``.

    SIGKILL rather than an exception, so no ``finally``/atexit cleanup runs, as in a real crash.
    """
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------ reading


def list_entries(loc: Location) -> dict[str, Kind]:
    """{basename: kind} of a directory's entries (symlinks not followed); FileNotFoundError if
    the directory is missing."""
    if loc.local:
        return _list_local(loc.path)
    try:
        entries = loc.fs.ls(loc.path, detail=True)
    except NotADirectoryError as err:
        raise FileNotFoundError(f"{loc} is not a directory") from err
    out = {}
    for entry in entries:
        full = entry["name"].rstrip("/")
        if full != loc.path.rstrip("/"):  # ls of a file lists the file itself
            kind = entry.get("type")
            if entry.get("islink"):
                kind = "symlink"
            elif kind not in ("file", "directory"):
                kind = "other"
            out[full.rsplit("/", 1)[-1]] = kind
    return out


def _list_local(path: str) -> dict[str, Kind]:
    out = {}
    try:
        with os.scandir(path) as it:
            for item in it:
                try:
                    mode = item.stat(follow_symlinks=False).st_mode
                except FileNotFoundError:
                    # Removed since it was listed (the monitoring database's journal beside
                    # the models, a publish's temp directory): it is not there, and the
                    # directory is. Raised on, it read as a missing directory, so a registry
                    # listed empty while SQLite committed.
                    continue
                out[item.name] = _kind(mode)
    except NotADirectoryError as err:
        raise FileNotFoundError(f"{path} is not a directory") from err
    return out


def _kind(mode: int) -> Kind:
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "directory" if stat.S_ISDIR(mode) else "other"


def describe_mode(mode: int) -> str:
    """'a FIFO', 'a symlink', ... for a file that is not a regular file."""
    for test, what in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "a special file"


def read_bounded(loc: Location, limit: int) -> bytes:
    """A regular file's bytes, refused before reading if it is larger than ``limit`` bytes.

    Symlinks are never followed; FIFOs, devices, directories and sockets are refused without
    opening them for a blocking read (:class:`UnsafeFileError`); a file over ``limit`` raises
    :class:`FileTooLargeError` after reading nothing (a file that grows while being read is
    caught too). A missing file raises FileNotFoundError.
    """
    if not loc.local:
        return _read_remote(loc, limit)
    _check_regular(loc.path, os.lstat(loc.path), limit)
    # O_NONBLOCK: should the path become a FIFO after the lstat, opening it cannot hang.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(loc.path, flags)
    except OSError as err:
        if os.path.islink(loc.path):
            raise UnsafeFileError(loc.path, "a symlink") from err
        raise
    try:
        _check_regular(loc.path, os.fstat(fd), limit)
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileTooLargeError(loc.path, os.fstat(fd).st_size, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_regular(path: str, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        what = describe_mode(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            what += f" (to {os.readlink(path)})"
        raise UnsafeFileError(path, what)
    if st.st_size > limit:
        raise FileTooLargeError(path, st.st_size, limit)


def _read_remote(loc: Location, limit: int) -> bytes:
    info = loc.fs.info(loc.path)
    if info.get("type") != "file" or info.get("islink"):
        raise UnsafeFileError(loc.url, "a symlink" if info.get("islink") else "not a file")
    size = info.get("size")
    if size is not None and size > limit:
        raise FileTooLargeError(loc.url, size, limit)
    data = loc.fs.cat_file(loc.path, start=0, end=limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(loc.url, len(data), limit)
    return data


# ------------------------------------------------------------------------------------ directories


def makedirs(loc: Location) -> None:
    """Create a directory and its parents; on local disk also fsync each parent it changed."""
    if not loc.local:
        loc.fs.makedirs(loc.path, exist_ok=True)
        return
    path, missing = loc.path, []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(new)
        fsync_dir(os.path.dirname(new))


def remove(loc: Location, kind: Kind) -> None:
    """Delete a file or a whole directory tree; a missing one is not an error."""
    if not loc.local:
        loc.fs.rm(loc.path, recursive=kind == "directory")
    elif kind == "directory":
        shutil.rmtree(loc.path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(loc.path)


# ------------------------------------------------------------------------------------ locking


class LockHeldError(OSError):
    """Someone else holds the lock; ``holder`` names them and what they are doing ("process 123
    (promoting version 3)", "another thread of this process (retraining)")."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


# Bytes of the lock file read back to name its holder: the pid and what it is doing.
_HOLDER_BYTES = 200


class FileLock:
    """An exclusive lock on a lock file, reentrant within a thread; get one with :func:`lock`.

    Local disk: ``flock`` on the file (created, with its directory), so it excludes other
    processes too. flock belongs to an open file description, so a second ``open`` + ``flock``
    from the same thread would deadlock against itself: nesting is counted here and only the
    outermost acquisition touches the file. The RLock excludes other threads, and is all there is
    on object stores, which have no file locks.

    The outermost acquisition's ``purpose`` ("promoting version 3") is written into the file
    beside the pid, so whoever is refused learns what holds the lock, not just who.
    """

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._purpose = ""

    def acquire(
        self, blocking: bool = True, timeout: float | None = None, purpose: str = ""
    ) -> None:
        """Take the lock; :class:`LockHeldError` if ``blocking=False`` or ``timeout`` runs out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = -1 if timeout is None or not blocking else timeout
        if not self._rlock.acquire(blocking, wait):
            raise LockHeldError(
                self.loc.url, _holder("another thread of this process", self._purpose)
            )
        try:
            if self._depth == 0:
                if self.loc.local:
                    self._fd = _flock(self.loc, blocking, deadline, purpose)
                self._purpose = purpose
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._purpose = ""
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the flock
                self._fd = None
        self._rlock.release()


def _holder(who: str, purpose: str) -> str:
    return f"{who} ({purpose})" if purpose else who


def _flock(loc: Location, blocking: bool, deadline: float | None, purpose: str) -> int:
    makedirs(Location(loc.fs, os.path.dirname(loc.path)))
    fd = os.open(loc.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        while True:
            try:
                wait = blocking and deadline is None
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if not blocking or (deadline is not None and time.monotonic() >= deadline):
                    text = os.pread(fd, _HOLDER_BYTES, 0).decode(errors="replace").strip()
                    pid, _, doing = text.partition(" ")
                    who = _holder(f"process {pid or '?'}", " ".join(doing.split()))
                    raise LockHeldError(loc.path, who) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        # Only to name the holder in others' errors: "<pid> <purpose>", one line.
        note = f"{os.getpid()} {' '.join(purpose.split())}".strip()[:_HOLDER_BYTES]
        os.pwrite(fd, f"{note}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


_LOCKS: dict[str, FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def lock(loc: Location) -> FileLock:
    """The process-wide :class:`FileLock` of the lock file at ``loc``."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(loc.fs.unstrip_protocol(loc.path), FileLock(loc))


def _forget_locks_in_child() -> None:
    # A forked child must not believe it holds its parent's locks: it starts with none and
    # takes its own flock (which waits while the parent holds the lock).
    global _LOCKS_GUARD
    _LOCKS.clear()
    _LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_locks_in_child)
