"""From a parsed request (:mod:`service.requests`) to the JSON body of its answer.

Every series is checked against its model (:func:`check_series`: size, magnitude, timestamps),
its missing values handled by the training policy (:mod:`forecaster.histories`: nulls and skipped
timestamps interpolated up to the model's ``max_gap`` in a row, 3 unless it was trained with
another, the history cut after a longer gap), and then forecast by
the model when it holds at least the model's ``min_input`` points (through the micro-batcher), else
by the statistical fallback (:mod:`forecaster.fallback`). Each answer says which (``method``) and
how many points were filled. Beyond the model's trained horizon the network is rolled forward on
its own forecasts (:mod:`forecaster.extend`): each block of the trained horizon is another pass
through the micro-batcher, queued behind whatever arrived meanwhile (as a big request's slices
are), and the answer says ``"extended": true``. A series that cannot be forecast gets its own
:class:`Problem`: in a ``series`` request the others are answered and the problems listed beside
them, unless ``strict``; a one-series request is refused (422). Checks of the whole request (the
model, the horizon, the levels and quantiles) still refuse it whole.

Intervals: every answer carries the ``levels`` asked (80% and 95% when the request names none)
and the ``quantiles`` asked. A calibrated model (:mod:`forecaster.calibration`) serves any of them,
from its model's table or, for a short history, its fallback method's; a model saved without
calibration serves only what its trained quantile heads (or the fallback's own bands at those
levels) give, and says so (``"calibrated": false``). For a model whose intervals are adjusted
online (``FORECASTER_ADAPTIVE_INTERVALS``, :mod:`forecaster.monitoring.adaptive`) a level is read
from the calibration at its effective level, and the answer names those (``"adjusted"``).

Event-loop time: a request of 1,000 series of 168 timestamps holds about 5 MB of JSON. Its
timestamps are parsed and continued many series per numpy call (:mod:`forecaster.timestamps`), and
above ``OFF_LOOP_POINTS`` points the preparation and the rendering of the answer run on a helper
thread, in chunks of ``CHUNK`` series that let the GIL go in between (:func:`_chunked`), so the
loop keeps answering other clients while it works.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import pydantic_core

from forecaster import calibration
from forecaster.calibration import (
    DEFAULT_LEVELS,
    NotOffered,
    level_key,
    level_quantiles,
    uncalibrated_intervals,
)
from forecaster.covariates import CovariateError, Encoded, SeriesInputs
from forecaster.extend import Roll
from forecaster.fallback import Fallback, Method, answering_method
from forecaster.frequency import same_frequency
from forecaster.histories import (
    Cleaned,
    Gap,
    GapTooLong,
    NoValues,
    beyond,
    clean_history,
    magnitude_rule,
    on_grid,
)
from forecaster.horizons import horizon_problem
from forecaster.predict import Forecast, Predictor
from forecaster.schemas import ForecastRequest, MinHistory
from forecaster.timestamps import Timeline, TimestampError, future_stamps, parse_timelines
from service.batcher import MicroBatcher
from service.catalog import NoModelChosen, NotServed, choose_model, min_history
from service.requests import Entry, Parsed, Problem, RequestError, RequestErrors
from service.settings import Settings
from service.store import ModelStore, ServedModel

__all__ = ["RequestError", "check_series", "forecast", "prepare", "render"]

T = TypeVar("T")
U = TypeVar("U")
# Requests with more history points than this are prepared and rendered off the event loop;
# below it the hand-over to a thread costs more than the work.
OFF_LOOP_POINTS = 20_000
# What one series costs beyond its points (checks, cleaning, a fallback), in points.
SERIES_COST = 50
# Series per step of that work: a few milliseconds each.
CHUNK = 64


@dataclass(frozen=True)
class Checked:
    """One series ready to forecast: the history it is forecast from and how it was read."""

    entry: Entry
    cleaned: Cleaned
    method: str  # "model", or the fallback method
    timeline: Timeline | None  # its timestamps up to the last point kept
    future: list[str] | None = None
    encoded: Encoded | None = None  # a covariate model's inputs for it (one row)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wanted:
    """The intervals a request gets: its ``levels`` (percent), each bounded by the quantiles
    ``bounds`` (as the model names them; those of its effective level where ``adjusted``), its
    explicit ``quantiles``, whether the model's calibration serves them (else its trained heads
    do), and the levels adjusted online (key -> the effective level read)."""

    levels: list[float]
    bounds: list[tuple[float, float]]
    quantiles: list[float]
    calibrated: bool
    adjusted: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def probs(self) -> list[float]:
        """Every quantile level the answer needs (asked for once per series)."""
        return sorted({*self.quantiles, *(q for pair in self.bounds for q in pair)})


@dataclass(frozen=True)
class Prepared:
    """A request every check has passed: its model, the intervals wanted, the series to
    forecast and the problems of the others; the model's input windows (``x`` [m, input_size],
    ``lengths`` [m]) of the series it answers, in order, and the fallback forecasts of the rest
    (whose positions are in ``calibrated_fallbacks`` when their bands are calibrated)."""

    served: ServedModel
    wanted: Wanted
    series: list[Checked]
    problems: list[Problem]
    x: np.ndarray
    lengths: np.ndarray
    fallbacks: dict[int, Fallback]  # position in ``series`` -> its forecast
    calibrated_fallbacks: frozenset[int] = frozenset()
    encoded: Encoded | None = None  # a covariate model's inputs, one row per window

    def calibrated(self, k: int) -> bool:
        """Whether series ``k``'s intervals and quantiles are calibrated."""
        return self.wanted.calibrated and (
            k not in self.fallbacks or k in self.calibrated_fallbacks
        )

    def modelled(self) -> list[np.ndarray]:
        """The histories the model answers, in the order of its windows."""
        return _modelled(self.series)

    @functools.cached_property
    def _rows(self) -> Sequence[int]:
        """Each series' row in the model's result (meaningless for fallback answers)."""
        if not self.fallbacks:
            return range(len(self.series))
        rows: list[int] = (np.cumsum([c.method == "model" for c in self.series]) - 1).tolist()
        return rows

    def forecast(
        self, k: int, result: Forecast | None, horizon: int
    ) -> tuple[np.ndarray, dict[float, np.ndarray]]:
        """Series ``k``'s answer, as sent and as recorded: its point forecast [horizon] and
        bands (level -> [horizon]; the model's heads, or every level :attr:`wanted` needs when
        calibrated; the fallback's those wanted) from the model's ``result`` for the whole
        request, or its fallback's."""
        fallback = self.fallbacks.get(k)
        if fallback is not None:
            return fallback.point, fallback.quantiles
        assert result is not None  # the model ran for every series it answers
        row = self._rows[k]
        return result.point[row, :horizon], {
            q: v[row, :horizon] for q, v in result.quantiles.items()
        }


