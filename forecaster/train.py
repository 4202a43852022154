"""Training: one jitted ``train_step(state, batch) -> (state, metrics)``, ``train_steps`` (many of
them with their sampling, looped on the device) and the fit loop around it.

Every ensemble member trains side by side in the same step, each on its own batch and with its
own optimizer state (the optimizer is vmapped over the member axis), so members are exactly as
independent as if trained one after another, at the cost of one program.
"""

from __future__ import annotations

import dataclasses
import functools
import mmap
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from tqdm.auto import tqdm

from forecaster import classical, data, parallel, windows
from forecaster.calibration import Calibration, NotCalibrated, calibrate
from forecaster.configs import ModelConfig, TrainConfig
from forecaster.covariates import CovariateSpec, SeriesInputs, learn, series_inputs
from forecaster.model import Forecaster, init_params
from forecaster.parts import mapped
from forecaster.predict import Predictor, score_model
from forecaster.scaling import fit_scale, normalize, normalize_targets


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; nothing was saved. The message names the step, the
    settings it trained with and the series of the batch where it happened."""


class TrainState(struct.PyTreeNode):
    """Parameters [ensemble, ...], per-member optimizer state, step, the dropout key, and the
    exponential moving average of the parameters (None unless ``TrainConfig.ema`` is set)."""

    step: jax.Array
    params: Any
    opt_state: Any
    key: jax.Array
    ema: Any
    config: ModelConfig = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    ema_decay: float = struct.field(pytree_node=False, default=0.0)

    @property
    def selectable(self) -> Any:
        """The weights that are evaluated and kept: the average when there is one."""
        return self.params if self.ema is None else self.ema


@dataclass
class TrainResult:
    """The selected parameters (host numpy), their validation scores and the run's history;
    ``config`` is the trained model's (the given one with its chosen classical shares and its
    covariate widths), ``covariates`` what it reads besides the target (saved with it)."""

    params: Any
    best_step: int
    val_metrics: dict[str, float]
    config: ModelConfig
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    # The chosen model's interval calibration (None with ``calibration_origins=0``).
    calibration: Calibration | None = None
    covariates: CovariateSpec = field(default_factory=CovariateSpec)
    # How validation and calibration were bounded, in words ("" when they read every series).
    sampled: str = ""


class Validation(NamedTuple):
    """The validation split: histories, targets [n, horizon], and each series' covariates
    (None for a model of the target alone)."""

    histories: list[np.ndarray]
    targets: np.ndarray
    inputs: list[SeriesInputs] | None
    spec: CovariateSpec


def covariate_spec(series: data.SeriesSet, train_cfg: TrainConfig) -> CovariateSpec:
    """What a model of ``series`` reads besides the target: its covariate columns, normalised
    by their statistics here, and the calendar (``train_cfg.calendar``; by default on when the
    data have timestamps and covariates are named) with ``train_cfg.holidays``."""
    timed = series.end is not None and series.freq is not None
    calendar = train_cfg.calendar
    if calendar is None:
        calendar = timed and (bool(series.covariates) or bool(train_cfg.holidays))
    if (calendar or train_cfg.holidays) and not timed:
        if train_cfg.calendar or train_cfg.holidays:
            raise data.DataError("calendar features and holidays need timestamps: the data "
                                 "has none")  # fmt: skip
        calendar = False
    return learn(series.covariates, series.freq if timed else None, calendar=bool(calendar),
                 holidays=train_cfg.holidays)  # fmt: skip


@functools.cache  # one object per config, so train_step's compiled code is reused across fits
def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW with global-norm clipping and warm-up followed by cosine decay."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, min(cfg.warmup_steps, cfg.steps - 1), cfg.steps, 0.01
    )
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(schedule, weight_decay=cfg.weight_decay),
    )


def create_train_state(
    model_cfg: ModelConfig, train_cfg: TrainConfig, params: Any | None = None
) -> TrainState:
    """A fresh optimizer around ``params`` (default: newly initialised ones, e.g. a warm start
    passes a previous version's [ensemble, ...] weights)."""
    if params is None:
        params = init_params(model_cfg, train_cfg.seed)
    else:  # host (numpy) weights become device arrays the first step can donate
        params = jax.tree.map(jnp.asarray, params)
    tx = make_optimizer(train_cfg)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=jax.vmap(tx.init)(params),
        key=jax.random.key(train_cfg.seed + 1),
        ema=jax.tree.map(jnp.copy, params) if train_cfg.ema else None,
        config=model_cfg,
        tx=tx,
        ema_decay=train_cfg.ema,
    )


