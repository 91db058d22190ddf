"""The spawn form's "Build from a repository" choice (issue 13): HTML, and which scopes
its token asks the hub for.

The choice is a radio button beside the environments; choosing it shows a repository URL
and a ref field, a Build button and the build's log. The page's script
(``static/js/spawnform.js``, served by the service under its prefix) does the rest in the
browser, against the service's own API:

1. it asks the hub for a short-lived API token of the logged-in user, with only
   :func:`token_scopes` (``POST <hub>/api/users/<name>/tokens``, the hub's cookie and the
   page's ``_xsrf`` token, as JupyterHub 5/6 require for a cookie-authenticated POST). The
   hub's login cookie is not sent to ``/services/<name>/`` (its path is the hub's) and the
   service's own OAuth cookie exists only after a visit to the service, so a token is the
   one credential that works from the spawn page; fancy-profiles does the same;
2. ``POST api/builds`` with it (the native API, not BinderHub's ``build/``: its errors carry
   ``field`` and ``suggestions``, shown on the URL and ref fields, and it answers a cache
   hit at once), then follows ``GET api/builds/{id}/events`` (Server-Sent Events read with
   ``fetch``, because ``EventSource`` cannot send the token), resuming after a dropped
   connection from the last event id;
3. when the build is ``built``, it adds the image as a radio button of the form, selected,
   and deletes the token. Start posts the form; the spawner checks the image against the
   service's list for the user, as for every other choice.

Everything is rendered hidden: without the script, the choice does not show.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["BuildFormSettings", "render_build_choice", "service_name_of", "token_scopes"]

esc = html.escape

_SERVICE_PATH = re.compile(r"/services/([^/]+)/?$")


@dataclass(frozen=True, slots=True)
class BuildFormSettings:
    """What the build choice needs to know.

    Attributes:
        service_page: the service's path as browsers reach it (``/services/repo2docker/``).
        user: the spawner's user (the build's owner; the form hides the choice when the
            logged-in user is someone else, e.g. an admin spawning for a user).
        scopes: the scopes of the token the form asks the hub for (:func:`token_scopes`).
        token_seconds: the token's lifetime in seconds (deleted earlier, when the build
            ends); 0: the hub's own default (``token_expires_in_max_seconds``, else none).
    """

    service_page: str
    user: str
    scopes: tuple[str, ...]
    token_seconds: int


def service_name_of(service_page: str, default: str = "repo2docker") -> str:
    """The service's name from its path: ``/jh/services/<name>/`` -> ``<name>``."""
    found = _SERVICE_PATH.search(service_page)
    return found.group(1) if found else default


def token_scopes(held: set[str], *, service_name: str, scope_prefix: str) -> tuple[str, ...]:
    """The scopes of the form's token: reaching the service, and building.

    Args:
        held: the scopes the user holds (JupyterHub's ``get_scopes_for``, expanded).
        service_name, scope_prefix: the service's name and its custom scopes' prefix.

    Returns:
        ``(access:services!service=<name>, <prefix>build)``, or ``()`` when the user holds
        either not (JupyterHub refuses a token with scopes its owner lacks; such a user
        gets no build choice). ``access:services`` held without a filter covers the first.
    """
    access = f"access:services!service={service_name}"
    build = f"{scope_prefix}build"
    if not (access in held or "access:services" in held):
        return ()
    if build not in held:
        return ()
    return (access, build)


def render_build_choice(settings: BuildFormSettings, *, checked: bool) -> str:
    """The radio button, the panel (URL, ref, Build, log) and the script tag, all escaped."""
    service = (
        settings.service_page
        if settings.service_page.endswith("/")
        else (settings.service_page + "/")
    )
    choice = (
        '<div class="form-check mb-2" id="r2d-build-choice-row" hidden>'
        '<input class="form-check-input" type="radio" name="image" id="r2d-build-choice" '
        f'value=""{" checked" if checked else ""}>'
        '<label class="form-check-label" for="r2d-build-choice">'
        "<strong>Build from a repository</strong><br>"
        '<small class="text-body-secondary">Build a new environment from a git repository '
        "with repo2docker, then start it.</small></label></div>"
    )
    panel = (
        '<div id="r2d-build" class="border rounded p-3 mb-3" hidden '
        f'data-service="{esc(service)}" data-user="{esc(settings.user)}" '
        f'data-scopes="{esc(" ".join(settings.scopes))}" '
        f'data-token-seconds="{int(settings.token_seconds)}">'
        + _field("repo", "Git repository URL", "https://github.com/org/repo", 2048, "url")
        + _field("ref", "Branch, tag or commit", "HEAD", 255, "text", mono=True)
        + '<button type="button" class="btn btn-outline-primary" id="r2d-build-button">'
        "Build</button>"
        '<p id="r2d-build-status" class="mt-2 mb-2" role="status" aria-live="polite"></p>'
        '<pre id="r2d-build-log" class="border rounded p-2 small mb-0" tabindex="0" '
        'role="log" aria-label="Build log" hidden style="max-height: 20rem; overflow: auto; '
        'white-space: pre-wrap; overflow-wrap: anywhere;"></pre>'
        "</div>"
        f'<script type="module" src="{esc(service)}static/js/spawnform.js"></script>'
    )
    return choice + panel


def _field(
    name: str, label: str, placeholder: str, maxlength: int, mode: str, *, mono: bool = False
) -> str:
    """One labelled input without a ``name`` (never posted with the spawn form)."""
    field_id = f"r2d-build-{name}"
    cls = "form-control font-monospace" if mono else "form-control"
    return (
        f'<div class="mb-3"><label for="{field_id}" class="form-label">{esc(label)}</label>'
        f'<input id="{field_id}" class="{cls}" type="text" inputmode="{mode}" '
        'spellcheck="false" autocapitalize="off" autocomplete="off" '
        f'maxlength="{maxlength}" placeholder="{esc(placeholder)}" '
        f'data-field="{name}" aria-describedby="{field_id}-feedback">'
        f'<div id="{field_id}-feedback" class="invalid-feedback"></div></div>'
    )
