"""Image names: owner escaping, user-chosen names, tags, and the image name template.

This module is pure (no I/O, no module-level mutable state). Its guarantees:

Owner escaping (:func:`escape_owner`, scheme version :data:`SCHEME_VERSION`)
    - The result is always one valid Docker repository path component
      (``[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*``) of at most :data:`MAX_OWNER_LENGTH`
      characters, or :class:`ValueError` is raised (empty username, lone surrogates, or a
      username too long for image names). It is never truncated.
    - It is **injective**: two different usernames never give the same owner. It is in fact
      reversible, :func:`unescape_owner` returns the username, and that is how injectivity is
      tested (``unescape_owner(escape_owner(u)) == u`` for every accepted ``u``).
    - It never equals a reserved owner (:data:`SHARED_OWNER`, the owner of shared images).
    - It is stable: the scheme never changes under the same :data:`SCHEME_VERSION`; images
      carry that version in a label so a later scheme can coexist with old images.

    The scheme has two forms:

    *simple form*
        every character in ``[a-z0-9]`` is kept, every other character ``c`` (uppercase,
        ``.``, ``-``, ``_``, non-ASCII, ...) becomes ``-{ord(c):x}-`` (lowercase hex, no
        padding). ``alice`` -> ``alice``, ``a.b`` -> ``a-2e-b``, ``a-b`` -> ``a-2d-b``.
        It decodes unambiguously: ``-`` only ever opens or closes an escape, and hex digits
        never contain ``-``.
    *fallback form*
        ``x--`` followed by the lowercase hex of the username's UTF-8 bytes, used when the
        simple form would start or end with ``-`` (not a valid component), or would be a
        reserved owner. ``Alice`` -> ``x--416c696365``, ``shared`` -> ``x--736861726564``.
        A simple form never starts with ``x--`` (after a leading ``x`` comes either a kept
        character or an escape whose first character is a hex digit), so the two forms
        never collide.

Docker's reference grammar
    one predicate per rule, in :mod:`repo2docker_service.images.reference`.

User-chosen image names (:func:`validate_name`, :func:`derive_name`)
    ``[a-z0-9]+(?:[._-][a-z0-9]+)*``, 1 to 63 characters. :func:`derive_name` always returns
    a name that :func:`validate_name` accepts.

Image references (:class:`ImageNamer`)
    Every reference it returns is a valid Docker reference, or it raises :class:`ValueError`;
    a template, registry or prefix that can never give a valid reference fails when the
    namer is created.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInput
from .reference import (
    PATH_COMPONENT_PATTERN,
    is_registry_domain,
    is_valid_path_component,
    is_valid_reference,
    is_valid_repository,
    is_valid_tag,
    registry_of,
    split_tag,
)

#: Version of the owner escaping scheme; recorded in a label on every image.
SCHEME_VERSION = "1"

#: Owner of shared images. No username escapes to it.
SHARED_OWNER = "shared"

#: Owner part of the index repository (:meth:`ImageNamer.index_repository`): not a form
#: :func:`escape_owner` produces ("-i" opens no escape).
INDEX_OWNER = "x-index"

#: Name part of the index repository: ``__`` is a valid path separator that no
#: environment name (:data:`NAME_RE`) has.
INDEX_NAME = "service__index"

#: Owners that :func:`escape_owner` never produces.
RESERVED_OWNERS: frozenset[str] = frozenset({SHARED_OWNER})

#: Longest owner part :func:`escape_owner` returns.
MAX_OWNER_LENGTH = 128

#: Longest user-chosen image name.
MAX_NAME_LENGTH = 63

#: Default ``image_name_template``.
DEFAULT_TEMPLATE = "{registry}{prefix}{owner}/{name}:{tag}"

#: Name used by :func:`derive_name` when nothing usable is left of the URL.
FALLBACK_NAME = "env"

_KEPT_CHARACTERS = frozenset(string.ascii_lowercase + string.digits)
_FALLBACK_MARKER = "x--"

_NAME = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"

_SIMPLE_TOKEN_RE = re.compile(r"[a-z0-9]|-([0-9a-f]+)-")
_SIMPLE_FORM_RE = re.compile(r"(?:[a-z0-9]|-[0-9a-f]+-)+")
_LOWER_HEX_RE = re.compile(r"(?:[0-9a-f]{2})+")
_COMMIT_RE = re.compile(r"[0-9a-fA-F]{12,64}")

#: Image names users choose (use with ``fullmatch``; length is checked separately).
NAME_RE = re.compile(_NAME)

_NAME_RULE = "name must be 1-63 characters: lowercase letters, digits, and . _ - between them"
_TEMPLATE_FIELDS = frozenset({"registry", "prefix", "owner", "name", "tag"})
_TAG_SUFFIX = ":{tag}"


# ---------------------------------------------------------------------------
# owner escaping


def _simple_form(username: str) -> str:
    return "".join(c if c in _KEPT_CHARACTERS else f"-{ord(c):x}-" for c in username)


def escape_owner(username: str) -> str:
    """Escape a JupyterHub username into the owner part of image names.

    See the module docstring for the scheme and its guarantees.

    Args:
        username: the JupyterHub username, any non-empty Unicode text.

    Returns:
        A valid Docker repository path component, at most :data:`MAX_OWNER_LENGTH`
        characters, never a member of :data:`RESERVED_OWNERS`.

    Raises:
        TypeError: ``username`` is not a string.
        ValueError: ``username`` is empty, contains lone surrogates (not encodable text), or
            is too long for image names.
    """
    if not isinstance(username, str):
        raise TypeError(f"username must be a str, not {type(username).__name__}")
    if not username:
        raise ValueError("username must not be empty")
    try:
        utf8 = username.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("username is not valid Unicode text (lone surrogate)") from None
    slug = _simple_form(username)
    if slug.startswith("-") or slug.endswith("-") or slug in RESERVED_OWNERS:
        slug = _FALLBACK_MARKER + utf8.hex()
    if len(slug) > MAX_OWNER_LENGTH:
        raise ValueError(
            f"username is too long for image names: it escapes to {len(slug)} characters,"
            f" at most {MAX_OWNER_LENGTH} are allowed"
        )
    return slug


def unescape_owner(slug: str) -> str:
    """Return the username that :func:`escape_owner` turned into ``slug``.

    Args:
        slug: an owner part produced by :func:`escape_owner`.

    Returns:
        The username ``u`` with ``escape_owner(u) == slug``.

    Raises:
        ValueError: ``escape_owner`` never produces ``slug`` (this includes reserved owners
            such as :data:`SHARED_OWNER`, malformed escapes, non-canonical forms).
    """
    if not isinstance(slug, str) or not slug or len(slug) > MAX_OWNER_LENGTH:
        raise ValueError(f"{slug!r} is not an escaped username")
    if slug.startswith(_FALLBACK_MARKER):
        encoded = slug[len(_FALLBACK_MARKER) :]
        if not _LOWER_HEX_RE.fullmatch(encoded):
            raise ValueError(f"{slug!r} is not an escaped username")
        try:
            username = bytes.fromhex(encoded).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{slug!r} is not an escaped username") from None
    else:
        if not _SIMPLE_FORM_RE.fullmatch(slug):
            raise ValueError(f"{slug!r} is not an escaped username")
        chars = []
        for match in _SIMPLE_TOKEN_RE.finditer(slug):
            code = match.group(1)
            if code is None:
                chars.append(match.group(0))
                continue
            # at most 0x10ffff: 6 hex digits; anything longer is not a code point
            if len(code) > 6 or int(code, 16) > 0x10FFFF:
                raise ValueError(f"{slug!r} is not an escaped username")
            chars.append(chr(int(code, 16)))
        username = "".join(chars)
    # only canonical forms are accepted (no padding, no escaped [a-z0-9], right form)
    try:
        canonical = escape_owner(username)
    except ValueError:
        raise ValueError(f"{slug!r} is not an escaped username") from None
    if canonical != slug:
        raise ValueError(f"{slug!r} is not an escaped username")
    return username


# ---------------------------------------------------------------------------
# user-chosen names, tags


def validate_name(name: str) -> str:
    """Check an image name chosen by a user.

    Args:
        name: the requested name.

    Returns:
        ``name`` unchanged.

    Raises:
        InvalidInput: ``name`` is not 1-63 lowercase letters, digits and single ``.``, ``_``
            or ``-`` between them.
    """
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_NAME_LENGTH
        or NAME_RE.fullmatch(name) is None
    ):
        shown = repr(name[:80] + "..." if len(name) > 80 else name) if isinstance(name, str) else ""
        raise InvalidInput(f"invalid name {shown}: {_NAME_RULE}" if shown else _NAME_RULE)
    return name


def derive_name(repo_url: str) -> str:
    """Suggest an image name from a repository URL.

    Takes the last path component (percent-decoded, without trailing slashes and ``.git``),
    folds accents (``été`` -> ``ete``), lowercases, turns runs of other characters into
    ``-``, collapses runs of separators, strips separators at the ends and truncates to 63.

    Args:
        repo_url: the repository URL (not validated here; scp-like ``host:path`` works too).

    Returns:
        A name :func:`validate_name` accepts; :data:`FALLBACK_NAME` if nothing usable is left.
    """
    path = urlsplit(repo_url).path if "://" in repo_url else repo_url
    path = unquote(path).rstrip("/")
    last = re.split(r"[/:\\]", path)[-1]
    if last.lower().endswith(".git"):
        last = last[: -len(".git")]
    folded = "".join(c for c in unicodedata.normalize("NFKD", last) if not unicodedata.combining(c))
    name = re.sub(r"[^a-z0-9._-]+", "-", folded.lower())
    name = re.sub(r"[._-]{2,}", "-", name).strip("._-")
    name = name[:MAX_NAME_LENGTH].rstrip("._-")
    return name or FALLBACK_NAME


def commit_tag(commit: str) -> str:
    """Return the image tag for a commit: its first 12 hex characters, lowercase.

    Args:
        commit: a commit SHA (12 to 64 hex characters; normally the full 40).

    Returns:
        The 12-character tag.

    Raises:
        ValueError: ``commit`` is not a hex string of at least 12 characters.
    """
    if not isinstance(commit, str) or _COMMIT_RE.fullmatch(commit) is None:
        raise ValueError(f"not a commit SHA: {commit!r}")
    return commit[:12].lower()


# ---------------------------------------------------------------------------
# image references


@dataclass(frozen=True)
class ImageNamer:
    """Builds image references from the ``image_name_template``.

    Attributes:
        template: format string with the fields ``{registry}``, ``{prefix}``, ``{owner}``,
            ``{name}`` and ``{tag}``; ``{owner}`` and ``{name}`` appear exactly once, and it
            ends with ``:{tag}``.
        registry: registry ``host[:port]`` without scheme or trailing slash; empty for the
            local engine only. ``{registry}`` expands to ``host[:port]/`` (or nothing).
        prefix: text put before the owner, e.g. ``"r2d-"`` or ``"envs/"``.

    Raises:
        ValueError: (on creation) the template has unknown or missing fields, the registry is
            not ``host[:port]`` that Docker reads as a registry, or the template and prefix
            cannot give a valid reference.
    """

    template: str = DEFAULT_TEMPLATE
    registry: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.registry and not is_registry_domain(self.registry):
            raise ValueError(
                f"registry {self.registry!r} must be host[:port] (with a '.' or a port, or"
                " 'localhost'), without scheme or trailing slash"
            )
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as e:
            raise ValueError(f"image name template {self.template!r}: {e}") from None
        names = [f for _, f, _, _ in parsed if f is not None]
        unknown = {f for f in names if f not in _TEMPLATE_FIELDS}
        if unknown:
            raise ValueError(
                f"image name template {self.template!r} has unknown fields {sorted(unknown)};"
                f" allowed: {', '.join('{' + f + '}' for f in sorted(_TEMPLATE_FIELDS))}"
            )
        if any(spec or conv for _, f, spec, conv in parsed if f is not None):
            raise ValueError(
                f"image name template {self.template!r}: format specs are not supported"
            )
        for required in ("owner", "name", "tag"):
            if names.count(required) != 1:
                raise ValueError(
                    f"image name template {self.template!r} must contain {{{required}}}"
                    " exactly once"
                )
        if not self.template.endswith(_TAG_SUFFIX):
            raise ValueError(f"image name template {self.template!r} must end with ':{{tag}}'")
        try:
            self.reference(owner_slug="x", name="x", tag="x")
        except ValueError as e:
            raise ValueError(f"{e} (check the image name template, prefix and registry)") from None

    @property
    def _repository_template(self) -> str:
        return self.template[: -len(_TAG_SUFFIX)]

    def _expand(self, *, owner_slug: str, name: str) -> str:
        if not is_valid_path_component(owner_slug):
            raise ValueError(f"invalid owner {owner_slug!r}: not a Docker path component")
        if not 1 <= len(name) <= MAX_NAME_LENGTH or NAME_RE.fullmatch(name) is None:
            raise ValueError(f"invalid image name {name!r}: {_NAME_RULE}")
        return self._repository_template.format(
            registry=f"{self.registry}/" if self.registry else "",
            prefix=self.prefix,
            owner=owner_slug,
            name=name,
        )

    def repository(self, *, owner_slug: str, name: str) -> str:
        """Return the repository (reference without tag) for an owner and image name.

        Args:
            owner_slug: owner part, from :func:`escape_owner` or :data:`SHARED_OWNER`.
            name: image name (see :func:`validate_name`).

        Returns:
            e.g. ``"registry.example.org/r2d-alice/env"``.

        Raises:
            ValueError: the inputs or the result are not valid (e.g. longer than 255), or
                Docker would read a different registry from the result than ``registry``.
        """
        repository = self._expand(owner_slug=owner_slug, name=name)
        if not is_valid_repository(repository):
            raise ValueError(f"{repository!r} is not a valid image repository name")
        registry = registry_of(repository)
        if registry != (self.registry or None):
            raise ValueError(
                f"{repository!r} is not a valid image reference here: Docker would read"
                f" {registry or 'Docker Hub'!r} as its registry instead of"
                f" {self.registry or 'none'!r}"
            )
        return repository

    def reference(self, *, owner_slug: str, name: str, tag: str) -> str:
        """Return the full image reference for an owner, image name and tag.

        Args:
            owner_slug: owner part, from :func:`escape_owner` or :data:`SHARED_OWNER`.
            name: image name (see :func:`validate_name`).
            tag: image tag, e.g. :func:`commit_tag` or ``"latest"``.

        Returns:
            e.g. ``"registry.example.org/r2d-alice/env:0123456789ab"``.

        Raises:
            ValueError: the inputs or the result are not a valid reference.
        """
        if not is_valid_tag(tag):
            raise ValueError(f"invalid tag {tag!r}")
        reference = f"{self.repository(owner_slug=owner_slug, name=name)}:{tag}"
        if not is_valid_reference(reference):
            raise ValueError(f"{reference!r} is not a valid image reference")
        return reference

    def index_repository(self) -> str:
        """The repository of the service's index artifact (see ``images/registry/index.py``).

        The template with owner :data:`INDEX_OWNER` and name :data:`INDEX_NAME`: under the
        prefix like every environment (so the same registry permissions cover it), and
        never an environment's repository, since no environment name has ``__``
        (:meth:`parse` returns None for it).

        Raises:
            ValueError: the template gives no valid repository for it.
        """
        repository = self._repository_template.format(
            registry=f"{self.registry}/" if self.registry else "",
            prefix=self.prefix,
            owner=INDEX_OWNER,
            name=INDEX_NAME,
        )
        if not is_valid_repository(repository) or registry_of(repository) != (
            self.registry or None
        ):
            raise ValueError(f"{repository!r} is not a valid repository for the index")
        return repository

    @cached_property
    def _parse_re(self) -> re.Pattern[str]:
        parts = []
        for literal, name, _, _ in string.Formatter().parse(self._repository_template):
            parts.append(re.escape(literal))
            if name == "registry":
                parts.append(re.escape(f"{self.registry}/" if self.registry else ""))
            elif name == "prefix":
                parts.append(re.escape(self.prefix))
            elif name == "owner":
                parts.append(rf"(?P<owner>{PATH_COMPONENT_PATTERN})")
            elif name == "name":
                parts.append(rf"(?P<name>{_NAME})")
        return re.compile("".join(parts))

    def parse(self, repository: str) -> tuple[str, str] | None:
        """Reverse :meth:`repository`: find the owner part and image name in a repository.

        Used when reading images back from Docker or a registry. A trailing ``:tag`` is
        ignored. The split is unambiguous when the template separates ``{owner}`` and
        ``{name}`` with ``/`` (as the default does). Ownership decisions use image labels,
        not this.

        Args:
            repository: a repository name (or reference) as Docker or a registry lists it.

        Returns:
            ``(owner_slug, name)``, or None if ``repository`` is not shaped like this namer's
            names (other images on the same engine).
        """
        if not isinstance(repository, str) or not is_valid_reference(repository):
            return None
        name_part, _ = split_tag(repository)
        match = self._parse_re.fullmatch(name_part)
        if match is None or len(match["name"]) > MAX_NAME_LENGTH:
            return None
        return match["owner"], match["name"]
