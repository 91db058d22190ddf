"""Character rules shared by the URL and ref checks of :mod:`repo2docker_service.sources`."""

from __future__ import annotations

import unicodedata

__all__ = ["is_control", "is_unprintable", "shorten"]


def is_control(c: str) -> bool:
    """Whether ``c`` is a control or format character (Unicode categories Cc, Cf)."""
    return unicodedata.category(c) in ("Cc", "Cf")


def is_unprintable(c: str) -> bool:
    """Whether ``c`` is whitespace or a control/format character."""
    return c.isspace() or is_control(c)


def shorten(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters, with ``...`` when cut (for error messages)."""
    return text if len(text) <= limit else text[:limit] + "..."
