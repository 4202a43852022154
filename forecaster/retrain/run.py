"""One retraining job as a chain of stages (:mod:`.state`): load, train, evaluate, decide and
publish, then maybe promote (see the package docstring for the steps and their guarantees)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from forecaster import data, parallel
from forecaster.configs import ModelConfig
from forecaster.predict import Predictor, sanity_problems
from forecaster.registry import ArtifactError, ModelNotFoundError, Registry
from forecaster.retrain.backtest import RetrainError, backtest, split_holdout
from forecaster.retrain.decision import DECIDED, Status, decide, recheck
from forecaster.retrain.jobs import Job, challenger_configs, covariate_source
from forecaster.retrain.live import live_accuracy
from forecaster.retrain.report import PLOT, REPORT, build_report, plot_png
from forecaster.retrain.state import Champion, Decided, Evaluated, Loaded, Published, Trained
from forecaster.train import fit

__all__ = ["Outcome", "RetrainError", "failed", "run_job"]
T = TypeVar("T")
S = TypeVar("S", bound=Loaded)
# Longest a finished job waits for another writer's publish or alias change (seconds each).
PUBLISH_WAIT_S = 120.0


@dataclass(frozen=True)
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
        # Read once: the live verdict and the champion are of this version, whatever moves.
        production = _production(registry, job.name)
        live = live_accuracy(job, registry, production)
        if job.when == "degraded" and production is not None and not live["degraded"]:
            return _not_retrained(job.name, live, time.perf_counter() - started)
        trained = train(load(job, registry, production, live), progress)
        if not primary:
            return Outcome(job.name, "worker", "trained as a worker of a multi-host run")
        published = decide_and_publish(registry, evaluate(trained))
    return _outcome(published, registry, time.perf_counter() - started)


def _next(stage: type[S], before: Loaded, seconds: Mapping[str, float], **fields: Any) -> S:
    """``stage`` from the stage ``before`` it: its fields, ``fields`` and the timings."""
    return stage(**{**vars(before), "seconds": {**before.seconds, **seconds}}, **fields)


def load(job: Job, registry: Registry, production: int | None, live: dict[str, Any]) -> Loaded:
    """Load the data and the champion (``production``, as read once by the job)."""
    seconds: dict[str, float] = {}
    champion = timed(seconds, "champion_s", _load_champion, registry, job.name, production)
    # The covariate columns the champion's manifest names, unless the job names others.
    source, reads = covariate_source(job, champion.model)
    series = timed(seconds, "load_s", source.load, max_gap=job.train.max_gap)
    return Loaded(job, live, series, champion, seconds, reads)


def train(loaded: Loaded, progress: bool) -> Trained:
    """Fit the challenger on all but the hold-out, cut here and nowhere else."""
    job, champion = loaded.job, loaded.champion
    # The data may hold the champion's covariates besides the challenger's (its backtest).
    ours = dataclasses.replace(
        loaded.series, covariates=loaded.series.covariates.only(loaded.reads)
    )
    model, config, changes = challenger_configs(job, champion.model, ours)
    train_series, holdout = split_holdout(loaded.series, model.horizon, config.seasonality)
    train_series = dataclasses.replace(
        train_series, covariates=train_series.covariates.only(loaded.reads)
    )
    warm, initial_params = _warm_start(job, champion, model)
    seconds: dict[str, float] = {}
    fitted = timed(seconds, "train_s", fit, train_series, model, config, progress=progress,
                   initial_params=initial_params)  # fmt: skip
    # The model with the classical shares chosen on validation.
    return _next(Trained, loaded, seconds, model=fitted.config, train=config, changes=changes,
                 warm=warm, holdout=holdout, fitted=fitted)  # fmt: skip


def evaluate(trained: Trained) -> Evaluated:
    """Backtest both models on the hold-out and check the challenger's sanity."""
    seconds: dict[str, float] = {}
    challenger = (trained.model, trained.fitted.params)
    spec = trained.fitted.covariates
    result = timed(seconds, "backtest_s", backtest, trained.holdout, challenger,
                   trained.champion.model, spec)  # fmt: skip
    common = result.holdout
    problems = timed(seconds, "sanity_s", sanity_problems,
                     Predictor(*challenger, covariates=spec), common.histories, common.ids,
                     common.inputs_for(spec))  # fmt: skip
    return _next(Evaluated, trained, seconds, backtest=result, problems=problems)


