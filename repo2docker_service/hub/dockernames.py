"""Container names and ownership for DockerSpawner: one container per server, never another's.

DockerSpawner names a server's container with ``name_template``. A template that cannot
tell two servers apart (no ``{servername}`` while named servers are allowed, a
``{prefix}``-only or custom template without ``{username}``, or the user and server parts
glued with a separator an escaped name may contain) gives two servers one name: the second
one's start finds the first one's container, and DockerSpawner removes it ("should have
been cleaned up") or adopts it, or creating fails with "name already in use" and the
clean-up removes the first server's container.

Two rules, used by :class:`~.dockerspawner.Repo2DockerMixin`:

- :func:`safe_name_template`: the template a server's container is named with. A safe
  template is used as it is; otherwise the missing part is appended (``-{username}``,
  ``--{servername}`` for named servers), which is DockerSpawner's own default form. The
  default (unnamed) server keeps the configured name, so existing containers and volumes
  keep theirs.
- :func:`owned_by`: a container belongs to a server only if its labels (:data:`LABEL_USER`,
  :data:`LABEL_SERVER`, set when the spawner creates it) say so; a container without them
  counts by the ``JUPYTERHUB_USER`` / ``JUPYTERHUB_SERVER_NAME`` JupyterHub gave it.
  Anything else is never adopted, stopped or removed.

Imports only the standard library (it runs inside JupyterHub).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LABEL_SERVER",
    "LABEL_USER",
    "owned_by",
    "owner_labels",
    "safe_name_template",
]

#: Labels of the containers the spawner creates: the hub user and the server name.
LABEL_USER = "repo2docker-service.spawner.user"
LABEL_SERVER = "repo2docker-service.spawner.server"

_USER_FIELDS = frozenset({"username", "safe_username", "raw_username"})
_SERVER_FIELDS = frozenset({"servername", "raw_servername"})
# DockerSpawner escapes names to [a-z0-9] and "-" (the escape character, always followed by
# two hex digits), so "--" and any other character never occur inside an escaped name
_SAFE_SEPARATOR = re.compile(r"--|[^a-z0-9-]")


def _fields(template: str) -> list[tuple[str, str]]:
    """``[(literal text before, field name)]`` of a format template, in order."""
    found = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        if field is not None:
            found.append((literal, re.split(r"[.\[]", field, maxsplit=1)[0]))
        elif literal:
            found.append((literal, ""))
    return found


def _separated(template: str) -> bool:
    """True when the text between each user part and each server part contains a separator
    that cannot occur in an escaped name, so ``user + sep + server`` splits one way only."""
    parts = _fields(template)  # (literal text before the field, the field)
    users = [i for i, (_, name) in enumerate(parts) if name in _USER_FIELDS]
    servers = [i for i, (_, name) in enumerate(parts) if name in _SERVER_FIELDS]
    for u in users:
        for s in servers:
            if parts[u][1].startswith("raw_") or parts[s][1].startswith("raw_"):
                return False  # a raw name may contain any separator
            low, high = sorted((u, s))
            between = "".join(literal for literal, _ in parts[low + 1 : high + 1])
            if not _SAFE_SEPARATOR.search(between):
                return False
    return True


def safe_name_template(template: str, *, named: bool) -> tuple[str, list[str]]:
    """The template a server's container is named with, and what was wrong with ``template``.

    Args:
        template: the configured ``DockerSpawner.name_template``.
        named: the server is a named server (its name is not empty).

    Returns:
        ``(template to use, problems)``; ``problems`` is empty when ``template`` is safe
        (then it is returned unchanged). A template that is not a valid format string is
        returned unchanged with its problem: DockerSpawner reports it when it renders it.
    """
    try:
        names = {name for _, name in _fields(template)}
    except ValueError as e:
        return template, [f"name_template {template!r} is not a format string: {e}"]
    problems = []
    safe = template
    if not names & _USER_FIELDS:
        problems.append(
            f"name_template {template!r} has no {{username}}: every user's server would get "
            "the same container"
        )
        safe += "-{username}"
    if named and not names & _SERVER_FIELDS:
        problems.append(
            f"name_template {template!r} has no {{servername}}: every named server of a user "
            "would get the same container"
        )
        safe += "--{servername}"
    elif named and not _separated(safe):
        problems.append(
            f"name_template {template!r} joins the user and server names with text a name "
            "may contain (use {username}--{servername}): two servers could get one container"
        )
        safe += "--{servername}"
    return safe, problems


def owner_labels(user: str, server: str) -> dict[str, str]:
    """The labels saying which server a container is (``server`` "" for the default one)."""
    return {LABEL_USER: user, LABEL_SERVER: server}


def owned_by(container: Mapping[str, Any], user: str, server: str) -> bool:
    """True when ``container`` (``docker inspect``'s answer) is ``user``'s server ``server``.

    Our labels decide when present; else the ``JUPYTERHUB_USER`` and
    ``JUPYTERHUB_SERVER_NAME`` JupyterHub gives every server it starts (containers made
    before the labels existed). A container with neither belongs to no server.
    """
    config = container.get("Config") or {}
    labels = config.get("Labels") or {}
    if LABEL_USER in labels:
        return bool(labels.get(LABEL_USER) == user and labels.get(LABEL_SERVER, "") == server)
    env = dict(
        line.split("=", 1)
        for line in config.get("Env") or []
        if isinstance(line, str) and "=" in line
    )
    if "JUPYTERHUB_USER" not in env:
        return False
    return env["JUPYTERHUB_USER"] == user and env.get("JUPYTERHUB_SERVER_NAME", "") == server
