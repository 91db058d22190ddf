"""Push webhooks from git hosts: check the shared secret, read the push, find the images.

``POST api/webhooks/{provider}`` (see ``handlers/webhooks.py``) rebuilds the environments
that track the pushed branch: images whose ``repo`` label is the pushed repository and whose
requested ``ref`` is that branch (or ``HEAD`` when the branch is the default one), or a tag
that was moved. The rebuild is an ordinary build request for the image's owner: the ref is
resolved again, and a commit that already has an image is a cache hit. A branch push that
continues an environment's commit (``before`` is the commit it was built from) answers that
rebuild's resolution itself, with ``after`` (:func:`announced_refs`; the rule and why it
cannot build a stale commit: :class:`~repo2docker_service.sources.resolver.PushedCommits`).

Providers and how they prove the secret:

- ``github`` and ``gitea`` (and Forgejo): ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the
  body>`` (Gitea also sends ``X-Gitea-Signature: <hex>``, accepted too);
- ``gitlab``: ``X-Gitlab-Token: <secret>`` (GitLab sends the secret itself, not a signature).

Only ``push`` events do anything; ``ping`` answers ``pong``; other events are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .builds.manager import BuildManager
from .builds.request import BuildRequest
from .errors import Forbidden, InvalidInput, ServiceError
from .images.catalog import Catalog, ImageInfo
from .repoid import RepoIdentity
from .sources.resolver import PushedCommits

#: the default rule (github.com and gitlab.com fold case); the service passes its own
DEFAULT_IDENTITY = RepoIdentity()

__all__ = [
    "PROVIDERS",
    "Push",
    "announced_refs",
    "event_kind",
    "matches",
    "normalize_url",
    "parse_push",
    "rebuild_for_push",
    "verify",
]

PROVIDERS = ("github", "gitea", "gitlab")
_SHA_RE = re.compile(r"[0-9a-fA-F]{40}")
#: push payloads list commits; GitHub caps them at 25 MB, we read at most this much
MAX_BODY_BYTES = 2 * 1024 * 1024


def verify(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Check that the request comes from a host that knows ``secret``.

    Raises:
        Forbidden: signature or token missing or wrong.
    """
    if provider == "gitlab":
        token = headers.get("X-Gitlab-Token", "")
        if token and hmac.compare_digest(token.encode(), secret.encode()):
            return
        raise Forbidden("Webhook refused: missing or wrong X-Gitlab-Token")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = headers.get("X-Hub-Signature-256", "")
    if given.startswith("sha256="):
        given = given[len("sha256=") :]
    elif provider == "gitea":
        given = headers.get("X-Gitea-Signature", "")
    else:
        given = ""
    if given and hmac.compare_digest(given.strip().lower(), expected):
        return
    raise Forbidden(
        "Webhook refused: missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with "
        "the webhook secret)"
    )


def event_kind(provider: str, headers: Mapping[str, str]) -> str:
    """``push``, ``tag_push``, ``ping`` or the provider's own event name (lowercase)."""
    if provider == "gitlab":
        raw = headers.get("X-Gitlab-Event", "")
        return {"push hook": "push", "tag push hook": "tag_push"}.get(raw.lower(), raw.lower())
    raw = headers.get("X-GitHub-Event") or headers.get("X-Gitea-Event") or ""
    return raw.lower()


def normalize_url(url: str, identity: RepoIdentity = DEFAULT_IDENTITY) -> str:
    """A repository URL reduced for comparison: its :meth:`RepoIdentity.key` (no
    credentials, scheme, trailing ``/`` or ``.git``; case folded on case-insensitive hosts).
    """
    return identity.key(url)


@dataclass
class Push:
    """What a push says: which repository, which branch or tag, which default branch.

    ``repo_urls`` are the URLs as the payload gives them; :func:`matches` compares their
    identities (:class:`~repo2docker_service.repoid.RepoIdentity`).
    """

    repo_urls: set[str] = field(default_factory=set)
    branch: str | None = None
    tag: str | None = None
    default_branch: str | None = None
    deleted: bool = False
    before: str | None = None
    after: str | None = None


