"""Lines from a stream: repo2docker's output as build log lines.

Both executors read repo2docker's output in chunks (a pipe, a container log) and hand it to
:class:`OutputParser`, the one place log lines are made. It splits the stream into lines,
unpacks ``--json-logs`` records, collapses carriage-return progress frames the way a
terminal shows them (:class:`TerminalLines`), and remembers the line that best says why a
build failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..model import EventType

__all__ = [
    "MAX_REASON",
    "PROGRESS",
    "STAGES",
    "LineCallback",
    "OutputParser",
    "TerminalLines",
    "compact_frames",
    "visible",
]

#: ``on_line(type, data)``: an executor reports one output line as
#: ``on_line("log", {"message": str})`` (with ``"stage"``, one of :data:`STAGES`, when
#: repo2docker named the step the line belongs to), and that output goes on without a new
#: line (progress frames were collapsed) as ``on_line("progress", {"message": current
#: frame})``, at most once per chunk read. It must not block and never raises.
LineCallback = Callable[[str, dict[str, Any]], None]

#: The ``on_line`` type saying "still printing, no new line": no event, but not idle.
PROGRESS = "progress"

#: The steps repo2docker's ``--json-logs`` records name in their ``phase`` field that a log
#: line keeps as its ``stage`` (its "failed" and "running" records are no step of a build).
STAGES = ("fetching", "building", "pushing")

#: Longest failure reason, in characters (longer ones are cut and end in ``...``).
MAX_REASON = 500
#: output that names the cause better than the last error line: (text, lowercase, the
#: sentence a failed build's reason starts with)
OUTPUT_CAUSES = (
    (
        "no space left on device",
        "the Docker engine's disk is full (no space left on device): free space in its data "
        "root (docker system prune, docker builder prune) or give it more",
    ),
    (
        "cannot connect to the docker daemon",
        "the Docker engine stopped answering: check that dockerd is running and DOCKER_HOST "
        "points at it",
    ),
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TERMINAL_TOKEN = re.compile(r"(\r\n|\r|\n)")
# CSI (colours, erase line, cursor moves), OSC (titles, links) and two-byte escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


def visible(text: str) -> bool:
    """True when ``text`` shows something: not only spaces and ANSI escape sequences."""
    return bool(_ANSI.sub("", text).strip())


def compact_frames(partial: str) -> str:
    """An unterminated line with its carriage-return frames reduced to what still matters.

    ``a\\rb\\rc`` becomes ``b\\rc`` (``c`` is still being written; ``b`` is shown if ``c``
    ends up blank), so a stream of progress frames without a newline holds two frames in
    memory, not all of them. A trailing ``\\r`` is kept: it may be the first half of a
    ``\\r\\n`` split across two reads. ``TerminalLines`` gives the same lines for the
    compacted text as for the original.

    Args:
        partial: text without ``\\n``.
    """
    if "\r" not in partial[:-1]:
        return partial
    *done, current = partial.split("\r")
    shown = next((frame for frame in reversed(done) if visible(frame)), "")
    return f"{shown}\r{current}" if shown else f"\r{current}"


class TerminalLines:
    """Text as a terminal shows it: each line is the last frame written over it with ``\\r``.

    ``\\n`` and ``\\r\\n`` end a line (also when the ``\\r`` and the ``\\n`` arrive in
    different calls); a lone ``\\r`` goes back to the line's start, so the next text replaces
    what was there. The line that comes out is its last frame with visible text (a blank or
    escape-only last frame, e.g. ``\\x1b[2K``, leaves the one before it), and a shorter last
    frame does not keep the tail of a longer one. 200,000 progress frames on one line give one
    line. At most two frames are held between calls.
    """

    def __init__(self) -> None:
        self._shown = ""  # the last finished frame with visible text, on the current line
        self._text = ""  # the frame being written
        self._cr = False  # a \r was the last character: new frame, or the \r of a \r\n
        self.collapsed = 0  # frames replaced by a later one, in all

    @property
    def pending(self) -> str:
        """What the current, unterminated line shows now ("" when nothing)."""
        return self._text if visible(self._text) else self._shown

    def feed(self, text: str) -> list[str]:
        """Feed text; return the lines it completed (only lines with visible text)."""
        lines: list[str] = []
        for piece in _TERMINAL_TOKEN.split(text):
            if piece in ("\n", "\r\n"):
                self._cr = False
                self._end_line(lines)
            elif piece == "\r":
                if self._cr:
                    self._end_frame()
                self._cr = True
            elif piece:
                if self._cr:
                    self._end_frame()
                    self._cr = False
                self._text += piece
        return lines

    def close(self) -> list[str]:
        """The output ended: the unterminated line, if it shows anything."""
        lines: list[str] = []
        self._cr = False
        self._end_line(lines)
        return lines

    def _end_frame(self) -> None:
        if visible(self._text):
            if self._shown:
                self.collapsed += 1
            self._shown = self._text
        self._text = ""

    def _end_line(self, lines: list[str]) -> None:
        self._end_frame()
        if self._shown:
            lines.append(self._shown)
        self._shown = ""


class OutputParser:
    """Turns repo2docker ``--json-logs`` output into log lines and remembers the error.

    Text arrives in chunks (:meth:`feed_text`, whatever the pipe or the container log
    gives). Raw lines end at ``\\n``; a JSON log record's message is written to a
    :class:`TerminalLines` (repo2docker passes buildx's output on in pieces that end in
    ``\\r`` for each progress frame), as is every other line, so carriage-return frames
    collapse to the last one per line, across chunks and records. A raw line longer than
    ``max_line_length`` characters is cut into pieces; :meth:`close` flushes the end.

    Args:
        on_line: called with ``("log", {"message": line})`` for each line with visible
            text, and with ``("progress", {"message": frame})`` once per chunk in which
            frames were collapsed (the build is not idle). A line completed by a JSON record
            naming a step (:data:`STAGES`) carries it as ``"stage"``.
        max_line_length: longest line passed on, in characters.
    """

    def __init__(self, on_line: LineCallback, *, max_line_length: int = 1 << 20) -> None:
        self.on_line = on_line
        self.max_line_length = max_line_length
        self.last_line = ""
        self.last_error = ""
        #: what :data:`OUTPUT_CAUSES` found in the output ("" for nothing)
        self.output_cause = ""
        self.lines = 0
        self._rest = ""
        self._terminal = TerminalLines()
        self._compacted = 0  # frames dropped from a raw line before it ended

    @property
    def collapsed(self) -> int:
        """How many progress frames were replaced by later ones (not passed on)."""
        return self._terminal.collapsed + self._compacted

    def feed_text(self, text: str) -> None:
        """Feed decoded output: every complete line, and over-long pieces of the rest."""
        before = self.collapsed
        *lines, rest = (self._rest + text).split("\n")
        for line in lines:
            self.feed(line.removesuffix("\r"))
        compact = compact_frames(rest)
        self._compacted += rest.count("\r") - compact.count("\r")
        # only the frame being written counts toward max_line_length
        head, cr, current = compact.rpartition("\r")
        while len(current) > self.max_line_length:
            self.feed(head + cr + current[: self.max_line_length])
            head, cr, current = "", "", current[self.max_line_length :]
        self._rest = rest = head + cr + current
        if self.collapsed != before or "\r" in rest[:-1]:
            frame = self._terminal.pending or rest.rpartition("\r")[2]
            self.on_line(PROGRESS, {"message": frame})

    def close(self) -> None:
        """The output ended: feed the unterminated last line and the terminal's last line."""
        rest, self._rest = self._rest, ""
        self.feed(rest.removesuffix("\r"))
        for line in self._terminal.close():
            self._emit(line, failed=False)

    def feed(self, raw: str) -> None:
        """Feed one complete raw line: a JSON log record is unpacked, other text passed on."""
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
            self._write(raw + "\n", failed=False)
            return
        phase = str(record.get("phase", ""))
        failed, stage = phase == "failed", phase if phase in STAGES else None
        message = str(record.get("message", ""))
        # a record is a line unless it is a progress frame (ends in a lone \r)
        text = message if message.endswith(("\n", "\r")) else message + "\n"
        self._write(text, failed=failed, stage=stage)
        if record.get("exc_info"):
            self._write(str(record["exc_info"]) + "\n", failed=failed, stage=stage)

    def _write(self, text: str, *, failed: bool, stage: str | None = None) -> None:
        for line in self._terminal.feed(text):
            self._emit(line.rstrip(), failed=failed, stage=stage)

    def _emit(self, line: str, *, failed: bool, stage: str | None = None) -> None:
        self.lines += 1
        self.last_line = line
        # buildx reports the cause as "ERROR: ..." (or "#N ERROR: ..."); repo2docker's
        # own failure line ("Error during build: Command [...] returned non-zero exit
        # status 1") comes after it and says less, so it only fills an empty slot.
        if "ERROR:" in line or (failed and not self.last_error):
            self.last_error = line
        if not self.output_cause:
            lower = line.lower()
            self.output_cause = next((c for text, c in OUTPUT_CAUSES if text in lower), "")
        data: dict[str, Any] = {"message": line}
        if stage is not None:
            data["stage"] = stage
        self.on_line(EventType.LOG.value, data)

    def reason(self, returncode: int, *, cause: str | None = None) -> str:
        """One line saying why the build failed (at most :data:`MAX_REASON` characters).

        Args:
            returncode: repo2docker's exit status.
            cause: what the exit itself says (:func:`.exits.exit_cause`: out of memory,
                a signal); it comes first, then a cause the output named
                (:data:`OUTPUT_CAUSES`: a full disk), the last error line after them.
        """
        detail = self.last_error or self.last_line or "no output"
        cause = "; ".join(c for c in (cause, self.output_cause) if c) or None
        if cause:
            reason = f"{cause}; last output: {detail}"
        else:
            reason = f"repo2docker exited with status {returncode}: {detail}"
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
