"""Stand-ins for the spawner unit tests: the service's images endpoint, a hub user, a kube config.

:func:`start_fake_images` serves ``GET .../api/users/<name>/images`` on 127.0.0.1 the way the
service answers a spawner (token :data:`TOKEN`), recording every request; :class:`User` is what
spawners read from ``spawner.user``; :func:`use_kubeconfig` points kubernetes_asyncio at a
config whose cluster nobody answers (KubeSpawner reads one when it is created).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import kubernetes_asyncio.config.kube_config as kube_config
import pytest
from tornado import web
from tornado.httpserver import HTTPServer

TOKEN = "spawner-test-token"

ALICE_IMAGE: dict[str, Any] = {
    "owner": "alice",
    "shared": False,
    "owner_slug": "alice",
    "name": "hello",
    "display_name": "Hello <b>world</b>",
    "repo": "https://git.example.org/hello.git",
    "ref": "main",
    "commit": "7c71e06654c1" + "0" * 28,
    "image": "r2d-alice/hello:7c71e06654c1",
    "latest": "r2d-alice/hello:latest",
    "tags": ["latest", "7c71e06654c1", "0123456789ab"],
    "references": [
        "r2d-alice/hello:latest",
        "r2d-alice/hello:7c71e06654c1",
        "r2d-alice/hello:0123456789ab",
    ],
    "built_at": "2026-11-23T08:56:00.123456Z",
    "hints": {"cpu": "2"},
    "limits": {"cpu": 1.5, "memory": "2G", "profile": None, "source": "hints"},
}
SHARED_IMAGE: dict[str, Any] = {
    **ALICE_IMAGE,
    "owner": "",
    "shared": True,
    "owner_slug": "shared",
    "name": "course",
    "display_name": "Course",
    "image": "r2d-shared/course:aaaaaaaaaaaa",
    "latest": "r2d-shared/course:latest",
    "tags": ["latest", "aaaaaaaaaaaa"],
    "references": ["r2d-shared/course:latest", "r2d-shared/course:aaaaaaaaaaaa"],
    "limits": {"cpu": None, "memory": None, "profile": None, "source": "default"},
}
BOB_IMAGE: dict[str, Any] = {
    **ALICE_IMAGE,
    "owner": "bob",
    "owner_slug": "bob",
    "name": "secret",
    "display_name": "Bob's",
    "image": "r2d-bob/secret:bbbbbbbbbbbb",
    "references": ["r2d-bob/secret:bbbbbbbbbbbb"],
}

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: none
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: none
  user: {token: unused}
contexts:
- name: none
  context: {cluster: none, user: none}
current-context: none
"""


class FakeImages(web.RequestHandler):
    """``GET .../users/<name>/images``: the user's and shared images, all with ``?admin=true``."""

    def initialize(self, state: dict[str, Any]) -> None:
        self.state = state

    def get(self, name: str) -> None:
        self.state["requests"].append(
            {
                "name": name,
                "auth": self.request.headers.get("Authorization"),
                "admin": self.get_argument("admin", None),
            }
        )
        if self.request.headers.get("Authorization") != f"token {TOKEN}":
            self.set_status(403)
            self.finish({"status": 403, "message": "Missing permission 'custom:repo2docker:spawn'"})
            return
        everything = self.get_argument("admin", "") == "true"
        images = [ALICE_IMAGE, SHARED_IMAGE, BOB_IMAGE]
        if not everything:
            images = [i for i in images if i["shared"] or i["owner"] == name]
        self.finish(
            json.dumps(
                {
                    "user": name,
                    "all": everything,
                    "images": images,
                    "machine_profiles": [],
                    "defaults": {"cpu": None, "memory": None},
                }
            )
        )


def start_fake_images() -> tuple[dict[str, Any], HTTPServer]:
    """Serve :class:`FakeImages` on a free port of 127.0.0.1 (call inside an event loop).

    Returns ``(state, server)``: ``state["url"]`` is the service URL (trailing slash),
    ``state["requests"]`` the requests so far; stop with ``server.stop()``.
    """
    state: dict[str, Any] = {"requests": []}
    app = web.Application(
        [(r"/services/repo2docker/api/users/([^/]+)/images", FakeImages, {"state": state})]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = HTTPServer(app)
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/services/repo2docker/"
    return state, server


class User:
    """What spawners read from ``spawner.user`` (no orm_user: not an admin)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = 7
        self.url = f"/user/{name}/"
        self.escaped_name = name


def use_kubeconfig(path: Path, mp: pytest.MonkeyPatch) -> None:
    """Write :data:`KUBECONFIG` to ``path`` and make kubernetes_asyncio read it (via ``mp``).

    kubernetes_asyncio reads ``$KUBECONFIG`` when it is imported, so the module's copy of the
    default location is patched; an in-cluster environment is hidden.
    """
    path.write_text(KUBECONFIG)
    mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    mp.delenv("KUBERNETES_SERVICE_HOST", raising=False)
