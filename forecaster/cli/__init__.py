"""The ``forecaster`` command line: one thin module per subcommand in this package.

Each module ``forecaster/cli/<name>.py`` defines ``add_parser(subparsers)``, which registers the
subcommand and sets ``func`` (taking the parsed ``argparse.Namespace``, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

# Public here for the benchmarks, which take train's model and training flags.
from forecaster.cli._options import add_config_arguments, config_flags

__all__ = ["add_config_arguments", "build_parser", "config_flags", "entry", "main"]

# Debian's libtcmalloc-minimal4, wherever the architecture puts it.
TCMALLOC = next(iter(sorted(Path("/usr/lib").glob("*/libtcmalloc_minimal.so.4"))), None)
# XLA:CPU and oneDNN free and map large buffers every step; with glibc's malloc that costs page
# faults, with tcmalloc it does not (about +30% training throughput measured here).
HEAVY_COMMANDS = {"train", "evaluate", "serve", "retrain"}


def _with_tcmalloc(argv: list[str]) -> None:
    """Re-run this process with tcmalloc preloaded when it is installed and not yet loaded."""
    if os.environ.get("LD_PRELOAD") or os.environ.get("FORECASTER_NO_TCMALLOC"):
        return
    if not (argv and argv[0] in HEAVY_COMMANDS and TCMALLOC):
        return
    env = {**os.environ, "LD_PRELOAD": str(TCMALLOC)}
    os.execve(sys.executable, [sys.executable, "-m", "forecaster.cli", *argv], env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forecaster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").add_parser(sub)
    return parser


def entry() -> None:
    """The console script: preload tcmalloc for heavy commands, then run :func:`main`."""
    _with_tcmalloc(sys.argv[1:])
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand in this process; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `forecaster monitor | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python flushes it at exit)
        return 0
    except user_errors() as err:  # the user can act on these: one line, no traceback
        from forecaster.data import one_line

        print(f"forecaster {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1


def user_errors() -> tuple[type[Exception], ...]:
    """Errors whose message tells the user what to do: printed as one line, no traceback.

    Imported when an error is being handled (an ``except`` clause evaluates its expression only
    then), so listing them costs nothing on the way in.
    """
    from forecaster.configs import ConfigError
    from forecaster.data import DataError
    from forecaster.monitoring.store import StoreError
    from forecaster.predict import HistoryTooShort
    from forecaster.registry import ArtifactError, RegistryError
    from forecaster.retrain import RetrainError
    from forecaster.train import TrainingDivergedError

    return (ArtifactError, ConfigError, DataError, HistoryTooShort, RegistryError, RetrainError,
            StoreError, TrainingDivergedError, OSError)  # fmt: skip