def _strings(values: Iterable[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def parse_push(provider: str, body: bytes) -> Push:
    """Read a push event's JSON body.

    Raises:
        InvalidInput: not JSON, or no repository or ref in it.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidInput("Webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("Webhook body must be a JSON object")
    push = Push()
    repository = _object(payload, "repository")
    if provider == "gitlab":
        project = _object(payload, "project")
        urls = _strings(
            [
                project.get("git_http_url"),
                project.get("web_url"),
                project.get("git_ssh_url"),
                repository.get("git_http_url"),
                repository.get("homepage"),
            ]
        )
        push.default_branch = project.get("default_branch")
        after = payload.get("after") or payload.get("checkout_sha")
    else:
        urls = _strings(
            [
                repository.get("clone_url"),
                repository.get("html_url"),
                repository.get("git_url"),
                repository.get("ssh_url"),
            ]
        )
        push.default_branch = repository.get("default_branch")
        after = payload.get("after")
    before = payload.get("before")
    push.before = before.lower() if isinstance(before, str) and _SHA_RE.fullmatch(before) else None
    push.after = after.lower() if isinstance(after, str) and _SHA_RE.fullmatch(after) else None
    push.repo_urls = {u.strip() for u in urls}
    ref = payload.get("ref")
    if not push.repo_urls or not isinstance(ref, str):
        raise InvalidInput("Webhook push has no repository URL or no ref")
    if ref.startswith("refs/heads/"):
        push.branch = ref[len("refs/heads/") :]
    elif ref.startswith("refs/tags/"):
        push.tag = ref[len("refs/tags/") :]
    push.deleted = bool(payload.get("deleted")) or (isinstance(after, str) and set(after) == {"0"})
    return push


def matches(repo: str, ref: str, push: Push, identity: RepoIdentity = DEFAULT_IDENTITY) -> bool:
    """Whether an image built from ``repo`` at the requested ``ref`` tracks this push.

    The repository matches when one of the push's URLs has its identity
    (``identity.key``: case, ``.git``, trailing ``/`` and scheme do not count).
    """
    key = identity.key(repo)
    if push.deleted or all(identity.key(u) != key for u in push.repo_urls):
        return False
    if push.branch is not None:
        if ref == "HEAD":
            return push.branch == push.default_branch
        return ref in (push.branch, f"refs/heads/{push.branch}")
    if push.tag is not None:
        return ref in (push.tag, f"refs/tags/{push.tag}")
    return False


def _rebuild_request(image: ImageInfo) -> BuildRequest:
    """The build request that rebuilds ``image`` for its owner, as it was asked for."""
    return BuildRequest(
        owner=image.owner,
        repo=image.repo,
        ref=image.ref,
        name=image.name,
        display_name=image.display_name,
        shared=image.shared,
        hints=dict(image.hints),
    )


def announced_refs(push: Push, image: ImageInfo) -> list[str]:
    """The refs of ``image``'s repository ``push`` answers without asking the server (see
    :class:`~repo2docker_service.sources.resolver.PushedCommits`): its branch (and ``HEAD``
    for the default branch) when the push moved that branch from the commit ``image`` was
    built from to a known commit; none otherwise (tags, deletions, another ``before``)."""
    if push.branch is None or push.deleted or push.after is None or push.before is None:
        return []
    if image.commit.lower() != push.before:
        return []
    refs = [push.branch]
    return [*refs, "HEAD"] if push.branch == push.default_branch else refs


async def rebuild_for_push(
    push: Push,
    *,
    catalog: Catalog,
    manager: BuildManager,
    log: logging.Logger,
    pushed: PushedCommits | None = None,
) -> dict[str, Any]:
    """Rebuild, for their owners, the environments that track the pushed ref.

    Args:
        push: the parsed push.
        catalog: where the environments are listed.
        manager: where the rebuilds are submitted (each an ordinary request: the ref is
            resolved again; a commit that already has an image is a cache hit).
        log: where each started or refused rebuild is logged.
        pushed: where the pushed commit is announced to the ref resolver while the rebuild
            of an environment the push continues (:func:`announced_refs`) is submitted, so
            that resolution needs no request to the git host; None: every rebuild asks.

    Returns:
        ``{"matched": int, "started": [build id, ...], "joined": int, "cached": int,
        "failed": int}``; ``failed`` counts requests the manager refused (e.g. private
        repositories, whose credentials are never stored).
    """
    identity = manager.repo_identity
    images = [i for i in await catalog.list_images() if matches(i.repo, i.ref, push, identity)]
    started: list[str] = []
    joined = cached = failed = 0
    for image in images:
        refs = announced_refs(push, image) if pushed is not None else []
        try:
            if pushed is not None and refs and push.after is not None:
                with pushed.announced(image.repo, refs, push.after):
                    result = await manager.submit(_rebuild_request(image))
            else:
                result = await manager.submit(_rebuild_request(image))
        except ServiceError as e:
            failed += 1
            log.warning("webhook: rebuild of %s not started: %s", image.image, e)
            continue
        if result.build is None:
            cached += 1
        elif result.joined:
            joined += 1
        else:
            started.append(result.build.id)
            log.info("webhook: rebuilding %s (build %s)", image.image, result.build.id)
    return {
        "matched": len(images),
        "started": started,
        "joined": joined,
        "cached": cached,
        "failed": failed,
    }