def pinball(pred: jax.Array, target: jax.Array, q: jax.Array) -> jax.Array:
    """Quantile (pinball) loss, elementwise; q = 0.5 gives half the absolute error."""
    diff = target - pred
    return jnp.maximum(q * diff, (q - 1.0) * diff)


def loss_fn(params: Any, state: TrainState, batch: dict, key: jax.Array) -> jax.Array:
    """Mean pinball loss of every member on its own windows, in normalised units (log ratios,
    or standard deviations: ``ModelConfig.scaling``).

    batch: ``x`` [ensemble, batch, input_size] and ``y`` [ensemble, batch, horizon], raw values,
    and for a masked model ``lengths`` [ensemble, batch] (the real points at the end of ``x``);
    for a model with covariates ``past`` [ensemble, batch, input_size, past_features],
    ``future`` [ensemble, batch, horizon, future_features], ``static`` [ensemble, batch, S].
    """
    cfg = state.config
    scale = fit_scale(batch["x"], jnp, cfg.scaling)
    z = normalize(batch["x"], scale, jnp, cfg.scaling)
    target = normalize_targets(batch["y"], scale, jnp, cfg.scaling)
    cov = {k: batch[k] for k in ("past", "future", "static")} if cfg.covariates else None
    out = cast(  # [ensemble, batch, horizon, outputs]; no ``mutable``: the output alone
        jax.Array,
        Forecaster(cfg, training=True).apply(
            {"params": params}, z, batch.get("lengths"), cfg.dropout == 0.0, cov,
            rngs={"dropout": key},
        ),
    )  # fmt: skip
    levels = jnp.asarray((0.5, *cfg.quantiles), jnp.float32)
    per_member = pinball(out, target[..., None], levels).mean(axis=(1, 2, 3))
    return per_member.sum()  # members share no parameters: each gets its own loss's gradient


