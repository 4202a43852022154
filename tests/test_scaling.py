import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forecaster.scaling import (
    MAX_LOG_RATIO,
    denormalize,
    fit_scale,
    normalize,
    normalize_targets,
)

windows = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 4), st.integers(1, 30)),
    elements=st.floats(-1e12, 1e12),
)  # fmt: skip


@given(windows)
def test_round_trip_is_exact_and_finite_for_any_window(x: np.ndarray) -> None:
    scale = fit_scale(x)
    z = normalize(x, scale)
    assert np.isfinite(z).all()
    clipped = np.clip(z, -MAX_LOG_RATIO, MAX_LOG_RATIO)
    # Shifted windows have a spread of at least 1, so errors are relative to max(|x|, 1).
    atol = 1e-6 * max(np.abs(x).max(), 1.0)
    np.testing.assert_allclose(denormalize(clipped, scale), x, rtol=1e-6, atol=atol)


def test_positive_window_is_log_of_ratio_to_mean() -> None:
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    scale = fit_scale(x)
    assert scale.offset[0, 0] == 0.0
    np.testing.assert_allclose(normalize(x, scale), np.log(x / 3.0))


@pytest.mark.parametrize("value", [0.0, -5.0, 7.5, 1e15])
def test_constant_windows_normalise_to_zero_and_come_back(value: float) -> None:
    x = np.full((2, 24), value)
    scale = fit_scale(x)
    np.testing.assert_allclose(normalize(x, scale), 0.0, atol=1e-12)
    np.testing.assert_allclose(denormalize(np.zeros((2, 3)), scale), value)


def test_denormalize_broadcasts_over_horizon_and_channels() -> None:
    x = np.array([[1.0, 3.0], [10.0, 30.0]])
    out = denormalize(np.zeros((2, 5, 3)), fit_scale(x))
    assert out.shape == (2, 5, 3)
    np.testing.assert_allclose(out[:, 0, 0], [2.0, 20.0])


def test_huge_outputs_are_clipped_not_infinite() -> None:
    x = np.full((1, 4), 1e300)
    assert np.isfinite(denormalize(np.full((1, 2), 1e6), fit_scale(x))).all()


@given(windows, hnp.arrays(np.float64, 6, elements=st.floats(-1e12, 1e12)))
def test_targets_are_finite_in_any_windows_scale_and_in_the_outputs_range(
    x: np.ndarray, y: np.ndarray
) -> None:
    targets = np.broadcast_to(y, (x.shape[0], 6))
    z = normalize_targets(targets, fit_scale(x))
    assert np.isfinite(z).all() and (np.abs(z) <= MAX_LOG_RATIO).all()


def test_a_zero_target_after_a_positive_window_is_the_lowest_output_and_others_are_exact() -> None:
    # A zero after a positive window (sunspots, counts) was log(0): an infinite training loss.
    x = np.array([[5.0, 2.0, 8.0, 1.0]])
    scale = fit_scale(x)
    z = normalize_targets(np.array([[0.0, -3.0, 4.0, 1e9]]), scale)
    np.testing.assert_array_equal(z[0, :2], -MAX_LOG_RATIO)
    assert z[0, 2] == normalize(np.array([[4.0]]), scale)[0, 0]  # bit for bit
    assert z[0, 3] == MAX_LOG_RATIO


@pytest.mark.parametrize("unit", [1e-20, 1e-300, 1e12])
@pytest.mark.parametrize(
    "x",
    [[3.0, 1.0, 4.0, 1.5, 9.0], [0.0, 2.0, 0.0, 7.0, 1.0], [-4.0, 2.0, -1.0, 3.0, 0.5]],
    ids=["positive", "zeros", "signed"],
)
def test_scaling_is_scale_free(unit: float, x: list[float]) -> None:
    # A floor of 1e-12 on the spread flattened every series below about 1e-16 to one forecast.
    window = np.array([x])
    np.testing.assert_allclose(
        normalize(unit * window, fit_scale(unit * window)),
        normalize(window, fit_scale(window)),
        rtol=1e-12,
        atol=1e-12,
    )
    scale = fit_scale(unit * window)
    out = denormalize(np.array([[0.3, -0.2]]), scale)
    np.testing.assert_allclose(out / unit, denormalize(np.array([[0.3, -0.2]]), fit_scale(window)))
