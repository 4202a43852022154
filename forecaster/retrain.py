"""The batch retraining job: train a challenger on the latest data, backtest it against the
production model (the champion), publish it, and move ``production`` only when it is better.

One job, for one model name, under the registry's lock (a second job is refused at once):

1. Load the data and the champion (the version ``production`` points at, if any).
2. Cut the hold-out: the last ``horizon`` points of every series. The challenger trains on the
   points before it only (:func:`forecaster.train.fit` then keeps its own validation split
   inside those), so neither its weights nor its model selection ever see the hold-out.
3. Backtest: both models forecast the hold-out from the same histories (every point before it)
   and are scored on the same targets: sMAPE, MASE, and OWA against Naive2 on this data.
4. Sanity checks on the challenger: finite forecasts of fixed probe series (seasonal, constant,
   all-zero, trending, huge, negative) and of the backtest, each within
   ``10 * max|history| + 1``.
5. Decide (:func:`decide`), then publish the challenger with ``report.json`` and ``plot.png``
   inside the version (hashed with its weights), then move the alias. The alias moves last, so
   a crash at any point leaves ``production`` where it was; at worst an unpromoted version
   remains.

A config file (TOML or JSON, :func:`load_jobs`) lists several models for one run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from forecaster import data, metrics, parallel
from forecaster.artifacts import ArtifactError, LoadedModel
from forecaster.model import ModelConfig
from forecaster.predict import Predictor
from forecaster.registry import ModelNotFoundError, Registry
from forecaster.train import TrainConfig, TrainResult, fit

Policy = Literal["if-better", "always", "never"]
Status = Literal["promoted", "kept", "rejected", "failed", "worker"]
POLICIES: tuple[str, ...] = get_args(Policy)
# Statuses that mean the job reached a decision (exit 0); anything else is a failure.
DECIDED = frozenset({"promoted", "kept", "worker"})
REPORT = "report.json"
PLOT = "plot.png"
# A forecast beyond this many times the history's largest magnitude is a broken model.
RANGE_FACTOR = 10.0


class ConfigError(ValueError):
    """The retraining config (file or flags) is invalid; the message names the key."""


class RetrainError(RuntimeError):
    """The job could not finish; the registry is as it was (bar an unpromoted version)."""


# ------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class DataSource:
    """Where a model's training data comes from (see :func:`forecaster.data.load_series`)."""

    url: str
    format: data.Format = "auto"
    id_col: str = "id"
    time_col: str = "timestamp"
    value_col: str = "value"
    freq: str | None = None

    def load(self) -> data.SeriesSet:
        return data.load_series(
            self.url,
            format=self.format,
            id_col=self.id_col,
            time_col=self.time_col,
            value_col=self.value_col,
            freq=self.freq,
        )


@dataclass(frozen=True)
class Job:
    """Everything one retraining of one model needs."""

    name: str
    registry: str
    data: DataSource
    model: ModelConfig
    train: TrainConfig
    promote: Policy = "if-better"
    # Least relative OWA improvement over the champion that earns promotion (0.01 = 1%).
    margin: float = 0.0
    warm_start: bool = False
    plot_series: int = 4

    def __post_init__(self) -> None:
        if self.promote not in POLICIES:
            raise ConfigError(f"promote must be one of {', '.join(POLICIES)}, not {self.promote!r}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(
                f"margin must be in [0, 1) (a relative improvement), not {self.margin}"
            )


