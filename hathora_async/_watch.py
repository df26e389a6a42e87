"""Coalesced polling (issue 12): one listing of a region answers several waits' polls.

Waiting on many processes of one region (``preallocate(wait=True)``, a warm
pool's pass) would poll each with its own ``GetProcessInfo``, and every poll
spends the client's send budget. When at least ``WATCH_MIN_SHARED`` waits
watch a region, their polls instead join a *round*: the first poll to come
leads it, later ones join, and the leader sends one ``GetLatestProcesses``
(statuses ``WATCH_LIST_STATUSES``, that region) that answers every member it
shows. A member it does not show (the listing's ``LATEST_PROCESSES_LIMIT``
cap, a status filtered out, read-after-create lag) gets None and reads its
process on its own, so nothing is ever concluded from absence.

Bounds: one round in flight per region (a round starts once the previous
listing answered), and rounds of a region start at least the leader's poll
interval apart, so a busy region costs at most one request per poll interval
whatever the number of waits. A round with no member but its leader ends
without listing (a lone ``GetProcessInfo`` is as cheap and never capped), yet
counts as the region's request for that spacing.

One ``ProcessWatcher`` per client, shared with its ``with_options``
siblings. It knows nothing of HTTP: callers hand it the listing to send
(``waiting.Watch`` does). Cancellation: a cancelled member leaves its round;
a cancelled leader hands the round to a member before the listing is sent,
or, once it is in flight, lets every member read on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import attrs

from . import _constants as C
from .errors import HathoraError, HathoraTimeoutError
from .models import ProcessV2, Region

__all__ = ["ListRegion", "ProcessWatcher", "RegionKey"]

# (app id as a path segment, region)
RegionKey = tuple[str, Region]
# Send the region's listing, to be answered by the given deadline (a clock reading).
ListRegion = Callable[[float], Awaitable[Sequence[ProcessV2]]]

_LEAD = object()  # a member's answer meaning "the leader left: lead the round yourself"


class _Round:
    __slots__ = ("leader", "members")

    def __init__(self, leader: str) -> None:
        self.leader = leader  # the process id of the poll that will send the listing
        self.members: list[tuple[str, asyncio.Future[object]]] = []


class _Region:
    __slots__ = ("idle", "key", "last", "round", "watching")

    def __init__(self, key: RegionKey) -> None:
        self.key = key
        self.watching = 0
        self.round: _Round | None = None  # gathering members, not sent yet
        self.last = -math.inf  # when this region's last round ended gathering
        self.idle = asyncio.Event()  # no listing of this region in flight
        self.idle.set()


@attrs.frozen
class _Poll:
    """One poll's part in a round."""

    process_id: str
    list_region: ListRegion
    deadline: float
    interval: float
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]


class ProcessWatcher:
    """Rounds of polls per region; see the module docstring."""

    def __init__(self) -> None:
        self._regions: dict[RegionKey, _Region] = {}

    @contextmanager
    def watching(self, keys: Iterable[RegionKey]) -> Iterator[None]:
        """Count waits on ``keys`` (one per wait, repeats allowed) for the block."""
        counted = list(keys)
        for key in counted:
            state = self._regions.get(key)
            if state is None:
                state = self._regions[key] = _Region(key)
            state.watching += 1
        try:
            yield
        finally:
            for key in counted:
                state = self._regions[key]
                state.watching -= 1
                self._forget_if_unused(state)

    def _forget_if_unused(self, state: _Region) -> None:
        if state.watching <= 0 and state.round is None and state.idle.is_set():
            self._regions.pop(state.key, None)

    def shared(self, key: RegionKey) -> bool:
        """Whether polls of ``key`` go through rounds (enough waits watch it)."""
        state = self._regions.get(key)
        return state is not None and state.watching >= C.WATCH_MIN_SHARED

    async def read(
        self,
        key: RegionKey,
        process_id: str,
        list_region: ListRegion,
        *,
        deadline: float,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> ProcessV2 | None:
        """The process as a round's listing shows it; None: read it on your own.

        ``list_region`` sends the listing should this poll lead the round;
        ``interval`` (seconds) spaces the rounds it leads, slept with
        ``sleep``; ``deadline`` (a ``clock`` reading) is when the poll must be
        answered. Raises the listing's ``HathoraError`` (a member gets the
        leader's), or ``HathoraTimeoutError`` when the deadline comes first.
        """
        state = self._regions.get(key)
        if state is None or state.watching < C.WATCH_MIN_SHARED:
            return None
        poll = _Poll(process_id, list_region, deadline, interval, clock, sleep)
        if state.round is not None:
            return await self._join(state, state.round, poll)
        state.round = _Round(process_id)
        return await self._lead(state, poll, first=True)

    async def _join(self, state: _Region, round_: _Round, poll: _Poll) -> ProcessV2 | None:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        entry = (poll.process_id, future)
        round_.members.append(entry)
        try:
            await asyncio.wait((future,), timeout=max(0.0, poll.deadline - poll.clock()))
        except asyncio.CancelledError:
            if future.done() and future.result() is _LEAD:
                self._hand_over(state, round_)  # handed the round just now: pass it on
            else:
                self._leave(round_, entry)
            raise
        if not future.done():
            self._leave(round_, entry)
            raise HathoraTimeoutError(
                f"no listing answered the poll of process {poll.process_id} in time"
            )
        answer = future.result()
        if answer is _LEAD:
            return await self._lead(state, poll)
        if isinstance(answer, HathoraError):
            raise answer
        assert answer is None or isinstance(answer, ProcessV2)
        return answer

    @staticmethod
    def _leave(round_: _Round, entry: tuple[str, asyncio.Future[object]]) -> None:
        entry[1].cancel()
        if entry in round_.members:
            round_.members.remove(entry)

    def _hand_over(self, state: _Region, round_: _Round) -> None:
        """The leader leaves before sending: the first member leads, else the round ends."""
        while round_.members:
            pid, future = round_.members.pop(0)
            if not future.done():
                round_.leader = pid
                future.set_result(_LEAD)
                return
        if state.round is round_:
            state.round = None
            self._forget_if_unused(state)

    async def _lead(self, state: _Region, poll: _Poll, first: bool = False) -> ProcessV2 | None:
        round_ = state.round
        assert round_ is not None
        clock = poll.clock
        try:
            if first:
                # A pool's pass polls all its records at once: let them join first.
                await asyncio.sleep(0)
            while True:
                remaining = poll.deadline - clock()
                start = state.last + poll.interval
                if remaining <= 0 or (state.idle.is_set() and start >= poll.deadline):
                    # Not before its deadline: the poll makes its own last read.
                    self._hand_over(state, round_)
                    return None
                if not state.idle.is_set():
                    # One listing of a region in flight at a time.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(state.idle.wait(), remaining)
                    continue
                if start <= clock():
                    break
                await poll.sleep(start - clock())
        except BaseException:
            self._hand_over(state, round_)
            raise
        state.round = None
        state.last = clock()
        members = round_.members
        if not members:
            self._forget_if_unused(state)
            return None  # alone: its own read costs the same and is never capped
        state.idle.clear()
        try:
            listing = await poll.list_region(poll.deadline)
        except BaseException as exc:
            for _, future in members:
                if not future.done():
                    future.set_result(exc if isinstance(exc, HathoraError) else None)
            raise
        finally:
            state.idle.set()
            self._forget_if_unused(state)
        shown = {process.process_id: process for process in listing}
        for pid, future in members:
            if not future.done():
                future.set_result(shown.get(pid))
        return shown.get(poll.process_id)
