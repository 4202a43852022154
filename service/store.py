"""The models being served: loaded from the registry, warmed, validated, swapped atomically.

A request looks its model up once (:meth:`ModelStore.get`) and keeps that :class:`ServedModel`
until it answers, so swapping in a new version never disturbs a request in flight: the swap is
one dictionary assignment on the event loop. Loading, compiling and validating run on a helper
thread, and a version that fails any step is never swapped in; the old one keeps serving.

One bad model never takes the others down: each model is refreshed on its own, and what keeps
one from serving (an unreadable ``aliases.json``, a corrupt manifest or weights file, a failed
sanity check) is recorded as its :class:`ModelProblem`, logged once as one line, counted, and
retried when the alias moves again or the version's files change.

Admin calls (reload, promote, rollback) never queue for long: while another swap of the same
model is under way here (beyond :data:`ADMIN_WAIT_S`) they raise :class:`Busy`, and while another
writer holds the registry's lock (a retraining job publishing) the registry's
PublishLockedError; both are 409s that name what holds the model, and nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec

from forecaster import data
from forecaster.calibration import Calibration
from forecaster.histories import trained_max_gap
from forecaster.model import ModelConfig
from forecaster.predict import Predictor, sanity_problems
from forecaster.registry import (
    AliasFileError,
    LoadedModel,
    ModelNotFoundError,
    Registry,
    RegistryError,
)

log = logging.getLogger(__name__)
# Longest an admin call waits for another swap of the same model (a watcher's poll takes
# milliseconds; a load, seconds) before it is refused with 409 rather than queued.
ADMIN_WAIT_S = 2.0


class LoadFailed(Exception):
    """A model version could not be loaded, compiled or validated."""


class Busy(RegistryError):
    """Another swap of the model is under way in this service (HTTP 409, nothing done)."""


@dataclass(frozen=True)
class ServedModel:
    """One version of one model, compiled for every batch shape and ready to run."""

    name: str
    version: int
    predictor: Predictor
    loaded: LoadedModel

    @property
    def config(self) -> ModelConfig:
        return self.predictor.config

    @property
    def calibration(self) -> Calibration | None:
        """The model's interval calibration; None: an older or uncalibrated model."""
        return self.loaded.manifest.calibration

    @property
    def freq(self) -> str | None:
        """pandas alias of the training data's frequency (None when it had no timestamps)."""
        return self.loaded.manifest.freq

    @property
    def seasonality(self) -> int:
        """The seasonal period of the training data (1 when the manifest records none): the
        statistical fallback's."""
        return self.loaded.manifest.seasonality or 1

    @property
    def max_gap(self) -> int:
        """Longest run of missing points interpolated in a history: the one the model was
        trained with (``--max-gap``), so serving reads a history as training read its data."""
        return trained_max_gap(self.loaded.manifest.training)


@dataclass(frozen=True)
class ModelProblem:
    """Why a model is not served at the version its alias names.

    ``version`` and ``files`` (name, size, time of each file of that version) identify what
    failed, so the watcher tries again only once either changes.
    """

    reason: str
    version: int | None = None
    files: tuple[tuple[Any, ...], ...] = ()


class Swap(NamedTuple):
    """What one refresh, promote or rollback did, read under the model's lock (so concurrent
    admin calls each see their own predecessor): the version served before (None: none) and
    the one served now (the same object when nothing changed)."""

    previous: ServedModel | None
    served: ServedModel


def build_served(
    registry: Registry, name: str, version: int, batch_sizes: Sequence[int]
) -> ServedModel:
    """Load ``name@version``, compile every batch shape and check it forecasts sanely."""
    loaded = registry.load(name, version)
    predictor = Predictor(loaded.config, loaded.params, batch_sizes, covariates=loaded.covariates)
    predictor.warmup()
    _validate(predictor)
    return ServedModel(name, version, predictor, loaded)


def _validate(predictor: Predictor) -> None:
    """Refuse a model that fails the one sanity check (finite, in-range probe forecasts)."""
    problems = sanity_problems(predictor)
    if problems:
        raise LoadFailed("the model failed its sanity check: " + "; ".join(problems))


def failure(exc: BaseException) -> str:
    """Why loading failed, as one line (for logs and ``/readyz``): ``exc`` named by its type
    unless that type's messages say what failed."""
    named = not isinstance(exc, LoadFailed | RegistryError | OSError | ValueError)
    return data.one_line(exc, named=named)


