"""BinderHub's build protocol, as pure functions: provider specs in, BinderHub events out.

``GET build/<provider>/<spec>`` (:mod:`.handlers.binder`) answers the way BinderHub's
``BuildHandler`` does (binderhub/builder.py), so that ``@jupyterhub/binderhub-client`` and
jupyterhub-fancy-profiles' "Build image" work unchanged against this service:

- providers (binderhub/repoproviders.py): ``gh`` (``<org>/<repo>/<ref>``, the ref may contain
  ``/``), ``gl`` (``<URL-quoted project path, subgroups included>/<ref>``) and ``git``
  (``<URL-quoted repository URL>/<URL-quoted ref>``). :func:`parse_spec` reads the spec as
  it was sent, still percent-encoded (:func:`split_build_path`): decoding first would turn
  ``group%2Fproject`` into two segments.
- events: ``data: {"phase", "message", ...}`` messages (no ``event:`` field: EventSource's
  ``onmessage`` sees only unnamed events); every message ends in one newline. Phases:
  ``waiting`` (queued, with the position), ``fetching``/``building``/``pushing`` (one per
  log line, from repo2docker's own step), ``built`` and ``ready`` (both with ``imageName``;
  ``ready`` also with ``binder_ref_url``, ``binder_request``, ``binder_persistent_request``
  and ``binder_launch_host``, the fields BinderHub's launch ``ready`` carries), ``failed``
  (the reason; ``status_code`` when the request itself was refused, as BinderHub's
  ``send_error`` does). A cache hit is a single ``ready`` with BinderHub's message.

:func:`binder_events` maps one of our build events (:class:`~.builds.model.Event`) to the
BinderHub events it stands for; the handler streams them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from .builds.model import BuildState, Event, EventType
from .errors import InvalidInput

__all__ = [
    "FOUND_MESSAGE",
    "PROVIDERS",
    "BinderSpec",
    "binder_events",
    "failed_event",
    "parse_spec",
    "ready_event",
    "resume_after",
    "split_build_path",
    "sse",
    "wants_build_only",
]

#: the providers this service speaks (BinderHub's prefixes)
PROVIDERS = ("gh", "gl", "git")
#: BinderHub's ``ready`` message for an image that already exists (build_only mode)
FOUND_MESSAGE = "Done! Found built image"
#: BinderHub's ``ready`` message after a build (build_only mode)
BUILT_MESSAGE = "Done! Image built"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_LOG_PHASES = ("fetching", "building", "pushing")


@dataclass(frozen=True, slots=True)
class BinderSpec:
    """What a ``build/<provider>/<spec>`` request asks for.

    Attributes:
        provider: ``gh``, ``gl`` or ``git``.
        spec: the spec as sent (percent-encoded, no trailing ``/``).
        repo: the repository URL to build.
        ref: the branch, tag or commit asked for (decoded).
        pinned_prefix: the spec without its ref, as BinderHub writes it before the commit in
            ``binder_persistent_request``.
        browse_url: the repository's web page (``<browse_url>/tree/<commit>`` is
            ``binder_ref_url``), or "" when the host has none (``git``: the URL itself).
    """

    provider: str
    spec: str
    repo: str
    ref: str
    pinned_prefix: str
    browse_url: str

    @property
    def request(self) -> str:
        """``binder_request``: ``v2/<provider>/<spec>``."""
        return f"v2/{self.provider}/{self.spec}"

    def persistent_request(self, commit: str) -> str:
        """``binder_persistent_request``: the request with the ref resolved to ``commit``."""
        return f"v2/{self.provider}/{self.pinned_prefix}/{commit}"

    def ref_url(self, commit: str) -> str:
        """``binder_ref_url``: where the repository can be browsed at ``commit``."""
        return f"{self.browse_url}/tree/{commit}" if self.browse_url else self.repo


def split_build_path(path: str, prefixes: tuple[str, ...]) -> tuple[str, str]:
    """``(provider, raw spec)`` from a request path, still percent-encoded.

    Args:
        path: the request's path as sent (tornado's ``request.path``: not decoded).
        prefixes: the URL prefixes serving ``build/``, each ending in ``/``.

    Raises:
        InvalidInput: the path is not ``<prefix>build/<provider>/<spec>``.
    """
    for prefix in prefixes:
        head = f"{prefix}build/"
        if prefix and path.startswith(head):
            provider, _, spec = path[len(head) :].partition("/")
            return unquote(provider), spec.rstrip("/")
    raise InvalidInput("The build API's path is build/<provider>/<spec>")


def parse_spec(provider: str, spec: str, *, github_host: str, gitlab_host: str) -> BinderSpec:
    """The repository and ref a BinderHub spec names.

    Args:
        provider: ``gh``, ``gl`` or ``git``.
        spec: the raw spec (percent-encoded, as :func:`split_build_path` gives it).
        github_host: the ``gh`` host URL (``launch_git_host``), e.g. https://github.com.
        gitlab_host: the ``gl`` host URL (``binder_gitlab_host``), e.g. https://gitlab.com.

    Returns:
        A :class:`BinderSpec`. The repository URL is checked later, as every build request's
        (schemes, hosts, length): here only the spec's shape.

    Raises:
        InvalidInput: unknown provider, or a spec not shaped as the provider's (the message
        shows the expected shape).
    """
    if provider == "gh":
        return _github(spec, github_host)
    if provider == "gl":
        return _gitlab(spec, gitlab_host)
    if provider == "git":
        return _git(spec)
    raise InvalidInput(
        f"No provider found for prefix {provider[:40]!r}: this service builds from "
        f"{', '.join(PROVIDERS)} (GitHub-style, GitLab, any git URL)"
    )


def _is_name(segment: str) -> bool:
    """A path segment a git host accepts as an org, group or project name (never ``..``)."""
    return bool(_NAME_RE.fullmatch(segment)) and segment.strip(".") != ""


def _github(spec: str, host: str) -> BinderSpec:
    parts = spec.split("/", 2)
    if len(parts) != 3 or not parts[2]:
        raise InvalidInput(
            f'Spec is not of the form "<org>/<repo>/<ref>": {spec[:200]!r} '
            "(use HEAD for the default branch)"
        )
    org, name, ref = unquote(parts[0]), unquote(parts[1]), unquote(parts[2])
    name = name.removesuffix(".git")
    if not (_is_name(org) and _is_name(name)):
        raise InvalidInput(
            "In gh/<org>/<repo>/<ref>, org and repo are made of letters, digits, '.', '_' "
            "and '-' (at most 100 each)"
        )
    return BinderSpec(
        provider="gh",
        spec=spec,
        repo=f"{host}/{org}/{name}",
        ref=ref,
        pinned_prefix=f"{quote(org)}/{quote(name)}",
        browse_url=f"{host}/{org}/{name}",
    )


def _gitlab(spec: str, host: str) -> BinderSpec:
    quoted, _, raw_ref = spec.partition("/")
    namespace, ref = unquote(quoted), unquote(raw_ref)
    segments = namespace.split("/")
    if not ref or len(segments) < 2 or not all(_is_name(s) for s in segments):
        raise InvalidInput(
            f'Spec is not of the form "<URL-quoted group/project>/<ref>": {spec[:200]!r} '
            "(e.g. group%2Fsubgroup%2Fproject/HEAD)"
        )
    return BinderSpec(
        provider="gl",
        spec=spec,
        repo=f"{host}/{namespace}.git",
        ref=ref,
        pinned_prefix=quoted,
        browse_url=f"{host}/{namespace}",
    )


def _git(spec: str) -> BinderSpec:
    quoted, _, raw_ref = spec.partition("/")
    repo, ref = unquote(quoted), unquote(raw_ref)
    if not repo or not ref:
        raise InvalidInput(
            f'Spec is not of the form "<URL-quoted repository URL>/<URL-quoted ref>": '
            f"{spec[:200]!r} (e.g. https%3A%2F%2Fexample.org%2Frepo.git/HEAD)"
        )
    return BinderSpec(
        provider="git", spec=spec, repo=repo, ref=ref, pinned_prefix=quoted, browse_url=""
    )


def wants_build_only(value: str) -> bool:
    """Whether the ``build_only`` query argument asks for build only (``true``, any case)."""
    return value.strip().lower() == "true"


# ------------------------------------------------------------------ events
def _line(text: Any) -> str:
    """``text`` ending in exactly one newline (BinderHub's messages are lines)."""
    return str(text).rstrip("\n") + "\n"


def failed_event(message: str, *, status_code: int | None = None) -> dict[str, Any]:
    """BinderHub's ``failed`` event (``status_code`` when the request itself was refused)."""
    event: dict[str, Any] = {"phase": "failed", "message": _line(message)}
    if status_code is not None:
        event["status_code"] = status_code
    return event


def ready_event(
    spec: BinderSpec, *, image: str, commit: str, launch_host: str, message: str
) -> dict[str, Any]:
    """BinderHub's ``ready`` event for ``image`` (built from ``commit``).

    Args:
        spec: the request.
        image: the image reference to start (``imageName``).
        commit: the commit it was built from (for the persistent request and ref URL).
        launch_host: this service's URL (``binder_launch_host``: where ``v2/`` links live).
        message: the text shown (:data:`FOUND_MESSAGE` or BinderHub's "Done! Image built").
    """
    return {
        "phase": "ready",
        "message": _line(message),
        "imageName": image,
        "binder_ref_url": spec.ref_url(commit),
        "binder_request": spec.request,
        "binder_persistent_request": spec.persistent_request(commit),
        "binder_launch_host": launch_host,
    }


def binder_events(event: Event, spec: BinderSpec, *, launch_host: str) -> list[dict[str, Any]]:
    """The BinderHub events one build event stands for (often one, sometimes none or two).

    - ``phase`` queued -> ``waiting`` (our message names the queue position); building ->
      ``building``; pushing -> ``pushing``; the terminal phases -> nothing (the ``done``
      event that always follows says it all);
    - ``log`` -> its stage (``fetching``/``building``/``pushing``, from repo2docker's
      record), else ``building``, with the line as message;
    - ``done`` -> ``built`` + ``ready`` for a built image, else ``failed`` with the reason.

    Args:
        event: one of the build's events.
        spec: what was asked for (for ``ready``'s fields).
        launch_host: ``binder_launch_host`` (see :func:`ready_event`).
    """
    data = event.data
    if event.type == EventType.LOG:
        stage = data.get("stage")
        phase = stage if stage in _LOG_PHASES else "building"
        return [{"phase": phase, "message": _line(data.get("message", ""))}]
    if event.type == EventType.PHASE:
        phase = {
            BuildState.QUEUED.value: "waiting",
            BuildState.BUILDING.value: "building",
            BuildState.PUSHING.value: "pushing",
        }.get(str(data.get("phase")))
        return [{"phase": phase, "message": _line(data.get("message", ""))}] if phase else []
    if event.type == EventType.DONE:
        return _finished(data, spec, launch_host)
    return []


def _finished(record: dict[str, Any], spec: BinderSpec, launch_host: str) -> list[dict[str, Any]]:
    state, image = str(record.get("state")), str(record.get("image", ""))
    if state == BuildState.BUILT.value:
        commit = str(record.get("commit", ""))
        return [
            {"phase": "built", "message": _line(f"Built image {image}"), "imageName": image},
            ready_event(
                spec, image=image, commit=commit, launch_host=launch_host, message=BUILT_MESSAGE
            ),
        ]
    error = record.get("error")
    return [failed_event(f"Build {state}: {error}" if error else f"Build {state}")]


def sse(data: dict[str, Any], *, event_id: str | None = None) -> str:
    """One unnamed Server-Sent Events message (``id:`` first when given)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def resume_after(last_event_id: str | None, build_id: str) -> int:
    """The build event id to resume after, from ``Last-Event-ID`` (``<build id>:<n>``).

    A reconnecting EventSource sends the last id it saw; it counts only for the same build
    (a new request can land on another build: then everything is sent, from 0).
    """
    if not last_event_id:
        return 0
    seen_build, _, number = last_event_id.partition(":")
    if seen_build != build_id or not number.isdigit():
        return 0
    return int(number)
