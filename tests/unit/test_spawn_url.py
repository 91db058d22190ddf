"""The spawn URL of launch links: it ends on the server's URL without ``?image=`` (issue 17).

JupyterHub carries a spawn URL's query on to the server's URL unless ``next`` is given, so
every spawn URL the service makes names the server's URL as ``next``, spelled as JupyterHub's
``User.server_url`` spells it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from jupyterhub.utils import url_escape_path, url_path_join

from repo2docker_service.handlers.launch import spawn_url

IMAGE = "127.0.0.1:5000/r2d/alice-hello:latest"


def server_url(base_url: str, user: str, server: str) -> str:
    """What JupyterHub's ``User.server_url(server)`` answers for a user called ``user``."""
    prefix = url_path_join(base_url, "user", url_escape_path(user)) + "/"
    return url_path_join(prefix, url_escape_path(server)) + "/"


@pytest.mark.parametrize(
    ("hub_prefix", "base_url"),
    [("/hub/", "/"), ("/hub", "/"), ("/jupyter/hub/", "/jupyter/"), ("/a/b/hub/", "/a/b/")],
)
@pytest.mark.parametrize(
    ("user", "server"),
    [
        ("alice", "hello"),
        ("first.last@example.org", "my-env"),
        ("ünïcode", "b-analysis"),
        ("a b", "x_y.z"),
        ("tilde~user", "env"),
    ],
)
def test_spawn_url_names_the_server_as_next(hub_prefix, base_url, user, server):
    url = spawn_url(hub_prefix, user, server, IMAGE)
    parts = urlsplit(url)
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {"image": [IMAGE], "next": [server_url(base_url, user, server)]}
    assert parts.path.startswith(hub_prefix.rstrip("/") + "/spawn/")
    # the hub validates next as a path on the same host
    assert query["next"][0].startswith("/") and not query["next"][0].startswith("//")
