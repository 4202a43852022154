"""How far a model may be asked to forecast (no JAX: the schemas and the client read it too).

A model forecasts its trained horizon at once; beyond it, it is rolled forward on its own
forecasts (:mod:`forecaster.extend`), every block another forward pass. The asked horizon is
bounded at ``MAX_BLOCKS`` trained horizons and ``MAX_STEPS`` steps (a trained horizon above
``MAX_STEPS`` is itself the bound): past ten of its own blocks a network reads little but its own
forecasts, and a request's cost grows with its blocks.
"""

from __future__ import annotations

#: Most trained horizons one forecast may cover, and most steps whatever the trained horizon.
MAX_BLOCKS = 10
MAX_STEPS = 1_000
#: The rule in words, for the API's descriptions and the errors.
RULE = f"up to {MAX_BLOCKS} times the trained horizon and at most {MAX_STEPS:,} steps"


def horizon_limit(trained: int) -> int:
    """The most steps a model trained at ``trained`` steps may be asked for."""
    return max(trained, min(MAX_BLOCKS * trained, MAX_STEPS))


def horizon_problem(horizon: int, trained: int) -> str | None:
    """Why ``horizon`` cannot be asked of a model trained at ``trained`` steps, or None."""
    limit = horizon_limit(trained)
    if horizon <= limit:
        return None
    return (
        f"horizon {horizon} exceeds this model's limit of {limit}: it forecasts {trained} steps "
        f"at once and is rolled forward on its own forecasts {RULE}"
    )
