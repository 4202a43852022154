"""The web console: ``GET /`` and its static files under ``/console/`` (``service/static/console``:
plain ES modules and a vendored uPlot, no build step, nothing from a CDN). The page reads the
same ``/v1`` API as the client does; it has no route of its own beyond its files.

Every file goes out with a strict Content-Security-Policy: scripts and styles from this origin
only (no inline script or style), requests to this origin only, never framed.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE = Path(__file__).resolve().parents[1] / "static" / "console"
PREFIX = "/console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on each load: a new release's page never runs an old release's modules.
    "Cache-Control": "no-cache",
}


class _ConsoleFiles(StaticFiles):
    """StaticFiles whose every answer carries :data:`HEADERS`."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
        status_code: int = 200,
    ) -> Response:  # fmt: skip
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Serve the console on ``app``: the page at ``/``, its files under :data:`PREFIX`."""
    app.mount(PREFIX, _ConsoleFiles(directory=CONSOLE), name="console")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(CONSOLE / "index.html", headers=HEADERS, media_type="text/html")
