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
    parser.add_argument(
        "--default-model",
        metavar="NAME",
        help="model for requests that name none (default: the only served model, else "
        "m4-hourly if served); start-up fails if it is not in the registry",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from forecaster.configs import ConfigError
    from service.settings import Settings, settings_problem

    overrides = {k: getattr(args, k) for k in ("host", "port", "registry", "default_model")}
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:  # one line naming the variable, not pydantic's report
        raise ConfigError(settings_problem(err)) from None

    # Imported once the settings are known good: service.app builds an app from the
    # environment as it is imported (for `uvicorn service.app:app`).
    import uvicorn

    from service.app import create_app
    from service.protocol import ConnectionLimits, http_protocol

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        loop=_installed("uvloop", "auto"),
        # uvicorn's protocol (httptools, else h11) plus header deadline and size, connection
        # cap and JSON refusals (service.protocol); uvicorn has no header timeout of its own.
        http=http_protocol(ConnectionLimits.from_settings(settings)),
        ws="none",  # no websocket routes: refuse upgrades rather than hand them a protocol
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]  # a float works
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,  # type: ignore[arg-type]  # likewise
        access_log=False,
        proxy_headers=False,  # bound to loopback by default; no proxy headers to trust
    )
    return 0


def _installed(module: str, fallback: str) -> str:
    """``module`` when it is importable, else ``fallback`` (uvicorn's pure-Python choice)."""
    return module if importlib.util.find_spec(module) else fallback
