"""Prometheus metrics of one app instance, and the ASGI middleware that records requests.

Each app owns its own :class:`CollectorRegistry`, so several apps in one process (tests) never
clash over metric names.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """Request counts and latencies by route and status, batch sizes, served versions, load
    failures per model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            # Raw paths of unmatched requests would give one series per scanner probe.
            label = getattr(route, "path", "unmatched")
            key = (scope["method"], label, str(status))
            self.metrics.requests.labels(*key).inc()
            self.metrics.latency.labels(*key).observe(time.perf_counter() - start)
