"""Which CPU and memory limits a server started from an image gets.

One pure function, :func:`resolve_limits`, used by the service when it answers spawners
(``GET api/users/{name}/images``), so DockerSpawner, KubeSpawner and any other client get
the same numbers. The rules, in order:

1. The image's ``profile`` hint names one of the configured ``machine_profiles``: that
   profile's cpu and memory (a value the profile leaves out falls back to the default).
2. ``machine_profiles`` are configured but the image names none of them: the defaults. Raw
   cpu/memory hints are ignored then, because the admins decided on fixed sizes.
3. No ``machine_profiles``: the image's cpu/memory hints, each capped by the default when
   the default is set (``default_cpu_limit`` > 0, ``default_memory_limit`` not empty); a
   missing hint gives the default.

A machine profile is a dict with ``cpu`` (number of CPUs) and ``memory`` (a size such as
``"2G"`` or ``"16GB"``, or a plain number meaning GiB, as tljh-repo2docker writes them) and a
name: ``name`` (a slug), else ``label`` or ``display_name`` (turned into a slug the same way).

Every memory value here goes through :mod:`repo2docker_service.sizes` (one parser) and comes
out in its canonical form (``"16G"``, ``"1536M"``), which JupyterHub's ``ByteSpecification``
reads as the same bytes: spawners never see what an admin or user typed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .sizes import normalize_memory, parse_memory

__all__ = ["Limits", "memory_bytes", "normalize_profiles", "profile_slug", "resolve_limits"]


@dataclass(frozen=True)
class Limits:
    """Limits for one image.

    Attributes:
        cpu: number of CPUs, or None for no limit.
        memory: a size like ``"2G"``, or None for no limit.
        profile: the slug of the machine profile used, or None.
        source: ``"profile"``, ``"hints"`` or ``"default"``: where the numbers came from.
    """

    cpu: float | None
    memory: str | None
    profile: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """``{"cpu": float | None, "memory": str | None, "profile": str | None, "source": str}``."""
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "profile": self.profile,
            "source": self.source,
        }


def memory_bytes(value: str | float | None) -> int | None:
    """A memory size in bytes by :func:`repo2docker_service.sizes.parse_memory`'s rule.

    Args:
        value: ``"512M"``, ``"2G"``, ``"16GB"``, ``"1.5G"``, ``"2 GiB"``, a whole number of
            bytes (at least 64M), or None/""/0 for none.

    Returns:
        Bytes, or None for no limit.

    Raises:
        SizeError: (a ValueError) not a size, or outside 64M..1024T.
    """
    return parse_memory(value) or None


def profile_slug(text: str) -> str:
    """A machine profile's slug from its name or label (``"Small (1 CPU)"`` -> ``small-1-cpu``)."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:63]


def normalize_profiles(profiles: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Machine profiles in one shape: ``{"slug", "display_name", "cpu", "memory"}``.

    Raises:
        ValueError: a profile without name/label/display_name, or with a bad cpu/memory
            (memory comes out canonical, ``"16GB"`` -> ``"16G"``; a plain number is GiB).
    """
    out = []
    for p in profiles:
        label = p.get("display_name") or p.get("label") or p.get("name")
        if not label:
            raise ValueError(f"machine profile {dict(p)!r} needs a name or a label")
        # the slug prefers slug (already normalized), name, then label; if all are empty,
        # `label` holds display_name
        slug = profile_slug(p.get("slug") or p.get("name") or p.get("label") or label)
        cpu = p.get("cpu")
        if cpu is not None and cpu != "":
            cpu = float(cpu)
            if cpu <= 0:
                raise ValueError(f"machine profile {label!r}: cpu must be > 0")
        else:
            cpu = None
        out.append(
            {
                "slug": slug,
                "display_name": str(label),
                "cpu": cpu,
                "memory": normalize_memory(
                    p.get("memory"), what=f"machine profile {str(label)!r}: memory", bare_unit="G"
                ),
            }
        )
    return out


def _cap_cpu(hint: str | None, default: float | None) -> float | None:
    if hint in (None, ""):
        return default
    value = float(hint)
    return min(value, default) if default else value


def _cap_memory(hint: str | None, default: str | None) -> str | None:
    """The hint in canonical form, at most the default (ValueError for a bad label)."""
    hint_bytes = parse_memory(hint, what="hint memory")
    if not hint_bytes:
        return default
    if default and hint_bytes > parse_memory(default):
        return default
    return normalize_memory(hint_bytes)


def resolve_limits(
    hints: Mapping[str, str] | None,
    *,
    machine_profiles: Sequence[Mapping[str, Any]] = (),
    default_cpu: float | None = None,
    default_memory: str | None = None,
) -> Limits:
    """The limits a server started from an image with these hints gets.

    Args:
        hints: the image's hints (``profile``, ``cpu``, ``memory``), as stored in its labels.
        machine_profiles: the service's ``machine_profiles`` (any shape
            :func:`normalize_profiles` accepts).
        default_cpu: ``default_cpu_limit``; 0 or None for no limit.
        default_memory: ``default_memory_limit``; "" or None for no limit.

    Returns:
        The :class:`Limits` (see the module docstring for the rules); its memory is in the
        canonical form of :func:`repo2docker_service.sizes.canonical_memory`.

    Raises:
        ValueError: a machine profile or default is malformed (a config error).
    """
    hints = hints or {}
    default_cpu = float(default_cpu) if default_cpu else None
    default_memory = normalize_memory(default_memory, what="default_memory_limit")
    profiles = normalize_profiles(machine_profiles)
    wanted = hints.get("profile")
    if wanted:
        for p in profiles:
            if p["slug"] == profile_slug(wanted):
                return Limits(
                    cpu=p["cpu"] if p["cpu"] is not None else default_cpu,
                    memory=p["memory"] or default_memory,
                    profile=p["slug"],
                    source="profile",
                )
    if profiles:
        return Limits(cpu=default_cpu, memory=default_memory, profile=None, source="default")
    try:
        cpu = _cap_cpu(hints.get("cpu"), default_cpu)
        memory = _cap_memory(hints.get("memory"), default_memory)
    except ValueError:
        # labels are validated when images are built; anything else gets the defaults
        return Limits(cpu=default_cpu, memory=default_memory, profile=None, source="default")
    used_hints = bool(hints.get("cpu") or hints.get("memory"))
    return Limits(cpu=cpu, memory=memory, profile=None, source="hints" if used_hints else "default")
