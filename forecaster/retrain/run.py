"""One retraining job: train the challenger, backtest it against the champion, decide, publish
and maybe promote (see the package docstring for the steps and their guarantees)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from forecaster import data, parallel
from forecaster.artifacts import ArtifactError, LoadedModel
from forecaster.configs import ModelConfig, TrainConfig
from forecaster.predict import Predictor, sanity_problems
from forecaster.registry import ModelNotFoundError, Registry
from forecaster.retrain.backtest import Backtest, RetrainError, backtest, split_holdout
from forecaster.retrain.decision import DECIDED, Decision, Status, decide, recheck
from forecaster.retrain.jobs import Job, challenger_configs
from forecaster.retrain.live import live_accuracy
from forecaster.retrain.report import PLOT, REPORT, build_report, plot_png
from forecaster.train import TrainResult, fit

__all__ = ["Outcome", "RetrainError", "Run", "failed", "run_job"]
T = TypeVar("T")
# Longest a finished job waits for another writer's publish or alias change (seconds each).
PUBLISH_WAIT_S = 120.0


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
class Champion:
    """The production version before the job, if any, or why it could not be loaded."""

    version: int | None = None
    model: LoadedModel | None = None
    error: str | None = None


@dataclass
class Run:
    """What one job has found so far; the report is written from it."""

    job: Job
    series: data.SeriesSet
    champion: Champion
    model: ModelConfig
    train: TrainConfig
    # {setting: [champion's, challenger's]} for every setting the challenger changes.
    changes: dict[str, list[Any]]
    warm: dict[str, Any]
    trained: TrainResult
    result: Backtest | None = None
    problems: list[str] = field(default_factory=list)
    decision: Decision | None = None
    version: int | None = None
    # Production as read under the registry's lock when publishing, this job's promotion included.
    production: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] = field(default_factory=dict)


def timed(seconds: dict[str, float], key: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """``fn(*args, **kw)``, its duration recorded as ``seconds[key]`` for the report."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kw)
    finally:
        seconds[key] = round(time.perf_counter() - t0, 3)


def run_job(job: Job, *, progress: bool = True) -> Outcome:
    """Retrain, backtest, publish and maybe promote one model.

    The job holds the model's job lock (:meth:`Registry.job_lock`) throughout, so a second job
    is refused; the registry's writers' lock only while publishing and promoting, so admin
    actions meanwhile are not held up. Raises PublishLockedError when another job holds the
    model, and the data, registry, training and :class:`RetrainError` errors of a failed job;
    production is then unchanged.
    """
    started = time.perf_counter()
    registry = Registry(job.registry)
    primary = parallel.is_primary()  # in multi-host runs only process 0 touches the registry
    guard = registry.job_lock(job.name, "retraining") if primary else contextlib.nullcontext()
    with guard:
        live = live_accuracy(job, registry, _production(registry, job.name))
        if job.when == "degraded" and live["version"] is not None and not live["degraded"]:
            return _not_retrained(job.name, live, time.perf_counter() - started)
        run = _train(job, registry, progress)
        run.live = live
        if not primary:
            return Outcome(job.name, "worker", "trained as a worker of a multi-host run")
        _evaluate(run)
        _publish_and_promote(registry, run)
    return _outcome(run, registry, time.perf_counter() - started)


def _publish_and_promote(registry: Registry, run: Run) -> None:
    """Publish the challenger and, when decided, promote it, compare-and-set style: under the
    writers' lock production is read again, and a promotion stands only if it is still the
    champion the challenger was compared with. What production is when the lock is let go
    (``run.production``) is what the report and the outcome say."""
    name = run.job.name
    purpose = "retraining: publishing a challenger"
    with registry.lock(name, timeout=PUBLISH_WAIT_S, purpose=purpose):
        run.production = _production(registry, name)
        run.decision = recheck(run.decision, run.champion.version, run.production)
        run.version = timed(run.seconds, "publish_s", _publish, registry, run)
        if run.decision.promote:
            run.production = run.version


def _train(job: Job, registry: Registry, progress: bool) -> Run:
    """Load the data and the champion, and fit the challenger on all but the hold-out."""
    timings: dict[str, float] = {}
    series = timed(timings, "load_s", job.data.load, max_gap=job.train.max_gap)
    champion = timed(timings, "champion_s", _load_champion, registry, job.name)
    model, train, changes = challenger_configs(job, champion.model, series)
    train_series, _ = split_holdout(series, model.horizon, train.seasonality)
    warm = _warm_start(job, champion, model)
    trained = timed(
        timings,
        "train_s",
        fit,
        train_series,
        model,
        train,
        progress=progress,
        initial_params=warm.pop("params", None),
    )
    model = trained.config  # with the classical shares chosen on validation
    return Run(job, series, champion, model, train, changes, warm, trained, seconds=timings)