def _modelled(series: list[Checked]) -> list[np.ndarray]:
    return [c.cleaned.values for c in series if c.method == "model"]


# Told of every answered request: what was prepared, the model's result, the horizon.
OnAnswer = Callable[[Prepared, Forecast | None, int], None]
# A model's (name, version) levels adjusted online: level key -> effective level.
Adjusted = Callable[[str, int], Mapping[str, float]]


async def forecast(
    parsed: Parsed,
    store: ModelStore,
    batcher: MicroBatcher,
    settings: Settings,
    on_answer: OnAnswer | None = None,
    adjusted: Adjusted | None = None,
) -> bytes:
    """The JSON body answering ``parsed``: one series' forecast, or every series' forecast or
    error in order (then ``on_answer`` is told: the service records it). Raises
    :class:`RequestError` or :class:`RequestErrors` when refused whole. ``adjusted`` gives
    the levels a model's intervals are served at when adjusted online."""
    request, entries = parsed.request, parsed.entries
    heavy = sum(len(e.history) + SERIES_COST for e in entries) > OFF_LOOP_POINTS
    prepared = await _run(heavy, prepare, request, entries, store, settings, adjusted)
    problems = sorted([*parsed.rejected, *prepared.problems], key=lambda p: p.entry.index or 0)
    if problems and request.history is not None:
        first = problems[0]
        raise RequestError(422, first.loc, first.msg, first.kind)
    if problems and request.strict:
        raise RequestErrors(422, [p.detail() for p in problems])
    result = None
    if len(prepared.x):
        predictor = prepared.served.predictor
        result = await _network(batcher, predictor, prepared, request.horizon, heavy)
        if predictor.blends:  # else no thread hop for a heavy request's no-op
            result = await _run(heavy, predictor.blend, prepared.modelled(), result)
        cal, probs = prepared.served.calibration, prepared.wanted.probs
        if prepared.wanted.calibrated and cal is not None and probs:
            result = await _run(heavy, calibration.bands, cal, prepared.modelled(), result, probs)
    body = await _run(heavy, render, request, prepared, result, problems)
    if on_answer is not None:
        on_answer(prepared, result, request.horizon)
    return body


