"""A forecast request's body: parsed, validated, and split into its series.

The body is parsed and validated in one pass by pydantic-core (several times faster than
``json.loads`` plus validation). When that fails only inside some entries of ``series``, the other
series are still answered: the body is read again, its envelope (horizon, model, quantiles,
``strict``) validated on its own, and each bad entry becomes a :class:`Problem` of that series
(``strict`` then refuses the whole request, see :mod:`service.forecasting`). Every problem of a
series names it by id (its index when it has none) and index, in 422 bodies too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import ValidationError

from forecaster.covariates import SeriesInputs
from forecaster.schemas import ID_MAX_LENGTH, ForecastRequest, SeriesInput, id_problem

Loc = tuple[str | int, ...]
# Schema errors reported per series (a history of 10,000 strings would otherwise give 10,000).
ERRORS_PER_SERIES = 5
# Stands in for the series while the envelope of a request whose every series is bad is checked.
_PLACEHOLDER = {"history": [0.0]}


class RequestErrors(Exception):
    """A request refused as a whole, with every problem found: HTTP ``status`` and ``details``,
    its error body's entries (``loc``, ``msg``, ``type``, and ``id`` and ``index`` for a series'
    problems)."""

    def __init__(self, status: int, details: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(d["msg"]) for d in details))
        self.status, self.details = status, details


class RequestError(RequestErrors):
    """A request refused for one field: where it is (``loc``), a message and the error type."""

    def __init__(self, status: int, loc: Loc, msg: str, kind: str = "value_error") -> None:
        super().__init__(status, [{"loc": list(loc), "msg": msg, "type": kind}])


@dataclass(frozen=True)
class Entry:
    """One series as the request gave it: ``loc`` is where it sits in the body, ``index`` its
    position in ``series`` (None for the one-series form)."""

    loc: Loc
    index: int | None
    id: str | None
    history: list[float | None]
    timestamps: list[str] | None
    covariates: SeriesInputs | None = None  # as sent (no ``end``); None: none sent

    @property
    def name(self) -> str:
        """The id its forecast and errors carry: its own, else its index."""
        return self.id if self.id is not None else str(self.index)


@dataclass(frozen=True)
class Problem:
    """Why one series gets no forecast."""

    entry: Entry
    loc: Loc
    msg: str
    kind: str = "value_error"

    def detail(self) -> dict[str, Any]:
        """Its entry in an answer's ``errors`` or a 422's ``detail``."""
        out: dict[str, Any] = {"loc": list(self.loc), "msg": self.msg, "type": self.kind}
        if self.entry.index is not None:
            out = {"id": self.entry.name, "index": self.entry.index} | out
        return out


@dataclass(frozen=True)
class Parsed:
    """A request whose envelope is valid: its series that passed the schema (``entries``) and
    the schema problems of the others (``rejected``; a ``strict`` request is refused with them
    and the problems the other series turn out to have)."""

    request: ForecastRequest
    entries: list[Entry]
    rejected: list[Problem]


def parse_request(body: bytes, max_series: int) -> Parsed:
    """The request in ``body``; :class:`RequestErrors` (422) when it cannot be answered at all."""
    try:
        request = ForecastRequest.model_validate_json(body)
    except ValidationError as exc:
        return _lenient(body, exc, max_series)
    if request.history is not None:
        entry = Entry(("body",), None, None, request.history, request.timestamps,
                      _covariates(request))  # fmt: skip
        return Parsed(request, [entry], [])
    assert request.series is not None  # the schema guarantees one of the two forms
    _check_count(len(request.series), max_series)
    entries = [
        Entry(("body", "series", i), i, s.id, s.history, s.timestamps, _covariates(s))
        for i, s in enumerate(request.series)
    ]
    return Parsed(request, entries, [])


def _covariates(given: ForecastRequest | SeriesInput) -> SeriesInputs | None:
    """The covariates one series carries, or None when it carries none."""
    past, future, static = given.past_covariates, given.future_covariates, given.static_covariates
    if past is None and future is None and static is None:
        return None
    return SeriesInputs(past or {}, future or {}, static or {})


def _check_count(count: int, max_series: int) -> None:
    if count > max_series:
        msg = f"{count} series given; at most {max_series} per request"
        raise RequestError(422, ("body", "series"), msg, "too_long")


def _lenient(body: bytes, exc: ValidationError, max_series: int) -> Parsed:
    """The request when its only errors lie inside entries of ``series``; else RequestErrors."""
    errors = exc.errors(include_input=False, include_url=False)
    raw = _raw(body) if any(_in_series(e["loc"]) for e in errors) else None
    items = raw.get("series") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(items, list):
        raise RequestErrors(422, [_detail(e, None) for e in errors])
    if not all(_in_series(e["loc"]) for e in errors):
        raise RequestErrors(422, [_detail(e, items) for e in errors])
    _check_count(len(items), max_series)
    bad = {e["loc"][1] for e in errors}
    good = [i for i in range(len(items)) if i not in bad]
    try:
        request = ForecastRequest.model_validate(
            raw | {"series": [items[i] for i in good] or [_PLACEHOLDER]}
        )
    except ValidationError as envelope:  # e.g. both forms given: found once the entries pass
        details = [_detail(e, items) for e in envelope.errors(include_url=False)]
        raise RequestErrors(422, details + [_detail(e, items) for e in errors]) from None
    problems = _problems(errors, items)
    series = request.series if good else []
    assert series is not None
    entries = [
        Entry(("body", "series", i), i, s.id, s.history, s.timestamps, _covariates(s))
        for i, s in zip(good, series, strict=True)
    ]
    return Parsed(request.model_copy(update={"series": series}), entries, problems)


def _in_series(loc: tuple[Any, ...]) -> bool:
    return len(loc) >= 2 and loc[0] == "series" and isinstance(loc[1], int)


def _raw(body: bytes) -> Any:
    """The body as plain JSON values (None if it is not JSON)."""
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return None


def _entry_of(items: list[Any], index: int) -> Entry:
    item = items[index] if index < len(items) else None
    given = item.get("id") if isinstance(item, dict) else None
    usable = isinstance(given, str) and len(given) <= ID_MAX_LENGTH and not id_problem(given)
    name = given if usable else None  # a refused id is not echoed: the index names the series
    return Entry(("body", "series", index), index, name, [], None)


def _problems(errors: list[Any], items: list[Any]) -> list[Problem]:
    """The schema errors as problems of their series, at most ERRORS_PER_SERIES each, in order."""
    out: list[Problem] = []
    count: dict[int, int] = {}
    for e in sorted(errors, key=lambda e: e["loc"][1]):
        index = e["loc"][1]
        count[index] = count.get(index, 0) + 1
        if count[index] <= ERRORS_PER_SERIES:
            out.append(Problem(_entry_of(items, index), ("body", *e["loc"]), e["msg"], e["type"]))
    return out


def _detail(error: Any, items: list[Any] | None) -> dict[str, Any]:
    loc = ("body", *error["loc"])
    if items is not None and _in_series(error["loc"]):
        return Problem(_entry_of(items, error["loc"][1]), loc, error["msg"], error["type"]).detail()
    return {"loc": list(loc), "msg": error["msg"], "type": error["type"]}
