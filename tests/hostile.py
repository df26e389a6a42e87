"""A purpose-built hostile HTTP server for tests: canned answers, raw request records.

Unlike ``FakeHathora`` it implements no API: it answers whatever it is told to
(any status, body or headers, per raw path or in sequence) and records exactly
what each request looked like on the wire (raw path, raw query, raw headers,
body), so tests can check what the client really sent.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import weakref
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any
from urllib.parse import unquote

import attrs
from aiohttp import web

from hathora_async import HathoraClient, RetryPolicy

# The token clients of the hostile server send. Distinctive, so a leak is easy to find.
TOKEN = "hostile-test-token-7f3a9c1e5b"
APP_ID = "app-hostile"


@attrs.frozen
class Canned:
    """One answer: status, raw body bytes and extra headers, and how to misbehave.

    ``delay`` waits before answering. ``drop`` closes the connection instead of
    answering (after reading the request). ``cut`` sends only that many body
    bytes (the headers promise all of them) and closes. ``drip`` sends the body
    ``drip_bytes`` at a time with that many seconds between pieces; ``chunked``
    sends it without a Content-Length.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content_type: str | None = "application/json"
    delay: float = 0.0
    drop: bool = False
    cut: int | None = None
    drip: float | None = None
    drip_bytes: int = 1
    chunked: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Canned:
        """A JSON answer."""
        return cls(status, json.dumps(data).encode(), dict(headers))

    @classmethod
    def encoded(cls, raw: bytes, encoding: str, status: int = 200, **options: Any) -> Canned:
        """``raw`` compressed with ``encoding`` (gzip, deflate, or raw-deflate: a
        headerless deflate stream, which servers also send as ``deflate``)."""
        body, header = compress(raw, encoding)
        return cls(status, body, {"Content-Encoding": header}, **options)


def compress(raw: bytes, encoding: str) -> tuple[bytes, str]:
    """``raw`` compressed as ``encoding``, and the Content-Encoding naming it."""
    if encoding == "gzip":
        return gzip.compress(raw, 9), "gzip"
    if encoding == "deflate":
        return zlib.compress(raw, 9), "deflate"
    if encoding == "raw-deflate":
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return packer.compress(raw) + packer.flush(), "deflate"
    raise ValueError(f"unknown encoding {encoding!r}")


@attrs.frozen
class Seen:
    """One request exactly as it arrived."""

    method: str
    raw_path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path_segments(self) -> list[str]:
        """The raw (still percent-encoded) segments of the path."""
        return self.raw_path.split("?", 1)[0].split("/")[1:]

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def segment(self, index: int) -> str:
        """Path segment ``index``, percent-decoded."""
        return unquote(self.path_segments[index])


class _Connection:
    """What the server remembers of one keep-alive connection."""

    def __init__(self, now: float) -> None:
        self.last = now
        self.doomed = False


