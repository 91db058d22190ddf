"""Git refs from requests: validation, and the rules that turn a name into a commit.

- :func:`validate_ref` accepts ``HEAD``, hex commit SHAs and names obeying
  ``git check-ref-format`` (one-level names allowed); a ref can never look like an option.
- :func:`candidate_refs` is the one order in which a name matches the remote's refs (branch,
  peeled annotated tag, tag, full ref), whichever way the refs were listed (``git
  ls-remote`` or protocol v2 ``ls-refs``).
- :func:`resolve_prefix` is the one rule for abbreviated commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidInput, SourceError
from .text import is_unprintable as _is_unprintable
from .text import shorten as _shorten

__all__ = [
    "FULL_SHA_RE",
    "MAX_REF_LENGTH",
    "candidate_refs",
    "is_abbreviated_commit",
    "pick_commit",
    "ref_not_found",
    "resolve_prefix",
    "validate_ref",
]

#: Longest ref :func:`validate_ref` accepts.
MAX_REF_LENGTH = 255

#: A full (SHA-1) commit id.
FULL_SHA_RE = re.compile(r"[0-9a-fA-F]{40}")
_SHORT_SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
_REF_FORBIDDEN_CHARS = frozenset(" ~^:?*[\\")


def _refname_problem(ref: str) -> str | None:
    """Return why ``ref`` breaks ``git check-ref-format --allow-onelevel``, or None."""
    if ref.startswith("-"):
        return "must not start with '-'"
    if ref == "@":
        return "must not be '@'"
    if ".." in ref:
        return "must not contain '..'"
    if "@{" in ref:
        return "must not contain '@{'"
    if any(c in _REF_FORBIDDEN_CHARS or _is_unprintable(c) for c in ref):
        return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "must not start or end with '/' or contain '//'"
    if ref.endswith("."):
        return "must not end with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "no '/'-separated part may start with '.'"
        if component.endswith(".lock"):
            return "no '/'-separated part may end with '.lock'"
    return None


def validate_ref(ref: str) -> str:
    """Check a git ref from a request.

    Accepted: ``HEAD``; a hex commit SHA of 7 to 40 characters; a branch or tag name, or a
    full ref such as ``refs/heads/main`` or ``refs/tags/v1``, following the rules of
    ``git check-ref-format`` (one-level names like ``main`` allowed) and never starting with
    ``-``. Unicode whitespace and control/format characters are refused as well.

    Args:
        ref: the ref as the client sent it.

    Returns:
        ``ref`` unchanged.

    Raises:
        InvalidInput: ``ref`` is empty, longer than 255 characters or not a valid ref name
            (``field="ref"``).
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidInput(
            "ref must be a non-empty string: a branch, tag or commit SHA", field="ref"
        )
    if len(ref) > MAX_REF_LENGTH:
        raise InvalidInput(
            f"ref is too long: {len(ref)} characters, at most {MAX_REF_LENGTH}", field="ref"
        )
    if ref == "HEAD" or _SHORT_SHA_RE.fullmatch(ref):
        return ref
    problem = _refname_problem(ref)
    if problem is not None:
        raise InvalidInput(
            f"invalid ref {_shorten(ref)!r}: a branch or tag name {problem}", field="ref"
        )
    return ref


def candidate_refs(ref: str) -> list[str]:
    """The full ref names ``ref`` may stand for, in the order they win (see resolve_ref)."""
    if ref == "HEAD":
        return ["HEAD"]
    candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    if ref.startswith("refs/"):
        candidates += [f"{ref}^{{}}", ref]
    return candidates


def ref_not_found(repo: str, ref: str, suggestions: list[str] | None = None) -> SourceError:
    """The error for a ref missing from ``repo``, on the ``ref`` field, naming a few existing
    branches (``suggestions``, default branch first: :func:`.branches.suggest_branches`)."""
    message = f"ref {ref!r} not found in {repo}"
    if suggestions:
        message += "; existing branches: " + ", ".join(suggestions)
    return SourceError(message, field="ref", suggestions=suggestions or ())


def is_abbreviated_commit(ref: str) -> bool:
    """Whether ``ref`` may be an abbreviated commit SHA: 7 to 39 hex characters."""
    return _SHORT_SHA_RE.fullmatch(ref) is not None and not FULL_SHA_RE.fullmatch(ref)


def resolve_prefix(repo: str, prefix: str, commits: Iterable[str]) -> str:
    """The one commit among ``commits`` that starts with ``prefix`` (the rule for
    abbreviated commits, the same for every caller: see :func:`resolve_ref`).

    Raises:
        SourceError: none or several of them start with ``prefix``; the message says what
            can be resolved and asks for the full SHA.
    """
    found = sorted({c.lower() for c in commits if c.lower().startswith(prefix.lower())})
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(c[:12] for c in found[:5])
        problem = f"commit {prefix!r} is ambiguous in {repo} ({shown}...)"
    else:
        problem = (
            f"commit {prefix!r} not found in {repo}: an abbreviated commit resolves only to "
            "the tip of a branch or tag, or to the commit of an environment built from it"
        )
    raise SourceError(f"{problem}; give the full 40-character commit SHA", field="ref")


def pick_commit(
    repo: str, ref: str, refs: dict[str, str], known_commits: Iterable[str] = ()
) -> str | None:
    """The commit ``ref`` names among the remote's ``refs`` (``{full ref name: sha}``, peeled
    tags as ``refs/tags/<name>^{}``), by :func:`candidate_refs`; an abbreviated commit that
    names no ref goes to :func:`resolve_prefix` with ``known_commits``.

    Returns:
        The commit, or None when ``ref`` (not an abbreviated commit) is not there; the
        caller raises :func:`ref_not_found` with its suggestions.

    Raises:
        SourceError: an abbreviated commit matches none or several.
    """
    for candidate in candidate_refs(ref):
        if candidate in refs:
            return refs[candidate]
    if is_abbreviated_commit(ref):
        return resolve_prefix(repo, ref, [*refs.values(), *known_commits])
    return None
