"""One way for a test to wait: poll the condition it waits for, with a deadline.

A fixed sleep is either too short on a loaded machine (the test flakes) or too long everywhere
(the suite crawls); a poll returns as soon as the condition holds and fails with a message that
says what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 30.0,
    message: str | Callable[[], str] = "the condition never held",
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that. After ``timeout`` seconds the test fails with ``message`` (a callable is asked
    then, say for a log's tail). Exceptions in ``ignoring`` count as "not yet" (a server still
    starting refuses connections)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"{said} (waited {timeout:g} s)")
        time.sleep(interval)
