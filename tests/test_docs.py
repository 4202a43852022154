"""The docs cannot drift from the code: the README's tour runs as written, and the
architecture page's tree names only paths that exist.

The tour is the front door's promise (from a CSV to a served, monitored forecast), so it is
executed rather than trusted: its shell blocks, in order, in an empty directory. A renamed flag,
a changed output or a broken step fails here. Only the port is changed, to a free one, so that
the test never meets a server already on 8000.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TREE_HEADING = "## The code, file by file"
TOUR_HEADING = "## A ten-minute tour"
TOUR_PORT = "8000"
SHELL_BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tour_section(text: str) -> str:
    """The README's text from the tour's heading to the next heading of its level."""
    start = text.index(TOUR_HEADING)
    end = text.find("\n## ", start + len(TOUR_HEADING))
    return text[start : end if end >= 0 else len(text)]


def tour_script(text: str, port: int) -> str:
    """The tour's shell blocks as one script, stopping at the first failure."""
    blocks = SHELL_BLOCK.findall(tour_section(text))
    assert len(blocks) >= 4, f"the tour has {len(blocks)} shell blocks"
    body = "\n".join(blocks)
    assert TOUR_PORT in body, "the tour no longer serves on port 8000: update this test"
    return "set -euo pipefail\n" + body.replace(TOUR_PORT, str(port))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour waits for the server with curl")
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    script = tour_script(README.read_text(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Its own session, so that whatever the script started in the background dies with it.
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        # The tour stops its server itself; this is for a tour that failed half way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, out
    # What each step promises, as the README shows it.
    assert "id,timestamp,value" in out, out
    assert '"saved": "models/sales/1"' in out, out
    assert '"status":"ready"' in out, out
    assert re.search(r"north\s+1\s+2026-01-21 00:00:00\s+[\d.]+\s+model", out), out
    assert "72 values of 3 series: 72 stored, 72 match recorded forecasts" in out, out
    assert re.search(r"sales\s+v1\s+all\s+72\s", out), out


def test_the_tour_is_found_and_ported() -> None:
    script = tour_script(README.read_text(), 12345)
    assert "forecaster train" in script and "forecaster serve --port 12345" in script
    assert "8000" not in script


def tree_paths(text: str) -> list[str]:
    """Every path the architecture page's tree names (globs where it says ``*``).

    The tree's entries sit after a ``├── `` or ``└── `` (four columns a level) or at the start
    of a line, and end at two spaces; commas list siblings; other lines are descriptions."""
    section = text[text.index(TREE_HEADING) :]
    block = re.search(r"^```\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block, f"no tree under {TREE_HEADING!r}"
    paths: list[str] = []
    parents: list[str] = []
    for line in block.group(1).splitlines():
        match = re.match(r"^((?:[│ ]   )*)[├└]── (\S.*?)(?:  |$)", line)
        if match:
            depth = len(match.group(1)) // 4 + 1
        elif line and not line[0].isspace() and line[0] not in "│├└":
            match = re.match(r"^()(\S.*?)(?:  |$)", line)
            depth = 0
        if not match:
            continue
        names = [n.strip() for n in match.group(2).split(",")]
        parents = parents[:depth]
        base = "".join(parents)
        paths += [base + n for n in names]
        if len(names) == 1 and names[0].endswith("/"):
            parents.append(names[0])
        match = None
    return paths


def test_the_architecture_tree_names_only_paths_that_exist() -> None:
    paths = tree_paths(ARCHITECTURE.read_text())
    assert len(paths) > 80, paths
    missing = [p for p in paths if not list(ROOT.glob(p.rstrip("/")))]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_architecture_tree_names_every_module() -> None:
    """Both ways true: a new module shows up in the tree (a folder listed without its files,
    such as ``service/routes/``, covers what is in it)."""
    paths = tree_paths(ARCHITECTURE.read_text())
    leaves = [
        p for p in paths if p.endswith("/") and not any(q != p and q.startswith(p) for q in paths)
    ]
    modules = sorted(
        str(f.relative_to(ROOT))
        for package in ("forecaster", "service")
        for f in (ROOT / package).rglob("*.py")
        if f.name != "__init__.py"
    )
    unnamed = [m for m in modules if m not in paths and not any(m.startswith(d) for d in leaves)]
    assert not unnamed, f"docs/architecture.md's tree leaves out: {unnamed}"


def test_the_tree_reader_sees_nesting() -> None:
    tree = "\n".join(
        [
            TREE_HEADING,
            "```",
            "pkg/           a package",
            "├── a.py       one",
            "│              more about a",
            "└── sub/       inside",
            "    ├── b.py, c.py",
            "    └── d.py   last",
            "top.txt, other*.lock",
            "```",
        ]
    )
    assert tree_paths(tree) == [
        "pkg/", "pkg/a.py", "pkg/sub/", "pkg/sub/b.py", "pkg/sub/c.py", "pkg/sub/d.py",
        "top.txt", "other*.lock",
    ]  # fmt: skip


def test_the_site_builds_offline_with_the_services_openapi(tmp_path: Path) -> None:
    """The site builds strictly, and its OpenAPI page loads Swagger UI and the document from the
    site itself: no CDN, no web font, nothing fetched from elsewhere."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)]
    done = subprocess.run(mkdocs, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads((site / "reference" / "openapi.json").read_text())
    assert "/v1/forecast" in document["paths"] and "/v1/models/{name}/promote" in document["paths"]
    page = site / "reference" / "openapi" / "index.html"
    html = page.read_text()
    assert "SwaggerUIBundle" in html and "<td><code>/v1/actuals</code></td>" in html
    swagger = re.findall(r'(?:src=|href=|url: )"(\.\./(?:swagger-ui/|openapi\.json)[^"]*)"', html)
    wanted = {
        "../swagger-ui/swagger-ui-bundle.js",
        "../swagger-ui/swagger-ui.css",
        "../openapi.json",
    }
    assert set(swagger) == wanted, swagger
    for ref in swagger:
        assert (page.parent / ref).resolve().is_file(), ref
    for built in site.rglob("*.html"):
        loads = re.findall(
            r'<(?:script|link)[^>]*(?:src|href)="(https?://[^"]+)"', built.read_text()
        )
        assert not loads, (built, loads)
    assert (site / "tour" / "index.html").is_file()
