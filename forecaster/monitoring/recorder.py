"""Recording off the request path: a bounded queue, emptied by one writer thread in batches.

:meth:`Recorder.submit` is what a request pays: an append under a lock, or a drop when the queue
holds ``capacity`` forecasts already. The writer wakes every ``flush_s`` (sooner when
``batch`` forecasts wait), writes everything queued in one transaction, and applies the retention
setting once an hour. When the database is slow the queue fills and new records are dropped;
when it is down the batch in hand is dropped too. Either way forecasts go on being served, every
dropped record is counted (``on_drop``), and the log says so once per incident, then once more
when recording resumes. A record the database cannot take (an unreadable stamp, an id it
refuses) is dropped alone (``bad_record``, logged once per record): the others of its flush are
written. The thread survives whatever a flush or a purge raises (``internal_error``, logged with
its traceback); :attr:`Recorder.down` says why recording is not working, for ``/readyz`` and the
``forecaster_recording_up`` gauge. A process killed outright loses at most what is queued: at
most ``capacity`` forecasts, in steady state the last ``flush_s`` seconds' worth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from forecaster.monitoring.records import RecordBatch, Rejected
from forecaster.monitoring.store import MonitoringStore, StoreError

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
# Characters of a series id quoted in the log (ids reach 256; a log line should not).
LOGGED_ID_CHARS = 64


class Recorder:
    """Writes :class:`RecordBatch` es to ``store`` from a thread of its own.

    Args:
        capacity: most forecasts waiting; beyond it new ones are dropped (``queue_full``).
        flush_s: longest a record waits before it is written.
        batch: forecasts that wake the writer before ``flush_s``.
        retention_days: forecasts and actuals older than this are deleted (None: kept).
        stuck_s: a flush waiting on the database longer than this makes recording "down"
            (a database that stopped answering without refusing: nothing fails, it waits).
        on_write: called with the number of forecasts written by each flush.
        on_drop: called with ``(reason, count)``: ``queue_full`` (the store is slow),
            ``store_error`` (it is down), ``bad_record`` (one record it cannot take) or
            ``internal_error`` (a fault of ours; logged with its traceback).
    """

    def __init__(
        self,
        store: MonitoringStore,
        *,
        capacity: int = 10_000,
        flush_s: float = 0.5,
        batch: int = 2_000,
        retention_days: float | None = None,
        stuck_s: float = 60.0,
        on_write: Callable[[int], None] = lambda n: None,
        on_drop: Callable[[str, int], None] = lambda reason, n: None,
    ) -> None:
        self.store, self.capacity, self.flush_s, self.batch = store, capacity, flush_s, batch
        self.retention_days, self.stuck_s = retention_days, stuck_s
        self._on_write, self._on_drop = on_write, on_drop
        self._queue: deque[RecordBatch] = deque()
        self._queued = 0  # forecasts in the queue
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the incident being logged, if any
        self._down: str | None = None  # why the last flush failed; None after one succeeds
        self._flushing_since: float | None = None  # time.monotonic() of the write under way
        self._dropped_in_incident = 0
        self._next_purge = 0.0

    @property
    def queued(self) -> int:
        """Forecasts waiting to be written."""
        return self._queued

    @property
    def failing(self) -> str | None:
        """The incident being logged (records being dropped), if any."""
        return self._failing

    @property
    def down(self) -> str | None:
        """Why recording is not working (its thread stopped, or the last flush failed), in
        words fit for clients; None while it works."""
        thread = self._thread
        if thread is not None and not thread.is_alive() and not self._stopping:
            return "the recording thread has stopped"
        since = self._flushing_since
        if since is not None and time.monotonic() - since > self.stuck_s:
            return f"the database has not answered a flush for {time.monotonic() - since:.0f} s"
        return self._down

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forecast-recorder", daemon=True)
        self._thread.start()

    def submit(self, batch: RecordBatch) -> bool:
        """Queue ``batch`` for writing; False (and counted) when the queue is full."""
        n = len(batch.records)
        with self._wake:
            if self._queued + n > self.capacity:
                dropped = True
            else:
                dropped = False
                self._queue.append(batch)
                self._queued += n
                if self._queued >= self.batch:
                    self._wake.notify()
        if dropped:
            self._drop("queue_full", n, "the recording queue is full (the database is slow)")
        return not dropped

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (within ``timeout_s``), then stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stopping and self._queued < self.batch:
                    self._wake.wait(self.flush_s)
                stopping = self._stopping
            self._write(self._take())
            try:
                self._purge_when_due()
            except Exception:  # the retention is retried next hour; recording goes on
                log.exception("forecast recording: retention not applied")
            if stopping:
                return

    def _take(self) -> list[RecordBatch]:
        with self._wake:
            batches, self._queue, self._queued = list(self._queue), deque(), 0
        return batches

    def _write(self, batches: list[RecordBatch]) -> None:
        if not batches:
            return
        n = sum(len(b.records) for b in batches)
        self._flushing_since = time.monotonic()
        try:
            done = self.store.write(batches)
        except StoreError as exc:
            self._down = exc.public
            self._drop("store_error", n, str(exc))
            return
        except Exception as exc:  # a fault of ours: these records are lost, the thread lives
            self._down = "recording failed (see the service's log)"
            if self._failing is None:
                log.exception("forecast recording failed")
            self._drop("internal_error", n, f"recording failed: {exc!r}")
            return
        finally:
            self._flushing_since = None
        self._down = None
        self._recovered()
        self._rejected(done.rejected)
        self._on_write(done.stored)

    def _rejected(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        self._on_drop("bad_record", len(rejected))
        for r in rejected:
            log.warning("forecast recording: bad_record: the forecast of series %r (%s v%d) is "
                        "not recorded: %s", r.series_id[:LOGGED_ID_CHARS], r.model, r.version,
                        r.reason)  # fmt: skip

    def _drop(self, reason: str, n: int, why: str) -> None:
        self._on_drop(reason, n)
        self._dropped_in_incident += n
        if self._failing is None:
            self._failing = why
            log.warning("forecast recording: %s; dropping records until it recovers", why)

    def _recovered(self) -> None:
        if self._failing is not None:
            log.warning(
                "forecast recording resumed; %d forecasts were dropped meanwhile",
                self._dropped_in_incident,
            )
            self._failing, self._dropped_in_incident = None, 0

    def _purge_when_due(self) -> None:
        if self.retention_days is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=self.retention_days)
        try:
            forecasts, actuals = self.store.purge(cutoff)
        except StoreError as exc:
            log.warning("forecast recording: retention not applied: %s", exc)
            return
        if forecasts or actuals:
            log.info("retention: deleted %d forecasts and %d actuals", forecasts, actuals)
