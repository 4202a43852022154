"""The ``FORECASTER_*`` environment as the library's commands read it. ``Settings``
(``service/settings.py``) reads every variable under :data:`PREFIX` with pydantic-settings; the
commands sharing its registry and monitoring database (``models``, ``actuals``, ``monitor``,
``retrain``) read those here by the same names, so the library needs no pydantic-settings.
"""

from __future__ import annotations

import os

PREFIX = "FORECASTER_"
DEFAULT_REGISTRY = "models"  # the registry root when no flag or variable names one


def variable(field: str) -> str:
    """The variable of a setting: ``database_url`` -> ``FORECASTER_DATABASE_URL``."""
    return PREFIX + field.upper()


def setting(field: str) -> str | None:
    """A setting's variable; empty (as compose files pass an unset variable) is unset."""
    return os.environ.get(variable(field)) or None


def registry_root(given: str | None = None) -> str:
    """``given``, else ``FORECASTER_REGISTRY``, else :data:`DEFAULT_REGISTRY`."""
    return given or setting("registry") or DEFAULT_REGISTRY
