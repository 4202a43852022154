"""The service and a registry whose model directories are replaced by symlinks (issue 29): the
listing, what is served and what a promote does agree, by the registry's one rule (followed
inside the registry root, refused and logged outside it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from forecaster.model import init_params
from forecaster.registry import Registry
from tests.helpers.polling import wait_until
from tests.service.conftest import API_KEY, OTHER, TINY, make_settings, publish, running_client

KEY = {"X-API-Key": API_KEY}
HISTORY = {"history": [float(i % 24) for i in range(48)], "horizon": 2}


def test_a_model_directory_replaced_by_a_symlink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "registry"
    publish(root, "m4-hourly")
    publish(root, "other", OTHER)
    elsewhere = tmp_path / "elsewhere"
    settings = make_settings(root, alias_watch_interval_s=0.1)
    with caplog.at_level(logging.WARNING), running_client(settings) as c:
        # Moved within the registry root and linked back: still listed, served and watched.
        (root / "m4-hourly").rename(root / ".m4-hourly-moved")
        (root / "m4-hourly").symlink_to(".m4-hourly-moved")
        # Moved out of the root and linked back: refused, and said so.
        (root / "other").rename(elsewhere)
        (root / "other").symlink_to(elsewhere)
        listed = {m["name"]: m for m in c.get("/v1/models").json()}
        assert set(listed) == {"m4-hourly", "other"}
        assert listed["m4-hourly"]["production"] == 1 and listed["m4-hourly"]["problem"] is None

        # A promote through the link reaches the service (the watcher used to skip the model).
        registry = Registry(root)
        registry.publish("m4-hourly", TINY, init_params(TINY, 1), promote=True)
        wait_until(
            lambda: c.post("/v1/forecast", json=HISTORY).json()["version"] == 2,
            message="version 2 was never served",
        )
        assert c.get("/v1/models/m4-hourly").json()["loaded_version"] == 2

        wait_until(
            lambda: c.get("/v1/models/other").json()["problem"] is not None,
            message="the model list never named other's problem",
        )
        other = c.get("/v1/models/other").json()
        assert "symlink" in other["problem"] and str(elsewhere) not in str(other)
        assert other["versions"] == [] and other["production"] is None
        r = c.post("/v1/models/other/promote", json={"version": 1}, headers=KEY)
        assert r.status_code == 409 and "symlink" in r.json()["detail"]
        assert str(elsewhere) not in r.text and str(root) not in r.text
    # The operator's log says where the refused link points.
    assert any(
        "'other'" in r.getMessage() and str(elsewhere) in r.getMessage() for r in caplog.records
    )
