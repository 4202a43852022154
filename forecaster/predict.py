"""Pure inference: histories -> fixed shapes -> jitted forward -> forecasts.

Requests arrive with any number of series of any length; the network is compiled for a few fixed
batch sizes only (``batch_sizes``), so after :meth:`Predictor.warmup` no request compiles.
Normalisation runs in float64 on the host so huge or tiny magnitudes stay finite.

A batch of ``n`` series runs as the mix of compiled sizes that costs least (:func:`chunk_plans`,
from each size's time measured at warm-up): on a CPU a call costs about its rows, so 20 series
run as 16 + 4 rather than padded to 64 (3.5x the work); on a GPU, where a call costs about the
same at any size, as one padded call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import numpy as np

from forecaster import classical, metrics
from forecaster.covariates import CovariateError, CovariateSpec, Encoded, SeriesInputs
from forecaster.model import ModelConfig, dummy_covariates, forward
from forecaster.scaling import Scale, denormalize, fit_scale, normalize
from forecaster.windows import pad_left

# Batch shapes compiled when none are asked for (the service's ``batch_sizes`` default).
DEFAULT_BATCH_SIZES = (1, 4, 16, 64, 256)
# A forecast beyond this many times the history's largest magnitude is a broken model.
RANGE_FACTOR = 10.0
# Timed calls per compiled size at warm-up; the fastest counts (the machine may be busy).
TIMING_RUNS = 5


class HistoryTooShort(ValueError):
    """A history holds fewer points than the model's input window."""

    def __init__(self, index: int, length: int, minimum: int) -> None:
        super().__init__(f"history {index} has {length} points; the model needs at least {minimum}")
        self.index, self.length, self.minimum = index, length, minimum


@dataclass(frozen=True)
class Forecast:
    """Forecasts for ``n`` series: ``point`` [n, horizon]; ``quantiles`` q -> [n, horizon]."""

    point: np.ndarray
    quantiles: dict[float, np.ndarray]


@dataclass(frozen=True)
class Running:
    """A batch handed to the device by :meth:`Predictor.dispatch`: ``outputs``, one per compiled
    call, each [size, horizon, outputs] (padding rows included), still computing; the first
    ``rows`` of each are real."""

    outputs: list[jax.Array]
    rows: list[int]
    scale: Scale
    horizon: int

    def wait(self) -> None:
        """Block until the device is done, without holding the GIL: the one part of a batch
        worth a thread of its own (service.batcher)."""
        jax.block_until_ready(self.outputs)


# Keyed on the (hashable) config of the network, so every Predictor of one architecture shares
# compiled code: swapping in new weights of the same shape, or another classical share, never
# recompiles.
_forward = jax.jit(forward, static_argnums=0)


