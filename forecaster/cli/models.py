"""``forecaster models``: list, show, promote and roll back the models of a registry."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

ENV_REGISTRY = "FORECASTER_REGISTRY"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``forecaster models`` and its subcommands."""
    root_help = f"registry root, a path or fsspec URL (default: ${ENV_REGISTRY} or 'models')"
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
        func=_guarded(_list)
    )
    show = sub.add_parser("show", parents=[common], help="versions, aliases, metrics as JSON")
    show.add_argument("name")
    show.set_defaults(func=_guarded(_show))

    promote = sub.add_parser("promote", parents=[common], help="point an alias at a version")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--alias", default="production")
    promote.set_defaults(func=_guarded(_promote))

    rollback = sub.add_parser("rollback", parents=[common], help="move an alias back one step")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default="production")
    rollback.set_defaults(func=_guarded(_rollback))


def _registry(args: argparse.Namespace):
    # Imported here so `forecaster --help` and unrelated subcommands do not pay for JAX.
    from forecaster.registry import Registry

    root = args.registry or args.registry_top or os.environ.get(ENV_REGISTRY) or "models"
    return Registry(root)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one line on stderr and exit status 1, no traceback."""

    def run(args: argparse.Namespace) -> int:
        from forecaster.artifacts import ArtifactError
        from forecaster.registry import RegistryError

        try:
            return command(args)
        except (RegistryError, ArtifactError, OSError, ValueError) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"forecaster models: error: {message}", file=sys.stderr)
            return 1

    return run


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    names = registry.names()
    if not names:
        print(f"no models in registry {registry.root}")
        return 0
    rows = [("NAME", "VERSIONS", "LATEST", "PRODUCTION", "CREATED (UTC)", "METRICS")]
    for name in names:
        rows.append(_row(registry.describe(name)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _row(info: dict[str, Any]) -> tuple[str, ...]:
    """One table row; CREATED and METRICS describe the production version (else the latest)."""
    versions = info["versions"]
    production = info["aliases"].get("production")
    shown = next((v for v in versions if v["version"] == production), versions[-1])
    metrics = _flatten(shown.get("metrics") or {})
    headline = [k for k in metrics if k.rpartition(".")[2] == "owa"] or list(metrics)[:3]
    summary = " ".join(f"{k}={_short(metrics[k])}" for k in headline)
    return (
        info["name"],
        str(len(versions)),
        str(versions[-1]["version"]),
        "-" if production is None else str(production),
        shown.get("created_at", "?")[:19].replace("T", " "),
        summary if "error" not in shown else "unreadable manifest",
    )


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
    before = registry.alias(args.name, args.alias)
    registry.promote(args.name, args.version, args.alias)
    print(f"{args.name}: {args.alias} -> version {args.version} (was {before or 'unset'})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    before = registry.alias(args.name, args.alias)
    target = registry.rollback(args.name, args.alias)
    print(f"{args.name}: {args.alias} rolled back to version {target} (was {before})")
    return 0
