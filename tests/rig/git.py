"""Git repositories over smart HTTP on 127.0.0.1, the way the tests start them.

The server is ``scripts/git_http.py`` (one copy, shared with the demo, which imports nothing
from ``tests/``); this module is the rig's door to it and reports a missing ``git`` the
rig's way (:class:`~tests.rig.parts.RealPartMissing`, naming setup.sh).
"""

from __future__ import annotations

import os
import shutil
import ssl

from scripts.git_http import (
    GIT_IDENTITY,
    GitHTTPServer,
    GitRepo,
    GitRequest,
    files_from_dir,
    git_env,
    set_nodelay,
)
from tests.rig.parts import RealPartMissing

__all__ = [
    "GIT_IDENTITY",
    "GitHTTPServer",
    "GitRepo",
    "GitRequest",
    "files_from_dir",
    "git_env",
    "set_nodelay",
    "start_git_http",
]


def start_git_http(
    root: str | os.PathLike[str],
    *,
    tls: ssl.SSLContext | None = None,
    protocol_v2: bool = True,
) -> GitHTTPServer:
    """A started :class:`GitHTTPServer` keeping its repositories under ``root``.

    Args:
        root: where the repositories live.
        tls: serve https with this server context (``tests.rig.tls.loopback_tls``).
        protocol_v2: False: a server that speaks only protocol v0.

    Raises:
        RealPartMissing: there is no ``git`` command.
    """
    if shutil.which("git") is None:
        raise RealPartMissing("git not installed", "no `git` command on PATH")
    return GitHTTPServer(root, tls=tls, protocol_v2=protocol_v2).start()
