"""Soak test of the forecast service: a real server on loopback under mixed load for minutes.

    .venv/bin/python -m benchmarks.soak --minutes 1 --fault-s 60

What it measures, how, and what it found: ``docs/results/soak.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from forecaster.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
RETRAIN_MODEL = "soak-retrain"
RETRAIN_FLAGS = ["--cell", "gru", "--hidden", "8", "--input-size", "24", "--horizon", "6",
                 "--step", "6", "--seasonality", "6", "--steps", "40", "--batch-size", "16",
                 "--eval-every", "40", "--warmup-steps", "5"]  # fmt: skip
# Requests that must be refused with a 4xx: (what, content type, body).
BAD_REQUESTS: list[tuple[str, str, bytes]] = [
    ("truncated JSON", "application/json", b'{"history": [1, 2,'),
    ("horizon 0", "application/json", b'{"history": [1, 2, 3], "horizon": 0}'),
    ("text in history", "application/json", b'{"history": [1, "abc", 3], "horizon": 4}'),
    ("unknown model", "application/json", b'{"history": [1, 2], "horizon": 4, "model": "nope"}'),
    ("horizon too long", "application/json", b'{"history": [1, 2, 3], "horizon": 100000}'),
    ("plain text", "text/plain", b'{"history": [1, 2, 3], "horizon": 4}'),
]
BAD_EVERY = 50  # one request in this many is a bad one
# Log lines that mean the server hit an error (its own format, uvicorn's, a traceback).
ERROR_LINE = re.compile(r"\bERROR\b|^Traceback")
SWAP_GRACE_S = 15.0  # a failure this soon after an alias move counts as failed across the swap
# The mixed-fault phase: series ids and target stamps no database should take (issue 29).
BAD_IDS = ["nul\x00id", "bell\x07id", "x" * 300]
BAD_OFFSETS = ["+99:99", "+24:00", "X"]
FAULT_FLUSH_S = 0.1  # the fault server's recording interval
FAULT_BAD_EVERY = 4  # one request in this many carries a bad series
OUTAGE_S = 2.0  # how long PostgreSQL stays down


@dataclass
class Outcome:
    """One answered (or failed) request."""

    kind: str  # "single", "batch" or "bad"
    start: float  # time.monotonic()
    seconds: float
    status: int | str  # HTTP status, or the transport error's class name
    version: int | None = None


@dataclass
class Swap:
    """One move of the production alias."""

    at: float
    version: int


@dataclass
class Shared:
    """What the soak's threads record, and the event that stops them."""

    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[Outcome] = field(default_factory=list)
    swaps: list[Swap] = field(default_factory=list)
    retrains: Counter = field(default_factory=Counter)
    rss_kb: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def main() -> int:
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp_name:
        tmp = Path(tmp_name)
        registry = tmp / "models"
        shutil.copytree(args.registry, registry, ignore=shutil.ignore_patterns(".lock", ".tmp-*"))
        server, url, log = start_server(registry, args.model, tmp)
        try:
            result = _soak(args, server, url, log, registry)
        finally:
            stop_server(server)
        if args.fault_s > 0:
            faults = _fault_phase(args, registry, tmp)
            result["faults"] = faults
            result["goals"] |= faults.pop("goals", {})
            result["goals_met"] = result["goals_met"] and all(result["goals"].values())
    print(json.dumps(result))
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument(
        "--registry", type=Path, default=ROOT / "models", help="copied; never modified"
    )
    parser.add_argument("--model", default="m4-hourly", help="the served model")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--pause-ms", type=float, default=10.0, help="pause between requests")
    parser.add_argument("--swap-every", type=float, default=60.0, help="seconds between swaps")
    parser.add_argument("--warm-up-s", type=float, default=30.0, help="load before measuring")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fault-s", type=float, default=60.0, help="mixed-fault phase (PostgreSQL); 0 skips"
    )
    args = parser.parse_args()
    if not (args.minutes > 0 and args.clients >= 1 and args.swap_every > 0):
        parser.error("--minutes, --clients and --swap-every must be positive")
    if not 0 <= args.fault_s <= 3600:
        parser.error("--fault-s must be between 0 and 3600")
    return args


