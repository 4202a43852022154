"""``forecaster actuals ingest``, ``forecaster monitor`` and ``retrain --when degraded``, on a
monitoring database filled the way the service fills it (:class:`MonitoringStore.write`)."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.cli import main
from forecaster.configs import ConfigError
from forecaster.model import init_params
from forecaster.monitoring.records import ForecastRecord, RecordBatch
from forecaster.monitoring.store import MonitoringStore
from forecaster.monitoring.times import to_utc
from forecaster.monitoring.urls import monitoring_url
from forecaster.registry import Registry
from forecaster.retrain.jobs import job_from_settings
from forecaster.retrain.live import live_accuracy
from tests.retrain.test_retrain import FLAGS, HORIZON, TINY, publish_champion, write_long_csv

START = datetime(2024, 6, 1)
H = 6
COLS = ["--id-col", "series", "--time-col", "when", "--value-col", "y"]


def stamps(start: datetime, n: int) -> list[str]:
    return [(start + timedelta(hours=k)).isoformat() for k in range(n)]


@pytest.fixture(autouse=True)
def _no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECASTER_NO_TCMALLOC", "1")
    monkeypatch.delenv("FORECASTER_DATABASE_URL", raising=False)


def record_forecasts(root: Path, name: str, version: int, n: int, start: datetime,
                     level: float) -> None:  # fmt: skip
    """``n`` forecasts of ``level`` for series ``s0..``, each ``H`` hours after the last, made
    from histories alternating 9 and 11 (seasonal naive is off by 1 against actuals of 10)."""
    store = MonitoringStore(monitoring_url(None, root))
    history = np.tile([9.0, 11.0], 12)
    records = [
        ForecastRecord(f"s{k}", "model", stamps(start + timedelta(hours=H * k), H),
                       np.full(H, level), history)
        for k in range(n)
    ]  # fmt: skip
    store.write([RecordBatch(name, version, 6, time.time(), records)])
    store.close()


def actuals_csv(path: Path, n: int, start: datetime, value: float = 10.0) -> Path:
    rows = [
        {"series": f"s{k}", "when": t, "y": value}
        for k in range(n)
        for t in stamps(start + timedelta(hours=H * k), H)
    ]
    rows.append({"series": "stranger", "when": start.isoformat(), "y": 1.0})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ingest_then_monitor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "models"
    record_forecasts(root, "demo", 1, 4, START, level=10.5)
    csv = actuals_csv(tmp_path / "actuals.csv", 4, START)
    assert main(["actuals", "ingest", str(csv), "--registry", str(root), *COLS]) == 0
    out = capsys.readouterr().out
    assert "25 values of 5 series: 24 stored, 24 match recorded forecasts" in out
    assert "ignored 1 series with no recorded forecast: stranger" in out
    assert main(["actuals", "ingest", str(csv), "--registry", str(root), *COLS]) == 0  # again
    assert "24 stored, 24 match" in capsys.readouterr().out

    assert main(["monitor", "--registry", str(root), "--by-step"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["model", "version", "step", "points"]
    overall = lines[1].split()
    assert overall[:4] == ["demo", "v1", "all", "24"]
    assert float(overall[6]) == pytest.approx(0.5)  # MAE
    assert len(lines) == 2 + H  # a row per step

    assert main(["monitor", "demo", "--registry", str(root), "--json",
                 "--until", stamps(START, 3)[2]]) == 0  # fmt: skip
    body = json.loads(capsys.readouterr().out)
    assert body["demo"][0]["overall"]["points"] == 2  # the first two hours of s0


def test_ingest_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,timestamp,value\na,2024-01-01T00:00,1\na,someday,2\n")
    assert main(["actuals", "ingest", str(bad), "--registry", str(tmp_path)]) == 1
    assert "data row 1: not an ISO 8601 timestamp: 'someday'" in capsys.readouterr().err
    bad.write_text("id,timestamp,value\na,2024-01-01T00:00,x\n")
    assert main(["actuals", "ingest", str(bad), "--registry", str(tmp_path)]) == 1
    assert "data row 0: value 'x' is not a number" in capsys.readouterr().err
    wide = tmp_path / "wide.csv"
    wide.write_text("V1,V2\nH1,3\n")
    assert main(["actuals", "ingest", str(wide), "--registry", str(tmp_path)]) == 1
    assert "need the long format" in capsys.readouterr().err
    url = ["--database-url", "postgresql://nobody@127.0.0.1:1/x"]
    assert main(["monitor", *url]) == 1
    assert "monitoring database unavailable" in capsys.readouterr().err


def test_monitor_and_ingest_refuse_bad_urls_and_windows_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    csv = actuals_csv(tmp_path / "a.csv", 1, START)
    for argv in (["monitor"], ["actuals", "ingest", str(csv), *COLS]):
        assert main([*argv, "--database-url", "nonsense://user:hunter2@host"]) == 1
        err = capsys.readouterr().err
        assert "cannot be used" in err and "hunter2" not in err and len(err.splitlines()) == 1
    window = ["--since", "2024-06-02T00:00", "--until", "2024-06-01T00:00"]
    assert main(["monitor", "--registry", str(tmp_path), *window]) == 1
    assert "--since must be before --until" in capsys.readouterr().err


# ---------------------------------------------------------------------------- retraining


def test_retrain_when_degraded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "models"
    data = write_long_csv(tmp_path / "hourly.csv")
    publish_champion(root)
    argv = ["retrain", "--data", str(data), "--registry", str(root), "--name", "demo",
            "--when", "degraded", "--live-window-days", "2", *FLAGS]  # fmt: skip

    # Good forecasts for four days: not degraded, nothing trained.
    record_forecasts(root, "demo", 1, 16, START, level=10.2)
    assert main(["actuals", "ingest", str(actuals_csv(tmp_path / "a.csv", 16, START)),
                 "--registry", str(root), *COLS]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "demo: not retrained: live accuracy has not degraded: recent MASE 0.100" in out
    assert "skipped" in out.splitlines()[-1]
    assert MonitoringStore(monitoring_url(None, root)).accuracy("demo")[0].overall.points == 96
    assert sorted(p.name for p in (root / "demo").iterdir() if p.name.isdigit()) == ["1"]

    # Then a day of forecasts far worse than seasonal naive: retrained, live figures reported.
    later = START + timedelta(hours=H * 16)
    record_forecasts(root, "demo", 1, 4, later, level=20.0)
    assert main(["actuals", "ingest", str(actuals_csv(tmp_path / "b.csv", 4, later)),
                 "--registry", str(root), *COLS]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((root / "demo" / "2" / "report.json").read_text())
    live = report["live"]
    assert live["version"] == 1 and live["degraded"] is True
    assert "worse than seasonal naive" in live["reason"]
    assert live["recent"]["model"]["mase"] > live["recent"]["seasonal_naive"]["mase"]
    assert live["before"]["points"] > 0 and "backtest" in report


def test_retrain_when_degraded_fails_loudly_without_its_database(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    data = write_long_csv(tmp_path / "hourly.csv")
    code = main(["retrain", "--data", str(data), "--registry", str(root), "--name", "demo",
                 "--when", "degraded", "--database-url", "postgresql://nobody@127.0.0.1:1/x",
                 *FLAGS])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "cannot judge live accuracy" in out


def test_retrain_when_degraded_on_a_monthly_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A monthly model's window is months (its manifest's frequency), not 7 days; too few
    points are "undecided" (exit 3), not "has not degraded"."""
    root = tmp_path / "models"
    Registry(root).publish("wine", TINY, init_params(TINY, 7), promote=True, freq="MS",
                           seasonality=12)  # fmt: skip
    argv = ["retrain", "--data", str(tmp_path / "unread.csv"), "--registry", str(root),
            "--name", "wine", "--when", "degraded"]  # fmt: skip

    def month(k: int) -> str:
        return (pd.Timestamp("2022-01-01") + pd.DateOffset(months=k)).isoformat()

    def forecasts_and_actuals(origins: range, level: float) -> None:
        """A forecast of ``level`` made each month of ``origins`` for the next 6; actuals of
        10 up to the month after the last."""
        store = MonitoringStore(monitoring_url(None, root))
        records = [
            ForecastRecord("s", "model", [month(o + 1 + j) for j in range(HORIZON)],
                           np.full(HORIZON, level), np.tile([9.0, 11.0], 12))
            for o in origins
        ]  # fmt: skip
        store.write([RecordBatch("wine", 1, 2, time.time(), records)])
        store.ingest([("s", to_utc([month(k) for k in range(1, origins.stop + 1)]),
                       np.full(origins.stop, 10.0))])  # fmt: skip
        store.close()

    forecasts_and_actuals(range(3), 10.1)
    assert main(argv) == 3
    out = capsys.readouterr().out
    assert ("wine: not retrained: live accuracy is undecided: 6 of 48 points in the last "
            "12 steps (MS) up to 2022-04-01T00:00:00") in out  # fmt: skip
    assert out.splitlines()[-1].split()[:2] == ["wine", "undecided"]

    # Two years of monthly forecasts: 12 months of targets (a season; 6 steps would do for the
    # horizon, 8 for 48 points) hold 12 x 6 points, and the verdict is reached.
    forecasts_and_actuals(range(3, 24), 10.1)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wine: not retrained: live accuracy has not degraded: recent MASE 0.050" in out
    assert out.splitlines()[-1].split()[:2] == ["wine", "skipped"]
    assert Registry(root).versions("wine") == [1]

    # Calendar days still on request: 7 days of a monthly model are undecided again.
    assert main([*argv, "--live-window-days", "7"]) == 3
    assert "undecided: 6 of 48 points in the last 7 days" in capsys.readouterr().out
    job = job_from_settings({"name": "wine", "data": "x.csv", "registry": str(root),
                             "when": "degraded", "live_window_steps": 24})  # fmt: skip
    live = live_accuracy(job, Registry(root), 1)
    assert live["status"] == "not degraded" and live["window"] == {"steps": 24, "freq": "MS"}
    assert live["points"] == sum(min(m, HORIZON) for m in range(1, 25)) == 129
    assert live["window_start"] == "2022-01-01T00:00:00"
    assert live["before"] is None  # every point is recent
    with pytest.raises(ConfigError, match="not both"):
        job_from_settings({"name": "wine", "data": "x.csv", "registry": str(root),
                           "live_window_steps": 24, "live_window_days": 7})  # fmt: skip


def test_steps_need_a_frequency(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A model whose manifest records no frequency is judged over 7 days; steps are refused."""
    root = tmp_path / "models"
    publish_champion(root)  # no freq in its manifest
    record_forecasts(root, "demo", 1, 16, START, level=10.2)
    assert main(["actuals", "ingest", str(actuals_csv(tmp_path / "a.csv", 16, START)),
                 "--registry", str(root), *COLS]) == 0  # fmt: skip
    job = job_from_settings({"name": "demo", "data": "x.csv", "registry": str(root)})
    live = live_accuracy(job, Registry(root), 1)
    assert live["window"] == {"days": 7.0} and live["status"] == "not degraded"
    steps = dataclasses.replace(job, live_window_steps=12, when="degraded")
    assert (
        "live_window_steps needs the model's frequency"
        in live_accuracy(steps, Registry(root), 1)["error"]
    )
