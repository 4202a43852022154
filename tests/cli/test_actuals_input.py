"""``forecaster actuals ingest`` against hostile files (issue 29): bad rows are named in one
line, and nothing reaches the store, instead of the whole ingest failing as "database
unavailable" or storing ``now`` at the clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecaster.cli import main
from forecaster.monitoring.store import MonitoringStore
from forecaster.monitoring.urls import monitoring_url


@pytest.fixture(autouse=True)
def _no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECASTER_NO_TCMALLOC", "1")
    monkeypatch.delenv("FORECASTER_DATABASE_URL", raising=False)


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ("a,2024-01-01T00:00,1\na,2024-01-01T01:00,1e400\n", "data row 1: |value| must be at most"),
        ("a,2024-01-01T00:00,-1e400\na,2024-01-01T01:00,1e308\n",
         "data rows 0, 1: |value| must be at most 1e+15"),
        ("a,2024-01-01T00:00,inf\n", "data row 0: |value| must be at most"),
        ("a,2024-01-01T00:00,1\na,now,2\n", "data row 1: not an ISO 8601 timestamp: 'now'"),
        ("a,today,2\n", "data row 0: not an ISO 8601 timestamp: 'today'"),
        ("a,2024-01-01T00:00+24:00,2\n", "data row 0: '2024-01-01T00:00+24:00' has a UTC offset"),
        ("a,2024-01-01T00:00,1\n\"b\x01\",2024-01-01T00:00,2\n", "data row 1: id must not"),
    ],
)  # fmt: skip
def test_bad_rows_are_named_in_one_line(tmp_path: Path, capsys, rows: str, words: str) -> None:
    csv = tmp_path / "actuals.csv"
    csv.write_text("id,timestamp,value\n" + rows)
    assert main(["actuals", "ingest", str(csv), "--registry", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert "database" not in err
    store = MonitoringStore(monitoring_url(None, tmp_path))
    try:
        assert store.models() == []
    finally:
        store.close()
