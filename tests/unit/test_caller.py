"""The Caller: every access rule, as a table (the hub tests check the same through HTTP)."""

import pytest
from tornado.httputil import HTTPHeaders

from repo2docker_service.auth import Caller
from repo2docker_service.builds.model import Build
from repo2docker_service.errors import Forbidden
from repo2docker_service.images.catalog import ImageInfo
from repo2docker_service.navigation import Navigation, navigation_source

P = "custom:repo2docker:"


def caller(name: str, *short: str, kind: str = "user", extra: tuple[str, ...] = ()) -> Caller:
    scopes = [P + s for s in short] + list(extra)
    return Caller.from_hub_model({"name": name, "kind": kind, "scopes": scopes}, P)


def image(owner: str, shared: bool = False) -> ImageInfo:
    return ImageInfo(
        owner="" if shared else owner,
        shared=shared,
        owner_slug="shared" if shared else owner,
        name="env",
        display_name="env",
        repo="https://example.org/r",
        ref="main",
        commit="a" * 40,
        image="x/env:aaa",
        latest=None,
    )


def build(owner: str, shared: bool = False) -> Build:
    return Build(
        owner=owner,
        owner_slug=owner,
        name="env",
        repo="https://example.org/r",
        ref="main",
        commit="a" * 40,
        image="x/env:aaa",
        latest_image="x/env:latest",
        shared=shared,
    )


ALICE_VIEW = caller("alice", "view")
ALICE_BUILD = caller("alice", "build")
ADMIN = caller("root", "admin")
NOBODY = caller("eve")


@pytest.mark.parametrize(
    ("who", "scopes"),
    [
        (NOBODY, set()),
        (ALICE_VIEW, {"view"}),
        (ALICE_BUILD, {"view", "build"}),
        (ADMIN, {"view", "build", "admin"}),
        (caller("x", extra=("custom:other:admin", "read:users")), set()),
    ],
)
def test_scopes_are_implied(who, scopes):
    assert who.scopes == scopes


@pytest.mark.parametrize(
    ("who", "item", "seen"),
    [
        (ALICE_VIEW, image("alice"), True),
        (ALICE_VIEW, image("bob"), False),
        (ALICE_VIEW, image("", shared=True), True),
        (ALICE_VIEW, build("alice"), True),
        (ALICE_VIEW, build("bob"), False),
        (ALICE_VIEW, build("alice", shared=True), False),  # shared builds: admins only
        (ADMIN, image("bob"), True),
        (ADMIN, build("bob", shared=True), True),
        (NOBODY, image("eve"), True),  # the view scope is checked by needs_scope first
    ],
)
def test_may_see(who, item, seen):
    assert who.may_see(item) is seen


@pytest.mark.parametrize(
    ("who", "owner", "shared", "allowed"),
    [
        (ALICE_BUILD, "alice", False, True),
        (ALICE_BUILD, "bob", False, False),
        (ALICE_BUILD, "alice", True, False),
        (ALICE_VIEW, "alice", False, False),
        (ADMIN, "bob", False, True),
        (ADMIN, "", True, True),
    ],
)
def test_may_build_for(who, owner, shared, allowed):
    assert who.may_build_for(owner, shared=shared) is allowed


@pytest.mark.parametrize(
    ("who", "deliberate", "allowed"),
    [
        (ALICE_BUILD, True, True),
        # a bare navigation (no token, no XSRF token) never builds, whoever follows it
        (ALICE_BUILD, False, False),
        (ADMIN, False, False),
        (ALICE_VIEW, True, False),
        (NOBODY, True, False),
        (ADMIN, True, True),
    ],
)
def test_may_build_by_get(who, deliberate, allowed):
    """BinderHub's build API is a GET: it builds only when the request was sent on purpose."""
    assert who.may_build_by_get(deliberate=deliberate) is allowed


