"""Which branches to suggest when a ref is not in the repository (issue 17, item 6).

Pure functions over ``git ls-remote --symref <repo> HEAD refs/heads/*`` output:
:func:`parse_heads` reads the default branch and the branch names from it, and
:func:`suggest_branches` picks a few to show on the ref field: the default branch first,
then the names closest to what was typed (:func:`difflib.get_close_matches`, the standard
library's similarity ratio), then the others in alphabetical order.

Why a second ``ls-remote`` (made by :func:`~repo2docker_service.sources.resolve_ref` only
after the ref was not found): the first one lists only refs matching the typed name (git
filters the list by the patterns, and with protocol v2 the server does), so it cannot show
which branches exist; the path that finds the ref stays one round trip.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["MAX_SUGGESTIONS", "parse_heads", "suggest_branches"]

#: how many branch names an unknown-ref error suggests
MAX_SUGGESTIONS = 5

_SHA_RE = re.compile(r"[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?")  # SHA-1 or SHA-256
_HEADS = "refs/heads/"


def parse_heads(output: str) -> tuple[str | None, list[str]]:
    """``(default branch or None, branch names in the order listed)`` from ``ls-remote
    --symref ... HEAD refs/heads/*`` output.

    The default branch is the target of the ``ref: refs/heads/<name>\\tHEAD`` line git
    prints with ``--symref`` (absent when the server does not say, e.g. dumb HTTP or an
    empty repository). Lines that are neither are ignored.
    """
    default: str | None = None
    branches: list[str] = []
    for line in output.splitlines():
        left, sep, name = line.partition("\t")
        if not sep:
            continue
        if left.startswith("ref: ") and name == "HEAD":
            target = left[len("ref: ") :].strip()
            if target.startswith(_HEADS) and len(target) > len(_HEADS):
                default = target[len(_HEADS) :]
        elif _SHA_RE.fullmatch(left) and name.startswith(_HEADS) and len(name) > len(_HEADS):
            branch = name[len(_HEADS) :]
            if branch not in branches:
                branches.append(branch)
    return default, branches


def suggest_branches(
    typed: str, default: str | None, branches: list[str], *, limit: int = MAX_SUGGESTIONS
) -> list[str]:
    """At most ``limit`` branch names to offer instead of ``typed``.

    Order: ``default`` (when it is one of ``branches``), then the branches most similar to
    ``typed`` (ratio >= 0.5), then the rest alphabetically; ``typed`` itself is never
    offered. No branches: ``[]``.
    """
    if limit <= 0:
        return []
    known = [b for b in dict.fromkeys(branches) if b != typed]
    picked: list[str] = [default] if default in known else []
    close = difflib.get_close_matches(typed, known, n=limit, cutoff=0.5)
    for name in [*close, *sorted(known)]:
        if len(picked) >= limit:
            break
        if name not in picked:
            picked.append(name)
    return picked
