"""Memory sizes: the one parser for every memory field, and the form spawners are handed.

Every memory value the service reads goes through :func:`parse_memory`: machine profiles'
``memory``, the ``memory`` build hint (API, UI, launch links), ``default_memory_limit`` and
``c.DockerExecutor.builder_memory_limit``. Bad config values stop the service at start-up;
bad request values get a 400 whose message is :data:`ACCEPTED_FORMS`.

The rule (one for all fields):

- A number, then optionally spaces, then a unit: ``K``, ``M``, ``G``, ``T``, each optionally
  followed by ``i``, ``B`` or ``iB``, in any case: ``512M``, ``512m``, ``512MB``, ``16G``,
  ``16GB``, ``16Gi``, ``16 GiB``, ``1.5G``. Every unit is a power of 1024, as in Docker,
  Kubernetes' ``Gi`` and JupyterHub's ``ByteSpecification``: ``16GB`` is 16 GiB, never
  16 * 10**9 bytes. ``B`` alone is bytes.
- A number without a unit (``"2"``, ``2``, ``2147483648``) is a number of **bytes**, except in
  machine profiles, where it is GiB because tljh-repo2docker writes profiles that way
  (``{"memory": 2}`` = 2 GiB). Bytes below the minimum are refused with a message that asks for
  a unit, so a hint ``"2"`` can never become a 2-byte limit.
- At least :data:`MIN_MEMORY` (64M: less than a Jupyter server needs, and Docker's own floor is
  6M) and at most :data:`MAX_MEMORY` (1024T). ``0`` (any unit), ``""`` and None mean "no limit".
- Exponents, signs, commas and other units are refused.

The canonical form (:func:`canonical_memory`) is what the service stores in labels and hands
to spawners in ``GET api/users/{name}/images``: whole KiB (rounded down) written with the
largest of ``K``/``M``/``G``/``T`` that divides them exactly, e.g. ``"16G"``, ``"1536M"``.
JupyterHub's ``ByteSpecification`` (``Spawner.mem_limit`` of DockerSpawner and KubeSpawner)
reads it as exactly those bytes, so hub-side code never parses sizes itself.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "ACCEPTED_FORMS",
    "MAX_MEMORY",
    "MIN_MEMORY",
    "SizeError",
    "canonical_memory",
    "normalize_memory",
    "parse_memory",
]

#: Smallest limit accepted, in bytes (64 MiB).
MIN_MEMORY = 64 * 1024**2
#: Largest limit accepted, in bytes (1024 TiB).
MAX_MEMORY = 1024**5

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_CANONICAL = (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))
_SIZE_RE = re.compile(
    r"([0-9]{1,16}(?:\.[0-9]{1,9})?|\.[0-9]{1,9})\s*(?:([KMGT])(?:I|B|IB)?|(B))?",
    re.IGNORECASE,
)

#: What every refusal names: the forms a memory size may take.
ACCEPTED_FORMS = (
    "write a size with a unit, e.g. 512M, 512MB, 2G, 2GB, 2Gi, '2 GiB' or 1.5G "
    "(K, M, G and T are powers of 1024), or a whole number of bytes; "
    "at least 64M, at most 1024T; 0 or empty means no limit"
)


class SizeError(ValueError):
    """A memory size that is not acceptable; the message says why and names the forms."""


def _number(value: str | float, what: str) -> tuple[float, str]:
    """``(number, unit letter or "")`` of a size; SizeError when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SizeError(f"{what} must be a string or a number: {ACCEPTED_FORMS}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise SizeError(f"{what} {value!r} is not a size: {ACCEPTED_FORMS}")
        return float(value), ""
    m = _SIZE_RE.fullmatch(value.strip())
    if m is None:
        shown = value.strip()[:40]
        raise SizeError(f"{what} {shown!r} is not a size: {ACCEPTED_FORMS}")
    unit = (m.group(2) or m.group(3) or "").upper()
    return float(m.group(1)), unit


def parse_memory(value: str | float | None, *, what: str = "memory", bare_unit: str = "") -> int:
    """A memory size in bytes, by the module's rule.

    Args:
        value: what a person or a config file wrote: ``"16GB"``, ``"512m"``, ``"1.5G"``,
            ``"2 GiB"``, ``2147483648``; None, ``""`` or 0 for no limit.
        what: how the message names the field, e.g. ``"hint memory"``.
        bare_unit: the unit of a number written without one: ``""`` (bytes, the default) or
            ``"G"`` (machine profiles, as tljh-repo2docker writes them).

    Returns:
        Bytes; 0 means no limit.

    Raises:
        SizeError: not a size, a number of bytes below :data:`MIN_MEMORY` (the message
            suggests a unit), or above :data:`MAX_MEMORY`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    number, unit = _number(value, what)
    size = int(number * _UNITS[unit or bare_unit])
    if size == 0:
        return 0
    if size < MIN_MEMORY:
        shown = value.strip() if isinstance(value, str) else f"{value:g}"
        hint = ""
        if not unit and not bare_unit:
            hint = f" A number without a unit is bytes: add a unit, e.g. {shown[:20]}G."
        raise SizeError(f"{what} {shown[:40]!r} is below the minimum 64M.{hint} ({ACCEPTED_FORMS})")
    if size > MAX_MEMORY:
        raise SizeError(f"{what} is above the maximum 1024T ({ACCEPTED_FORMS})")
    return size


def canonical_memory(size: int) -> str:
    """The form spawners get: ``16 * 1024**3`` -> ``"16G"``, 1.5 GiB -> ``"1536M"``.

    Args:
        size: bytes, at least 1024 (smaller sizes are refused by :func:`parse_memory`).

    Returns:
        Whole KiB (rounded down) with the largest unit that divides them exactly.
    """
    kib = size // 1024
    for unit, factor in _CANONICAL:
        if kib * 1024 % factor == 0:
            return f"{kib * 1024 // factor}{unit}"
    return f"{kib}K"  # not reached: K always divides


def normalize_memory(
    value: str | float | None, *, what: str = "memory", bare_unit: str = ""
) -> str | None:
    """:func:`parse_memory` then :func:`canonical_memory`; None for no limit.

    Raises:
        SizeError: as :func:`parse_memory`.
    """
    size = parse_memory(value, what=what, bare_unit=bare_unit)
    return canonical_memory(size) if size else None
