"""What a run prints: one line per job and a table of every job's result."""

from __future__ import annotations

import math
from collections.abc import Sequence

from forecaster.retrain.report import finite_or_none
from forecaster.retrain.run import Outcome


def describe(outcome: Outcome) -> str:
    """One line per job for the log: what happened and why."""
    if outcome.status == "failed":
        return f"{outcome.name}: FAILED: {outcome.reason}"
    head = {
        "promoted": f"promoted v{outcome.challenger_version} to production",
        "kept": f"published v{outcome.challenger_version}, production stays "
        f"{_v(outcome.production)}",
        "rejected": f"published v{outcome.challenger_version} but REJECTED it",
        "superseded": f"published v{outcome.challenger_version}, NOT promoted: production is "
        f"{_v(outcome.production)}",
        "worker": "done",
        "skipped": "not retrained",
        "undecided": "not retrained",
    }[outcome.status]
    return f"{outcome.name}: {head}: {outcome.reason}"


TABLE_HEADER = ("model", "status", "champion", "challenger", "champ OWA", "chall OWA",
                "change", "production", "seconds")  # fmt: skip


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """A plain-text table of every job's result, for the end of a run."""
    rows = [TABLE_HEADER, *map(_row, outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _row(o: Outcome) -> tuple[str, ...]:
    change = finite_or_none(o.improvement)
    return (o.name, o.status, _v(o.champion_version), _v(o.challenger_version),
            _num(o.champion_owa), _num(o.challenger_owa),
            "-" if change is None else f"{change:+.1%}", _v(o.production),
            f"{o.seconds:.1f}")  # fmt: skip


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _num(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"
