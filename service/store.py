"""The models being served: loaded from the registry, warmed, validated, swapped atomically.

A request looks its model up once (:meth:`ModelStore.get`) and keeps that :class:`ServedModel`
until it answers, so swapping in a new version never disturbs a request in flight: the swap is
one dictionary assignment on the event loop. Loading, compiling and validating run on a helper
thread, and a version that fails any step is never swapped in; the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from forecaster.artifacts import LoadedModel
from forecaster.model import ModelConfig
from forecaster.predict import Predictor
from forecaster.registry import ModelNotFoundError, Registry

log = logging.getLogger(__name__)


class LoadFailed(Exception):
    """A model version could not be loaded, compiled or validated."""


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


def build_served(
    registry: Registry, name: str, version: int, batch_sizes: Sequence[int]
) -> ServedModel:
    """Load ``name@version``, compile every batch shape and check it forecasts finitely."""
    loaded = registry.load(name, version)
    predictor = Predictor(loaded.config, loaded.params, batch_sizes)
    predictor.warmup()
    _validate(predictor)
    return ServedModel(name, version, predictor, loaded)


def _validate(predictor: Predictor) -> None:
    """Refuse a model whose forecasts of ordinary and awkward series are not finite."""
    size, cfg = predictor.config.input_size, predictor.config
    t = np.arange(size, dtype=np.float64)
    probes = np.stack(
        [100 + 10 * np.sin(2 * np.pi * t / cfg.step), np.zeros(size), np.full(size, 1e12)]
    )
    out = predictor.predict(probes)
    arrays = [out.point, *out.quantiles.values()]
    if any(a.shape != (len(probes), cfg.horizon) or not np.isfinite(a).all() for a in arrays):
        raise LoadFailed("the model's forecasts of probe series are not finite")


class ModelStore:
    """Name -> the :class:`ServedModel` answering requests for it.

    Args:
      registry: where versions and the ``production`` alias live.
      batch_sizes: batch shapes each model is compiled for.
      names: models to serve; ``None`` serves every model with a production alias.
      on_swap: called with ``(name, version)`` after a version goes live (for metrics).
    """

    def __init__(
        self,
        registry: Registry,
        batch_sizes: Sequence[int],
        names: Sequence[str] | None = None,
        on_swap: Callable[[str, int], None] | None = None,
    ) -> None:
        self.registry = registry
        self.batch_sizes = tuple(batch_sizes)
        self._names = tuple(names) if names is not None else None
        self._on_swap = on_swap
        self._served: dict[str, ServedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, int] = {}  # last version that failed, not retried by the watcher
        self.started = False

    def get(self, name: str) -> ServedModel | None:
        return self._served.get(name)

    def served(self) -> dict[str, ServedModel]:
        return dict(self._served)

    async def names(self) -> list[str]:
        """Models this service serves: the configured ones, else all with a production alias."""
        if self._names is not None:
            return list(self._names)
        names = await asyncio.to_thread(self.registry.names)
        aliases = await asyncio.gather(*(asyncio.to_thread(self.registry.alias, n) for n in names))
        return [n for n, v in zip(names, aliases, strict=True) if v is not None]

    async def load_all(self) -> None:
        """Load every served model; one that fails is logged and retried by the watcher."""
        for name in await self.names():
            try:
                await self.refresh(name)
            except Exception:
                log.exception("could not load model %s", name)
        self.started = True

    async def refresh(self, name: str, *, force: bool = False) -> ServedModel:
        """Serve the version ``name``'s production alias points at, loading it if it is new.

        Raises:
          ModelNotFoundError: no such model, or it has no production alias.
          LoadFailed: the new version failed; the previous one (if any) keeps serving.
        """
        async with self._locks.setdefault(name, asyncio.Lock()):
            version = await asyncio.to_thread(self.registry.alias, name)
            if version is None:
                raise ModelNotFoundError(f"model {name!r} has no production version")
            current = self._served.get(name)
            if current is not None and current.version == version and not force:
                return current
            if not force and self._failed.get(name) == version:
                raise LoadFailed(f"{name}@{version} failed to load before")
            return await self._swap_in(name, version)

    async def promote(self, name: str, version: int) -> ServedModel:
        """Check ``version`` loads and forecasts, then move the production alias and serve it.

        The alias moves only after the version proved itself, so a bad version never becomes
        production through this call.
        """
        async with self._locks.setdefault(name, asyncio.Lock()):
            served = await self._build(name, version)
            await asyncio.to_thread(self.registry.promote, name, version)
            return self._go_live(served)

    async def rollback(self, name: str) -> ServedModel:
        """Move the production alias back one step and serve the version it now names."""
        await asyncio.to_thread(self.registry.rollback, name)
        return await self.refresh(name, force=True)

    async def _swap_in(self, name: str, version: int) -> ServedModel:
        return self._go_live(await self._build(name, version))

    async def _build(self, name: str, version: int) -> ServedModel:
        try:
            return await asyncio.to_thread(
                build_served, self.registry, name, version, self.batch_sizes
            )
        except ModelNotFoundError:
            raise
        except Exception as exc:
            self._failed[name] = version
            log.exception("loading %s@%d failed; keeping the version being served", name, version)
            raise LoadFailed(f"{name}@{version} failed to load: {exc}") from exc

    def _go_live(self, served: ServedModel) -> ServedModel:
        """The swap itself: one assignment, so a request sees either version, never a mix."""
        name, version = served.name, served.version
        self._served[name] = served
        self._failed.pop(name, None)
        log.info("serving %s@%d", name, version)
        if self._on_swap is not None:
            self._on_swap(name, version)
        return served

    async def watch(self, interval_s: float) -> None:
        """Poll the production aliases every ``interval_s`` and swap in versions that moved."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                names = await self.names()
            except Exception:
                log.exception("could not list the registry")
                continue
            for name in names:
                try:
                    await self.refresh(name)
                except (LoadFailed, ModelNotFoundError):
                    pass  # already logged, or the alias was removed: keep serving what we have
                except Exception:
                    log.exception("watching %s failed", name)
