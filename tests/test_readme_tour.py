"""The README's tour runs as written: its shell blocks, in order, in an empty directory.

The tour is the front door's promise (from a CSV to a served, monitored forecast), so it is
executed rather than trusted: a renamed flag, a changed output or a broken step fails here. Only
the port is changed, to a free one, so that the test never meets a server already on 8000.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
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
        if proc.poll() is None or proc.returncode != 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
