"""Dynamic micro-batching: concurrent requests coalesced into one jitted call.

One request's model call costs about as much as a batch of dozens, so requests that arrive within
``max_wait_s`` of the first queued one (or while the worker is busy) share one call. The event
loop prepares the batch and dispatches it (:meth:`Predictor.dispatch`, about 0.2 ms for 16-30
series: host scaling, and JAX dispatches asynchronously) and a single worker thread waits for the
device, so the loop keeps parsing and answering while the model runs, and the model never runs
twice at once. Only the wait is on the thread because every time a thread takes the GIL back it
may wait for the loop to let it go: with the host work there too (scaling, one call per compiled
size, each releasing and retaking the GIL) a batch of 16 took 2.7 ms in the server against 0.9
alone, and forecasts/s at 32 connections were 10-15% lower (docs/results/serving.md).

The queue is bounded in series: beyond it, :meth:`submit` raises :class:`Overloaded` at once
rather than letting latency grow without bound.

A request of more than ``max_slice_series`` series runs in slices of that many, and after each
slice it goes to the back of the queue: a one-series request arriving behind a thousand-series
one waits for one slice (milliseconds), not for the whole of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from forecaster.covariates import Encoded
from forecaster.predict import Forecast, Predictor


class Overloaded(Exception):
    """The queue is full; the caller should retry later."""


@dataclass
class _Job:
    predictor: Predictor
    windows: np.ndarray  # [n, input_size] float64, left-padded (Predictor.windows)
    lengths: np.ndarray  # [n] real points at the end of each window
    future: asyncio.Future[Forecast]
    encoded: Encoded | None = None  # a covariate model's inputs, one row per window
    queued_at: float = field(default_factory=time.perf_counter)
    start: int = 0  # first row not yet handed to the model
    parts: list[Forecast] = field(default_factory=list)  # results of the slices run so far

    @property
    def left(self) -> int:
        return len(self.windows) - self.start


# Rows [start, stop) of one job, in one model call.
_Slice = tuple[_Job, int, int]


class MicroBatcher:
    """Coalesces :meth:`submit` calls into one :meth:`Predictor.dispatch` at a time, waited for on
    one thread.

    Args:
      max_wait_s: how long the oldest queued job may wait for company before its batch runs.
      max_batch_series: most series in one call.
      max_slice_series: a job of more series runs in slices of this many, others' jobs
        going first between its slices.
      max_queued_series: most series waiting or running before :class:`Overloaded`.
      on_batch: called with the number of series of every call (for metrics).
    """

    def __init__(
        self,
        *,
        max_wait_s: float = 0.0,
        max_batch_series: int = 256,
        max_slice_series: int = 64,
        max_queued_series: int = 4096,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.max_wait_s = max_wait_s
        self.max_batch_series = max_batch_series
        self.max_slice_series = min(max_slice_series, max_batch_series)
        self.max_queued_series = max_queued_series
        self._on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._pending = 0  # series queued or running
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None

    @property
    def pending_series(self) -> int:
        return self._pending

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop taking batches and release the worker thread (queued jobs are cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            job.future.cancel()
        self._jobs.clear()
        self._executor.shutdown(wait=True)

    async def submit(
        self,
        predictor: Predictor,
        windows: np.ndarray,
        lengths: np.ndarray | None = None,
        encoded: Encoded | None = None,
    ) -> Forecast:
        """Forecasts (full model horizon) for ``windows`` [n, input_size] as cut by
        :meth:`Predictor.windows`, whose last ``lengths`` [n] points are history (default: all),
        with their covariates ``encoded`` (:meth:`Predictor.encode`, [n] rows) when the model
        reads some, run with others."""
        n = len(windows)
        if self._pending and self._pending + n > self.max_queued_series:
            raise Overloaded(f"{self._pending} series already queued")
        if lengths is None:
            lengths = np.full(n, windows.shape[1], np.int64)
        future = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(predictor, windows, lengths, future, encoded))
        self._pending += n
        self._wakeup.set()
        try:
            result: Forecast = await future
            return result
        finally:
            self._pending -= n

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather_company()
            batch = self._take_batch()
            if not batch:
                continue
            windows = np.concatenate([job.windows[a:b] for job, a, b in batch])
            lengths = np.concatenate([job.lengths[a:b] for job, a, b in batch])
            if self._on_batch is not None:
                self._on_batch(len(windows))
            predictor = batch[0][0].predictor
            try:
                running = predictor.dispatch(windows, lengths, None, _encoded(batch))
                await loop.run_in_executor(self._executor, running.wait)
                result = predictor.collect(running)
            except Exception as exc:  # handed to every waiting request, which reports it
                for job, _, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            _deliver(batch, result)
            # A big job's next slice waits behind whatever arrived while this call ran.
            self._jobs.extend(job for job, _, _ in batch if job.left and not job.future.done())

    async def _gather_company(self) -> None:
        """Wait until the oldest job has waited ``max_wait_s`` or a full batch is queued."""
        waited = time.perf_counter() - self._jobs[0].queued_at
        if waited < self.max_wait_s and self._queued_series() < self.max_batch_series:
            await asyncio.sleep(self.max_wait_s - waited)

    def _queued_series(self) -> int:
        return sum(job.left for job in self._jobs)

    def _take_batch(self) -> list[_Slice]:
        """The oldest job (or its next slice, when it is big) plus following jobs for the same
        model that fit whole, up to ``max_batch_series`` rows."""
        while self._jobs and self._jobs[0].future.done():  # its client went away, or it failed
            self._jobs.popleft()
        if not self._jobs:
            return []
        first = self._jobs.popleft()
        if first.left > self.max_slice_series:
            return [self._slice(first)]
        size = first.left
        batch = [self._whole(first)]
        while self._jobs:
            job = self._jobs[0]
            if (
                job.future.done()
                or job.predictor is not first.predictor
                or job.left > self.max_slice_series
                or size + job.left > self.max_batch_series
            ):
                break
            self._jobs.popleft()
            size += job.left
            batch.append(self._whole(job))
        return batch

    def _slice(self, job: _Job) -> _Slice:
        """The next ``max_slice_series`` rows of ``job`` (it is queued again once they ran)."""
        start, stop = job.start, job.start + self.max_slice_series
        job.start = stop
        return job, start, stop

    @staticmethod
    def _whole(job: _Job) -> _Slice:
        start, job.start = job.start, len(job.windows)
        return job, start, len(job.windows)


def _encoded(batch: list[_Slice]) -> Encoded | None:
    """The covariate rows of a batch (its jobs share one model: all have them or none)."""
    parts = [(job.encoded, a, b) for job, a, b in batch if job.encoded is not None]
    if not parts:
        return None
    return Encoded(*(np.concatenate([e[f][a:b] for e, a, b in parts]) for f in range(3)))


def _deliver(batch: list[_Slice], result: Forecast) -> None:
    """Split one call's rows back into each job's slices; a job is answered once complete."""
    offset = 0
    for job, start, stop in batch:
        rows = slice(offset, offset + stop - start)
        offset += stop - start
        if job.future.done():  # a client that went away cancelled its future
            continue
        job.parts.append(
            Forecast(
                point=result.point[rows],
                quantiles={q: v[rows] for q, v in result.quantiles.items()},
            )
        )
        if stop == len(job.windows):
            job.future.set_result(_joined(job.parts))


def _joined(parts: list[Forecast]) -> Forecast:
    if len(parts) == 1:
        return parts[0]
    return Forecast(
        point=np.concatenate([p.point for p in parts]),
        quantiles={q: np.concatenate([p.quantiles[q] for p in parts]) for q in parts[0].quantiles},
    )
