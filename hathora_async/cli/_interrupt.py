"""Interrupts: SIGINT, SIGTERM and SIGHUP all mean "stop", and nothing made is lost silently.

The first signal cancels the command, whose clean-up (stopping what it made,
where it says it does) then runs. A second one during that clean-up does not
abandon it: it says what is still being stopped. A third gives up and lists
the ids left running, so the operator can stop them by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

__all__ = ["Ledger", "Interrupts", "catch_signals", "PROG"]

PROG = "hathora-async"

# SIGHUP (terminal closed) does not exist on Windows.
_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class Ledger:
    """What a command made that may still be running, by id, in creation order.

    ``kind`` names what it holds (``process`` or ``room``); ``cleans_up`` is
    True for commands that stop what they made when interrupted.
    """

    def __init__(self) -> None:
        self.kind = "process"
        self.cleans_up = False
        self.made = 0
        self._running: dict[str, None] = {}
        self._hosting: set[str] = set()  # of those, left running on purpose: they host matches

    def add(self, item_id: str) -> None:
        if item_id not in self._running:
            self.made += 1
            self._running[item_id] = None

    def discard(self, item_id: str) -> None:
        self._running.pop(item_id, None)

    def replace(self, item_ids: Iterable[str], *, hosting: Iterable[str] = ()) -> None:
        """What still runs is exactly ``item_ids`` (a pool's own account), of which
        ``hosting`` host matches: left running on purpose, not to be stopped."""
        ids = list(item_ids)
        for item_id in ids:
            self.add(item_id)
        self._running = dict.fromkeys(ids)
        self._hosting = set(hosting) & set(ids)

    def left(self) -> list[str]:
        """What may still run, hosting matches or not."""
        return list(self._running)

    def hosting(self) -> list[str]:
        """What is left running on purpose: it hosts matches."""
        return [item_id for item_id in self._running if item_id in self._hosting]

    def noun(self, count: int) -> str:
        """``3 processes``, ``1 room``."""
        plural = "processes" if self.kind == "process" else f"{self.kind}s"
        return f"{count} {self.kind if count == 1 else plural}"


class Interrupts:
    """The signal handler of a command's run: counts signals and cancels ``task``."""

    def __init__(self, task: asyncio.Task[Any], ledger: Ledger, err: TextIO) -> None:
        self.task = task
        self.ledger = ledger
        self.err = err
        self.count = 0

    def _say(self, text: str, *, first: bool = False) -> None:
        # The terminal may be gone (SIGHUP): losing this line must not break the clean-up.
        with contextlib.suppress(OSError, ValueError):
            # The first starts a line of its own: a terminal has echoed "^C" on the current one.
            print(f"{chr(10) if first else ''}{PROG}: {text}", file=self.err, flush=True)

    def __call__(self, signum: int) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        ledger = self.ledger
        if self.count == 1:
            doing = ", stopping what it created" if ledger.cleans_up else ""
            self._say(f"{name}: ending{doing}...", first=True)
            self.task.cancel()
        elif self.count == 2 and ledger.cleans_up:
            left = [item_id for item_id in ledger.left() if item_id not in ledger.hosting()]
            self._say(
                f"{name}: still stopping what this command created "
                f"({ledger.noun(len(left))} not yet stopped); "
                "interrupt again to give up and leave them running"
            )
        elif self.count <= 3:
            self._say(f"{name}: giving up the clean-up")
            self.task.cancel()

    def report(self) -> None:
        """Say how the interrupted command ended: what it stopped, what may still run."""
        ledger = self.ledger
        hosting = ledger.hosting()
        left = [item_id for item_id in ledger.left() if item_id not in hosting]
        if hosting:
            hosts = "hosts" if len(hosting) == 1 else "host"
            self._say(
                f"interrupted; {ledger.noun(len(hosting))} this command created {hosts} "
                f"matches; left running on purpose: {' '.join(hosting)}"
            )
        if left:
            what = "stop" if ledger.kind == "process" else "destroy"
            group = "processes" if ledger.kind == "process" else "rooms"
            self._say(
                f"interrupted; {ledger.noun(len(left))} this command created may still "
                f"run: {' '.join(left)}\n  {what} each with: {PROG} {group} {what} ID"
            )
        elif hosting:
            return  # said above
        elif ledger.cleans_up and ledger.made:
            made = ledger.noun(ledger.made)
            self._say(f"interrupted; nothing it created is left running ({made} created)")
        else:
            self._say("interrupted")


@contextlib.contextmanager
def catch_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Route SIGINT, SIGTERM and SIGHUP to ``handler(signum)`` on the running loop.

    Where the loop cannot (Windows, a thread other than the main one), Ctrl-C
    keeps Python's own behaviour.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for signum in _SIGNALS:
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
