"""What a launch link would run, decided before anything is built or started.

A launch (``launch?repo=``, ``v2/gh/...``, a BinderHub-style ``build/`` request) either builds
the repository in the visitor's namespace and starts a server from it (the visitor may
build), or starts an image that already exists (the visitor may only view).
:func:`plan_launch` works out which image that is without building or starting anything;
the handler shows the plan on a confirm page when the launch needs the visitor's click
(``auth.Caller.may_launch_without_click``) and carries it out on the POST from that page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .builds.manager import BuildManager
from .builds.request import BuildRequest
from .images.catalog import Catalog, ImageInfo, find_existing
from .sources import is_abbreviated_commit

__all__ = ["LaunchPlan", "plan_launch"]


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """What a launch would do.

    Attributes:
        repo: the normalized repository URL.
        ref: the ref as asked for.
        name: the environment name asked for (None: derived, or any for a viewer).
        builds: the visitor builds the image (may build) rather than starting an existing one.
        env_name: the environment's name (for a build, the name it would get).
        commit: the commit that would run (resolved now for a build; the image's otherwise);
            "" when a viewer has no image to start.
        image: the existing image that would start; None when it must be built first (or a
            viewer has none).
    """

    repo: str
    ref: str
    name: str | None
    builds: bool
    env_name: str
    commit: str
    image: ImageInfo | None

    def already_theirs(self, username: str) -> bool:
        """Whether the image exists and is ``username``'s own or a shared one."""
        image = self.image
        return image is not None and (image.shared or image.owner == username)

    def built_by(self, username: str) -> str:
        """Who built the image, in words ("you", "an admin (shared)", the owner's name), or
        "" when it is not built yet."""
        if self.image is None:
            return ""
        if self.image.shared:
            return "an admin (a shared environment)"
        return "you" if self.image.owner == username else self.image.owner


async def plan_launch(
    *,
    manager: BuildManager,
    catalog: Catalog,
    username: str,
    builds: bool,
    startable: Callable[[ImageInfo], bool],
    repo: str,
    ref: str,
    name: str | None,
) -> LaunchPlan:
    """Work out what launching (repo, ref[, name]) would run for ``username``; no side effect.

    Args:
        manager: previews the build of a visitor who may build (``BuildManager.preview``:
            the ref is resolved with git, the catalog asked for the image).
        catalog: lists the images a visitor who may only view could start.
        username: the visitor.
        builds: the visitor may build for themself.
        startable: whether the visitor may start an image (``Caller.may_start``).
        repo: the repository URL, already checked.
        ref: branch, tag, commit or ``HEAD``.
        name: the environment name asked for, or None.

    An abbreviated commit resolves by one rule for builders and viewers
    (``Previewer.resolve``: the remote's branch and tag tips, and the commits of the
    environments the visitor may see); none or several matches are a 422 for both.

    Returns:
        The plan; for a viewer with nothing to start, ``image`` is None and ``commit`` "".

    Raises:
        ServiceError: as ``BuildManager.preview`` (bad input, unreadable repository or ref).
    """
    if builds:
        preview = await manager.preview(BuildRequest(owner=username, repo=repo, ref=ref, name=name))
        return LaunchPlan(
            repo=preview.checked.repo,
            ref=ref,
            name=name,
            builds=True,
            env_name=preview.checked.name,
            commit=preview.commit,
            image=preview.existing,
        )
    images = [i for i in await catalog.list_images() if startable(i)]
    image = await _startable_image(manager, images, repo=repo, ref=ref, name=name, user=username)
    return LaunchPlan(
        repo=repo,
        ref=ref,
        name=name,
        builds=False,
        env_name=image.name if image is not None else (name or ""),
        commit=image.commit if image is not None else "",
        image=image,
    )


async def _startable_image(
    manager: BuildManager,
    images: list[ImageInfo],
    *,
    repo: str,
    ref: str,
    name: str | None,
    user: str,
) -> ImageInfo | None:
    """The image of ``images`` a viewer's launch of (repo, ref[, name]) starts, or None."""

    async def visible() -> list[ImageInfo]:
        return images

    if is_abbreviated_commit(ref):
        # the rule builders get too: a branch or tag tip of the remote, or a built commit
        ref = await manager.previewer.resolve(repo, ref, images=visible)
    return find_existing(
        images, repo=repo, ref=ref, name=name, username=user, identity=manager.repo_identity
    )
