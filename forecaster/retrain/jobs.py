"""Retraining jobs from a config file (TOML or JSON) and command-line overrides.

Precedence, highest first: overrides (flags given on the command line, with ``model`` and
``train`` sub-dicts), the model's own entry, the file's top level, built-in defaults.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from forecaster.configs import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    build_configs,
    data_facts,
    typed_fields,
)
from forecaster.covariates import ROLES, CovariateSpec, Role
from forecaster.data import SOURCE_OPTIONS, DataSource, SeriesSet
from forecaster.frequency import same_frequency
from forecaster.job import Job
from forecaster.options import options
from forecaster.registry import LoadedModel

# Settings a challenger may change only when the user allows it: clients depend on them
# (``covariates``: the columns by name and role, the calendar and the holidays a model reads).
GUARDED = ("horizon", "quantiles", "freq", "covariates")
SECTION_KEYS = frozenset({"model", "train"})
# The per-job settings: the reading options (DataSource's) and the policy (Job's).
SHARED_KEYS = frozenset(SOURCE_OPTIONS) | frozenset(f.name for f in options(Job)) | SECTION_KEYS
TOP_KEYS = SHARED_KEYS | {"models"}
MODEL_KEYS = SHARED_KEYS | {"name", "data"}


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
    """The jobs a config file describes (docs/operations/retraining.md has the format); ``only``
    keeps just the model of that name."""
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


def job_from_settings(settings: Mapping[str, Any], where: str = "the command line") -> Job:
    """One job from merged settings: ``name``, ``data``, ``registry``, the data and policy
    keys, and ``model``/``train`` dicts of config fields."""
    given = {"model": dict(settings.get("model", {})), "train": dict(settings.get("train", {}))}
    model_cfg, train_cfg = build_configs(given["model"], given["train"], where)
    reading = typed_fields(DataSource, _pick(settings, SOURCE_OPTIONS), where)
    policy = typed_fields(Job, _pick(settings, [f.name for f in options(Job)]), where)
    source = DataSource(settings["data"], **reading)
    return Job(
        name=settings["name"],
        data=source,
        model=model_cfg,
        train=train_cfg,
        given=given,
        **policy,
    )


def covariate_source(
    job: Job, champion: LoadedModel | None
) -> tuple[DataSource, dict[Role, tuple[str, ...]]]:
    """The data source the job reads and the challenger's covariate columns of each role: the
    ones the job names, else the champion's (its manifest names them). The source reads the
    champion's columns too, so that the backtest scores both models on the same data.

    Raises :class:`ConfigError` when the job names other columns than the champion reads and
    ``job.allow_config_change`` is not set (clients would have to send other covariates)."""
    named: dict[Role, tuple[str, ...]] = {
        role: tuple(getattr(job.data, f"{role}_covariates")) for role in ROLES
    }
    theirs = (champion.covariates if champion is not None else CovariateSpec()).roles()
    ours = named if any(named.values()) else theirs
    same = {r: set(v) for r, v in ours.items()} == {r: set(v) for r, v in theirs.items()}
    if champion is not None and not same and not job.allow_config_change:
        shown = f"covariates {_columns(theirs)} -> {_columns(ours)}"
        raise ConfigError(_refusal(f"model {job.name!r}", shown))
    taken = {name for names in ours.values() for name in names}
    read = {r: (*ours[r], *(n for n in theirs[r] if n not in taken)) for r in ROLES}
    source = dataclasses.replace(job.data, past_covariates=read["past"],
                                 future_covariates=read["future"],
                                 static_covariates=read["static"])  # fmt: skip
    return source, ours


def _columns(names: dict[Role, tuple[str, ...]]) -> str:
    return CovariateSpec().described() if not any(names.values()) else "; ".join(
        f"{role}: {', '.join(cols)}" for role, cols in names.items() if cols
    )  # fmt: skip


def _refusal(where: str, shown: str) -> str:
    return (
        f"{where}: the challenger would change what clients get ({shown}) from the champion; "
        "pass --allow-config-change (or allow_config_change = true) to do so"
    )


def challenger_configs(
    job: Job, champion: LoadedModel | None, series: SeriesSet
) -> tuple[ModelConfig, TrainConfig, dict[str, list[Any]]]:
    """The challenger's configs: the given settings over the champion's configs (when there is
    a champion) over the defaults the data implies; and every difference from the champion,
    ``{setting: [champion's, challenger's]}``.

    Raises :class:`ConfigError` when the challenger would change the horizon, the quantiles,
    the data's frequency or the covariates it reads (their names and roles, the calendar, the
    holidays: clients depend on them) and ``job.allow_config_change`` is not set. ``series``
    holds the challenger's covariates alone (:func:`covariate_source`); unless the job sets
    ``calendar``, the challenger keeps the champion's calendar (on or off).
    """
    from forecaster.train import covariate_spec  # (it imports most of the package)

    where = f"model {job.name!r}"
    model, train = dict(job.given.get("model", {})), dict(job.given.get("train", {}))
    facts = data_facts(series)
    if champion is None:
        return (*build_configs(model, train, where, **facts), {})
    before_model, before_train = champion.config.to_dict(), dict(champion.manifest.training or {})
    if champion.manifest.seasonality and "seasonality" not in before_train:
        before_train["seasonality"] = champion.manifest.seasonality
    if "calendar" not in train:  # the champion's, whatever the default of the day derives
        before_train["calendar"] = bool(champion.covariates.calendar)
    model_cfg, train_cfg = build_configs(
        {**before_model, **model},
        {**before_train, **train},
        where,
        **facts,
    )
    after = {**model_cfg.to_dict(), **dataclasses.asdict(train_cfg), "freq": series.freq}
    before = {**before_model, **before_train, "freq": champion.manifest.freq}
    changes = {
        k: [before[k], _plain(v)]
        for k, v in after.items()
        if k in before and _plain(before[k]) != _plain(v)
    }
    spec = covariate_spec(series, train_cfg)
    if spec.reads() != champion.covariates.reads():
        changes["covariates"] = [champion.covariates.described(), spec.described()]
    old_freq = champion.manifest.freq
    if old_freq is None or series.freq is None or same_frequency(old_freq, series.freq):
        changes.pop("freq", None)  # an unknown frequency cannot be held against the data
    guarded = {k: v for k, v in changes.items() if k in GUARDED}
    if guarded and not job.allow_config_change:
        shown = "; ".join(f"{k} {a} -> {b}" for k, (a, b) in guarded.items())
        raise ConfigError(_refusal(where, shown))
    return model_cfg, train_cfg, changes


def _plain(value: Any) -> Any:
    """``value`` as its manifest holds it (JSON: tuples are lists), so that a setting read back
    from the champion's manifest equals the same setting in a config."""
    return list(value) if isinstance(value, tuple) else value


def _pick(settings: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: settings[k] for k in keys if k in settings}


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
    return job_from_settings(merged, where)


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
