"""The retention rule: which tags of one environment a prune keeps (pure, no I/O).

A prune keeps, per environment:

- the ``keep`` newest commit tags (newest by the ``built-at`` label, then the image's
  creation time, then the tag), ``keep = 0`` keeping every tag;
- the tag(s) ``latest`` points at (the same image: a rolled-back ``latest`` keeps its old tag);
- every tag whose image a container uses (running or stopped: Docker keeps such an image
  anyway, and a stopped server starts again from it);
- every tag naming the same image as a kept tag (removing it frees nothing, and in a
  registry deleting its manifest would take the kept tag with it).

Everything else goes. ``latest`` and the pin marker (:data:`~.reference.PINNED`) are never
candidates themselves: they name images that the rule keeps through their commit tags.
The same rule serves the admin endpoint, its dry run, the periodic prune and the benchmark.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

__all__ = ["Candidate", "RetentionPlan", "newest_first", "plan_retention"]

#: why a tag stays
KEPT_NEWEST = "newest"
KEPT_LATEST = "latest"
KEPT_IN_USE = "in use"
KEPT_ALL = "keep_tags is 0"
KEPT_SAME = "same image as a kept tag"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One commit tag of an environment, as the rule sees it.

    Attributes:
        tag: the tag (a commit tag; never ``latest`` or the pin marker).
        image_id: the engine's image id, or the registry's manifest digest.
        built_at: ISO 8601 UTC from the ``built-at`` label ("" if unknown).
        created: the image's creation time, sortable text or seconds ("" if unknown).
        uses: references a container may have been started with (``repo:tag``), besides
            ``image_id``.
    """

    tag: str
    image_id: str
    built_at: str = ""
    created: str = ""
    uses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What a prune does to one environment.

    Attributes:
        keep: ``{tag: reason}`` (reasons: ``newest``, ``latest``, ``in use``, ``keep_tags
            is 0``, ``same image as a kept tag``; the first that applies, in that order).
        remove: the tags that go, newest first.
    """

    keep: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)


def newest_first(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` newest first: by ``built_at``, then ``created``, then ``tag``."""
    return sorted(candidates, key=lambda c: (c.built_at, str(c.created), c.tag), reverse=True)


def plan_retention(
    candidates: Sequence[Candidate],
    *,
    keep: int,
    latest_id: str | None,
    in_use: Collection[str],
) -> RetentionPlan:
    """Apply the retention rule to one environment's commit tags.

    Args:
        candidates: the environment's commit tags (any order).
        keep: how many of the newest tags to keep; 0 keeps every tag.
        latest_id: image id (or digest) ``latest`` points at; None: no ``latest``.
        in_use: image ids and references that containers use.

    Returns:
        The plan; every candidate is either kept or removed.

    Raises:
        ValueError: ``keep`` is negative.
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    plan = RetentionPlan()
    for rank, c in enumerate(newest_first(candidates)):
        if c.image_id in in_use or any(u in in_use for u in c.uses):
            plan.keep[c.tag] = KEPT_IN_USE
        elif latest_id is not None and c.image_id == latest_id:
            plan.keep[c.tag] = KEPT_LATEST
        elif keep == 0:
            plan.keep[c.tag] = KEPT_ALL
        elif rank < keep:
            plan.keep[c.tag] = KEPT_NEWEST
        else:
            plan.remove.append(c.tag)
    kept_ids = {c.image_id for c in candidates if c.tag in plan.keep}
    for c in candidates:
        if c.tag in plan.remove and c.image_id in kept_ids:
            plan.remove.remove(c.tag)
            plan.keep[c.tag] = KEPT_SAME
    return plan
