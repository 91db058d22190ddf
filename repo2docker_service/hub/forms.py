"""The spawn options form: the service's answer as HTML, and form data back as options.

Pure functions (no hub, no network): :func:`render_options_form` lists the images of
``ServiceClient.images_for``'s answer, one radio button each (all text escaped);
:func:`options_from_form` turns the posted form or the spawn URL's query into
``user_options``. :func:`format_built_at` and :func:`describe_limits` are shared with
KubeSpawner's profile descriptions.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from .buildform import BuildFormSettings, render_build_choice

__all__ = [
    "describe_limits",
    "find_image",
    "first_value",
    "format_built_at",
    "not_available",
    "options_from_form",
    "render_options_form",
]

esc = html.escape


def format_built_at(value: str | None) -> str:
    """``2026-11-23T08:56:00.12Z`` -> ``2026-11-23 08:56 UTC`` (unknown: ``unknown date``)."""
    if not value:
        return "unknown date"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return when.strftime("%Y-%m-%d %H:%M UTC")


def describe_limits(limits: dict[str, Any] | None) -> str:
    """``1 CPU, 2G memory`` / ``no limits``."""
    limits = limits or {}
    parts = []
    if limits.get("cpu"):
        parts.append(f"{limits['cpu']:g} CPU")
    if limits.get("memory"):
        parts.append(f"{limits['memory']} memory")
    return ", ".join(parts) or "no limits"


def not_available(requested: str, username: str) -> str:
    """The refusal both spawner helpers give for an image the service does not list."""
    return (
        f"The environment {requested!r} is not available to {username}: it is not yours, "
        "not shared, or no longer exists. Choose one of the environments listed here."
    )


def find_image(answer: dict[str, Any] | None, requested: str) -> dict[str, Any] | None:
    """The entry of ``answer["images"]`` that ``requested`` (an image reference) belongs to."""
    images: list[dict[str, Any]] = (answer or {}).get("images", [])
    for entry in images:
        if requested == entry.get("image") or requested in entry.get("references", []):
            return entry
    return None


def render_options_form(
    answer: dict[str, Any] | None,
    *,
    selected: str | None = None,
    service_page: str = "/services/repo2docker/",
    error: str | None = None,
    build: BuildFormSettings | None = None,
) -> str:
    """The options form HTML: one radio button per image (all text escaped).

    Args:
        answer: the service's answer (``ServiceClient.images_for``), or None on error.
        selected: the reference to preselect (default: the first image).
        service_page: link to the service's environments page (to build one).
        error: a message shown instead of the list when the service could not answer.
        build: settings of the "Build from a repository" choice (:mod:`.buildform`), or
            None for no such choice. It comes last, and is preselected when the user has
            no environments yet.
    """
    if error is not None:
        return (
            '<div class="alert alert-danger" id="repo2docker-error" role="alert">'
            f"The list of environments is not available: {esc(error)}</div>"
            '<input type="hidden" name="image" value="">'
        )
    answer = answer or {}
    images: list[dict[str, Any]] = answer.get("images", [])
    if not images:
        no_images = (
            '<p id="repo2docker-no-images">You have no environments to start yet. '
            f'<a href="{esc(service_page)}">Build one from a git repository</a> first.</p>'
        )
        if build is None:
            return no_images + '<input type="hidden" name="image" value="">'
        return (
            '<p id="repo2docker-no-images">You have no environments to start yet: build '
            f'one here, or on the <a href="{esc(service_page)}">environments page</a>.</p>'
            + '<fieldset id="repo2docker-images"><legend class="h6">Choose an environment'
            + "</legend>"
            + render_build_choice(build, checked=True)
            + "</fieldset>"
        )
    if selected is None or find_image(answer, selected) is None:
        selected = images[0]["image"]
    chosen = find_image(answer, selected)
    rows = []
    for i, entry in enumerate(images):
        # the chosen entry's radio button carries the reference asked for (e.g. a tag)
        value = selected if entry is chosen else entry["image"]
        rows.append(_image_row(i, entry, answer, value=value, checked=entry is chosen))
    extra = render_build_choice(build, checked=False) if build is not None else ""
    return (
        '<fieldset id="repo2docker-images"><legend class="h6">Choose an environment</legend>'
        + "".join(rows)
        + extra
        + "</fieldset>"
    )


def _owner_badge(entry: dict[str, Any], answer: dict[str, Any]) -> str:
    """``shared``, or the owner's name when an admin sees other users' images; else ``""``."""
    if entry.get("shared"):
        return ' <span class="badge text-bg-secondary">shared</span>'
    if answer.get("all") and entry.get("owner") != answer.get("user"):
        return f' <span class="badge text-bg-light">{esc(entry.get("owner", ""))}</span>'
    return ""


def _image_row(
    i: int, entry: dict[str, Any], answer: dict[str, Any], *, value: str, checked: bool
) -> str:
    """One radio button with the image's name, badge, repo@ref, build date and limits."""
    return (
        f'<div class="form-check mb-2 repo2docker-image" data-image="{esc(entry["image"])}">'
        f'<input class="form-check-input" type="radio" name="image" id="r2d-image-{i}" '
        f'value="{esc(value)}"{" checked" if checked else ""} required>'
        f'<label class="form-check-label" for="r2d-image-{i}">'
        f'<strong class="r2d-display-name">{esc(entry.get("display_name") or entry["name"])}'
        f"</strong>{_owner_badge(entry, answer)}<br>"
        f'<small class="text-body-secondary"><span class="r2d-repo">'
        f"{esc(entry.get('repo', ''))}@{esc(entry.get('ref', ''))}</span>"
        f' · built <span class="r2d-built">{esc(format_built_at(entry.get("built_at")))}'
        f"</span> · {esc(describe_limits(entry.get('limits')))}</small>"
        "</label></div>"
    )


def first_value(value: Any) -> Any:
    """The first item of a form field's list of values (``None`` if empty), else the value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def options_from_form(formdata: dict[str, Any]) -> dict[str, Any]:
    """Form (or query) data -> ``user_options``: ``{"image": reference}`` or ``{}``."""
    image = first_value(formdata.get("image"))
    return {"image": image} if image else {}
