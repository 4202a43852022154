"""The ``FORECASTER_*`` environment: the variables' prefix, the registry's default root, and the
one way the library's commands read a variable.

The service's ``Settings`` (``service/settings.py``) reads every variable with pydantic-settings
under :data:`PREFIX`; the commands that share two of its defaults (``models``, ``actuals``,
``monitor`` and ``retrain``: the registry and the monitoring database) read them here instead,
by the same names, so the library needs no pydantic-settings. Nothing else reads a setting's
variable (``tests/test_cli.py`` checks).
"""

from __future__ import annotations

import os

PREFIX = "FORECASTER_"
#: The registry root when neither a flag nor ``FORECASTER_REGISTRY`` names one.
DEFAULT_REGISTRY = "models"


def variable(field: str) -> str:
    """The variable of a setting: ``database_url`` -> ``FORECASTER_DATABASE_URL``."""
    return PREFIX + field.upper()


def setting(field: str) -> str | None:
    """The value of a setting's variable; empty (as compose files pass an unset variable) is
    unset."""
    return os.environ.get(variable(field)) or None


def registry_root(given: str | None = None) -> str:
    """``given``, else ``FORECASTER_REGISTRY``, else :data:`DEFAULT_REGISTRY`."""
    return given or setting("registry") or DEFAULT_REGISTRY
