"""Fuzz the forecast service for longer than ``make test`` does: no 5xx, ever.

    .venv/bin/python -m benchmarks.fuzz --duration 300
    .venv/bin/python -m benchmarks.fuzz --examples 20000 --seed 7

What it measures, how, and what it found: ``docs/results/soak.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from benchmarks.soak import ROOT, start_server, stop_server
from tests.helpers.fuzzing import (  # the strategies the fuzz test runs with a small budget
    accuracy_queries,
    actuals_bodies,
    forecast_bodies,
    recordable,
    server_error,
)

# Examples per route in one Hypothesis run; runs repeat (fresh draws) until a limit is reached.
ROUND = 200
FAILURES_SHOWN = 5


def main() -> int:
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="forecaster-fuzz-") as name:
        tmp = Path(name)
        registry = tmp / "models"
        shutil.copytree(args.registry, registry, ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
        os.environ["FORECASTER_RECORD_FLUSH_S"] = "0.05"
        server, url, _log = start_server(registry, args.model, tmp)
        try:
            result = _fuzz(args, url, registry)
        finally:
            stop_server(server)
    print(json.dumps(result))
    return 1 if result["failures"] else 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3000, help="stop after this many")
    parser.add_argument("--duration", type=float, default=600.0, help="or after these seconds")
    parser.add_argument(
        "--registry", type=Path, default=ROOT / "models", help="copied; never modified"
    )
    parser.add_argument("--model", default="m4-hourly", help="the served model")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis' seed (else random)")
    return parser.parse_args()


class _Run:
    """What the fuzzing found so far."""

    def __init__(self, client: httpx.Client, model: str) -> None:
        self.client, self.model = client, model
        self.tried: dict[str, int] = {"forecast": 0, "actuals": 0, "accuracy": 0}
        self.failures: list[dict[str, Any]] = []
        self.answered = 0

    def send(self, route: str, request: dict[str, Any]) -> httpx.Response | None:
        self.tried[route] += 1
        try:
            if route == "accuracy":
                r = self.client.get(f"/v1/models/{self.model}/accuracy", params=request)
            else:
                content = json.dumps(request).encode()
                r = self.client.post(
                    f"/v1/{route}", content=content, headers={"content-type": "application/json"}
                )
        except httpx.HTTPError as exc:  # a server that hangs up or times out fails too
            self.failures.append({"route": route, "error": repr(exc), "request": _short(request)})
            return None
        problem = server_error(r.status_code, r.text)
        if problem is not None:
            self.failures.append({"route": route, "error": problem, "request": _short(request)})
        return r


def _fuzz(args: argparse.Namespace, url: str, registry: Path) -> dict[str, Any]:
    start = time.monotonic()
    deadline = start + args.duration
    with httpx.Client(base_url=url, timeout=60) as client:
        run = _Run(client, args.model)
        rounds = 0
        while sum(run.tried.values()) < args.examples and time.monotonic() < deadline:
            left = args.examples - sum(run.tried.values())
            budget = max(1, min(ROUND, left // 3 or 1))
            seed = None if args.seed is None else args.seed + rounds
            _round(run, budget, seed, deadline)
            rounds += 1
        recorded, dropped = _recorded(registry, run.answered, client)
    return {
        "examples": sum(run.tried.values()),
        "by_route": run.tried,
        "failures": len(run.failures),
        "first_failures": run.failures[:FAILURES_SHOWN],
        "answered_recordable": run.answered,
        "recorded": recorded,
        "dropped": dropped,
        "recorded_equals_answered": recorded == run.answered and dropped == 0,
        "seconds": round(time.monotonic() - start, 1),
    }


def _round(run: _Run, budget: int, seed: int | None, deadline: float) -> None:
    """One Hypothesis run of ``budget`` examples per route (fewer once past ``deadline``)."""
    config = settings(
        max_examples=budget,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @given(body=forecast_bodies())
    @config
    def forecasts(body: dict[str, Any]) -> None:
        if time.monotonic() < deadline:
            r = run.send("forecast", body)
            if r is not None and r.status_code == 200:
                run.answered += recordable(body, r.json())

    @given(body=actuals_bodies())
    @config
    def actuals(body: dict[str, Any]) -> None:
        if time.monotonic() < deadline:
            run.send("actuals", body)

    @given(query=accuracy_queries())
    @config
    def accuracy(query: dict[str, Any]) -> None:
        if time.monotonic() < deadline:
            run.send("accuracy", query)

    for test in (forecasts, actuals, accuracy):
        (test if seed is None else hypothesis.seed(seed)(test))()


def _recorded(registry: Path, answered: int, client: httpx.Client) -> tuple[int, float]:
    """Forecasts in the store once the writer has caught up (or 30 s passed), and the dropped."""
    engine = sa.create_engine(f"sqlite:///{registry / 'monitoring.sqlite3'}")
    deadline = time.monotonic() + 30
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT count(*) FROM forecasts")).scalar_one()
            if rows >= answered or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except sa.exc.OperationalError:  # nothing recorded: no table yet
        rows = 0
    finally:
        engine.dispose()
    text = client.get("/metrics").text
    dropped = re.findall(r"^forecaster_forecasts_record_dropped_total\{.*\} (\S+)$", text, re.M)
    return int(rows), sum(map(float, dropped))


def _short(request: dict[str, Any]) -> str:
    text = json.dumps(request)
    return text if len(text) <= 500 else text[:500] + "..."


if __name__ == "__main__":
    sys.exit(main())
