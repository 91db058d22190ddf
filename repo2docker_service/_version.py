"""The version, and the oldest Python the package runs on (``requires-python``).

This module and the package's ``__init__`` stay parseable by old Pythons, so that an
unsupported one gets :func:`check_python`'s message instead of a ``SyntaxError`` from deep
inside (pip refuses such an install already; this catches ``--ignore-requires-python``,
a source checkout on ``PYTHONPATH``, or a hub environment whose Python was replaced).
"""

from __future__ import annotations

import sys

__version__ = "0.1.0.dev0"

#: pyproject.toml's ``requires-python`` (tests/unit/test_tljh.py checks they agree)
MIN_PYTHON = (3, 11)


def check_python(version: tuple[int, ...] | None = None) -> None:
    """Raise RuntimeError when ``version`` (default: the running Python's) is too old.

    The message names the Python found, its executable, the minimum, and where the
    supported platforms are listed (TLJH builds its hub environment from the system's
    ``python3``).
    """
    found = tuple(sys.version_info[:3]) if version is None else tuple(version)
    if found[:2] < MIN_PYTHON:
        raise RuntimeError(
            "repo2docker-service needs Python {} or newer; this is Python {} ({}). "
            "On The Littlest JupyterHub the hub environment uses the system's python3: "
            "see 'Platforms and Python' in docs/tljh.md for the systems that work.".format(
                ".".join(map(str, MIN_PYTHON)), ".".join(map(str, found)), sys.executable
            )
        )