# ---------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    registry: Path, model: str, tmp: Path, name: str = "server", **extra: str
) -> tuple[subprocess.Popen, str, Path]:
    """``forecaster serve`` on a free loopback port, once ``/readyz`` answers 200."""
    port = _free_port()
    env = {
        **os.environ,
        "FORECASTER_DEFAULT_MODEL": model,
        "FORECASTER_MODELS": json.dumps([model]),
        "FORECASTER_ALIAS_WATCH_INTERVAL_S": "1",
        "JAX_LOG_COMPILES": "1",
        **extra,
    }
    cmd = [sys.executable, "-m", "forecaster.cli", "serve", "--port", str(port)]
    log = tmp / f"{name}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*cmd, "--registry", str(registry)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return server, url, log
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    sys.exit(f"server not ready in 180 s: {log.read_text()[-3000:]}")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class ServerLog:
    """What the server's log holds so far."""

    compiled: list[str]  # names of the computations compiled (its JAX_LOG_COMPILES lines)
    errors: int  # ERROR lines and tracebacks

    @classmethod
    def read(cls, log: Path) -> ServerLog:
        lines = log.read_text(errors="replace").splitlines()
        compiled = [
            line.split("Compiling ", 1)[1].split(" ", 1)[0]
            for line in lines
            if "Compiling " in line
        ]
        errors = sum(bool(ERROR_LINE.search(line)) for line in lines)
        return cls(compiled, errors)


# ---------------------------------------------------------------------------- the load


def _bodies(rng: np.random.Generator, count: int, series: int) -> list[bytes]:
    """``count`` request bodies of ``series`` hourly series each (one: the single form).

    Each series is 168 to 336 points of daily seasonality around its own level.
    """
    out = []
    for _ in range(count):
        items = []
        for _ in range(series):
            length = int(rng.integers(168, 337))
            t = np.arange(length)
            level = rng.uniform(10, 10_000)
            season = 1 + 0.3 * np.sin(2 * np.pi * (t + rng.integers(0, 24)) / 24)
            items.append([round(v, 3) for v in level * season * rng.lognormal(0, 0.05, length)])
        horizon = int(rng.integers(1, 49))
        if series == 1:
            out.append(json.dumps({"history": items[0], "horizon": horizon}).encode())
        else:
            batch = [{"id": f"s{i}", "history": h} for i, h in enumerate(items)]
            out.append(json.dumps({"series": batch, "horizon": horizon}).encode())
    return out


class Client(threading.Thread):
    """Sends requests back to back until told to stop, recording every outcome."""

    def __init__(self, url: str, seed: int, shared: Shared, pause_s: float) -> None:
        super().__init__(daemon=True)
        rng = np.random.default_rng(seed)
        self.url, self.shared, self.pause_s, self.rng = url, shared, pause_s, rng
        self.singles = _bodies(rng, 32, 1)
        self.batches = [b for n in rng.integers(2, 65, 8) for b in _bodies(rng, 1, int(n))]
        self.bad = itertools.cycle(BAD_REQUESTS[seed % len(BAD_REQUESTS) :] + BAD_REQUESTS)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in itertools.count(1):
                if self.shared.stop.is_set():
                    return
                self.shared.outcomes.append(self._one(client, i))
                time.sleep(self.pause_s)

    def _one(self, client: httpx.Client, i: int) -> Outcome:
        if i % BAD_EVERY == 0:
            kind, (_, content_type, body) = "bad", next(self.bad)
        elif self.rng.random() < 0.25:
            kind, content_type = "batch", "application/json"
            body = self.batches[int(self.rng.integers(len(self.batches)))]
        else:
            kind, content_type = "single", "application/json"
            body = self.singles[int(self.rng.integers(len(self.singles)))]
        start = time.monotonic()
        try:
            response = client.post(
                "/v1/forecast", content=body, headers={"content-type": content_type}
            )
        except httpx.HTTPError as err:
            return Outcome(kind, start, time.monotonic() - start, type(err).__name__)
        seconds = time.monotonic() - start
        version = response.json().get("version") if response.status_code == 200 else None
        return Outcome(kind, start, seconds, response.status_code, version)


# ---------------------------------------------------------------------------- background jobs


