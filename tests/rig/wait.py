"""Polling until something holds: one loop for synchronous code, one for coroutines.

``check`` returns a truthy value when done; that value is returned. The async loop also takes
checks that return an awaitable (``async def`` functions, or lambdas calling them).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = ""
) -> T:
    """Call ``check`` every ``interval`` s until it returns something truthy; return that.

    Exceptions from ``check`` propagate (a check raises to give up early).

    Raises:
        TimeoutError: still falsy after ``timeout`` seconds (checked once more at the end).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def _poll(
    check: Callable[[], T | Awaitable[T]], *, timeout: float, interval: float
) -> tuple[bool, T]:
    """(done, last value) of polling ``check`` until truthy or ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return True, value
        if time.monotonic() > deadline:
            return False, value
        await asyncio.sleep(interval)


async def wait_for(
    check: Callable[[], T | Awaitable[T]],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "",
) -> T:
    """Await ``check`` (sync or async) every ``interval`` s until truthy; return that value.

    Raises:
        AssertionError: still falsy after ``timeout`` seconds: a test failure naming ``what``.
    """
    done, value = await _poll(check, timeout=timeout, interval=interval)
    if not done:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return value


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """Whether ``check`` (sync or async) became true within ``timeout`` seconds."""
    done, _ = await _poll(check, timeout=timeout, interval=interval)
    return done
