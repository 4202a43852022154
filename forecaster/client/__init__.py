"""Python client of the forecast service: pandas in, pandas out, sync and async.

Example::

    from forecaster.client import ForecastClient

    with ForecastClient("http://127.0.0.1:8000") as client:
        frame = client.forecast(series, horizon=24, quantiles=[0.1, 0.9])

:class:`ForecastClient` (:mod:`.sync`) and :class:`AsyncForecastClient` (:mod:`.aio`) have the
same methods. The HTTP exchange is the only thing they do differently, so everything else lives in
plain functions both call: turning inputs into :mod:`forecaster.schemas` requests and splitting
many-series work into requests the server accepts (:mod:`.bodies`), checking timestamped series
against the target model's frequency before sending (:mod:`.facts`), parsing answers into
DataFrames (:mod:`.frames`), mapping status codes to exceptions (:mod:`.errors`), and deciding
whether (and how long) to wait before a retry (:mod:`.retry`).
"""

from forecaster.client._config import DEFAULT_TIMEOUT
from forecaster.client.aio import AsyncForecastClient
from forecaster.client.errors import (
    ForecastAPIError,
    ForecastTimeout,
    InvalidRequest,
    ModelNotFound,
    SeriesFailed,
    ServiceUnavailable,
    Unauthorized,
)
from forecaster.client.retry import DEFAULT_RETRY, RetryPolicy, parse_retry_after
from forecaster.client.sync import ForecastClient

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "AsyncForecastClient",
    "ForecastAPIError",
    "ForecastClient",
    "ForecastTimeout",
    "InvalidRequest",
    "ModelNotFound",
    "RetryPolicy",
    "SeriesFailed",
    "ServiceUnavailable",
    "Unauthorized",
    "parse_retry_after",
]