@partial(jax.jit, donate_argnums=0)
def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step of every member: backpropagation through time over the scan."""
    key, dropout_key = jax.random.split(state.key)
    loss, grads = jax.value_and_grad(loss_fn)(state.params, state, batch, dropout_key)
    updates, opt_state = jax.vmap(state.tx.update)(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema
    if ema is not None:
        ema = jax.tree.map(lambda e, p: e + (1.0 - state.ema_decay) * (p - e), ema, params)
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state, key=key, ema=ema
    )
    return new_state, {"loss": loss / state.config.ensemble, "grad_norm": optax.tree.norm(grads)}


# Memory-mapped data of more series than this is validated and calibrated on a sample of them:
# their histories are copied (padded) for every evaluation.
CHECKED_SERIES = 1000

# Share of a masked model's training windows cut short at random (beyond what the series'
# own lengths impose), so the network also learns to forecast from short histories.
SHORTENED = 0.25


@dataclass(frozen=True)
class WindowSampler:
    """Training windows of many series on the device, sampled uniformly in one gather.

    With ``min_input`` below ``input_size`` (a masked model), windows may reach before their
    series' start: the missing points are padded (:func:`forecaster.windows.pad_left`) and the
    batch carries each window's real history length; a share ``SHORTENED`` is cut shorter at
    random, down to ``min_input``.

    Batches are drawn from the first ``count`` windows. With ``held_out``, those are the windows
    that leave each series' last ``held_out`` points unseen (the validation split), and the
    arrays keep the size of all windows: a sampler of the same series without ``held_out`` (the
    refit's) has the same shapes, so both runs share one compiled training loop.

    With covariates, ``padded`` holds the values and their features side by side
    (:func:`forecaster.windows.pad_features`), cut in the same gather, and ``static`` each
    series' static features.
    """

    padded: jax.Array  # [n_series, max_len], or [n_series, max_len, 1 + past_features]
    series_idx: jax.Array  # [n_windows]
    start: jax.Array  # [n_windows], negative where the window starts before its series
    count: jax.Array  # [] windows drawn from: the first ``count``
    input_size: int
    horizon: int
    min_input: int
    static: jax.Array | None = None  # [n_series, static_features] with covariates
    # The features the horizon reads: the last ``future_features`` of each point's.
    future_features: int = 0
    # Where sampled batches live: split over a mesh's batch axis, or None (one device).
    sharding: jax.sharding.NamedSharding | None = None

    @classmethod
    def from_series(
        cls,
        values: list[np.ndarray],
        input_size: int,
        horizon: int,
        mesh: jax.sharding.Mesh | None = None,
        *,
        min_input: int | None = None,
        held_out: int | Sequence[int] = 0,
        features: Sequence[np.ndarray] | None = None,
        static: np.ndarray | None = None,
        future_features: int = 0,
    ) -> WindowSampler:
        """The windows of ``values`` that leave out each series' last ``held_out`` points (one
        count for all, or one per series); with a ``mesh``, the series are copied to every
        device so each one gathers its own slice of every batch without communication.
        ``features`` [len_i, past_features] and ``static`` [n_series, static_features]: the
        covariates (:meth:`forecaster.covariates.CovariateSpec.series_features`)."""
        least = input_size if min_input is None else min_input
        padded, lengths = windows.pad_series(values, dtype=np.float32)
        if features is not None:
            padded = windows.pad_features(features, values)
        series_idx, start = windows.window_index(lengths, input_size, horizon, min_input=least)
        drawn = start + input_size + horizon <= (lengths - np.asarray(held_out))[series_idx]
        count = int(drawn.sum())
        if count == 0:
            most = int(np.max(held_out, initial=0))
            before = f" before its last {most}" if most else ""
            raise data.DataError(
                f"no series is long enough for one window of {least + horizon} points{before}"
            )
        # The drawn windows first, in their order; those ending in held-out points after them.
        series_idx, start = (np.concatenate([a[drawn], a[~drawn]]) for a in (series_idx, start))
        arrays = [jnp.asarray(a) for a in (padded, series_idx, start, np.int32(count))]
        extra = None if static is None else jnp.asarray(static, jnp.float32)
        sharding = None
        if mesh is not None:
            arrays = parallel.replicate(arrays, mesh)
            extra = None if extra is None else parallel.replicate(extra, mesh)
            sharding = parallel.batch_sharding(mesh)
        padded_d, series_d, start_d, count_d = arrays
        return cls(padded_d, series_d, start_d, count_d, input_size, horizon, least, extra,
                   future_features, sharding)  # fmt: skip

    def sample(self, key: jax.Array, shape: tuple[int, ...]) -> dict[str, jax.Array]:
        """A batch of ``shape`` windows: x [*shape, input_size], y [*shape, horizon] (and
        lengths [*shape] when masked)."""
        return _sample(self, key, shape)


@partial(jax.jit, static_argnums=2)
def _sample(sampler: WindowSampler, key: jax.Array, shape: tuple[int, ...]) -> dict:
    pick = jax.random.randint(key, shape, 0, sampler.count)
    start = sampler.start[pick]
    cut = windows.gather_windows(
        sampler.padded,
        sampler.series_idx[pick].reshape(-1),
        start.reshape(-1),
        sampler.input_size + sampler.horizon,
    ).reshape(*shape, *((-1,) if sampler.padded.ndim == 2 else (-1, sampler.padded.shape[-1])))
    return _batch(sampler, key, shape, cut, sampler.series_idx[pick], start)


def _batch(
    sampler: Sampler,
    key: jax.Array,
    shape: tuple[int, ...],
    cut: jax.Array,
    series: jax.Array,
    start: jax.Array,
) -> dict:
    """The batch of windows ``cut`` [*shape, span] (or [*shape, span, 1 + features]) of
    ``series`` [*shape] starting at ``start`` [*shape]: split into input and target, the
    covariates apart, short histories padded (every sampler's last step)."""
    if sampler.sharding is not None:
        cut = jax.lax.with_sharding_constraint(cut, sampler.sharding)
    covariates = {}
    if cut.ndim == len(shape) + 2:  # values and covariate features, cut together
        assert isinstance(sampler, WindowSampler)
        size, width = sampler.input_size, sampler.future_features
        covariates["past"] = cut[..., :size, 1:]
        covariates["future"] = cut[..., size:, cut.shape[-1] - width :]
        static = sampler.static
        if static is None:
            static = jnp.zeros((sampler.padded.shape[0], 0), jnp.float32)
        covariates["static"] = static[series]
        cut = cut[..., 0]
    batch = {"x": cut[..., : sampler.input_size], "y": cut[..., sampler.input_size :]}
    batch["series"] = series  # which series each window is from, for errors
    batch |= covariates
    if sampler.min_input < sampler.input_size:
        available = sampler.input_size - jnp.maximum(-start, 0)
        short_key, len_key = jax.random.split(jax.random.fold_in(key, 1))
        shorter = jax.random.randint(len_key, shape, sampler.min_input, available + 1)
        cut_short = jax.random.bernoulli(short_key, SHORTENED, shape)
        batch["lengths"] = jnp.where(cut_short, shorter, available).astype(jnp.int32)
        batch["x"] = windows.pad_left(batch["x"], batch["lengths"])
    return batch


jax.tree_util.register_dataclass(
    WindowSampler,
    data_fields=["padded", "series_idx", "start", "count", "static"],
    meta_fields=["input_size", "horizon", "min_input", "future_features", "sharding"],
)


# Threads reading windows from a memory-mapped file, and windows each reads at a time.
READERS, READ_CHUNK = 8, 128


class MappedReader:
    """Cuts windows out of series memory-mapped on disk (:mod:`forecaster.parts`), on the host:
    the OS pages in the windows' points alone. One object per file, so every sampler of it
    shares one compiled training loop."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, span: int) -> None:
        self.flat, self.offsets, self.span = flat, offsets, span
        mapping = getattr(flat, "_mmap", None)
        if mapping is not None and hasattr(mmap, "MADV_RANDOM"):
            # A window is a few kilobytes at a random place: read ahead, the kernel would
            # fetch (and cache, against a memory cap) a hundred kilobytes for each.
            mapping.madvise(mmap.MADV_RANDOM)
        self.pool = ThreadPoolExecutor(READERS, thread_name_prefix="windows")

    def __call__(self, series: np.ndarray, start: np.ndarray) -> np.ndarray:
        """``[M, span]`` float32 windows of ``series`` [M] from ``start`` [M]; points before a
        series' start repeat its first (as :func:`forecaster.windows.gather_windows`)."""
        cols = np.maximum(np.asarray(start, np.int64)[:, None] + np.arange(self.span), 0)
        at = self.offsets[np.asarray(series, np.int64)][:, None] + cols
        out = np.empty(at.shape, np.float32)

        def read(rows: slice) -> None:
            out[rows] = self.flat[at[rows]]

        # Windows not in memory wait for the disk: several threads keep several reads in
        # flight (numpy's gather releases the GIL).
        chunks = [slice(a, a + READ_CHUNK) for a in range(0, len(at), READ_CHUNK)]
        if len(chunks) > 1:
            list(self.pool.map(read, chunks))
        elif chunks:
            read(chunks[0])
        return out


@dataclass(frozen=True)
class MappedSampler:
    """Training windows of series memory-mapped on disk (:func:`forecaster.parts.mapped`),
    drawn exactly as :class:`WindowSampler` draws them (the same batches for the same key) but
    without listing every window or copying the series: a window number maps to its series by
    a binary search of the cumulative window counts, and its points are read from the file by a
    host callback (:class:`MappedReader`). No covariates."""

    ends: jax.Array  # [n_series] cumulative count of the drawn windows, series by series
    drawn: jax.Array  # [n_series] drawn windows of each series
    count: jax.Array  # [] all drawn windows
    input_size: int
    horizon: int
    min_input: int
    reader: MappedReader
    sharding: jax.sharding.NamedSharding | None = None

    @classmethod
    def from_series(
        cls,
        values: list[np.ndarray],
        input_size: int,
        horizon: int,
        mesh: jax.sharding.Mesh | None = None,
        *,
        min_input: int | None = None,
        held_out: int | Sequence[int] = 0,
        reader: MappedReader | None = None,
    ) -> MappedSampler:
        """:meth:`WindowSampler.from_series` of ``values``, views of one memory-mapped file
        (``reader``: one made before for the same series, to share its compiled loop)."""
        from forecaster.parts import mapped

        least = input_size if min_input is None else min_input
        found = mapped(values)
        if found is None:
            raise ValueError("the series are not views of one memory-mapped file")
        lengths = np.array([v.size for v in values], np.int64)
        # Window k of a series starts at k - (input_size - least) (stride 1): the first
        # lengths - held_out - (least + horizon) + 1 of them leave the held-out points unseen.
        drawn = np.maximum(lengths - np.asarray(held_out) - (least + horizon) + 1, 0)
        count = int(drawn.sum())
        if count == 0:
            most = int(np.max(held_out, initial=0))
            before = f" before its last {most}" if most else ""
            raise data.DataError(
                f"no series is long enough for one window of {least + horizon} points{before}"
            )
        if count >= 2**31:
            raise data.DataError(f"{count} training windows: more than int32 counts")
        reader = reader or MappedReader(found[0], found[1], input_size + horizon)
        arrays = [jnp.asarray(np.cumsum(drawn), jnp.int32), jnp.asarray(drawn, jnp.int32),
                  jnp.asarray(np.int32(count))]  # fmt: skip
        sharding = None
        if mesh is not None:
            arrays = parallel.replicate(arrays, mesh)
            sharding = parallel.batch_sharding(mesh)
        ends, drawn_d, count_d = arrays
        return cls(ends, drawn_d, count_d, input_size, horizon, least, reader, sharding)

    def sample(self, key: jax.Array, shape: tuple[int, ...]) -> dict[str, jax.Array]:
        """A batch as :meth:`WindowSampler.sample` draws it."""
        return _sample_mapped(self, key, shape)


@partial(jax.jit, static_argnums=2)
def _sample_mapped(sampler: MappedSampler, key: jax.Array, shape: tuple[int, ...]) -> dict:
    pick = jax.random.randint(key, shape, 0, sampler.count)
    flat = pick.reshape(-1)
    series = jnp.searchsorted(sampler.ends, flat, side="right").astype(jnp.int32)
    start = (
        flat
        - (sampler.ends[series] - sampler.drawn[series])
        - (sampler.input_size - sampler.min_input)
    )
    span = sampler.input_size + sampler.horizon
    cut = jax.pure_callback(
        sampler.reader, jax.ShapeDtypeStruct((flat.size, span), jnp.float32), series, start
    )
    return _batch(sampler, key, shape, cut.reshape(*shape, span), series.reshape(shape),
                  start.reshape(shape))  # fmt: skip


jax.tree_util.register_dataclass(
    MappedSampler,
    data_fields=["ends", "drawn", "count"],
    meta_fields=["input_size", "horizon", "min_input", "reader", "sharding"],
)

#: Where training windows come from: series in memory, or memory-mapped on disk.
Sampler = WindowSampler | MappedSampler


@partial(jax.jit, donate_argnums=0, static_argnums=3)
def train_steps(
    state: TrainState,
    sampler: Sampler,
    key: jax.Array,
    shape: tuple[int, int],
    n: int | jax.Array,
) -> tuple[TrainState, jax.Array, dict[str, Any]]:
    """``n`` steps of :func:`train_step`, each on a fresh batch of ``shape`` ([ensemble, batch])
    windows drawn from ``sampler`` with the next key split from ``key``, in one dispatch.

    Returns the state, the key after ``n`` splits and the last step's metrics, with
    ``"diverged"``: the first of these steps whose loss or gradient was not finite (``step``,
    -1 if none; ``loss``, ``grad_norm``; the batch's ``series`` [ensemble, batch] and whether
    each window was ``scaled`` finitely), so an error can name where it happened. The same as
    ``n`` calls of ``train_step`` on ``sampler.sample`` batches, value for value, but the loop
    runs on the device: per-step dispatch from Python cost the M4 recipe about 7% of its step
    on two cores (27.5 ms against 25.6 a step). ``n`` is traced, so every count shares one
    compiled program.
    """

    def body(_: jax.Array, carry: tuple) -> tuple:
        state, key, _metrics, diverged = carry
        key, sub = jax.random.split(key)
        batch = sampler.sample(sub, shape)
        state, metrics = train_step(state, batch)
        first = (diverged["step"] < 0) & ~(
            jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        )
        # Only on the first bad step, so the check costs the loop nothing otherwise.
        diverged = jax.lax.cond(
            first,
            partial(_divergence, state.step, metrics, kind=state.config.scaling),
            lambda _: diverged,
            batch,
        )
        return state, key, metrics, diverged

    batch = jax.eval_shape(partial(sampler.sample, shape=shape), key)
    metrics = jax.eval_shape(train_step, state, batch)[1]
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), metrics)
    none = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                        jax.eval_shape(partial(_divergence, kind=state.config.scaling),
                                      jnp.int32(0), zeros, batch))  # fmt: skip
    none["step"] = jnp.int32(-1)
    state, key, metrics, diverged = jax.lax.fori_loop(0, n, body, (state, key, zeros, none))
    return state, key, {**metrics, "diverged": diverged}


