"""``forecaster serve``: run the forecast service with uvicorn (one worker process)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve forecasts over HTTP",
        description="Serve forecasts over HTTP. Other settings come from FORECASTER_* variables.",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument("--registry", type=Path, help="model registry root (default models/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from forecaster.settings import Settings
    from service.app import create_app

    overrides = {k: getattr(args, k) for k in ("host", "port", "registry")}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        loop=_installed("uvloop", "auto"),
        http=_installed("httptools", "auto"),
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        access_log=False,
        proxy_headers=False,  # bound to loopback by default; no proxy headers to trust
    )
    return 0


def _installed(module: str, fallback: str) -> str:
    """``module`` when it is importable, else ``fallback`` (uvicorn's pure-Python choice)."""
    return module if importlib.util.find_spec(module) else fallback
