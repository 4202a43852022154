"""From a validated :class:`ForecastRequest` to the JSON body of its answer.

The checks that depend on the model or the settings live here (pydantic has already refused
non-numbers, non-finite numbers and missing fields); each failure is a :class:`RequestError` naming
the field, which the error handlers turn into a 4xx body. :func:`check_series` is the one place a
single series is checked against its model.

Event-loop time: a request of 1,000 series of 168 timestamps holds about 5 MB of JSON. Its
timestamps are parsed and continued many series per numpy call (:mod:`service.timestamps`), and
above ``OFF_LOOP_POINTS`` points the preparation and the rendering of the answer run on a helper
thread, in chunks of ``CHUNK`` series that let the GIL go in between (:func:`_chunked`), so the
loop keeps answering other clients while it works.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pydantic_core

from forecaster.frequency import same_frequency
from forecaster.predict import Forecast
from forecaster.schemas import ForecastRequest
from forecaster.settings import Settings
from service.batcher import MicroBatcher
from service.catalog import NoModelChosen, NotServed, choose_model
from service.store import ModelStore, ServedModel
from service.timestamps import Timeline, TimestampError, future_stamps, parse_timelines

Loc = tuple[str | int, ...]
T = TypeVar("T")
U = TypeVar("U")
# Requests with more history points than this are prepared and rendered off the event loop;
# below it the hand-over to a thread costs more than the work.
OFF_LOOP_POINTS = 20_000
# Series per step of that work: a few milliseconds each.
CHUNK = 64


class RequestError(Exception):
    """A request the service refuses: HTTP ``status``, the field ``loc`` and a message."""

    def __init__(self, status: int, loc: Loc, msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg, self.kind = status, loc, msg, kind


@dataclass(frozen=True)
class Entry:
    """One series as the request gave it; ``loc`` is where it sits in the body."""

    loc: Loc
    id: str | None
    history: list[float]
    timestamps: list[str] | None


@dataclass(frozen=True)
class Checked:
    """One series ready for the model: its input window and its forecast timestamps."""

    id: str | None
    window: np.ndarray  # [input_size] float64
    future: list[str] | None


@dataclass(frozen=True)
class Prepared:
    """A request every check has passed: its model, quantile levels and series."""

    served: ServedModel
    quantiles: list[float]
    series: list[Checked]


async def forecast(
    request: ForecastRequest, store: ModelStore, batcher: MicroBatcher, settings: Settings
) -> bytes:
    """The JSON body answering ``request``: one series' forecast, or every series' in order."""
    entries = _entries(request, settings)
    heavy = sum(len(e.history) for e in entries) > OFF_LOOP_POINTS
    prepared = await _run(heavy, prepare, request, entries, store, settings)
    windows = np.stack([s.window for s in prepared.series])
    result = await batcher.submit(prepared.served.predictor, windows)
    return await _run(heavy, render, request, prepared, result)


async def _run(heavy: bool, fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args) if heavy else fn(*args)


def _chunked(items: list[T], work: Callable[[list[T]], list[U]]) -> list[U]:
    """``work`` over ``items`` in chunks of ``CHUNK``, letting the GIL go between chunks: on the
    helper thread, an event loop waiting for it then runs at once, not after Python's 5 ms
    switch interval (numpy and pydantic-core hold the GIL while they run)."""
    out: list[U] = []
    for start in range(0, len(items), CHUNK):
        if start:
            time.sleep(0)
        out += work(items[start : start + CHUNK])
    return out


def _entries(request: ForecastRequest, settings: Settings) -> list[Entry]:
    if request.history is not None:
        return [Entry(("body",), None, request.history, request.timestamps)]
    assert request.series is not None  # the schema guarantees one of the two forms
    if len(request.series) > settings.max_series:
        msg = f"{len(request.series)} series given; at most {settings.max_series} per request"
        raise RequestError(422, ("body", "series"), msg, "too_long")
    return [
        Entry(("body", "series", i), s.id, s.history, s.timestamps)
        for i, s in enumerate(request.series)
    ]


def prepare(
    request: ForecastRequest, entries: list[Entry], store: ModelStore, settings: Settings
) -> Prepared:
    """Every check, before the model runs: timestamps, the model, horizon, quantiles, series."""
    timelines = _timelines(entries)
    freqs = {t.freq for t in timelines.values() if t.freq is not None}
    try:
        served = choose_model(store, request.model, freqs, settings.default_model)
    except NotServed as exc:
        raise RequestError(404, ("body", "model"), str(exc), "not_found") from None
    except NoModelChosen as exc:
        raise RequestError(422, ("body", "model"), str(exc), "missing") from None
    cfg = served.config
    if request.horizon > cfg.horizon:
        msg = f"horizon {request.horizon} exceeds the model's maximum of {cfg.horizon}"
        raise RequestError(422, ("body", "horizon"), msg)
    quantiles = _pick_quantiles(request.quantiles, cfg.quantiles)
    windows = _chunked(
        list(enumerate(entries)),
        lambda part: [check_series(e, timelines.get(i), served, settings) for i, e in part],
    )
    futures = _futures(entries, timelines, served, request.horizon)
    series = [
        Checked(e.id, w, futures.get(i))
        for i, (e, w) in enumerate(zip(entries, windows, strict=True))
    ]
    return Prepared(served, quantiles, series)


def _timelines(entries: list[Entry]) -> dict[int, Timeline]:
    """Each timestamped entry's parsed timeline, all parsed at once; 422 for the first bad one."""
    timed = [i for i, e in enumerate(entries) if e.timestamps is not None]
    if not timed:
        return {}
    parsed = _chunked([entries[i].timestamps or [] for i in timed], parse_timelines)
    out = {}
    for i, timeline in zip(timed, parsed, strict=True):
        if isinstance(timeline, TimestampError):
            raise _timestamp_error(entries[i], timeline)
        out[i] = timeline
    return out


