"""Model registry: immutable, numbered artifact versions per model name, with movable aliases.

Layout under a root (a local path, default ``models/``, or an fsspec URL)::

    <root>/<name>/1/                 an artifact (see :mod:`forecaster.artifacts`)
    <root>/<name>/2/
    <root>/<name>/aliases.json       {"aliases": {"production": 2},
                                      "history": {"production": [1, 2]}, "log": [...]}
    <root>/<name>/.lock              lock file (local roots: fcntl.flock)
    <root>/<name>/.tmp-<hex>/        an unfinished publish; removed by the next publish

Guarantees on a local root (POSIX filesystem):

* A version appears all at once: it is written and fsynced in ``.tmp-<hex>/``, verified, then
  renamed to ``<version>/`` and the parent directory fsynced. Readers and crashes see either no
  new version or a complete one; a crash leaves at most a ``.tmp-*`` that the next publish
  deletes. Versions are never modified after they appear.
* ``aliases.json`` is replaced with ``os.replace`` of an fsynced temp file, so it always parses
  and names a version that passed :meth:`Registry.promote`'s validation (full artifact checks
  plus a forward pass with finite output).
* One writer per name at a time across processes: :meth:`Registry.lock` holds ``flock`` on
  ``.lock`` (reentrant within a thread, so a job holding the lock can still call ``publish``).
  Version numbers are chosen under the lock, so concurrent publishers get distinct versions.

On an fsspec object store (s3://, gs://, memory://) there is no rename and no flock:

* A version is written in place with ``manifest.json`` last; the manifest is the commit marker
  (a version without one is not listed and is deleted by the next publish). A reader listing at
  the very moment of publishing may still see the new version's directory without a manifest,
  which the registry ignores.
* ``aliases.json`` is a single-object PUT, which S3/GCS make atomic for readers.
* The lock only excludes threads of one process: run one publishing process per model (e.g. the
  retraining job) or coordinate externally.

Crash testing: with ``FORECASTER_FAILPOINT=<name>`` the process SIGKILLs itself at that step:
``save:after-weights`` (weights written, manifest not yet; ``save:after-<stem>`` likewise after
each extra file), ``publish:after-save`` (temp
directory complete, not renamed), ``publish:after-rename`` (version visible, directory not yet
fsynced, alias not moved), ``alias:after-temp`` (new alias file written, not yet replaced),
``alias:after-replace`` (alias moved, directory not yet fsynced).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import fsspec
import jax
import numpy as np
import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveInt

from forecaster.artifacts import (
    MANIFEST,
    ArtifactError,
    LoadedModel,
    NonFiniteWeightsError,
    failpoint,
    fsync_dir,
    is_local,
    list_entries,
    load_from,
    read_manifest_at,
    save_to,
    verify_at,
    write_bytes,
)
from forecaster.model import ModelConfig, forward

DEFAULT_ROOT = "models"
DEFAULT_ALIAS = "production"
ALIASES = "aliases.json"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
HISTORY_LIMIT = 100
LOG_LIMIT = 1000
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION_DIR = re.compile(r"[1-9][0-9]{0,17}")


class RegistryError(Exception):
    """A registry operation failed; the message says why and what to do."""


class ModelNotFoundError(RegistryError, KeyError):
    """No such model name (or no version behind the requested alias)."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes included
        return str(self.args[0]) if self.args else ""


class VersionNotFoundError(ModelNotFoundError):
    """The model exists but not this version."""


class PublishLockedError(RegistryError):
    """Another writer holds the model's lock."""


class InvalidNameError(RegistryError, ValueError):
    """A model name, alias or version is malformed."""


class _AliasEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    alias: str
    version: PositiveInt
    action: Literal["promote", "rollback"]
    at: AwareDatetime


class _AliasFile(BaseModel):
    """aliases.json: current targets, a stack of past targets per alias, and an audit log."""

    model_config = ConfigDict(extra="forbid")
    format_version: Literal[1] = 1
    aliases: dict[str, PositiveInt] = Field(default_factory=dict)
    history: dict[str, list[PositiveInt]] = Field(default_factory=dict)
    log: list[_AliasEvent] = Field(default_factory=list)


class _ProcessLock:
    """In-process half of a model lock.

    flock belongs to an open file description, so a second ``open`` + ``flock`` from the same
    thread would deadlock against itself; nesting is therefore counted here and only the
    outermost acquisition touches the file. The RLock also excludes other threads, including on
    object stores where no file lock exists.
    """

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_PROCESS_LOCKS: dict[str, _ProcessLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(key: str) -> _ProcessLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, _ProcessLock())


