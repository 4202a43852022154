"""Model registry: immutable, numbered artifact versions per model name, with movable aliases.

Layout under a root (a local path, default ``models/``, or an fsspec URL)::

    <root>/<name>/1/                 an artifact (see :mod:`forecaster.registry.artifacts`)
    <root>/<name>/2/
    <root>/<name>/aliases.json       {"aliases": {"production": 2},
                                      "history": {"production": [1, 2]}, "log": [...]}
    <root>/<name>/.lock              the writers' lock (local roots: fcntl.flock)
    <root>/<name>/.job.lock          held by a retraining job for its whole run
    <root>/<name>/.tmp-<hex>/        an unfinished publish; removed by the next publish

Guarantees on a local root (POSIX filesystem):

* A version appears all at once: it is written and fsynced in ``.tmp-<hex>/``, verified, then
  renamed to ``<version>/`` and the parent directory fsynced. Readers and crashes see either no
  new version or a complete one; a crash leaves at most a ``.tmp-*`` that the next publish
  deletes. Versions are never modified after they appear.
* ``aliases.json`` is replaced with ``os.replace`` of an fsynced temp file, so it always parses
  and names a version that passed :meth:`Registry.promote`'s validation (full artifact checks
  plus :func:`forecaster.predict.sanity_problems`).
* One writer per name at a time across processes: :meth:`Registry.lock` holds ``flock`` on
  ``.lock`` (reentrant within a thread, so a caller holding the lock can still call
  ``publish``), for a publish or an alias change only: a version is validated before it is
  taken. Version numbers are chosen under the lock, so concurrent publishers get distinct
  versions. Whoever is refused learns which process holds it and what it is doing.
* A long job (retraining) holds :meth:`Registry.job_lock` (``.job.lock``) for its whole run, so
  a second job is refused at once, while admin actions, which need only ``.lock``, go on.

On an fsspec object store (s3://, gs://, memory://) there is no rename and no flock:

* A version is written in place with ``manifest.json`` last; the manifest is the commit marker
  (a version without one is not listed and is deleted by the next publish). A reader listing at
  the very moment of publishing may still see the new version's directory without a manifest,
  which the registry ignores.
* ``aliases.json`` is a single-object PUT, which S3/GCS make atomic for readers.
* The lock only excludes threads of one process: run one publishing process per model (e.g. the
  retraining job) or coordinate externally.

Reading is defensive: one unreadable version (a damaged, huge or special-file manifest) is
reported by :meth:`Registry.describe` without hiding the others, and a corrupt ``aliases.json``
raises :class:`AliasFileError` for that model only. Entries removed while a directory is listed
(SQLite's journal of the monitoring database, which lives in the root; a publish's temp
directory) are skipped, never taken for a missing directory.

Symlinks, one rule for listing, loading, publishing and promoting (and so for the service,
which does all four through here): a model or version directory that is a symlink is followed
when it resolves to a directory inside the registry root. One that leaves the root (or any, on an
object store) is refused: still listed, so that it is seen, while every use of it raises
:class:`SymlinkRefusedError`, and the first meeting is logged with where it points. A symlink to
anything but a directory is skipped, as a file is. Files (manifests, weights, ``aliases.json``)
are never read through a symlink at all (:func:`forecaster.registry.storage.read_bounded`): they are
hash-checked or replaced atomically in place.

Crash testing: with ``FORECASTER_FAILPOINT=<name>`` the process SIGKILLs itself at that step:
``save:after-weights`` (weights written, manifest not yet; ``save:after-<stem>`` likewise after
each extra file), ``publish:after-save`` (temp directory complete, not renamed),
``publish:after-rename`` (version visible, directory not yet fsynced, alias not moved),
``alias:after-temp`` (new alias file written, not yet replaced), ``alias:after-replace`` (alias
moved, directory not yet fsynced).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveInt

from forecaster.configs import ModelConfig
from forecaster.environment import DEFAULT_REGISTRY
from forecaster.registry import storage
from forecaster.registry.artifacts import (
    MANIFEST,
    ArtifactError,
    LoadedModel,
    NonFiniteWeightsError,
    load_model,
    read_extra_file,
    read_manifest,
    save_model,
)
from forecaster.registry.manifest import Manifest
from forecaster.registry.storage import TMP_PREFIX, Location, failpoint, fsync_dir
from forecaster.schemas import NAME_PATTERN

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"
ALIASES = "aliases.json"
LOCK = ".lock"
JOB_LOCK = ".job.lock"
HISTORY_LIMIT = 100
LOG_LIMIT = 1000
# Aliases, their histories (HISTORY_LIMIT each) and the log (LOG_LIMIT events) fit well within.
MAX_ALIASES_BYTES = 4 << 20
NAME_RE = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))  # used with fullmatch
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


class SymlinkRefusedError(RegistryError):
    """A model or version directory is a symlink that leaves the registry root (or is on an
    object store): listed, never loaded, published into or promoted."""


class AliasMovedError(RegistryError):
    """An alias moved between reading it and changing it; nothing was changed."""


class InvalidNameError(RegistryError, ValueError):
    """A model name, alias or version is malformed."""


class AliasFileError(RegistryError):
    """One model's aliases.json is corrupt or unreadable; other models are unaffected.

    Attributes: ``model`` (the name), ``path`` (the file) and ``reason``.
    """

    def __init__(self, model: str, path: str, reason: str) -> None:
        super().__init__(
            f"aliases of model {model!r}: {path} is {reason}; restore it, or delete it and "
            "promote a version again (versions are untouched)"
        )
        self.model, self.path, self.reason = model, path, reason


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


def hide_root(message: str, *roots: str) -> str:
    """``message`` without where the registry lives (``roots``: its root as configured and as
    opened): "registry /srv/models" becomes "the registry", any other mention "<registry>" —
    clients learn model names, not paths. A bare relative root ("models") is a word too common
    to replace alone."""
    spelled = {os.fspath(r) for r in roots}
    spelled |= {os.path.abspath(r) for r in spelled if "://" not in r}
    spelled |= {os.path.realpath(r) for r in spelled if "://" not in r}
    for root in sorted((r for r in spelled if r not in ("", ".", "/")), key=len, reverse=True):
        message = message.replace(f"registry {root}", "the registry")
        if os.path.isabs(root) or "://" in root:
            message = message.replace(root, "<registry>")
    return message


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


def check_forecasts(model: LoadedModel) -> None:
    """Refuse a model whose forecasts fail :func:`forecaster.predict.sanity_problems`."""
    from forecaster.predict import Predictor, sanity_problems  # JAX only when validating

    problems = sanity_problems(Predictor(model.config, model.params, covariates=model.covariates))
    if problems:
        raise NonFiniteWeightsError(
            f"the model's forecasts are unusable although its weights are finite: "
            f"{'; '.join(problems)}; retrain it or use another version"
        )


_WARNED: set[tuple[str, str]] = set()
_WARNED_GUARD = threading.Lock()


def _warn_refused(path: str, target: str, what: str, why: str) -> None:
    """Log a refused symlink once per link and target (listings meet it on every poll)."""
    with _WARNED_GUARD:
        if (path, target) in _WARNED:
            return
        _WARNED.add((path, target))
    log.warning(
        "registry: %s is a symlink (%s -> %s) that is not followed: %s; it is listed but "
        "cannot be loaded, published into or promoted",
        what,
        path,
        target,
        why,
    )


def _rollback_target(data: _AliasFile, name: str, alias: str) -> tuple[int, int, list[int]]:
    """(the alias's current version, the version a rollback returns to, the history after
    it); RegistryError when there is nothing to roll back to."""
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
    return current, stack[-1], stack


class Registry:
    """Versioned models under ``root`` (local path or fsspec URL); see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike = DEFAULT_REGISTRY,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        try:
            self._loc = storage.resolve(self.root, **dict(storage_options or {}))
        except storage.UnsupportedLocationError as err:
            raise RegistryError(f"registry root: {err}") from err
        self._fs, self._base, self._local = self._loc.fs, self._loc.path, self._loc.local

    def __repr__(self) -> str:
        return f"Registry({self.root!r})"

    # ---------------------------------------------------------------- paths and listings

    def _at(self, *parts: str | int) -> Location:
        return self._loc.child(*parts)

    def _join(self, *parts: str | int) -> str:
        return self._at(*parts).path

    def _entries(self, path: str) -> dict[str, storage.Kind]:
        """{basename: kind} of a directory (symlinks not followed); empty if it is missing."""
        if not self._local:
            self._fs.invalidate_cache(path)  # object-store listings are cached by fsspec
        try:
            return storage.list_entries(Location(self._fs, path))
        except FileNotFoundError:  # nothing there yet
            return {}

    def _symlink(self, path: str, what: str) -> Literal["follow", "refuse", "skip"]:
        """How the symlink at ``path`` is taken, by the one rule for symlinked directories:
        followed when it resolves to a directory inside the registry root; refused (and
        logged, once) when it leaves the root, or on an object store; skipped, as a file
        would be, when it names no directory (dangling, or a file such as a linked database).
        """
        if not self._local:
            _warn_refused(path, "?", what, "object stores' symlinks are not followed")
            return "refuse"
        target = os.path.realpath(path)
        if not os.path.isdir(target):
            return "skip"
        root = os.path.realpath(self._base)
        if target != root and os.path.commonpath([root, target]) == root:
            return "follow"
        _warn_refused(path, target, what, "it leaves the registry root")
        return "refuse"

    def _refused(self, what: str) -> SymlinkRefusedError:
        return SymlinkRefusedError(
            f"{what} is a symlink that the registry does not follow: it follows symlinked "
            "directories only within its root, on local disk (the log says where this one "
            "points); move the directory inside the registry root, or replace the link with it"
        )

    def _model_dir(self, name: str) -> str:
        """The directory of ``name``; :class:`SymlinkRefusedError` when it is a symlink that
        leaves the registry."""
        path = self._join(name)
        if (
            self._local
            and os.path.islink(path)
            and self._symlink(path, f"model {name!r}") == "refuse"
        ):
            raise self._refused(f"the directory of model {name!r}")
        return path

    def _version_dirs(self, name: str) -> dict[int, bool]:
        """{version: has a manifest} for every numbered directory of ``name``; a symlink that
        leaves the registry counts as one with a manifest, so that it is listed and every use
        of it says why it is refused."""
        found = {}
        model = self._model_dir(name)
        for base, kind in self._entries(model).items():
            if not _VERSION_DIR.fullmatch(base):
                continue
            if kind == "symlink":
                how = self._symlink(self._join(name, base), f"version {base} of model {name!r}")
                if how == "refuse":
                    found[int(base)] = True
                    continue
                kind = "directory" if how == "follow" else "file"
            if kind == "directory":
                found[int(base)] = self._fs.lexists(self._join(name, base, MANIFEST))
        return found

    def _version_at(self, name: str, version: int) -> Location:
        """Where ``name@version`` lives; :class:`SymlinkRefusedError` when it is a symlink
        that leaves the registry."""
        loc = self._at(name, version)
        what = f"version {version} of model {name!r}"
        if self._local and os.path.islink(loc.path) and self._symlink(loc.path, what) == "refuse":
            raise self._refused(what)
        return loc

    def names(self) -> list[str]:
        """Models with at least one complete version, sorted; and models whose directory is a
        symlink the registry refuses, so that they are seen (every use of them says why)."""
        found = []
        for base, kind in self._entries(self._base).items():
            if not NAME_RE.fullmatch(base):
                continue
            if kind == "symlink":
                how = self._symlink(self._join(base), f"model {base!r}")
                if how == "refuse":
                    found.append(base)
                    continue
                kind = "directory" if how == "follow" else "file"
            if kind == "directory" and any(self._version_dirs(base).values()):
                found.append(base)
        return sorted(found)

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
        return self._at(check_name(name), check_version(version)).url

    # ---------------------------------------------------------------- aliases

    def _read_aliases(self, name: str) -> _AliasFile:
        """The model's aliases (empty if it has none); :class:`AliasFileError` if unusable."""
        loc = self._at(name, ALIASES)
        try:
            data = storage.read_bounded(loc, MAX_ALIASES_BYTES)
        except FileNotFoundError:
            return _AliasFile()
        except storage.FileTooLargeError as err:
            raise AliasFileError(name, loc.url, f"too large ({err.size} bytes)") from err
        except OSError as err:  # a FIFO, a directory, a symlink, permissions, I/O errors
            raise AliasFileError(name, loc.url, f"unreadable ({err})") from err
        try:
            return _AliasFile.model_validate_json(data)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"]))
            reason = f"{first['msg']}{f' at {where}' if where else ''}"
            raise AliasFileError(
                name, loc.url, f"corrupt ({err.error_count()} problem(s): {reason})"
            ) from err

    def _write_aliases(self, name: str, data: _AliasFile) -> None:
        blob = data.model_dump_json(indent=2).encode()
        storage.replace_file(self._at(name, ALIASES), blob, failpoint_tag="alias")

    def alias(self, name: str, alias: str = DEFAULT_ALIAS) -> int | None:
        """The version ``alias`` points to, or None if it is not set."""
        self.versions(name)
        return self._read_aliases(name).aliases.get(check_name(alias, "alias"))

    def _validate(self, name: str, version: int, *, load: bool = True) -> LoadedModel | None:
        """Full artifact checks plus the forecast sanity check (``load=False``: only that the
        version exists); raises the specific ArtifactError."""
        available = self.versions(name)
        if version not in available:
            raise VersionNotFoundError(
                f"model {name!r} has no version {version} (versions: {available})"
            )
        if not load:
            return None
        model = load_model(self._version_at(name, version))
        check_forecasts(model)
        return model

    def _move_alias(
        self,
        name: str,
        alias: str,
        version: int,
        action: Literal["promote", "rollback"],
        data: _AliasFile | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version`` (caller holds the lock); return its previous target."""
        data = data or self._read_aliases(name)
        previous = data.aliases.get(alias)
        stack = data.history.get(alias, [])
        if action == "promote":
            if previous == version:
                return previous
            stack = [*stack, version][-HISTORY_LIMIT:]
        data.aliases[alias] = version
        data.history[alias] = stack
        event = _AliasEvent(alias=alias, version=version, action=action, at=_now())
        data.log = [*data.log, event][-LOG_LIMIT:]
        self._write_aliases(name, data)
        return previous

    def promote(
        self,
        name: str,
        version: int,
        alias: str = DEFAULT_ALIAS,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version`` if that version loads and validates; return the
        version it pointed at before (None if unset), read under the lock, so concurrent
        promotes each report their own predecessor.

        The version is validated before the lock is taken (versions never change once they
        appear), so the lock is held for the alias change alone. ``blocking=False`` (or a
        ``timeout``) raises :class:`PublishLockedError`, naming the holder and what it is
        doing, instead of waiting for another writer.

        Raises the specific :class:`~forecaster.registry.artifacts.ArtifactError` of a version that
        fails validation; the alias is then left unchanged.
        """
        check_version(version)
        check_name(alias, "alias")
        self._validate(name, version)  # an unknown model: ModelNotFoundError, no lock file
        purpose = f"promoting version {version} to {alias!r}"
        with self.lock(name, blocking=blocking, timeout=timeout, purpose=purpose):
            self._validate(name, version, load=False)  # still there (deleted by hand?)
            return self._move_alias(name, alias, version, "promote")

    def rollback(
        self,
        name: str,
        alias: str = DEFAULT_ALIAS,
        *,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> int:
        """Point ``alias`` back at its previous target (which must still validate); return it.

        The target is validated before the lock is taken; under the lock the alias must still
        be as it was read (else :class:`AliasMovedError`: another writer moved it meanwhile, and
        the rollback would undo their change). ``blocking`` and ``timeout`` as for
        :meth:`promote`.
        """
        check_name(alias, "alias")
        self.versions(name)  # an unknown model: ModelNotFoundError, and no lock file is created
        seen = self._read_aliases(name)
        current, target, stack = _rollback_target(seen, name, alias)
        self._validate(name, target)
        purpose = f"rolling {alias!r} back to version {target}"
        with self.lock(name, blocking=blocking, timeout=timeout, purpose=purpose):
            data = self._read_aliases(name)
            now = data.aliases.get(alias)
            if now != current or data.history.get(alias) != seen.history.get(alias):
                raise AliasMovedError(
                    f"{alias!r} of model {name!r} moved (version {current} -> {now}) while the "
                    "rollback validated its target; nothing was changed: check it and retry"
                )
            data.history[alias] = stack
            self._move_alias(name, alias, target, "rollback", data)
            return target

    # ---------------------------------------------------------------- locking

    @contextlib.contextmanager
    def lock(
        self,
        name: str,
        *,
        blocking: bool = True,
        timeout: float | None = None,
        purpose: str = "",
    ) -> Iterator[None]:
        """Hold the single-writer lock of ``name`` (reentrant within a thread): publishing and
        moving aliases take it, for as long as those take, never for a whole job.

        ``blocking=False`` raises :class:`PublishLockedError` at once if another writer holds
        it; ``timeout`` (seconds) raises it after waiting that long. ``purpose`` ("promoting
        version 3") is what others' errors say the holder is doing.
        """
        check_name(name)
        with self._hold(name, LOCK, blocking, timeout, purpose, "being written"):
            yield

    @contextlib.contextmanager
    def job_lock(self, name: str, purpose: str = "") -> Iterator[None]:
        """Hold the lock that lets one long job (a retraining) run per model at a time; a
        second is refused at once (:class:`PublishLockedError`). It is a lock of its own, so
        admin actions and publishes, which take :meth:`lock`, never wait for a job."""
        check_name(name)
        with self._hold(name, JOB_LOCK, False, None, purpose, "being retrained"):
            yield

    @contextlib.contextmanager
    def _hold(
        self,
        name: str,
        file: str,
        blocking: bool,
        timeout: float | None,
        purpose: str,
        doing: str,
    ) -> Iterator[None]:
        self._model_dir(name)  # no lock file written through a refused symlink
        lock = storage.lock(self._at(name, file))
        try:
            lock.acquire(blocking, timeout, purpose)
        except storage.LockHeldError as err:
            raise PublishLockedError(
                f"model {name!r} in {self.root} is {doing} by {err.holder}; "
                "wait for it to finish and retry"
            ) from None
        try:
            yield
        finally:
            lock.release()

    # ---------------------------------------------------------------- publishing

    def _clean_leftovers(self, name: str) -> None:
        """Remove what crashed publishes left (caller holds the lock, so nothing is live)."""
        for base, kind in self._entries(self._model_dir(name)).items():
            if base.startswith(TMP_PREFIX):
                storage.remove(self._at(name, base), kind)
        if not self._local:
            for version, complete in self._version_dirs(name).items():
                if not complete:
                    storage.remove(self._at(name, version), "directory")

    def publish(
        self,
        name: str,
        config: ModelConfig,
        params: Mapping,
        *,
        promote: bool = False,
        extra_files: Mapping[str, bytes] | Callable[[int], Mapping[str, bytes]] | None = None,
        **save_kwargs: Any,
    ) -> int:
        """Store a new version of ``name`` and return its number.

        ``save_kwargs`` go to :func:`forecaster.registry.artifacts.save_model` (metrics,
        data_fingerprint, freq, seasonality). ``extra_files`` may be a function of the version
        number, called once that number is fixed (under the lock), for files that name their own
        version (the retraining report). With ``promote=True`` the production alias moves to the
        new version once it has validated.
        """
        check_name(name)
        with self.lock(name, purpose="publishing a new version"):
            storage.makedirs(self._at(name))
            self._clean_leftovers(name)
            # Under the lock nobody else publishes, so the number is final before saving.
            version = self._next_version(name)
            if callable(extra_files):
                extra_files = extra_files(version)
            save_kwargs["extra_files"] = extra_files
            model: LoadedModel | None
            if self._local:
                model = self._publish_local(name, version, config, params, save_kwargs)
            else:
                save_model(self._at(name, version), config, params, **save_kwargs)
                model = load_model(self._at(name, version)) if promote else None
            if promote and model is not None:  # loaded whenever promote is asked
                check_forecasts(model)
                self._move_alias(name, DEFAULT_ALIAS, version, "promote")
        return version

    def _next_version(self, name: str) -> int:
        # Counting incomplete directories too means a rename never lands on an existing one.
        return max(self._version_dirs(name), default=0) + 1

    def _publish_local(
        self, name: str, version: int, config: ModelConfig, params: Mapping, save_kwargs: dict
    ) -> LoadedModel:
        """Write into a temp directory, read it back verified, rename it to ``version``; returns
        the model as read back (so promoting does not read it again)."""
        temp = self._at(name, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            save_model(temp, config, params, **save_kwargs)
            model = load_model(temp)  # read back what the disk holds before exposing it
            failpoint("publish:after-save")
            os.rename(temp.path, self._join(name, version))
        except BaseException:
            storage.remove(temp, "directory")
            raise
        failpoint("publish:after-rename")
        fsync_dir(self._join(name))
        return model

    # ---------------------------------------------------------------- reading

    def load(self, name: str, version: int | None = None) -> LoadedModel:
        """Load and verify a version; ``None`` means the production alias's target."""
        available = self.versions(name)
        if version is None:
            version = self._read_aliases(name).aliases.get(DEFAULT_ALIAS)
            if version is None:
                raise ModelNotFoundError(
                    f"model {name!r} has no {DEFAULT_ALIAS!r} version yet; promote one with "
                    f"`forecaster models promote {name} VERSION`"
                )
        check_version(version)
        if version not in available:
            raise VersionNotFoundError(
                f"model {name!r} has no version {version} (versions: {available})"
            )
        return load_model(self._version_at(name, version))

    def manifest(self, name: str, version: int) -> Manifest:
        """A version's manifest alone (frequency, config, metrics), its weights not read."""
        check_version(version)
        if version not in self.versions(name):
            raise VersionNotFoundError(f"model {name!r} has no version {version}")
        return read_manifest(self._version_at(name, version))

    def extra_file(self, name: str, version: int, filename: str) -> bytes | None:
        """A version's extra file (a retraining job's ``report.json``), verified against its
        manifest; None when the version has none of that name."""
        check_version(version)
        if version not in self.versions(name):
            raise VersionNotFoundError(f"model {name!r} has no version {version}")
        return read_extra_file(self._version_at(name, version), filename)

    def describe(self, name: str) -> dict[str, Any]:
        """Versions, aliases and each version's config, metrics and creation time (JSON-able).

        Reads manifests only. A version whose manifest is unreadable (or a refused symlink) is
        listed with ``error``; an unreadable aliases.json gives empty aliases and
        ``aliases_error``. Either way the other versions are still described. A model whose
        directory is a refused symlink has no versions and an ``error``.
        """
        try:
            versions = self.versions(name)
        except SymlinkRefusedError as err:  # listed by names(): described, not raised
            return {"name": name, "root": self.root, "aliases": {}, "alias_history": {},
                    "alias_log": [], "versions": [], "error": str(err)}  # fmt: skip
        try:
            data, alias_error = self._read_aliases(name), None
        except AliasFileError as err:
            data, alias_error = _AliasFile(), str(err)
        info: dict[str, Any] = {
            "name": name,
            "root": self.root,
            "aliases": dict(data.aliases),
            "alias_history": {k: list(v) for k, v in data.history.items()},
            "alias_log": [e.model_dump(mode="json") for e in data.log[-20:]],
            "versions": [self._describe_version(name, v) for v in versions],
        }
        if alias_error:
            info["aliases_error"] = alias_error
        return info

    def _describe_version(self, name: str, version: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"version": version, "path": self.path(name, version)}
        try:
            manifest = read_manifest(self._version_at(name, version))
        except (ArtifactError, SymlinkRefusedError) as err:
            return entry | {"error": str(err)}
        config = manifest.config
        return entry | {
            "format_version": manifest.format_version,
            "created_at": manifest.created_at.isoformat(),
            "config": manifest.config.to_dict(),
            "metrics": manifest.metrics,
            "data_fingerprint": manifest.data_fingerprint,
            "freq": manifest.freq,
            "seasonality": manifest.seasonality,
            # As the service's models routes name it (service.catalog).
            "method": config.method,
            "classical_share": config.stated_share,
        }
