import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forecaster.scaling import (
    MAX_LOG_RATIO,
    MAX_STANDARD,
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


# ------------------------------------------------------------------ standardised kinds (prices)


@pytest.mark.parametrize("kind", ["standard", "arcsinh"])
@given(x=windows)
def test_standardised_kinds_round_trip_finitely_for_any_window(kind: str, x: np.ndarray) -> None:
    scale = fit_scale(x, kind=kind)
    z = normalize(x, scale, kind=kind)
    assert np.isfinite(z).all()
    # Exact inside the outputs' range (a lone 1 among zeros, 12,000 floored MADs out, is not).
    inside = np.abs(z) <= (MAX_LOG_RATIO if kind == "arcsinh" else MAX_STANDARD)
    atol = 1e-6 * max(np.abs(x).max(), 1.0)
    back = denormalize(z, scale, kind=kind)
    np.testing.assert_allclose(back[inside], x[inside], rtol=1e-6, atol=atol)


@pytest.mark.parametrize("kind", ["standard", "arcsinh"])
@given(x=windows, y=hnp.arrays(np.float64, 6, elements=st.floats(-1e12, 1e12)))
def test_standardised_targets_are_finite_and_inside_the_outputs_range(
    kind: str, x: np.ndarray, y: np.ndarray
) -> None:
    scale = fit_scale(x, kind=kind)
    z = normalize_targets(np.broadcast_to(y, (x.shape[0], 6)), scale, kind=kind)
    assert np.isfinite(z).all()
    assert np.isfinite(denormalize(np.full((x.shape[0], 2), 1e6), scale, kind=kind)).all()


def prices(seed: int = 0) -> np.ndarray:
    """A week of hourly prices around 40 with a negative night (-150) and one spike (2,999)."""
    rng = np.random.default_rng(seed)
    t = np.arange(168)
    x = 40 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, t.size)
    x[50:54], x[120] = -150.0, 2999.0
    return x[None, :]


def test_arcsinh_keeps_ordinary_hours_apart_and_tames_the_spike() -> None:
    # Shifted to be positive (log) or divided by a standard deviation that the spike makes
    # (standard), a window holding -150 and 2,999 is read on the scale of those points: the
    # day's shape (30 to 50) shrinks to about a tenth of a unit. The median and MAD ignore them.
    x = prices()
    ordinary = np.ones(x.shape[1], bool)
    ordinary[50:54] = ordinary[120] = False
    log = normalize(x, fit_scale(x))
    standard = normalize(x, fit_scale(x, kind="standard"), kind="standard")
    arcsinh = normalize(x, fit_scale(x, kind="arcsinh"), kind="arcsinh")
    assert np.ptp(log[0, ordinary]) < 0.2 and np.ptp(standard[0, ordinary]) < 0.2
    assert np.ptp(arcsinh[0, ordinary]) > 2.0
    assert arcsinh.max() < 8.0  # the spike, 400 MADs away, reads as about 6.5


@pytest.mark.parametrize("kind", ["standard", "arcsinh"])
@pytest.mark.parametrize("unit", [1e-20, 1e12])
def test_standardised_kinds_are_scale_and_shift_free(kind: str, unit: float) -> None:
    x = prices()
    z = normalize(x, fit_scale(x, kind=kind), kind=kind)
    for moved in (unit * x, x - 1000.0):  # far from the floor of MIN_SPREAD times the level
        np.testing.assert_allclose(normalize(moved, fit_scale(moved, kind=kind), kind=kind), z,
                                   rtol=1e-6, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("kind", ["standard", "arcsinh"])
@pytest.mark.parametrize("value", [0.0, -5.0, 7.5, 1e15])
def test_constant_windows_standardise_to_zero_and_come_back(kind: str, value: float) -> None:
    x = np.full((2, 24), value)
    scale = fit_scale(x, kind=kind)
    np.testing.assert_allclose(normalize(x, scale, kind=kind), 0.0, atol=1e-12)
    np.testing.assert_allclose(denormalize(np.zeros((2, 3)), scale, kind=kind), value)


@given(x=hnp.arrays(np.float64, (3, 24), elements=st.floats(1.0, 1e4)))
def test_the_default_path_on_positive_windows_is_exactly_the_log_ratio_to_the_mean(
    x: np.ndarray,
) -> None:
    # The log path (M4, M3 and every positive series) must not move by one bit: it is what the
    # code computed before the standardised kinds existed.
    scale = fit_scale(x)
    for got, kept in zip(fit_scale(x, kind="log"), scale, strict=True):
        np.testing.assert_array_equal(got, kept)
    np.testing.assert_array_equal(scale.offset, 0.0)
    np.testing.assert_array_equal(scale.level, np.mean(x, axis=-1, keepdims=True))
    np.testing.assert_array_equal(normalize(x, scale), np.log(x / scale.level))
    z = np.linspace(-1, 1, 12).reshape(3, 4)
    np.testing.assert_array_equal(denormalize(z, scale), scale.level * np.exp(z) - 0.0)