def _swapper(registry: Path, model: str, every_s: float, shared: Shared) -> None:
    """Move ``production`` every ``every_s``: to a fresh copy of the weights, then back."""
    reg = Registry(registry)
    original = reg.alias(model)
    if original is None:
        raise RuntimeError(f"{model} has no production version to swap")
    for n in itertools.count(1):
        if shared.stop.wait(every_s):
            return
        try:
            target = _republish(reg, model, original) if n % 2 else original
            reg.promote(model, target)
            shared.swaps.append(Swap(time.monotonic(), target))
        except Exception as err:  # recorded and reported: the soak goes on
            shared.errors.append(f"swap {n}: {err!r}")


def _republish(reg: Registry, model: str, version: int) -> int:
    """Publish ``model@version``'s weights and metadata again as a new version."""
    loaded = reg.load(model, version)
    manifest = loaded.manifest
    return reg.publish(
        model,
        loaded.config,
        loaded.params,
        metrics=manifest.metrics,
        data_fingerprint=manifest.data_fingerprint,
        freq=manifest.freq,
        seasonality=manifest.seasonality,
    )


def _retrainer(registry: Path, tmp: Path, deadline: float, shared: Shared) -> None:
    """Run ``forecaster retrain`` on a small synthetic data set until ``deadline``."""
    csv = tmp / "retrain.csv"
    stamps = pd.date_range("2024-01-01", periods=120, freq="h")
    rows = [
        (f"s{i}", t, (20 + 10 * i) * (1.3 + np.sin(k * np.pi / 3)))
        for i in range(4)
        for k, t in enumerate(stamps)
    ]
    pd.DataFrame(rows, columns=["id", "timestamp", "value"]).to_csv(csv, index=False)
    argv = [sys.executable, "-m", "forecaster.cli", "retrain", "--data", str(csv)]
    argv += ["--registry", str(registry), "--name", RETRAIN_MODEL, "--promote", "never"]
    argv += ["--no-progress", *RETRAIN_FLAGS]
    while not shared.stop.is_set() and time.monotonic() < deadline:
        try:
            job = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            shared.retrains["timed out"] += 1
            continue
        shared.retrains["ok" if job.returncode == 0 else "failed"] += 1
        if job.returncode != 0:
            last = (job.stderr.strip().splitlines() or [""])[-1]
            shared.errors.append(f"retrain exit {job.returncode}: {last[-300:]}")
        shared.stop.wait(5)


def _sampler(pid: int, shared: Shared) -> None:
    while not shared.stop.wait(5):
        shared.rss_kb.append(_rss_kb(pid))


# ---------------------------------------------------------------------------- the soak


def _first_requests(url: str, seed: int) -> None:
    """Every request form once per batch bucket, and each bad request, one at a time."""
    rng = np.random.default_rng(seed + 1000)
    bodies = [*_bodies(rng, 8, 1)] + [b for n in (2, 4, 9, 17, 65) for b in _bodies(rng, 2, n)]
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in bodies:
            client.post("/v1/forecast", content=body, headers={"content-type": "application/json"})
        for _, content_type, body in BAD_REQUESTS:
            client.post("/v1/forecast", content=body, headers={"content-type": content_type})


def _clients(url: str, args: argparse.Namespace, shared: Shared) -> list[Client]:
    return [Client(url, args.seed + i, shared, args.pause_ms / 1000) for i in range(args.clients)]


def _load_only(url: str, args: argparse.Namespace, seconds: float) -> list[Outcome]:
    """The soak's client load alone for ``seconds``; returns its outcomes."""
    shared = Shared()
    clients = _clients(url, args, shared)
    for client in clients:
        client.start()
    shared.stop.wait(seconds)
    shared.stop.set()
    for client in clients:
        client.join(timeout=60)
    return shared.outcomes


