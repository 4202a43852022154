"""What the service serves: the default model, which model answers a request, readiness, and
the summaries of ``GET /v1/models``.

The default model (for requests that name none): ``Settings.default_model`` when set; else the
only served model when there is one; else ``m4-hourly`` when it is served; else none, and such
requests get a 422 listing the served models. A request that names no model but carries
timestamps goes to the served model whose frequency matches them, when exactly one does.

Readiness (``/readyz``): 200 once every model asked for by name (``Settings.models`` and a
configured default) is served, or, when none was, once every model has been tried and at least
one serves. A model that fails on its own never holds the others back; the body names what is
missing and why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from forecaster.covariates import CovariateSpec
from forecaster.frequency import same_frequency
from forecaster.histories import least_after_gap
from forecaster.horizons import horizon_limit
from forecaster.registry import (
    ArtifactError,
    ModelNotFoundError,
    Registry,
    RegistryError,
    hide_root,
)
from forecaster.retrain.report import REPORT
from forecaster.schemas import (
    CovariateInfo,
    MinHistory,
    ModelCovariates,
    ModelDetail,
    ModelSummary,
    ModelVersion,
    Readiness,
    RetrainDecision,
)
from service.settings import Settings
from service.store import ModelStore, ServedModel, failure

# The model this project ships; the default when several are served and none is configured.
FALLBACK_DEFAULT = "m4-hourly"


class StartupError(Exception):
    """The service cannot start as configured; the message says why in one line."""


class NoModelChosen(LookupError):
    """A request named no model and none could be chosen for it (HTTP 422)."""


class NotServed(ModelNotFoundError):
    """The named model (or version) is not served (HTTP 404)."""


# ------------------------------------------------------------------------------ default model


def default_model(store: ModelStore, configured: str | None) -> str | None:
    """The model requests that name none get (see the module docstring)."""
    if configured is not None:
        return configured
    served = store.served()
    if len(served) == 1:
        return next(iter(served))
    return FALLBACK_DEFAULT if FALLBACK_DEFAULT in served else None


def required_models(settings: Settings) -> list[str]:
    """Models asked for by name: ``/readyz`` waits for each, and start-up needs each."""
    asked = list(settings.models or ())
    if settings.default_model is not None:
        asked.append(settings.default_model)
    return list(dict.fromkeys(asked))


def check_startup(registry: Registry, settings: Settings) -> None:
    """Raise :class:`StartupError` (one line) if a model asked for by name cannot be served
    because it is absent from the registry or has no production version."""
    if settings.wait_for_models:
        return
    absent = [
        f"{name!r} ({why})"
        for name in required_models(settings)
        if (why := _absent(registry, name))
    ]
    if absent:
        available = ", ".join(registry.names()) or "none"
        raise StartupError(
            f"cannot serve model {', '.join(absent)} from registry {registry.root} (models there: "
            f"{available}); name another with --default-model / FORECASTER_DEFAULT_MODEL, or set "
            "FORECASTER_WAIT_FOR_MODELS=true to start anyway and wait for it"
        )


def _absent(registry: Registry, name: str) -> str | None:
    try:
        return None if registry.alias(name) is not None else "no production version"
    except ModelNotFoundError:
        return "not in the registry"
    except RegistryError:
        return None  # present but broken: served later or reported by /readyz, not fatal


# ------------------------------------------------------------------------------ requests


def choose_model(
    store: ModelStore, ref: str | None, freqs: set[str], configured_default: str | None
) -> ServedModel:
    """The served model for a request naming ``ref`` (``name`` or ``name@version``), or, when it
    names none, the one matching its timestamps' frequencies ``freqs``, else the default.

    Raises :class:`NotServed` or :class:`NoModelChosen`.
    """
    if ref is not None:
        return resolve(store, ref)
    served = store.served()
    matching = []
    if len(freqs) == 1:
        (freq,) = freqs
        matching = sorted(n for n, m in served.items() if m.freq and same_frequency(m.freq, freq))
        if len(matching) == 1:
            return served[matching[0]]
    default = default_model(store, configured_default)
    if default is None:
        if len(matching) > 1:
            raise NoModelChosen(
                f"several served models forecast {next(iter(freqs))!r} data ({', '.join(matching)})"
                '; name one in "model"'
            )
        listed = ", ".join(sorted(served)) or "none yet"
        raise NoModelChosen(f'no default model: name one in "model" (served: {listed})')
    return resolve(store, default)


def resolve(store: ModelStore, ref: str) -> ServedModel:
    """The served model for ``name`` or ``name@version``; :class:`NotServed` says why not."""
    name, _, pinned = ref.partition("@")
    served = store.get(name)
    if served is None:
        problem = public_problem(store, name)
        raise NotServed(f"model {name!r} is not served" + (f": {problem}" if problem else ""))
    if pinned and int(pinned) != served.version:
        raise NotServed(
            f"version {int(pinned)} of {name!r} is not served (serving {served.version})"
        )
    return served


def min_history(served: ServedModel) -> MinHistory:
    """Fewest points for each path: the model's ``min_input``; one for the fallback; after a long
    gap, enough for the model or a seasonal fallback (one season)."""
    least = served.config.min_input
    return MinHistory(model=least, fallback=1, after_gap=least_after_gap(least, served.seasonality))


# ------------------------------------------------------------------------------ readiness


def readiness(store: ModelStore, settings: Settings) -> Readiness:
    """Whether the service is ready, and what it is waiting for (see the module docstring)."""
    served = store.served()
    required = required_models(settings)
    wanted = dict.fromkeys([*store.known(), *required])
    missing = {n: public_problem(store, n) or "loading" for n in wanted if n not in served}
    blocking = [n for n in required if n not in served]
    status: Literal["ready", "loading", "not_ready"] = "not_ready"
    if not store.started:
        status = "loading"
        detail = "loading models: " + (", ".join(missing) or "listing the registry")
    elif blocking:
        detail = "waiting for " + "; ".join(f"model {n!r}: {missing[n]}" for n in blocking)
    elif not served:
        detail = "no model of the registry can be served"
        detail += f" ({len(missing)} failed)" if missing else " (none has a production version)"
    else:
        status = "ready"
        detail = "serving " + ", ".join(f"{n}@{m.version}" for n, m in served.items())
    return Readiness(
        status=status,
        detail=detail,
        models={n: m.version for n, m in served.items()},
        default_model=default_model(store, settings.default_model),
        missing=missing,
    )


# ------------------------------------------------------------------------------ summaries


def public_problem(store: ModelStore, name: str) -> str | None:
    """:meth:`ModelStore.problem` fit for clients: the registry's location is not theirs."""
    return _hide_root(store, store.problem(name))


