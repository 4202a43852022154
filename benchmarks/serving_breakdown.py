"""Where a forecast's server CPU goes: the service with its stages cut off one at a time.

    python -m benchmarks.serving_breakdown --duration 4 --rounds 3

What it measures, how, and what it found: ``docs/results/serving.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import load_test as lt

VARIANTS = ("echo", "parse", "no-model", "no-forward", "full")
ANSWER = json.dumps({"forecast": [1.0] * lt.HORIZON, "method": "model", "filled": 0}).encode()


def main() -> int:
    args = _parse()
    if args.serve:
        _serve(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="breakdown-") as tmp:
        registry = lt.serving_registry(Path(args.registry), args.model, Path(tmp))
        script = lt.lua_script(lt.request_series(414), args.model, Path(tmp) / "forecast.lua")
        servers = {}
        try:
            for variant in args.variants:
                serve = ("-m", "benchmarks.serving_breakdown", "--serve", variant)
                port = lt.free_port()
                servers[variant] = (port, lt.start_server(registry, args.model, port, Path(tmp),
                                                           serve)[0])  # fmt: skip
            for port, server in servers.values():  # warm the connection paths
                lt.run_wrk(f"http://127.0.0.1:{port}", 4, 2, 1, server.pid, script)
            # Alternating rounds, so load from anything else on the machine hits all alike.
            rounds: dict[str, list[dict[str, float]]] = {v: [] for v in servers}
            for _ in range(args.rounds):
                for variant, (port, server) in servers.items():
                    rounds[variant].append(_round(port, server.pid, script, args.duration))
        finally:
            for _, server in servers.values():
                server.terminate()
                server.wait(timeout=30)
    result = {v: _median(r) for v, r in rounds.items()}
    print(json.dumps({"variants": result, "command": " ".join(sys.argv)}))
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per measured phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--registry", default=str(lt.ROOT / "models"))
    parser.add_argument("--model", default="m4-hourly")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def _round(port: int, pid: int, script: Path, seconds: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}"
    health = lt.run_wrk(url + "/healthz", 32, seconds, 1, pid)
    before = _thread_cpu(pid)
    forecasts = lt.run_wrk(url, 32, seconds, 1, pid, script)
    after = _thread_cpu(pid)
    done = max(forecasts["rps"] * seconds, 1.0)
    loop = (after.pop(pid) - before.pop(pid)) / done * 1e6
    others = sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items()) / done * 1e6
    return {
        "forecast_vs_healthz_32": forecasts["rps"] / health["rps"],
        "forecast_rps_32": forecasts["rps"],
        "healthz_cpu_us_32": health["cpu_us"],
        "loop_cpu_us": loop,
        "other_threads_cpu_us": others,
        "errors": forecasts["errors"] + health["errors"],
    }


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    out = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}
    out["errors"] = sum(r["errors"] for r in rounds)
    return out


def _thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = lt.cpu_seconds(pid, int(task.name))
        except OSError:  # the thread ended
            continue
    return out


def _serve(args: argparse.Namespace) -> None:
    """Run ``forecaster serve`` with the stages after ``args.serve`` cut off."""
    import service.routes.forecast as route
    from forecaster.cli import serve
    from forecaster.predict import Forecast, Predictor, Running
    from service.batcher import MicroBatcher

    def constant(predictor: Predictor, rows: int) -> Forecast:
        cfg = predictor.config
        ones = np.ones((rows, cfg.horizon))
        return Forecast(point=ones, quantiles={q: ones for q in cfg.quantiles})

    async def answer(*_: object) -> bytes:
        return ANSWER

    # The ignores below: this benchmark cuts the serving path short by swapping its stages for
    # stand-ins, which the modules' types rightly do not allow.
    if args.serve in ("echo", "parse"):
        route.forecast = answer  # type: ignore[attr-defined,assignment]
    if args.serve == "echo":
        route.parse_request = lambda body, max_series: None  # type: ignore[attr-defined,assignment,return-value]
    if args.serve == "no-model":

        async def submit(self, predictor, windows, lengths=None, encoded=None):
            return constant(predictor, len(windows))

        MicroBatcher.submit = submit  # type: ignore[method-assign]
    if args.serve == "no-forward":
        Predictor.dispatch = lambda self, x, *_: Running([], [len(x)], None, 0)  # type: ignore[method-assign,arg-type]
        Predictor.collect = lambda self, r: constant(self, r.rows[0])  # type: ignore[method-assign,assignment]
    ns = argparse.Namespace(host=None, port=args.port, registry=args.registry, default_model=None)
    serve.run(ns)


if __name__ == "__main__":
    sys.exit(main())
