"""The service's side of forecast monitoring (:mod:`forecaster.monitoring`): what each answered
request records, actuals in, accuracy out, and the Prometheus figures of both.

Recording costs a request a :class:`RecordBatch` of references to arrays it already holds and
one queue append; the writer thread does the rest. Only series with an ``id`` and timestamps are
recorded: without them no actual could ever be matched to the forecast.

Accuracy queries run in threads of their own, at most ``accuracy_concurrency`` at once (one
more answers 503 at once, with Retry-After), so however slow they get they never take the
threads that other routes share; each statement is cancelled after ``database_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from forecaster.calibration import level_key
from forecaster.monitoring import adaptive
from forecaster.monitoring.accuracy import as_dict
from forecaster.monitoring.actuals import BadActual, checked_series
from forecaster.monitoring.recorder import Recorder
from forecaster.monitoring.records import ForecastRecord, PastForecast, RecordBatch
from forecaster.monitoring.store import MonitoringStore, SchemaTooNew, StoreError
from forecaster.monitoring.times import BadTimestamp, instant
from forecaster.predict import Forecast
from forecaster.registry import ModelNotFoundError, Registry, RegistryError
from forecaster.schemas import (
    AccuracyResponse,
    AccuracyTimeline,
    ActualsRequest,
    ActualsResponse,
    Every,
    Readiness,
    SeriesRecord,
    SeriesSummary,
)
from service.batcher import Overloaded
from service.catalog import NotServed, StartupError
from service.forecasting import Prepared, RequestError
from service.metrics import ServiceMetrics
from service.settings import Settings

log = logging.getLogger(__name__)

# Unknown series named back in an actuals answer (the count covers them all).
UNKNOWN_IDS_SHOWN = 10
# How often the live-accuracy gauges are recomputed (and after every actuals request).
GAUGE_REFRESH_S = 60.0
# Windows of an accuracy timeline: their length, and the most one answer holds.
EVERY = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
MAX_WINDOWS = 400

T = TypeVar("T")


class Monitor:
    """The store, its recorder (None when recording is off) and the gauges, for one app.
    Raises :class:`StoreError` for a database URL it cannot use."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.max_abs_value = settings.max_abs_value  # actuals are held to the histories' bound
        self.registry = Registry(settings.registry)
        self.store = MonitoringStore(settings.monitoring_url, timeout_s=settings.database_timeout_s)
        # One thread more than the queries admitted: the gauges' refresh never takes their turn.
        self._reads = ThreadPoolExecutor(
            settings.accuracy_concurrency + 1, thread_name_prefix="monitoring-read"
        )
        self._read_slots = threading.BoundedSemaphore(settings.accuracy_concurrency)
        self.read_limit = settings.accuracy_concurrency
        self.recorder: Recorder | None = None
        if settings.recording:
            recorder = self.recorder = Recorder(
                self.store,
                capacity=settings.record_queue,
                flush_s=settings.record_flush_s,
                retention_days=settings.retention_days,
                # Longer than any statement may run: the database stopped answering altogether.
                stuck_s=settings.database_timeout_s,
                on_write=metrics.recorded.inc,
                on_drop=lambda reason, n: metrics.record_dropped.labels(reason).inc(n),
            )
            metrics.record_queue.set_function(lambda: recorder.queued)
            metrics.recording_up.set_function(lambda: self.recording()[0] == "ok")
        # Models whose intervals are adjusted online, and the levels they are served at.
        self.adaptive = tuple(dict.fromkeys(settings.adaptive_intervals or ()))
        self.gamma = settings.adaptive_gamma
        self.adjustments = adaptive.Adjustments()
        self._refresh = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Prepare the schema, then start recording. A schema newer than this code fails
        start-up in one line; a database that is down only makes recording drop until it is up
        (forecasts are served regardless)."""
        try:
            await asyncio.to_thread(self.store.migrate)
        except SchemaTooNew as exc:
            raise StartupError(str(exc)) from None
        except StoreError as exc:
            log.warning(
                "%s (until it answers, recording retries for up to "
                "FORECASTER_DATABASE_TIMEOUT_S and accuracy answers 503)",
                exc,
            )
        if self.recorder is not None:
            self.recorder.start()
        self._task = asyncio.create_task(self._refresh_gauges(), name="accuracy-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.stop)
        self._reads.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def recording(self) -> tuple[str, str | None]:
        """``("ok" | "down" | "off", why it is down)``."""
        if self.recorder is None:
            return "off", None
        down = self.recorder.down
        return ("ok", None) if down is None else ("down", down)

    def readiness(self, ready: Readiness) -> Readiness:
        """``ready`` saying whether forecasts are being recorded. Recording down does not make
        the service unready: forecasts are still served, and every replica shares the database,
        so taking them out of rotation for it would stop the forecasts too."""
        state, why = self.recording()
        update: dict[str, object] = {"recording": state}
        if why is not None:
            update["detail"] = f"{ready.detail}; recording is down: {why}"
        return ready.model_copy(update=update)

    # --------------------------------------------------------------------------- recording

    def record(self, prepared: Prepared, result: Forecast | None, horizon: int) -> None:
        """Queue the recordable forecasts of an answered request."""
        if self.recorder is None:
            return
        records = []
        wanted = prepared.wanted
        intervals = dict(zip(wanted.levels, wanted.bounds, strict=True))  # as served
        for k, c in enumerate(prepared.series):
            if c.entry.id is None or c.future is None:
                continue
            point, bands = prepared.forecast(k, result, horizon)
            records.append(
                ForecastRecord(
                    c.entry.id, c.method, c.future, point, c.cleaned.values, bands, intervals
                )
            )
        if records:
            served = prepared.served
            batch = RecordBatch(
                served.name, served.version, served.seasonality, time.time(), records
            )
            self.recorder.submit(batch)

    # --------------------------------------------------------------------------- actuals

    def ingest(self, body: ActualsRequest) -> ActualsResponse:
        """Store ``body``'s actuals (blocking: run it off the event loop)."""
        series = []
        for i, s in enumerate(body.series):
            try:
                series.append(checked_series(s.id, s.timestamps, s.values, self.max_abs_value))
            except BadActual as exc:
                loc = ("body", "series", i, exc.field, exc.index)
                raise RequestError(422, loc, str(exc)) from None
        done = self.store.ingest(series)
        unknown = set(done.unknown_series)
        unknown_points = sum(len(s.values) for s in body.series if s.id in unknown)
        self.metrics.actuals.labels("stored").inc(done.stored)
        self.metrics.actuals.labels("unknown_series").inc(unknown_points)
        self._refresh.set()
        return ActualsResponse(
            stored=done.stored,
            matched=done.matched,
            unknown_series=len(done.unknown_series),
            unknown_ids=done.unknown_series[:UNKNOWN_IDS_SHOWN],
        )

    async def read(self, query: Callable[..., T], *args: object) -> T:
        """``query(*args)`` in the monitoring threads; :class:`Overloaded` (503 with
        Retry-After) at once when ``accuracy_concurrency`` queries are running already."""
        if not self._read_slots.acquire(blocking=False):
            raise Overloaded(f"{self.read_limit} accuracy queries are running; retry shortly")
        try:
            future = self._reads.submit(query, *args)
        except BaseException:
            self._read_slots.release()
            raise
        # Released when the query ends, not when the client goes: a query running on after
        # its client left still holds its thread.
        future.add_done_callback(lambda _: self._read_slots.release())
        return await asyncio.wrap_future(future)

    def accuracy(
        self, model: str, version: int | None, since: str | None, until: str | None
    ) -> AccuracyResponse:
        """Live accuracy of ``model`` (blocking: run it through :meth:`read`). 404 for a model
        neither recorded nor in the registry; 422 for an empty window."""
        bounds = [_instant(name, text) for name, text in (("since", since), ("until", until))]
        if bounds[0] is not None and bounds[1] is not None and bounds[0] >= bounds[1]:
            msg = "since must be before until (the window is [since, until))"
            raise RequestError(422, ("query", "since"), msg)
        versions = self.store.accuracy(model, version=version, since=bounds[0], until=bounds[1])
        if not versions and not self.store.has_model(model) and not self._registered(model):
            raise NotServed(f"no model named {model!r}")
        body = {"model": model, "since": since, "until": until}
        return AccuracyResponse.model_validate(body | {"versions": [as_dict(v) for v in versions]})

    def timeline(
        self, model: str, every: Every, version: int | None, since: str | None, until: str | None
    ) -> AccuracyTimeline:
        """Live accuracy of ``model`` window by window (each ``every`` long, aligned to UTC
        midnight, Mondays for weeks) over ``[since, until)``, by default the scored span
        (blocking: run it through :meth:`read`). 404 as :meth:`accuracy`; 422 for too many
        windows."""
        bounds = [_instant(name, text) for name, text in (("since", since), ("until", until))]
        span = self.store.scored_span(model)
        if span is None:
            if not self.store.has_model(model) and not self._registered(model):
                raise NotServed(f"no model named {model!r}")
            return AccuracyTimeline(model=model, every=every, windows=[])
        step = EVERY[every]
        first = _floor(bounds[0] or span[0], every)
        end = bounds[1] or span[1] + timedelta(microseconds=1)
        count = math.ceil((end - first) / step)
        if count > MAX_WINDOWS:
            msg = (f"{count} windows of one {every} (at most {MAX_WINDOWS}): choose a longer "
                   "`every` or a shorter since/until")  # fmt: skip
            raise RequestError(422, ("query", "every"), msg)
        starts = [first + k * step for k in range(max(count, 0) + 1)]
        per_window = self.store.accuracy_timeline(model, starts, version=version)
        windows = [
            {"start": a.isoformat(), "end": b.isoformat(), "versions": [as_dict(v) for v in vs]}
            for a, b, vs in zip(starts[:-1], starts[1:], per_window, strict=True)
        ]
        return AccuracyTimeline.model_validate({"model": model, "every": every, "windows": windows})

    def recent_series(self, model: str | None, limit: int) -> list[SeriesSummary]:
        """The series forecast most recently (blocking: run it through :meth:`read`)."""
        return [
            SeriesSummary(
                id=s.series_id,
                model=s.model,
                version=s.version,
                forecasts=s.forecasts,
                last_made_at=s.last_made_at.isoformat(),
                last_target=s.last_target.isoformat(),
            )
            for s in self.store.recent_series(model, limit=limit)
        ]

    def series(self, series_id: str, model: str | None, forecasts: int) -> SeriesRecord:
        """A series' actuals and recorded forecasts (blocking: run it through :meth:`read`);
        404 when neither is recorded."""
        times, values, made = self.store.series_record(series_id, model=model, forecasts=forecasts)
        if not times and not made:
            raise NotServed(f"no forecast or actual recorded for series {series_id!r}")
        body = {"id": series_id, "timestamps": [t.isoformat() for t in times], "actuals": values}
        return SeriesRecord.model_validate(body | {"forecasts": [_past(f) for f in made]})

    def _registered(self, model: str) -> bool:
        try:
            self.registry.versions(model)
        except ModelNotFoundError:
            return False
        except RegistryError:  # cannot tell: not a reason to say it does not exist
            return True
        return True

    # --------------------------------------------------------------------------- gauges

    async def _refresh_gauges(self) -> None:
        while True:
            try:
                await asyncio.wrap_future(self._reads.submit(self._refresh_once))
            except StoreError as exc:
                log.debug("accuracy gauges not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), GAUGE_REFRESH_S)
            self._refresh.clear()

    def _refresh_once(self) -> None:
        self._set_gauges()
        self._adapt()

    def _adapt(self) -> None:
        """Replay the coverage record of each adaptive model into the levels it is served at,
        logging each change."""
        for model in self.adaptive:
            levels: dict[int, dict[str, float]] = {}
            record = self.store.recent_coverage(model, last=adaptive.WINDOW)
            for (version, level), inside in record.items():
                effective = adaptive.effective_level(level, inside, self.gamma)
                levels.setdefault(version, {})[level_key(level)] = effective
            for version, served in levels.items():
                for c in self.adjustments.publish(model, version, served):
                    log.info(
                        "adaptive intervals: model %s version %d level %s%%: %g -> %g",
                        c.model, c.version, c.level, c.old, c.new,
                    )  # fmt: skip

    def _set_gauges(self) -> None:
        m = self.metrics
        for model in self.store.models():
            for v in self.store.accuracy(model):
                labels = (model, str(v.version))
                o = v.overall
                m.live_points.labels(*labels).set(o.points)
                for gauge, value in (
                    (m.live_smape, o.model.smape),
                    (m.live_mase, o.model.mase),
                    (m.live_mae, o.model.mae),
                    (m.live_naive_mase, o.seasonal_naive.mase),
                    (m.live_coverage, o.coverage),
                ):
                    if value is not None:
                        gauge.labels(*labels).set(value)
                for key, c in o.levels.items():
                    if c.coverage is not None:
                        m.interval_coverage.labels(*labels, key).set(c.coverage)
                    m.interval_points.labels(*labels, key).set(c.points)


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return instant(text)
    except BadTimestamp as exc:
        raise RequestError(422, ("query", name), str(exc)) from None


def _floor(t: datetime, every: Every) -> datetime:
    """``t`` down to its window's start: the hour, the day, or the Monday of its week."""
    if every == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if every == "week" else day


def _past(f: PastForecast) -> dict[str, object]:
    return {
        "model": f.model,
        "version": f.version,
        "made_at": f.made_at.isoformat(),
        "method": f.method,
        "timestamps": [t.isoformat() for t in f.targets],
        "forecast": f.point.tolist(),
        "intervals": {
            level_key(level): {"lower": lo.tolist(), "upper": hi.tolist()}
            for level, (lo, hi) in f.intervals.items()
        },
    }
