"""The service's settings as read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecaster.environment import DEFAULT_REGISTRY
from service.settings import Settings


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_registry_variable_means_the_default_not_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    """Compose files pass an unset variable as an empty one; ``Path("")`` would serve the cwd."""
    monkeypatch.setenv("FORECASTER_REGISTRY", empty)
    assert Settings().registry == Path(DEFAULT_REGISTRY)


@pytest.mark.parametrize("empty", ["", " "])
def test_empty_optional_names_mean_unset(monkeypatch: pytest.MonkeyPatch, empty: str) -> None:
    monkeypatch.setenv("FORECASTER_DEFAULT_MODEL", empty)
    monkeypatch.setenv("FORECASTER_DATABASE_URL", empty)
    settings = Settings()
    assert settings.default_model is None
    assert settings.database_url is None