def _evaluate(run: Run) -> None:
    """Backtest both models, check the challenger's sanity and decide."""
    job = run.job
    _, holdout = split_holdout(run.series, run.model.horizon, run.train.seasonality)
    challenger = (run.model, run.trained.params)
    run.result = timed(run.seconds, "backtest_s", backtest, holdout, challenger, run.champion.model)
    common = run.result.holdout
    run.problems = timed(
        run.seconds,
        "sanity_s",
        sanity_problems,
        Predictor(*challenger),
        common.histories,
        common.ids,
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


def _production(registry: Registry, name: str) -> int | None:
    try:
        return registry.alias(name)
    except ModelNotFoundError:
        return None


def _load_champion(registry: Registry, name: str) -> Champion:
    """The production model, if any; one that fails to load is reported, not fatal."""
    try:
        version = registry.alias(name)
    except ModelNotFoundError:
        return Champion()
    if version is None:
        return Champion()
    try:
        return Champion(version, registry.load(name, version))
    except ArtifactError as err:
        return Champion(version, error=f"champion v{version} failed to load: {err}")


def _warm_start(job: Job, champion: Champion, model: ModelConfig) -> dict[str, Any]:
    """Initial weights from the champion when asked for and the architecture is identical."""
    if not job.warm_start:
        return {"requested": False, "used": False}
    if champion.model is None:
        return {"requested": True, "used": False, "reason": "no loadable champion"}
    if champion.model.config != model:
        return {"requested": True, "used": False, "reason": "the champion's config differs"}
    return {
        "requested": True,
        "used": True,
        "from_version": champion.version,
        "params": champion.model.params,
    }


def _publish(registry: Registry, run: Run) -> int:
    """Publish the challenger with its report and plot inside the version directory; returns
    the version the registry gave it (the report, built once that number is known, names it)."""
    job = run.job

    def files(version: int) -> dict[str, bytes]:
        run.report = build_report(run, version)
        return {
            REPORT: json.dumps(run.report, indent=2, allow_nan=False).encode() + b"\n",
            PLOT: plot_png(run.result, ("challenger", "champion"), job.plot_series),
        }

    return registry.publish(
        job.name,
        run.model,
        run.trained.params,
        metrics={"validation": run.trained.val_metrics, "backtest": run.result.challenger_metrics},
        data_fingerprint=data.fingerprint(run.series),
        freq=run.series.freq,
        seasonality=run.train.seasonality,
        training=dataclasses.asdict(run.train),
        calibration=run.trained.calibration,
        extra_files=files,
        promote=run.decision.promote,
    )


def _outcome(run: Run, registry: Registry, seconds: float) -> Outcome:
    result, decision = run.result, run.decision
    return Outcome(
        name=run.job.name,
        status=decision.status,
        reason=decision.reason,
        challenger_version=run.version,
        champion_version=run.champion.version,
        production=run.production,
        challenger_owa=result.challenger_metrics["owa"],
        champion_owa=None if result.champion_metrics is None else result.champion_metrics["owa"],
        improvement=decision.improvement,
        report_path=f"{registry.path(run.job.name, run.version)}/{REPORT}",
        seconds=seconds,
        report=run.report,
    )


def _not_retrained(name: str, live: dict[str, Any], seconds: float) -> Outcome:
    """``--when degraded`` and the production version has not degraded (skipped), too few
    points decide (undecided: not retrained, and not "not degraded" either), or the monitoring
    database could not tell (failed: an operator should hear of it)."""
    if "error" in live:
        reason = f"cannot judge live accuracy: {live['error']}"
        return Outcome(name, "failed", reason, production=live["version"], seconds=seconds)
    status: Status = "undecided" if live["status"] == "undecided" else "skipped"
    said = "is undecided" if status == "undecided" else "has not degraded"
    return Outcome(name, status, f"live accuracy {said}: {live['reason']}",
                   production=live["version"], seconds=seconds, report={"live": live})  # fmt: skip


def failed(name: str, err: BaseException, started: float) -> Outcome:
    """The outcome of a job that raised ``err``."""
    return Outcome(
        name, "failed", f"{type(err).__name__}: {err}", seconds=time.perf_counter() - started
    )
