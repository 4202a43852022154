"""Prometheus metrics of one app instance.

Each app owns its own :class:`CollectorRegistry`, so several apps in one process (tests) never
clash over metric names. Requests are reported by :class:`service.limits.BodyLimitMiddleware`
(one ASGI layer for limits and metrics) through :meth:`ServiceMetrics.observe_request`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import Scope

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """Request counts and latencies by route and status, batch sizes, served versions, load
    failures per model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.requests = Counter(
            "forecaster_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "forecaster_request_duration_seconds",
            "Time from request start to the end of the response.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "forecaster_batch_series",
            "Series per coalesced model call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "forecaster_model_version",
            "Version of each model being served.",
            ["model"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "forecaster_model_load_failures",
            "Failed attempts to load, compile or check a model version (or read its alias).",
            ["model"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "forecaster_overload_rejections",
            "Requests refused with 503 because the queue was full.",
            registry=self.registry,
        )

        self._monitoring_metrics()

    def _monitoring_metrics(self) -> None:
        r = self.registry
        self.recorded = Counter(
            "forecaster_forecasts_recorded",
            "Forecasts written to the monitoring store.",
            registry=r,
        )
        self.record_dropped = Counter(
            "forecaster_forecasts_record_dropped",
            "Forecasts not recorded: queue_full (the store is slow), store_error (it is down), "
            "bad_record (one record it cannot take) or internal_error (see the log).",
            ["reason"],
            registry=r,
        )
        self.record_queue = Gauge(
            "forecaster_record_queue", "Forecasts waiting to be recorded.", registry=r
        )
        self.recording_up = Gauge(
            "forecaster_recording_up",
            "1 while forecasts are being recorded; 0 when recording is down (/readyz says why).",
            registry=r,
        )
        self.actuals = Counter(
            "forecaster_actuals",
            "Actual values received: stored, or ignored (unknown_series: no recorded forecast).",
            ["outcome"],
            registry=r,
        )
        live = ["model", "version"]
        self.live_points = Gauge(
            "forecaster_live_points", "Recorded forecast points with an actual.", live, registry=r
        )
        self.live_smape = Gauge("forecaster_live_smape", "Live sMAPE (%).", live, registry=r)
        self.live_mase = Gauge("forecaster_live_mase", "Live MASE.", live, registry=r)
        self.live_mae = Gauge("forecaster_live_mae", "Live mean absolute error.", live, registry=r)
        self.live_naive_mase = Gauge(
            "forecaster_live_seasonal_naive_mase",
            "MASE of the seasonal naive forecast on the same points.",
            live,
            registry=r,
        )
        self.live_coverage = Gauge(
            "forecaster_live_coverage",
            "Share of actuals inside the widest interval recorded.",
            live,
            registry=r,
        )
        self.interval_coverage = Gauge(
            "forecaster_interval_coverage",
            "Share of actuals inside the interval of each level (nominal, percent).",
            [*live, "level"],
            registry=r,
        )
        self.interval_points = Gauge(
            "forecaster_interval_points",
            "Recorded forecast points with an actual and the interval of each level.",
            [*live, "level"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_request(self, scope: Scope, status: int, seconds: float) -> None:
        """Count and time one HTTP answer under its route template (not the raw path)."""
        route = scope.get("route")
        # Raw paths of unmatched requests would give one series per scanner probe.
        key = (scope["method"], getattr(route, "path", "unmatched"), status)
        children = self._children.get(key)
        if children is None:  # prometheus' labels() costs about 1 µs a call: look up once
            labels = (key[0], key[1], str(status))
            children = self._children[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)