def decide_and_publish(registry: Registry, evaluated: Evaluated) -> Published:
    """Decide and publish the challenger, compare-and-set style: under the writers' lock
    production is read again, and a promotion stands only if it is still the champion the
    challenger was compared with."""
    name = evaluated.job.name
    purpose = "retraining: publishing a challenger"
    with registry.lock(name, timeout=PUBLISH_WAIT_S, purpose=purpose):
        return _publish(registry, _decide(evaluated, _production(registry, name)))


def _decide(evaluated: Evaluated, production: int | None) -> Decided:
    """The decision against ``production`` as it is now (:func:`recheck`)."""
    job, champion, scores = evaluated.job, evaluated.champion, evaluated.backtest
    champion_owa = None if scores.champion_metrics is None else scores.champion_metrics["owa"]
    if champion.error is not None:
        champion_owa = math.nan  # production exists but cannot load: anything sane replaces it
    decision = decide(job.promote, job.margin, scores.challenger_metrics["owa"], champion_owa,
                      evaluated.problems, champion.version)  # fmt: skip
    decision = recheck(decision, champion.version, production)
    return _next(Decided, evaluated, {}, decision=decision, production=production)


def _publish(registry: Registry, decided: Decided) -> Published:
    """Publish the challenger with its report and plot inside the version directory (the
    report, built once the registry has given the version its number, names it)."""
    job = decided.job
    reports: dict[int, dict[str, Any]] = {}

    def files(version: int) -> dict[str, bytes]:
        reports[version] = build_report(decided, version)
        return {
            REPORT: json.dumps(reports[version], indent=2, allow_nan=False).encode() + b"\n",
            PLOT: plot_png(decided.backtest, ("challenger", "champion"), job.plot_series),
        }

    version = registry.publish(
        job.name,
        decided.model,
        decided.fitted.params,
        metrics={
            "validation": decided.fitted.val_metrics,
            "backtest": decided.backtest.challenger_metrics,
        },
        data_fingerprint=data.fingerprint(decided.series),
        freq=decided.series.freq,
        seasonality=decided.train.seasonality,
        training=dataclasses.asdict(decided.train),
        calibration=decided.fitted.calibration,
        covariates=decided.fitted.covariates,
        extra_files=files,
        promote=decided.decision.promote,
    )
    return _next(Published, decided, {}, version=version, report=reports[version])


def _production(registry: Registry, name: str) -> int | None:
    try:
        return registry.alias(name)
    except ModelNotFoundError:
        return None


def _load_champion(registry: Registry, name: str, version: int | None) -> Champion:
    """Production's model, if any; one that fails to load is reported, not fatal."""
    if version is None:
        return Champion()
    try:
        return Champion(version, registry.load(name, version))
    except ArtifactError as err:
        return Champion(version, error=f"champion v{version} failed to load: {err}")


def _warm_start(job: Job, champion: Champion, model: ModelConfig) -> tuple[dict[str, Any], Any]:
    """What the report says of warm starting, and the champion's weights to start from when
    asked for and the architecture is identical (else None)."""
    if not job.warm_start:
        return {"requested": False, "used": False}, None
    if champion.model is None:
        return {"requested": True, "used": False, "reason": "no loadable champion"}, None
    if champion.model.config != model:
        return {"requested": True, "used": False, "reason": "the champion's config differs"}, None
    used = {"requested": True, "used": True, "from_version": champion.version}
    return used, champion.model.params


def _outcome(published: Published, registry: Registry, seconds: float) -> Outcome:
    scores, decision, version = published.backtest, published.decision, published.version
    return Outcome(
        name=published.job.name,
        status=decision.status,
        reason=decision.reason,
        challenger_version=version,
        champion_version=published.champion.version,
        production=published.production_after(version),
        challenger_owa=scores.challenger_metrics["owa"],
        champion_owa=None if scores.champion_metrics is None else scores.champion_metrics["owa"],
        improvement=decision.improvement,
        report_path=f"{registry.path(published.job.name, version)}/{REPORT}",
        seconds=seconds,
        report=published.report,
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
