"""The hub templates that link the environments page (hub/config.py add_navbar_link).

Rendered with JupyterHub's own templates and loader arrangement (its app.py: the hub's
templates under the "templates/" prefix, then c.JupyterHub.template_paths); the session hub
in tests/ui renders the home page for real.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub.app import JupyterHub
from traitlets.config import Config

from repo2docker_service.hub.config import TEMPLATES, add_navbar_link, configure_jupyterhub

HUB_TEMPLATES = Path(sys.prefix) / "share" / "jupyterhub" / "templates"
SERVICE = SimpleNamespace(name="repo2docker", href="/services/repo2docker/")
OTHER = SimpleNamespace(name="grafana", href="/services/grafana/")


def hub_env(c: Config) -> Environment:
    paths = [*JupyterHub(config=c).template_paths, str(HUB_TEMPLATES)]
    loader = ChoiceLoader(
        [PrefixLoader({"templates": FileSystemLoader([str(HUB_TEMPLATES)])}, "/"),
         FileSystemLoader(paths)]
    )  # fmt: skip
    return Environment(loader=loader, autoescape=True)


def render(c: Config, name: str, services: list[SimpleNamespace]) -> str:
    user = SimpleNamespace(
        name="alice", json_escaped_name="alice", spawner=SimpleNamespace(options_form=None),
        all_spawners=lambda include_default=False: [],
    )  # fmt: skip
    ns = {
        "user": user, "services": services, "base_url": "/hub/", "static_url": lambda p, **kw: p,
        "parsed_scopes": set(), "default_server": SimpleNamespace(active=False),
        **JupyterHub(config=c).template_vars,
    }  # fmt: skip
    return hub_env(c).get_template(name).render(**ns)


def test_configure_jupyterhub_adds_the_templates_first_and_keeps_others():
    c = Config()
    c.JupyterHub.template_paths = ["/srv/other-templates"]
    configure_jupyterhub(c, token="t")
    add_navbar_link(c)  # twice changes nothing
    hub = JupyterHub(config=c)
    assert hub.template_paths == [str(TEMPLATES), "/srv/other-templates"]
    assert hub.template_vars["repo2docker_service_name"] == "repo2docker"
    unset = Config()
    add_navbar_link(unset)
    add_navbar_link(unset)
    assert JupyterHub(config=unset).template_paths[:2] == [str(TEMPLATES), str(HUB_TEMPLATES)]
    off = Config()
    configure_jupyterhub(off, token="t", navbar_link=False)
    assert str(TEMPLATES) not in JupyterHub(config=off).template_paths


@pytest.mark.parametrize(
    ("page", "services", "linked"),
    [
        ("page.html", [OTHER, SERVICE], True),
        ("home.html", [SERVICE], True),
        ("spawn.html", [SERVICE], True),
        # a user who may not reach the service: the hub does not list it, no link
        ("home.html", [OTHER], False),
        ("page.html", [], False),
    ],
)
def test_the_hub_pages_link_the_environments_page(page, services, linked):
    c = Config()
    add_navbar_link(c, label="Environments")
    html = render(c, page, services)
    # the hub's own navbar is still all there (extended, not replaced)
    for own in ('href="/hub/home">Home', 'href="/hub/token">Token', 'id="dark-theme-toggle"'):
        assert own in html, own
    assert ('id="repo2docker-navbar-link" href="/services/repo2docker/"' in html) is linked
    if page != "page.html":
        assert ('id="repo2docker-hint"' in html) is linked
