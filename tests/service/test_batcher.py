"""The micro-batcher: coalescing, order, errors, and the bounded queue (503 + Retry-After)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest

from forecaster.predict import Forecast
from service.app import create_app
from service.batcher import MicroBatcher, Overloaded
from tests.service.conftest import make_settings


class FakePredictor:
    """Forecasts each window's first value; records the batch sizes it was called with. Its
    "device" waits at ``delay`` (on the batcher's worker thread) and fails there if ``fail``."""

    def __init__(self, fail: bool = False, delay: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.gate = delay
        self.dispatched_on: list[threading.Thread] = []
        self.waited_on: list[threading.Thread] = []

    def dispatch(
        self, windows: np.ndarray, lengths: np.ndarray, horizon: None, encoded: None
    ) -> FakeRunning:
        """What the batcher calls on the event loop: every row comes with its length (and no
        covariates: this model reads none)."""
        assert lengths.shape == (len(windows),) and horizon is None and encoded is None
        self.calls.append(len(windows))
        self.dispatched_on.append(threading.current_thread())
        return FakeRunning(self, windows)

    def collect(self, running: FakeRunning) -> Forecast:
        point = np.repeat(running.windows[:, :1], 3, axis=1)
        return Forecast(point=point, quantiles={0.5: point + 1})


class FakeRunning:
    def __init__(self, predictor: FakePredictor, windows: np.ndarray) -> None:
        self.predictor, self.windows = predictor, windows

    def wait(self) -> None:
        self.predictor.waited_on.append(threading.current_thread())
        if self.predictor.gate is not None:
            self.predictor.gate.wait(5)
        if self.predictor.fail:
            raise RuntimeError("boom")


def _rows(*values: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in values])


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    async def go():
        batcher = MicroBatcher(max_wait_s=0.05)
        batcher.start()
        fake = FakePredictor()
        results = await asyncio.gather(*(batcher.submit(fake, _rows(i, i + 0.5)) for i in range(5)))
        await batcher.stop()
        return fake, results

    fake, results = asyncio.run(go())
    assert fake.calls == [10]
    # Prepared and dispatched on the event loop; only the wait for the device is on the worker.
    assert fake.dispatched_on == [threading.main_thread()]
    assert len(fake.waited_on) == 1 and fake.waited_on[0] is not threading.main_thread()
    for i, r in enumerate(results):
        assert r.point[:, 0].tolist() == [i, i + 0.5]
        assert r.quantiles[0.5][:, 0].tolist() == [i + 1, i + 1.5]


def test_batches_are_capped_and_models_not_mixed():
    async def go():
        batcher = MicroBatcher(max_wait_s=0.05, max_batch_series=4)
        batcher.start()
        a, b = FakePredictor(), FakePredictor()
        jobs = [batcher.submit(a, _rows(1, 2, 3)), batcher.submit(a, _rows(4, 5))]
        jobs += [batcher.submit(b, _rows(6)), batcher.submit(a, _rows(7))]
        await asyncio.gather(*jobs)
        await batcher.stop()
        return a.calls, b.calls

    a_calls, b_calls = asyncio.run(go())
    assert a_calls == [3, 2, 1] and b_calls == [1]


def test_a_big_job_runs_in_slices_and_lets_a_small_one_in_between():
    async def go():
        gate = threading.Event()
        batcher = MicroBatcher(max_wait_s=0, max_batch_series=8, max_slice_series=4)
        batcher.start()
        fake = FakePredictor(delay=gate)
        big = asyncio.ensure_future(batcher.submit(fake, _rows(*range(10))))
        await asyncio.sleep(0.05)  # its first slice is running (held at the gate)
        small = asyncio.ensure_future(batcher.submit(fake, _rows(100)))
        await asyncio.sleep(0.01)
        gate.set()
        first, _ = await asyncio.wait({big, small}, return_when=asyncio.FIRST_COMPLETED)
        results = await big, await small
        await batcher.stop()
        return fake.calls, first == {small}, results

    calls, small_first, (big, small) = asyncio.run(go())
    assert calls == [4, 1, 4, 2]  # a slice, the small job, then the rest in slices
    assert small_first
    assert big.point[:, 0].tolist() == list(range(10))  # reassembled in order
    assert big.quantiles[0.5][:, 0].tolist() == [v + 1 for v in range(10)]
    assert small.point[:, 0].tolist() == [100]


def test_a_failed_call_fails_its_requests_only():
    async def go():
        batcher = MicroBatcher(max_wait_s=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(FakePredictor(fail=True), _rows(1))
        ok = await batcher.submit(FakePredictor(), _rows(2))
        await batcher.stop()
        return ok

    assert asyncio.run(go()).point[0, 0] == 2


def test_full_queue_refuses_at_once():
    async def go():
        gate = threading.Event()
        batcher = MicroBatcher(max_wait_s=0, max_queued_series=3)
        batcher.start()
        slow = FakePredictor(delay=gate)
        first = asyncio.ensure_future(batcher.submit(slow, _rows(1, 2)))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.submit(slow, _rows(3, 4))
        gate.set()
        await first
        assert batcher.pending_series == 0
        await batcher.stop()

    asyncio.run(go())


def test_overload_is_503_with_retry_after(registry_root):
    settings = make_settings(registry_root, max_queued_series=2, max_batch_wait_ms=200)
    app = create_app(settings)
    body = {"history": [1.0] * 48, "horizon": 1}

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
                return await asyncio.gather(
                    *(client.post("/v1/forecast", json=body) for _ in range(6))
                )

    responses = asyncio.run(go())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 503, 503, 503, 503]
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "overloaded" in refused.json()["detail"]
