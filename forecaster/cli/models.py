"""``forecaster models``: list, show, promote and roll back the models of a registry.

Errors the user can act on (an unknown model, a damaged version) are printed as one line by
:func:`forecaster.cli.main`, like every subcommand's.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from forecaster.environment import DEFAULT_REGISTRY, registry_root, variable

if TYPE_CHECKING:
    from forecaster.registry import Registry


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``forecaster models`` and its subcommands."""
    root_help = (
        f"registry root, a path or fsspec URL (default: ${variable('registry')} or "
        f"{DEFAULT_REGISTRY!r})"
    )
    parser = subparsers.add_parser(
        "models",
        help="list, show, promote and roll back registered models",
        description="List, show, promote and roll back the models of a registry.",
    )
    # A separate dest, because a sub-subcommand's default would overwrite a value parsed here.
    parser.add_argument("--registry", dest="registry_top", metavar="ROOT", help=root_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="ROOT", help=root_help)
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    sub.add_parser("list", parents=[common], help="table of models and versions").set_defaults(
        func=_list
    )
    show = sub.add_parser("show", parents=[common], help="versions, aliases, metrics as JSON")
    show.add_argument("name")
    show.set_defaults(func=_show)

    promote = sub.add_parser("promote", parents=[common], help="point an alias at a version")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", default="production")
    promote.set_defaults(func=_promote)

    rollback = sub.add_parser("rollback", parents=[common], help="move an alias back one step")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default="production")
    rollback.set_defaults(func=_rollback)


def _registry(args: argparse.Namespace) -> Registry:
    # Imported here so that `forecaster --help` does not pay for the registry's imports; the
    # registry itself imports JAX only to validate a version (promote, rollback).
    from forecaster.registry import Registry

    return Registry(registry_root(args.registry or args.registry_top))


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    names = registry.names()
    if not names:
        print(f"no models in registry {registry.root}")
        return 0
    rows: list[tuple[str, ...]] = [
        ("NAME", "VERSIONS", "LATEST", "PRODUCTION", "CREATED (UTC)", "METHOD", "METRICS")
    ]
    for name in names:
        rows.append(_row(registry.describe(name)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _row(info: dict[str, Any]) -> tuple[str, ...]:
    """One table row; CREATED, METHOD and METRICS describe the production version (else the
    latest).

    When the production alias cannot be read or names a missing version, the row says so
    instead of showing another version's figures.
    """
    versions = info["versions"]
    production = info["aliases"].get("production")
    if not versions:  # its directory is a symlink the registry refuses
        return (info["name"], "0", "-", "?", "?", "?", "refused symlink (see `models show`)")
    if "aliases_error" in info:
        shown, note, alias = {}, "aliases.json unreadable (see `models show`)", "?"
    elif production is None:
        shown, note, alias = versions[-1], None, "-"
    else:
        match = [v for v in versions if v["version"] == production]
        shown = match[0] if match else {}
        note = None if match else f"production version {production} does not exist"
        alias = str(production) + ("" if match else " (missing)")
    if note is None and "error" in shown:
        note = "unreadable manifest (see `models show`)"
    return (
        info["name"],
        str(len(versions)),
        str(versions[-1]["version"]),
        alias,
        shown.get("created_at", "?")[:19].replace("T", " "),
        _method(shown),
        note or _summary(shown.get("metrics") or {}),
    )


def _method(version: dict[str, Any]) -> str:
    """What makes the version's forecasts, as the service's models routes name it (the
    registry's ``method``, from ``ModelConfig.method``), with the classical share of a blend:
    ``model``, ``model+classical(0.35)``, ``classical``, ``model+classical(0.8)+naive``."""
    method, share = version.get("method"), version.get("classical_share")
    if method is None:
        return "?"
    if share is None or not method.startswith("model+classical"):
        return method
    return method.replace("model+classical", f"model+classical({share:.2g})", 1)


def _summary(metrics: dict[str, Any]) -> str:
    """The OWA figures if there are any, else the first three metrics."""
    flat = _flatten(metrics)
    headline = [k for k in flat if k.rpartition(".")[2] == "owa"] or list(flat)[:3]
    return " ".join(f"{k}={_short(flat[k])}" for k in headline)


def _flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"validation": {"owa": 0.4}} -> {"validation.owa": 0.4}."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _show(args: argparse.Namespace) -> int:
    print(json.dumps(_registry(args).describe(args.name), indent=2))
    return 0


def _promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    before = registry.promote(args.name, args.version, args.alias)
    print(f"{args.name}: {args.alias} -> version {args.version} (was {before or 'unset'})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    before = registry.alias(args.name, args.alias)
    target = registry.rollback(args.name, args.alias)
    print(f"{args.name}: {args.alias} rolled back to version {target} (was {before})")
    return 0
