"""Model and training configs: their dataclasses, and the one place where defaults are derived.

Flags (``forecaster train``/``retrain``), retraining config files, manifests and the benchmarks
all go through here: each field is an :func:`~forecaster.options.option` (flag, config key,
help), and :func:`build_configs` fills in what was not given (the recurrent step and the window
follow the seasonality). Nothing here imports JAX, so the command line stays fast.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from forecaster.options import ConfigError, option, typed_fields

if TYPE_CHECKING:  # pandas waits: the command line imports this module for its flags
    from forecaster.frequency import Calendar

CellType = Literal["lstm", "gru", "rnn"]
# forecaster.scaling.SCALINGS (not imported: this module stays free of numpy for --help).
ScalingType = Literal["log", "standard", "arcsinh"]
# Upper bounds far above any useful model; they keep a hostile or mistyped manifest from making
# the loader trace or allocate something enormous.
LIMITS = {"hidden": 8192, "layers": 16, "input_size": 100_000, "horizon": 10_000,
          "step": 10_000, "ensemble": 64, "theta_season": 10_000}  # fmt: skip


# Candidate strengths of the pull toward Naive2 on volatile series (forecaster.classical,
# ``ModelConfig.naive_shrink``), chosen on validation (0: none).
NAIVE_SHRINKS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of one model; everything needed to rebuild it from saved weights.

    ``input_size`` points of history are read as ``input_size // step`` recurrent steps of
    ``step`` values each (a whole seasonal cycle per step, as ES-RNN does), which makes the
    scan short and lets the network see the season's shape at every step. The defaults are the
    recipe that beat every M4 Hourly entry, which :func:`build_configs` derives for hourly data.
    """

    # The dataclass checks it (not argparse): one message for flags, config files and manifests.
    cell: CellType = option("recurrent cell", "lstm", choices=False)
    hidden: int = option(
        "units per layer", 128, shown="derived from the data: 128, or 64 when short series "
        "give few training windows"
    )  # fmt: skip
    layers: int = option("stacked recurrent layers", 1)
    dropout: float = option("dropout between layers", 0.0)
    input_size: int = option(
        "history points the model reads, the window", 168, shown="derived from the data: the "
        "longest season and twice the horizon, cut to what half of the series hold"
    )  # fmt: skip
    horizon: int = option(
        "points forecast", 48, shown="derived from the frequency: hourly 48, daily 14, weekly "
        "13, monthly 18, quarterly 8, yearly 6; else 12"
    )  # fmt: skip
    step: int = option(
        "points per recurrent step", 24, shown="derived from the data: one season when the "
        "window holds two, else 1, or coarser where batches of 64 would still cost more than "
        "the data's time budget"
    )  # fmt: skip
    quantiles: tuple[float, ...] = option(
        "quantile levels to learn, e.g. 0.025 0.975 for a 95% interval", ()
    )
    ensemble: int = option("independently trained members whose median is the forecast", 5)
    # Below input_size, shorter histories are padded and their missing steps masked, and
    # training shows the network such histories too.
    min_input: int = option(
        "fewest history points the network reads (0: the whole window)", 0, shown="derived "
        "from the data: the window, or about one horizon when some series are shorter"
    )  # fmt: skip
    # Log ratios make multiplicative seasonality additive (M4, M3); prices that go negative are
    # read standardised (forecaster.scaling, docs/results/epf.md).
    scaling: ScalingType = option(
        "how each window is scaled: log ratios to its mean, standardised (mean, standard "
        "deviation), or arcsinh of standardised (median, MAD)", "log", shown="derived from "
        "the data: log, or standard when some value is negative"
    )  # fmt: skip
    # Set by training, from ``TrainConfig.theta_weights`` on the validation split
    # (forecaster.classical).
    theta_weight: float = option("share of the Theta method's forecast", 0.0, flag=False)
    theta_season: int = option("seasonal period the classical methods adjust for", 1, flag=False)
    damped_weight: float = option("share of damped trend smoothing's forecast", 0.0, flag=False)
    # Set by training, from ``TrainConfig.naive_shrinks`` on the validation split
    # (forecaster.classical.toward_naive); ``theta_season`` is its period too.
    naive_shrink: float = option(
        "how strongly the forecast is pulled toward Naive2 where the history is volatile",
        0.0, flag=False,
    )  # fmt: skip
    # Set by training from the covariates it read (forecaster.covariates.CovariateSpec.widths):
    # 0 for a model of the target alone, whose network is then exactly the univariate one.
    past_features: int = option(
        "covariate values the encoder reads per history point", 0, flag=False
    )
    future_features: int = option(
        "covariate values the head reads per horizon step (future-known ones)", 0, flag=False
    )
    static_features: int = option("static covariate values per series", 0, flag=False)

    def __post_init__(self) -> None:
        if self.min_input == 0:
            object.__setattr__(self, "min_input", self.input_size)
        if self.cell not in ("lstm", "gru", "rnn"):
            raise ValueError(f"cell must be lstm, gru or rnn, got {self.cell!r}")
        if self.scaling not in typing.get_args(ScalingType):
            raise ValueError(f"scaling must be log, standard or arcsinh, got {self.scaling!r}")
        for name, most in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value <= most:
                raise ValueError(f"{name} must be an integer in [1, {most}], got {value!r}")
        if self.input_size % self.step:
            raise ValueError(
                f"input_size {self.input_size} is not a whole number of steps of {self.step} "
                "points; choose a window that is a multiple of the step, or set step"
            )
        if not isinstance(self.min_input, int) or not 0 < self.min_input <= self.input_size:
            raise ValueError(
                f"min_input must be an integer in [1, input_size={self.input_size}], "
                f"got {self.min_input!r}"
            )
        for name in ("past_features", "future_features", "static_features"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= LIMITS["input_size"]:
                raise ValueError(f"{name} must be an integer of at least 0, got {value!r}")
        if self.future_features > self.past_features:
            raise ValueError("future_features must not exceed past_features")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("theta_weight", "damped_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.theta_weight + self.damped_weight > 1.0 + 1e-9:
            raise ValueError(
                f"theta_weight + damped_weight must be at most 1, got {self.theta_weight} + "
                f"{self.damped_weight}"
            )
        if not (isinstance(self.naive_shrink, int | float) and 0.0 <= self.naive_shrink < 1e6):
            raise ValueError(f"naive_shrink must be in [0, 1e6), got {self.naive_shrink!r}")
        if any(not 0.0 < q < 1.0 for q in self.quantiles):
            raise ValueError(f"quantiles must lie in (0, 1), got {self.quantiles}")
        object.__setattr__(self, "quantiles", tuple(sorted(float(q) for q in self.quantiles)))

    @property
    def masked(self) -> bool:
        """Whether histories shorter than the window are read (with a mask of their length)."""
        return self.min_input < self.input_size

    @property
    def covariates(self) -> bool:
        """Whether the network reads covariates (:mod:`forecaster.covariates`)."""
        return bool(self.past_features or self.static_features)

    @property
    def blended(self) -> bool:
        """Whether the point forecast blends in classical methods' (forecaster.classical)."""
        return self.theta_weight + self.damped_weight > 0

    @property
    def classical_share(self) -> float:
        """The classical methods' share of the point forecast (0: the network alone)."""
        return self.theta_weight + self.damped_weight

    @property
    def shrinks(self) -> bool:
        """Whether the point forecast is pulled toward Naive2 on volatile series."""
        return self.naive_shrink > 0

    @property
    def method(self) -> str:
        """What makes this model's forecasts, as answers name it: ``"model"`` (the network
        alone), ``"model+classical"`` (a blend) or ``"classical"`` (validation gave the
        classical methods the whole forecast: the network's is not used), each followed by
        ``"+naive"`` when the forecast is pulled toward Naive2 on volatile series
        (:attr:`naive_shrink`)."""
        if not self.blended:
            made = "model"
        else:
            made = "classical" if self.classical_share >= 1.0 - 1e-9 else "model+classical"
        return made + "+naive" if self.shrinks else made

    @property
    def stated_share(self) -> float | None:
        """The classical share as answers and model listings state it beside :attr:`method`:
        None for the network alone."""
        return self.classical_share if self.blended else None

    @property
    def network(self) -> ModelConfig:
        """This config without the classical shares: the network alone, whose compiled code
        every share reuses (the shares only act on its forecasts, in ``Predictor.blend``)."""
        return dataclasses.replace(
            self, theta_weight=0.0, damped_weight=0.0, theta_season=1, naive_shrink=0.0
        )

    @property
    def outputs(self) -> int:
        """Output channels per horizon step: the point forecast, then each quantile."""
        return 1 + len(self.quantiles)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``min_input`` only when it is not the whole window, ``scaling``
        only when it is not ``"log"``, and each classical share and ``naive_shrink`` only when it
        is not 0 (``theta_season`` only with one of them), so the manifests of models without
        them read as before (and in older versions)."""
        out = dataclasses.asdict(self) | {"quantiles": list(self.quantiles)}
        if not self.masked:
            del out["min_input"]
        if self.scaling == "log":
            del out["scaling"]
        for name in ("theta_weight", "damped_weight", "naive_shrink"):
            if not out[name]:
                del out[name]
        if not (self.blended or self.shrinks):
            del out["theta_season"]
        for name in ("past_features", "future_features", "static_features"):
            if not out[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**typed_fields(cls, data, "model config"))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the model's own live in :class:`ModelConfig`); the defaults are
    the M4 Hourly recipe's."""

    steps: int = option(
        "optimiser steps", 12_000, shown="derived from the data: 50 passes over the training "
        "windows, 1000 to 12000"
    )  # fmt: skip
    batch_size: int = option(
        "windows per member a step", 256, shown="derived from the data: 256, or 128 or 64 "
        "where 256 would cost more than the data's time budget"
    )  # fmt: skip
    learning_rate: float = option("peak learning rate", 3e-3)
    weight_decay: float = option("weight decay", 1e-5)
    # Clipping keeps one exploding gradient (a long backprop through time on an unusual window)
    # from throwing the weights off.
    clip_norm: float = option("gradients are clipped to this global norm", 1.0)
    warmup_steps: int = option("steps of learning-rate warmup", 200)
    eval_every: int = option(
        "steps between validations", 1_000, shown="derived from the data: a twelfth of the steps"
    )
    patience: int = option("evaluations without improvement before stopping early (0: never)", 0)
    # Training reads the segments between longer gaps, a forecast the points after the last, as
    # the service does with a history.
    max_gap: int = option(
        "longest run of missing points interpolated when reading the data; a longer gap cuts "
        "the series, training on the segments between", 3
    )  # fmt: skip
    seed: int = option("random seed", 0)
    seasonality: int = option(
        "seasonal period", 24, shown="derived from the frequency: hourly 24, "
        "daily 7, weekly 52, monthly 12, quarterly 4; else 1"
    )  # fmt: skip
    # Averaging smooths the step-to-step jitter of the forecasts that small data sets show, so
    # the selected weights depend less on the evaluation's luck.
    ema: float = option(
        "decay of the weight average that is evaluated and kept (0: the raw weights)", 0.0,
        shown="derived from the data: 0.99 when short series give few training windows, else 0"
    )  # fmt: skip
    # Doubles the training time at most.
    refit: bool = option(
        "train again on whole histories (validation horizon included) for the selected steps",
        False, shown="derived from the data: on when short series give few training windows"
    )  # fmt: skip
    # The best share is split evenly into ``ModelConfig.theta_weight`` and ``damped_weight``
    # (forecaster.classical).
    theta_weights: tuple[float, ...] = option(
        "shares of the classical forecast (Theta and damped trend) tried on validation "
        "(0 alone: the network alone)", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    )  # fmt: skip
    # After the share, the strongest that validation cannot tell from the best is kept
    # (forecaster.classical.choose_shrink).
    naive_shrinks: tuple[float, ...] = option(
        "strengths of the pull toward Naive2 on volatile series tried on validation; the "
        "strongest within 1% of the best OWA is kept (0 alone: none)", (0.0,),
        shown="derived from the data: 0, 0.5, 1, 2, 4, 8 for short series without a season, "
        "else 0",
    )  # fmt: skip
    # A season apart, the last one at each series' last horizon (forecaster.calibration).
    calibration_origins: int = option(
        "backtest origins per series the intervals are calibrated on, more where few series "
        "would give fewer than 40 errors per step (0: no calibration: only the quantile heads, "
        "served uncalibrated)", 8
    )  # fmt: skip

    # Off unless covariates are read: the service cannot yet send timestamps for a model of the
    # target alone, and such a model must stay servable from values alone.
    calendar: bool | None = option(
        "calendar features from the timestamps (hour, weekday, day of year, month, as fits the "
        "frequency)", None, shown="derived from the data: on when the data have timestamps "
        "and covariates are named"
    )  # fmt: skip
    holidays: str | None = option(
        "country code (ISO 3166, e.g. DE) whose public holidays are a calendar feature", None,
        shown="none", metavar="CC"
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not isinstance(self.calibration_origins, int) or self.calibration_origins < 0:
            raise ValueError(
                f"calibration_origins must be an integer of at least 0, got "
                f"{self.calibration_origins!r}"
            )
        if not isinstance(self.max_gap, int) or self.max_gap < 0:
            raise ValueError(f"max_gap must be an integer of at least 0, got {self.max_gap!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not self.theta_weights or any(not 0.0 <= w <= 1.0 for w in self.theta_weights):
            raise ValueError(f"theta_weights must lie in [0, 1], got {self.theta_weights}")
        object.__setattr__(self, "theta_weights", tuple(float(w) for w in self.theta_weights))
        if not self.naive_shrinks or any(not 0.0 <= k < 1e6 for k in self.naive_shrinks):
            raise ValueError(f"naive_shrinks must lie in [0, 1e6), got {self.naive_shrinks}")
        object.__setattr__(self, "naive_shrinks", tuple(float(k) for k in self.naive_shrinks))


# A step (one recurrent input) holds a whole season when the window holds this many of them.
STEPS_PER_WINDOW = 2
# Training length: this many passes over the training windows, within these bounds.
EPOCHS, MIN_STEPS = 50, 1_000
# Validation passes per run (the kept weights are the best of them).
EVALUATIONS = 12
# Few windows of short series (read masked; under this many windows: M3 Yearly has 4,038,
# Quarterly 13,932 and Monthly 60,212; M4 Hourly, 244,618 full windows, is not read masked): the
# recipe overfits (Yearly within a few hundred steps) and its validation curve jitters. A smaller
# network, selected by the average of its weights and then refit on whole histories (whose last
# horizon is a large share of a short series) did better on validation (Monthly: OWA 0.8845
# against 0.895; the refit: on a nested split, one more horizon held out); the smaller network
# also pays for the refit. Not for full windows (M3 Other, 6,539 windows of series 8 horizons
# long or more), where the recipe did better on both.
FEW_WINDOWS = 100_000
FEW_MODEL = {"hidden": 64}
# Early stopping after two evaluations without improvement: the averaged weights' validation
# curves on M3 (python -m benchmarks.m3, "evaluations") pick the same step as running on (so the
# same scores) and stop Yearly at step 581 of 1,000 (its best: 415); Quarterly and Monthly improve
# to the end or within two evaluations of it. One evaluation would have stopped Monthly at 8,847
# (best then 0.8874; at 10,813 0.8837).
FEW_TRAIN = {"ema": 0.99, "refit": True, "patience": 2}


def training_windows(min_input: int, horizon: int, lengths: Sequence[int]) -> int:
    """How many training windows ``lengths`` give (see :func:`forecaster.windows.window_index`)."""
    shortest = min_input + horizon
    return sum(max(0, int(n) - horizon - shortest + 1) for n in lengths)


def default_steps(model: ModelConfig, batch_size: int, lengths: Sequence[int]) -> dict[str, int]:
    """Optimiser steps and evaluation interval for ``lengths``: ``EPOCHS`` passes over the
    training windows, between ``MIN_STEPS`` and the recipe's 12,000, evaluated ``EVALUATIONS``
    times."""
    windows = training_windows(model.min_input, model.horizon, lengths)
    steps = min(TrainConfig.steps, max(MIN_STEPS, 100 * round(EPOCHS * windows / batch_size / 100)))
    return {"steps": steps, "eval_every": max(1, steps // EVALUATIONS)}


# Training cost, in CPU-seconds of this project's 2-core CPU (wall time is about half on a quiet
# machine, as much as this when another job holds a core). Measured there (the
# "weekly_step_profile" lines of benchmarks/results/own_data.jsonl): one optimiser step costs
# about COST_PER_MAC seconds per multiply-accumulate of the recurrent cells (forward, backward
# and update together: 56 ms for the M4 Hourly recipe's 7 steps of 24 points, 372 ms for a
# weekly window of 52 points read one by one). The estimate scales with the product of the
# ensemble, the batch and the cells' sizes; measured, one member cost 0.35 of five and a batch of
# 64 0.29 of 256, so it errs high for small ones. Compiling the training loop, which unrolls the
# scan, costs about COMPILE_SECONDS plus COMPILE_PER_STEP a recurrent step.
COST_PER_MAC = 9e-11
COMPILE_SECONDS, COMPILE_PER_STEP = 8.0, 0.6
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# The budget a derived config must fit: COST_BASE for any data, plus COST_PER_POINT for each
# point of history (a single series of 10,000 points: 200 CPU-seconds, about 3 minutes on one
# free core; M4 Hourly's 353,500 points: 887, which its recipe's estimated 765 fits).
COST_BASE, COST_PER_POINT = 180.0, 2e-3
# Smaller batches (windows a member a step) tried, in turn, before coarser steps.
COST_BATCHES = (128, 64)


def step_cost(model: ModelConfig, batch_size: int) -> float:
    """CPU-seconds of one optimiser step of ``model`` on ``batch_size`` windows per member: the
    recurrent cells' multiply-accumulates (``input_size // step`` steps, each reading ``step``
    values or the layer below) times ``COST_PER_MAC``."""
    scan = model.input_size // model.step
    inputs = model.step * (1 + model.past_features) + model.hidden * (model.layers - 1)
    macs = GATES[model.cell] * model.hidden * (model.hidden * model.layers + inputs) * scan
    return COST_PER_MAC * model.ensemble * batch_size * macs


def training_cost(model: ModelConfig, train: TrainConfig) -> float:
    """Estimated CPU-seconds to train ``model`` with ``train`` (see ``COST_PER_MAC``): compiling
    the loop once (the refit reuses it), then every step, twice with a refit. Validation passes
    are left out: a forward pass over each series, a small share of a step's cost."""
    scan = model.input_size // model.step
    runs = 2 if train.refit else 1
    compile_seconds = COMPILE_SECONDS + COMPILE_PER_STEP * scan * model.layers
    return compile_seconds + runs * train.steps * step_cost(model, train.batch_size)


def cost_budget(lengths: Sequence[int]) -> float:
    """CPU-seconds that the derived settings may cost for series of ``lengths``: ``COST_BASE``
    plus ``COST_PER_POINT`` a point."""
    return COST_BASE + COST_PER_POINT * float(sum(int(n) for n in lengths))


def step_candidates(input_size: int, seasonality: int) -> list[int]:
    """Points per recurrent step that can read a window of ``input_size`` points, finest first:
    its divisors that divide ``seasonality`` or are whole multiples of it (a step never straddles
    part of a season), leaving at least ``STEPS_PER_WINDOW`` recurrent steps; one point per step
    always qualifies."""
    ok = [
        d
        for d in range(2, input_size // STEPS_PER_WINDOW + 1)
        if input_size % d == 0 and (seasonality % d == 0 or d % seasonality == 0)
    ]
    return [1, *ok]


def default_input_size(cal: Calendar, horizon: int, lengths: Sequence[int] | None) -> int:
    """The window rule (``input_size``): long enough to see the longest season and twice the
    horizon (rounded up to whole seasons), short enough that at least half of the series give
    full training windows (window + horizon points before the validation horizon), and never
    below one horizon."""
    seasonality = cal.seasonality
    input_size = max(max(cal.seasons), 2 * horizon)
    input_size = seasonality * -(-input_size // seasonality)
    if lengths is not None and len(lengths):
        fits = int(sorted(lengths)[len(lengths) // 2]) - 2 * horizon
        input_size = max(min(input_size, fits), horizon)
    return input_size


# The scaling of data that go negative, chosen on the validation days of the EPF markets that do
# (docs/results/epf.md; the 56 days before the test period, one member, 800 steps): MAE on PJM
# 4.007 log, 3.415 standard, 3.490 arcsinh; on BE 4.932, 4.899, 4.915.
NEGATIVE_SCALING: ScalingType = "standard"


def default_scaling(lowest: float | None) -> ScalingType:
    """The scaling rule: log ratios (the M4 and M3 recipe) unless the data's ``lowest`` value
    is negative, where a window's log ratios would hang on its most negative point; then
    ``NEGATIVE_SCALING``. Zeros stay on the log path (forecaster.scaling shifts such windows),
    and so does unknown data (``None``)."""
    return NEGATIVE_SCALING if lowest is not None and lowest < 0 else "log"


def data_facts(series: Any) -> dict[str, Any]:
    """What :func:`build_configs` derives settings from, of a loaded
    :class:`~forecaster.data.SeriesSet`: its frequency, its series' lengths and its lowest value
    (the segments before long gaps included)."""
    parts = [*series.values, *(p for ps in series.before_gaps.values() for p in ps)]
    lowest = min((float(p.min()) for p in parts if len(p)), default=None)
    return {"freq": series.freq, "lengths": series.lengths.tolist(), "lowest": lowest}


def build_configs(
    model: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    where: str = "config",
    *,
    freq: str | None = None,
    lengths: Sequence[int] | None = None,
    lowest: float | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """Both configs from the settings that were given (plain JSON-like values); the rest are
    derived from the data's frequency (:func:`forecaster.frequency.calendar`) and series
    ``lengths``:

    - seasonality: the frequency's shortest seasonal period; horizon: the frequency's default;
    - window (``input_size``): :func:`default_input_size`;
    - step: one season when the window holds at least ``STEPS_PER_WINDOW`` of them (and is a
      whole number of them), else one point; when that config's :func:`training_cost` exceeds
      the :func:`cost_budget` of ``lengths``: a smaller batch (``COST_BATCHES``, the schedule
      kept), then the finest coarser step of :func:`step_candidates`, with each batch in turn,
      the first that fits (else the cheapest of them);
    - ``min_input``: the whole window when every series is long enough for it, else one
      horizon (shorter histories are read masked);
    - scaling: :func:`default_scaling` of the data's ``lowest`` value;
    - training steps and evaluation interval: :func:`default_steps`;
    - short series (read masked) giving fewer than ``FEW_WINDOWS`` training windows:
      ``FEW_MODEL`` and ``FEW_TRAIN`` (a smaller network, weight averaging, early stopping, a
      refit on whole histories);
    - short series (some read masked) without a season: the pull toward Naive2 on volatile
      series is chosen on validation (``naive_shrinks``: ``NAIVE_SHRINKS``);
    - everything else: the M4 Hourly recipe (the dataclasses' defaults).

    Raises :class:`ConfigError` naming ``where`` and the setting.
    """
    given_model = typed_fields(ModelConfig, model or {}, f"{where}: model")
    given_train = typed_fields(TrainConfig, train or {}, f"{where}: train")
    from forecaster.frequency import calendar  # pandas only now (TYPE_CHECKING above)

    cal = calendar(freq)
    seasonality = given_train.get("seasonality", cal.seasonality)
    if seasonality != cal.seasonality:
        cal = dataclasses.replace(cal, seasons=(seasonality,))
    horizon = given_model.get("horizon", cal.horizon)
    input_size = given_model.get("input_size") or default_input_size(cal, horizon, lengths)
    whole = input_size % seasonality == 0 and input_size >= STEPS_PER_WINDOW * seasonality
    step = seasonality if whole else 1
    derive = partial(_derive, given_model, given_train, seasonality, horizon, input_size, lengths,
                     default_scaling(lowest))  # fmt: skip
    try:
        configs = derive(step)
        if lengths is None or not len(lengths):
            return configs
        # Over the budget, a step is made cheaper: first by fewer windows a batch, the schedule
        # kept (one series of 2,232 points passes 119 times over its windows in 1,000 steps of
        # 256, far above EPOCHS), then by reading the window in coarser steps, which shortens
        # the scan (a weekly window read point by point: 52 recurrent steps against the M4
        # Hourly recipe's 7). On co2, a point a step, batch 64 scored MASE 0.30 for 115
        # CPU-seconds, four points a step (batch 256) 0.45 for 130, the full 0.25 for 430.
        budget = cost_budget(lengths)
        coarser = [d for d in step_candidates(input_size, seasonality) if d > step]
        steps = [step] if "step" in given_model else [step, *coarser]
        largest = configs[1].batch_size
        batches = [largest] if "batch_size" in given_train else sorted(
            {largest, *(b for b in COST_BATCHES if b < largest)}, reverse=True
        )  # fmt: skip
        tried = []
        for points in steps:
            model_cfg, train_cfg = derive(points)
            for batch in batches:
                candidate = (model_cfg, dataclasses.replace(train_cfg, batch_size=batch))
                if training_cost(*candidate) <= budget:
                    return candidate
                tried.append(candidate)
        return min(tried, key=lambda c: training_cost(*c))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _derive(
    given_model: Mapping[str, Any],
    given_train: Mapping[str, Any],
    seasonality: int,
    horizon: int,
    input_size: int,
    lengths: Sequence[int] | None,
    scaling: ScalingType,
    step: int,
) -> tuple[ModelConfig, TrainConfig]:
    """Both configs for a window read in steps of ``step`` points (see :func:`build_configs`);
    raises ValueError or TypeError for settings that do not make a config."""
    derived: dict[str, Any] = {"horizon": horizon, "input_size": input_size, "scaling": scaling}
    derived["step"] = step
    if lengths is not None and len(lengths) and min(lengths) < input_size + 2 * horizon:
        derived["min_input"] = min(input_size, step * -(-horizon // step))
    small: dict[str, Any] = {}
    least = given_model.get("min_input") or derived.get("min_input", input_size)
    windows = training_windows(least, horizon, lengths) if lengths is not None else 0
    if least < input_size and 0 < windows < FEW_WINDOWS:  # few windows, some series read masked
        derived |= FEW_MODEL
        small = FEW_TRAIN
    model_cfg = ModelConfig(**{**derived, **given_model})
    schedule: dict[str, Any] = {}
    if lengths is not None and len(lengths):
        batch = given_train.get("batch_size", TrainConfig.batch_size)
        schedule = {**default_steps(model_cfg, batch, lengths), **small}
    if "steps" in given_train:  # evaluate as often relative to the run, however long
        schedule["eval_every"] = max(1, given_train["steps"] // EVALUATIONS)
    if seasonality == 1 and least < input_size:
        # Short series without a season: validation chooses how strongly volatile ones are
        # pulled toward Naive2 (forecaster.classical), which cut M3 Yearly's runaway forecasts.
        # Not with a season: on M3 Quarterly the pull validation preferred lost on the hold-out
        # (sMAPE 8.81 against 8.66), whose APE already beat naive's and Naive2's everywhere.
        schedule["naive_shrinks"] = NAIVE_SHRINKS
    train_cfg = TrainConfig(**{**schedule, **given_train, "seasonality": seasonality})
    return model_cfg, train_cfg
