"""Recording off the request path: a bounded queue, emptied by one writer thread in batches.

:meth:`Recorder.submit` is what a request pays: an append under a lock, or a drop when the queue
holds ``capacity`` forecasts already (those being written count: they are not written yet). The
writer wakes every ``flush_s`` (sooner when ``batch`` forecasts wait), writes everything queued
in one transaction, and applies the retention setting once an hour.

A brief outage costs nothing: when a flush fails for a reason that may pass (the database
refused the connection, lost it, is restarting, or a lock or statement timed out:
:attr:`StoreError.transient`), its forecasts stay queued and the writer tries again after
:data:`RETRY_FIRST_S`, doubling up to :data:`RETRY_MAX_S`, each time with whatever was queued
meanwhile. Forecasts are dropped only when the queue is full (``queue_full``), when a retry
fails more than ``stuck_s`` after they were queued, or when the database fails for any other
reason (``store_error`` either way), or at :meth:`Recorder.stop` when the database has not come
back within its grace. Forecasts go on being served regardless, every dropped record is counted
(``on_drop``), and the log says so once per incident, then once more when recording resumes.

A record the database cannot take (an unreadable stamp, an id it refuses) is dropped alone
(``bad_record``, logged once per record): the others of its flush are written. The thread
survives whatever a flush or a purge raises (``internal_error``, logged with its traceback);
:attr:`Recorder.down` says why recording is not working, for ``/readyz`` and the
``forecaster_recording_up`` gauge. A process killed outright loses at most what is queued: at
most ``capacity`` forecasts, in steady state the last ``flush_s`` seconds' worth.
"""

from __future__ import annotations

import logging
import math
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
# A flush that failed transiently is tried again after this, then after twice as long each time,
# up to RETRY_MAX_S: a restarting database is written to within about RETRY_MAX_S of answering
# again, and one that stays down costs a failed connection every RETRY_MAX_S.
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0