def _soak(
    args: argparse.Namespace, server: subprocess.Popen, url: str, log: Path, registry: Path
) -> dict:
    """Warm up, then run the load, the swaps and the retraining for ``--minutes``."""
    pid, tmp = server.pid, log.parent
    _first_requests(url, args.seed)
    warm = ServerLog.read(log)  # compiles count from here
    rss_first_kb = _rss_kb(pid)
    # RSS and descriptors are measured from after a spell of the same concurrent load: memory
    # grows in the first tens of seconds of it (allocator arenas, larger coalesced batches).
    warm_up = _load_only(url, args, args.warm_up_s)
    start = {"rss_kb": _rss_kb(pid), "fds": _fds(pid), "t": time.monotonic()}
    start["rss_first_kb"] = rss_first_kb
    seconds = args.minutes * 60
    shared = Shared()
    swap_every = min(args.swap_every, seconds / 3)
    clients = _clients(url, args, shared)
    jobs = [
        threading.Thread(target=_swapper, args=(registry, args.model, swap_every, shared)),
        threading.Thread(target=_retrainer, args=(registry, tmp, start["t"] + seconds, shared)),
        threading.Thread(target=_sampler, args=(pid, shared)),
    ]
    for thread in [*clients, *jobs]:
        thread.start()
    shared.stop.wait(seconds)
    shared.stop.set()
    for client in clients:
        client.join(timeout=60)
    end = {"rss_kb": _rss_kb(pid), "fds": _fds(pid), "t": time.monotonic()}
    logged = ServerLog.read(log)
    for job in jobs:
        job.join(timeout=330)  # a retrain in progress finishes (bounded by its timeout)
    return _report(args, shared, warm_up, start, end, warm, logged)


def _report(
    args: argparse.Namespace,
    shared: Shared,
    warm_up: list[Outcome],
    start: dict,
    end: dict,
    warm: ServerLog,
    logged: ServerLog,
) -> dict:
    compiled_after = logged.compiled[len(warm.compiled) :]
    outcomes = list(shared.outcomes)
    good = [o for o in outcomes if o.kind != "bad"]
    bad = [o for o in outcomes if o.kind == "bad"]
    failed = [o for o in good if _unexpected(o)]
    across = [
        o for o in failed if any(s.at <= o.start <= s.at + SWAP_GRACE_S for s in shared.swaps)
    ]
    rss_growth = 100 * (end["rss_kb"] - start["rss_kb"]) / start["rss_kb"]
    fives = sum(isinstance(o.status, int) and o.status >= 500 for o in outcomes + warm_up)
    bad_not_4xx = sum(_unexpected(o) for o in bad)
    result = {
        "minutes": args.minutes,
        "warm_up_s": args.warm_up_s,
        "clients": args.clients,
        "warm_up_requests": len(warm_up),
        "warm_up_errors_by_status": _by_status([o for o in warm_up if _unexpected(o)]),
        "requests": len(outcomes),
        "requests_per_s": round(len(outcomes) / (end["t"] - start["t"]), 1),
        "single": sum(o.kind == "single" for o in good),
        "batch": sum(o.kind == "batch" for o in good),
        "errors_by_status": _by_status(failed),
        "bad_requests": len(bad),
        "bad_by_status": _by_status(bad),
        **_latency(good),
        **_swaps(good, shared.swaps),
        "failed_across_swaps": len(across),
        "retrains": dict(shared.retrains),
        "rss_first_requests_mb": round(start["rss_first_kb"] / 1024, 1),
        "rss_start_mb": round(start["rss_kb"] / 1024, 1),
        "rss_end_mb": round(end["rss_kb"] / 1024, 1),
        "rss_max_mb": round(max([end["rss_kb"], *shared.rss_kb]) / 1024, 1),
        "rss_mb_each_minute": [round(kb / 1024, 1) for kb in shared.rss_kb[11::12]],
        "rss_growth_pct": round(rss_growth, 2),
        "fds_start": start["fds"],
        "fds_end": end["fds"],
        "compiles_warm_up": len(warm.compiled),
        "compiles_after_warm_up": len(compiled_after),
        "compiled_after_warm_up": sorted(set(compiled_after))[:10],
        "server_errors_logged": logged.errors - warm.errors,
        "problems": shared.errors[:5],
    }
    goals = {
        "no_5xx": fives == 0,
        "no_failed_across_swaps": not across and result["swaps_seen"] == result["swaps"],
        "rss_growth_under_10pct": rss_growth < 10,
        "no_compile_after_warm_up": not compiled_after,
        "bad_requests_4xx": bad_not_4xx == 0,
    }
    # Swap or retrain failures and server-side errors are not goals, but void the run.
    clean = not shared.errors and result["server_errors_logged"] == 0
    result |= {"goals": goals, "goals_met": all(goals.values()) and clean}
    return result | {"command": " ".join(sys.argv)}


# ---------------------------------------------------------------------------- mixed faults


