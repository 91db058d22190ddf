"""Binder-style launch links: build (or find) an image, then hand over to the hub's spawn URL.

- ``GET launch?repo=<url>&ref=<ref>&name=<name>``
- ``GET v2/gh/<org>/<repo>[/<ref>]``: the repository ``<launch_git_host>/<org>/<repo>``
  (default host https://github.com), ref default ``HEAD``.

A user with ``<prefix>build`` gets the image built in their own namespace: a cache hit
redirects at once, otherwise a page follows the build's events live and then redirects.
A user with only ``<prefix>view`` can launch an image that already exists for that
repository and ref (their own or a shared one); nothing is built for them.

The redirect goes to ``<hub>/spawn/<user>/<name>?image=<image>``: a named server called
after the environment, started with that image. The hub needs ``allow_named_servers`` and
a spawner that takes the image from ``user_options`` (``repo2docker_service.hub``);
the spawner checks again that the user may start that image.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from tornado import web

from ..auth import needs_scope
from ..builds.request import BuildRequest
from ..errors import ServiceError
from ..images.catalog import find_existing
from ..images.naming import validate_name
from ..sources import validate_repo_url
from .pages import PageHandler


def spawn_url(hub_prefix: str, username: str, server_name: str, image: str) -> str:
    """The hub's spawn URL for a named server started from ``image``."""
    prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
    return f"{prefix}spawn/{quote(username, safe='')}/{quote(server_name, safe='')}?" + urlencode(
        {"image": image}
    )


class LaunchHandler(PageHandler):
    """``GET launch`` and ``GET v2/gh/<org>/<repo>/<ref>``."""

    def _page_error(self, e: ServiceError) -> web.HTTPError:
        message = e.message
        if e.status_code == 429:
            message = f"{message}. Reload this page to try again."
        return web.HTTPError(e.status_code, message)

    @needs_scope(None)
    async def get(
        self, org: str | None = None, repo_name: str | None = None, ref: str | None = None
    ) -> None:
        me, conf = self.me, self.conf
        if not me.may_view():
            raise web.HTTPError(
                403,
                f"You are logged in as {me.name}, but you lack the permission "
                f"{me.prefix + 'view'!r} to launch environments. Ask a hub admin "
                "to grant you a role with it.",
            )
        if org is not None:
            if not (_NAME_RE.fullmatch(org) and _NAME_RE.fullmatch(repo_name or "")):
                raise web.HTTPError(
                    400,
                    "Short launch links look like v2/gh/<org>/<repo>/<ref>, with org and "
                    "repo made of letters, digits, '.', '_' and '-'",
                )
            repo = f"{conf.launch_git_host}/{org}/{repo_name}"
            ref = ref or "HEAD"
            name = None
        else:
            repo = self.get_argument("repo", "")
            ref = self.get_argument("ref", "") or "HEAD"
            name = self.get_argument("name", "") or None
            if not repo:
                raise web.HTTPError(
                    400, "A launch link needs ?repo=<git URL> (and optionally &ref= and &name=)"
                )
        try:
            repo = validate_repo_url(repo, allowed_schemes=conf.allowed_repo_schemes)
            if name is not None:
                validate_name(name)
            if me.may_build_for(me.name):
                await self._build_then_spawn(repo=repo, ref=ref, name=name)
            else:
                await self._spawn_existing(repo=repo, ref=ref, name=name)
        except ServiceError as e:
            raise self._page_error(e) from None

    async def _spawn_existing(self, *, repo: str, ref: str, name: str | None) -> None:
        me = self.me
        everything = me.may_admin()
        images = [
            i
            for i in await self.services.catalog.list_images()
            if me.may_start(i, me.name, everything=everything)
        ]
        image = find_existing(
            images,
            repo=repo,
            ref=ref,
            name=name,
            username=me.name,
            identity=self.services.manager.repo_identity,
        )
        if image is None:
            full = me.prefix + "build"
            raise web.HTTPError(
                403,
                f"No environment built from {repo} at {ref} exists that you can start, and "
                f"you lack the permission {full!r} to build one. Ask someone who may build "
                "to build it (as a shared environment), or a hub admin for that permission.",
            )
        self.log.info("launch: %s starts existing %s", me.name, image.image)
        self.redirect(self._spawn_url(image.name, image.image))

    async def _build_then_spawn(self, *, repo: str, ref: str, name: str | None) -> None:
        me = self.me
        result = await self.services.manager.submit(
            BuildRequest(owner=me.name, repo=repo, ref=ref, name=name)
        )
        if result.image is not None:
            self.log.info("launch: %s starts cached %s", me.name, result.image.image)
            self.redirect(self._spawn_url(result.image.name, result.image.image))
            return
        build = result.build
        assert build is not None  # a submit answers with an image or a build
        self.render_page(
            "launch.html",
            build=build.to_dict(),
            repo=repo,
            ref=ref,
            events_url=f"{self.conf.base_url}api/builds/{build.id}/events",
            logs_url=f"{self.conf.base_url}api/builds/{build.id}/logs",
            spawn_url=self._spawn_url(build.name, build.image),
        )

    def _spawn_url(self, server_name: str, image: str) -> str:
        return spawn_url(self.hub_auth.hub_prefix, self.me.name, server_name, image)


# any segment reaches the handler, which answers 400 for names a git host cannot have
_SEGMENT = r"[^/]+"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
default_handlers = [
    (r"launch", LaunchHandler),
    (rf"v2/gh/(?P<org>{_SEGMENT})/(?P<repo_name>{_SEGMENT})/?", LaunchHandler),
    (
        rf"v2/gh/(?P<org>{_SEGMENT})/(?P<repo_name>{_SEGMENT})/(?P<ref>.+)",
        LaunchHandler,
    ),
]
