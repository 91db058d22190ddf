"""The Caller: every access rule, as a table (the hub tests check the same through HTTP)."""

import pytest

from repo2docker_service.auth import Caller
from repo2docker_service.builds.model import Build
from repo2docker_service.errors import Forbidden
from repo2docker_service.images.catalog import ImageInfo

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