class Recorder:
    """Writes :class:`RecordBatch` es to ``store`` from a thread of its own.

    Args:
        capacity: most forecasts queued (waiting or being written); beyond it new ones are
            dropped (``queue_full``).
        flush_s: longest a record waits before it is written.
        batch: forecasts that wake the writer before ``flush_s``.
        retention_days: forecasts and actuals older than this are deleted (None: kept).
        stuck_s: how long recording holds on while the database does not take a flush: a flush
            waiting on it longer makes recording "down" (a database that stopped answering
            without refusing: nothing fails, it waits), and forecasts that a flush failing
            transiently has not written this long after they were queued are dropped
            (``store_error``).
        on_write: called with the number of forecasts written by each flush.
        on_drop: called with ``(reason, count)``: ``queue_full`` (the queue is full: the store
            is slow, or down for a while), ``store_error`` (it is down for longer than
            ``stuck_s``, or failed for a reason a retry cannot cure), ``bad_record`` (one record
            it cannot take) or ``internal_error`` (a fault of ours; logged with its traceback).
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
        # (time.monotonic() when queued, batch), oldest first. Only the writer removes entries
        # (from the left, once written or dropped); submit only appends.
        self._queue: deque[tuple[float, RecordBatch]] = deque()
        self._queued = 0  # forecasts in the queue, those being written included
        self._wake = threading.Condition()
        self._stopping = False
        self._stop_by = math.inf  # time.monotonic() by which stop() wants the thread gone
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the incident being logged, if any
        self._down: str | None = None  # why the last flush failed; None after one succeeds
        self._flushing_since: float | None = None  # time.monotonic() of the write under way
        self._retry_in: float | None = None  # the wait before retrying a failed flush
        self._retry_at: float | None = None  # time.monotonic() of that retry
        self._dropped_in_incident = 0
        self._next_purge = 0.0

    @property
    def queued(self) -> int:
        """Forecasts not written yet (waiting, being written, or waiting for a retry)."""
        return self._queued

    @property
    def failing(self) -> str | None:
        """The incident being logged (the database failing, records being dropped), if any."""
        return self._failing

    @property
    def down(self) -> str | None:
        """Why recording is not working (its thread stopped, the last flush failed, or one has
        waited on the database for over ``stuck_s``), in words fit for clients; None while it
        works."""
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
                self._queue.append((time.monotonic(), batch))
                self._queued += n
                if self._queued >= self.batch:
                    self._wake.notify()
        if dropped:
            self._drop("queue_full", n, "the recording queue is full (the database is slow)")
        return not dropped

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread. While the database fails transiently the
        writer goes on retrying for up to ``timeout_s``; then what is still queued is dropped
        (``store_error``)."""
        with self._wake:
            self._stopping = True
            self._stop_by = time.monotonic() + timeout_s
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            self._wait()
            with self._wake:
                stopping = self._stopping
            if stopping and self._retry_at is not None and self._retry_at >= self._stop_by:
                self._give_up()  # the next try would come after stop()'s grace
                return
            self._flush()
            try:
                self._purge_when_due()
            except Exception:  # the retention is retried next hour; recording goes on
                log.exception("forecast recording: retention not applied")
            if stopping and self._retry_at is None:
                return

    def _wait(self) -> None:
        """Until the next flush is due (or, while retrying, stop() wants the thread gone before
        the next try would come)."""
        with self._wake:
            if self._retry_at is not None:  # a full queue does not hasten a retry
                while self._retry_at < self._stop_by:
                    left = self._retry_at - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
            elif not self._stopping and self._queued < self.batch:
                self._wake.wait(self.flush_s)

    def _flush(self) -> None:
        with self._wake:
            entries = list(self._queue)
        if not entries:  # all that a failing flush held was dropped: nothing left to retry
            self._retry_in = self._retry_at = None
            return
        batches = [b for _, b in entries]
        n = sum(len(b.records) for b in batches)
        self._flushing_since = time.monotonic()
        try:
            done = self.store.write(batches)
        except StoreError as exc:
            self._down = exc.public
            if exc.transient:
                self._retry_later(entries, exc)
            else:
                self._retry_in = self._retry_at = None
                self._remove(len(entries), n)
                self._drop("store_error", n, str(exc))
            return
        except Exception as exc:  # a fault of ours: these records are lost, the thread lives
            self._down = "recording failed (see the service's log)"
            self._retry_in = self._retry_at = None
            self._remove(len(entries), n)
            if self._failing is None:
                log.exception("forecast recording failed")
            self._drop("internal_error", n, f"recording failed: {exc!r}")
            return
        finally:
            self._flushing_since = None
        self._remove(len(entries), n)
        self._down = None
        self._retry_in = self._retry_at = None
        self._recovered()
        self._rejected(done.rejected)
        self._on_write(done.stored)

    def _retry_later(self, entries: list[tuple[float, RecordBatch]], exc: StoreError) -> None:
        """Keep ``entries`` queued for the next try, but those queued over ``stuck_s`` ago."""
        if self._failing is None:
            self._failing = str(exc)
            log.warning("forecast recording: %s; retrying (forecasts stay queued, up to %d of "
                        "them, each for up to %g s)", exc, self.capacity, self.stuck_s)  # fmt: skip
        too_old = time.monotonic() - self.stuck_s
        expired = [b for queued_at, b in entries if queued_at < too_old]  # the oldest first
        if expired:
            n = sum(len(b.records) for b in expired)
            self._remove(len(expired), n)
            self._drop("store_error", n, f"{exc} (for over {self.stuck_s:g} s)")
        self._retry_in = (
            RETRY_FIRST_S if self._retry_in is None else min(2 * self._retry_in, RETRY_MAX_S)
        )
        self._retry_at = time.monotonic() + self._retry_in

    def _give_up(self) -> None:
        """At the end of stop()'s grace: what the database never took is dropped."""
        with self._wake:
            n = self._queued
            self._queue.clear()
            self._queued = 0
        if n:
            self._on_drop("store_error", n)
            log.warning("forecast recording stopped: %d forecasts were not recorded (%s)", n,
                        self._down)  # fmt: skip

    def _remove(self, entries: int, forecasts: int) -> None:
        """Take the oldest ``entries`` (``forecasts`` in all) off the queue: written or dropped."""
        with self._wake:
            for _ in range(entries):
                self._queue.popleft()
            self._queued -= forecasts

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
        if self._dropped_in_incident == 0:
            self._failing = self._failing or why
            log.warning("forecast recording: %s; dropping records until it recovers", why)
        self._dropped_in_incident += n

    def _recovered(self) -> None:
        if self._failing is None:
            return
        if self._dropped_in_incident:
            log.warning(
                "forecast recording resumed; %d forecasts were dropped meanwhile",
                self._dropped_in_incident,
            )
        else:
            log.warning("forecast recording resumed; no forecast was dropped")
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