def _forget_locks_in_child() -> None:
    # A forked child must not believe it holds its parent's locks: it starts with none and
    # takes its own flock (which waits while the parent holds the lock).
    global _PROCESS_LOCKS_GUARD
    _PROCESS_LOCKS.clear()
    _PROCESS_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def check_name(name: object, what: str = "model name") -> str:
    """``name`` if it is a safe single path component, else :class:`InvalidNameError`."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: object) -> int:
    """``version`` if it is a positive int, else :class:`InvalidNameError`."""
    if not isinstance(version, int) or isinstance(version, bool) or version <= 0:
        raise InvalidNameError(f"invalid version {version!r}: versions are positive integers")
    return version


def _now() -> datetime:
    return datetime.now(UTC)


_jit_forward = jax.jit(forward, static_argnums=0)


def smoke_test(model: LoadedModel) -> None:
    """Refuse a model whose forecast for a flat input window is not finite."""
    z = np.zeros((1, model.config.input_size), np.float32)
    out = np.asarray(_jit_forward(model.config, model.params, z))
    if not np.isfinite(out).all():
        raise NonFiniteWeightsError(
            "the model's forecast for a flat input is NaN or infinite although its weights are "
            "finite (they are too large); retrain it or use another version"
        )


class Registry:
    """Versioned models under ``root`` (local path or fsspec URL); see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike = DEFAULT_ROOT,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self._fs, base = fsspec.core.url_to_fs(self.root, **dict(storage_options or {}))
        self._base = base.rstrip("/") or "/"
        self._local = is_local(self._fs)

    def __repr__(self) -> str:
        return f"Registry({self.root!r})"

    # ---------------------------------------------------------------- paths and listings

    def _join(self, *parts: str | int) -> str:
        return "/".join([self._base.rstrip("/"), *map(str, parts)])

    def _entries(self, path: str) -> dict[str, str]:
        """{basename: type} of a directory; empty if it does not exist."""
        if not self._local:
            self._fs.invalidate_cache(path)  # object-store listings are cached by fsspec
        try:
            return list_entries(self._fs, path)
        except FileNotFoundError:  # ArtifactNotFoundError: nothing there yet
            return {}

    def _version_dirs(self, name: str) -> dict[int, bool]:
        """{version: has a manifest} for every numbered directory of ``name``."""
        found = {}
        for base, kind in self._entries(self._join(name)).items():
            if kind == "directory" and _VERSION_DIR.fullmatch(base):
                found[int(base)] = self._fs.exists(self._join(name, base, MANIFEST))
        return found

    def names(self) -> list[str]:
        """Models with at least one complete version, sorted."""
        return sorted(
            base
            for base, kind in self._entries(self._base).items()
            if kind == "directory"
            and NAME_RE.fullmatch(base)
            and any(self._version_dirs(base).values())
        )

    def versions(self, name: str) -> list[int]:
        """Complete versions of ``name``, ascending; ModelNotFoundError if there are none."""
        check_name(name)
        found = sorted(v for v, complete in self._version_dirs(name).items() if complete)
        if not found:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFoundError(
                f"no model named {name!r} in registry {self.root} (models: {known})"
            )
        return found

    def path(self, name: str, version: int) -> str:
        """Where version ``version`` of ``name`` lives (a local path or a URL)."""
        path = self._join(check_name(name), check_version(version))
        return path if self._local else self._fs.unstrip_protocol(path)

    # ---------------------------------------------------------------- aliases

    def _read_aliases(self, name: str) -> _AliasFile:
        path = self._join(name, ALIASES)
        try:
            data = self._fs.cat_file(path)
        except FileNotFoundError:
            return _AliasFile()
        try:
            return _AliasFile.model_validate_json(data)
        except pydantic.ValidationError as err:
            raise RegistryError(
                f"{path} is corrupt ({err.error_count()} problem(s): {err.errors()[0]['msg']}); "
                "restore it or delete it and promote a version again (versions are untouched)"
            ) from err

    def _write_aliases(self, name: str, data: _AliasFile) -> None:
        blob = data.model_dump_json(indent=2).encode()
        final = self._join(name, ALIASES)
        if not self._local:
            self._fs.pipe_file(final, blob)
            return
        temp = self._join(name, f"{TMP_PREFIX}aliases-{uuid.uuid4().hex}.json")
        write_bytes(self._fs, temp, blob)
        failpoint("alias:after-temp")
        os.replace(temp, final)
        failpoint("alias:after-replace")
        fsync_dir(self._join(name))

    def alias(self, name: str, alias: str = DEFAULT_ALIAS) -> int | None:
        """The version ``alias`` points to, or None if it is not set."""
        self.versions(name)
        return self._read_aliases(name).aliases.get(check_name(alias, "alias"))

    def _validate(self, name: str, version: int) -> LoadedModel:
        """Full artifact checks plus a forward pass; raises the specific ArtifactError."""
        if version not in self.versions(name):
            raise VersionNotFoundError(
                f"model {name!r} has no version {version} (versions: {self.versions(name)})"
            )
        model = load_from(self._fs, self._join(name, version))
        smoke_test(model)
        return model

    def _move_alias(
        self, name: str, alias: str, version: int, action: str, data: _AliasFile | None = None
    ) -> None:
        data = data or self._read_aliases(name)
        stack = data.history.get(alias, [])
        if action == "promote":
            if data.aliases.get(alias) == version:
                return
            stack = [*stack, version][-HISTORY_LIMIT:]
        data.aliases[alias] = version
        data.history[alias] = stack
        event = _AliasEvent(alias=alias, version=version, action=action, at=_now())
        data.log = [*data.log, event][-LOG_LIMIT:]
        self._write_aliases(name, data)

    def promote(self, name: str, version: int, alias: str = DEFAULT_ALIAS) -> None:
        """Point ``alias`` at ``version`` if that version loads and validates.

        Raises the specific :class:`~forecaster.artifacts.ArtifactError` of a version that
        fails validation; the alias is then left unchanged.
        """
        check_name(name)
        check_version(version)
        check_name(alias, "alias")
        with self.lock(name):
            self._validate(name, version)
            self._move_alias(name, alias, version, "promote")

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> int:
        """Point ``alias`` back at its previous target (which must still validate); return it."""
        check_name(alias, "alias")
        with self.lock(name):
            data = self._read_aliases(name)
            current = data.aliases.get(alias)
            if current is None:
                raise RegistryError(f"model {name!r} has no {alias!r} alias to roll back")
            stack = data.history.get(alias, [])
            if stack and stack[-1] == current:
                stack = stack[:-1]
            if not stack:
                raise RegistryError(
                    f"{alias!r} of model {name!r} has no previous version to roll back to "
                    f"(it points at version {current}); promote a version explicitly"
                )
            target = stack[-1]
            self._validate(name, target)
            data.history[alias] = stack
            self._move_alias(name, alias, target, "rollback", data)
            return target

    # ---------------------------------------------------------------- locking

    @contextlib.contextmanager
    def lock(
        self, name: str, *, blocking: bool = True, timeout: float | None = None
    ) -> Iterator[None]:
        """Hold the single-writer lock of ``name`` (reentrant within a thread).

        ``blocking=False`` raises :class:`PublishLockedError` at once if another writer holds
        it; ``timeout`` (seconds) raises it after waiting that long.
        """
        check_name(name)
        key = self._fs.unstrip_protocol(self._join(name, LOCK))
        plock = _process_lock(key)
        deadline = None if timeout is None else time.monotonic() + timeout
        acquired = plock.rlock.acquire(blocking, -1 if timeout is None or not blocking else timeout)
        if not acquired:
            raise PublishLockedError(self._locked_message(name, "another thread"))
        try:
            if plock.depth == 0 and self._local:
                plock.fd = self._flock(name, blocking, deadline)
            plock.depth += 1
        except BaseException:
            plock.rlock.release()
            raise
        try:
            yield
        finally:
            plock.depth -= 1
            if plock.depth == 0 and plock.fd is not None:
                os.close(plock.fd)  # closing the descriptor releases the flock
                plock.fd = None
            plock.rlock.release()

    def _flock(self, name: str, blocking: bool, deadline: float | None) -> int:
        self._makedirs(self._join(name))
        fd = os.open(self._join(name, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(
                        fd, fcntl.LOCK_EX | (0 if blocking and deadline is None else fcntl.LOCK_NB)
                    )
                    break
                except BlockingIOError:
                    if not blocking or (deadline is not None and time.monotonic() >= deadline):
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                        raise PublishLockedError(
                            self._locked_message(name, f"process {holder or '?'}")
                        ) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # only to name the holder in errors
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _locked_message(self, name: str, holder: str) -> str:
        return (
            f"model {name!r} in {self.root} is being written by {holder}; "
            "wait for it to finish and retry"
        )

    def _makedirs(self, path: str) -> None:
        """Create ``path``; on local disk also fsync each parent whose entries changed."""
        if not self._local:
            self._fs.makedirs(path, exist_ok=True)
            return
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(new)
            fsync_dir(os.path.dirname(new))

    # ---------------------------------------------------------------- publishing

    def _clean_leftovers(self, name: str) -> None:
        """Remove what crashed publishes left (caller holds the lock, so nothing is live)."""
        for base, kind in self._entries(self._join(name)).items():
            if base.startswith(TMP_PREFIX):
                self._remove(self._join(name, base), kind)
        if not self._local:
            for version, complete in self._version_dirs(name).items():
                if not complete:
                    self._remove(self._join(name, version), "directory")

    def _remove(self, path: str, kind: str) -> None:
        if self._local and kind == "directory":
            shutil.rmtree(path, ignore_errors=True)
        elif self._local:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        else:
            self._fs.rm(path, recursive=kind == "directory")

    def publish(
        self,
        name: str,
        config: ModelConfig,
        params: Mapping,
        *,
        promote: bool = False,
        **save_kwargs: Any,
    ) -> int:
        """Store a new version of ``name`` and return its number.

        ``save_kwargs`` go to :func:`forecaster.artifacts.save_model` (metrics,
        data_fingerprint, freq, seasonality, extra_files). With ``promote=True`` the
        production alias moves to the new version once it has validated.
        """
        check_name(name)
        with self.lock(name):
            self._makedirs(self._join(name))
            self._clean_leftovers(name)
            if self._local:
                version = self._publish_local(name, config, params, save_kwargs)
            else:
                version = self._next_version(name)
                save_to(self._fs, self._join(name, version), config, params, **save_kwargs)
            if promote:
                self._validate(name, version)
                self._move_alias(name, DEFAULT_ALIAS, version, "promote")
        return version

    def _next_version(self, name: str) -> int:
        # Counting incomplete directories too means a rename never lands on an existing one.
        return max(self._version_dirs(name), default=0) + 1

    def _publish_local(
        self, name: str, config: ModelConfig, params: Mapping, save_kwargs: dict
    ) -> int:
        temp = self._join(name, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            save_to(self._fs, temp, config, params, **save_kwargs)
            verify_at(self._fs, temp)  # read back what the disk holds before exposing it
            failpoint("publish:after-save")
            version = self._next_version(name)
            os.rename(temp, self._join(name, version))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        failpoint("publish:after-rename")
        fsync_dir(self._join(name))
        return version

    # ---------------------------------------------------------------- reading

    def load(self, name: str, version: int | None = None) -> LoadedModel:
        """Load and verify a version; ``None`` means the production alias's target."""
        if version is None:
            version = self.alias(name)
            if version is None:
                raise ModelNotFoundError(
                    f"model {name!r} has no {DEFAULT_ALIAS!r} version yet; promote one with "
                    f"`forecaster models promote {name} VERSION`"
                )
        check_version(version)
        available = self.versions(name)
        if version not in available:
            raise VersionNotFoundError(
                f"model {name!r} has no version {version} (versions: {available})"
            )
        return load_from(self._fs, self._join(name, version))

    def describe(self, name: str) -> dict[str, Any]:
        """Versions, aliases and each version's config, metrics and creation time (JSON-able).

        Reads manifests only; a version whose manifest is unreadable is listed with ``error``.
        """
        versions = self.versions(name)
        data = self._read_aliases(name)
        entries = []
        for version in versions:
            entry: dict[str, Any] = {"version": version, "path": self.path(name, version)}
            try:
                manifest = read_manifest_at(self._fs, self._join(name, version))
            except ArtifactError as err:
                entry["error"] = str(err)
            else:
                entry |= {
                    "created_at": manifest.created_at.isoformat(),
                    "config": manifest.config.to_dict(),
                    "metrics": manifest.metrics,
                    "data_fingerprint": manifest.data_fingerprint,
                    "freq": manifest.freq,
                    "seasonality": manifest.seasonality,
                }
            entries.append(entry)
        return {
            "name": name,
            "root": self.root,
            "aliases": dict(data.aliases),
            "alias_history": {k: list(v) for k, v in data.history.items()},
            "alias_log": [e.model_dump(mode="json") for e in data.log[-20:]],
            "versions": entries,
        }