async def _network(
    batcher: MicroBatcher, predictor: Predictor, prepared: Prepared, horizon: int, heavy: bool
) -> Forecast:
    """The network's forecast [m, horizon] of the series the model answers: one pass through
    the batcher, or one per block of the trained horizon rolled forward (:class:`Roll`)."""
    roll = Roll(prepared.modelled(), horizon, predictor.config.horizon)
    x, lengths = prepared.x, prepared.lengths
    while True:
        # A covariate model is never rolled (``prepare`` refuses its longer horizons).
        roll.add(await batcher.submit(predictor, x, lengths, prepared.encoded))
        pending = roll.pending()
        if pending is None:
            return roll.network()
        x, lengths = await _run(heavy, predictor.windows, pending)


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


def prepare(
    request: ForecastRequest,
    entries: list[Entry],
    store: ModelStore,
    settings: Settings,
    adjusted: Adjusted | None = None,
) -> Prepared:
    """Every check, before the model runs: timestamps, the model, horizon, quantiles, series;
    then the model's windows and the fallback forecasts."""
    timelines, problems = _timelines(entries)
    freqs = {t.freq for t in timelines.values() if t.freq is not None}
    try:
        served = choose_model(store, request.model, freqs, settings.default_model)
    except NotServed as exc:
        raise RequestError(404, ("body", "model"), str(exc), "not_found") from None
    except NoModelChosen as exc:
        raise RequestError(422, ("body", "model"), str(exc), "missing") from None
    cfg = served.config
    too_far = horizon_problem(request.horizon, cfg.horizon)
    if too_far is not None:
        raise RequestError(422, ("body", "horizon"), too_far)
    if served.predictor.covariates and request.horizon > cfg.horizon:
        msg = (
            f"model {served.name!r} reads covariates ({served.predictor.covariates.described()}) "
            f"and forecasts at most its trained horizon of {cfg.horizon} steps (it is not rolled "
            "forward on its own forecasts, which carry no covariates)"
        )
        raise RequestError(422, ("body", "horizon"), msg)
    online = adjusted(served.name, served.version) if adjusted is not None else {}
    wanted = _wanted(request, served, online)
    todo = [(i, e) for i, e in enumerate(entries) if i not in problems]
    least = min_history(served)
    outcomes = _chunked(
        todo,
        lambda part: [check_series(e, timelines.get(i), served, settings, least) for i, e in part],
    )
    checked = [c for c in outcomes if isinstance(c, Checked)]
    problems |= {i: p for (i, _), p in zip(todo, outcomes, strict=True) if isinstance(p, Problem)}
    checked, late = _with_futures(checked, served, request.horizon)
    outcomes = _chunked(checked, lambda part: [with_covariates(c, served, request.horizon)
                                                for c in part])  # fmt: skip
    checked = [c for c in outcomes if isinstance(c, Checked)]
    late += [p for p in outcomes if isinstance(p, Problem)]
    series = sorted(checked, key=lambda c: c.entry.index or 0)
    return _forecast_inputs(served, wanted, series, [*problems.values(), *late], request)