def _divergence(
    step: jax.Array, metrics: dict[str, jax.Array], batch: dict, *, kind: str
) -> dict[str, Any]:
    """What :func:`train_steps` records of a step whose loss or gradient is not finite."""
    scale = fit_scale(batch["x"], jnp, kind)
    scaled = jnp.isfinite(normalize(batch["x"], scale, jnp, kind)).all(-1) & jnp.isfinite(
        normalize_targets(batch["y"], scale, jnp, kind)
    ).all(-1)
    step = jnp.asarray(step, jnp.int32)
    return {"step": step, "loss": metrics["loss"], "grad_norm": metrics["grad_norm"],
            "series": batch["series"], "scaled": scaled}  # fmt: skip


def divergence_message(diverged: dict[str, Any], ids: list[str], train_cfg: TrainConfig) -> str:
    """The error of a run whose loss or gradient stopped being finite (``diverged`` from
    :func:`train_steps`, on host): the step, the settings it ran with, and the series of that
    batch (``ids`` names the sampler's series): those whose windows could not be scaled
    finitely when there are any, else all of the batch's. It advises no setting it has not
    seen fail."""
    loss, norm = float(diverged["loss"]), float(diverged["grad_norm"])
    what = f"loss became {loss}" if not np.isfinite(loss) else f"gradient norm became {norm}"
    series = np.asarray(diverged["series"]).ravel()
    unscaled = series[~np.asarray(diverged["scaled"]).ravel()]
    named = unscaled if unscaled.size else series
    distinct = list(dict.fromkeys(ids[i] for i in named))
    listed = f"{distinct[:10]}" + (f" and {len(distinct) - 10} more" if len(distinct) > 10 else "")
    where = (
        f"windows of series {listed} hold values that are not finite once scaled (beyond "
        "float32's range of about 3.4e38?)"
        if unscaled.size
        else f"its batch held windows of series {listed}, all finite once scaled"
    )
    return (
        f"{what} at step {int(diverged['step'])} (learning rate {train_cfg.learning_rate:g}, "
        f"clip_norm {train_cfg.clip_norm:g}, batch size {train_cfg.batch_size}); {where}"
    )