def _timestamp_error(entry: Entry, exc: TimestampError) -> RequestError:
    loc = (*entry.loc, "timestamps")
    return RequestError(422, loc if exc.index is None else (*loc, exc.index), str(exc))


def check_series(
    entry: Entry, timeline: Timeline | None, served: ServedModel, settings: Settings
) -> np.ndarray:
    """The model's input window [input_size] for one series, or the RequestError naming what
    is wrong with it: length, magnitude, timestamps that do not match it or the model."""
    values = np.asarray(entry.history, dtype=np.float64)
    here = (*entry.loc, "history")
    size = served.config.input_size
    if len(values) > settings.max_history:
        msg = f"{len(values)} points given; at most {settings.max_history}"
        raise RequestError(422, here, msg, "too_long")
    if len(values) < size:
        msg = f"{len(values)} points given; the model needs at least {size}"
        raise RequestError(422, here, msg, "too_short")
    too_big = np.flatnonzero(np.abs(values) > settings.max_abs_value)
    if len(too_big):
        msg = f"|value| must be at most {settings.max_abs_value:g}"
        raise RequestError(422, (*here, int(too_big[0])), msg)
    if timeline is not None:
        _check_timeline(entry, timeline, len(values), served)
    return values[-size:]


def _check_timeline(entry: Entry, timeline: Timeline, points: int, served: ServedModel) -> None:
    loc = (*entry.loc, "timestamps")
    if len(timeline.times) != points:
        raise RequestError(
            422, loc, f"{len(timeline.times)} timestamps for {points} history points"
        )
    model_freq = served.freq
    if timeline.freq and model_freq and not same_frequency(timeline.freq, model_freq):
        msg = (
            f"the timestamps are at frequency {timeline.freq!r} but model {served.name!r} "
            f"forecasts {model_freq!r} data; send {model_freq!r} timestamps or pick a model"
        )
        raise RequestError(422, loc, msg, "frequency_mismatch")


def _futures(
    entries: list[Entry], timelines: dict[int, Timeline], served: ServedModel, horizon: int
) -> dict[int, list[str]]:
    """The forecast timestamps of every timestamped series (their frequency, else the model's)."""
    if not timelines:
        return {}
    order = list(timelines)
    freqs = [timelines[i].freq or served.freq for i in order]
    for i, freq in zip(order, freqs, strict=True):
        if freq is None:
            msg = "cannot tell the frequency from fewer than three timestamps"
            raise RequestError(422, (*entries[i].loc, "timestamps"), msg)
    stamps = _chunked(
        [(timelines[i], freq) for i, freq in zip(order, freqs, strict=True)],
        lambda part: future_stamps([t for t, _ in part], [f for _, f in part], horizon),  # type: ignore[misc]
    )
    out = {}
    for i, future in zip(order, stamps, strict=True):
        if isinstance(future, TimestampError):
            raise _timestamp_error(entries[i], future)
        out[i] = future
    return out


def _pick_quantiles(wanted: list[float] | None, offered: tuple[float, ...]) -> list[float]:
    """The model's quantile levels matching ``wanted``; 422 naming what is offered otherwise."""
    picked = []
    for i, q in enumerate(wanted or ()):
        match = next((o for o in offered if math.isclose(o, q, abs_tol=1e-9)), None)
        if match is None:
            msg = f"quantile {q} is not offered; the model offers {list(offered) or 'none'}"
            raise RequestError(422, ("body", "quantiles", i), msg)
        picked.append(match)
    return picked


# ------------------------------------------------------------------------------------ answers


def render(request: ForecastRequest, prepared: Prepared, result: Forecast) -> bytes:
    """The answer as JSON: plain lists of finite floats, serialised directly (pydantic's
    response validation plus the stdlib encoder would cost more than the model call)."""
    horizon, quantiles = request.horizon, prepared.quantiles
    answers = _chunked(
        list(enumerate(prepared.series)),
        lambda part: [_answer(result, i, s, horizon, quantiles) for i, s in part],
    )
    head = {"model": prepared.served.name, "version": prepared.served.version}
    if request.history is not None:
        return pydantic_core.to_json(answers[0] | head)
    forecasts = [
        {"id": str(i) if s.id is None else s.id} | a
        for i, (s, a) in enumerate(zip(prepared.series, answers, strict=True))
    ]
    # Serialised in pieces: each to_json call holds the GIL (see the module docstring).
    pieces = _chunked(forecasts, lambda part: [pydantic_core.to_json(part)[1:-1]])
    return b'{"forecasts":[' + b",".join(pieces) + b"]," + pydantic_core.to_json(head)[1:]


def _answer(
    result: Forecast, row: int, series: Checked, horizon: int, quantiles: list[float]
) -> dict[str, Any]:
    point = result.point[row, :horizon]
    bands = {q: result.quantiles[q][row, :horizon] for q in quantiles}
    if not all(np.isfinite(a).all() for a in [point, *bands.values()]):
        raise RuntimeError("the model produced non-finite forecasts")
    answer: dict[str, Any] = {"forecast": point.tolist()}
    if series.future is not None:
        answer["timestamps"] = series.future
    if quantiles:
        answer["quantiles"] = {str(q): v.tolist() for q, v in bands.items()}
    return answer
