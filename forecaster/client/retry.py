"""When to try a call again, and how long to wait first."""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from forecaster.client.errors import AttemptResult


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again, and how long to wait first.

    Every call the client makes is idempotent (reads, and forecasts that change nothing), so a
    retry never does anything twice. Delays grow as ``backoff * 2**attempt`` up to ``max_delay``,
    each shortened by a random fraction up to ``jitter`` so that clients refused together do not
    come back together. A ``Retry-After`` header is honoured: the wait is at least that long, and
    when it is longer than ``max_delay`` the client gives up at once rather than wait.

    Attributes:
      retries: retries after the first attempt (0 turns retrying off).
      backoff: seconds before the first retry.
      max_delay: longest single wait, in seconds.
      jitter: fraction of each delay that is randomised, in [0, 1].
      statuses: answers worth retrying (the service is overloaded or starting up).
      exceptions: transport errors worth retrying (connection refused or reset, connect timeout).
        Read timeouts are not among them by default: a slow service gets
        slower if every late answer is asked for again.
      rng: source of the jitter (seed it for reproducible delays).
    """

    retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    statuses: frozenset[int] = frozenset({429, 503})
    exceptions: tuple[type[Exception], ...] = (
        httpx.NetworkError,
        httpx.ConnectTimeout,
        httpx.RemoteProtocolError,
    )
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_delay < 0:
            raise ValueError("retries, backoff and max_delay must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must lie in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, result: AttemptResult) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to stop here."""
        if attempt >= self.retries:
            return None
        if isinstance(result, Exception):
            return self.backoff_delay(attempt) if isinstance(result, self.exceptions) else None
        if result.status_code not in self.statuses:
            return None
        after = parse_retry_after(result.headers.get("retry-after"))
        if after is None:
            return self.backoff_delay(attempt)
        if after > self.max_delay:
            return None
        return after + self.jitter * self.rng.random() * self.backoff

    def backoff_delay(self, attempt: int) -> float:
        """The exponential delay for ``attempt``, with jitter."""
        base = min(self.max_delay, self.backoff * 2.0**attempt)
        return base * (1.0 - self.jitter * self.rng.random())


DEFAULT_RETRY = RetryPolicy()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
