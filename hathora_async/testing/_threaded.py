"""``ThreadedFake``: a ``FakeHathora`` on its own event loop in a background thread.

Sync tests have no loop to run the fake on, and async tests may run on any loop
(pytest-asyncio, anyio, pytest-aiohttp): a fake with a loop of its own serves them
all alike. Its state belongs to that loop, so every read or change from another
thread is marshalled onto it and waited for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .._constants import FAKE_THREAD_TIMEOUT
from ._fake import FakeHathora
from ._faults import Fault

__all__ = ["ThreadedFake", "ThreadedFaults"]

T = TypeVar("T")


class ThreadedFaults:
    """A fake's fault plan (see ``FaultPlan``), changed from any thread."""

    def __init__(self, owner: ThreadedFake) -> None:
        self._owner = owner

    def add(self, route: str, fault: Fault, *, times: int = 1) -> None:
        """Make the next ``times`` requests on ``route`` meet ``fault``.

        Raises ``ValueError`` for a route the fake does not serve.
        """
        self._owner.call(lambda fake: fake.faults.add(route, fault, times=times))

    def add_random(
        self, route: str | None, rate: float, faults: Sequence[Fault], *, seed: int = 0
    ) -> None:
        """From now on, requests on ``route`` (None: any) meet one of ``faults`` with
        probability ``rate``, drawn from a generator seeded with ``seed``."""
        self._owner.call(lambda fake: fake.faults.add_random(route, rate, faults, seed=seed))

    def clear(self) -> None:
        """Remove every scripted and random fault."""
        self._owner.call(lambda fake: fake.faults.clear())


class ThreadedFake:
    """A ``FakeHathora`` served by its own event loop in a daemon thread.

    ``with ThreadedFake(boot_delay=0.5) as fake:`` starts it (keyword arguments are
    ``FakeHathora``'s) and stops it on exit, thread and socket included. ``url``,
    ``token`` and ``app_id`` are plain attributes; every other method is safe to
    call from any thread, sync or async code alike, and blocks until the fake's
    loop has run it (at most ``FAKE_THREAD_TIMEOUT`` seconds). ``call`` runs any
    function of the underlying ``FakeHathora`` the same way. This is what the
    pytest plugin's ``hathora_fake`` fixture gives a test.
    """

    url: str
    token: str
    app_id: str

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._fake: FakeHathora | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.faults = ThreadedFaults(self)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start the thread and serve; raises what ``FakeHathora`` raises (bad options,
        a port in use) in the calling thread."""
        if self._thread is not None:
            raise RuntimeError("this ThreadedFake was already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="hathora-fake", daemon=True
        )
        self._thread.start()
        try:
            started.result(FAKE_THREAD_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            fake = FakeHathora(**self._options)
            await fake.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        self._fake = fake
        self.url, self.token, self.app_id = fake.url, fake.token, fake.app_id
        started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await fake.close()

    def stop(self) -> None:
        """Stop serving, drop every connection and end the thread. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and thread.is_alive():
            # A RuntimeError: the loop already closed, the thread is ending on its own.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(FAKE_THREAD_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the fake's thread did not stop in {FAKE_THREAD_TIMEOUT} s")
        self._fake = None

    def __enter__(self) -> ThreadedFake:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reaching the fake -------------------------------------------------

    def call(self, function: Callable[[FakeHathora], T]) -> T:
        """``function(fake)`` run on the fake's loop; its result or its exception."""
        fake, loop, thread = self._fake, self._loop, self._thread
        if fake is None or loop is None or thread is None:
            raise RuntimeError("the fake is not running")
        if threading.get_ident() == thread.ident:
            return function(fake)  # already on the fake's loop: waiting would deadlock
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(function(fake))
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(FAKE_THREAD_TIMEOUT)

    @property
    def port(self) -> int:
        """The port the fake listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def processes_created(self) -> int:
        """How many processes the fake has created, over all apps."""
        return self.call(lambda fake: fake.processes_created)

    @property
    def rooms_created(self) -> int:
        """How many rooms the fake has created, over all apps."""
        return self.call(lambda fake: fake.rooms_created)

    @property
    def request_counts(self) -> Counter[str]:
        """A copy of the requests served so far, by route (``create_process``, ...)."""
        return self.call(lambda fake: Counter(fake.request_counts))

    @property
    def open_connections(self) -> int:
        """Client connections the fake holds open right now."""
        return self.call(lambda fake: fake.open_connections)

    def add_app(self, app_id: str | None = None) -> str:
        """Create another application; returns its id."""
        return self.call(lambda fake: fake.add_app(app_id))

    def add_token(self, token: str | None = None) -> str:
        """Accept another bearer token; returns it."""
        return self.call(lambda fake: fake.add_token(token))

    def process(self, process_id: str) -> dict[str, Any]:
        """A process as the API would return it (``ProcessV2`` JSON); ``KeyError`` if none."""
        return self.call(lambda fake: fake.process(process_id))

    def processes(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """Every process of an app (default: the fake's first app), oldest first."""
        return self.call(lambda fake: fake.processes(app_id))

    def set_rooms_allocated(self, process_id: str, rooms: int) -> None:
        """Pretend ``rooms`` rooms now run on a process."""
        self.call(lambda fake: fake.set_rooms_allocated(process_id, rooms))

    def fail_process(self, process_id: str) -> None:
        """Make a process stop now, as if it crashed or was stopped elsewhere."""
        self.call(lambda fake: fake.fail_process(process_id))

    def room(self, room_id: str) -> dict[str, Any]:
        """A room as GetRoomInfo would return it (``Room`` JSON); ``KeyError`` if none."""
        return self.call(lambda fake: fake.room(room_id))

    def __repr__(self) -> str:
        where = getattr(self, "url", None) or "not started"
        return f"<ThreadedFake {where}>"
