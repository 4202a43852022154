"""EPF's served intervals day by day: static calibration against the online adjustment.

    python -m benchmarks.epf_intervals [--markets NP PJM BE] [--ensemble 1 --steps 1000]
        [--calibration-origins 100] [--days N] [--modes static adaptive]
        [model and training flags]

Per market the model is trained once before the test period, with its calibration, as
:mod:`benchmarks.epf` trains it (the file's covariates and the calendar), and published with
that calibration to two throwaway registries (each with its own monitoring database). Each is
served in turn by a real ``forecaster serve`` on 127.0.0.1: ``static`` as published, and
``adaptive`` with ``FORECASTER_ADAPTIVE_INTERVALS`` naming it. Each of the ``TEST_DAYS`` test
days is forecast over HTTP (eight weeks of history with timestamps and covariates, and the
day's 24 covariate values ahead; the series' id is the market, so the forecast is recorded),
then the day's actuals are posted back (``POST /v1/actuals``, re-sent until all 24 points are
matched to the recorded forecast: the recorder writes it within a flush), and for the adaptive
server the next day waits (polling its log, with a deadline) for the level the adjustment
reaches after those actuals, computed here by :func:`forecaster.monitoring.adaptive.
effective_level` from the same record. Each day's 24 hours are scored against the 80% and
95% bands as served.

One JSON line per market and mode: overall coverage per level, the rolling 30-day coverage's
min and max and the share of days (from the 30th) whose rolling coverage is within 3 points of
nominal, the MAE, the levels served on the last day, and the days the adjusted level was not
yet the expected one when forecast (``lagged_days``).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.epf import (
    DAY,
    EPF,
    LEVELS,
    MARKETS,
    TEST_DAYS,
    Variant,
    load_market,
    train_market,
)
from benchmarks.soak import start_server, stop_server
from forecaster.cli import add_config_arguments
from forecaster.monitoring import adaptive
from forecaster.registry import Registry

CONTEXT = 8 * 7 * DAY  # as benchmarks.epf sends
ROLLING = 30  # days
MARGIN = 3.0  # points
GAMMA = 0.005  # the service's default FORECASTER_ADAPTIVE_GAMMA
POLL_S, DEADLINE_S = 0.02, 10.0
MODES = ("static", "adaptive")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=EPF, help="folder holding NP.csv, PJM.csv, BE.csv")
    p.add_argument("--markets", nargs="+", default=list(MARKETS), choices=MARKETS)
    p.add_argument("--days", type=int, default=TEST_DAYS, help="the first N test days only")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    add_config_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def iso(stamps: Any) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%S") for t in stamps]


def served_levels(log: Path, name: str) -> dict[str, float]:
    """The last effective level the server logged per level key (none logged: nominal)."""
    pattern = re.compile(rf"adaptive intervals: model {re.escape(name)} version \d+ "
                         r"level ([\d.]+)%: \S+ -> (\S+)")  # fmt: skip
    return {m[1]: float(m[2]) for m in pattern.finditer(log.read_text())}


def expected_levels(inside: dict[str, list[bool]]) -> dict[str, float]:
    return {
        k: adaptive.effective_level(float(k), v[-adaptive.WINDOW :], GAMMA)
        for k, v in inside.items()
    }


def wait_for(check: Any, what: str) -> bool:
    """Poll ``check`` until true or :data:`DEADLINE_S` passes; whether it came true."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL_S)
    print(f"epf_intervals: not within {DEADLINE_S} s: {what}", file=sys.stderr)
    return False


