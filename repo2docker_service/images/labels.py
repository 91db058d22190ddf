"""The labels on every image the service builds: names and one typed record.

The labels are the catalog: ownership, the repository, the ref and the commit of an image
are read back from them (never from the image name alone). They are written and parsed only
here: :meth:`ImageLabels.to_labels` writes, :meth:`ImageLabels.parse` reads. Credentials are
never part of a build and so never of labels.

Label keys (prefix ``repo2docker-service.``):

======================  ==============================================================
``owner``               JupyterHub username of the owner; ``""`` for shared images
``shared``              ``"true"`` or ``"false"``
``name``                the environment name (the image name's last path part)
``display-name``        free text for the UI
``repo``                the repository URL as validated (never with credentials)
``ref``                 the ref as the user asked for it (branch, tag, ``HEAD``, commit)
``commit``              the full 40-hex commit that was built
``built-at``            ISO 8601 UTC time the build started
``build-id``            the id of the build that made the image
``scheme``              the owner-escaping scheme version (:data:`naming.SCHEME_VERSION`)
``hint.<key>``          spawner hints: ``hint.cpu``, ``hint.memory``, ``hint.profile``
======================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .naming import SCHEME_VERSION, SHARED_OWNER, escape_owner

__all__ = [
    "HINT_KEYS",
    "LABEL_BUILD_ID",
    "LABEL_BUILT_AT",
    "LABEL_COMMIT",
    "LABEL_DISPLAY_NAME",
    "LABEL_HINT_PREFIX",
    "LABEL_NAME",
    "LABEL_OWNER",
    "LABEL_PREFIX",
    "LABEL_REF",
    "LABEL_REPO",
    "LABEL_SCHEME",
    "LABEL_SHARED",
    "ImageLabels",
]

LABEL_PREFIX = "repo2docker-service."
LABEL_OWNER = LABEL_PREFIX + "owner"
LABEL_SHARED = LABEL_PREFIX + "shared"
LABEL_NAME = LABEL_PREFIX + "name"
LABEL_DISPLAY_NAME = LABEL_PREFIX + "display-name"
LABEL_REPO = LABEL_PREFIX + "repo"
LABEL_REF = LABEL_PREFIX + "ref"
LABEL_COMMIT = LABEL_PREFIX + "commit"
LABEL_HINT_PREFIX = LABEL_PREFIX + "hint."
LABEL_BUILT_AT = LABEL_PREFIX + "built-at"
LABEL_BUILD_ID = LABEL_PREFIX + "build-id"
LABEL_SCHEME = LABEL_PREFIX + "scheme"

#: Hint keys a build request may carry (each becomes a ``hint.<key>`` label).
HINT_KEYS: tuple[str, ...] = ("profile", "cpu", "memory")


@dataclass(frozen=True, slots=True)
class ImageLabels:
    """What the labels of one of the service's images say.

    Attributes:
        owner: JupyterHub username of the owner; ``""`` for shared images.
        shared: whether the image is shared.
        name: the environment name.
        display_name: free text for the UI (the name when the label is empty).
        repo: the git repository URL.
        ref: the requested ref.
        commit: the full commit SHA built.
        built_at: ISO 8601 UTC time the build started (``""`` if unknown).
        build_id: id of the build that made it (``""`` if unknown).
        scheme: owner-escaping scheme version (``""`` on images older than the label).
        hints: spawner hints, ``{key: value}`` with keys from :data:`HINT_KEYS`.
    """

    owner: str
    shared: bool
    name: str
    display_name: str = ""
    repo: str = ""
    ref: str = ""
    commit: str = ""
    built_at: str = ""
    build_id: str = ""
    scheme: str = SCHEME_VERSION
    hints: Mapping[str, str] = field(default_factory=dict)

    def to_labels(self) -> dict[str, str]:
        """The labels to write on the image.

        Returns:
            ``{label key: value}``; the owner label is ``""`` when :attr:`shared`.
        """
        labels = {
            LABEL_OWNER: "" if self.shared else self.owner,
            LABEL_SHARED: "true" if self.shared else "false",
            LABEL_NAME: self.name,
            LABEL_DISPLAY_NAME: self.display_name,
            LABEL_REPO: self.repo,
            LABEL_REF: self.ref,
            LABEL_COMMIT: self.commit,
            LABEL_BUILT_AT: self.built_at,
            LABEL_BUILD_ID: self.build_id,
            LABEL_SCHEME: self.scheme,
        }
        for key, value in sorted(self.hints.items()):
            labels[LABEL_HINT_PREFIX + key] = value
        return labels

    @classmethod
    def parse(cls, labels: Mapping[str, str] | None) -> ImageLabels | None:
        """Read the service's labels from an image's labels (``Config.Labels``).

        Args:
            labels: the image's labels; None or ``{}`` for an image without labels.

        Returns:
            None if the image was not built by this service (no owner label or an empty
            name label), else the record.
        """
        if not labels or LABEL_OWNER not in labels or not labels.get(LABEL_NAME):
            return None
        name = labels[LABEL_NAME]
        return cls(
            owner=labels.get(LABEL_OWNER, ""),
            shared=labels.get(LABEL_SHARED, "false") == "true",
            name=name,
            display_name=labels.get(LABEL_DISPLAY_NAME) or name,
            repo=labels.get(LABEL_REPO, ""),
            ref=labels.get(LABEL_REF, ""),
            commit=labels.get(LABEL_COMMIT, ""),
            built_at=labels.get(LABEL_BUILT_AT, ""),
            build_id=labels.get(LABEL_BUILD_ID, ""),
            scheme=labels.get(LABEL_SCHEME, ""),
            hints={
                key[len(LABEL_HINT_PREFIX) :]: value
                for key, value in labels.items()
                if key.startswith(LABEL_HINT_PREFIX)
            },
        )

    def owner_slug(self) -> str | None:
        """The owner part of the image name these labels call for.

        Returns:
            :data:`naming.SHARED_OWNER` for shared images, else ``escape_owner(owner)``;
            None when the owner label cannot be escaped (then no image name can match, and
            catalogs ignore the image).
        """
        if self.shared:
            return SHARED_OWNER
        try:
            return escape_owner(self.owner)
        except ValueError:
            return None