def _hide_root(store: ModelStore, text: str | None) -> str | None:
    return None if text is None else hide_root(text, store.registry.root)


def _stale(store: ModelStore, name: str, production: int | None) -> str | None:
    """Why the production version is not the one served, when it is not."""
    served = store.get(name)
    if served is not None and served.version == production:
        return None
    return public_problem(store, name)


async def summaries(store: ModelStore, settings: Settings) -> list[ModelSummary]:
    """Every model in the registry, as :func:`summary` describes it."""
    names = await asyncio.to_thread(store.registry.names)
    return [await summary(store, settings, name) for name in names]


async def summary(store: ModelStore, settings: Settings, name: str) -> ModelSummary:
    """One model's versions, alias and served version's shape; NotServed for unknown names."""
    return ModelSummary(**await _summary_fields(store, settings, name))


async def detail(store: ModelStore, settings: Settings, name: str) -> ModelDetail:
    """:func:`summary` plus the served version's config, metrics and creation time."""
    fields = await _summary_fields(store, settings, name)
    served = store.get(name)
    if served is not None:
        manifest = served.loaded.manifest
        fields |= {
            "config": served.config.to_dict(),
            "metrics": manifest.metrics,
            "created_at": manifest.created_at.isoformat(),
        }
    return ModelDetail(**fields)