class HostileServer:
    """Answers from a queue (first) or per raw path, else ``default``; records all.

    Two keep-alive behaviours of real servers, off by default, make a request
    arriving on a reused connection meet a connection the server is closing
    (it is cut off unanswered, never acted on, and counted in ``cut_off``):
    ``idle_timeout`` (seconds) for a connection idle that long, as with
    Node's ``keepAliveTimeout`` when the close and the request cross;
    ``close_after_error`` for a connection that carried an error answer
    (>= 400) without ``Connection: close``.
    """

    def __init__(
        self,
        default: Canned | None = None,
        *,
        idle_timeout: float | None = None,
        close_after_error: bool = False,
    ) -> None:
        self.default = default or Canned(404, b'{"message":"no canned answer"}')
        self.by_path: dict[str, Canned] = {}
        self.queue: deque[Canned] = deque()
        self.seen: list[Seen] = []
        self.url = ""
        self.idle_timeout = idle_timeout
        self.close_after_error = close_after_error
        # Requests cut off unanswered on a connection the server was closing.
        self.cut_off = 0
        # How many connections requests arrived on.
        self.connections = 0
        self._connections: weakref.WeakKeyDictionary[object, _Connection] = (
            weakref.WeakKeyDictionary()
        )
        self._arrived = asyncio.Event()

    async def arrived(self, count: int = 1) -> None:
        """Wait until ``count`` requests have arrived in all."""
        while len(self.seen) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def answer(self, canned: Canned, *, path: str | None = None) -> None:
        """Answer requests on raw ``path`` (None: every request) with ``canned``."""
        if path is None:
            self.default = canned
        else:
            self.by_path[path] = canned

    def answer_next(self, *canned: Canned) -> None:
        """Answer the next requests, in order, with ``canned`` before anything else."""
        self.queue.extend(canned)

    def _closing(self, request: web.Request) -> _Connection | None:
        """The connection's record; None if the server was closing it (cut it off)."""
        now = asyncio.get_running_loop().time()
        connection = self._connections.get(request.transport)
        if connection is None:
            self.connections += 1
            connection = self._connections[request.transport] = _Connection(now)
        elif connection.doomed or (
            self.idle_timeout is not None and now - connection.last > self.idle_timeout
        ):
            self.cut_off += 1
            return None
        return connection

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        connection = self._closing(request)
        if connection is None:
            return _abort(request)
        raw_path = request.raw_path
        self.seen.append(
            Seen(
                method=request.method,
                raw_path=raw_path,
                query_string=raw_path.partition("?")[2],
                headers=tuple(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers
                ),
                body=await request.read(),
            )
        )
        self._arrived.set()
        if self.queue:
            canned = self.queue.popleft()
        else:
            canned = self.by_path.get(raw_path.partition("?")[0], self.default)
        if canned.delay:
            await asyncio.sleep(canned.delay)
        connection.last = asyncio.get_running_loop().time()
        connection.doomed = self.close_after_error and canned.status >= 400
        if canned.drop:
            return _abort(request)
        if canned.cut is None and canned.drip is None and not canned.chunked:
            response = web.Response(status=canned.status, body=canned.body, headers=canned.headers)
            if canned.content_type is not None:
                response.content_type = canned.content_type
            return response
        return await _stream(request, canned)


