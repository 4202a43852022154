"""The promotion decision: does the challenger replace the champion, and why (one sentence)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from forecaster.job import Policy

Status = Literal[
    "promoted", "kept", "rejected", "superseded", "failed", "worker", "skipped", "undecided"
]
# Statuses that mean the job reached a decision (exit 0); "undecided" (``--when degraded`` with
# too few live points to judge by) has its own exit status; anything else is a failure.
# "superseded": someone else moved production during the run; their choice stands.
DECIDED = frozenset({"promoted", "kept", "superseded", "worker", "skipped"})


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes production, and why (one sentence)."""

    promote: bool
    status: Status
    reason: str
    improvement: float | None = None


def decide(
    policy: Policy,
    margin: float,
    challenger_owa: float,
    champion_owa: float | None,
    problems: Sequence[str] = (),
    champion_version: int | None = None,
) -> Decision:
    """Apply the promotion policy.

    ``improvement`` is the relative OWA gain ``(champion - challenger) / champion``; with
    ``if-better`` the challenger must improve by at least ``margin`` (and by more than
    nothing). A challenger that fails a sanity check is never promoted, whatever the policy.
    """
    champ = f"champion v{champion_version}" if champion_version else "the champion"
    gain = _improvement(challenger_owa, champion_owa)
    if problems:
        return Decision(
            False, "rejected", "challenger failed sanity checks: " + "; ".join(problems), gain
        )
    if policy == "never":
        return Decision(False, "kept", "policy never: production left as it was", gain)
    if policy == "always":
        return Decision(True, "promoted", "policy always: the challenger is sane", gain)
    if champion_owa is None:
        return Decision(True, "promoted", "no champion to beat: the challenger is sane", gain)
    if not math.isfinite(champion_owa) and math.isfinite(challenger_owa):
        return Decision(
            True,
            "promoted",
            f"{champ} has no usable backtest score (OWA {champion_owa}); the challenger is sane",
            gain,
        )
    if gain is not None and gain > 0 and gain >= margin:
        return Decision(
            True,
            "promoted",
            f"challenger OWA {challenger_owa:.4f} beats {champ}'s "
            f"{champion_owa:.4f} by {gain:.1%} (margin {margin:.1%})",
            gain,
        )
    shown = "n/a" if gain is None else f"{gain:+.1%}"
    return Decision(
        False,
        "kept",
        f"challenger OWA {challenger_owa:.4f} vs {champ}'s "
        f"{champion_owa:.4f} ({shown}) does not clear the margin {margin:.1%}",
        gain,
    )


def recheck(decision: Decision, compared: int | None, production: int | None) -> Decision:
    """``decision`` once production is read again, under the registry's lock, just before
    publishing: a promotion stands only if production is still the champion the challenger
    was compared with (``compared``); else it is withdrawn, and says why."""
    if not decision.promote or production == compared:
        return decision
    was = "no production version" if compared is None else f"champion v{compared}"
    return Decision(
        False,
        "superseded",
        f"production moved to {_version(production)} during the run; the challenger was "
        f"compared with {was}, so it is not promoted (retrain to compare it with "
        f"{_version(production)})",
        decision.improvement,
    )


def _version(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"


def _improvement(challenger: float, champion: float | None) -> float | None:
    """Relative OWA gain; +inf when only the champion's OWA is unusable, None when the
    challenger's is (it cannot be shown better)."""
    if champion is None or not math.isfinite(challenger):
        return None
    if not math.isfinite(champion):
        return math.inf
    if champion <= 0:
        return None  # a perfect champion cannot be beaten
    return (champion - challenger) / champion