# The fit loop checks the loss (and moves the progress bar) every this many steps.
REPORT_EVERY = 100


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step``."""
    return (step // every + 1) * every


def usable_series(series: data.SeriesSet, model_cfg: ModelConfig) -> data.SeriesSet:
    """The series long enough to train on: the model's shortest history plus the validation
    horizon. The others are skipped with one warning naming how many and the first ids; a file
    where none is long enough is a DataError naming the longest series."""
    least = model_cfg.min_input + model_cfg.horizon
    needs = (
        f"training needs at least {least} (a history of {model_cfg.min_input} plus the "
        f"validation horizon of {model_cfg.horizon})"
    )
    short = np.flatnonzero(series.lengths < least)
    if len(short) == len(series):
        longest = int(np.argmax(series.lengths)) if len(series) else 0
        raise data.DataError(
            f"series {series.ids[longest]!r} has {int(series.lengths[longest])} points, the most "
            f"of any series in the file; {needs}"
            if len(series)
            else "the file holds no series"
        )
    if len(short):
        first = [series.ids[i] for i in short[:5]]
        warnings.warn(
            f"skipping {len(short)} of {len(series)} series with fewer points than {least}, "
            f"e.g. {first}: {needs}",
            stacklevel=3,
        )
        series = series.select(np.flatnonzero(series.lengths >= least).tolist())
    return series


def fit(
    series: data.SeriesSet,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig | None = None,
    *,
    progress: bool = True,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    initial_params: Any | None = None,
) -> TrainResult:
    """Train on every series' history except its last ``horizon`` points, which form the
    validation split used to select (and optionally early-stop) the parameters and then the
    share of the classical methods in the forecast (:func:`forecaster.classical.choose_weight`,
    from ``train_cfg.theta_weights``; the validation scores returned are the blend's). With
    ``train_cfg.refit``, the model is then trained again on the whole histories for the selected
    number of steps, and those weights are returned (with the selection run's scores).

    With several devices the batches are split over all of them (:mod:`forecaster.parallel`);
    ``initial_params`` warm-starts from earlier weights of the same config. Last, the chosen
    model's intervals are calibrated on rolling backtests of the training series
    (:func:`forecaster.calibration.calibrate`, ``train_cfg.calibration_origins`` origins). A
    series cut by long gaps (``series.before_gaps``) trains on every segment and is validated
    on its last.
    Raises TrainingDivergedError when the loss stops being finite.
    """
    started = time.perf_counter()
    train_cfg = train_cfg or TrainConfig()
    series = usable_series(series, model_cfg)
    sampled = ""
    spec = covariate_spec(series, train_cfg)
    if spec and series.before_gaps:
        warnings.warn("with covariates, training reads each series after its last long gap "
                      "only", stacklevel=2)  # fmt: skip
        series = dataclasses.replace(series, before_gaps={})
    horizon = model_cfg.horizon
    train, val_targets = data.train_val_split(series, horizon)
    inputs = None
    if spec:
        future = series.covariates.future
        ahead = {k: [v[-horizon:] for v in arrays] for k, arrays in future.items()}
        inputs = series_inputs(len(series), train.covariates, train.end, ahead)
    validation = Validation(train.values, val_targets, inputs, spec)
    checked = series.values  # the histories calibration backtests
    if not spec and len(series) > CHECKED_SERIES and mapped(series.values) is not None:
        # Beyond memory: validation, the classical shares and calibration read a sample.
        keep = np.sort(np.random.default_rng(train_cfg.seed).choice(
            len(series), CHECKED_SERIES, replace=False)).tolist()  # fmt: skip
        validation = Validation([train.values[i] for i in keep], val_targets[keep], None, spec)
        checked = [series.values[i] for i in keep]
        sampled = (f"validation and calibration read a sample of {CHECKED_SERIES} of the "
                   f"{len(series)} memory-mapped series (seed {train_cfg.seed})")  # fmt: skip
    # The network is trained and selected alone (a champion's classical share is chosen afresh).
    widths = spec.widths()
    model_cfg = replace(
        model_cfg.network,
        past_features=widths["past_features"],
        future_features=widths["future_features"],
        static_features=widths["static_features"],
    )
    features: dict[str, Any] = {}
    if spec:
        dynamic, static = spec.series_features(series.lengths, series.covariates, series.end)
        features = {"features": dynamic, "static": static,
                    "future_features": spec.future_width}  # fmt: skip
    mesh = parallel.default_mesh()
    if mesh is not None:
        parallel.check_batch_size(train_cfg.batch_size, mesh)
    # Segments before a series' long gaps (forecaster.data) give windows too, none spanning a
    # gap; they end before the validation points, so no horizon of theirs is held out.
    names = [*series.ids, *(sid for sid in series.ids for _ in series.before_gaps.get(sid, ()))]
    before = [part for sid in series.ids for part in series.before_gaps.get(sid, ())]
    arrays = [*series.values, *before]
    if not features and (found := mapped(arrays)) is not None:
        # Memory-mapped series (a folder of Parquet parts): read window by window from the file.
        reader = MappedReader(*found, model_cfg.input_size + model_cfg.horizon)
        samplers: Callable[..., Sampler] = partial(
            MappedSampler.from_series, arrays, model_cfg.input_size, model_cfg.horizon, mesh,
            min_input=model_cfg.min_input, reader=reader,
        )  # fmt: skip
    else:
        samplers = partial(WindowSampler.from_series, arrays, model_cfg.input_size,
                           model_cfg.horizon, mesh, min_input=model_cfg.min_input,
                           **features)  # fmt: skip
    # The selection's windows end before the validation points.
    held_out = (
        [model_cfg.horizon] * len(series) + [0] * len(before) if before else model_cfg.horizon
    )
    selection = samplers(held_out=held_out)
    best = _train(selection, names, model_cfg, train_cfg, initial_params, progress, on_eval,
                  validation)  # fmt: skip
    best.config = _with_classical(best, train_cfg, validation)
    if train_cfg.refit:
        # The last horizon of every series is its most recent behaviour, and for short series a
        # large share of their windows: the final weights are trained with it, for the steps
        # that validation chose.
        final = _train(samplers(), names, model_cfg, train_cfg, initial_params, progress,
                       until=best.best_step)  # fmt: skip
        best.params = final.params
    if train_cfg.calibration_origins:
        try:
            best.calibration = calibrate(
                Predictor(best.config, best.params, covariates=spec),
                checked,  # a sample only without covariates: their values are the whole set's
                train_cfg.seasonality,
                origins=train_cfg.calibration_origins,
                covariates=series.covariates,
                ends=series.end,
            )
        except NotCalibrated as err:  # the model stands; only its intervals are unvouched
            warnings.warn(f"the model's intervals are not calibrated: {err}", stacklevel=2)
    best.seconds = time.perf_counter() - started
    best.covariates = spec
    best.sampled = sampled
    return best


def _with_classical(
    best: TrainResult, train_cfg: TrainConfig, validation: Validation
) -> ModelConfig:
    """``best``'s config with the classical share that scores best on ``validation``, split
    evenly between Theta and damped trend, then the pull toward Naive2 on volatile series that
    validation keeps (:func:`forecaster.classical.choose_shrink`); ``best``'s scores become
    that forecast's."""
    if not any(train_cfg.theta_weights) and not any(train_cfg.naive_shrinks):
        return best.config  # the network alone: no forecast of validation needed
    histories, targets, inputs, spec = validation
    predictor = Predictor(best.config, best.params, covariates=spec)
    forecast = predictor.predict(histories, inputs=inputs).point
    seasonality = train_cfg.seasonality
    config = best.config
    if any(train_cfg.theta_weights):
        weight, _ = classical.choose_weight(
            histories, targets, forecast, seasonality, train_cfg.theta_weights
        )
        if weight:
            config = replace(config, theta_weight=weight / 2, damped_weight=weight / 2,
                             theta_season=seasonality)  # fmt: skip
            blend = Predictor(config, best.params, covariates=spec)
            forecast = blend.predict(histories, inputs=inputs).point
    if any(train_cfg.naive_shrinks):
        strength, _ = classical.choose_shrink(
            histories, targets, forecast, seasonality, train_cfg.naive_shrinks
        )
        if strength:
            config = replace(config, naive_shrink=strength, theta_season=seasonality)
    if config != best.config:
        chosen = Predictor(config, best.params, covariates=spec)
        best.val_metrics = score_model(chosen, histories, targets, seasonality, inputs)[1]
    return config


def _train(
    sampler: Sampler,
    names: list[str],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    initial_params: Any | None,
    progress: bool,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    validation: Validation | None = None,
    until: int | None = None,
) -> TrainResult:
    """One run of the schedule on ``sampler``'s windows (``names``: the id of each of its
    series): with ``validation`` (histories, targets [n, horizon]) the best evaluated weights,
    else those after ``until`` steps."""
    state = create_train_state(model_cfg, train_cfg, initial_params)
    if sampler.sharding is not None:
        state = parallel.replicate(state, sampler.sharding.mesh)
    key = jax.random.key(train_cfg.seed + 2)
    shape = (model_cfg.ensemble, train_cfg.batch_size)
    last = until or train_cfg.steps
    best: TrainResult | None = None
    history: list[dict[str, float]] = []
    desc = "train" if until is None else "refit"
    bar = tqdm(total=last, disable=not progress, desc=f"{desc}: compiling", unit="step")
    # Compiled ahead (the first call then finds it), as its own phase: the bar's rate and time
    # left then count training steps alone, not the compilation (seconds to minutes).
    train_steps.lower(state, sampler, key, shape, 1).compile()
    bar.set_description(desc)
    bar.reset(total=last)
    stale, step = 0, 0
    evaluate_every = train_cfg.eval_every if validation is not None else last
    while step < last:
        stop = min(last, _next_multiple(step, REPORT_EVERY), _next_multiple(step, evaluate_every))
        state, key, step_metrics = train_steps(state, sampler, key, shape, stop - step)
        step = stop
        diverged = step_metrics["diverged"]
        if int(diverged["step"]) >= 0:  # every chunk ends at a report or an evaluation anyway
            bar.close()
            raise TrainingDivergedError(
                divergence_message(jax.device_get(diverged), names, train_cfg)
            )
        if step % REPORT_EVERY == 0 or step == last:
            loss = float(step_metrics["loss"])
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}", val_owa=best and f"{best.val_metrics['owa']:.4f}")
        if validation is None or (step % evaluate_every and step != last):
            continue
        predictor = Predictor(model_cfg, state.selectable, covariates=validation.spec)
        _, scores = score_model(predictor, *validation[:2], train_cfg.seasonality,
                                validation.inputs)  # fmt: skip
        history.append({"step": step, "loss": float(step_metrics["loss"]), **scores})
        if on_eval:
            on_eval(history[-1])
        if best is None or scores["owa"] < best.val_metrics["owa"]:
            best = TrainResult(jax.device_get(state.selectable), step, scores, model_cfg)
            stale = 0
        else:
            stale += 1
            if train_cfg.patience and stale >= train_cfg.patience:
                break
    bar.close()
    if validation is None:
        return TrainResult(jax.device_get(state.selectable), last, {}, model_cfg)
    assert best is not None
    best.history = history
    return best