SOURCE_KEYS = frozenset(f.name for f in dataclasses.fields(DataSource)) - {"url"}
POLICY_KEYS = frozenset({"registry", "promote", "margin", "warm_start", "plot_series"})
SECTION_KEYS = frozenset({"model", "train"})
SHARED_KEYS = SOURCE_KEYS | POLICY_KEYS | SECTION_KEYS
TOP_KEYS = SHARED_KEYS | {"models"}
MODEL_KEYS = SHARED_KEYS | {"name", "data"}
MODEL_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig)}
TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` config file into a dict (no validation yet)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        if path.suffix.lower() == ".json":
            parsed = json.loads(raw)
        elif path.suffix.lower() == ".toml":
            parsed = tomllib.loads(raw.decode())
        else:
            raise ConfigError(f"config file {path} must end in .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:]}: {err}") from err
    if not isinstance(parsed, dict):
        raise ConfigError(f"config file {path} must hold an object/table at the top")
    return parsed


def load_jobs(
    path: str | Path, overrides: Mapping[str, Any] | None = None, only: str | None = None
) -> list[Job]:
    """The jobs a config file describes (see the README for the format).

    Precedence, highest first: ``overrides`` (flags given on the command line, with ``model``
    and ``train`` sub-dicts), the model's own entry, the file's top level, built-in defaults.
    ``only`` keeps just the model of that name.
    """
    raw = read_config_file(path)
    _check_keys(raw, TOP_KEYS, "the top level")
    entries = raw.get("models")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("the config needs a non-empty list `models` ([[models]] in TOML)")
    top = {k: v for k, v in raw.items() if k != "models"}
    jobs = [
        _job_from_layers(i, entry, top, dict(overrides or {})) for i, entry in enumerate(entries)
    ]
    if only is not None:
        jobs = [j for j in jobs if j.name == only]
        if not jobs:
            raise ConfigError(f"the config file lists no model named {only!r}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError(f"model {max(names, key=names.count)!r} is listed twice")
    return jobs


def _job_from_layers(index: int, entry: Any, top: dict, overrides: dict) -> Job:
    where = f"models[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table/object")
    _check_keys(entry, MODEL_KEYS, where)
    for key in ("name", "data"):
        if not isinstance(entry.get(key), str):
            raise ConfigError(f"{where} needs `{key}` (a string)")
    where = f"model {entry['name']!r}"
    merged: dict[str, Any] = {}
    for layer in (top, entry, overrides):
        for key, value in layer.items():
            if key in SECTION_KEYS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: `{key}` must be a table/object")
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    if "registry" not in merged:
        raise ConfigError(f"{where}: no `registry` in the file and no --registry given")
    model_cfg, train_cfg = build_configs(merged.get("model", {}), merged.get("train", {}), where)
    reading = {k: merged[k] for k in SOURCE_KEYS if k in merged}
    policy = {k: merged[k] for k in POLICY_KEYS if k in merged}
    _check_types({**reading, **policy}, where)
    source = DataSource(merged["data"], **reading)
    return Job(name=merged["name"], data=source, model=model_cfg, train=train_cfg, **policy)


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _check_types(settings: dict[str, Any], where: str) -> None:
    """Refuse a data or policy setting of the wrong JSON/TOML type."""
    kinds: dict[str, Any] = dict.fromkeys(SOURCE_KEYS, str)
    kinds |= {
        "registry": str,
        "promote": str,
        "margin": (int, float),
        "warm_start": bool,
        "plot_series": int,
    }
    for key, value in settings.items():
        if not isinstance(value, kinds[key]) or (key != "warm_start" and isinstance(value, bool)):
            raise ConfigError(f"{where}: `{key}` has the wrong type: {value!r}")


def build_configs(
    model: Mapping[str, Any], train: Mapping[str, Any], where: str = "config"
) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configs from plain dicts, with the command line's defaults (the
    recurrent step and the window follow ``train.seasonality``)."""
    # One rule for defaults whether settings come from flags or from a file.
    from forecaster.cli._options import model_and_train_configs

    _check_keys(model, frozenset(MODEL_FIELDS), f"{where}: model")
    _check_keys(train, frozenset(TRAIN_FIELDS), f"{where}: train")
    values = {**_typed(model, MODEL_FIELDS, where), **_typed(train, TRAIN_FIELDS, where)}
    names = {*MODEL_FIELDS, *TRAIN_FIELDS}
    args = argparse.Namespace(**{n: values.get(n) for n in names})
    try:
        return model_and_train_configs(args)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _typed(values: Mapping[str, Any], fields: dict[str, dataclasses.Field], where: str) -> dict:
    """``values`` checked against each field's default type (ints accepted for floats)."""
    out = {}
    for key, value in values.items():
        default = fields[key].default
        if key == "quantiles":
            ok = isinstance(value, list) and all(_is_number(q) for q in value)
            value = tuple(value) if ok else value
        elif isinstance(default, float):
            ok = _is_number(value)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default)) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{where}: `{key}` has the wrong type: {value!r}")
        out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class Holdout:
    """The most recent window of every series: forecast ``targets`` [n, horizon] from
    ``histories`` (all points before them)."""

    ids: list[str]
    histories: list[np.ndarray]
    targets: np.ndarray
    seasonality: int

    @property
    def horizon(self) -> int:
        return self.targets.shape[1]

    def select(self, keep: np.ndarray, horizon: int) -> Holdout:
        """The series where ``keep`` [n] is true, scored on the first ``horizon`` steps."""
        pos = np.flatnonzero(keep)
        return Holdout(
            [self.ids[i] for i in pos],
            [self.histories[i] for i in pos],
            self.targets[pos, :horizon],
            self.seasonality,
        )


def split_holdout(
    series: data.SeriesSet, horizon: int, seasonality: int
) -> tuple[data.SeriesSet, Holdout]:
    """``(training series without their last horizon points, the hold-out)``."""
    train, targets = data.train_val_split(series, horizon)
    return train, Holdout(list(train.ids), list(train.values), targets, seasonality)


def score(holdout: Holdout, forecast: np.ndarray) -> dict[str, float]:
    """sMAPE, MASE, MAE, RMSE and OWA against Naive2 on this very hold-out."""
    m = holdout.seasonality
    scores = metrics.evaluate(holdout.histories, holdout.targets, forecast, m)
    scores["owa"] = metrics.owa_vs_naive2(holdout.histories, holdout.targets, forecast, m)
    return scores


def forecast(config: ModelConfig, params: Any, histories: Sequence[np.ndarray], horizon: int):
    """Point forecasts [n, horizon] (float64) of one model."""
    return Predictor(config, params).predict(histories, horizon).point


@dataclass
class Backtest:
    """Both models' forecasts and scores on one shared hold-out."""

    holdout: Holdout
    challenger: np.ndarray
    challenger_metrics: dict[str, float]
    champion: np.ndarray | None = None
    champion_metrics: dict[str, float] | None = None
    champion_error: str | None = None
    naive2_metrics: dict[str, float] = field(default_factory=dict)


def backtest(
    holdout: Holdout, challenger: tuple[ModelConfig, Any], champion: LoadedModel | None
) -> Backtest:
    """Score both models on the same series, inputs and targets.

    Series too short for either model's input window are left out for both, and when the
    champion forecasts fewer steps than the hold-out, both are scored on its horizon only.
    """
    horizon, needed = holdout.horizon, challenger[0].input_size
    if champion is not None:
        horizon = min(horizon, champion.config.horizon)
        needed = max(needed, champion.config.input_size)
    lengths = np.array([len(h) for h in holdout.histories])
    if not (lengths >= needed).any():
        raise RetrainError(f"no series has the {needed} points before the hold-out a model needs")
    common = holdout.select(lengths >= needed, horizon)
    ours = forecast(*challenger, common.histories, horizon)
    naive = metrics.naive2(common.histories, horizon, common.seasonality)
    result = Backtest(common, ours, score(common, ours), naive2_metrics=score(common, naive))
    if champion is not None:
        result.champion = forecast(champion.config, champion.params, common.histories, horizon)
        result.champion_metrics = score(common, result.champion)
    return result


# ------------------------------------------------------------------------------------ sanity


def probe_series(length: int, season: int) -> dict[str, np.ndarray]:
    """Fixed awkward inputs every model must forecast finitely and within range."""
    t = np.arange(length, dtype=np.float64)
    wave = np.sin(2 * np.pi * t / max(season, 1))
    return {
        "seasonal": 100 + 10 * wave,
        "constant": np.full(length, 7.0),
        "zeros": np.zeros(length),
        "trend": 1 + t,
        "huge": 1e9 * (2 + wave),
        "negative": -50 + 5 * wave,
    }


def out_of_range(histories: Sequence[np.ndarray], forecasts: np.ndarray) -> np.ndarray:
    """[n] whether each forecast is non-finite or beyond ``10 * max|history| + 1``."""
    bound = np.array([RANGE_FACTOR * np.max(np.abs(h)) + 1.0 for h in histories])
    finite = np.isfinite(forecasts).all(axis=1)
    inside = (np.abs(np.nan_to_num(forecasts, nan=np.inf)) <= bound[:, None]).all(axis=1)
    return ~(finite & inside)


def sanity_problems(
    config: ModelConfig, params: Any, backtest_result: Backtest | None = None
) -> list[str]:
    """What is wrong with a model's forecasts; empty when it may serve."""
    probes = probe_series(config.input_size, config.step)
    out = Predictor(config, params).predict(list(probes.values()))
    problems = [
        f"probe {name!r}: forecast non-finite or beyond {RANGE_FACTOR:g}x the history's range"
        for name, bad in zip(probes, _any_bad(list(probes.values()), out), strict=True)
        if bad
    ]
    if backtest_result is not None:
        bad = out_of_range(backtest_result.holdout.histories, backtest_result.challenger)
        if bad.any():
            ids = [backtest_result.holdout.ids[i] for i in np.flatnonzero(bad)[:5]]
            problems.append(f"{int(bad.sum())} backtest forecast(s) out of range, e.g. {ids}")
    return problems


def _any_bad(histories: list[np.ndarray], out: Any) -> np.ndarray:
    """[n] whether the point forecast or any quantile of each series is out of range."""
    bad = out_of_range(histories, out.point)
    for band in out.quantiles.values():
        bad |= out_of_range(histories, band)
    return bad


# ---------------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes production, and why (one sentence)."""

    promote: bool
    status: Status
    reason: str
    improvement: float | None = None


def decide(
    policy: Policy,
    margin: float,
    challenger_owa: float,
    champion_owa: float | None,
    problems: Sequence[str] = (),
    champion_version: int | None = None,
) -> Decision:
    """Apply the promotion policy.

    ``improvement`` is the relative OWA gain ``(champion - challenger) / champion``; with
    ``if-better`` the challenger must improve by at least ``margin`` (and by more than
    nothing). A challenger that fails a sanity check is never promoted, whatever the policy.
    """
    champ = f"champion v{champion_version}" if champion_version else "the champion"
    gain = _improvement(challenger_owa, champion_owa)
    if problems:
        return Decision(
            False, "rejected", "challenger failed sanity checks: " + "; ".join(problems), gain
        )
    if policy == "never":
        return Decision(False, "kept", "policy never: production left as it was", gain)
    if policy == "always":
        return Decision(True, "promoted", "policy always: the challenger is sane", gain)
    if champion_owa is None:
        return Decision(True, "promoted", "no champion to beat: the challenger is sane", gain)
    if not math.isfinite(champion_owa) and math.isfinite(challenger_owa):
        return Decision(
            True,
            "promoted",
            f"{champ} has no usable backtest score (OWA {champion_owa}); the challenger is sane",
            gain,
        )
    if gain is not None and gain > 0 and gain >= margin:
        return Decision(
            True,
            "promoted",
            f"challenger OWA {challenger_owa:.4f} beats {champ}'s "
            f"{champion_owa:.4f} by {gain:.1%} (margin {margin:.1%})",
            gain,
        )
    shown = "n/a" if gain is None else f"{gain:+.1%}"
    return Decision(
        False,
        "kept",
        f"challenger OWA {challenger_owa:.4f} vs {champ}'s "
        f"{champion_owa:.4f} ({shown}) does not clear the margin {margin:.1%}",
        gain,
    )


def _improvement(challenger: float, champion: float | None) -> float | None:
    """Relative OWA gain; +inf when only the champion's OWA is unusable, None when the
    challenger's is (it cannot be shown better)."""
    if champion is None or not math.isfinite(challenger):
        return None
    if not math.isfinite(champion):
        return math.inf
    if champion <= 0:
        return None  # a perfect champion cannot be beaten
    return (champion - challenger) / champion


# ------------------------------------------------------------------------------------ report


def plot_png(result: Backtest, labels: tuple[str, str], n: int = 4) -> bytes:
    """PNG of the last history points, the actuals and both forecasts for ``n`` series."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hold = result.holdout
    picks = np.unique(np.linspace(0, len(hold.ids) - 1, min(n, len(hold.ids))).astype(int))
    fig = Figure(figsize=(10, 2.6 * len(picks)), layout="constrained")
    FigureCanvasAgg(fig)  # an explicit canvas: no pyplot, no global backend state
    for row, i in enumerate(picks):
        ax = fig.add_subplot(len(picks), 1, row + 1)
        past = hold.histories[i][-3 * hold.horizon :]
        t_past = np.arange(-len(past), 0)
        t_next = np.arange(hold.horizon)
        ax.plot(t_past, past, color="0.4", lw=1, label="history")
        ax.plot(t_next, hold.targets[i], color="black", lw=1.5, label="actual")
        ax.plot(t_next, result.challenger[i], color="tab:blue", lw=1.5, label=labels[0])
        if result.champion is not None:
            ax.plot(t_next, result.champion[i], color="tab:orange", ls="--", label=labels[1])
        ax.set_title(f"series {hold.ids[i]}", fontsize=9)
        ax.axvline(-0.5, color="0.8", lw=0.8)
    fig.axes[0].legend(loc="upper left", fontsize=8, ncol=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    return buf.getvalue()


def _metrics_json(values: Mapping[str, float] | None) -> dict[str, float | None] | None:
    if values is None:
        return None
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}


# --------------------------------------------------------------------------------------- job


@dataclass
class Outcome:
    """What one job did; ``report`` is the JSON stored with the challenger's version."""

    name: str
    status: Status
    reason: str
    challenger_version: int | None = None
    champion_version: int | None = None
    production: int | None = None
    challenger_owa: float | None = None
    champion_owa: float | None = None
    improvement: float | None = None
    report_path: str | None = None
    seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in DECIDED


@dataclass
class _Champion:
    version: int | None = None
    model: LoadedModel | None = None
    error: str | None = None


@dataclass
class _Run:
    """What one job has found so far; the report is written from it."""

    job: Job
    series: data.SeriesSet
    champion: _Champion
    warm: dict[str, Any]
    trained: TrainResult
    result: Backtest | None = None
    problems: list[str] = field(default_factory=list)
    decision: Decision | None = None
    version: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class _Clock:
    """Seconds spent in each phase, for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[key] = round(time.perf_counter() - t0, 3)


def run_job(job: Job, *, progress: bool = True) -> Outcome:
    """Retrain, backtest, publish and maybe promote one model; see the module docstring.

    Raises PublishLockedError when another job holds the model, and the data, registry,
    training and :class:`RetrainError` errors of a failed job; production is then unchanged.
    """
    started = time.perf_counter()
    registry = Registry(job.registry)
    primary = parallel.is_primary()  # in multi-host runs only process 0 touches the registry
    lock = registry.lock(job.name, blocking=False) if primary else contextlib.nullcontext()
    with lock:
        run = _train(job, registry, progress)
        if not primary:
            return Outcome(job.name, "worker", "trained as a worker of a multi-host run")
        _evaluate(run)
        run.version = _next_version(registry, job.name)
        clock = _Clock()
        clock.time("publish_s", _publish, registry, run)
        if run.decision.promote:
            clock.time("promote_s", registry.promote, job.name, run.version)
    run.seconds |= clock.seconds
    return _outcome(run, registry, time.perf_counter() - started)


def _train(job: Job, registry: Registry, progress: bool) -> _Run:
    """Load the data and the champion, and fit the challenger on all but the hold-out."""
    clock = _Clock()
    series = clock.time("load_s", job.data.load)
    champion = clock.time("champion_s", _load_champion, registry, job.name)
    train_series, _ = split_holdout(series, job.model.horizon, job.train.seasonality)
    warm = _warm_start(job, champion)
    trained = clock.time(
        "train_s",
        fit,
        train_series,
        job.model,
        job.train,
        progress=progress,
        initial_params=warm.pop("params", None),
    )
    return _Run(job, series, champion, warm, trained, seconds=clock.seconds)


def _evaluate(run: _Run) -> None:
    """Backtest both models, check the challenger's sanity and decide."""
    job, clock = run.job, _Clock()
    _, holdout = split_holdout(run.series, job.model.horizon, job.train.seasonality)
    run.result = clock.time(
        "backtest_s", backtest, holdout, (job.model, run.trained.params), run.champion.model
    )
    run.problems = clock.time(
        "sanity_s", sanity_problems, job.model, run.trained.params, run.result
    )
    champion_owa = (
        None if run.result.champion_metrics is None else run.result.champion_metrics["owa"]
    )
    if run.champion.error is not None:
        champion_owa = math.nan  # production exists but cannot load: anything sane replaces it
    run.decision = decide(
        job.promote,
        job.margin,
        run.result.challenger_metrics["owa"],
        champion_owa,
        run.problems,
        run.champion.version,
    )
    run.seconds |= clock.seconds


def _load_champion(registry: Registry, name: str) -> _Champion:
    """The production model, if any; one that fails to load is reported, not fatal."""
    try:
        version = registry.alias(name)
    except ModelNotFoundError:
        return _Champion()
    if version is None:
        return _Champion()
    try:
        return _Champion(version, registry.load(name, version))
    except ArtifactError as err:
        return _Champion(version, error=f"champion v{version} failed to load: {err}")


def _next_version(registry: Registry, name: str) -> int:
    # Under the lock nobody else publishes, so the next number is known before publishing,
    # which lets the report inside the version name its own version.
    try:
        return max(registry.versions(name)) + 1
    except ModelNotFoundError:
        return 1


def _warm_start(job: Job, champion: _Champion) -> dict[str, Any]:
    """Initial weights from the champion when asked for and the architecture is identical."""
    if not job.warm_start:
        return {"requested": False, "used": False}
    if champion.model is None:
        return {"requested": True, "used": False, "reason": "no loadable champion"}
    if champion.model.config != job.model:
        return {"requested": True, "used": False, "reason": "the champion's config differs"}
    return {
        "requested": True,
        "used": True,
        "from_version": champion.version,
        "params": champion.model.params,
    }


def _publish(registry: Registry, run: _Run) -> None:
    """Publish the challenger with its report and plot inside the version directory."""
    job = run.job
    report = run.report = build_report(run)
    files = {
        REPORT: json.dumps(report, indent=2, allow_nan=False).encode() + b"\n",
        PLOT: plot_png(run.result, ("challenger", "champion"), job.plot_series),
    }
    published = registry.publish(
        job.name,
        job.model,
        run.trained.params,
        metrics={"validation": run.trained.val_metrics, "backtest": run.result.challenger_metrics},
        data_fingerprint=report["data"]["fingerprint"],
        freq=run.series.freq,
        seasonality=job.train.seasonality,
        extra_files=files,
    )
    if published != run.version:  # only possible if a writer ignored the lock
        raise RetrainError(
            f"the registry numbered the challenger {published}, not {run.version}: another "
            "writer bypassed the lock; its report names the wrong version, so it was not promoted"
        )


def build_report(run: _Run) -> dict[str, Any]:
    """The JSON document stored as ``report.json`` inside the challenger's version."""
    job, result, decision, champion = run.job, run.result, run.decision, run.champion
    before = champion.version
    return {
        "name": job.name,
        "registry": job.registry,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "source": job.data.url,
            "fingerprint": data.fingerprint(run.series),
            "series": len(run.series),
            "observations": int(run.series.lengths.sum()),
            "freq": run.series.freq,
        },
        "backtest": {
            "series": len(result.holdout.ids),
            "horizon": result.holdout.horizon,
            "seasonality": result.holdout.seasonality,
            "window": "the last horizon points of every series, forecast from all points "
            "before them; the challenger never trained on them",
            "naive2": _metrics_json(result.naive2_metrics),
        },
        "challenger": {
            "version": run.version,
            "config": job.model.to_dict(),
            "train": dataclasses.asdict(job.train),
            "metrics": _metrics_json(result.challenger_metrics),
            "validation": _metrics_json(run.trained.val_metrics),
            "best_step": run.trained.best_step,
            "warm_start": run.warm,
            "sanity": {"passed": not run.problems, "problems": run.problems},
        },
        "champion": {
            "version": before,
            "error": champion.error,
            "metrics": _metrics_json(result.champion_metrics),
            "config": champion.model.config.to_dict() if champion.model else None,
            "data_fingerprint": champion.model.manifest.data_fingerprint
            if champion.model
            else None,
        },
        "decision": {
            "action": "promote" if decision.promote else "keep",
            "status": decision.status,
            "reason": decision.reason,
            "policy": job.promote,
            "margin": job.margin,
            "improvement": _finite_or_none(decision.improvement),
            "production_before": before,
            "production_after": run.version if decision.promote else before,
        },
        "timings": dict(run.seconds),
        "devices": _devices(),
    }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _devices() -> dict[str, Any]:
    import jax

    return {
        "count": jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
    }


def _outcome(run: _Run, registry: Registry, seconds: float) -> Outcome:
    result, decision = run.result, run.decision
    return Outcome(
        name=run.job.name,
        status=decision.status,
        reason=decision.reason,
        challenger_version=run.version,
        champion_version=run.champion.version,
        production=registry.alias(run.job.name),
        challenger_owa=result.challenger_metrics["owa"],
        champion_owa=None if result.champion_metrics is None else result.champion_metrics["owa"],
        improvement=decision.improvement,
        report_path=f"{registry.path(run.job.name, run.version)}/{REPORT}",
        seconds=seconds,
        report=run.report,
    )


def failed(name: str, err: BaseException, started: float) -> Outcome:
    """The outcome of a job that raised ``err``."""
    return Outcome(
        name, "failed", f"{type(err).__name__}: {err}", seconds=time.perf_counter() - started
    )


# ------------------------------------------------------------------------------------ output


def describe(outcome: Outcome) -> str:
    """One line per job for the log: what happened and why."""
    if outcome.status == "failed":
        return f"{outcome.name}: FAILED: {outcome.reason}"
    head = {
        "promoted": f"promoted v{outcome.challenger_version} to production",
        "kept": f"published v{outcome.challenger_version}, production stays "
        f"{_v(outcome.production)}",
        "rejected": f"published v{outcome.challenger_version} but REJECTED it",
        "worker": "done",
    }[outcome.status]
    return f"{outcome.name}: {head}: {outcome.reason}"


TABLE_HEADER = ("model", "status", "champion", "challenger", "champ OWA", "chall OWA",
                "change", "production", "seconds")  # fmt: skip


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """A plain-text table of every job's result, for the end of a run."""
    rows = [TABLE_HEADER, *map(_row, outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _row(o: Outcome) -> tuple[str, ...]:
    change = _finite_or_none(o.improvement)
    return (o.name, o.status, _v(o.champion_version), _v(o.challenger_version),
            _num(o.champion_owa), _num(o.challenger_owa),
            "-" if change is None else f"{change:+.1%}", _v(o.production),
            f"{o.seconds:.1f}")  # fmt: skip


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _num(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"