_ROLE_FIELDS = {"past": "past_covariates", "future": "future_covariates",
                "static": "static_covariates"}  # fmt: skip


def with_covariates(series: Checked, served: ServedModel, horizon: int) -> Checked | Problem:
    """``series`` with its covariates encoded for its model (``horizon`` steps asked), or the
    :class:`Problem` naming the covariate that is missing, misaligned or unknown (and the
    length expected). Covariates the forecast does not use are named in its warnings: sent to
    a model that reads none, or to a covariate model answering a short history by its
    statistical fallback."""
    spec, sent, entry = served.predictor.covariates, series.entry.covariates, series.entry
    if not spec:
        if sent is None:
            return series
        names = [f"{field} ({', '.join(values)})" for field, values in _sent(sent).items()]
        note = f"model {served.name!r} reads no covariates: {'; '.join(names)} not used"
        return dataclasses.replace(series, warnings=(note,))
    if series.method != "model":
        note = (
            f"answered by {series.method} from the history alone, without covariates: model "
            f"{served.name!r} reads {spec.described()} from histories of at least "
            f"{min_history(served).model} points"
        )
        return dataclasses.replace(series, warnings=(note,))
    inputs = sent or SeriesInputs()
    try:
        spec.check(0, len(entry.history), inputs, horizon)
    except CovariateError as exc:
        return _covariate_problem(entry, exc)
    problem = _aligned(series)
    if problem is not None:
        return problem
    values = series.cleaned.values
    start = series.cleaned.last + 1 - len(values)  # its first sent point
    cut = slice(start, series.cleaned.last + 1)
    timeline = series.timeline
    end = None if timeline is None else pd.Timestamp(int(timeline.times[-1]), unit="us")
    inputs = SeriesInputs(
        past={k: np.asarray(v, np.float64)[cut] for k, v in inputs.past.items()},
        future=inputs.future,
        static=inputs.static,
        end=end,
    )
    try:
        encoded = served.predictor.encode([values], [inputs], horizon)
    except CovariateError as exc:
        return _covariate_problem(entry, exc)
    return dataclasses.replace(series, encoded=encoded)


def _sent(inputs: SeriesInputs) -> dict[str, list[str]]:
    """The covariate names ``inputs`` carries, by request field."""
    fields = {"past_covariates": inputs.past, "future_covariates": inputs.future,
              "static_covariates": inputs.static}  # fmt: skip
    return {field: list(values) for field, values in fields.items() if values}


def _aligned(series: Checked) -> Problem | None:
    """Why ``series``' covariates cannot be lined up with the history it is forecast from:
    skipped timestamps (the covariates have no values there), or missing values at its end
    (the horizon's covariates start after the last point sent)."""
    entry = series.entry
    if series.timeline is not None and series.timeline.positions is not None:
        msg = (
            "the timestamps skip points of their grid: a model with covariates needs every "
            "step's point and covariates (send them, with null for a missing value)"
        )
        return Problem(entry, (*entry.loc, "timestamps"), msg)
    if series.cleaned.last != len(entry.history) - 1:
        msg = (
            "the history ends with missing values: a model with covariates forecasts the steps "
            "after the last point sent, whose covariates it is given; send its value"
        )
        return Problem(entry, (*entry.loc, "history", len(entry.history) - 1), msg)
    return None


