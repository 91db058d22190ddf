"""Docker's image reference grammar: one predicate per rule, and the splits the catalogs use.

This module is pure (no I/O, no module-level mutable state). The patterns follow
``distribution/reference``:

==========================  ===============================================================
rule                        predicate
==========================  ===============================================================
path component              :func:`is_valid_path_component` (``alice``, ``a-2e-b``)
domain ``host[:port]``      :func:`is_valid_domain`; :func:`is_registry_domain` when Docker
                            reads a first component as a registry (:func:`registry_of`)
tag                         :func:`is_valid_tag`
repository (no tag)         :func:`is_valid_repository`, at most
                            :data:`MAX_REPOSITORY_LENGTH` characters
reference ``repo[:tag]``    :func:`is_valid_reference` (digests are not accepted)
digest ``algorithm:hex``    :func:`is_digest`
==========================  ===============================================================

The predicates accept any value and answer False for non-strings.
"""

from __future__ import annotations

import re

__all__ = [
    "LATEST",
    "MAX_REPOSITORY_LENGTH",
    "PATH_COMPONENT_PATTERN",
    "PINNED",
    "is_digest",
    "is_registry_domain",
    "is_valid_domain",
    "is_valid_path_component",
    "is_valid_reference",
    "is_valid_repository",
    "is_valid_tag",
    "registry_of",
    "split_reference",
    "split_tag",
]

#: The tag a reference without one means.
LATEST = "latest"

#: The tag that marks an environment's ``latest`` as pinned (a roll back): it names the
#: image ``latest`` is held at. Not a commit tag (those are 12 hex digits), never listed.
PINNED = "pinned"

#: Longest repository name (registry host included) Docker accepts.
MAX_REPOSITORY_LENGTH = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
#: One repository path component, as a pattern (no anchors; for use in larger patterns).
PATH_COMPONENT_PATTERN = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_HOST = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6_HOST})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

_PATH_COMPONENT_RE = re.compile(PATH_COMPONENT_PATTERN)
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def is_valid_path_component(s: object) -> bool:
    """Whether ``s`` is one Docker repository path component (``alice``, ``a-2e-b``).

    Args:
        s: candidate value.

    Returns:
        True if ``s`` matches ``[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*``.
    """
    return isinstance(s, str) and _PATH_COMPONENT_RE.fullmatch(s) is not None


def is_valid_domain(s: object) -> bool:
    """Whether ``s`` is a registry domain: ``host[:port]`` (DNS name, IPv4 or ``[IPv6]``).

    Args:
        s: candidate value.

    Returns:
        True if ``s`` matches the grammar's domain rule.
    """
    return (
        isinstance(s, str)
        and len(s) <= MAX_REPOSITORY_LENGTH
        and _DOMAIN_RE.fullmatch(s) is not None
    )


def is_registry_domain(s: str) -> bool:
    """Whether Docker reads ``s`` as a registry when it is a reference's first component.

    Docker treats the first component as a registry only if it contains ``.`` or ``:``, is
    ``localhost``, or has uppercase letters; otherwise ``s/x`` means ``docker.io/s/x``.

    Args:
        s: candidate string.

    Returns:
        True if ``s`` is a valid domain that Docker recognizes as a registry.
    """
    return is_valid_domain(s) and ("." in s or ":" in s or s == "localhost" or s.lower() != s)


def registry_of(repository: str) -> str | None:
    """Return the registry Docker reads from a repository name, by Docker's splitting rule.

    Args:
        repository: a repository name (without tag).

    Returns:
        The first component if Docker treats it as a registry host, else None (Docker Hub,
        or the local engine's name).
    """
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first
    return None


def is_valid_tag(s: object) -> bool:
    """Whether ``s`` is a valid Docker tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``).

    Args:
        s: candidate value.

    Returns:
        True if ``s`` is a valid tag.
    """
    return isinstance(s, str) and _TAG_RE.fullmatch(s) is not None


def is_valid_repository(s: object) -> bool:
    """Whether ``s`` is a valid Docker repository name (a reference without tag).

    That is ``[domain/]component[/component...]``, at most 255 characters in total.

    Args:
        s: candidate value.

    Returns:
        True if ``s`` is a valid repository name.
    """
    if not isinstance(s, str) or not s or len(s) > MAX_REPOSITORY_LENGTH:
        return False
    components = s.split("/")
    if all(is_valid_path_component(c) for c in components):
        return True
    return (
        len(components) > 1
        and is_valid_domain(components[0])
        and all(is_valid_path_component(c) for c in components[1:])
    )


def split_tag(reference: str) -> tuple[str, str | None]:
    """Split ``repo[:tag]``; a ``:`` before the last ``/`` belongs to a registry port.

    Returns:
        ``(repository, tag)``; the tag is None when absent.
    """
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, None
    return name, tag


def split_reference(reference: str) -> tuple[str, str]:
    """Split ``repository:tag`` (a ``:`` before the last ``/`` is a registry port).

    Returns:
        ``(repository, tag)``; the tag is :data:`LATEST` when absent.
    """
    repository, tag = split_tag(reference)
    return repository, LATEST if tag is None else tag


def is_valid_reference(ref: object) -> bool:
    """Whether ``ref`` is a valid Docker image reference ``[domain/]path[:tag]``.

    Digests (``@sha256:...``) are not accepted: the service never names images by digest.

    Args:
        ref: candidate value.

    Returns:
        True if ``ref`` is a valid repository name optionally followed by ``:tag``.
    """
    if not isinstance(ref, str):
        return False
    name, tag = split_tag(ref)
    if tag is not None and not is_valid_tag(tag):
        return False
    return is_valid_repository(name)


def is_digest(reference: str) -> bool:
    """Whether ``reference`` is a content digest (``sha256:0123...``), not a tag.

    Args:
        reference: the part after ``@`` or ``:`` of a reference, or a bare digest.

    Returns:
        True if it matches ``algorithm:encoded``.
    """
    return _DIGEST_RE.fullmatch(reference) is not None
