"""The command line's live display, and what the demo says about where it runs: in process."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from hathora_async import Region
from hathora_async.cli._config import describe_target
from hathora_async.cli._demo import DemoSettings, billed_per_region
from hathora_async.cli._live import Display, install_logging, wants_live
from hathora_async.cli._progress import PreallocProgress
from hathora_async.prealloc import PreallocationEvent

ESCAPE = re.compile(r"\x1b\[[0-9]*[A-Za-z]")
# Back to the top of the block, erasing it: where each redraw starts.
REDRAW = re.compile(r"\x1b\[\d+A\r\x1b\[J")


class Terminal(io.StringIO):
    """Output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    monkeypatch.setenv("TERM", "xterm")
    yield Terminal()


def _size(monkeypatch: pytest.MonkeyPatch, columns: int, lines: int) -> None:
    # shutil.get_terminal_size() reads these first.
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", str(lines))


def _progress(out: io.StringIO) -> PreallocProgress:
    progress = PreallocProgress(dict.fromkeys(Region, 3), out, live=wants_live(out))
    for region in Region:
        progress.on_event(PreallocationEvent("created", region, f"id-{region.value}", None))
    progress.update(progress.lines(), force=True)
    return progress


def _drawn(text: str) -> list[str]:
    """The lines of the last drawing (after the last cursor-up)."""
    last = REDRAW.split(text)[-1]
    return [ESCAPE.sub("", line) for line in last.splitlines()]


def test_live_only_on_a_terminal_that_is_not_dumb(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert wants_live(terminal)
    assert not wants_live(terminal, plain=True)
    assert not wants_live(io.StringIO())  # a pipe or a file
    monkeypatch.setenv("TERM", "dumb")
    assert not wants_live(terminal)
    progress = _progress(terminal)
    assert "\x1b[" not in terminal.getvalue() and not progress.live


def test_each_line_is_cut_to_the_terminal_width(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _size(monkeypatch, 40, 50)
    _progress(terminal)
    lines = _drawn(terminal.getvalue())
    assert len(lines) == len(Region)
    # One column spare, so no terminal wraps a line and breaks the cursor arithmetic.
    assert all(len(line) <= 39 for line in lines) and any(len(line) == 39 for line in lines)


def test_a_short_terminal_shows_the_first_regions_and_how_many_more(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _size(monkeypatch, 120, 6)
    _progress(terminal)
    text = terminal.getvalue()
    lines = _drawn(text)
    assert len(lines) == 5  # the cursor's line stays free: nothing scrolls
    assert lines[0].startswith("Seattle") and lines[-1] == f"... and {len(Region) - 4} more"
    assert "\x1b[5A" in text  # a redraw goes back up exactly the lines it drew


def test_a_tiny_terminal_falls_back_to_plain_lines(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _size(monkeypatch, 20, 24)
    progress = _progress(terminal)
    assert not progress.live
    progress.on_event(PreallocationEvent("running", Region.TOKYO, "id-Tokyo", None, None, 0.5))
    text = terminal.getvalue()
    assert "\x1b[" not in text
    assert re.search(r"Tokyo\s+running\s+1/3\s+id-Tokyo", text)


def test_log_lines_are_printed_above_the_live_block(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _size(monkeypatch, 80, 24)
    install_logging()
    logger = logging.getLogger("hathora_async")
    try:
        with Display(terminal, live=True) as display:
            display.update(["one", "two"], force=True)
            logger.warning("could not stop process p-1")
        text = terminal.getvalue()
    finally:
        logger.handlers[:] = [h for h in logger.handlers if type(h).__name__ != "_LogHandler"]
    erased, _, after = text.partition("\x1b[2A\r\x1b[J")
    assert erased.startswith("one")
    assert after.startswith("hathora-async: warning: could not stop process p-1\none")


def test_the_demo_caps_billed_processes_unless_confirmed() -> None:
    asked = DemoSettings(per_region=3)
    count, why = billed_per_region(asked, "https://api.hathora.dev")
    assert count == 1 and why is not None and "--yes" in why and "billed" in why
    assert billed_per_region(DemoSettings(per_region=3, confirmed=True), "https://x.dev") == (
        3,
        None,
    )
    assert billed_per_region(asked, "http://127.0.0.1:8080") == (3, None)  # a fake: no bill
    assert billed_per_region(DemoSettings(per_region=1), "https://api.hathora.dev") == (1, None)


def test_what_the_commands_say_they_talk_to() -> None:
    assert "real Hathora API" in describe_target("https://api.hathora.dev")
    local = describe_target("http://localhost:8080/")
    assert local.startswith("a local server at http://localhost:8080 ") and "Hathora" in local
    assert "real" not in describe_target("https://proxy.example/hathora")


def test_the_defaults_the_docstrings_state_are_the_constants() -> None:
    # mkdocs renders signatures with C.DEFAULT_... names: the docstrings give the values.
    from hathora_async import HathoraClient, ProcessesApi, RoomsApi, WarmPool
    from hathora_async import _constants as C

    wait = f"``timeout`` {C.DEFAULT_WAIT_TIMEOUT:g}, ``poll_interval`` {C.DEFAULT_POLL_INTERVAL:g}"
    for doc in (ProcessesApi.wait_for_process.__doc__, HathoraClient.preallocate.__doc__):
        assert doc is not None and wait in " ".join(doc.split())
    assert f"``max_poll_interval`` {C.DEFAULT_MAX_POLL_INTERVAL:g}" in " ".join(
        (HathoraClient.preallocate.__doc__ or "").split()
    )
    assert f"``concurrency`` {C.DEFAULT_PREALLOC_CONCURRENCY}" in (
        HathoraClient.preallocate.__doc__ or ""
    )
    room = " ".join((RoomsApi.wait_for_room.__doc__ or "").split())
    assert f"``poll_interval`` {C.DEFAULT_ROOM_POLL_INTERVAL:g}" in room
    pool = " ".join((WarmPool.__doc__ or "").split())
    assert f"``poll_interval`` {C.DEFAULT_POOL_POLL_INTERVAL:g}" in pool
    assert f"``max_backoff`` {C.DEFAULT_POOL_MAX_BACKOFF:g}" in pool
    assert f"``concurrency`` {C.DEFAULT_POOL_CONCURRENCY}" in pool
