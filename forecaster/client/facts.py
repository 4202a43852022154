"""What the service says about its models, and the checks made with it before sending.

A call that gives no horizon, or sends timestamped series, needs the target model's facts
(``GET /v1/models/{name}``): its horizon, and its frequency, which every timestamped series must
match (a daily series sent to an hourly model is refused here, with a clear message, rather
than forecast as if it were hourly). The target is the model named by the call or the client,
else the service's default model; with neither, the service picks the model whose frequency
matches the timestamps, and the client checks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from forecaster.client.bodies import Input
from forecaster.client.errors import ForecastAPIError, InvalidRequest
from forecaster.frequency import index_frequency, same_frequency
from forecaster.schemas import ModelDetail, ModelSummary


def needs_facts(inputs: Sequence[tuple[Any, Input]], horizon: int | None) -> bool:
    """Whether the call must know its model first: no horizon given, or timestamps to check."""
    return horizon is None or any(series.index is not None for _, series in inputs)


def service_default(models: Iterable[ModelSummary]) -> str | None:
    """The model the service gives requests that name none (None: requests must name one).

    Services that do not say which is their default: the one served model, if only one is.
    """
    models = list(models)
    marked = [m.name for m in models if m.default]
    if marked:
        return marked[0]
    served = [m.name for m in models if m.loaded_version is not None]
    return served[0] if len(served) == 1 else None


def no_default(models: Iterable[ModelSummary]) -> InvalidRequest:
    served = [m.name for m in models if m.loaded_version is not None]
    return InvalidRequest(
        f"give horizon or model: the service has no default model and serves {len(served)} "
        f"({', '.join(served) or 'none'})"
    )


def model_horizon(detail: ModelDetail) -> int:
    """The longest horizon ``detail``'s served version forecasts."""
    horizon = detail.horizon or (detail.config or {}).get("horizon")
    if not isinstance(horizon, int):
        raise ForecastAPIError(f"model {detail.name!r} is not being served; give horizon")
    return horizon


def check_frequencies(inputs: Sequence[tuple[Any, Input]], detail: ModelDetail) -> None:
    """:class:`InvalidRequest` for the first timestamped series whose frequency is not the
    model's (nothing is checked when the model's frequency is unknown)."""
    expected = detail.frequency
    if expected is None:
        return
    for key, series in inputs:
        if series.index is None:
            continue
        found = index_frequency(series.index)
        if found is not None and not same_frequency(found, expected):
            what = "the history" if key is None else f"series {key!r}"
            raise InvalidRequest(
                f"{what} is at frequency {found!r} but model {detail.name!r} forecasts "
                f"{expected!r} data; resample it to {expected!r} or pick another model"
            )
