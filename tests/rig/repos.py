"""Tiny repositories for the tests to build: a Dockerfile on the local base image.

Only Dockerfile repositories build offline (repo2docker's conda buildpacks need the
internet), so this one helper writes every test repository's content; the git server
(:mod:`tests.rig.git`) serves it.
"""

from __future__ import annotations

import uuid


def dockerfile(base: str, *lines: str, fresh: bool = False) -> dict[str, str]:
    """``{"Dockerfile": text}`` for ``GitHTTPServer.create_repo``/``commit``.

    The text is ``FROM base`` followed by ``lines`` (each a whole instruction, e.g.
    ``"RUN echo hi"``), one per line, ending in a newline.

    Args:
        base: the ``FROM`` image, normally the local base image (``BASE_IMAGE``).
        fresh: put ``RUN echo nonce-<random hex>`` first, so BuildKit's cache serves no
            step and every later step really runs (for tests that watch a step run).
    """
    nonce = [f"RUN echo nonce-{uuid.uuid4().hex}"] if fresh else []
    return {"Dockerfile": "\n".join([f"FROM {base}", *nonce, *lines]) + "\n"}


def unique(prefix: str) -> str:
    """``prefix-<8 random hex digits>``: a repository or image name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