def _covariate_problem(entry: Entry, exc: CovariateError) -> Problem:
    """The problem of ``entry`` a :class:`CovariateError` names, at the field it lies in."""
    role = exc.detail.split(" ", 1)[0]
    field = _ROLE_FIELDS.get(role)
    if exc.name == "timestamps":
        return Problem(entry, (*entry.loc, "timestamps"), exc.detail, "missing")
    if field is None:
        return Problem(entry, entry.loc, exc.detail)
    return Problem(entry, (*entry.loc, field, exc.name), exc.detail)


def _forecast_inputs(
    served: ServedModel,
    wanted: Wanted,
    series: list[Checked],
    problems: list[Problem],
    request: ForecastRequest,
) -> Prepared:
    """The model's windows of the series it answers, and the fallback's forecasts of the rest."""
    modelled = _modelled(series)
    x, lengths = np.zeros((0, served.config.input_size)), np.zeros(0, np.int64)
    if modelled:
        x, lengths = served.predictor.windows(modelled)
    rows = [c.encoded for c in series if c.method == "model" and c.encoded is not None]
    encoded = Encoded(*(np.concatenate(f) for f in zip(*rows, strict=True))) if rows else None
    seasonality = served.seasonality
    short = [(k, c) for k, c in enumerate(series) if c.method != "model"]
    if not short:
        return Prepared(served, wanted, series, problems, x, lengths, {}, encoded=encoded)
    cal = served.calibration if wanted.calibrated else None
    forecasts = _chunked(
        short,
        lambda part: [
            calibration.fallback_forecast(
                cal,
                c.cleaned.values,
                request.horizon,
                seasonality,
                wanted.probs,
                cast(Method, c.method),  # ``short`` holds only the fallbacks' series
            )
            for _, c in part
        ],
    )
    fallbacks = {k: f for (k, _), (f, _) in zip(short, forecasts, strict=True)}
    calibrated = frozenset(k for (k, _), (_, ok) in zip(short, forecasts, strict=True) if ok)
    return Prepared(served, wanted, series, problems, x, lengths, fallbacks, calibrated, encoded)


def _timelines(entries: list[Entry]) -> tuple[dict[int, Timeline], dict[int, Problem]]:
    """Each timestamped entry's parsed timeline, all parsed at once, or its problem."""
    timed = [i for i, e in enumerate(entries) if e.timestamps is not None]
    if not timed:
        return {}, {}
    parsed = _chunked([entries[i].timestamps or [] for i in timed], parse_timelines)
    timelines, problems = {}, {}
    for i, timeline in zip(timed, parsed, strict=True):
        if isinstance(timeline, TimestampError):
            problems[i] = _timestamp_problem(entries[i], timeline)
        else:
            timelines[i] = timeline
    return timelines, problems


def _timestamp_problem(entry: Entry, exc: TimestampError) -> Problem:
    loc = (*entry.loc, "timestamps")
    return Problem(entry, loc if exc.index is None else (*loc, exc.index), str(exc))


def check_series(
    entry: Entry,
    timeline: Timeline | None,
    served: ServedModel,
    settings: Settings,
    least: MinHistory,
) -> Checked | Problem:
    """One series read for its model (whose :func:`min_history` is ``least``), or the
    :class:`Problem` naming what is wrong with it: length, magnitude, timestamps that do not
    match it or the model, no value, a long gap."""
    values = np.array(entry.history, dtype=np.float64)  # null -> nan
    here = (*entry.loc, "history")
    if len(values) > settings.max_history:
        msg = f"{len(values)} points given; at most {settings.max_history}"
        return Problem(entry, here, msg, "too_long")
    too_big = beyond(values, settings.max_abs_value)
    if len(too_big):
        return Problem(entry, (*here, int(too_big[0])), magnitude_rule(settings.max_abs_value))
    sent = positions = None
    if timeline is not None:
        problem = _check_timeline(entry, timeline, len(values), served)
        if problem is not None:
            return problem
        if timeline.positions is not None:
            positions = timeline.positions
            values, sent = on_grid(values, positions, served.max_gap)
    try:
        cleaned = clean_history(
            values,
            sent=sent,
            positions=positions,
            min_after_gap=least.after_gap,
            max_gap=served.max_gap,
        )
    except NoValues as exc:
        return Problem(entry, here, str(exc), "no_values")
    except GapTooLong as exc:
        return Problem(entry, (*here, exc.gap.after), _gap_message(entry, exc), "gap_too_long")
    method = answering_method(len(cleaned.values), least.model, served.seasonality)
    if timeline is not None:
        timeline = dataclasses.replace(timeline, times=timeline.times[: cleaned.last + 1])
    return Checked(entry, cleaned, method, timeline)


