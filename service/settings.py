"""The service's settings: one object, read from ``FORECASTER_*`` environment variables.

Every knob of the forecast service lives here so the docs' table (docs/operations/settings.md),
``forecaster serve`` and ``uvicorn service.app:app`` all agree.
Example: ``FORECASTER_PORT=9000 FORECASTER_ADMIN_API_KEY=s3cret``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from forecaster.environment import DEFAULT_REGISTRY, PREFIX
from forecaster.histories import MAX_ABS_VALUE
from forecaster.monitoring.urls import monitoring_url
from forecaster.predict import DEFAULT_BATCH_SIZES


class Settings(BaseSettings):
    """Configuration of the forecast service (env prefix ``FORECASTER_``)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless told otherwise.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    registry: Path = Field(
        Path(DEFAULT_REGISTRY), description="Root directory of the model registry."
    )
    default_model: str | None = Field(
        None,
        description="Model for requests that name none (and whose timestamps match no other's "
        "frequency). Unset: the only served model, else m4-hourly if served, else none.",
    )
    models: list[str] | None = Field(
        None, description="Models to serve; None serves every model with a production alias."
    )
    wait_for_models: bool = Field(
        False,
        description="Wait (503 from /readyz) for a default model or listed models absent from "
        "the registry, instead of failing start-up.",
    )
    batch_sizes: tuple[int, ...] = Field(
        DEFAULT_BATCH_SIZES, description="Batch shapes compiled at start-up; nothing else compiles."
    )
    max_batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="How long the first queued request waits for others to join it (requests "
        "arriving while the model runs share its next call regardless).",
    )
    max_batch_series: int = Field(256, ge=1, description="Most series coalesced into one call.")
    max_slice_series: int = Field(
        64,
        ge=1,
        description="A request of more series runs in slices of this many, letting other "
        "requests in between (bounds what a big request adds to a small one's latency).",
    )
    max_queued_series: int = Field(
        4096, ge=1, description="Series waiting or running; beyond it requests get 503 at once."
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with overload 503s.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1, description="Request body limit (413).")
    max_series: int = Field(1000, ge=1, description="Most series in one request.")
    max_history: int = Field(10_000, ge=1, description="Most points in one history.")
    max_abs_value: float = Field(
        MAX_ABS_VALUE, gt=0, description="Largest accepted |value| in a history."
    )
    admin_api_key: SecretStr | None = Field(
        None, description="Key for the admin routes (X-API-Key header); None turns them off."
    )
    console: bool = Field(
        True, description="Serve the web console at / (static files reading the /v1 API)."
    )
    alias_watch_interval_s: float = Field(
        5.0, ge=0, description="How often the production aliases are polled; 0 turns it off."
    )
    compilation_cache_dir: Path | None = Field(
        Path(".jax_cache"), description="Persistent JAX compilation cache; None turns it off."
    )
    graceful_shutdown_s: float = Field(
        30.0, gt=0, description="How long SIGTERM waits for in-flight requests."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time to send a request's headers; then 408 and the connection closes.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Time to send a request's body after its headers; then 408."
    )
    send_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest a client may leave responses unread (the write buffer over its "
        "high-water mark); then the connection is closed and the buffer freed.",
    )
    keep_alive_s: float = Field(
        5.0, gt=0, description="An idle keep-alive connection is closed after this long."
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Request line and headers limit (431)."
    )
    max_connections: int | None = Field(
        512, ge=1, description="Open connections; requests on more get 503 (None: no cap)."
    )
    database_url: str | None = Field(
        None,
        description="Monitoring database (SQLAlchemy URL, e.g. postgresql://user@host/db); "
        "unset: SQLite in the registry directory (monitoring.sqlite3).",
    )
    recording: bool = Field(
        True, description="Record forecasts of series with an id and timestamps."
    )
    retention_days: float | None = Field(
        90.0,
        gt=0,
        le=36_500,
        description="Recorded forecasts and actuals older than this are deleted.",
    )
    record_queue: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Forecasts waiting to be recorded; beyond it they are dropped.",
    )
    record_flush_s: float = Field(
        0.5,
        gt=0,
        le=3600,
        description="Pause between the writer's batches; a forecast is written within this "
        "plus two batches' write time (the one under way when it was queued, then its own).",
    )
    database_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest one monitoring database statement may run (or wait for a lock); "
        "also how long the recorder keeps retrying a forecast the database failed to take "
        "(down, restarting, locked) before it drops it.",
    )
    accuracy_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Accuracy queries run at once (in threads of their own); more get 503 at once.",
    )
    adaptive_intervals: list[str] | None = Field(
        None,
        description="JSON list of models whose calibrated intervals are adjusted online from "
        "the actuals that arrive (adaptive conformal inference, each change logged); unset: "
        "none, the calibration is served as it is.",
    )
    adaptive_gamma: float = Field(
        0.005,
        gt=0,
        le=0.1,
        description="Step size of that adjustment: each scored point moves a level by at "
        "most 100 x this many points (widening on a miss, narrowing on a hit).",
    )

    @field_validator("default_model", "database_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        # `FORECASTER_DEFAULT_MODEL=` (as compose files pass an unset variable) means unset.
        return value if value and value.strip() else None

    @field_validator("registry", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        # An empty variable would be Path(""), the current directory: serving whatever lies there.
        return DEFAULT_REGISTRY if isinstance(value, str) and not value.strip() else value

    @field_validator("adaptive_intervals")
    @classmethod
    def _named(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not name.strip() for name in value):
            raise ValueError("adaptive_intervals must list model names")
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1:
            raise ValueError("batch_sizes must be positive integers")
        return tuple(sorted(set(value)))

    @property
    def monitoring_url(self) -> str:
        """Where forecasts are recorded: ``database_url``, else SQLite in the registry."""
        return monitoring_url(self.database_url, self.registry)


def settings_problem(err: ValidationError) -> str:
    """One line naming each rejected setting by its variable, with what was wrong: what
    ``forecaster serve`` prints instead of pydantic's report."""
    prefix = Settings.model_config.get("env_prefix", "")
    parts = []
    for e in err.errors():
        name = str(e["loc"][0]) if e["loc"] else "settings"
        given = "" if e.get("input") is None else f"={str(e['input'])[:60]}"
        parts.append(f"{prefix}{name.upper()}{given}: {e['msg']}")
    return "; ".join(parts)
