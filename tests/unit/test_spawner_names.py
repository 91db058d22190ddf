"""Named servers with DockerSpawner: one container per server, never another server's.

The template table is pure (:mod:`repo2docker_service.hub.dockernames`); the spawner rows
use the real Repo2DockerSpawner (DockerSpawner's own naming code) with the engine's answers
given by a stand-in for ``spawner.docker`` (no engine in unit tests; tests/e2e runs the
real hub, DockerSpawner and dockerd).
"""

from __future__ import annotations

import pytest
from docker.errors import NotFound
from traitlets.config import Config

from repo2docker_service.hub.dockernames import (
    LABEL_SERVER,
    LABEL_USER,
    owned_by,
    owner_labels,
    safe_name_template,
)
from repo2docker_service.hub.dockerspawner import Repo2DockerSpawner
from tests.rig.fake_service import User

SAFE = "{prefix}-{username}--{servername}"

TEMPLATES = [
    # (template, named, template used, problem words)
    ("{prefix}-{username}", True, SAFE, ["no {servername}"]),
    ("{prefix}-{username}", False, "{prefix}-{username}", []),
    ("{prefix}", True, SAFE, ["no {username}", "no {servername}"]),
    ("{prefix}", False, "{prefix}-{username}", ["no {username}"]),
    ("jupyter", True, "jupyter-{username}--{servername}", ["no {username}", "no {servername}"]),
    (
        "{prefix}-{imagename}",
        True,
        "{prefix}-{imagename}-{username}--{servername}",
        ["no {username}", "no {servername}"],
    ),
    (
        "{prefix}-{username}-{imagename}",
        True,
        "{prefix}-{username}-{imagename}--{servername}",
        ["no {servername}"],
    ),
    ("{prefix}-{raw_username}", True, "{prefix}-{raw_username}--{servername}", ["servername"]),
    (SAFE, True, SAFE, []),
    (SAFE, False, SAFE, []),
    ("{prefix}-{safe_username}--{servername}", True, "{prefix}-{safe_username}--{servername}", []),
    ("{servername}_{username}", True, "{servername}_{username}", []),
    ("{prefix}.{username}.{servername}", True, "{prefix}.{username}.{servername}", []),
    # separators an escaped name may contain: "a" + "b-2dc" vs "a-2db" + ...
    (
        "{prefix}-{username}-{servername}",
        True,
        "{prefix}-{username}-{servername}--{servername}",
        ["joins"],
    ),
    ("{username}{servername}", True, "{username}{servername}--{servername}", ["joins"]),
    (
        "{prefix}-{raw_username}.{raw_servername}",
        True,
        "{prefix}-{raw_username}.{raw_servername}--{servername}",
        ["joins"],
    ),
    ("{prefix}-{username}-{servername}", False, "{prefix}-{username}-{servername}", []),
    ("{prefix}-{username", True, "{prefix}-{username", ["not a format string"]),
]


@pytest.mark.parametrize(("template", "named", "used", "words"), TEMPLATES)
def test_safe_name_template(template, named, used, words):
    got, problems = safe_name_template(template, named=named)
    assert got == used
    assert len(problems) == len(words)
    for problem, word in zip(problems, words, strict=True):
        assert word in problem and repr(template) in problem


@pytest.mark.parametrize("template", sorted({t for t, *_ in TEMPLATES} - {"{prefix}-{username"}))
def test_every_template_used_tells_servers_apart(template):
    """Two users x two servers (names chosen to collide under a weak separator) give four
    different container names with the template actually used."""
    names = set()
    for user, server in [("a", "b-c"), ("a-b", "c"), ("a", "bc"), ("ab", "c")]:
        spawner = spawner_for(user, server, template)
        names.add(spawner.object_name)
    assert len(names) == 4, names


