"""Waiting for a process to run: bounded polling with gentle backoff."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import TYPE_CHECKING

from . import _constants as C
from ._paths import segment
from .errors import (
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    NotFoundError,
    ProcessFailedError,
    ProcessWaitTimeoutError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from .models import ProcessStatus, ProcessV2, Region
from .retry import Timeouts

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = [
    "Fetch",
    "Watch",
    "bounded_client",
    "bounded_fetch",
    "check_wait_options",
    "poll_until_running",
    "read_shared",
    "wait_for_process",
    "watch_regions",
]

# Statuses from which a process never (again) becomes a fresh running process.
TERMINAL_STATUSES = frozenset(
    {ProcessStatus.FAILED, ProcessStatus.DRAINING, ProcessStatus.STOPPING, ProcessStatus.STOPPED}
)

# Polling errors worth polling through: the server or the network had a bad moment.
TRANSIENT_ERRORS = (
    HathoraConnectionError,
    HathoraTimeoutError,
    ServerError,
    RateLimitedError,
    RequestTimeoutError,
)

# One read of the process, to be finished by the given deadline (a clock reading).
Fetch = Callable[[float], Awaitable[ProcessV2]]


def _positive_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_wait_options(
    timeout: float, poll_interval: float, max_poll_interval: float
) -> tuple[float, float, float]:
    """Validate the wait settings before any I/O; the cap is never below the interval."""
    timeout = _positive_number(timeout, "timeout")
    poll_interval = _positive_number(poll_interval, "poll_interval")
    max_poll_interval = _positive_number(max_poll_interval, "max_poll_interval")
    return timeout, poll_interval, max(poll_interval, max_poll_interval)


async def poll_until_running(
    fetch: Fetch,
    process_id: str,
    *,
    timeout: float,
    poll_interval: float,
    max_poll_interval: float,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    first: ProcessV2 | None = None,
    lag_until: float | None = None,
) -> ProcessV2:
    """Poll with ``fetch`` until the process runs; the engine of every process wait.

    ``first`` is a state already in hand (a create's answer): it is checked
    before the first sleep instead of being fetched again. Transient errors
    are polled through until the deadline; others propagate, except a 404
    before ``lag_until`` (a clock reading): the process was created lately
    and reads do not see it yet.
    """
    deadline = clock() + timeout
    delay = poll_interval
    last = first
    last_error: HathoraError | None = None

    async def read() -> tuple[ProcessV2 | None, HathoraError | None]:
        try:
            return await fetch(deadline), None
        except TRANSIENT_ERRORS as exc:
            return None, exc
        except NotFoundError as exc:
            if lag_until is None or clock() >= lag_until:
                raise
            return None, exc

    if first is None:
        last, last_error = await read()
    while True:
        if last is not None:
            if last.status == ProcessStatus.RUNNING:
                return last
            if last.status in TERMINAL_STATUSES:
                raise ProcessFailedError(last)
        remaining = deadline - clock()
        if remaining <= 0:
            raise ProcessWaitTimeoutError(process_id, timeout, last) from last_error
        await sleep(min(delay, remaining))
        delay = min(max_poll_interval, delay * C.POLL_BACKOFF_MULTIPLIER)
        seen, last_error = await read()
        if seen is not None:
            last = seen


def bounded_client(client: ApiClient, deadline: float) -> ApiClient:
    """``client``, or a sibling whose calls end by ``deadline`` (a reading of its clock).

    A call inside a wait must not outlive the wait. The sibling keeps the
    client's connect and read limits where they are tighter, and gets at least
    ``MIN_BOUNDED_CALL_TIMEOUT`` however little time is left.
    """
    timeouts = client.timeouts
    remaining = deadline - client._options.clock()
    if remaining >= timeouts.total:
        return client
    remaining = max(remaining, C.MIN_BOUNDED_CALL_TIMEOUT)
    bounded = Timeouts(
        connect=min(timeouts.connect, remaining),
        read=min(timeouts.read, remaining),
        total=remaining,
    )
    return client.with_options(timeout=bounded)


def bounded_fetch(client: ApiClient, process_id: str, app_id: str | None) -> Fetch:
    """A ``Fetch`` reading the process with ``client``, never past the wait's deadline."""

    async def fetch(deadline: float) -> ProcessV2:
        caller = bounded_client(client, deadline)
        return await caller.processes.get_process_info(process_id, app_id=app_id)

    return fetch


# -- coalesced polling (issue 12): see _watch.py -------------------------------


def watch_regions(
    client: ApiClient, app_id: str | None, regions: Iterable[Region]
) -> AbstractContextManager[None]:
    """Count one wait per item of ``regions`` for the block (a warm pool's pass)."""
    app = client._app_segment(app_id)
    return client._watcher.watching((app, region) for region in regions)


async def read_shared(
    client: ApiClient,
    process_id: str,
    region: Region,
    *,
    app_id: str | None,
    deadline: float,
    interval: float,
) -> ProcessV2 | None:
    """The process from a shared listing of ``region``; None: read it on your own.

    None at once when too few waits watch the region. Raises a transient
    error of the listing (or a timeout at ``deadline``, a clock reading), to
    be polled through; any other trouble of the listing leaves the read to
    the caller.
    """
    key = (client._app_segment(app_id), region)
    watcher = client._watcher
    if not watcher.shared(key):
        return None

    async def list_region(deadline: float) -> list[ProcessV2]:
        caller = bounded_client(client, deadline)
        response = await caller.processes.get_latest_processes_with_http_info(
            status=C.WATCH_LIST_STATUSES, region=[region], app_id=app_id
        )
        return response.data

    try:
        return await watcher.read(
            key,
            process_id,
            list_region,
            deadline=deadline,
            interval=interval,
            clock=client._options.clock,
            sleep=client._options.sleep,
        )
    except TRANSIENT_ERRORS:
        raise
    except HathoraError:
        return None


class Watch:
    """A ``Fetch`` for one wait whose polls share their region's listing when they can.

    Enter it around the wait: it counts the wait on its region (``region``,
    else the region of the first state read). ``own`` reads the process
    alone (the default: ``bounded_fetch``).
    """

    def __init__(
        self,
        client: ApiClient,
        process_id: str,
        *,
        app_id: str | None,
        region: Region | None,
        interval: float,
        own: Fetch | None = None,
    ) -> None:
        self._client = client
        self._process_id = process_id
        self._app_id = app_id
        self._region = region
        self._interval = interval
        self._own = own if own is not None else bounded_fetch(client, process_id, app_id)
        self._counted: ExitStack | None = None

    def __enter__(self) -> Watch:
        self._counted = ExitStack()
        self._count(self._region)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._counted is not None:
            self._counted.close()
            self._counted = None

    def _count(self, region: Region | None) -> None:
        self._region = region
        if region is None or self._counted is None:
            return
        self._counted.close()
        self._counted.enter_context(watch_regions(self._client, self._app_id, [region]))

    async def __call__(self, deadline: float) -> ProcessV2:
        region = self._region
        if region is not None:
            seen = await read_shared(
                self._client,
                self._process_id,
                region,
                app_id=self._app_id,
                deadline=deadline,
                interval=self._interval,
            )
            if seen is not None:
                return seen
        seen = await self._own(deadline)
        if seen.region != region:
            self._count(seen.region)
        return seen


async def wait_for_process(
    client: ApiClient,
    process_id: str,
    *,
    timeout: float,
    poll_interval: float,
    max_poll_interval: float,
    app_id: str | None,
) -> ProcessV2:
    """See ``ProcessesApi.wait_for_process``."""
    timeout, poll_interval, max_poll_interval = check_wait_options(
        timeout, poll_interval, max_poll_interval
    )
    # Bad ids and a missing app id fail here, before any I/O.
    client._app_segment(app_id)
    segment(process_id, "process_id")
    # Its region is learnt from the first read; then, should other waits watch
    # it too, the polls share one listing (issue 12).
    with Watch(client, process_id, app_id=app_id, region=None, interval=poll_interval) as fetch:
        return await poll_until_running(
            fetch,
            process_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            sleep=client._options.sleep,
            clock=client._options.clock,
            lag_until=client._recent.lag_until("process", process_id),
        )