@dataclass
class FaultShared:
    """What the fault phase's clients record: per answered recordable forecast its series id,
    whether it was a bad one, and when it was answered; statuses; bad series sent and refused
    (in a 200's ``errors``, or by a 4xx); the outage's times."""

    stop: threading.Event = field(default_factory=threading.Event)
    answered: list[tuple[str, bool, float]] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    bad: Counter = field(default_factory=Counter)  # "sent", "refused"
    outage: list[float] = field(default_factory=list)  # stopped at, back at


def _fault_phase(args: argparse.Namespace, registry: Path, tmp: Path) -> dict:
    """The mixed-fault phase (module docstring) on its own server; returns its figures."""
    from tests.helpers import postgres  # the tests' throwaway cluster: one home for starting it

    if not postgres.available():
        return {"skipped": postgres.SKIP_REASON}
    with postgres.cluster() as cluster:
        database = cluster.database()
        server, url, log = start_server(registry, args.model, tmp, "fault-server",
                                         FORECASTER_DATABASE_URL=database,
                                         FORECASTER_RECORD_FLUSH_S=str(FAULT_FLUSH_S))  # fmt: skip
        try:
            shared = FaultShared()
            clients = [
                threading.Thread(target=_fault_client, args=(url, args.seed + i, i, shared))
                for i in range(args.clients)
            ]
            for client in clients:
                client.start()
            shared.stop.wait(args.fault_s / 2)
            shared.outage.append(time.monotonic())
            cluster.stop()
            shared.stop.wait(OUTAGE_S)
            cluster.start()
            shared.outage.append(time.monotonic())
            shared.stop.wait(args.fault_s / 2)
            shared.stop.set()
            for client in clients:
                client.join(timeout=60)
            counts = _settle(url, len(shared.answered))
            stored = _stored_ids(database)
            rows = _stored_rows(database)
            errors = ServerLog.read(log).errors
        finally:
            stop_server(server)
    return _fault_report(args, shared, counts, stored, rows, errors)


def _fault_client(url: str, seed: int, client: int, shared: FaultShared) -> None:
    """Forecast requests of 1-4 recordable series until told to stop; one in
    FAULT_BAD_EVERY carries a bad id or stamp beside good series (or alone)."""
    rng = np.random.default_rng(seed + 2000)
    start = pd.Timestamp("2024-01-01")
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in itertools.count():
            if shared.stop.is_set():
                return
            series, bad = [], []
            for k in range(int(rng.integers(1, 5))):
                n = int(rng.integers(168, 337))
                stamps = pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%dT%H:%M")
                history = (100 + 10 * np.sin(np.arange(n) * np.pi / 12)).round(3).tolist()
                series.append({"id": f"g{client}-{i}-{k}", "history": history,
                               "timestamps": list(stamps)})  # fmt: skip
                bad.append(False)
            if i % FAULT_BAD_EVERY == 0:
                entry = dict(series[0])
                if rng.random() < 0.5:
                    entry["id"] = f"{BAD_IDS[i % len(BAD_IDS)]}-{client}-{i}"
                else:
                    offset = BAD_OFFSETS[i % len(BAD_OFFSETS)]
                    entry |= {"id": f"b{client}-{i}",
                              "timestamps": [t + offset for t in entry["timestamps"]]}  # fmt: skip
                alone = rng.random() < 0.3
                series, bad = ([entry], [True]) if alone else ([*series, entry], [*bad, True])
            try:
                r = http.post("/v1/forecast", json={"series": series, "horizon": 12})
            except httpx.HTTPError as err:
                shared.statuses[type(err).__name__] += 1
                continue
            shared.statuses[str(r.status_code)] += 1
            shared.bad["sent"] += sum(bad)
            if r.status_code != 200:
                shared.bad["refused"] += sum(bad) if 400 <= r.status_code < 500 else 0
                continue
            answer = r.json()
            shared.bad["refused"] += sum(bad[e["index"]] for e in answer.get("errors", []))
            now = time.monotonic()
            for k, forecast in enumerate(answer["forecasts"]):
                is_bad = bad[forecast.get("index", k)]  # a series refused alone is left out
                if forecast.get("id") is not None and forecast.get("timestamps"):
                    shared.answered.append((forecast["id"], is_bad, now))
            time.sleep(0.01)


