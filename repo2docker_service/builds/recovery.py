"""Records of builds an earlier run of the service left behind (see ``BuildManager.recover``)."""

from __future__ import annotations

from ..images.labels import ImageLabels
from ..images.naming import ImageNamer
from .executors import LostBuild
from .model import Build, BuildState

__all__ = ["LOST_ERROR", "lost_record"]

#: the error of a ``lost`` build
LOST_ERROR = (
    "the service stopped while this build was running; it was stopped. Start the build again."
)


def lost_record(lost: LostBuild, namer: ImageNamer) -> Build | None:
    """A ``lost`` build record for a build a dead earlier run of the service left.

    Args:
        lost: what the executor found (the image it was building and its labels).
        namer: reads the owner part and name from the image reference.

    Returns:
        The ended record, or None when the labels or the reference are not the service's.
    """
    parsed = ImageLabels.parse(lost.labels)
    where = namer.parse(lost.image)
    if parsed is None or where is None or not parsed.build_id:
        return None
    owner_slug, name = where
    build = Build(
        id=parsed.build_id,
        owner=parsed.owner,
        owner_slug=owner_slug,
        shared=parsed.shared,
        name=name,
        display_name=parsed.display_name,
        repo=parsed.repo,
        ref=parsed.ref,
        commit=parsed.commit,
        image=lost.image,
        latest_image=namer.reference(owner_slug=owner_slug, name=name, tag="latest"),
        hints=dict(parsed.hints),
    )
    build.set_state(BuildState.LOST, error=LOST_ERROR)
    return build