def _gap_message(entry: Entry, exc: GapTooLong) -> str:
    gap = exc.gap
    where = f"history[{gap.before}] and history[{gap.after}]"
    if entry.timestamps is not None:
        where += f" ({entry.timestamps[gap.before]} and {entry.timestamps[gap.after]})"
    return (
        f"gap of {gap.missing} missing points between {where}: more than the {exc.max_gap} that "
        f"are interpolated, and the {exc.points_after} points after it are fewer than the "
        f"{exc.needed} needed to forecast from them; fill the gap or send only the points after it"
    )


def _check_timeline(
    entry: Entry, timeline: Timeline, points: int, served: ServedModel
) -> Problem | None:
    loc = (*entry.loc, "timestamps")
    if len(timeline.times) != points:
        return Problem(entry, loc, f"{len(timeline.times)} timestamps for {points} history points")
    model_freq = served.freq
    if timeline.freq and model_freq and not same_frequency(timeline.freq, model_freq):
        msg = (
            f"the timestamps are at frequency {timeline.freq!r} but model {served.name!r} "
            f"forecasts {model_freq!r} data; send {model_freq!r} timestamps or pick a model"
        )
        return Problem(entry, loc, msg, "frequency_mismatch")
    return None


def _with_futures(
    series: list[Checked], served: ServedModel, horizon: int
) -> tuple[list[Checked], list[Problem]]:
    """The series with the forecast timestamps of the timestamped ones (at their frequency, else
    the model's), and the problems of those whose future cannot be told or written."""
    timed = {k: c.timeline for k, c in enumerate(series) if c.timeline is not None}
    if not timed:
        return series, []
    problems = []
    freqs: dict[int, str] = {}
    for k, timeline in timed.items():
        freq = timeline.freq or served.freq
        if freq is None:
            msg = "cannot tell the frequency from fewer than three timestamps"
            problems.append(Problem(series[k].entry, (*series[k].entry.loc, "timestamps"), msg))
        else:
            freqs[k] = freq
    order = list(freqs)
    stamps = _chunked(
        [(timed[k], freqs[k]) for k in order],
        lambda part: future_stamps([t for t, _ in part], [f for _, f in part], horizon),
    )
    out = list(series)
    for k, future in zip(order, stamps, strict=True):
        if isinstance(future, TimestampError):
            problems.append(_timestamp_problem(series[k].entry, future))
        else:
            out[k] = dataclasses.replace(series[k], future=future)
    return [c for c in out if c.timeline is None or c.future is not None], problems


def _wanted(request: ForecastRequest, served: ServedModel, online: Mapping[str, float]) -> Wanted:
    """The levels (80 and 95 unless the request names its own) and quantiles to answer with:
    any, from a calibrated model (each read at its effective level where ``online`` adjusts
    it); else only those its quantile heads give, and asking for another is refused (422
    naming it) while a default level it cannot give is left out."""
    levels = list(DEFAULT_LEVELS) if request.levels is None else list(request.levels)
    quantiles = list(request.quantiles or ())
    if served.calibration is not None:
        adjusted = {level_key(L): online[level_key(L)] for L in levels if level_key(L) in online}
        effective = [adjusted.get(level_key(L), L) for L in levels]
        return Wanted(levels, level_quantiles(effective), quantiles, True, adjusted)
    try:
        kept, bounds, picked = uncalibrated_intervals(
            levels, quantiles, served.config.quantiles, levels_asked=request.levels is not None
        )
    except NotOffered as exc:
        raise RequestError(422, ("body", exc.field, exc.index), str(exc)) from None
    return Wanted(kept, bounds, picked, False)