def _metric_sum(text: str, name: str) -> dict[str, float]:
    """``{label value or "": value}`` of metric ``name`` in a Prometheus page."""
    out = {}
    for m in re.finditer(rf'^{name}(?:{{reason="(\w+)"}})? (\S+)$', text, re.M):
        out[m[1] or ""] = float(m[2])
    return out


def _settle(url: str, answered: int, timeout_s: float = 60.0) -> dict[str, float]:
    """The server's recorded and dropped counts, once they add up to ``answered`` (or at
    ``timeout_s``: the recorder's queue is written within a flush interval or two)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        recorded = _metric_sum(text, "forecaster_forecasts_recorded_total").get("", 0.0)
        dropped = _metric_sum(text, "forecaster_forecasts_record_dropped_total")
        if recorded + sum(dropped.values()) >= answered or time.monotonic() > deadline:
            return {"recorded": recorded, **{f"dropped_{k}": v for k, v in dropped.items()}}
        time.sleep(0.2)


def _stored_ids(database: str) -> set[str]:
    import psycopg

    with psycopg.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT series_id FROM forecasts")}


def _stored_rows(database: str) -> int:
    import psycopg

    with psycopg.connect(database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM forecasts").fetchall()[0]
        return int(count)


def _fault_report(
    args: argparse.Namespace,
    shared: FaultShared,
    counts: dict,
    stored: set[str],
    rows: int,
    errors: int,
) -> dict:
    answered = len(shared.answered)
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
    stopped, back = shared.outage
    good = [(sid, t) for sid, is_bad, t in shared.answered if not is_bad]
    lost = [(sid, t) for sid, t in good if sid not in stored]
    lost_in_outage = [sid for sid, t in lost if stopped <= t <= back]
    bad_answered = sum(is_bad for _, is_bad, _ in shared.answered)
    # A 5xx, or a connection dropped without an answer (the request counts as failed either way).
    failed = sum(n for status, n in shared.statuses.items() if not status.startswith(("2", "4")))
    result = {
        "fault_s": args.fault_s,
        "requests_by_status": dict(sorted(shared.statuses.items())),
        "answered": answered,
        "good_answered": len(good),
        "bad_answered": bad_answered,
        "bad_sent": shared.bad["sent"],
        "bad_refused": shared.bad["refused"],
        **counts,
        "good_lost": len(lost),
        "good_lost_in_outage": len(lost_in_outage),
        "stored_rows": rows,
        "outage_s": round(back - stopped, 2),
        "server_errors_logged": errors,
    }
    result["goals"] = {
        "faults_accounted": counts["recorded"] + dropped == answered,
        "faults_no_good_lost": not lost,
        "faults_stored_once": rows == counts["recorded"],
        "faults_every_request_200_or_4xx": failed == 0,
    }
    return result


def _unexpected(o: Outcome) -> bool:
    """A forecast that did not get 200, or a bad request that did not get a 4xx."""
    if o.kind == "bad":
        return not (isinstance(o.status, int) and 400 <= o.status < 500)
    return o.status != 200


def _by_status(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(sorted(Counter(str(o.status) for o in outcomes).items()))


def _latency(good: list[Outcome]) -> dict:
    out = {}
    for name, kinds in (
        ("", ("single", "batch")),
        ("single_", ("single",)),
        ("batch_", ("batch",)),
    ):
        ms = [1000 * o.seconds for o in good if o.kind in kinds and o.status == 200]
        if ms:
            out[f"{name}p50_ms"] = round(float(np.percentile(ms, 50)), 1)
            out[f"{name}p99_ms"] = round(float(np.percentile(ms, 99)), 1)
    return out


def _swaps(good: list[Outcome], swaps: list[Swap]) -> dict:
    """How many alias moves the clients saw served, and the longest time until they did."""
    delays = []
    for n, swap in enumerate(swaps):
        until = swaps[n + 1].at if n + 1 < len(swaps) else float("inf")
        seen = [o.start for o in good if swap.at <= o.start < until and o.version == swap.version]
        if seen:
            delays.append(min(seen) - swap.at)
    return {
        "swaps": len(swaps),
        "swaps_seen": len(delays),
        "swap_seen_after_max_s": round(max(delays), 2) if delays else None,
    }


if __name__ == "__main__":
    sys.exit(main())