async def _summary_fields(store: ModelStore, settings: Settings, name: str) -> dict[str, Any]:
    versions, production, problem = await asyncio.to_thread(_registry_facts, store.registry, name)
    served = store.get(name)
    fields: dict[str, Any] = {
        "name": name,
        "versions": versions,
        "production": production,
        "default": name == default_model(store, settings.default_model),
        "problem": _hide_root(store, problem) or _stale(store, name, production),
    }
    if served is not None:
        cfg = served.config
        fields |= {
            "loaded_version": served.version,
            "frequency": served.freq,
            "seasonal_period": served.loaded.manifest.seasonality,
            "window": cfg.input_size,
            "min_history": min_history(served),
            "horizon": cfg.horizon,
            "max_horizon": horizon_limit(cfg.horizon),
            "quantiles": list(cfg.quantiles),
            "calibrated": served.calibration is not None,
            "method": cfg.method,
            "classical_share": cfg.stated_share,
            "covariates": _covariates(served.predictor.covariates),
        }
    return fields


def _covariates(spec: CovariateSpec) -> ModelCovariates | None:
    """What a request to a model of ``spec`` must carry besides its history; None: nothing."""
    if not spec:
        return None
    columns = [
        CovariateInfo(name=c.name, role=c.role, kind=c.kind,
                      categories=list(c.categories) if c.kind == "categorical" else None)
        for c in spec.columns
    ]  # fmt: skip
    return ModelCovariates(columns=columns, calendar=list(spec.calendar), holidays=spec.holidays,
                           needs_timestamps=spec.timed)  # fmt: skip


def _registry_facts(registry: Registry, name: str) -> tuple[list[int], int | None, str | None]:
    """(versions, production version, why the alias cannot be read); NotServed if unknown."""
    try:
        versions = registry.versions(name)
    except ModelNotFoundError:
        raise NotServed(f"no model named {name!r}") from None
    except RegistryError as exc:  # its directory is a symlink the registry refuses
        return [], None, failure(exc)
    try:
        return versions, registry.alias(name), None
    except ModelNotFoundError:
        raise NotServed(f"no model named {name!r}") from None
    except RegistryError as exc:
        return versions, None, f"its production alias cannot be read: {failure(exc)}"


# ------------------------------------------------------------------------------ versions


async def versions(store: ModelStore, name: str) -> list[ModelVersion]:
    """Every version of ``name``, newest first: its manifest's facts, the aliases pointing at
    it, and the decision of the retraining job that published it; NotServed if unknown."""
    served = store.get(name)
    listed = await asyncio.to_thread(_versions, store.registry, name)
    return [
        v.model_copy(update={"served": served is not None and served.version == v.version})
        for v in listed
    ]


def _versions(registry: Registry, name: str) -> list[ModelVersion]:
    try:
        described = registry.describe(name)
    except ModelNotFoundError:
        raise NotServed(f"no model named {name!r}") from None
    aliases: dict[int, list[str]] = {}
    for alias, version in described["aliases"].items():
        aliases.setdefault(version, []).append(alias)
    out = []
    for entry in reversed(described["versions"]):
        version = entry["version"]
        fields: dict[str, Any] = {"version": version, "aliases": aliases.get(version, [])}
        if "error" in entry:
            out.append(ModelVersion(**fields, error=hide_root(entry["error"], registry.root)))
            continue
        config = entry["config"]
        fields |= {
            "created_at": entry["created_at"],
            "frequency": entry["freq"],
            "seasonal_period": entry["seasonality"],
            "window": config.get("input_size"),
            "horizon": config.get("horizon"),
            "method": entry["method"],
            "metrics": entry["metrics"],
        }
        try:
            fields["decision"] = _decision(registry.extra_file(name, version, REPORT))
        except (ArtifactError, RegistryError, ValueError, KeyError, TypeError) as exc:
            fields["error"] = hide_root(f"its {REPORT} cannot be read: {exc}", registry.root)
        out.append(ModelVersion(**fields))
    return out


def _decision(report: bytes | None) -> RetrainDecision | None:
    """The decision part of a retraining report (``forecaster.retrain.report``)."""
    if report is None:
        return None
    doc = json.loads(report)
    decision = doc["decision"]
    return RetrainDecision(
        **{k: decision.get(k) for k in ("action", "status", "reason", "improvement",
                                        "production_before", "production_after")},
        challenger=doc.get("challenger", {}).get("metrics"),
        champion=doc.get("champion", {}).get("metrics"),
    )  # fmt: skip