def replay(
    market: str, mode: str, name: str, registry: Path, frame: Any, starts: np.ndarray,
    columns: list[str], tmp: Path,
) -> dict[str, Any]:  # fmt: skip
    extra = {"FORECASTER_RETENTION_DAYS": "36500", "FORECASTER_RECORD_FLUSH_S": "0.05"}
    if mode == "adaptive":
        extra |= {"FORECASTER_ADAPTIVE_INTERVALS": json.dumps([name]),
                  "FORECASTER_ADAPTIVE_GAMMA": str(GAMMA)}  # fmt: skip
    server, url, log = start_server(registry, name, tmp, name=f"server-{name}-{mode}", **extra)
    values = frame["value"].to_numpy(np.float64)
    cols = {c: frame[c].to_numpy(np.float64) for c in columns}
    keys = [f"{level:g}" for level in LEVELS]
    hits = {k: np.zeros((len(starts), DAY), bool) for k in keys}
    inside: dict[str, list[bool]] = {k: [] for k in keys}
    errors: list[np.ndarray] = []
    lagged = 0
    last_adjusted: dict[str, float] = {}
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for d, s in enumerate(starts):
                lo = max(0, s - CONTEXT)
                series = {"id": market, "history": values[lo:s].tolist(),
                          "timestamps": iso(frame.index[lo:s])}  # fmt: skip
                if columns:
                    series["past_covariates"] = {c: v[lo:s].tolist() for c, v in cols.items()}
                    series["future_covariates"] = {c: v[s : s + DAY].tolist()
                                                   for c, v in cols.items()}  # fmt: skip
                r = http.post("/v1/forecast", json={"series": [series], "horizon": DAY})
                r.raise_for_status()
                answer = r.json()["forecasts"][0]
                actual = values[s : s + DAY]
                errors.append(np.abs(actual - np.asarray(answer["forecast"])))
                adjusted = answer.get("adjusted") or {}
                if (
                    mode == "adaptive"
                    and d
                    and adjusted
                    != {k: v for k, v in expected_levels(inside).items() if v != float(k)}
                ):
                    lagged += 1
                last_adjusted = adjusted
                for k in keys:
                    band = answer["intervals"][k]
                    hit = (np.asarray(band["lower"]) <= actual) & (
                        actual <= np.asarray(band["upper"])
                    )
                    hits[k][d] = hit
                    inside[k].extend(bool(h) for h in hit)
                body = {"series": [{"id": market, "timestamps": iso(frame.index[s : s + DAY]),
                                    "values": actual.tolist()}]}  # fmt: skip

                def matched(body: dict[str, Any] = body) -> bool:
                    # Sending the same actuals again is harmless (they replace themselves).
                    posted = http.post("/v1/actuals", json=body)
                    posted.raise_for_status()
                    return bool(posted.json()["matched"] == DAY)

                wait_for(matched, f"{market} day {d}'s actuals matched")
                if mode == "adaptive":
                    want = expected_levels(inside)
                    wait_for(
                        lambda want=want: all(
                            served_levels(log, name).get(k, float(k)) == v for k, v in want.items()
                        ),
                        f"{market} day {d}'s adjusted levels {want}",
                    )
    finally:
        stop_server(server)
    return summary(market, mode, hits, errors, lagged, last_adjusted, started, len(starts))


def summary(
    market: str, mode: str, hits: dict[str, np.ndarray], errors: list[np.ndarray],
    lagged: int, last_adjusted: dict[str, float], started: float, days: int,
) -> dict[str, Any]:  # fmt: skip
    line: dict[str, Any] = {"benchmark": "epf_intervals", "market": market, "mode": mode,
                            "days": days, "coverage": {}, "rolling_30d": {}}  # fmt: skip
    for k, h in hits.items():
        daily = h.mean(axis=1)
        # np.convolve swaps its arguments when the days are fewer than the window.
        rolling = (
            100 * np.convolve(daily, np.ones(ROLLING) / ROLLING, mode="valid")
            if len(daily) >= ROLLING
            else np.empty(0)
        )
        nominal = float(k)
        line["coverage"][k] = round(100 * float(h.mean()), 2)
        line["rolling_30d"][k] = {
            "min": round(float(rolling.min()), 2) if len(rolling) else None,
            "max": round(float(rolling.max()), 2) if len(rolling) else None,
            "within_3_points_pct": round(
                100 * float(np.mean(np.abs(rolling - nominal) <= MARGIN)), 1
            ) if len(rolling) else None,
        }  # fmt: skip
    line["mae"] = round(float(np.mean(np.concatenate(errors))), 4)
    if mode == "adaptive":
        line["served_last_day"] = last_adjusted or "nominal"
        line["lagged_days"] = lagged
    line["replay_wall_s"] = round(time.perf_counter() - started, 1)
    return line


def run_market(market: str, args: argparse.Namespace, tmp: Path) -> None:
    frame = load_market(args.data / f"{market}.csv")
    test_start = len(frame) - TEST_DAYS * DAY
    starts = np.arange(test_start, len(frame), DAY)[: args.days]
    config, params, spec, facts, calibration = train_market(
        market, frame, test_start, Variant("full", True, None), args
    )
    if calibration is None:
        sys.exit(f"{market}: training gave no calibration (--calibration-origins 0?)")
    name = f"epf-{market.lower()}"
    train_line = {"benchmark": "epf_intervals", "market": market, "stage": "train",
                  **{k: facts[k] for k in ("reads", "best_step", "val", "train_cpu_s",
                                           "train_wall_s")}}  # fmt: skip
    print(json.dumps(train_line), flush=True)
    columns = spec.names("future") if spec else []
    for mode in args.modes:
        registry = tmp / f"registry-{market}-{mode}"
        Registry(registry).publish(name, config, params, promote=True, freq="h",
                                   seasonality=DAY, covariates=spec,
                                   calibration=calibration)  # fmt: skip
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = replay(market, mode, name, registry, frame, starts, columns, tmp)
        after = resource.getrusage(resource.RUSAGE_SELF)
        line["client_cpu_s"] = round(
            after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime, 1
        )
        print(json.dumps(line), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epf-intervals-") as tmp:
        for market in args.markets:
            run_market(market, args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
