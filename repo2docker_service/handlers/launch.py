"""Binder-style launch links: build (or find) an image, then hand over to the hub's spawn URL.

- ``GET launch?repo=<url>&ref=<ref>&name=<name>``
- ``GET v2/gh/<org>/<repo>[/<ref>]``: the repository ``<launch_git_host>/<org>/<repo>``
  (default host https://github.com), ref default ``HEAD``; trailing and repeated slashes
  do not count, and the ref may contain ``/`` (``feature/x`` or ``feature%2Fx``).
- ``POST launch`` (``repo``, ``ref``, ``name``, ``commit``, ``_xsrf``): the confirm page's
  button.

A user with ``<prefix>build`` gets the image built in their own namespace: a cache hit
redirects at once, otherwise a page follows the build's events live and then redirects.
A user with only ``<prefix>view`` can launch an image that already exists for that
repository and ref (their own or a shared one); nothing is built for them.

Drive-by launches: a GET never builds or starts anything unless
``Caller.may_launch_without_click`` allows it (a navigation from our own pages; or one of
unknown source, typed or bookmarked, when the image already is the visitor's). Otherwise,
and always when the link comes from another site, the GET shows a confirm page (repository,
ref, commit, who built it) whose button POSTs back here with the XSRF token.

The redirect goes to ``<hub>/spawn/<user>/<name>?image=<image>&next=<server URL>``: a
named server called after the environment, started with that image (``next`` keeps
``?image=`` out of the server's URL: :func:`spawn_url`). The hub needs ``allow_named_servers`` and
a spawner that takes the image from ``user_options`` (``repo2docker_service.hub``);
the spawner checks again that the user may start that image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from tornado import web

from ..auth import needs_scope
from ..builds.request import BuildRequest
from ..errors import Forbidden, ServiceError
from ..images.naming import validate_name
from ..launches import LaunchPlan, plan_launch
from ..navigation import Navigation
from ..sources import validate_repo_url
from .pages import PageHandler


def spawn_url(hub_prefix: str, username: str, server_name: str, image: str) -> str:
    """The hub's spawn URL for a named server started from ``image``, ending on the server.

    ``<hub>/spawn/<user>/<name>?image=<image>&next=<base>/user/<user>/<name>/``: JupyterHub
    carries a spawn URL's query on to the server's URL unless ``next`` is given
    (``BaseHandler.get_next_url`` appends the request's query to its default), so without
    ``next`` the user would end on ``/user/<user>/<name>/lab?image=...``. ``next`` is the
    server's URL as ``User.server_url`` spells it (``url_escape_path``: safe ``@~``); the
    hub's prefix is ``<base_url>hub/``. ``static/js/util.js`` ``spawnUrl`` is the same rule
    for the environments page.
    """
    prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
    base = prefix[: -len("hub/")] if prefix.endswith("/hub/") else "/"
    server = f"{base}user/{quote(username, safe='@~')}/{quote(server_name, safe='@~')}/"
    return f"{prefix}spawn/{quote(username, safe='')}/{quote(server_name, safe='')}?" + urlencode(
        {"image": image, "next": server}
    )


@dataclass(frozen=True, slots=True)
class LaunchTarget:
    """What a link asks for: repository, ref, name; ``hint`` is added to not-found errors."""

    repo: str
    ref: str
    name: str | None
    hint: str = ""


class LaunchHandler(PageHandler):
    """``GET launch``, ``GET v2/gh/<org>/<repo>/<ref>`` and ``POST launch``."""

    def _page_error(self, e: ServiceError, hint: str = "") -> web.HTTPError:
        message = e.message
        if e.status_code == 429:
            message = f"{message}. Reload this page to try again."
        if hint and e.status_code in (403, 422):
            message = f"{message}. {hint}"
        return web.HTTPError(e.status_code, message)

    def _require_view(self) -> None:
        me = self.me
        if not me.may_view():
            raise web.HTTPError(
                403,
                f"You are logged in as {me.name}, but you lack the permission "
                f"{me.prefix + 'view'!r} to launch environments. Ask a hub admin "
                "to grant you a role with it.",
            )

    @needs_scope(None)
    async def get(self, path: str | None = None) -> None:
        self._require_view()
        target = self._short_link(path) if path is not None else self._query_link()
        me = self.me
        try:
            plan = await self._plan(target)
            source = self.navigation()
            if me.may_launch_without_click(source, already_theirs=plan.already_theirs(me.name)):
                await self._launch(plan)
            else:
                self._confirm(plan, cross_site=source is Navigation.CROSS_SITE)
        except ServiceError as e:
            raise self._page_error(e, target.hint) from None

    @needs_scope(None)
    async def post(self, path: str | None = None) -> None:
        """The confirm page's button (tornado has checked the XSRF token of a cookie session)."""
        self._require_view()
        target = LaunchTarget(
            repo=self.get_body_argument("repo", ""),
            ref=self.get_body_argument("ref", "") or "HEAD",
            name=self.get_body_argument("name", "") or None,
        )
        if not target.repo:
            raise web.HTTPError(400, "A launch needs repo=<git URL> (and optionally ref, name)")
        shown = self.get_body_argument("commit", "")
        try:
            plan = await self._plan(target)
            if shown and plan.commit and shown != plan.commit:
                # the ref moved since the page was shown: show what would run now
                self._confirm(plan, cross_site=False, moved_from=shown)
                return
            await self._launch(plan)
        except ServiceError as e:
            raise self._page_error(e) from None

    def _query_link(self) -> LaunchTarget:
        repo = self.get_argument("repo", "")
        if not repo:
            raise web.HTTPError(
                400, "A launch link needs ?repo=<git URL> (and optionally &ref= and &name=)"
            )
        return LaunchTarget(
            repo=repo,
            ref=self.get_argument("ref", "") or "HEAD",
            name=self.get_argument("name", "") or None,
        )

    def _short_link(self, path: str) -> LaunchTarget:
        """``<org>/<repo>[/<ref...>]``; empty segments (``//``, a trailing ``/``) dropped."""
        segments = [s for s in path.split("/") if s]
        if len(segments) < 2 or not all(_NAME_RE.fullmatch(s) for s in segments[:2]):
            raise web.HTTPError(
                400,
                "Short launch links look like v2/gh/<org>/<repo>/<ref>, with org and "
                "repo made of letters, digits, '.', '_' and '-'",
            )
        host = self.conf.launch_git_host
        org, repo_name, *rest = segments
        return LaunchTarget(
            repo=f"{host}/{org}/{repo_name}",
            ref="/".join(rest) or "HEAD",
            name=None,
            hint=self._subgroup_hint(host, segments) if rest else "",
        )

    def _subgroup_hint(self, host: str, segments: list[str]) -> str:
        """How to launch ``<host>/<segments...>`` when it is a repository deeper in groups."""
        if len(segments) >= 4:
            query = {"repo": f"{host}/{'/'.join(segments[:-1])}", "ref": segments[-1]}
        else:
            query = {"repo": f"{host}/{'/'.join(segments)}"}
        link = f"{self.conf.base_url}launch?{urlencode(query)}"
        return (
            "v2/gh links name <org>/<repo>/<ref>. If the repository is in a group or "
            "subgroup (as on GitLab), launch it with launch?repo=, which takes any "
            f"repository URL: {link}"
        )

    async def _plan(self, target: LaunchTarget) -> LaunchPlan:
        """What the launch would run; 400 for bad input, 403 when a viewer has nothing."""
        me, conf = self.me, self.conf
        repo = validate_repo_url(target.repo, allowed_schemes=conf.allowed_repo_schemes)
        if target.name is not None:
            validate_name(target.name)
        everything = me.may_admin()
        plan = await plan_launch(
            manager=self.services.manager,
            catalog=self.services.catalog,
            username=me.name,
            builds=me.may_build_for(me.name),
            startable=lambda image: me.may_start(image, me.name, everything=everything),
            repo=repo,
            ref=target.ref,
            name=target.name,
        )
        if not plan.builds and plan.image is None:
            full = me.prefix + "build"
            raise Forbidden(
                f"No environment built from {repo} at {target.ref} exists that you can "
                f"start, and you lack the permission {full!r} to build one. Ask someone "
                f"who may build to build it (as a shared environment), or a hub admin for "
                f"{me.ask_for('build')}"
            )
        return plan

    def _confirm(self, plan: LaunchPlan, *, cross_site: bool, moved_from: str = "") -> None:
        """The confirm page: what would run, and the button that POSTs the launch."""
        self.log.info("launch: %s asked to confirm (cross-site: %s)", self.me.name, cross_site)
        self.render_page(
            "confirm_launch.html",
            plan=plan,
            built_by=plan.built_by(self.me.name),
            cross_site=cross_site,
            moved_from=moved_from,
        )

    async def _launch(self, plan: LaunchPlan) -> None:
        """Start (and first build, for a builder) what ``plan`` says."""
        me = self.me
        code = 303 if self.request.method == "POST" else 302
        if not plan.builds:
            assert plan.image is not None  # _plan refused a viewer without an image
            self.log.info("launch: %s starts existing %s", me.name, plan.image.image)
            self.redirect(self._spawn_url(plan.image.name, plan.image.image), status=code)
            return
        result = await self.services.manager.submit(
            BuildRequest(owner=me.name, repo=plan.repo, ref=plan.ref, name=plan.name)
        )
        if result.image is not None:
            self.log.info("launch: %s starts cached %s", me.name, result.image.image)
            self.redirect(self._spawn_url(result.image.name, result.image.image), status=code)
            return
        build = result.build
        assert build is not None  # a submit answers with an image or a build
        self.render_page(
            "launch.html",
            build=build.to_dict(),
            repo=plan.repo,
            ref=plan.ref,
            events_url=f"{self.conf.base_url}api/builds/{build.id}/events",
            logs_url=f"{self.conf.base_url}api/builds/{build.id}/logs",
            spawn_url=self._spawn_url(build.name, build.image),
        )

    def _spawn_url(self, server_name: str, image: str) -> str:
        return spawn_url(self.hub_auth.hub_prefix, self.me.name, server_name, image)


_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
default_handlers = [
    (r"launch", LaunchHandler),
    # any path reaches the handler, which answers 400 for names a git host cannot have
    (r"v2/gh/(?P<path>.*)", LaunchHandler),
]