@pytest.mark.parametrize(
    ("who", "item", "allowed"),
    [
        (ALICE_BUILD, build("alice"), True),
        (ALICE_BUILD, build("bob"), False),
        (ALICE_BUILD, build("alice", shared=True), False),  # shared builds: admins only
        (ALICE_VIEW, build("alice"), False),
        (ADMIN, build("bob"), True),
        (ADMIN, build("bob", shared=True), True),
    ],
)
def test_may_manage_build(who, item, allowed):
    """Cancel and dismiss: the owner with build, or an admin."""
    assert who.may_manage_build(item) is allowed


def test_startable_for():
    assert ALICE_VIEW.startable_for("alice", asks_all=True) is False  # cannot widen itself
    assert caller("root", "view", "admin").startable_for("root", asks_all=False) is True
    spawner = caller("hub-spawner", kind="service", extra=(P + "spawn",))
    assert spawner.startable_for("alice", asks_all=True) is True
    assert spawner.startable_for("alice", asks_all=False) is False
    with pytest.raises(Forbidden, match="themself"):
        ALICE_BUILD.startable_for("bob", asks_all=False)
    with pytest.raises(Forbidden, match="view"):
        NOBODY.startable_for("eve", asks_all=False)
    # a service named like the user is not that user
    with pytest.raises(Forbidden):
        caller("alice", "view", kind="service").startable_for("alice", asks_all=False)


@pytest.mark.parametrize(
    ("item", "everything", "allowed"),
    [
        (image("alice"), False, True),
        (image("bob"), False, False),
        (image("", shared=True), False, True),
        (image("bob"), True, True),
    ],
)
def test_may_start(item, everything, allowed):
    assert ALICE_VIEW.may_start(item, "alice", everything=everything) is allowed


# hub admin flag x hub_admins_are_admins x kind -> the service scopes held
HUB_ADMIN_CASES = [
    # (model's admin flag, kind, hub_admins_are_admins, scopes held, expected)
    (True, "user", True, (), {"view", "build", "admin"}),
    (True, "user", False, (), set()),
    (True, "user", False, ("view",), {"view"}),
    (False, "user", True, ("build",), {"view", "build"}),
    (True, "service", True, (), set()),  # a service's admin flag never counts
    (None, "user", True, (), set()),  # no flag in the model (token without read:users:name)
]


@pytest.mark.parametrize("flag, kind, on, held, expected", HUB_ADMIN_CASES)
def test_hub_admins_are_admins(flag, kind, on, held, expected):
    model = {"name": "root", "kind": kind, "admin": flag, "scopes": [P + s for s in held]}
    me = Caller.from_hub_model(model, P, hub_admins_are_admins=on)
    assert me.scopes == expected
    assert me.may_build_for("someone", shared=True) is ("admin" in expected)


@pytest.mark.parametrize(
    "access_help, expected",
    [
        (
            {"view": "the group 'staff' in Keycloak"},
            "ask a hub admin for the group 'staff' in Keycloak",
        ),
        ({}, "ask a hub admin for a role with it"),
        ({"build": "x"}, "ask a hub admin for a role with it"),  # another scope's help
    ],
)
def test_missing_says_what_to_ask_for(access_help, expected):
    model = {"name": "bob", "kind": "user", "scopes": []}
    me = Caller.from_hub_model(model, P, access_help=access_help)
    message = me.missing("view").message
    assert message == f"Missing permission '{P}view': {expected}"


