"""Load test of the forecast service: a real server on loopback driven by ``wrk``.

    .venv/bin/python benchmarks/load_test.py --duration 10

What it measures, how, and what it found: ``docs/results/serving.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
M4_HOURLY = ROOT.parent / "shared" / "data" / "m4" / "Hourly-train.csv"
HISTORY, HORIZON = 336, 48
# How the server is started: ``python <SERVE> --port P --registry R``.
SERVE = ("-m", "forecaster.cli", "serve")


def main() -> int:
    args = _parse()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if args.recording:
        with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
            print(json.dumps(_recording_cost(args, Path(tmp))))
        return 0
    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        registry = serving_registry(Path(args.registry), args.model, Path(tmp))
        script = lua_script(request_series(args.series), args.model, Path(tmp) / "forecast.lua")
        port = free_port()
        server, cold_start = start_server(registry, args.model, port, Path(tmp))
        try:
            result = {"cold_start_s": round(cold_start, 2)}
            result |= _measure(port, script, server.pid, args)
            if args.big_request:
                result |= _big_request_phase(port, script, server.pid, args)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result["goals_met"] = (
        result["forecast_vs_healthz_32"] >= 0.5
        and result["errors"] == 0
        and result["forecast_p99_ms_4"] <= 20
        and result["cold_start_s"] <= 10
    )
    print(json.dumps(result))
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured phase")
    parser.add_argument("--registry", default=str(ROOT / "models"))
    parser.add_argument("--model", default="m4-hourly")
    parser.add_argument("--series", type=int, default=414, help="distinct request bodies")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--big-request", action="store_true", help="also measure a 1,000 x 168 timestamped request"
    )
    parser.add_argument(
        "--recording", action="store_true", help="compare recording forecasts on and off"
    )
    return parser.parse_args()


def serving_registry(root: Path, model: str, tmp: Path) -> Path:
    """``root`` if it serves ``model``, else a temp registry with a random model of that name."""
    from forecaster.registry import ModelNotFoundError, Registry

    try:
        if Registry(root).alias(model) is not None:
            return root
    except ModelNotFoundError:
        pass
    from forecaster.model import ModelConfig, init_params

    config = ModelConfig(cell="gru", ensemble=1, quantiles=(0.1, 0.5, 0.9))
    Registry(tmp / "models").publish(model, config, init_params(config), promote=True)
    return tmp / "models"


def request_series(count: int) -> np.ndarray:
    """``count`` histories of 336 points: M4 Hourly's last points if present, else synthetic."""
    if M4_HOURLY.exists():
        with M4_HOURLY.open() as f:
            rows = list(csv.reader(f))[1:]
        tails = [[float(v) for v in row[1:] if v][-HISTORY:] for row in rows]
        return np.array([tails[i % len(tails)] for i in range(count)])
    rng = np.random.default_rng(0)
    t = np.arange(HISTORY)
    level = rng.uniform(10, 10_000, (count, 1))
    season = 1 + 0.3 * np.sin(2 * np.pi * (t + rng.integers(0, 24, (count, 1))) / 24)
    return level * season * rng.lognormal(0, 0.05, (count, HISTORY))


