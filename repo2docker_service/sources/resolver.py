"""Ref -> commit, fresh on every request: protocol v2 ``ls-refs`` where it serves, else git.

:class:`RefResolver` is the service's resolver (``BuildManager(resolver=...)``). One rule
decides how a request is answered (:meth:`RefResolver.route`):

1. a full 40-character SHA is the commit itself (no network);
2. a branch a signed push webhook announced, while that webhook's own rebuilds are being
   submitted (:class:`PushedCommits`), is the pushed commit;
3. an ``http``/``https`` repository is asked with git's protocol v2 ``ls-refs`` on a
   kept-alive connection (:mod:`.smarthttp`), unless that server answered without v2
   before;
4. everything else, and every request the v2 path cannot answer (no v2, an HTTP error,
   a redirect, a malformed answer), runs ``git ls-remote`` (:func:`.lsremote.resolve_ref`),
   whose answers and error messages are the reference.

No answer is ever kept: every request of 3 and 4 asks the server (only the server's
capability advertisement is remembered, see :mod:`.smarthttp`), so a push is seen by the
next request. Both paths pick the commit with the same rule (:func:`.refs.pick_commit`).
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from traitlets import Bool, Float
from traitlets.config import LoggingConfigurable

from ..errors import InvalidInput, SourceError
from .branches import suggest_branches
from .credentials import GitCredentials
from .lsremote import BASE_ENV_KEYS, resolve_ref
from .refs import (
    FULL_SHA_RE,
    is_abbreviated_commit,
    pick_commit,
    ref_not_found,
    validate_ref,
)
from .smarthttp import NotServed, SmartHTTPClient

__all__ = ["PushedCommits", "RefResolver", "ls_refs_prefixes"]

Route = Literal["commit", "pushed", "ls-refs", "ls-remote"]

#: How many repositories known not to speak v2 are remembered (least recently used go).
MAX_NO_V2 = 1024


def ls_refs_prefixes(ref: str) -> list[str]:
    """The ``ref-prefix`` arguments that list every ref :func:`.refs.candidate_refs` may
    pick for ``ref`` (the same refs ``git ls-remote``'s patterns list for it): ``HEAD``;
    ``refs/heads/<ref>`` and ``refs/tags/<ref>``, and ``<ref>`` itself for a full ref name;
    all branches and tags for an abbreviated commit."""
    if ref == "HEAD":
        return ["HEAD"]
    if is_abbreviated_commit(ref):
        return ["refs/heads/", "refs/tags/"]
    prefixes = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    return [*prefixes, ref] if ref.startswith("refs/") else prefixes


class PushedCommits:
    """Commits signed push webhooks announce, for the rebuilds those webhooks submit.

    The rule: :meth:`announced` answers ``repo``'s branch with the pushed commit only while
    the webhook that announced it submits its own rebuilds (the ``with`` block); before and
    after, the server is asked. The webhook announces a push only to the rebuild of an
    environment built from the push's ``before`` (``webhooks.announced_refs``): the
    environment is exactly one push behind, and this push is the next one. Only plain branch
    names and ``HEAD`` (for the default branch) are answered; tags and full ref names are
    asked.

    Why this cannot build a commit the branch has left behind, unnoticed (a TTL cache can):
    the commit is the signed payload's ``after``, the tip that push set; nothing keeps it
    past the webhook request. A delivery handled after a newer push was built (delayed,
    out of order, repeated) no longer matches the environment's commit, so the server is
    asked. A newer push whose own webhook has not been handled yet is the one case the
    payload cannot know about; that webhook rebuilds the environment when it arrives (its
    ``before`` is this push's ``after``, so the check lets it through), as it would have
    without announcements.
    """

    def __init__(self) -> None:
        self._commits: dict[tuple[str, str], list[str]] = {}

    @contextlib.contextmanager
    def announced(self, repo: str, refs: Iterable[str], commit: str) -> Iterator[None]:
        """Answer ``refs`` (branch names, ``HEAD``) of ``repo`` with ``commit`` inside the
        block. ``repo`` is compared as written (the rebuilds use the environment's URL).

        Raises:
            ValueError: ``commit`` is not a full SHA.
        """
        if not FULL_SHA_RE.fullmatch(commit):
            raise ValueError("a pushed commit is a full 40-character SHA")
        keys = [(repo, ref) for ref in refs]
        for key in keys:
            self._commits.setdefault(key, []).append(commit.lower())
        try:
            yield
        finally:
            for key in keys:
                stack = self._commits[key]
                stack.remove(commit.lower())
                if not stack:
                    del self._commits[key]

    def commit(self, repo: str, ref: str) -> str | None:
        """The announced commit of ``ref`` in ``repo`` (the latest announcement), or None."""
        if ref != "HEAD" and (ref.startswith("refs/") or is_abbreviated_commit(ref)):
            return None
        stack = self._commits.get((repo, ref))
        return stack[-1] if stack else None


class RefResolver(LoggingConfigurable):
    """Resolves refs by the rule of the module doc; callable like ``resolve_ref``.

    Its options are ``c.RefResolver.*`` (``protocol_v2``, ``keepalive_timeout``).

    Args:
        env: git's base environment and where proxies and CA files are read
            (default: :data:`.lsremote.BASE_ENV_KEYS` of ``os.environ`` at each call).
        git: the git executable for ``git ls-remote``.
        pushed: announced pushes (rule 2); None: none are.
        kwargs: traits and ``parent``/``config``, as for any traitlets ``Configurable``.
    """

    protocol_v2 = Bool(
        True,
        config=True,
        help="""Resolve refs of http(s) repositories with git's protocol v2 `ls-refs` on
        kept-alive connections (one round trip per request once a host is known).

        False: every request runs `git ls-remote` (a new process and two HTTP requests).
        Turn it off when git's own configuration must apply to the service's requests
        (`url.<base>.insteadOf`, `http.proxy`, `http.extraHeader`, credential helpers in
        the service user's gitconfig): the v2 client reads only the proxy and CA
        variables of the environment. Servers without v2 fall back to git either way.""",
    )
    keepalive_timeout = Float(
        60.0,
        min=0,
        config=True,
        help="""Seconds an idle connection to a git host stays open for the next ref
        resolution (protocol v2 only). 0 closes each connection after its request.""",
    )

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        git: str = "git",
        pushed: PushedCommits | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.env = env
        self.git = git
        self.pushed = pushed
        self.http = SmartHTTPClient(keepalive_timeout=self.keepalive_timeout)
        self._no_v2: OrderedDict[str, str] = OrderedDict()

    async def close(self) -> None:
        """Close the kept-alive connections."""
        await self.http.close()

    def route(self, repo: str, ref: str) -> Route:
        """Which rule of the module doc answers ``ref`` of ``repo`` now."""
        if FULL_SHA_RE.fullmatch(ref):
            return "commit"
        if self.pushed is not None and self.pushed.commit(repo, ref) is not None:
            return "pushed"
        scheme = repo.partition("://")[0].lower()
        if self.protocol_v2 and scheme in ("http", "https") and repo not in self._no_v2:
            return "ls-refs"
        return "ls-remote"

    async def __call__(
        self,
        repo: str,
        ref: str,
        *,
        credentials: GitCredentials | None = None,
        timeout: float = 30,  # noqa: ASYNC109 - expiry becomes a SourceError
        known_commits: Iterable[str] = (),
    ) -> str:
        """The full commit ``ref`` names in ``repo`` now; arguments, matching rules and
        errors as :func:`.lsremote.resolve_ref`.

        Raises:
            InvalidInput: ``ref`` or ``repo`` is not valid.
            SourceError: the repository cannot be read, timed out, or has no such ref.
        """
        ref = validate_ref(ref)
        if not isinstance(repo, str) or not repo:
            raise InvalidInput("repo must be a non-empty URL string")
        route = self.route(repo, ref)
        if route == "commit":
            return ref.lower()
        pushed = self.pushed.commit(repo, ref) if self.pushed is not None else None
        if route == "pushed" and pushed is not None:
            return pushed
        env = self._env()
        if route == "ls-refs":
            try:
                return await self._by_ls_refs(repo, ref, credentials, env, timeout, known_commits)
            except TimeoutError:
                raise SourceError(
                    f"timed out after {timeout:g} s contacting {repo}", field="repo"
                ) from None
            except NotServed as e:
                self.log.debug("%s: protocol v2 not served (%s); asking git", repo, e)
                if e.no_v2:
                    self._remember_no_v2(repo, str(e))
        return await resolve_ref(
            repo,
            ref,
            credentials=credentials,
            timeout=timeout,
            git=self.git,
            env=env,
            known_commits=known_commits,
        )

    async def _by_ls_refs(
        self,
        repo: str,
        ref: str,
        credentials: GitCredentials | None,
        env: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - expiry becomes a SourceError
        known_commits: Iterable[str],
    ) -> str:
        """Rule 3: one ``ls-refs``; for a missing ref a second one lists the branches the
        error suggests (as :func:`.lsremote.resolve_ref`'s ``ls-remote --symref``)."""
        options: dict[str, Any] = dict(credentials=credentials, env=env, timeout=timeout)
        refs, _ = await self.http.ls_refs(repo, ls_refs_prefixes(ref), **options)
        found = pick_commit(repo, ref, refs, known_commits)
        if found is not None:
            return found
        try:
            heads, symrefs = await self.http.ls_refs(
                repo, ["HEAD", "refs/heads/"], symrefs=True, **options
            )
        except (NotServed, TimeoutError):
            raise ref_not_found(repo, ref) from None
        target = symrefs.get("HEAD", "")
        default = target.removeprefix("refs/heads/") if target.startswith("refs/heads/") else None
        branches = [n.removeprefix("refs/heads/") for n in heads if n.startswith("refs/heads/")]
        raise ref_not_found(repo, ref, suggest_branches(ref, default, branches))

    def _env(self) -> dict[str, str]:
        if self.env is not None:
            return dict(self.env)
        return {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}

    def _remember_no_v2(self, repo: str, reason: str) -> None:
        self._no_v2[repo] = reason
        while len(self._no_v2) > MAX_NO_V2:
            self._no_v2.popitem(last=False)
