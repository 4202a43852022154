"""Series in tiny (or huge) units are forecast by the model, scale-free, over HTTP too."""

from __future__ import annotations

import math

import numpy as np
import pytest

HISTORY = [100 + 10 * math.sin(2 * math.pi * t / 24) for t in range(72)]


@pytest.mark.parametrize("unit", [1e-20, 1e-300, 1e12])
def test_a_series_in_tiny_units_is_forecast_as_the_same_series_in_ordinary_ones(client, unit):
    # Below about 1e-16 every series got one near-zero forecast, answered as the model's.
    body = {"history": HISTORY, "horizon": 6, "quantiles": [0.1, 0.9]}
    plain = client.post("/v1/forecast", json=body).json()
    r = client.post("/v1/forecast", json={**body, "history": [unit * v for v in HISTORY]})
    assert r.status_code == 200, r.text
    scaled = r.json()
    assert scaled["method"] == plain["method"] == "model"
    np.testing.assert_allclose(np.divide(scaled["forecast"], unit), plain["forecast"], rtol=1e-6)
    for q, band in plain["quantiles"].items():
        np.testing.assert_allclose(np.divide(scaled["quantiles"][q], unit), band, rtol=1e-6)
