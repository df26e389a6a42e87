"""A purpose-built hostile HTTP server for tests: canned answers, raw request records.

Unlike ``FakeHathora`` it implements no API: it answers whatever it is told to
(any status, body or headers, per raw path or in sequence) and records exactly
what each request looked like on the wire (raw path, raw query, raw headers,
body), so tests can check what the client really sent.
"""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
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
    """One answer: status, raw body bytes and extra headers."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content_type: str | None = "application/json"

    @classmethod
    def json(cls, data: Any, status: int = 200, **headers: str) -> Canned:
        """A JSON answer."""
        return cls(status, json.dumps(data).encode(), dict(headers))


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


class HostileServer:
    """Answers from a queue (first) or per raw path, else ``default``; records all."""

    def __init__(self, default: Canned | None = None) -> None:
        self.default = default or Canned(404, b'{"message":"no canned answer"}')
        self.by_path: dict[str, Canned] = {}
        self.queue: deque[Canned] = deque()
        self.seen: list[Seen] = []
        self.url = ""

    def answer(self, canned: Canned, *, path: str | None = None) -> None:
        """Answer requests on raw ``path`` (None: every request) with ``canned``."""
        if path is None:
            self.default = canned
        else:
            self.by_path[path] = canned

    def answer_next(self, *canned: Canned) -> None:
        """Answer the next requests, in order, with ``canned`` before anything else."""
        self.queue.extend(canned)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
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
        if self.queue:
            canned = self.queue.popleft()
        else:
            canned = self.by_path.get(raw_path.partition("?")[0], self.default)
        response = web.Response(status=canned.status, body=canned.body, headers=canned.headers)
        if canned.content_type is not None:
            response.content_type = canned.content_type
        return response


@asynccontextmanager
async def hostile_server(default: Canned | None = None) -> AsyncIterator[HostileServer]:
    """Serve a ``HostileServer`` on a free loopback port for the ``async with`` body."""
    server = HostileServer(default)
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


def hostile_client(server: HostileServer, **options: Any) -> HathoraClient:
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
