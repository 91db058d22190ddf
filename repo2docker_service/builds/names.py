"""One name, one repository: a build never takes over an environment of another repository.

An environment is ``(owner, name)``; its ``latest`` tag says which repository it is. Two
repositories with the same last path segment (``https://host/a/analysis`` and
``https://host/b/analysis``) would both derive the name ``analysis``, and the second build
would move ``latest`` away from the first repository: the first environment would vanish
from the list. The rule (:func:`choose_name`), applied to every build request (the API, the
UI's add dialog, launch links, webhook rebuilds):

- **A name given** that an environment (or an active build) of *another* repository holds
  in the same namespace is refused: 409, saying which repository holds it and how to pick
  another name (with a suggestion), or to delete that environment first.
- **No name given**: the first of :func:`derived_names` that is free or already this
  repository's: ``analysis``, then ``b-analysis`` (the owner part of the URL before it),
  then ``b-analysis-2`` ... ``b-analysis-9``; when all ten are taken, 409 asking for a name.

Repositories are compared by their identity (:class:`~repo2docker_service.repoid.RepoIdentity`:
case on case-insensitive forges, ``.git`` and trailing slashes do not count).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

from ..errors import Conflict, Unavailable
from ..images.catalog import Catalog
from ..images.naming import MAX_NAME_LENGTH, SHARED_OWNER, ImageNamer, derive_name
from ..repoid import RepoIdentity
from .model import Build
from .request import CheckedRequest

__all__ = ["NameHolder", "choose_name", "derived_names", "name_holder", "name_taken"]

#: ``holder(name) -> repository URL`` of the environment or active build that holds
#: ``name`` in the request's namespace, or None when the name is free.
NameHolder = Callable[[str], Awaitable[str | None]]

_MORE = 8  # b-analysis-2 .. b-analysis-9


def _fit(name: str) -> str:
    return name[:MAX_NAME_LENGTH].rstrip("._-")


def derived_names(repo: str) -> list[str]:
    """The names a build of ``repo`` without a name may take, in order of preference.

    ``https://host/b/analysis.git`` gives ``analysis``, ``b-analysis``, ``b-analysis-2`` ...
    ``b-analysis-9`` (the part before the repository is the host's when there is none).
    Every name is valid (:func:`~repo2docker_service.images.naming.validate_name`).
    """
    base = derive_name(repo)
    parts = urlsplit(repo) if "://" in repo else None
    segments = [s for s in unquote(parts.path if parts else repo).split("/") if s]
    parent_text = segments[-2] if len(segments) >= 2 else (parts.hostname if parts else "")
    parent = derive_name(parent_text or "") if parent_text else ""
    if not parent or parent == base:
        parent = "repo"
    pair = _fit(f"{parent}-{base}")
    names = [base, pair] + [_fit(f"{pair[: MAX_NAME_LENGTH - 2]}-{n}") for n in range(2, 2 + _MORE)]
    return list(dict.fromkeys(names))


def name_taken(checked: CheckedRequest, held_by: str) -> Conflict:
    """The 409 for ``checked.name``, held by an environment (or build) of ``held_by``."""
    whose = "the shared environment" if checked.owner_slug == SHARED_OWNER else "your environment"
    other = next(n for n in derived_names(checked.repo) if n != checked.name)
    return Conflict(
        f"The name {checked.name!r} is taken: {whose} {checked.name!r} is built from "
        f"{held_by}. Give this environment of {checked.repo} another name (for example "
        f"{other!r}), or delete {checked.name!r} first."
    )


def name_holder(
    catalog: Catalog,
    namer: ImageNamer,
    owner_slug: str,
    active: Callable[[str], Build | None],
    log: logging.Logger | None = None,
) -> NameHolder:
    """The :data:`NameHolder` of one namespace: an active build into the name's ``latest``
    (``active(latest reference)``), else the catalog's environment of that name. When the
    registry is unavailable only active builds count (the build needs it anyway)."""

    async def holder(name: str) -> str | None:
        build = active(namer.reference(owner_slug=owner_slug, name=name, tag="latest"))
        if build is not None:
            return build.repo
        try:
            info = await catalog.get(owner_slug=owner_slug, name=name)
        except Unavailable as e:
            (log or logging.getLogger(__name__)).warning("name check of %s skipped: %s", name, e)
            return None
        return info.repo if info is not None else None

    return holder


async def choose_name(
    checked: CheckedRequest,
    *,
    name_given: bool,
    display_name_given: bool,
    holder: NameHolder,
    identity: RepoIdentity,
    namer: ImageNamer,
) -> CheckedRequest:
    """The request with a name no other repository holds (see the module doc).

    Args:
        checked: the validated request (its name is the given or the derived one).
        name_given: the caller gave the name.
        display_name_given: the caller gave a display name (else it follows the name).
        holder: who holds a name in the request's namespace.
        identity: the repository identity rule.
        namer: makes the ``latest`` reference of a new name.

    Returns:
        ``checked`` itself, or a copy with another derived name (and ``latest`` reference).

    Raises:
        Conflict: the given name, or every derived name, belongs to another repository.
    """
    if name_given:
        held_by = await holder(checked.name)
        if held_by is None or identity.same(held_by, checked.repo):
            return checked
        raise name_taken(checked, held_by)
    for name in derived_names(checked.repo):
        held_by = await holder(name)
        if held_by is None or identity.same(held_by, checked.repo):
            return _renamed(checked, name, namer=namer, display_name_given=display_name_given)
    raise Conflict(
        f"Every name derived from {checked.repo} is taken by environments of other "
        "repositories: give this one a name."
    )


def _renamed(
    checked: CheckedRequest, name: str, *, namer: ImageNamer, display_name_given: bool
) -> CheckedRequest:
    if name == checked.name:
        return checked
    return dataclasses.replace(
        checked,
        name=name,
        display_name=checked.display_name if display_name_given else name,
        latest_image=namer.reference(owner_slug=checked.owner_slug, name=name, tag="latest"),
    )