def _abort(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never sent: the connection is gone


async def _stream(request: web.Request, canned: Canned) -> web.StreamResponse:
    """Send ``canned`` piece by piece: dripped, chunked, or cut short."""
    response = web.StreamResponse(status=canned.status, headers=canned.headers)
    if canned.content_type is not None:
        response.content_type = canned.content_type
    if canned.chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = len(canned.body)
    await response.prepare(request)
    body = canned.body if canned.cut is None else canned.body[: canned.cut]
    step = canned.drip_bytes if canned.drip is not None else max(len(body), 1)
    for start in range(0, len(body), step):
        await response.write(body[start : start + step])
        if canned.drip:
            await asyncio.sleep(canned.drip)
    if canned.cut is not None:
        _abort(request)
        return response
    await response.write_eof()
    return response


@asynccontextmanager
async def hostile_server(
    default: Canned | None = None, **behaviour: Any
) -> AsyncIterator[HostileServer]:
    """Serve a ``HostileServer`` on a free loopback port for the ``async with`` body.

    ``behaviour``: ``idle_timeout`` and ``close_after_error`` (see ``HostileServer``).
    """
    server = HostileServer(default, **behaviour)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield server
    finally:
        await runner.cleanup()


class RawServer:
    """Answers every request with the same raw bytes, valid HTTP or not, then closes.

    For what aiohttp's web server cannot send: malformed status lines and headers.
    ``requests`` counts the requests that arrived.
    """

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests = 0
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(self.reply)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[RawServer]:
    """Serve a ``RawServer`` answering ``reply`` on a free loopback port."""
    server = RawServer(reply)
    listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    try:
        server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def hostile_client(server: HostileServer | RawServer, **options: Any) -> HathoraClient:
    """A client of ``server`` with ``TOKEN`` and ``APP_ID`` that never retries (by default)."""
    options.setdefault("retry", RetryPolicy.none())
    return HathoraClient(TOKEN, APP_ID, base_url=server.url, **options)


# Every key of the spec's ProcessV2: all required, so a complete body has each one.
PROCESS_V2_KEYS = [
    "status",
    "roomsAllocated",
    "terminatedAt",
    "stoppingAt",
    "startedAt",
    "createdAt",
    "roomsPerProcess",
    "additionalExposedPorts",
    "exposedPort",
    "region",
    "processId",
    "deploymentId",
    "appId",
]


def process_json(**overrides: Any) -> dict[str, Any]:
    """A valid ``ProcessV2`` wire object (camelCase, every key), with ``overrides``."""
    data: dict[str, Any] = {
        "status": "running",
        "roomsAllocated": 1,
        "terminatedAt": None,
        "stoppingAt": None,
        "startedAt": "2024-05-01T10:00:05.250Z",
        "createdAt": "2024-05-01T10:00:00Z",
        "roomsPerProcess": 4,
        "additionalExposedPorts": [
            {"transportType": "tcp", "port": 7001, "host": "1.proxy.hathora.dev", "name": "debug"}
        ],
        "exposedPort": {
            "transportType": "udp",
            "port": 34567,
            "host": "1.proxy.hathora.dev",
            "name": "default",
        },
        "region": "Seattle",
        "processId": "cbfcddd2-0006-43ae-996c-995fff7bed2e",
        "deploymentId": 7,
        "appId": APP_ID,
    }
    data.update(overrides)
    return data


@contextmanager
def black_hole() -> Iterator[socket.socket]:
    """A listening socket whose accept queue is full: a connect to it hangs."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        listener.setblocking(False)
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with suppress(BlockingIOError):  # non-blocking: the handshake completes later
                filler.connect(listener.getsockname())
        yield listener
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@functools.cache
def bomb(encoding: str, size: int = 64 * 1024 * 1024) -> Canned:
    """A valid JSON array of ``size`` bytes (mostly spaces), compressed to ~1/1000."""
    return Canned.encoded(b"[" + b" " * (size - 2) + b"]", encoding)


_PORT = {"transportType": "udp", "port": 7777, "host": "1.proxy.hathora.dev", "name": "default"}
_ALLOCATION = {
    "unscheduledAt": None,
    "scheduledAt": "2024-05-01T10:00:00Z",
    "processId": "p1",
    "roomAllocationId": "a1",
}
_ROOM = {
    "currentAllocation": _ALLOCATION,
    "status": "active",
    "roomConfig": None,
    "roomId": "r1",
    "appId": APP_ID,
}
_CONNECTION = {"additionalExposedPorts": [], "exposedPort": _PORT, "status": "active"}


@attrs.frozen
class Op:
    """One endpoint, called through the client, with a valid success body for it.

    ``body`` is None for operations that return no data. ``creates_process``
    marks the one call that is never resent blindly (``create_process``).
    """

    name: str
    call: Callable[[HathoraClient], Awaitable[Any]]
    body: bytes | None
    creates_process: bool = False

    def __str__(self) -> str:
        return self.name


def _dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


# Every endpoint of the client, processes and rooms.
OPS: list[Op] = [
    Op(
        "create_process",
        lambda c: c.processes.create_process("Seattle"),
        _dumps(process_json()),
        True,
    ),
    Op(
        "get_latest_processes",
        lambda c: c.processes.get_latest_processes(),
        _dumps([process_json()]),
    ),
    Op("get_process_info", lambda c: c.processes.get_process_info("p-1"), _dumps(process_json())),
    Op("stop_process", lambda c: c.processes.stop_process("p-1"), None),
    Op(
        "create_room",
        lambda c: c.rooms.create_room("Seattle", room_id="r1"),
        _dumps({**_CONNECTION, "roomId": "r1", "processId": "p1"}),
    ),
    Op(
        "get_room_info", lambda c: c.rooms.get_room_info("r1"), _dumps({**_ROOM, "allocations": []})
    ),
    Op(
        "get_active_rooms_for_process",
        lambda c: c.rooms.get_active_rooms_for_process("p1"),
        _dumps([_ROOM]),
    ),
    Op(
        "get_inactive_rooms_for_process",
        lambda c: c.rooms.get_inactive_rooms_for_process("p1"),
        _dumps([_ROOM]),
    ),
    Op("destroy_room", lambda c: c.rooms.destroy_room("r1"), None),
    Op("update_room_config", lambda c: c.rooms.update_room_config("r1", "cfg"), None),
    Op(
        "get_connection_info",
        lambda c: c.rooms.get_connection_info("r1"),
        _dumps({**_CONNECTION, "roomId": "r1"}),
    ),
]
DATA_OPS = [op for op in OPS if op.body is not None]
