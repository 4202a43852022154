"""Live accuracy in retraining: ``--when degraded`` and the report's ``live`` section.

The production version's forecasts, recorded by the service and scored against the actuals
(:mod:`forecaster.monitoring`), are judged by :func:`forecaster.monitoring.health.check`: over the
window up to the latest actual that is not past the clock (``latest_actual`` in the report). The
window is counted in steps of the frequency the version's manifest records (``live_window_steps``,
by default :func:`~forecaster.monitoring.health.default_steps` of its horizon and seasonal
period), so a monthly model's is months and a yearly one's years; ``live_window_days`` asks for
calendar days instead, which is also what a version without a known frequency gets.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from forecaster.configs import ConfigError
from forecaster.frequency import frequency_key
from forecaster.monitoring.urls import monitoring_url
from forecaster.registry import ArtifactError, Manifest, Registry, RegistryError

if TYPE_CHECKING:  # the monitoring store's imports (SQLAlchemy) wait until a verdict is asked
    from forecaster.monitoring.health import Window
    from forecaster.retrain.jobs import Job


def live_window(job: Job, manifest: Manifest) -> Window:
    """The recent window for ``job`` judging the version of ``manifest`` (module docstring): a
    :class:`~forecaster.monitoring.health.Window`. ValueError when steps are asked of a version
    whose frequency is unknown."""
    from forecaster.monitoring.health import DEFAULT_DAYS, Window, default_steps

    if job.live_window_days:
        return Window(days=job.live_window_days)
    freq = manifest.freq
    key = None if freq is None else frequency_key(freq)
    if freq is None or key is None:
        if job.live_window_steps:
            raise ValueError(
                f"live_window_steps needs the model's frequency, and its manifest records "
                f"{'none' if freq is None else f'{freq!r}, which pandas does not know'}; "
                "give live_window_days instead"
            )
        return Window(days=DEFAULT_DAYS)
    step = timedelta(microseconds=key[1]) if key[0] == "us" else None
    steps = job.live_window_steps or default_steps(
        manifest.config.horizon, manifest.seasonality, step=step
    )
    return Window(steps=steps, freq=freq)


def live_accuracy(job: Job, registry: Registry, version: int | None) -> dict[str, Any]:
    """The verdict on ``version`` of ``job.name`` and the figures behind it, as JSON; an
    ``error`` instead when there is no version, no readable manifest or no reachable monitoring
    database. ``status`` is ``degraded``, ``not degraded`` or ``undecided`` (too few points)."""
    if version is None:
        return {"version": None, "degraded": False, "reason": "no production version"}
    try:
        url = monitoring_url(job.database_url, job.registry)
    except ConfigError as exc:
        return {"version": version, "degraded": False, "error": str(exc)}
    from forecaster.monitoring import health
    from forecaster.monitoring.store import MonitoringStore, StoreError

    try:
        window = live_window(job, registry.manifest(job.name, version))
    except (ArtifactError, RegistryError, ValueError) as exc:
        return {"version": version, "degraded": False, "error": str(exc)}
    store = MonitoringStore(url)
    try:
        verdict = health.check(
            store,
            job.name,
            version,
            window=window,
            margin=job.live_margin,
            coverage_margin=job.coverage_margin,
        )
    except StoreError as exc:
        return {"version": version, "degraded": False, "error": str(exc)}
    finally:
        store.close()
    return {
        "version": version,
        "status": verdict.status,
        "degraded": verdict.degraded,
        "reason": verdict.reason,
        "window": window.as_dict(),
        "window_start": _iso(verdict.start),  # exclusive: targets after it are recent
        "latest_actual": _iso(verdict.latest),
        "points": verdict.points,
        "min_points": health.MIN_POINTS,
        "margin": job.live_margin,
        "coverage_margin": job.coverage_margin,
        "recent": _plain(verdict.recent),
        "before": _plain(verdict.baseline),
    }


def _iso(t: Any) -> str | None:
    return None if t is None else t.isoformat()


def _plain(figures: Any) -> dict[str, Any] | None:
    return None if figures is None else dataclasses.asdict(figures)
