"""A build request: what a caller asks for, its validation, and the manager's answer.

:func:`check_request` turns a :class:`BuildRequest` into a :class:`CheckedRequest` (every
field validated, names and the ``latest`` reference made) before anything is resolved or
queued; :class:`SubmitResult` is what ``BuildManager.submit`` answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInput
from ..images.labels import HINT_KEYS
from ..images.naming import SHARED_OWNER, ImageNamer, derive_name, escape_owner
from ..images.naming import validate_name as validate_image_name
from ..limits import profile_slug
from ..sizes import SizeError, normalize_memory
from ..sources import validate_ref, validate_repo_url
from .model import Build

if TYPE_CHECKING:
    from ..images.catalog import ImageInfo
    from ..sources import GitCredentials

__all__ = [
    "BuildRequest",
    "CheckedRequest",
    "Preview",
    "Resolver",
    "SubmitResult",
    "check_profile",
    "check_request",
    "validate_display_name",
    "validate_hints",
]

_CPU_RE = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3})?$")
_PROFILE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")
_MAX_CPU = 256
_MAX_DISPLAY_NAME = 200


def validate_hints(hints: Mapping[str, Any] | None) -> dict[str, str]:
    """Check spawner hints and return them as strings.

    Args:
        hints: a mapping with any of the keys ``profile`` (a short slug: lowercase letters,
            digits, ``-`` and ``_``, at most 63 characters), ``cpu`` (a positive number of
            CPUs, at most 256, as a string or a number) and ``memory`` (a size by
            :mod:`repo2docker_service.sizes`: ``512M``, ``16GB``, ``2 GiB``, ``1.5G``, or
            a whole number of bytes of at least 64M). None or empty values, and a memory
            of 0, mean "no hint" and are dropped.

    Returns:
        The hints as a ``dict[str, str]``, memory in canonical form (e.g.
        ``{"cpu": "2", "memory": "4G"}`` for ``{"cpu": 2, "memory": "4 GiB"}``).

    Raises:
        InvalidInput: for an unknown key or a malformed value.
    """
    if hints is None:
        return {}
    if not isinstance(hints, Mapping):
        raise InvalidInput("hints must be an object with profile, cpu and/or memory")
    out: dict[str, str] = {}
    for key, raw in hints.items():
        if key not in HINT_KEYS:
            raise InvalidInput(f"unknown hint {str(key)[:40]!r}; allowed: {', '.join(HINT_KEYS)}")
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidInput(f"hint {key} must be a string")
        value = str(raw).strip() if isinstance(raw, str) else _number_to_str(raw)
        if key == "cpu":
            if not _CPU_RE.match(value) or not 0 < float(value) <= _MAX_CPU:
                raise InvalidInput(f"hint cpu must be a number of CPUs > 0 and <= {_MAX_CPU}")
        elif key == "memory":
            try:
                memory = normalize_memory(value, what="hint memory")
            except SizeError as e:
                raise InvalidInput(str(e)) from None
            if memory is None:
                continue
            value = memory
        elif not _PROFILE_RE.match(value):
            raise InvalidInput(
                "hint profile must be a short slug (a-z, 0-9, '-', '_'; at most 63 characters)"
            )
        out[key] = value
    return out


def check_profile(profile: str | None, machine_profiles: Sequence[str]) -> None:
    """Refuse a ``profile`` hint that names none of the configured machine profiles.

    Args:
        profile: the hint (already checked by :func:`validate_hints`), or None.
        machine_profiles: the slugs of ``machine_profiles`` (empty: none configured).

    Raises:
        InvalidInput: (400) the message lists the valid profiles, or says there are none.
    """
    if profile is None or profile_slug(profile) in machine_profiles:
        return
    shown = profile[:63]
    if not machine_profiles:
        raise InvalidInput(
            f"profile {shown!r} is not available: no machine profiles are configured here;"
            " leave profile out (cpu and memory set the limits)"
        )
    raise InvalidInput(
        f"profile {shown!r} is not one of the machine profiles: {', '.join(machine_profiles)}"
    )


def _number_to_str(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput("hint must be a finite number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validate_display_name(display_name: str | None, *, default: str) -> str:
    """Check a display name (free text shown in the UI and stored in a label).

    Args:
        display_name: what the user gave, or None.
        default: used when ``display_name`` is None or blank (normally the image name).

    Returns:
        The display name, stripped.

    Raises:
        InvalidInput: when it is not a string, too long (> 200) or has control characters.
    """
    if display_name is None:
        return default
    if not isinstance(display_name, str):
        raise InvalidInput("display_name must be a string")
    value = display_name.strip()
    if not value:
        return default
    if len(value) > _MAX_DISPLAY_NAME:
        raise InvalidInput(f"display_name is longer than {_MAX_DISPLAY_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput("display_name must not contain control characters")
    return value


@dataclass
class BuildRequest:
    """What a caller asks for; the manager validates it (see ``BuildManager.submit``).

    Attributes:
        owner: the JupyterHub username the build is for (and who may see/cancel it).
        repo: git repository URL.
        ref: branch, tag, commit or ``HEAD``.
        name: environment name; derived from the repo URL when None.
        display_name: free text for the UI; the name when None.
        force: build even if an image for that commit exists.
        shared: build into the shared namespace (the caller must be an admin; the
            handler checks that).
        hints: spawner hints ``profile``/``cpu``/``memory`` (see :func:`validate_hints`).
        credentials: for private repositories; held in memory for the build only and
            never shown (excluded from repr).
    """

    owner: str
    repo: str
    ref: str = "HEAD"
    name: str | None = None
    display_name: str | None = None
    force: bool = False
    shared: bool = False
    hints: dict[str, str] = field(default_factory=dict)
    credentials: GitCredentials | None = field(default=None, repr=False, compare=False)


class Resolver(Protocol):
    """``resolve_ref``'s signature (see :func:`repo2docker_service.sources.resolve_ref`)."""

    def __call__(
        self,
        repo: str,
        ref: str,
        *,
        credentials: GitCredentials | None = None,
        timeout: float = 30,
        known_commits: Iterable[str] = (),
    ) -> Awaitable[str]: ...


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A request whose fields passed validation (see :func:`check_request`).

    Attributes:
        owner: the JupyterHub username the build is for.
        owner_slug: the owner part of image names (``shared`` for shared images).
        shared: build into the shared namespace.
        name: the environment name.
        display_name: free text for the UI.
        repo: the normalized repository URL.
        ref: the ref as asked for.
        hints: validated spawner hints.
        latest_image: the ``latest`` reference of ``(owner_slug, name)``.
    """

    owner: str
    owner_slug: str
    shared: bool
    name: str
    display_name: str
    repo: str
    ref: str
    hints: dict[str, str]
    latest_image: str

    def new_build(
        self,
        *,
        commit: str,
        image: str,
        force: bool,
        log_limit_bytes: int,
        credentials: GitCredentials | None,
    ) -> Build:
        """A new ``queued`` build of this request at ``commit`` into ``image``."""
        return Build(
            owner=self.owner,
            owner_slug=self.owner_slug,
            shared=self.shared,
            name=self.name,
            display_name=self.display_name,
            repo=self.repo,
            ref=self.ref,
            commit=commit,
            image=image,
            latest_image=self.latest_image,
            hints=dict(self.hints),
            force=force,
            log_limit_bytes=log_limit_bytes,
            credentials=credentials,
        )


def check_request(
    req: BuildRequest,
    *,
    namer: ImageNamer,
    allowed_schemes: Iterable[str],
    allowed_hosts: Iterable[str],
    machine_profiles: Sequence[str] = (),
) -> CheckedRequest:
    """Validate every field of ``req`` (no I/O: the ref is resolved later).

    Args:
        req: the request.
        namer: makes the ``latest`` reference.
        allowed_schemes: URL schemes accepted for repositories.
        allowed_hosts: host names accepted for repositories (empty: any host).
        machine_profiles: slugs of the configured machine profiles; a ``profile`` hint
            must name one of them (see :func:`check_profile`).

    Returns:
        The checked request.

    Raises:
        InvalidInput: malformed repo, ref, name, display name or hints, an unknown
            profile, an owner that cannot be part of an image name, or a name the naming
            template cannot make.
    """
    repo = validate_repo_url(req.repo, allowed_schemes=allowed_schemes, allowed_hosts=allowed_hosts)
    ref = validate_ref(req.ref or "HEAD")
    name = validate_image_name(req.name) if req.name else derive_name(repo)
    display_name = validate_display_name(req.display_name, default=name)
    hints = validate_hints(req.hints)
    check_profile(hints.get("profile"), machine_profiles)
    if req.shared:
        owner_slug = SHARED_OWNER
    else:
        try:
            owner_slug = escape_owner(req.owner)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"cannot build for this user: {e}") from None
    try:
        latest_image = namer.reference(owner_slug=owner_slug, name=name, tag="latest")
    except ValueError as e:
        raise InvalidInput(f"image name not possible: {e}") from None
    return CheckedRequest(
        owner=req.owner,
        owner_slug=owner_slug,
        shared=req.shared,
        name=name,
        display_name=display_name,
        repo=repo,
        ref=ref,
        hints=hints,
        latest_image=latest_image,
    )


@dataclass
class SubmitResult:
    """What ``BuildManager.submit`` did.

    Attributes:
        build: the new or joined build; None when the image already existed.
        image: the existing image (only when ``cached``).
        cached: the image for that commit already existed; nothing was built.
        joined: an identical build (same image reference) was already queued or running;
            ``build`` is that build.
    """

    build: Build | None
    image: ImageInfo | None
    cached: bool = False
    joined: bool = False

    def to_dict(self) -> dict[str, Any]:
        """``{"cached": bool, "joined": bool, "build": Build.to_dict() | None,
        "image": ImageInfo.to_dict() | None}``."""
        return {
            "cached": self.cached,
            "joined": self.joined,
            "build": self.build.to_dict() if self.build else None,
            "image": self.image.to_dict() if self.image else None,
        }


@dataclass(frozen=True, slots=True)
class Preview:
    """What a request would build (``BuildManager.preview``); nothing is queued.

    Attributes:
        checked: the validated request (name, owner part, ``latest`` reference).
        commit: the full commit the ref resolves to now.
        image: the commit-tagged reference the build would make.
        existing: that image when it already exists (a submit would be a cache hit).
    """

    checked: CheckedRequest
    commit: str
    image: str
    existing: ImageInfo | None