class ModelStore:
    """Name -> the :class:`ServedModel` answering requests for it.

    Args:
      registry: where versions and the ``production`` alias live.
      batch_sizes: batch shapes each model is compiled for.
      names: models to serve; ``None`` serves every model with a production alias.
      required: models asked for by name (a configured default): always tried, and their
        absence is logged.
      on_swap: called with ``(name, version)`` after a version goes live (for metrics).
      on_failure: called with the model's name after each load failure (for metrics).
    """

    def __init__(
        self,
        registry: Registry,
        batch_sizes: Sequence[int],
        names: Sequence[str] | None = None,
        required: Sequence[str] = (),
        on_swap: Callable[[str, int], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.batch_sizes = tuple(batch_sizes)
        self.required = tuple(required)
        self.configured = tuple(dict.fromkeys([*names, *required])) if names is not None else None
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._served: dict[str, ServedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._doing: dict[str, str] = {}  # what holds each model's lock, for Busy's message
        self._problems: dict[str, ModelProblem] = {}
        self._known: tuple[str, ...] = self.configured or self.required
        self.started = False  # every model has been tried once

    def get(self, name: str) -> ServedModel | None:
        return self._served.get(name)

    def served(self) -> dict[str, ServedModel]:
        return dict(self._served)

    def known(self) -> tuple[str, ...]:
        """The models this service means to serve, as of the latest look at the registry."""
        return self._known

    def problem(self, name: str) -> str | None:
        """Why ``name`` is not served at its alias's version (None: no known problem)."""
        found = self._problems.get(name)
        return None if found is None else found.reason

    async def names(self) -> list[str]:
        """Models this service serves: the configured ones, else every one with a production
        alias (or with an alias file that cannot be read: it is reported, not hidden)."""
        if self.configured is None:
            found = await asyncio.to_thread(self._discover)
            self._known = tuple(dict.fromkeys([*found, *self.required]))
        return list(self._known)

    def _discover(self) -> list[str]:
        found = []
        for name in self.registry.names():
            try:
                if self.registry.alias(name) is not None:
                    found.append(name)
            except ModelNotFoundError:
                continue  # removed since it was listed
            except RegistryError:
                found.append(name)  # its refresh records and logs the problem
        return found

    async def load_all(self) -> None:
        """Try every model once; one that fails is logged, recorded and retried by the watcher."""
        await self._refresh_each()
        self.started = True

    async def _refresh_each(self) -> None:
        try:
            names = await self.names()
        except Exception as exc:
            log.error("could not list the models of registry %s: %s", self.registry, failure(exc))
            return
        for name in names:
            try:
                await self.refresh(name)
            except (LoadFailed, RegistryError):
                pass  # recorded (and logged when new); the old version, if any, serves on
            except Exception as exc:
                self._fail(name, ModelProblem(failure(exc)))

    async def refresh(self, name: str, *, force: bool = False) -> Swap:
        """Serve the version ``name``'s production alias points at, loading it if it is new.

        A version that failed before is tried again only when ``force`` is set, the alias moves
        or the version's files change.

        Raises:
          ModelNotFoundError: no such model, or it has no production alias.
          RegistryError: its alias file cannot be read.
          LoadFailed: the new version failed; the previous one (if any) keeps serving.
        """
        async with self._exclusive(name, "reloading" if force else "refreshing from its alias"):
            return await self._refresh(name, force)

    async def reload(self, name: str) -> Swap:
        """:meth:`refresh` with ``force``, for an admin: :class:`Busy` rather than a wait when
        another swap of ``name`` is under way."""
        async with self._exclusive(name, "reloading", ADMIN_WAIT_S):
            return await self._refresh(name, True)

    @contextlib.asynccontextmanager
    async def _exclusive(
        self, name: str, doing: str, wait_s: float | None = None
    ) -> AsyncIterator[None]:
        """Hold ``name``'s swap lock; :class:`Busy` (naming what holds it) after ``wait_s``."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with asyncio.timeout(wait_s):
                await lock.acquire()
        except TimeoutError:
            holder = self._doing.get(name, "another admin call")
            raise Busy(
                f"model {name!r} is busy ({holder}); nothing was done: retry when it is done"
            ) from None
        self._doing[name] = doing
        try:
            yield
        finally:
            self._doing.pop(name, None)
            lock.release()

    async def _refresh(self, name: str, force: bool) -> Swap:
        """:meth:`refresh` for a caller that holds ``name``'s lock."""
        version = await self._production(name)
        current = self._served.get(name)
        if current is not None and current.version == version and not force:
            self._problems.pop(name, None)
            return Swap(current, current)
        files = await asyncio.to_thread(self._files, name, version)
        failed = self._problems.get(name)
        if not force and failed and (failed.version, failed.files) == (version, files):
            raise LoadFailed(f"{name}@{version} failed to load: {failed.reason}")
        served = await self._build(name, version, files, record=True, again=force)
        return Swap(current, self._go_live(served))

    async def _production(self, name: str) -> int:
        """The version ``name``'s production alias names; its absence is recorded."""
        try:
            version = await asyncio.to_thread(self.registry.alias, name)
        except ModelNotFoundError:
            self._note(name, ModelProblem("not in the registry"))
            raise
        except RegistryError as exc:  # a corrupt alias file, a refused symlink
            reason = failure(exc)
            if isinstance(exc, AliasFileError):
                reason = f"its production alias cannot be read: {reason}"
            self._fail(name, ModelProblem(reason))
            raise
        if version is None:
            self._note(name, ModelProblem("has no production version"))
            raise ModelNotFoundError(f"model {name!r} has no production version")
        return version

    async def promote(self, name: str, version: int) -> Swap:
        """Check ``version`` loads and forecasts, then move the production alias and serve it.

        The alias moves only after the version proved itself, so a bad version never becomes
        production through this call.
        """
        async with self._exclusive(name, f"promoting version {version}", ADMIN_WAIT_S):
            previous = self._served.get(name)
            # Refused before seconds of loading when another writer (a retraining job
            # publishing, the CLI) holds the registry's lock; checked again as the alias moves.
            await asyncio.to_thread(self._check_writable, name)
            served = await self._build(name, version, (), record=False, again=True)
            await asyncio.to_thread(self.registry.promote, name, version, blocking=False)
            return Swap(previous, self._go_live(served))

    async def rollback(self, name: str) -> Swap:
        """Move the production alias back one step and serve the version it now names."""
        async with self._exclusive(name, "rolling back", ADMIN_WAIT_S):
            await asyncio.to_thread(self.registry.rollback, name, blocking=False)
            return await self._refresh(name, force=True)

    def _check_writable(self, name: str) -> None:
        """PublishLockedError (naming the holder) if another writer holds ``name``'s lock."""
        self.registry.versions(name)  # an unknown model: ModelNotFoundError, no lock file made
        with self.registry.lock(name, blocking=False):
            pass

    async def _build(
        self,
        name: str,
        version: int,
        files: tuple[tuple[Any, ...], ...],
        *,
        record: bool,
        again: bool,
    ) -> ServedModel:
        """Load, compile and check ``name@version``; a failure is logged, counted and (when
        ``record``: the alias names it) kept as the model's problem."""
        try:
            return await asyncio.to_thread(
                build_served, self.registry, name, version, self.batch_sizes
            )
        except ModelNotFoundError:
            raise
        except Exception as exc:
            problem = ModelProblem(
                f"version {version} failed to load: {failure(exc)}", version, files
            )
            self._fail(name, problem, record=record, again=again)
            raise LoadFailed(f"{name}@{version} failed to load: {failure(exc)}") from exc

    def _fail(
        self, name: str, problem: ModelProblem, *, record: bool = True, again: bool = False
    ) -> None:
        """Log and count a load failure once (the watcher meets the same one every poll)."""
        if record:
            if self._problems.get(name) == problem and not again:
                return
            self._problems[name] = problem
        log.error("model %s: %s", name, problem.reason)
        if self._on_failure is not None:
            self._on_failure(name)

    def _note(self, name: str, problem: ModelProblem) -> None:
        """Record why a model is not served that is not a failure (it is absent), logging it
        once for models that were asked for by name."""
        if self._problems.get(name) != problem:
            self._problems[name] = problem
            if name in (self.configured or self.required):
                log.warning("model %s: %s", name, problem.reason)

    def _files(self, name: str, version: int) -> tuple[tuple[Any, ...], ...]:
        """(name, size, time, inode) of each file of ``name@version``; empty if unlistable."""
        try:
            fs, path = fsspec.core.url_to_fs(self.registry.path(name, version))
            entries = fs.ls(path, detail=True)
        except Exception:
            return ()
        return tuple(
            sorted(
                (str(e["name"]), e.get("size"), str(e.get("mtime", e.get("created"))), e.get("ino"))
                for e in entries
            )
        )

    def _go_live(self, served: ServedModel) -> ServedModel:
        """The swap itself: one assignment, so a request sees either version, never a mix."""
        name, version = served.name, served.version
        previous = self._served.get(name)
        self._served[name] = served
        self._problems.pop(name, None)
        was = f" (was version {previous.version})" if previous is not None else ""
        log.info("model %s: serving version %d%s", name, version, was)
        if self._on_swap is not None:
            self._on_swap(name, version)
        return served

    async def watch(self, interval_s: float) -> None:
        """Poll the production aliases every ``interval_s`` and swap in versions that moved."""
        while True:
            await asyncio.sleep(interval_s)
            await self._refresh_each()
