"""How fresh a catalog's listings are: live, or the last good read served while the engine
or registry does not answer (stale), and since when.

No I/O: a catalog tells :class:`Freshness` when a complete read succeeded or failed, and
asks it whether the last good read may answer. Readiness (``GET ready``) and the listings
(``api/images``) report :meth:`Freshness.state`.
"""

from __future__ import annotations

import time

from .catalog import CatalogState

__all__ = ["Freshness"]


class Freshness:
    """The freshness of one catalog's listings.

    Args:
        source: where listings come from, for reports (``"engine"``, ``"registry"``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        #: a complete read succeeded at least once (the last one can answer)
        self.has_good = False
        #: the last listing was answered from that older read
        self.stale = False
        self._last_good = 0.0  # monotonic time of the last complete read
        self._down_since: float | None = None  # Unix time reads started failing

    def read_ok(self) -> None:
        """A complete read of the source just succeeded."""
        self.has_good, self.stale = True, False
        self._last_good = time.monotonic()
        self._down_since = None

    def read_failed(self) -> bool:
        """A read failed because the source does not answer.

        Returns:
            Whether the last good read may answer instead (it is then marked stale).
        """
        if self._down_since is None:
            self._down_since = time.time()
        if self.has_good:
            self.stale = True
        return self.has_good

    @property
    def down_since(self) -> float | None:
        """Unix time reads started failing; None while they work."""
        return self._down_since

    def state(self) -> CatalogState:
        """The catalog's state: ``live`` while reads work; ``stale`` when the last listing
        came from an older read; ``since`` the Unix time reads started failing;
        ``last_good_age_s`` seconds since the last complete read (None before one)."""
        age = time.monotonic() - self._last_good if self.has_good else None
        return CatalogState(
            live=self._down_since is None,
            stale=self.stale,
            since=self._down_since,
            last_good_age_s=age,
            source=self.source,
        )