# ------------------------------------------------------------------------------------ answers


def render(
    request: ForecastRequest,
    prepared: Prepared,
    result: Forecast | None,
    problems: list[Problem],
) -> bytes:
    """The answer as JSON: plain lists of finite floats, serialised directly (pydantic's
    response validation plus the stdlib encoder would cost more than the model call)."""
    answers = _chunked(
        list(range(len(prepared.series))),
        lambda part: [_answer(prepared, k, result, request.horizon) for k in part],
    )
    head = {"model": prepared.served.name, "version": prepared.served.version}
    if request.history is not None:
        return pydantic_core.to_json(answers[0] | head)
    forecasts = [
        {"id": s.entry.name, "index": s.entry.index} | a
        for s, a in zip(prepared.series, answers, strict=True)
    ]
    # Serialised in pieces: each to_json call holds the GIL (see the module docstring).
    pieces = _chunked(forecasts, lambda part: [pydantic_core.to_json(part)[1:-1]])
    errors = pydantic_core.to_json([p.detail() for p in problems])
    return (
        b'{"forecasts":[' + b",".join(pieces) + b'],"errors":' + errors + b","
        + pydantic_core.to_json(head)[1:]
    )  # fmt: skip


def _answer(prepared: Prepared, k: int, result: Forecast | None, horizon: int) -> dict[str, Any]:
    series, cfg, fallback = prepared.series[k], prepared.served.config, prepared.fallbacks.get(k)
    wanted = prepared.wanted
    point, offered = prepared.forecast(k, result, horizon)
    probs = wanted.probs
    # The point and every band in one array: one finiteness check and one conversion to lists
    # instead of one per band (per band, those calls cost more than computing it).
    rows = np.array([point, *(offered[q] for q in probs)], np.float64)  # [1 + len(probs), h]
    method, share = (cfg.method, cfg.stated_share) if fallback is None else (fallback.method, None)
    if not np.isfinite(rows).all():
        raise RuntimeError(f"the {method} method produced non-finite forecasts")
    values = rows.tolist()
    bands = dict(zip(probs, values[1:], strict=True))
    answer: dict[str, Any] = {"forecast": values[0], "method": method}
    if share is not None:
        answer["classical_share"] = share
    if fallback is None and horizon > cfg.horizon:
        answer["extended"] = True
    answer["filled"] = series.cleaned.filled
    if series.future is not None:
        answer["timestamps"] = series.future
    if wanted.quantiles:
        answer["quantiles"] = {str(q): bands[q] for q in wanted.quantiles}
    if wanted.levels:
        answer["intervals"] = {
            level_key(level): {"lower": bands[lo], "upper": bands[hi]}
            for level, (lo, hi) in zip(wanted.levels, wanted.bounds, strict=True)
        }
    if wanted.quantiles or wanted.levels:
        answer["calibrated"] = prepared.calibrated(k)
    if wanted.adjusted:
        answer["adjusted"] = dict(wanted.adjusted)
    if series.cleaned.gap is not None:
        answer["gap"] = _gap(series.cleaned.gap, series.entry)
    if series.warnings:
        answer["warnings"] = list(series.warnings)
    return answer


def _gap(gap: Gap, entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"before": gap.before, "after": gap.after, "missing": gap.missing}
    if entry.timestamps is not None:
        out["timestamps"] = [entry.timestamps[gap.before], entry.timestamps[gap.after]]
    return out