class Predictor:
    """Runs one model at fixed batch shapes.

    Args:
      config: the model's configuration.
      params: its parameter tree.
      batch_sizes: the compiled batch sizes, ascending; larger requests are split into chunks of
        the largest size and each chunk is padded up to the next compiled size.
      covariates: what the model reads besides the target (the manifest's ``covariates``);
        it must match the config's covariate widths.

    A model with covariates takes each series' :class:`~forecaster.covariates.SeriesInputs`
    (``inputs`` of :meth:`predict`; :meth:`encode` checks them and raises
    :class:`~forecaster.covariates.CovariateError` naming the series and the covariate, the
    service's per-series error).
    """

    def __init__(
        self,
        config: ModelConfig,
        params: dict,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        *,
        covariates: CovariateSpec | None = None,
    ) -> None:
        self.covariates = covariates or CovariateSpec()
        widths = self.covariates.widths()
        if any(getattr(config, k) != v for k, v in widths.items()):
            raise ValueError(
                f"the covariates ({self.covariates.described()}) do not match the model config's "
                f"covariate widths ({ {k: getattr(config, k) for k in widths} })"
            )
        self.config = config
        self._network = config.network  # the compiled forward's key: shared by every blend
        self.batch_sizes = tuple(sorted(batch_sizes))
        self._params = jax.device_put(params)
        # plans[n]: the compiled sizes n rows run at (n <= the largest size); set by warmup().
        self._plans: list[tuple[int, ...]] | None = None

    def warmup(self) -> None:
        """Compile every batch shape the predictor will run, and time each: batches then run
        as the mix of compiled sizes that costs least (:func:`chunk_plans`)."""
        costs = []
        for size in self.batch_sizes:
            z = np.zeros((size, self.config.input_size), np.float32)
            lengths = np.full(size, self.config.input_size, np.int32)
            cov = dummy_covariates(self.config, size)
            jax.block_until_ready(self._forward(z, lengths, cov))  # compiles
            costs.append(min(_seconds(self._forward, z, lengths, cov) for _ in range(TIMING_RUNS)))
        self._plans = chunk_plans(self.batch_sizes, costs)

    @property
    def blends(self) -> bool:
        """Whether :meth:`blend` changes forecasts (the model has a classical share or pulls
        volatile series toward Naive2)."""
        return self.config.blended or self.config.shrinks

    @property
    def min_history(self) -> int:
        """Fewest points a history may have (the model's ``min_input``)."""
        return self.config.min_input

    def windows(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each history's last ``input_size`` points, [n, input_size] float64, and how many of
        them are real, [n]; shorter histories (down to ``min_input``) are padded on the left
        with their mean (:func:`forecaster.windows.pad_left`)."""
        input_size, least = self.config.input_size, self.config.min_input
        if all(len(h) >= input_size for h in histories):  # whole windows: nothing to pad
            # One np.array call: a quarter of np.stack's cost for a one-series request.
            x = np.array([h[-input_size:] for h in histories], np.float64)
            return x, np.full(len(histories), input_size)
        x = np.zeros((len(histories), input_size))
        lengths = np.zeros(len(histories), np.int64)
        for i, h in enumerate(histories):
            if len(h) < least:
                raise HistoryTooShort(i, len(h), least)
            lengths[i] = min(len(h), input_size)
            x[i, input_size - lengths[i] :] = np.asarray(h[-input_size:], np.float64)
        return pad_left(x, lengths), lengths

    def encode(
        self,
        histories: Sequence[np.ndarray],
        inputs: Sequence[SeriesInputs] | None,
        horizon: int | None = None,
    ) -> Encoded | None:
        """The covariate inputs of ``histories`` (None for a model of the target alone, which
        refuses covariates it would ignore): see :meth:`CovariateSpec.encode`."""
        if not self.config.covariates:
            if inputs is not None and any(i.past or i.future or i.static for i in inputs):
                raise CovariateError("the model reads no covariates", "covariates")
            return None
        cfg = self.config
        lengths = [len(h) for h in histories]
        return self.covariates.encode(lengths, inputs, cfg.input_size, cfg.horizon, horizon)

    def predict(
        self,
        histories: Sequence[np.ndarray],
        horizon: int | None = None,
        inputs: Sequence[SeriesInputs] | None = None,
    ) -> Forecast:
        """Forecast ``horizon`` steps (default and maximum: the model's) for each history, with
        its covariates ``inputs`` [n] when the model reads them."""
        x, lengths = self.windows(histories)
        encoded = self.encode(histories, inputs, horizon)
        return self.blend(histories, self.predict_windows(x, lengths, horizon, encoded))

    def blend(self, histories: Sequence[np.ndarray], forecast: Forecast) -> Forecast:
        """The network's ``forecast`` of ``histories`` blended with the classical methods' by
        the model's ``theta_weight`` and ``damped_weight``, then pulled toward Naive2 on
        volatile series by its ``naive_shrink`` (:mod:`forecaster.classical`); the quantiles
        move with the point. Without either, ``forecast`` itself."""
        if not self.blends:
            return forecast
        cfg, point = self.config, forecast.point
        shares = {"theta": cfg.theta_weight, "damped": cfg.damped_weight}
        shares = {name: w for name, w in shares.items() if w}
        names = [*shares, *(["naive2"] if cfg.shrinks else [])]
        methods = classical.forecasts(histories, point.shape[1], cfg.theta_season, names)
        blended = point + sum(w * (methods[name] - point) for name, w in shares.items())
        if cfg.shrinks:
            blended = classical.toward_naive(
                histories, blended, methods["naive2"], cfg.theta_season, cfg.naive_shrink
            )
        shift = blended - point
        quantiles = {q: v + shift for q, v in forecast.quantiles.items()}
        return Forecast(point=blended, quantiles=quantiles)

    def predict_windows(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        horizon: int | None = None,
        encoded: Encoded | None = None,
    ) -> Forecast:
        """:meth:`predict` from windows already cut by :meth:`windows`: x [n, input_size]
        float64 (left-padded), lengths [n] (the real points at the end of each row), and the
        covariates from :meth:`encode`."""
        return self.collect(self.dispatch(x, lengths, horizon, encoded))

    def dispatch(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        horizon: int | None = None,
        encoded: Encoded | None = None,
    ) -> Running:
        """:meth:`predict_windows` up to the network's call, which is left running on the
        device: windows x [n, input_size] float64 normalised on the host, then one call per
        compiled batch size (JAX dispatches asynchronously). :meth:`collect` finishes it."""
        horizon = self.config.horizon if horizon is None else horizon
        if not 0 < horizon <= self.config.horizon:
            raise ValueError(f"horizon must be between 1 and {self.config.horizon}, got {horizon}")
        if self.config.covariates and encoded is None:
            raise CovariateError(
                f"the model reads covariates ({self.covariates.described()}): encode them",
                "covariates",
            )
        kind = self.config.scaling
        scale = fit_scale(x, kind=kind)
        z = normalize(x, scale, kind=kind).astype(np.float32)
        chunks, rows = [], []
        start = 0
        for size in self._chunk_sizes(len(z)):
            if start >= len(z):  # a plan for whole blocks may cover more rows than there are
                break
            chunk = z[start : start + size]
            if len(chunk) == size:
                padded, n = chunk, lengths[start : start + size].astype(np.int32)
            else:  # the last chunk: padding rows are full windows of zeros, never returned
                padded = np.zeros((size, z.shape[1]), np.float32)
                padded[: len(chunk)] = chunk
                n = np.full(size, z.shape[1], np.int32)
                n[: len(chunk)] = lengths[start : start + size]
            cov = None
            if encoded is not None:
                part = encoded.rows(start, start + size, size)
                cov = {"past": part.past, "future": part.future, "static": part.static}
            chunks.append(self._forward(padded, n, cov))
            rows.append(len(chunk))
            start += size
        return Running(chunks, rows, scale, horizon)

    def collect(self, running: Running) -> Forecast:
        """The forecasts of a batch from :meth:`dispatch` (waits for the device if need be)."""
        parts = [np.asarray(out)[:n] for out, n in zip(running.outputs, running.rows, strict=True)]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out = denormalize(out.astype(np.float64), running.scale, kind=self.config.scaling)
        out = out[:, : running.horizon]
        # Quantile heads are trained independently; sorting keeps the bands from crossing.
        qs = np.sort(out[:, :, 1:], axis=-1)
        quantiles = {q: qs[:, :, k] for k, q in enumerate(self.config.quantiles)}
        return Forecast(point=out[:, :, 0], quantiles=quantiles)

    def _chunk_sizes(self, n: int) -> list[int]:
        """The compiled sizes ``n`` rows run at, in order (the last one padded): the warm-up's
        cheapest plan, else chunks of the largest size, the last padded to the next size."""
        largest = self.batch_sizes[-1]
        whole, rest = divmod(n, largest)
        if self._plans is not None:
            return [*self._plans[largest] * whole, *self._plans[rest]]
        last = [next(s for s in self.batch_sizes if s >= rest)] if rest else []
        return [largest] * whole + last

    def _forward(self, z: np.ndarray, lengths: np.ndarray, cov: dict | None = None) -> jax.Array:
        """One compiled call at z's batch size [size, input_size], left running on the device."""
        # A model trained on full windows only is run without lengths, as it was trained.
        masked = lengths if self.config.masked else None
        return _forward(self._network, self._params, z, masked, cov)


def chunk_plans(sizes: Sequence[int], costs: Sequence[float]) -> list[tuple[int, ...]]:
    """For every row count n up to ``max(sizes)``, the compiled sizes whose sum covers n at the
    least total cost, largest first; ``costs[i]`` is the time of one call at ``sizes[i]``
    (ascending).

    A larger size timed faster than a smaller one is noise: the smaller one is given its time.
    """
    cost = list(costs)
    for i in range(len(cost) - 2, -1, -1):
        cost[i] = min(cost[i], cost[i + 1])
    best: list[tuple[float, int]] = [(0.0, 0)]  # (cost, calls) of plans[n]
    plans: list[tuple[int, ...]] = [()]
    for n in range(1, sizes[-1] + 1):
        # Ties go to fewer calls, then to the smaller size (the first one found).
        options = [
            ((c + best[max(n - s, 0)][0], 1 + best[max(n - s, 0)][1]), s)
            for s, c in zip(sizes, cost, strict=True)
        ]
        key, size = min(options, key=lambda o: o[0])
        best.append(key)
        # Every chunk holds more rows than the padding (else dropping it would cost less), so in
        # any order only the last chunk run is padded.
        plans.append(tuple(sorted((size, *plans[max(n - size, 0)]), reverse=True)))
    return plans


def _seconds(fn: Callable[..., object], *args: object) -> float:
    """Wall time of ``fn(*args)``, its device work included."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def score_model(
    predictor: Predictor,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    seasonality: int,
    inputs: Sequence[SeriesInputs] | None = None,
) -> tuple[Forecast, dict[str, float]]:
    """Forecast ``targets`` [n, h] from ``histories`` and score them (:func:`metrics.score`:
    sMAPE, MASE, OWA against Naive2 on this data, MAE, RMSE; MSIS and coverage of the widest
    interval when the model has quantiles). Validation, backtests and ``forecaster evaluate``
    all score through here; beyond the trained horizon the model is rolled forward
    (:func:`forecaster.extend.forecast`; not with covariates ``inputs``). Returns the forecast
    and the scores."""
    from forecaster import extend  # it builds on this module

    horizon = targets.shape[1]
    forecast = extend.forecast(predictor, histories, horizon, inputs)
    levels = predictor.config.quantiles
    if len(levels) < 2:
        return forecast, metrics.score(histories, targets, forecast.point, seasonality)
    lo, hi = levels[0], levels[-1]
    return forecast, metrics.score(
        histories, targets, forecast.point, seasonality, lower=forecast.quantiles[lo],
        upper=forecast.quantiles[hi], alpha=round(1 - (hi - lo), 6),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ sanity


def probe_series(length: int, seasonality: int) -> dict[str, np.ndarray]:
    """Fixed awkward histories [length] every servable model must forecast finitely and within
    range: seasonal, constant, all-zero, trending, huge (1e9) and negative."""
    t = np.arange(length, dtype=np.float64)
    wave = np.sin(2 * np.pi * t / max(seasonality, 1))
    return {
        "seasonal": 100 + 10 * wave,
        "constant": np.full(length, 7.0),
        "zeros": np.zeros(length),
        "trend": 1 + t,
        "huge": 1e9 * (2 + wave),
        "negative": -50 + 5 * wave,
    }


def out_of_range(histories: Sequence[np.ndarray], forecasts: np.ndarray) -> np.ndarray:
    """[n] whether each forecast row [n, horizon] is non-finite or beyond
    ``RANGE_FACTOR * max|history| + 1``."""
    bound = np.array([RANGE_FACTOR * np.max(np.abs(h)) + 1.0 for h in histories])
    finite = np.isfinite(forecasts).all(axis=1)
    inside = (np.abs(np.nan_to_num(forecasts, nan=np.inf)) <= bound[:, None]).all(axis=1)
    return ~(finite & inside)


def _bad_rows(histories: Sequence[np.ndarray], out: Forecast) -> np.ndarray:
    """[n] whether the point forecast or any quantile of each series is out of range."""
    bad = out_of_range(histories, out.point)
    for band in out.quantiles.values():
        bad |= out_of_range(histories, band)
    return bad


def sanity_problems(
    predictor: Predictor,
    histories: Sequence[np.ndarray] = (),
    ids: Sequence[str] = (),
    inputs: Sequence[SeriesInputs] | None = None,
) -> list[str]:
    """What is wrong with a model's forecasts; empty when it may serve.

    The one sanity check, used before a version is promoted (registry), swapped in (service)
    or chosen by the retraining job: every probe of :func:`probe_series`, and every history in
    ``histories`` (named by ``ids``), must give finite forecasts within range (a model that
    reads covariates: with their ``inputs``; without them only its probes are checked).
    """
    cfg = predictor.config
    probes = probe_series(cfg.input_size, cfg.step)
    series = list(probes.values())
    if cfg.covariates:  # every covariate at its training mean
        x, lengths = predictor.windows(series)
        neutral = predictor.covariates.neutral(len(series), cfg.input_size, cfg.horizon)
        out = predictor.blend(series, predictor.predict_windows(x, lengths, None, neutral))
    else:
        out = predictor.predict(series)
    bad = _bad_rows(series, out)
    problems = [
        f"probe {name!r}: forecast non-finite or beyond {RANGE_FACTOR:g}x the history's range"
        for name, is_bad in zip(probes, bad, strict=True)
        if is_bad
    ]
    if len(histories) and (inputs is not None or not cfg.covariates):
        bad = _bad_rows(histories, predictor.predict(histories, inputs=inputs))
        if bad.any():
            named = [ids[i] if i < len(ids) else str(i) for i in np.flatnonzero(bad)[:5]]
            problems.append(f"{int(bad.sum())} forecast(s) out of range, e.g. series {named}")
    return problems