class OrmSpawner:
    """What a spawner reads its server name from (JupyterHub's database record)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = None  # not started


def spawner_for(user: str, server: str, template: str | None = None) -> Repo2DockerSpawner:
    config = Config()
    if template is not None:
        config.DockerSpawner.name_template = template
    config.DockerSpawner.prefix = "jupyter"
    spawner = Repo2DockerSpawner(user=User(user), orm_spawner=OrmSpawner(server), config=config)
    assert spawner.name == server
    return spawner


@pytest.mark.parametrize(
    ("template", "server", "container"),
    [
        (None, "", "jupyter-alice"),  # DockerSpawner's own defaults stay
        (None, "b", "jupyter-alice--b"),
        ("{prefix}-{username}", "", "jupyter-alice"),  # the default server keeps its name
        ("{prefix}-{username}", "b", "jupyter-alice--b"),
        ("{prefix}", "b", "jupyter-alice--b"),
        ("lab-{username}-{servername}", "b", "lab-alice-b--b"),
        ("lab_{username}_{servername}", "b", "lab_alice_b"),
    ],
)
def test_spawner_names_containers_with_the_safe_template(template, server, container):
    assert spawner_for("alice", server, template).object_name == container


OWNERS = [
    # (config of the container, owned by alice/b?)
    ({"Labels": owner_labels("alice", "b")}, True),
    ({"Labels": owner_labels("alice", "a")}, False),
    ({"Labels": owner_labels("bob", "b")}, False),
    ({"Labels": {LABEL_USER: "alice"}}, False),  # server "" is the default server
    (
        {
            "Labels": {**owner_labels("alice", "a")},
            "Env": ["JUPYTERHUB_USER=alice", "JUPYTERHUB_SERVER_NAME=b"],
        },
        False,
    ),  # labels win
    ({"Env": ["JUPYTERHUB_USER=alice", "JUPYTERHUB_SERVER_NAME=b"]}, True),
    ({"Env": ["JUPYTERHUB_USER=alice", "JUPYTERHUB_SERVER_NAME=a"]}, False),
    ({"Env": ["JUPYTERHUB_USER=alice"]}, False),
    ({"Env": ["PATH=/bin"], "Labels": {"other": "x"}}, False),  # not a hub's server
    ({}, False),
]


@pytest.mark.parametrize(("config", "mine"), OWNERS)
def test_owned_by(config, mine):
    assert owned_by({"Id": "c1", "Config": config}, "alice", "b") is mine


class Engine:
    """What ``spawner.docker(method, ...)`` answers: containers by name and by id."""

    def __init__(self, *containers):
        self.containers = {c["Name"]: c for c in containers} | {c["Id"]: c for c in containers}
        self.calls = []

    async def __call__(self, method, *args, **kwargs):
        self.calls.append((method, *args))
        if method.startswith("inspect_"):
            if args[0] not in self.containers:
                raise NotFound("no such container")
            return self.containers[args[0]]
        return None


def container(name, cid, user, server):
    return {"Name": name, "Id": cid, "Config": {"Labels": owner_labels(user, server)}}


async def test_another_servers_container_is_never_adopted_stopped_or_removed():
    """alice/b with a template that names it like alice/a: a's container stays untouched."""
    spawner = spawner_for("alice", "b", "{prefix}-{username}")
    spawner.object_name = "jupyter-alice"  # as an unchecked template would name it
    spawner.object_id = "id-of-a"  # as a lookup by that name would have set it
    engine = Engine(container("jupyter-alice", "id-of-a", "alice", "a"))
    spawner.docker = engine
    assert await spawner.get_object() is None
    assert spawner.object_id == ""
    assert await spawner.poll() == 0  # not running: it is not b's
    spawner.object_id = "id-of-a"  # e.g. from state saved by an earlier version
    await spawner.stop_object()
    await spawner.remove_object()
    assert [c[0] for c in engine.calls if c[0] in ("stop", "remove_container")] == []


async def test_own_container_is_found_stopped_and_removed():
    spawner = spawner_for("alice", "b")
    engine = Engine(container("jupyter-alice--b", "id-of-b", "alice", "b"))
    spawner.docker = engine
    assert (await spawner.get_object())["Id"] == "id-of-b"
    assert spawner.object_id == "id-of-b"
    await spawner.stop_object()
    await spawner.remove_object()
    assert [c[:2] for c in engine.calls if c[0] in ("stop", "remove_container")] == [
        ("stop", "id-of-b"),
        ("remove_container", "id-of-b"),
    ]


def test_labels_name_the_server():
    assert owner_labels("alice", "") == {LABEL_USER: "alice", LABEL_SERVER: ""}
