"""A block of status lines redrawn in place on a terminal, with messages printed above it.

Live only on a terminal that can take it: not with ``TERM=dumb``, not when
the output is a pipe or a file, and not when the terminal is too small (then
it falls back to plain lines for the rest of the run). Each line is cut to
the terminal's width, and a block taller than the terminal shows its first
lines and how many more there are, so the cursor arithmetic always holds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TextIO

from .. import _constants as C
from ._interrupt import PROG

__all__ = ["Display", "wants_live", "install_logging", "terminal_size", "flush_repeats"]


def wants_live(out: TextIO, plain: bool = False) -> bool:
    """True when ``out`` is a terminal that can redraw in place (and plain is not asked for)."""
    if plain or os.environ.get("TERM", "") in ("dumb", "unknown"):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def terminal_size(out: TextIO) -> tuple[int, int]:
    """Columns and rows of the terminal ``out`` writes to (the stream drawn on, not
    stdout, which may be redirected); else ``COLUMNS``/``LINES``; else 80x24."""
    try:
        size = os.get_terminal_size(out.fileno())
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    except (AttributeError, ValueError, OSError):  # not a file, closed, or not a terminal
        pass
    return _env_int("COLUMNS", 80), _env_int("LINES", 24)


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class _LogHandler(logging.Handler):
    """The library's warnings, as ``hathora-async: warning: ...`` lines, through ``write``.

    A line identical to the one before is not printed again: how many times it
    came is said once another line comes, or at ``flush_repeats()``.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.write: Callable[[str], None] = self._to_stderr
        self._last: str | None = None
        self._repeats = 0

    @staticmethod
    def _to_stderr(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def flush_repeats(self) -> None:
        if self._repeats:
            self.write(f"{PROG}: (the line above repeated {self._repeats} more times)")
        self._last, self._repeats = None, 0

    def emit(self, record: logging.LogRecord) -> None:
        if _said_by_the_command(record):
            return
        try:
            line = f"{PROG}: {record.levelname.lower()}: {self.format(record)}"
            if line == self._last:
                self._repeats += 1
                return
            self.flush_repeats()
            self._last = line
            self.write(line)
        except Exception:  # logging must never break the command
            self.handleError(record)


def _said_by_the_command(record: logging.LogRecord) -> bool:
    """A warning listing the processes a pre-allocation left when it ended early.

    Every command that pre-allocates keeps a ledger of them and names what is
    left once, with how to stop it, as it exits: the library's own list would
    say the same ids twice.
    """
    return hasattr(record, C.LOG_LEFT_RUNNING)


_LOG_HANDLER = _LogHandler()


def flush_repeats() -> None:
    """Say how many times the last warning repeated, if it did (at the command's end)."""
    _LOG_HANDLER.flush_repeats()


def install_logging() -> None:
    """Show the library's warnings (processes left running, pool errors) on stderr."""
    logger = logging.getLogger(C.LOGGER_NAME)
    if _LOG_HANDLER not in logger.handlers:
        logger.addHandler(_LOG_HANDLER)


class Display:
    """Status lines on ``out``: redrawn in place when ``live``, else left to the caller.

    Use it as a context manager: inside, the library's log lines are printed
    above the block instead of through it. ``live`` turns False for good when
    the terminal is too small to draw in; callers then print plain lines.
    """

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self._drawn = 0
        self._last_draw = 0.0
        self._lines: list[str] = []
        self._previous_write: Callable[[str], None] | None = None

    def __enter__(self) -> Display:
        self._previous_write = _LOG_HANDLER.write
        _LOG_HANDLER.write = self._log
        return self

    def _log(self, line: str) -> None:
        # Above the block while it is drawn; else where warnings always go (stderr),
        # not into the plain lines (the demo writes those to stdout).
        if self.live or self._previous_write is None:
            self.message(line)
        else:
            self._previous_write(line)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _LOG_HANDLER.flush_repeats()
        if self._previous_write is not None:
            _LOG_HANDLER.write = self._previous_write
        self.update(self._lines, force=True)

    def _fit(self, lines: Sequence[str]) -> list[str] | None:
        """The lines cut to the terminal, or None when it is too small to draw in."""
        columns, rows = terminal_size(self.out)
        if columns < C.LIVE_MIN_COLUMNS or rows < C.LIVE_MIN_ROWS:
            return None
        room = rows - 1  # the cursor's line stays free, so nothing scrolls
        if len(lines) > room:
            hidden = len(lines) - (room - 1)
            lines = [*lines[: room - 1], f"... and {hidden} more"]
        # One column spare: writing the last column makes some terminals wrap.
        return [line[: columns - 1] for line in lines]

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\r\x1b[J")
            self._drawn = 0

    def update(self, lines: Sequence[str], *, force: bool = False) -> None:
        """Redraw the block (at most every ``LIVE_REDRAW_INTERVAL`` unless ``force``)."""
        self._lines = list(lines)
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < C.LIVE_REDRAW_INTERVAL:
            return
        self._last_draw = now
        fitted = self._fit(self._lines)
        self._erase()
        if fitted is None:
            self.live = False  # plain lines from here on
        else:
            self.out.write("".join(f"{line}\x1b[K\n" for line in fitted))
            self._drawn = len(fitted)
        self.out.flush()

    def message(self, text: str) -> None:
        """A line that stays: printed above the block when live."""
        if self.live:
            self._erase()
            print(text, file=self.out)
            self.update(self._lines, force=True)
        else:
            print(text, file=self.out, flush=True)
