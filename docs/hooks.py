"""mkdocs hooks: pages and files generated from the code at build time, so they cannot drift.

- ``reference/openapi.json``: the service's OpenAPI document, from the app itself;
- the routes table of ``reference/openapi.md`` (the ``<!-- routes -->`` marker), from the same;
- ``reference/swagger-ui/``: the Swagger UI files the service vendors (no CDN);
- ``results/vanishing_gradients.png``: the benchmark's plot, from ``benchmarks/results``;
- ``tour.md``: the README's tour (the one copy of it, which ``tests/test_docs.py`` runs), its
  links made relative to this site.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
SWAGGER_UI = ROOT / "service" / "static" / "swagger-ui"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE")
COPIED = {"results/vanishing_gradients.png": ROOT / "benchmarks/results/vanishing_gradients.png"}
TOUR_HEADING = "## A ten-minute tour"
ROUTES_MARKER = "<!-- routes -->"
ADMIN_KEY = "FORECASTER_ADMIN_API_KEY"
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def openapi() -> dict[str, Any]:
    """The document the running service serves at ``/openapi.json``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # The admin routes exist only with a key: document them too. The key never leaves here.
    saved = os.environ.get(ADMIN_KEY)
    os.environ[ADMIN_KEY] = "documentation-build-only"
    try:
        from service.app import create_app

        return create_app().openapi()
    finally:
        if saved is None:
            del os.environ[ADMIN_KEY]
        else:
            os.environ[ADMIN_KEY] = saved


def on_files(files: Files, config: MkDocsConfig) -> Files:
    text = json.dumps(openapi(), indent=2)
    files.append(File.generated(config, "reference/openapi.json", content=text))
    for name in SWAGGER_FILES:
        path = SWAGGER_UI / name
        files.append(File.generated(config, f"reference/swagger-ui/{name}", abs_src_path=str(path)))
    for uri, path in COPIED.items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    files.append(File.generated(config, "tour.md", content=tour()))
    return files


def tour() -> str:
    """The README's tour section as a page: its heading the title, ``docs/`` links relative."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(TOUR_HEADING)
    end = readme.find("\n## ", start + len(TOUR_HEADING))
    section = readme[start : end if end >= 0 else len(readme)]
    return section.removeprefix("#").replace("](docs/", "](")


def routes_table() -> str:
    """A Markdown table of every route: method, path, summary (readable without JavaScript)."""
    rows = ["| method | path | what it does |", "|---|---|---|"]
    for path, item in openapi()["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                summary = op.get("summary") or op.get("description", "").split("\n")[0]
                rows.append(f"| `{method.upper()}` | `{path}` | {summary} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if ROUTES_MARKER in markdown:
        markdown = markdown.replace(ROUTES_MARKER, routes_table())
    return markdown
