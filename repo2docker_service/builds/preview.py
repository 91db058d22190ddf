"""What a build request would build, worked out without queueing anything.

:class:`Previewer` does the part of ``BuildManager.submit`` before the queue: validate the
request (``request.check_request``), choose a name no other repository holds
(``names.choose_name``), resolve the ref to a commit (``resolve``: an abbreviated commit is
resolved against the remote's branch and tag tips and the commits of environments built from
the repository, the same rule for builders and for viewers of launch links), make the image
reference and look for an existing image (a cache hit). Launch links show the result on
their confirm page before anything runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from ..errors import Unavailable
from ..images.catalog import Catalog, ImageInfo
from ..images.naming import ImageNamer, commit_tag
from ..repoid import RepoIdentity
from ..sources import GitCredentials, is_abbreviated_commit
from .model import Build
from .names import choose_name, name_holder
from .request import BuildRequest, Preview, Resolver, check_request

__all__ = ["Previewer"]


class Previewer:
    """Previews build requests (see the module doc); the manager owns one.

    Args:
        namer: makes image references.
        catalog: where existing images and names are looked up.
        resolver: ``resolve_ref``-like; it gets ``known_commits`` for abbreviated commits.
        identity: which repository URLs name one repository.
        allowed_schemes: URL schemes accepted for repositories.
        allowed_hosts: host names accepted for repositories (empty: any host).
        resolve_timeout: seconds for resolving a ref with git.
        active_latest: the queued or running build into a ``latest`` reference, or None.
        machine_profiles: slugs of the machine profiles a ``profile`` hint may name.
        commit_checker: ``check_commit(repo, sha, *, credentials, timeout)``, asked before a
            full SHA (taken as it is) is built; None: not asked (the build finds out).
        log: where skipped checks are logged.
    """

    def __init__(
        self,
        *,
        namer: ImageNamer,
        catalog: Catalog,
        resolver: Resolver,
        identity: RepoIdentity,
        allowed_schemes: Iterable[str],
        allowed_hosts: Iterable[str],
        resolve_timeout: float,
        active_latest: Callable[[str], Build | None],
        machine_profiles: Iterable[str] = (),
        commit_checker: Callable[..., Awaitable[bool]] | None = None,
        log: logging.Logger,
    ) -> None:
        self.namer = namer
        self.catalog = catalog
        self.resolver = resolver
        self.identity = identity
        self.allowed_schemes = tuple(allowed_schemes)
        self.allowed_hosts = tuple(allowed_hosts)
        self.resolve_timeout = resolve_timeout
        self.active_latest = active_latest
        self.machine_profiles = tuple(machine_profiles)
        self.commit_checker = commit_checker
        self.log = log

    async def preview(self, req: BuildRequest) -> Preview:
        """The checked request (with its name), the commit, the image reference and the
        existing image (None for ``force`` requests). Raises as ``BuildManager.submit``."""
        checked = check_request(
            req,
            namer=self.namer,
            allowed_schemes=self.allowed_schemes,
            allowed_hosts=self.allowed_hosts,
            machine_profiles=self.machine_profiles,
        )
        checked = await choose_name(
            checked,
            name_given=bool(req.name),
            display_name_given=bool(req.display_name and req.display_name.strip()),
            holder=name_holder(
                self.catalog, self.namer, checked.owner_slug, self.active_latest, self.log
            ),
            identity=self.identity,
            namer=self.namer,
        )
        commit = await self.resolve(
            checked.repo,
            checked.ref,
            images=lambda: self._visible(req.owner),
            credentials=req.credentials,
        )
        image = self.namer.reference(
            owner_slug=checked.owner_slug, name=checked.name, tag=commit_tag(commit)
        )
        existing = None if req.force else await self._existing_image(req.owner, image)
        if existing is None and self.commit_checker and checked.ref.lower() == commit:
            # a full SHA, taken as it is: does the remote have it? (never for cache hits)
            creds, timeout = req.credentials, self.resolve_timeout
            await self.commit_checker(checked.repo, commit, credentials=creds, timeout=timeout)
        return Preview(checked=checked, commit=commit, image=image, existing=existing)

    async def resolve(
        self,
        repo: str,
        ref: str,
        *,
        images: Callable[[], Awaitable[list[ImageInfo]]],
        credentials: GitCredentials | None = None,
    ) -> str:
        """The commit ``ref`` names now (``resolver``); an abbreviated commit may also be the
        commit of one of ``images()`` built from ``repo`` (those the caller may see; listed
        only for an abbreviated commit).

        Raises:
            SourceError: the repository cannot be read, the ref is missing, or an
                abbreviated commit matches none or several commits.
        """
        if not is_abbreviated_commit(ref):
            return await self.resolver(
                repo, ref, credentials=credentials, timeout=self.resolve_timeout
            )
        ours = [i for i in await images() if self.identity.same(i.repo, repo)]
        known = await self.catalog.commits_starting_with(ours, ref)
        return await self.resolver(
            repo,
            ref,
            credentials=credentials,
            timeout=self.resolve_timeout,
            known_commits=sorted(known),
        )

    async def _visible(self, owner: str) -> list[ImageInfo]:
        """The environments ``owner`` sees (own and shared); none when the catalog cannot
        tell (an abbreviated commit then resolves against the remote only)."""
        try:
            return await self.catalog.list_images(owner=owner, include_shared=True)
        except Unavailable as e:
            self.log.warning("owner %s: commits of built environments unknown: %s", owner, e)
            return []

    async def _existing_image(self, owner: str, image: str) -> ImageInfo | None:
        """The image if it already exists (None too when the catalog cannot tell)."""
        try:
            info = await self.catalog.image_info(image)
        except Unavailable as e:
            # the build checks again when it pushes; it can wait for the registry
            self.log.warning("owner %s: cache check of %s skipped: %s", owner, image, e)
            return None
        if info is not None:
            self.log.info("owner %s: %s exists, nothing to build", owner, image)
        return info
