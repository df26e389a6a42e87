"""``FakeHathora``: a local Hathora Cloud that speaks the real wire format."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from ._faults import Fault, FaultPlan
from ._ratelimit import GatewayLimit, Limiter, check_options
from ._rooms import PUBLIC_ROUTES, RoomBook, RoomRoutes
from ._state import REGIONS, Delay, FakeApp, FakeProcess, World, sample

__all__ = ["FakeHathora"]

Action = Callable[[web.Request, FakeApp], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    response = _json({"message": message}, status)
    if headers:
        response.headers.update(headers)
    return response


def _fault_error(fault: Fault) -> web.Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    assert fault.status is not None
    return _error(fault.status, fault.message, headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Routing errors (unknown path, wrong method) keep Hathora's error shape too.
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise


class FakeHathora:
    """A fake Hathora Cloud on loopback, for tests and local development.

    ``async with FakeHathora() as fake:`` serves on a free port; point a client
    at ``fake.url`` with ``fake.token`` and ``fake.app_id``. Processes boot after
    ``boot_delay`` seconds (a number, or ``(low, high)`` for a uniform draw),
    fail to boot with probability ``boot_failure_rate``, take ``stop_delay`` to
    stop, and are reaped after ``idle_timeout`` seconds without rooms (None: never).
    Every request waits ``latency`` (a number or a range) first. Randomness comes
    from ``seed``; time from ``clock`` (default: ``time.monotonic``; a
    ``ManualClock`` makes lifecycle tests instant). ``faults`` injects failures.
    ``rate_limit`` (requests per second, None: off) makes it answer like a
    gateway: per bearer token, ``rate_limiter`` ``"token-bucket"`` (the
    default: a bucket of ``rate_burst`` refilled at ``rate_limit`` per second),
    ``"sliding-window"`` (at most ``rate_limit x rate_window`` requests,
    rounded down, in any ``rate_window`` seconds) or ``"fixed-window"`` (as
    many per window of ``rate_window`` seconds, aligned on the clock; for
    both ``rate_limit x rate_window`` must be at least 1), and 429 with a
    ``Retry-After`` of ``retry_after`` whole seconds (None: no header) when
    over it (see ``fake.gateway``, a ``GatewayLimit``). The rate options are
    checked even when ``rate_limit`` is None; a bad one raises ``ValueError``.
    RoomsV2 is served too: rooms take free slots on running processes of their
    region, or start a new process, and die with their process.

    Two options make it behave like a real, imperfect server:

    - ``read_after_create_lag`` (seconds, on ``clock``): for that long after a
      process or room is created, reads do not see it, as with Hathora's
      eventually consistent reads: GetProcessInfo, GetRoomInfo,
      GetConnectionInfo and the room lists of a new process answer 404, and
      GetLatestProcesses and the room lists leave it out. Creates, stops,
      destroys and config updates act on it normally.
    - ``clock_offset`` (seconds, either sign): the fake's wall clock runs that
      far ahead of (or behind) the machine's. Every timestamp it reports
      (``createdAt``, ``startedAt``, ``stoppingAt``, ``terminatedAt``, room
      allocation times, the ``Date`` header) is shifted by it.

    Like a real server, the fake carries out a request that changes state
    (a create, stop, destroy or config update: any method but GET) once it has
    arrived, even if the client hangs up meanwhile (its timeout fires during
    ``latency``, it is cancelled, it closes): the process or room is made, and
    only the answer is lost, so an outcome-unknown create leaves something to
    reconcile. Reads stop as soon as their client is gone. ``close()`` cancels
    the actions still running.
    """

    def __init__(
        self,
        boot_delay: Delay = 0.0,
        latency: Delay = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        app_id: str | None = None,
        boot_failure_rate: float = 0.0,
        stop_delay: float = 0.0,
        idle_timeout: float | None = 300.0,
        rooms_per_process: int = 4,
        transport_type: str = "udp",
        exposed_host: str = "localhost",
        regions: tuple[str, ...] = REGIONS,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
        read_after_create_lag: float = 0.0,
        clock_offset: float = 0.0,
        rate_limit: float | None = None,
        rate_burst: int = 10,
        retry_after: int | None = 1,
        rate_limiter: Limiter = "token-bucket",
        rate_window: float = 1.0,
    ) -> None:
        if not (math.isfinite(read_after_create_lag) and read_after_create_lag >= 0):
            raise ValueError(f"read_after_create_lag must be >= 0, got {read_after_create_lag!r}")
        if not math.isfinite(clock_offset):
            raise ValueError(f"clock_offset must be finite, got {clock_offset!r}")
        self.world = World(
            clock=clock or time.monotonic,
            boot_delay=boot_delay,
            boot_failure_rate=boot_failure_rate,
            stop_delay=stop_delay,
            idle_timeout=idle_timeout,
            rooms_per_process=rooms_per_process,
            transport_type=transport_type,
            exposed_host=exposed_host,
            regions=tuple(regions),
            seed=seed,
            read_after_create_lag=read_after_create_lag,
            clock_offset=clock_offset,
        )
        self.latency = latency
        self.faults = FaultPlan()
        self.request_counts: Counter[str] = Counter()
        self.token = self.world.add_token(token)
        self.app_id = self.world.add_app(app_id)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._rooms = RoomBook(self.world)
        # Rate limit (issue 12): a gateway in front of every route.
        self.gateway: GatewayLimit | None = None
        check_options(rate_burst, retry_after, rate_limiter, rate_window)  # even when off
        if rate_limit is not None:
            self.gateway = GatewayLimit(
                rate_limit,
                rate_burst,
                retry_after,
                self.world.clock,
                limiter=rate_limiter,
                window=rate_window,
            )
        # Actions that go on after their client hung up, until they end or close().
        self._acting: set[asyncio.Task[web.StreamResponse]] = set()
        self.app = self._build_app()

    # -- server lifecycle --------------------------------------------------

    def _build_app(self) -> web.Application:
        gateway = [self.gateway.middleware] if self.gateway is not None else []
        app = web.Application(middlewares=[_json_errors, *gateway])
        app.on_response_prepare.append(self._date)
        route = self._route
        app.router.add_post(
            "/processes/v2/{app_id}/create/{region}", route("create_process", self._create)
        )
        app.router.add_get(
            "/processes/v2/{app_id}/list/latest", route("get_latest_processes", self._latest)
        )
        app.router.add_get(
            "/processes/v2/{app_id}/info/{process_id}", route("get_process_info", self._info)
        )
        app.router.add_post(
            "/processes/v2/{app_id}/stop/{process_id}", route("stop_process", self._stop)
        )
        for method, path, name, action in RoomRoutes(self._rooms).routes():
            app.router.add_route(method, path, route(name, action))
        return app

    async def start(self) -> None:
        """Start serving (``async with`` does this)."""
        if self._runner is not None:
            return
        # handler_cancellation: a client that hangs up mid-request (cancelled,
        # timed out) ends its handler, as a real server would, so the connection
        # is gone at once (open_connections); a state change it asked for still
        # happens (see _route), and close() ends those still running.
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving, drop every connection, cancel the actions still running."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        acting = list(self._acting)
        for task in acting:
            task.cancel()
        await asyncio.gather(*acting, return_exceptions=True)

    async def __aenter__(self) -> FakeHathora:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL to give the client."""
        if self._runner is None:
            raise RuntimeError("the fake is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def open_connections(self) -> int:
        """Client connections the server holds open right now."""
        if self._runner is None or self._runner.server is None:
            return 0
        return len(self._runner.server.connections)

    # -- admin -------------------------------------------------------------

    @property
    def processes_created(self) -> int:
        """How many processes the fake has created, over all apps."""
        return self.world.processes_created

    def add_app(self, app_id: str | None = None) -> str:
        """Create another application; returns its id."""
        return self.world.add_app(app_id)

    def add_token(self, token: str | None = None) -> str:
        """Accept another bearer token; returns it."""
        return self.world.add_token(token)

    def _find(self, process_id: str) -> FakeProcess:
        for app in self.world.apps.values():
            if process_id in app.processes:
                return app.processes[process_id]
        raise KeyError(process_id)

    def process(self, process_id: str) -> dict[str, Any]:
        """A process as the API would return it (``ProcessV2`` JSON)."""
        return self.world.render(self._find(process_id))

    def processes(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """Every process of an app (default: the fake's first app), oldest first."""
        app = self.world.apps[app_id or self.app_id]
        return [self.world.render(p) for p in app.processes.values()]

    def set_rooms_allocated(self, process_id: str, rooms: int) -> None:
        """Pretend ``rooms`` rooms now run on a process (a match landed or ended)."""
        process = self._find(process_id)
        if not 0 <= rooms <= process.rooms_per_process:
            raise ValueError(f"rooms must be within [0, {process.rooms_per_process}]")
        self.world.set_rooms_allocated(process, rooms)

    def fail_process(self, process_id: str) -> None:
        """Make a process stop now, as if it crashed or was stopped elsewhere."""
        self.world.stop_process(self._find(process_id))
        self._rooms.settle()

    @property
    def rooms_created(self) -> int:
        """How many rooms the fake has created, over all apps."""
        return self._rooms.created

    def room(self, room_id: str) -> dict[str, Any]:
        """A room as GetRoomInfo would return it (``Room`` JSON, destroyed ones too)."""
        self._rooms.settle()
        return self._rooms.room_json(self._rooms.rooms[room_id])

    # -- request handling --------------------------------------------------

    async def _date(self, request: web.Request, response: web.StreamResponse) -> None:
        # The Date header reads the fake's wall clock, as its timestamps do.
        now = self.world.wall_time(self.world.clock())
        response.headers["Date"] = format_datetime(now, usegmt=True)

    def _route(
        self, name: str, action: Action
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        self.faults.routes.add(name)

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method == "GET":
                return await self._serve(request, name, action)
            # Accepted (with its body, kept by aiohttp for the action): it acts even
            # if the client hangs up (handler_cancellation cancels this handler
            # then, not the shielded task).
            await request.read()
            task = asyncio.ensure_future(self._serve(request, name, action))
            self._acting.add(task)
            task.add_done_callback(self._acting.discard)
            return await asyncio.shield(task)

        return handle

    async def _serve(self, request: web.Request, route: str, action: Action) -> web.StreamResponse:
        self.request_counts[route] += 1
        fault = self.faults.next(route)
        delay = sample(self.latency, self.world.rng) + (fault.latency if fault else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.status is not None and not fault.acted:
            return _fault_error(fault)
        if fault is not None and fault.drop == "before":
            return self._drop(request)
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if route not in PUBLIC_ROUTES and (
            scheme.lower() != "bearer" or token not in self.world.tokens
        ):
            return _error(401, "Invalid or missing bearer token")
        # Rooms die with their process; record that before anything reads them.
        self._rooms.settle()
        app = self.world.apps.get(request.match_info["app_id"])
        if app is None:
            return _error(404, f"App {request.match_info['app_id']} not found")
        response = await action(request, app)
        if fault is None:
            return response
        if fault.status is not None:
            return _fault_error(fault)
        if fault.drop == "after":
            return self._drop(request)
        if fault.body == "malformed":
            return web.Response(
                body=b'{"processId": <this is not json',
                status=response.status,
                content_type="application/json",
            )
        if fault.body == "truncated" and isinstance(response, web.Response):
            return await self._truncate(request, response)
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    @staticmethod
    async def _truncate(request: web.Request, full: web.Response) -> web.StreamResponse:
        body = full.body if isinstance(full.body, bytes) else b""
        partial = web.StreamResponse(status=full.status)
        partial.content_type = "application/json"
        partial.content_length = max(len(body), 2)
        await partial.prepare(request)
        await partial.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return partial

    def _lookup(
        self, request: web.Request, app: FakeApp, *, read: bool = True
    ) -> FakeProcess | None:
        """The process named by the path; a read does not see it during the lag."""
        process = app.processes.get(request.match_info["process_id"])
        if process is not None and read and not self.world.visible(process.created):
            return None
        return process

    async def _create(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        region = request.match_info["region"]
        if region not in self.world.regions:
            return _error(404, f"Region {region} not found")
        process = self.world.create_process(app, region)
        return _json(self.world.render(process), 201)

    async def _latest(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        statuses = set(request.query.getall("status", []))
        regions = set(request.query.getall("region", []))
        found = []
        for process in reversed(app.processes.values()):
            if not self.world.visible(process.created):
                continue
            rendered = self.world.render(process)
            if statuses and rendered["status"] not in statuses:
                continue
            if regions and rendered["region"] not in regions:
                continue
            found.append(rendered)
            if len(found) == 10:
                break
        return _json(found)

    async def _info(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        process = self._lookup(request, app)
        if process is None:
            return _error(404, f"Process {request.match_info['process_id']} not found")
        return _json(self.world.render(process))

    async def _stop(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        process = self._lookup(request, app, read=False)
        if process is None:
            return _error(404, f"Process {request.match_info['process_id']} not found")
        self.world.stop_process(process)
        return web.Response(status=204)
