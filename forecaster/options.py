"""Options: a dataclass field declared with :func:`option` is a setting's one home.

Its type, default and help make the command line's flag (:func:`add_flags`: ``bool`` gives
``--x/--no-x``, ``Literal`` choices, ``tuple[T, ...]`` one or more values, ``T | None`` a help
saying "derived from the data"), the config-file key and its checks (:func:`typed_fields`,
:func:`check_choices`) and its row in ``docs/reference/options.md`` (:func:`reference`; ``python
-m forecaster.options`` writes it). Every flag defaults to None (not given): the dataclass, or
:func:`forecaster.configs.build_configs` from the data, fills in the rest. No pandas or JAX here,
so building the command line stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REFERENCE = Path("docs/reference/options.md")


class ConfigError(ValueError):
    """A setting (flag, config file key or manifest field) is invalid; the message names it."""


def option(
    help: str,
    default: Any = dataclasses.MISSING,
    *,
    shown: str | None = None,
    flag: bool = True,
    choices: bool = True,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is a setting: ``help`` says what it does (without its default,
    which the help and the reference add: ``shown`` in place of the value where the value
    alone would mislead); ``flag=False``: a config key only, set by training, not by a flag;
    ``metavar``: the flag's value as ``--help`` names it."""
    meta = {"help": help, "shown": shown, "flag": flag, "choices": choices, "metavar": metavar}
    return dataclasses.field(default=default, metadata=meta)


def options(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of ``cls`` declared with :func:`option`, in order."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kind(cls: type, name: str) -> tuple[Any, bool]:
    """(the field's type without ``| None``, whether None is allowed)."""
    hint = _hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0], len(rest) < len(typing.get_args(hint))
    return hint, False


def _choices(cls: type, f: dataclasses.Field[Any]) -> tuple[Any, ...] | None:
    kind, _ = _kind(cls, f.name)
    literal = typing.get_origin(kind) is typing.Literal
    return typing.get_args(kind) if literal and f.metadata["choices"] else None


def shown_default(f: dataclasses.Field[Any]) -> str | None:
    """The default as help texts and the reference state it (None: the field is required)."""
    if f.metadata["shown"] is not None:
        return str(f.metadata["shown"])
    if f.default is dataclasses.MISSING:
        return None
    if f.default is None:
        return "derived from the data"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    if isinstance(f.default, tuple):
        return " ".join(str(v) for v in f.default) or "none"
    return str(f.default)


def help_text(f: dataclasses.Field[Any]) -> str:
    default = shown_default(f)
    return f"{f.metadata['help']} (default: {default})" if default else f.metadata["help"]


def add_flags(group: Any, cls: type) -> None:
    """Add a flag for every :func:`option` of ``cls`` (but those with ``flag=False``) to
    ``group`` (a parser or an argument group)."""
    for f in options(cls):
        if not f.metadata["flag"]:
            continue
        kind, _ = _kind(cls, f.name)
        spec: dict[str, Any] = {"help": help_text(f).replace("%", "%%")}
        if f.metadata["metavar"]:
            spec["metavar"] = f.metadata["metavar"]
        if kind is bool:  # type=bool would read "False" as True
            spec["action"] = argparse.BooleanOptionalAction
        elif (allowed := _choices(cls, f)) is not None:
            spec["choices"] = allowed
        elif typing.get_origin(kind) in (tuple, list):
            spec |= {"nargs": "+", "type": typing.get_args(kind)[0]}
            spec.setdefault("metavar", f.name.removesuffix("s").upper())
        elif typing.get_origin(kind) is not typing.Literal:  # (unchecked choices: text)
            spec["type"] = kind
        group.add_argument(flag_name(f.name), **spec)


def typed_fields(cls: type, values: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``values`` (plain JSON/TOML) checked against the types of the :func:`option` fields of
    ``cls``, converted for it: unknown keys are refused; ints are accepted for floats (and
    become floats); a list is accepted for a tuple (and becomes one); booleans are never
    numbers. Raises :class:`ConfigError` naming ``where`` and the key."""
    known = {f.name for f in options(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    out = {}
    for key, value in values.items():
        kind, nullable = _kind(cls, key)
        ok, converted = (True, None) if value is None and nullable else _convert(kind, value)
        if not ok:
            raise ConfigError(f"{where}: `{key}` has the wrong type: {value!r}")
        out[key] = converted
    return out


def _convert(kind: Any, value: Any) -> tuple[bool, Any]:
    """(whether ``value`` is of JSON kind ``kind``, the value converted to it)."""
    if typing.get_origin(kind) is typing.Literal:
        kind = type(typing.get_args(kind)[0])
    if typing.get_origin(kind) in (tuple, list):
        item = typing.get_args(kind)[0]
        items = [_convert(item, v) for v in value] if isinstance(value, list | tuple) else None
        ok = items is not None and all(good for good, _ in items)
        return ok, tuple(v for _, v in items or ()) if ok else value
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool), value
    if kind is float:
        number = isinstance(value, int | float)
        return number, float(value) if number else value
    return isinstance(value, kind), value


def check_choices(obj: Any, error: type[Exception] = ConfigError) -> None:
    """Raise ``error`` naming the first :func:`option` of ``obj`` whose value is not among its
    ``Literal`` choices."""
    for f in options(type(obj)):
        allowed = _choices(type(obj), f)
        if allowed is not None and getattr(obj, f.name) not in allowed:
            shown = ", ".join(map(str, allowed))
            raise error(f"{f.name} must be one of {shown}, not {getattr(obj, f.name)!r}")


def table(cls: type) -> str:
    """The Markdown reference table of the options of ``cls``."""
    rows = ["| Flag | Config key | Type | Default | What it does |", "|---|---|---|---|---|"]
    for f in options(cls):
        kind, _ = _kind(cls, f.name)
        if typing.get_origin(kind) is typing.Literal:
            shown_kind = " \\| ".join(map(str, typing.get_args(kind)))
        elif typing.get_origin(kind) in (tuple, list):
            shown_kind = f"list of {typing.get_args(kind)[0].__name__}"
        else:
            shown_kind = kind.__name__
        flag = f"`{flag_name(f.name)}`" if f.metadata["flag"] else "(set by training)"
        default = (shown_default(f) or "required").replace("|", "\\|")
        cells = [flag, f"`{f.name}`", shown_kind, default, f.metadata["help"]]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def reference() -> str:
    """``docs/reference/options.md``: every option of every command, one table a dataclass."""
    from forecaster.batch import BatchJob
    from forecaster.configs import ModelConfig, TrainConfig
    from forecaster.job import Job
    from forecaster.sources import DataSource

    sections = [
        ("Model", ModelConfig, "`forecaster train`, `retrain`; `[model]` in retrain configs"),
        ("Training", TrainConfig, "`forecaster train`, `retrain`; `[train]` in retrain configs"),
        ("Data", DataSource, "every command that reads data; top-level retrain config keys"),
        ("Retraining", Job, "`forecaster retrain`; top-level or per-model retrain config keys"),
        ("Batch forecasting", BatchJob, "`forecaster forecast`"),
    ]
    parts = ["# Options", "", "Generated from the dataclasses by `python -m forecaster.options`."]
    for title, cls, used in sections:
        parts += ["", f"## {title} (`{cls.__name__}`)", "", f"Used by {used}.", "", table(cls)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # writes the reference; tests/test_options.py fails when it is stale
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(reference())
