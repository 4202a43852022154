"""The service's side of forecast monitoring (:mod:`forecaster.monitoring`): what each answered
request records, actuals in, accuracy out, and the Prometheus figures of both.

Recording costs a request a :class:`RecordBatch` of references to arrays it already holds and
one queue append; the writer thread does the rest. Only series with an ``id`` and timestamps are
recorded: without them no actual could ever be matched to the forecast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

from forecaster.monitoring.accuracy import as_dict
from forecaster.monitoring.actuals import BadActual, checked_series
from forecaster.monitoring.recorder import Recorder
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore, StoreError
from forecaster.monitoring.times import BadTimestamp, instant
from forecaster.predict import Forecast
from forecaster.schemas import AccuracyResponse, ActualsRequest, ActualsResponse
from forecaster.settings import Settings
from service.catalog import season
from service.forecasting import Prepared, RequestError
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

# Unknown series named back in an actuals answer (the count covers them all).
UNKNOWN_IDS_SHOWN = 10
# How often the live-accuracy gauges are recomputed (and after every actuals request).
GAUGE_REFRESH_S = 60.0


class Monitor:
    """The store, its recorder (None when recording is off) and the gauges, for one app."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.max_abs_value = settings.max_abs_value  # actuals are held to the histories' bound
        self.store = MonitoringStore(settings.monitoring_url)
        self.recorder: Recorder | None = None
        if settings.recording:
            self.recorder = Recorder(
                self.store,
                capacity=settings.record_queue,
                flush_s=settings.record_flush_s,
                retention_days=settings.retention_days,
                on_write=metrics.recorded.inc,
                on_drop=lambda reason, n: metrics.record_dropped.labels(reason).inc(n),
            )
            metrics.record_queue.set_function(lambda: self.recorder.queued)  # type: ignore[union-attr]
        self._refresh = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
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
        self.store.close()

    # --------------------------------------------------------------------------- recording

    def record(self, prepared: Prepared, result: Forecast | None, horizon: int) -> None:
        """Queue the recordable forecasts of an answered request."""
        if self.recorder is None:
            return
        rows = prepared.rows()
        records = []
        for k, c in enumerate(prepared.series):
            if c.entry.id is None or c.future is None:
                continue
            if c.method == "model":
                assert result is not None
                point = result.point[rows[k], :horizon]
                bands = {q: v[rows[k], :horizon] for q, v in result.quantiles.items()}
            else:
                point, bands, _ = prepared.fallbacks[k]
            records.append(
                ForecastRecord(c.entry.id, c.method, c.future, point, c.cleaned.values, bands)
            )
        if records:
            served = prepared.served
            batch = RecordBatch(served.name, served.version, season(served), time.time(), records)
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

    def accuracy(
        self, model: str, version: int | None, since: str | None, until: str | None
    ) -> AccuracyResponse:
        """Live accuracy of ``model`` (blocking: run it off the event loop)."""
        bounds = [_instant(name, text) for name, text in (("since", since), ("until", until))]
        versions = self.store.accuracy(model, version=version, since=bounds[0], until=bounds[1])
        body = {"model": model, "since": since, "until": until}
        return AccuracyResponse.model_validate(body | {"versions": [as_dict(v) for v in versions]})

    # --------------------------------------------------------------------------- gauges

    async def _refresh_gauges(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._set_gauges)
            except StoreError as exc:
                log.debug("accuracy gauges not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), GAUGE_REFRESH_S)
            self._refresh.clear()

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


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return instant(text)
    except BadTimestamp as exc:
        raise RequestError(422, ("query", name), str(exc)) from None
