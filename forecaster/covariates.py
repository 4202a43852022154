"""Covariates: what a forecast may read besides the target's own past.

Roles (the layout neuralforecast and Darts users know):

- ``past``: observed up to the forecast origin only (one value per history point);
- ``future``: known ahead, for the history and for the horizon (a load forecast, a promotion);
- ``static``: one value per series, numeric or categorical (a store's size, its region).

Calendar features are derived from the timestamps as fits the frequency (:func:`calendar_for`):
the hour of the day, the day of the week, the day of the year or the month, each as a sine and
a cosine, so that the last hour of a day sits beside the first; ``holidays`` (a country code of
the ``holidays`` package) adds one 0/1 feature. They are future covariates computed, never sent.

:class:`CovariateSpec` is what a trained model needs: the columns with their role, kind and the
normalisation learned in training (numeric columns standardised by their training mean and
standard deviation; categorical statics one-hot over the training categories, a category not
seen in training reading as none of them), and the calendar. It is saved in the manifest
(``covariates``), so a loaded model states exactly what it needs, and it turns raw values into
the network's inputs the same way in training (:meth:`CovariateSpec.series_features`) and
serving (:meth:`CovariateSpec.encode`).

Feature layout per time point (``past_width`` columns): the past covariates, then the future
ones, then the calendar; the horizon reads the trailing ``future_width`` of them (the future
covariates and the calendar), so training cuts both from one gathered window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
Role = Literal["past", "future", "static"]
Kind = Literal["numeric", "categorical"]
ROLES: tuple[Role, ...] = ("past", "future", "static")

__all__ = [
    "CALENDAR_PERIODS",
    "Column",
    "CovariateError",
    "CovariateSpec",
    "CovariateValues",
    "Encoded",
    "SeriesInputs",
    "calendar_features",
    "calendar_for",
    "learn",
]


class CovariateError(ValueError):
    """A covariate is missing, misaligned or not numeric; ``index`` is the series' position
    (None: every series), ``name`` the covariate. The message names both."""

    def __init__(self, detail: str, name: str, index: int | None = None) -> None:
        super().__init__(detail if index is None else f"series {index}: {detail}")
        self.detail, self.name, self.index = detail, name, index


# Cyclic calendar features: name -> period, and what each reads from a timestamp.
CALENDAR_PERIODS: dict[str, float] = {"hour": 24.0, "weekday": 7.0, "yearday": 366.0, "month": 12.0}


def _calendar_values(name: str, times: pd.DatetimeIndex) -> F64:
    if name == "hour":
        return np.asarray(times.hour + times.minute / 60.0, np.float64)
    if name == "weekday":
        return np.asarray(times.day_of_week, np.float64)
    if name == "yearday":
        return np.asarray(times.day_of_year - 1, np.float64)
    return np.asarray(times.month - 1, np.float64)


def calendar_for(freq: str | None) -> tuple[str, ...]:
    """The cyclic calendar features that vary at frequency ``freq``: sub-daily data the hour,
    the weekday and the day of the year; daily and business-daily the weekday and the day of
    the year; weekly the day of the year; monthly and quarterly the month; yearly and unknown
    none."""
    if freq is None:
        return ()
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.Tick):
        nanos = int(offset.nanos)
        day = 86_400 * 10**9
        if nanos < day:
            return ("hour", "weekday", "yearday")
        return ("weekday", "yearday") if nanos == day else ("yearday",)
    rule = offset.rule_code.split("-")[0]
    if rule in ("D", "B", "C"):
        return ("weekday", "yearday")
    if rule == "W":
        return ("yearday",)
    if rule in ("MS", "ME", "BMS", "BME", "SMS", "SME", "QS", "QE", "BQS", "BQE"):
        return ("month",)
    return ()


def holiday_flags(times: pd.DatetimeIndex, country: str) -> F64:
    """1.0 where the date of ``times`` is a public holiday of ``country``, else 0.0."""
    import holidays  # only when asked for: the package builds its calendars on import

    years = range(int(times.year.min()), int(times.year.max()) + 1) if len(times) else []
    try:
        days = holidays.country_holidays(country, years=list(years))
    except NotImplementedError as err:
        raise CovariateError(
            f"holidays: unknown country code {country!r} (an ISO 3166 code such as DE or US)",
            "holidays",
        ) from err
    dates = pd.DatetimeIndex(pd.to_datetime(sorted(days))) if len(days) else pd.DatetimeIndex([])
    return np.asarray(times.normalize().isin(dates), np.float64)


def calendar_features(
    times: pd.DatetimeIndex, names: Sequence[str], country: str | None = None
) -> F64:
    """[len(times), 2 * len(names) + (1 if country)]: sine and cosine of each cyclic feature,
    then the holiday flag."""
    cols: list[F64] = []
    for name in names:
        angle = 2 * np.pi * _calendar_values(name, times) / CALENDAR_PERIODS[name]
        cols += [np.sin(angle), np.cos(angle)]
    if country:
        cols.append(holiday_flags(times, country))
    return np.stack(cols, axis=-1) if cols else np.zeros((len(times), 0))


@dataclass(frozen=True)
class Column:
    """One covariate as the model reads it: its role, its kind and its normalisation
    (``mean``/``std`` for numeric columns, ``categories`` for categorical statics)."""

    name: str
    role: Role
    kind: Kind = "numeric"
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role, "kind": self.kind}
        if self.kind == "categorical":
            return out | {"categories": list(self.categories)}
        return out | {"mean": self.mean, "std": self.std}


@dataclass
class CovariateValues:
    """Raw covariate values of a :class:`~forecaster.data.SeriesSet`, aligned with its series:
    ``past[name][i]`` and ``future[name][i]`` hold one value per point of series ``i``
    ``[len_i]``; ``static[name][i]`` its one value (a float, or text for a category)."""

    past: dict[str, list[F64]] = field(default_factory=dict)
    future: dict[str, list[F64]] = field(default_factory=dict)
    static: dict[str, list[float | str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.past or self.future or self.static)

    def select(self, pos: Sequence[int]) -> CovariateValues:
        return CovariateValues(
            {k: [v[i] for i in pos] for k, v in self.past.items()},
            {k: [v[i] for i in pos] for k, v in self.future.items()},
            {k: [v[i] for i in pos] for k, v in self.static.items()},
        )

    def only(self, names: Mapping[Role, Sequence[str]]) -> CovariateValues:
        """The columns of ``names[role]`` alone (a model's set out of more that were read)."""
        pick = {role: set(names.get(role, ())) for role in ROLES}
        return CovariateValues(
            {k: v for k, v in self.past.items() if k in pick["past"]},
            {k: v for k, v in self.future.items() if k in pick["future"]},
            {k: v for k, v in self.static.items() if k in pick["static"]},
        )

    def head(self, keep: Sequence[int]) -> CovariateValues:
        """The first ``keep[i]`` points of every series' dynamic values."""
        cut = {k: [a[:n] for a, n in zip(v, keep, strict=True)] for k, v in self.past.items()}
        fut = {k: [a[:n] for a, n in zip(v, keep, strict=True)] for k, v in self.future.items()}
        return CovariateValues(cut, fut, dict(self.static))


@dataclass(frozen=True)
class SeriesInputs:
    """What one series brings to a forecast besides its history (the predict interface the
    service fills from a request): ``past[name]``, one value per history point, for every past
    and future covariate; ``future[name]``, one value per horizon step, for every future one;
    ``static[name]``; ``end``, the timestamp of the last history point (calendar features)."""

    past: Mapping[str, ArrayLike] = field(default_factory=dict)
    future: Mapping[str, ArrayLike] = field(default_factory=dict)
    static: Mapping[str, float | str] = field(default_factory=dict)
    end: pd.Timestamp | str | None = None


class Encoded(NamedTuple):
    """Normalised network inputs for ``n`` windows: ``past`` [n, input_size, past_width],
    ``future`` [n, horizon, future_width], ``static`` [n, static_width] (float32)."""

    past: F32
    future: F32
    static: F32

    def rows(self, start: int, stop: int, size: int) -> Encoded:
        """Rows ``start:stop``, zero-padded to ``size`` rows."""
        out = []
        for a in self:
            part = a[start:stop]
            if len(part) < size:
                part = np.concatenate([part, np.zeros((size - len(part), *a.shape[1:]), a.dtype)])
            out.append(part)
        return Encoded(*out)


@dataclass(frozen=True)
class CovariateSpec:
    """The covariates a model reads (module docstring); empty: none."""

    columns: tuple[Column, ...] = ()
    calendar: tuple[str, ...] = ()
    holidays: str | None = None
    freq: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.calendar if c not in CALENDAR_PERIODS]
        if unknown:
            raise ValueError(f"unknown calendar feature(s) {unknown}")

    def __bool__(self) -> bool:
        return bool(self.columns or self.calendar or self.holidays)

    def names(self, role: Role) -> list[str]:
        return [c.name for c in self.columns if c.role == role]

    def _of(self, role: Role) -> list[Column]:
        return [c for c in self.columns if c.role == role]

    @property
    def timed(self) -> bool:
        """Whether forecasts need the history's timestamps (calendar features)."""
        return bool(self.calendar or self.holidays)

    @property
    def calendar_width(self) -> int:
        return 2 * len(self.calendar) + (1 if self.holidays else 0)

    @property
    def future_width(self) -> int:
        return len(self._of("future")) + self.calendar_width

    @property
    def past_width(self) -> int:
        return len(self._of("past")) + self.future_width

    @property
    def static_width(self) -> int:
        return sum(c.width for c in self._of("static"))

    def widths(self) -> dict[str, int]:
        """The ModelConfig fields this spec sets."""
        return {
            "past_features": self.past_width if self else 0,
            "future_features": self.future_width,
            "static_features": self.static_width,
        }

    # ------------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``covariates``: every column with role, kind and normalisation."""
        return {"columns": [c.to_dict() for c in self.columns], "calendar": list(self.calendar),
                "holidays": self.holidays, "freq": self.freq}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CovariateSpec:
        columns = []
        for raw in data.get("columns", []):
            c = dict(raw)
            if c.get("role") not in ROLES or c.get("kind", "numeric") not in (
                "numeric",
                "categorical",
            ):
                raise ValueError(f"covariate {c.get('name')!r}: bad role or kind")
            if "categories" in c:
                c["categories"] = tuple(str(v) for v in c["categories"])
            columns.append(Column(**c))
        return cls(tuple(columns), tuple(data.get("calendar", ())), data.get("holidays"),
                   data.get("freq"))  # fmt: skip

    def roles(self) -> dict[Role, tuple[str, ...]]:
        """The columns of each role, by name (what a data source names to read them)."""
        return {role: tuple(self.names(role)) for role in ROLES}

    def reads(self) -> tuple[Any, ...]:
        """What clients must send and the model computes: each column's name and role, the
        calendar and the holidays (not the normalisation, which training relearns)."""
        columns = tuple(sorted((c.name, c.role) for c in self.columns))
        return columns, self.calendar, self.holidays

    def keep(self, inputs: Sequence[SeriesInputs]) -> list[SeriesInputs]:
        """``inputs`` with only the covariates this spec reads (inputs made for several
        models, such as a retraining backtest's champion and challenger)."""
        past = {*self.names("past"), *self.names("future")}
        future, static = set(self.names("future")), set(self.names("static"))
        return [
            SeriesInputs(
                {k: v for k, v in given.past.items() if k in past},
                {k: v for k, v in given.future.items() if k in future},
                {k: v for k, v in given.static.items() if k in static},
                given.end,
            )
            for given in inputs
        ]

    def described(self) -> str:
        """The covariates in words, e.g. ``future: load, wind; calendar: hour, weekday``."""
        parts = [f"{role}: {', '.join(n)}" for role in ROLES if (n := self.names(role))]
        if self.timed:
            parts.append("calendar: " + ", ".join([*self.calendar, *(
                [f"holidays {self.holidays}"] if self.holidays else [])]))  # fmt: skip
        return "; ".join(parts) or "none"

    # ------------------------------------------------------------------------ features

    def _times(self, end: Any, before: int, after: int, index: int | None) -> pd.DatetimeIndex:
        """``before`` timestamps ending at ``end`` and the ``after`` that follow it."""
        if end is None or self.freq is None:
            raise CovariateError(
                "the model reads calendar features: the history's timestamps are needed",
                "timestamps", index,
            )  # fmt: skip
        step = pd.tseries.frequencies.to_offset(self.freq)
        first = pd.Timestamp(end) - (before - 1) * step
        return pd.date_range(first, periods=before + after, freq=self.freq)

    def _dynamic(self, values: Mapping[str, F64], roles: Sequence[Role], times: Any) -> F64:
        """[len, width] normalised columns of ``roles`` in layout order, then the calendar."""
        cols = [(values[c.name] - c.mean) / c.std for r in roles for c in self._of(r)]
        n = len(times) if times is not None else len(cols[0]) if cols else 0
        out = np.stack(cols, -1) if cols else np.zeros((n, 0))
        if self.timed:
            out = np.concatenate([out, calendar_features(times, self.calendar, self.holidays)], -1)
        return out

    def _static(self, values: Mapping[str, float | str]) -> F64:
        parts = []
        for c in self._of("static"):
            if c.kind == "categorical":
                parts.append(np.array([float(str(values[c.name]) == k) for k in c.categories]))
            else:
                parts.append(np.array([(float(values[c.name]) - c.mean) / c.std]))
        return np.concatenate(parts) if parts else np.zeros(0)

    def series_features(
        self, lengths: ArrayLike, values: CovariateValues, ends: Sequence[Any] | None
    ) -> tuple[list[F32], F32]:
        """Training inputs: per series [len_i, past_width] and the statics [n, static_width]."""
        lengths = np.asarray(lengths, np.int64).reshape(-1)
        dynamic = []
        for i, n in enumerate(lengths):
            times = self._times(ends[i] if ends else None, int(n), 0, i) if self.timed else None
            cols = {k: values.past[k][i] for k in self.names("past")}
            cols |= {k: values.future[k][i] for k in self.names("future")}
            dynamic.append(self._dynamic(cols, ("past", "future"), times).astype(np.float32))
        static = [self._static({k: values.static[k][i] for k in self.names("static")})
                  for i in range(len(lengths))]  # fmt: skip
        return dynamic, np.array(static, np.float32).reshape(len(lengths), self.static_width)

    def check(self, index: int, length: int, inputs: SeriesInputs, horizon: int) -> None:
        """Raise :class:`CovariateError` for the first covariate of series ``index`` (a history
        of ``length`` points, ``horizon`` steps asked) that the model does not read, or that
        is missing, misaligned or not finite."""
        reads: dict[str, list[str]] = {
            "past": [*self.names("past"), *self.names("future")],
            "future": self.names("future"),
            "static": self.names("static"),
        }
        sent = {"past": inputs.past, "future": inputs.future, "static": inputs.static}
        for where, names in reads.items():
            for name in sent[where]:
                if name not in names:
                    raise CovariateError(
                        f"{where} covariate {name!r} is not one the model reads; it reads "
                        f"{self.described()}", name, index,
                    )  # fmt: skip
        expected = [(k, "past", length) for k in reads["past"]]
        expected += [(k, "future", horizon) for k in self.names("future")]
        for name, where, n in expected:
            given = (inputs.past if where == "past" else inputs.future).get(name)
            what = "history point" if where == "past" else "horizon step"
            if given is None:
                raise CovariateError(
                    f"{where} covariate {name!r} is missing: one value per "
                    f"{what} ({n}) is needed", name, index,
                )  # fmt: skip
            # A numeric array holds no text or booleans: only its size and finiteness to check.
            numeric = isinstance(given, np.ndarray) and given.dtype.kind in "fiu"
            arr = np.asarray(given, dtype=None if numeric else object).reshape(-1)
            if arr.size != n:
                raise CovariateError(
                    f"{where} covariate {name!r} has {arr.size} values; "
                    f"{n} (one per {what}) are needed", name, index,
                )  # fmt: skip
            try:
                num = arr.astype(np.float64)
            except (TypeError, ValueError):
                num = np.array([np.nan])
            typed = numeric or not any(isinstance(v, bool | str) for v in arr)
            if not np.isfinite(num).all() or not typed:
                raise CovariateError(
                    f"{where} covariate {name!r} holds a value that is not a "
                    "finite number", name, index,
                )  # fmt: skip
        for c in self._of("static"):
            value = inputs.static.get(c.name)
            ok = value is not None and (c.kind == "categorical" or _finite_number(value))
            if not ok:
                need = "a category" if c.kind == "categorical" else "a finite number"
                raise CovariateError(
                    f"static covariate {c.name!r} is missing or not {need}",
                    c.name, index,
                )  # fmt: skip

    def encode(
        self,
        lengths: Sequence[int],
        inputs: Sequence[SeriesInputs] | None,
        input_size: int,
        horizon: int,
        asked: int | None = None,
    ) -> Encoded:
        """The network's inputs for histories of ``lengths`` (their last ``input_size`` points,
        a shorter one repeating its first) with ``inputs`` [n]; ``asked`` (default: the
        model's ``horizon``) is how many horizon steps the future covariates cover, the rest
        repeat the last. Raises :class:`CovariateError` naming the first bad series."""
        asked = horizon if asked is None else asked
        if inputs is None or len(inputs) != len(lengths):
            raise CovariateError(
                f"the model reads covariates ({self.described()}): give one set per series",
                "covariates",
            )  # fmt: skip
        for i, (n, given) in enumerate(zip(lengths, inputs, strict=True)):
            self.check(i, int(n), given, asked)
        # Filled a column at a time (one row per series); the calendar once per distinct last
        # timestamp (a request's series mostly share it): per series, it cost 30 to 100 times
        # the network's forward pass.
        n = len(lengths)
        past = np.zeros((n, input_size, self.past_width), np.float32)
        future = np.zeros((n, horizon, self.future_width), np.float32)
        dynamic = [*self._of("past"), *self._of("future")]
        for k, c in enumerate(dynamic):
            rows = [_left(np.asarray(g.past[c.name], np.float64)[-input_size:], input_size)
                    for g in inputs]  # fmt: skip
            past[:, :, k] = (np.stack(rows) - c.mean) / c.std if rows else 0.0
        for k, c in enumerate(self._of("future")):
            rows = [_right(np.asarray(g.future[c.name], np.float64), horizon) for g in inputs]
            future[:, :, k] = (np.stack(rows) - c.mean) / c.std if rows else 0.0
        if self.timed:
            calendars: dict[Any, F64] = {}
            for i, given in enumerate(inputs):
                key = None if given.end is None else pd.Timestamp(given.end)
                if key not in calendars:
                    times = self._times(given.end, input_size, horizon, i)
                    calendars[key] = calendar_features(times, self.calendar, self.holidays)
                past[i, :, len(dynamic) :] = calendars[key][:input_size]
                future[i, :, len(self._of("future")) :] = calendars[key][input_size:]
        static = [self._static(g.static) for g in inputs]
        return Encoded(past, future, np.array(static, np.float32).reshape(n, self.static_width))

    def neutral(self, n: int, input_size: int, horizon: int) -> Encoded:
        """Inputs at every covariate's training mean and a zero calendar (the sanity probes)."""
        return Encoded(np.zeros((n, input_size, self.past_width), np.float32),
                       np.zeros((n, horizon, self.future_width), np.float32),
                       np.zeros((n, self.static_width), np.float32))  # fmt: skip


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _left(a: F64, size: int) -> F64:
    """``a`` left-padded to ``size`` by repeating its first value (as training windows do)."""
    return a if a.size >= size else np.concatenate([np.full(size - a.size, a[0]), a])