# drive-by launches: where a request comes from, and when a launch needs a click
HOST = "hub.example.org"
BASE = "/services/repo2docker/"
OUR_PAGE = f"https://{HOST}{BASE}"
NAVIGATIONS = [
    # (headers, source)
    ({}, Navigation.UNKNOWN),  # a token client, an old browser
    ({"Sec-Fetch-Site": "none"}, Navigation.UNKNOWN),  # typed or bookmarked
    ({"Sec-Fetch-Site": "cross-site"}, Navigation.CROSS_SITE),
    ({"Sec-Fetch-Site": "Cross-Site"}, Navigation.CROSS_SITE),
    ({"Sec-Fetch-Site": "cross-site", "Referer": OUR_PAGE}, Navigation.CROSS_SITE),
    # another origin of the same site: a user server on a subdomain
    ({"Sec-Fetch-Site": "same-site"}, Navigation.CROSS_SITE),
    ({"Sec-Fetch-Site": "none", "Referer": "https://evil.example/x"}, Navigation.CROSS_SITE),
    ({"Referer": "https://evil.example/x"}, Navigation.CROSS_SITE),
    ({"Referer": f"https://{HOST}.evil.example{BASE}"}, Navigation.CROSS_SITE),
    ({"Referer": f"https://{HOST}:8443{BASE}"}, Navigation.CROSS_SITE),  # another port
    ({"Origin": "https://evil.example"}, Navigation.CROSS_SITE),
    ({"Origin": "null"}, Navigation.CROSS_SITE),  # sandboxed frames, data: pages
    ({"Origin": "https://evil.example", "Referer": OUR_PAGE}, Navigation.CROSS_SITE),
    # our own pages
    ({"Sec-Fetch-Site": "same-origin", "Referer": OUR_PAGE}, Navigation.OURS),
    ({"Referer": OUR_PAGE + "?x=1"}, Navigation.OURS),
    ({"Referer": f"https://{HOST.upper()}{BASE}launch?repo=x"}, Navigation.OURS),
    ({"Origin": f"https://{HOST}", "Referer": OUR_PAGE}, Navigation.OURS),
    ({"Referer": f"https://{HOST}/services/repo2docker"}, Navigation.OURS),
    # same origin, but not our pages: a user server, the hub, another service
    (
        {"Sec-Fetch-Site": "same-origin", "Referer": f"https://{HOST}/user/bob/tree"},
        Navigation.UNKNOWN,
    ),
    ({"Referer": f"https://{HOST}/services/repo2docker-evil/"}, Navigation.UNKNOWN),
    ({"Sec-Fetch-Site": "same-origin"}, Navigation.UNKNOWN),
    ({"Sec-Fetch-Site": "none", "Referer": OUR_PAGE}, Navigation.UNKNOWN),
]


@pytest.mark.parametrize(("headers", "source"), NAVIGATIONS)
def test_navigation_source(headers, source):
    assert navigation_source(HTTPHeaders(headers), host=HOST, base_url=BASE) is source


@pytest.mark.parametrize(
    ("source", "already_theirs", "at_once"),
    [
        (Navigation.OURS, False, True),
        (Navigation.OURS, True, True),
        (Navigation.UNKNOWN, True, True),
        (Navigation.UNKNOWN, False, False),
        (Navigation.CROSS_SITE, True, False),
        (Navigation.CROSS_SITE, False, False),
    ],
)
def test_launch_without_click(source, already_theirs, at_once):
    for me in (caller("alice", "view"), caller("alice", "build"), caller("alice", "admin")):
        assert me.may_launch_without_click(source, already_theirs=already_theirs) is at_once


@pytest.mark.parametrize(
    "access_help, expected",
    [
        (
            {"admin": "the role 'repo2docker-admin' (or membership in the group 'ops')"},
            "ask a hub admin for the role 'repo2docker-admin' (or membership in the group 'ops')",
        ),
        ({}, "ask a hub admin for a role with it"),
        ({"build": "x"}, "ask a hub admin for a role with it"),  # another scope's help
    ],
)
def test_admin_only_refusals_say_what_to_ask_for(access_help, expected):
    """One rule for every refusal that only the admin scope would lift (shared
    environments, other users' builds and images), for a builder and a hub admin alike."""
    for model in (
        {"name": "alice", "kind": "user", "scopes": [f"{P}build", f"{P}view"]},
        {"name": "root", "kind": "user", "scopes": [f"{P}build"], "admin": True},
    ):
        me = Caller.from_hub_model(model, P, access_help=access_help)
        assert not me.may_build_for("alice", shared=True)
        message = me.admin_only("build shared environments").message
        assert (
            message == f"Only admins (scope '{P}admin') may build shared environments: {expected}"
        )
