"""OutputParser: the one place log lines are made (both executors feed it raw chunks).

Carriage-return progress frames collapse to the last one per line, as a terminal shows
them, whatever the chunking: raw text and repo2docker's ``--json-logs`` records (which pass
buildx's output on in pieces ending in ``\\r``), split anywhere, ``\\r\\n``, a lone ``\\r``
at a chunk's end, ANSI escape sequences.
"""

from __future__ import annotations

import json
import random

import pytest

from repo2docker_service.builds.executors.output import (
    OutputParser,
    TerminalLines,
    compact_frames,
    visible,
)


def parse(chunks: list[str], **kw) -> tuple[list[str], int, OutputParser]:
    """(log lines, progress reports, the parser) for ``chunks`` fed in order, then closed."""
    lines: list[str] = []
    progress: list[str] = []
    parser = OutputParser(
        lambda kind, data: (lines if kind == "log" else progress).append(data["message"]), **kw
    )
    for chunk in chunks:
        parser.feed_text(chunk)
    parser.close()
    return lines, len(progress), parser


def record(message: str, **kw) -> str:
    return json.dumps({"message": message, **kw}) + "\n"


E = "\x1b"

RAW = [
    # (name, chunks, lines)
    ("plain lines", ["a\nb\n"], ["a", "b"]),
    ("crlf", ["a\r\nb\r\n"], ["a", "b"]),
    ("frames, one chunk", ["p1\rp2\rp3\n"], ["p3"]),
    ("frames split mid-frame", ["prog", "ress 1\rprog", "ress 2\n"], ["progress 2"]),
    ("lone cr at chunk end, then lf", ["a\r", "\nb\n"], ["a", "b"]),
    ("lone cr at chunk end, then text", ["a\r", "b\n"], ["b"]),
    ("lone cr at the very end", ["x\ry\r"], ["y"]),
    ("cr cr lf", ["a\r\r\n"], ["a"]),
    ("cr then cr lf split", ["a\r", "\r", "\n"], ["a"]),
    ("blank last frame keeps the one before", ["50%\r   \n"], ["50%"]),
    ("shorter last frame wins", ["long long frame\rshort\n"], ["short"]),
    ("frames between lines", ["l1\np1\rp2\nl3\n"], ["l1", "p2", "l3"]),
    ("empty lines skipped", ["\n\n\r\n"], []),
    ("unterminated last line", ["a\nb"], ["a", "b"]),
    ("ansi erase-line last frame", [f"50%\r{E}[2K\n"], ["50%"]),
    ("ansi erase before each frame", [f"{E}[2K\r10%\r{E}[2K\r100%\n"], ["100%"]),
    ("ansi colours kept", [f"{E}[32m1%{E}[0m\r{E}[32m99%{E}[0m\n"], [f"{E}[32m99%{E}[0m"]),
    ("ansi split across chunks", [f"{E}[", f"32mgreen{E}[0m\n"], [f"{E}[32mgreen{E}[0m"]),
    ("ansi-only line skipped", [f"{E}[0m\n"], []),
]


@pytest.mark.parametrize(("chunks", "expected"), [r[1:] for r in RAW], ids=[r[0] for r in RAW])
def test_raw_output_as_a_terminal_shows_it(chunks, expected):
    assert parse(chunks)[0] == expected


JSON_LOGS = [
    (
        "buildx progress as repo2docker passes it on",
        [record("#5 0.249 \r")]
        + [record(f"progress {n}\r") for n in range(1, 301)]
        + [record("progress 300\n"), record("#5 0.249 after-progress\n")],
        ["progress 300", "#5 0.249 after-progress"],
    ),
    (
        "crlf and a frame across records",
        [record("#6 0.260 a\r\n"), record("#6 0.260 b\r"), record("c\n")],
        ["#6 0.260 a", "c"],
    ),
    ("frames inside one message", [record("x\ry\rz\n")], ["z"]),
    ("a message without newline is a line", [record("one"), record("two")], ["one", "two"]),
    ("several lines in one message", [record("#1 two\n#1 lines\n")], ["#1 two", "#1 lines"]),
    ("a frame left at the end", [record("50%\r")], ["50%"]),
    (
        "a record split across chunks",
        [record("p1\r")[:9], record("p1\r")[9:] + record("p2\n")[:3], record("p2\n")[3:]],
        ["p2"],
    ),
    (
        "raw text between records ends the frame's line",
        [record("10%\r"), "plain\n", record("next\n")],
        ["plain", "next"],
    ),
]


@pytest.mark.parametrize(
    ("chunks", "expected"), [r[1:] for r in JSON_LOGS], ids=[r[0] for r in JSON_LOGS]
)
def test_json_logs_as_a_terminal_shows_them(chunks, expected):
    assert parse(chunks)[0] == expected