def _right(a: F64, size: int) -> F64:
    """``a`` cut or right-padded to ``size`` by repeating its last value: a horizon step's
    output reads only its own step's covariates, so steps beyond those asked change nothing
    that is returned."""
    return a[:size] if a.size >= size else np.concatenate([a, np.full(size - a.size, a[-1])])


def learn(
    values: CovariateValues,
    freq: str | None,
    *,
    calendar: bool,
    holidays: str | None = None,
) -> CovariateSpec:
    """The spec of ``values`` (training data): numeric columns with their mean and standard
    deviation over every point (1 where constant), categorical statics with their sorted
    categories; the calendar of ``freq`` when ``calendar`` (and the timestamps exist)."""
    columns: list[Column] = []
    for role, table in (("past", values.past), ("future", values.future)):
        for name, arrays in table.items():
            allv = np.concatenate([np.asarray(a, np.float64) for a in arrays])
            columns.append(Column(name, role, "numeric", *_moments(allv)))  # type: ignore[arg-type]
    for name, items in values.static.items():
        if all(isinstance(v, int | float) for v in items):
            columns.append(Column(name, "static", "numeric",
                                  *_moments(np.array(items, np.float64))))  # fmt: skip
        else:
            columns.append(Column(name, "static", "categorical",
                                  categories=tuple(sorted({str(v) for v in items}))))  # fmt: skip
    names = calendar_for(freq) if calendar else ()
    if holidays and freq is None:
        raise CovariateError("holidays need timestamps: the data has none", "holidays")
    timed = freq if names or holidays else None
    return CovariateSpec(tuple(columns), names, holidays or None, timed)


def _moments(a: F64) -> tuple[float, float]:
    mean = float(np.mean(a)) if a.size else 0.0
    std = float(np.std(a)) if a.size else 1.0
    return mean, std if std > 0 and np.isfinite(std) else 1.0


def series_inputs(
    n: int,
    history: CovariateValues,
    ends: Sequence[Any] | None,
    ahead: Mapping[str, Sequence[ArrayLike]] | None = None,
    horizon: int | None = None,
) -> list[SeriesInputs]:
    """The :class:`SeriesInputs` of ``n`` series: ``history``'s dynamic values as each one's
    past, ``ahead[name][i]`` (cut to ``horizon``) as its future, ``ends[i]`` its last
    timestamp. ``forecaster evaluate`` takes the future from the test file, validation from
    the held-out points."""
    ahead = ahead or {}
    cut = slice(None, horizon)
    return [
        SeriesInputs(
            past={k: v[i] for k, v in (history.past | history.future).items()},
            future={k: np.asarray(v[i])[cut] for k, v in ahead.items()},
            static={k: v[i] for k, v in history.static.items()},
            end=None if ends is None else ends[i],
        )
        for i in range(n)
    ]
