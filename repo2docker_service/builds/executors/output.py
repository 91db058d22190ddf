"""Lines from a stream: repo2docker's output as build log lines.

Both executors read repo2docker's output in chunks (a pipe, a container log) and hand it to
:class:`OutputParser`, which splits it into lines, unpacks ``--json-logs`` records and
remembers the line that best says why a build failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..model import EventType

__all__ = ["MAX_REASON", "LineCallback", "OutputParser", "split_lines"]

#: ``on_line(type, data)``: an executor reports one output line as
#: ``on_line("log", {"message": str})``. It must not block and never raises.
LineCallback = Callable[[str, dict[str, Any]], None]

#: Longest failure reason, in characters (longer ones are cut and end in ``...``).
MAX_REASON = 500
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(buffer: str) -> tuple[list[str], str]:
    """Split text on ``\\n``, ``\\r`` and ``\\r\\n``.

    A ``\\r\\n`` split across two reads gives one extra empty line, which callers skip.

    Args:
        buffer: decoded output, possibly ending in a partial line.

    Returns:
        ``(complete_lines, rest)`` where ``rest`` is the unterminated tail.
    """
    parts = _LINE_BREAK.split(buffer)
    rest = parts.pop()
    return parts, rest


class OutputParser:
    """Turns repo2docker ``--json-logs`` output into log lines and remembers the error.

    Text arrives in chunks (:meth:`feed_text`, whatever the pipe or the container log
    gives); a line longer than ``max_line_length`` characters is cut into pieces;
    :meth:`close` flushes an unterminated last line.

    Args:
        on_line: called with ``("log", {"message": line})`` for each non-empty line.
        max_line_length: longest line passed on, in characters.
    """

    def __init__(self, on_line: LineCallback, *, max_line_length: int = 1 << 20) -> None:
        self.on_line = on_line
        self.max_line_length = max_line_length
        self.last_line = ""
        self.last_error = ""
        self.lines = 0
        self._rest = ""

    def feed_text(self, text: str) -> None:
        """Feed decoded output: every complete line, and over-long pieces of the rest."""
        lines, rest = split_lines(self._rest + text)
        for line in lines:
            self.feed(line)
        while len(rest) > self.max_line_length:
            self.feed(rest[: self.max_line_length])
            rest = rest[self.max_line_length :]
        self._rest = rest

    def close(self) -> None:
        """The output ended: feed the unterminated last line, if any."""
        rest, self._rest = self._rest, ""
        self.feed(rest)

    def feed(self, raw: str) -> None:
        """Feed one complete line: a JSON log record is unpacked, other text passed on."""
        raw = raw.strip()
        if not raw:
            return
        record: Any = None
        if raw.startswith("{"):
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
        if not isinstance(record, dict) or "message" not in record:
            self._emit(raw, failed=False)
            return
        failed = str(record.get("phase", "")) == "failed"
        texts = [str(record.get("message", ""))]
        if record.get("exc_info"):
            texts.append(str(record["exc_info"]))
        for text in texts:
            for line in _LINE_BREAK.split(text):
                if line.strip():
                    self._emit(line.rstrip(), failed=failed)

    def _emit(self, line: str, *, failed: bool) -> None:
        self.lines += 1
        self.last_line = line
        # buildx reports the cause as "ERROR: ..." (or "#N ERROR: ..."); repo2docker's
        # own failure line ("Error during build: Command [...] returned non-zero exit
        # status 1") comes after it and says less, so it only fills an empty slot.
        if "ERROR:" in line or (failed and not self.last_error):
            self.last_error = line
        self.on_line(EventType.LOG.value, {"message": line})

    def reason(self, returncode: int) -> str:
        """One line saying why the build failed (at most :data:`MAX_REASON` characters).

        Args:
            returncode: repo2docker's exit status.
        """
        detail = self.last_error or self.last_line or "no output"
        reason = f"repo2docker exited with status {returncode}: {detail}"
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