TEXTS = [
    "l1\np1\rp2\r\nl3\n" + f"{E}[2K\r10%\r{E}[2K\r100%\r\n",
    "".join(record(m) for m in ["#5 0.1 \r", "a\r", "b\r", "c\n", "d\r\n", "e"]),
    "x\r\r\ny\rz\r",
]


@pytest.mark.parametrize("text", TEXTS)
def test_any_chunking_gives_the_same_lines(text):
    """Every split point, and random three-way splits: the lines never depend on reads."""
    whole = parse([text])[0]
    assert whole
    for at in range(len(text) + 1):
        assert parse([text[:at], text[at:]])[0] == whole, at
    rng = random.Random(15)
    for _ in range(200):
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        assert parse([text[:a], text[a:b], text[b:]])[0] == whole, (a, b)


@pytest.mark.parametrize("form", ["raw", "json"])
def test_a_flood_of_frames_is_one_line_and_stays_small(form):
    """200,000 progress frames: one log line, and the parser never holds them all."""
    frames = 200_000
    if form == "raw":
        text = "\r".join(f"progress {n}" for n in range(frames)) + "\ndone\n"
    else:  # as repo2docker passes on a program's frames: one record per frame
        *head, last = [f"progress {n}" for n in range(frames)]
        text = "".join(record(f + "\r") for f in head) + record(last + "\n") + record("done")
    lines: list[str] = []
    progress = 0
    held = 0

    def on_line(kind: str, data: dict) -> None:
        nonlocal progress
        if kind == "log":
            lines.append(data["message"])
        else:
            progress += 1

    parser = OutputParser(on_line)
    for at in range(0, len(text), 65536):
        parser.feed_text(text[at : at + 65536])
        held = max(held, len(parser._rest))
    parser.close()
    assert lines == [f"progress {frames - 1}", "done"]
    assert parser.collapsed == frames - 1
    # one progress report per chunk read (the build is not idle), not one per frame
    assert 0 < progress <= len(text) // 65536 + 1
    assert held < 65536 * 2


def test_over_long_lines_are_still_cut():
    """A line still being written is cut at max_line_length; held frames do not count."""
    chunks = ["a" * 50, "\n", "\r".join(["b" * 30] * 5), "\r" + "c" * 45, "\n"]
    lines = parse(chunks, max_line_length=40)[0]
    assert lines == ["a" * 40, "a" * 10, "c" * 40, "c" * 5]


@pytest.mark.parametrize(
    ("partial", "compact"),
    [
        ("", ""),
        ("abc", "abc"),
        ("abc\r", "abc\r"),  # may be half of a \r\n
        ("a\rb\rc", "b\rc"),
        ("a\rb\r", "b\r"),
        ("a\r  \rc", "a\rc"),  # a blank frame never hides a visible one
        (f"a\r{E}[2K\rc", "a\rc"),
        ("\r\rc", "\rc"),
    ],
)
def test_compact_frames(partial, compact):
    assert compact_frames(partial) == compact
    lines = TerminalLines()
    same = TerminalLines()
    assert lines.feed(partial + "\n") == same.feed(compact + "\n")


@pytest.mark.parametrize(
    ("text", "shows"),
    [("", False), ("  ", False), (f"{E}[2K", False), (f"{E}]0;title\x07", False), ("x", True)],
)
def test_visible(text, shows):
    assert visible(text) is shows


@pytest.mark.parametrize(
    ("lines", "starts", "cause"),
    [
        (
            [
                "#7 0.21 head: error writing 'standard output': No space left on device",
                "ERROR: failed to solve: executor failed running [/bin/sh -c head]: exit code: 1",
            ],
            "the Docker engine's disk is full (no space left on device)",
            None,
        ),
        (
            [
                "Cannot connect to the Docker daemon at tcp://127.0.0.1:9. Is the docker daemon "
                "running?"
            ],
            "the Docker engine stopped answering",
            None,
        ),
        (
            ["write /var/lib/docker/tmp/x: NO SPACE LEFT ON DEVICE"],
            "repo2docker was killed (signal 9); the Docker engine's disk is full",
            "repo2docker was killed (signal 9)",
        ),
        (["ERROR: failed to solve: exit code: 1"], "repo2docker exited with status 1: ERROR", None),
    ],
)
def test_output_that_names_the_cause_leads_the_reason(lines, starts, cause):
    parser = OutputParser(lambda kind, data: None)
    for line in lines:
        parser.feed(line)
    reason = parser.reason(1, cause=cause)
    assert reason.startswith(starts), reason
    assert lines[-1].split(":")[0] in reason  # the last error line still follows