def lua_script(series: np.ndarray, model: str, path: Path, *, timed: bool = False) -> Path:
    """A wrk script that POSTs the bodies in turn (each wrk thread starts at its own offset);
    ``timed``: each body one series with an id and hourly timestamps (a recordable forecast)."""
    stamps = [f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00" for h in range(series.shape[1])]

    def body(i: int, values: np.ndarray) -> dict:
        history = [round(v, 3) for v in values]
        if not timed:
            return {"history": history, "horizon": HORIZON, "model": model}
        one = {"id": f"s{i}", "history": history, "timestamps": stamps}
        return {"series": [one], "horizon": HORIZON, "model": model}

    bodies = [json.dumps(body(i, s)) for i, s in enumerate(series)]
    lua = ["bodies = {"]
    lua += [f"  [==[{b}]==]," for b in bodies]
    lua += [
        "}",
        "local i = 0",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        "function setup(thread) thread:set('offset', math.random(#bodies)) end",
        "function request()",
        "  i = i + 1",
        "  return wrk.format(nil, '/v1/forecast', nil, bodies[(i + (offset or 0)) % #bodies + 1])",
        "end",
    ]
    path.write_text("\n".join(lua))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    registry: Path, model: str, port: int, tmp: Path, serve: tuple[str, ...] = SERVE, **extra: str
) -> tuple[subprocess.Popen, float]:
    env = {
        **os.environ,
        "FORECASTER_DEFAULT_MODEL": model,
        "FORECASTER_MODELS": json.dumps([model]),
        "FORECASTER_ALIAS_WATCH_INTERVAL_S": "0",
        # Recording goes to a throwaway file unless the caller says otherwise.
        "FORECASTER_DATABASE_URL": f"sqlite:///{tmp / f'monitoring-{port}.sqlite3'}",
        **extra,
    }
    cmd = [sys.executable, *serve, "--port", str(port)]
    start = time.perf_counter()
    server = subprocess.Popen(
        [*cmd, "--registry", str(registry)],
        cwd=ROOT,
        env=env,
        stdout=(tmp / f"server-{port}.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = start + 60
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited: {(tmp / f'server-{port}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return server, time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    sys.exit("server did not become ready in 60 s")


def _measure(port: int, script: Path, pid: int, args: argparse.Namespace) -> dict:
    url = f"http://127.0.0.1:{port}"
    run_wrk(url + "/healthz", 4, 2, args.threads, pid)  # warm the connection paths
    run_wrk(url, 4, 2, args.threads, pid, script)
    # Alternating short phases, so load from anything else on the machine hits both alike.
    rounds = [
        (
            run_wrk(url + "/healthz", 32, args.duration // 2, args.threads, pid),
            run_wrk(url, 32, args.duration // 2, args.threads, pid, script),
        )
        for _ in range(2)
    ]
    health32 = _combine([h for h, _ in rounds])
    fc32 = _combine([f for _, f in rounds])
    health4 = run_wrk(url + "/healthz", 4, args.duration, args.threads, pid)
    fc4 = run_wrk(url, 4, args.duration, args.threads, pid, script)
    return {
        "healthz_rps_32": health32["rps"],
        "forecast_rps_32": fc32["rps"],
        "forecast_vs_healthz_32": round(fc32["rps"] / health32["rps"], 3),
        "healthz_p99_ms_4": health4["p99_ms"],
        "forecast_p99_ms_4": fc4["p99_ms"],
        "forecast_p50_ms_4": fc4["p50_ms"],
        "forecast_rps_4": fc4["rps"],
        "forecast_p99_ms_32": fc32["p99_ms"],
        # Server CPU per request: a load-independent view, since the cores are shared.
        "healthz_cpu_us_32": health32["cpu_us"],
        "forecast_cpu_us_32": fc32["cpu_us"],
        "errors": sum(r["errors"] for r in (health32, fc32, health4, fc4)),
        "duration_s": args.duration,
        "command": " ".join(sys.argv),
    }


def run_wrk(
    url: str, conns: int, seconds: int, threads: int, pid: int, script: Path | None = None
) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    cmd += ["-s", str(script)] if script else []
    cpu = cpu_seconds(pid)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu
    requests = int(_found(r"(\d+) requests in", out)[0])
    return {
        "cpu_us": round(cpu / max(requests, 1) * 1e6, 1),
        "rps": float(_found(r"Requests/sec:\s+([\d.]+)", out)[0]),
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "errors": _errors(out),
    }


def _recording_cost(args: argparse.Namespace, tmp: Path) -> dict:
    """Forecasts/s and server CPU per forecast, recording on and off (module docstring)."""
    registry = serving_registry(Path(args.registry), args.model, tmp)
    script = lua_script(request_series(args.series), args.model, tmp / "timed.lua", timed=True)
    servers = {}
    for on in (True, False):
        port = free_port()
        flag = "true" if on else "false"
        servers[on] = (port, start_server(registry, args.model, port, tmp,
                                           FORECASTER_RECORDING=flag)[0])  # fmt: skip
    try:
        for port, server in servers.values():
            run_wrk(f"http://127.0.0.1:{port}", 4, 2, args.threads, server.pid, script)
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(2):  # alternating, so other load on the machine hits both alike
            for on, (port, server) in servers.items():
                url = f"http://127.0.0.1:{port}"
                runs[on].append(
                    run_wrk(url, 32, args.duration // 2, args.threads, server.pid, script)
                )
        time.sleep(1.0)  # let the last records flush
        port = servers[True][0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(timeout=30)
    rec, norec = _combine(runs[True]), _combine(runs[False])

    def counter(name: str) -> float:
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics, re.M)
        return sum(float(v) for v in found)

    return {
        "recording_rps_32": rec["rps"],
        "not_recording_rps_32": norec["rps"],
        "recording_vs_not_32": round(rec["rps"] / norec["rps"], 3),
        "recording_cpu_us_32": rec["cpu_us"],
        "not_recording_cpu_us_32": norec["cpu_us"],
        "recording_p99_ms_32": rec["p99_ms"],
        "not_recording_p99_ms_32": norec["p99_ms"],
        "recorded": counter("forecaster_forecasts_recorded_total"),
        "record_dropped": counter("forecaster_forecasts_record_dropped_total"),
        "errors": rec["errors"] + norec["errors"],
        "goals_met": rec["rps"] >= 0.9 * norec["rps"] and rec["errors"] + norec["errors"] == 0,
        "duration_s": args.duration,
        "command": " ".join(sys.argv),
    }


def _big_request_phase(port: int, script: Path, pid: int, args: argparse.Namespace) -> dict:
    """Event-loop CPU of a 1,000 x 168 timestamped request, and another client's p99 beside it."""
    url = f"http://127.0.0.1:{port}"
    body = _big_body(request_series(1000)[:, -168:])
    _post(url, body)  # warm
    loop_ms, wall_ms = [], []
    for _ in range(5):
        cpu, start = _loop_cpu_ns(pid), time.perf_counter()
        _post(url, body)
        wall_ms.append((time.perf_counter() - start) * 1e3)
        loop_ms.append((_loop_cpu_ns(pid) - cpu) / 1e6)
    alone = run_wrk(url, 1, args.duration, 1, pid, script)
    stop, sent = threading.Event(), [0]

    def flood() -> None:
        while not stop.is_set():
            _post(url, body)
            sent[0] += 1

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        beside = run_wrk(url, 1, args.duration, 1, pid, script)
    finally:
        stop.set()
        flooder.join()
    return {
        "big_loop_ms": round(float(np.median(loop_ms)), 1),
        "big_loop_ms_max": round(max(loop_ms), 1),
        "big_wall_ms": round(float(np.median(wall_ms)), 1),
        "one_series_p99_ms_alone": alone["p99_ms"],
        "one_series_p99_ms_beside_big": beside["p99_ms"],
        "one_series_p50_ms_beside_big": beside["p50_ms"],
        "big_requests_during": sent[0],
        "big_errors": beside["errors"],
    }


def _big_body(values: np.ndarray) -> bytes:
    """A request of ``len(values)`` series with hourly timestamps (ISO 8601)."""
    n = values.shape[1]
    stamps = [f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00" for h in range(n)]
    series = [
        {"id": f"s{i}", "history": [round(v, 3) for v in row], "timestamps": stamps}
        for i, row in enumerate(values)
    ]
    return json.dumps({"series": series, "horizon": HORIZON}).encode()


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url + "/v1/forecast", body, {"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        r.read()


def _loop_cpu_ns(pid: int) -> int:
    """CPU time of ``pid``'s main thread (the event loop), in ns."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0])


def _combine(phases: list[dict]) -> dict:
    """Totals of several runs of one phase: mean rate, worst p99, all errors."""
    return {
        "rps": round(sum(p["rps"] for p in phases) / len(phases), 1),
        "cpu_us": round(sum(p["cpu_us"] for p in phases) / len(phases), 1),
        "p50_ms": max(p["p50_ms"] for p in phases),
        "p99_ms": max(p["p99_ms"] for p in phases),
        "errors": sum(p["errors"] for p in phases),
    }


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU time of process ``pid`` (all its threads), or of its thread ``task``,
    so far."""
    stat = Path(f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _found(pattern: str, out: str) -> tuple[str, ...]:
    """The groups of ``pattern``'s first match in wrk's report (which always prints them)."""
    match = re.search(pattern, out)
    if match is None:
        raise RuntimeError(f"wrk's report lacks {pattern!r}:\n{out}")
    return match.groups()


def _latency(out: str, pct: str) -> float:
    value, unit = _found(rf"{pct}\s+([\d.]+)(us|ms|s)", out)
    return round(float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 2)


def _errors(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(non_2xx.group(1)) if non_2xx else 0
    return count + (sum(map(int, socket_errors.groups())) if socket_errors else 0)


if __name__ == "__main__":
    sys.exit(main())
