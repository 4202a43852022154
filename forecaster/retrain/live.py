"""Live accuracy in retraining: ``--when degraded`` and the report's ``live`` section.

The production version's forecasts, recorded by the service and scored against the actuals
(:mod:`forecaster.monitoring`), are judged by :func:`forecaster.monitoring.health.check`: over the
window up to the latest actual that is not past the clock (``latest_actual`` in the report).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from forecaster.monitoring.urls import default_url


def live_accuracy(job: Any, version: int | None) -> dict[str, Any]:
    """The verdict on ``version`` of ``job.name`` and the figures behind it, as JSON; an
    ``error`` instead when there is no version or no reachable monitoring database."""
    if version is None:
        return {"version": None, "degraded": False, "reason": "no production version"}
    url = job.database_url or default_url(job.registry)
    if url is None:
        why = "no monitoring database for a registry behind a URL; set database_url"
        return {"version": version, "degraded": False, "error": why}
    from forecaster.monitoring import health
    from forecaster.monitoring.store import MonitoringStore, StoreError

    store = MonitoringStore(url)
    try:
        verdict = health.check(
            store,
            job.name,
            version,
            window=timedelta(days=job.live_window_days),
            margin=job.live_margin,
        )
    except StoreError as exc:
        return {"version": version, "degraded": False, "error": str(exc)}
    finally:
        store.close()
    return {
        "version": version,
        "degraded": verdict.degraded,
        "reason": verdict.reason,
        "window_days": job.live_window_days,
        "latest_actual": None if verdict.latest is None else verdict.latest.isoformat(),
        "margin": job.live_margin,
        "recent": _plain(verdict.recent),
        "before": _plain(verdict.baseline),
    }


def _plain(figures: Any) -> dict[str, Any] | None:
    return None if figures is None else dataclasses.asdict(figures)
