"""A canned ProcessesV2 server for the benchmarks: fixed, spec-shaped answers.

It does no work per request beyond routing, so the client under test (in its
own process) is what the benchmark measures. Run it alone with
``python benchmarks/canned_server.py [--latency SECONDS]``; it prints
``READY <port>`` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiohttp import web

TOKEN = "bench-token"
APP_ID = "app-af469a92-5b45-4565-b3c4-b79878de67d2"
PROCESS_ID = "cbfcddd2-0006-43ae-996c-995fff7bed2e"
REGION = "Seattle"

_STATUSES = ("running", "running", "starting", "draining", "stopping", "stopped", "failed")


def process(index: int = 0, status: str = "running") -> dict[str, Any]:
    """One ``ProcessV2`` object as Hathora sends it: every key, camelCase."""
    minute = f"{10 + index % 50:02d}"
    started = status not in ("starting", "failed")
    stopping = status in ("stopping", "stopped")
    port = {"transportType": "udp", "port": 30000 + index, "host": "1.proxy.hathora.dev"}
    return {
        "status": status,
        "roomsAllocated": index % 4,
        "terminatedAt": f"2024-05-01T12:{minute}:59.512Z"
        if status in ("stopped", "failed")
        else None,
        "stoppingAt": f"2024-05-01T12:{minute}:58.001Z" if stopping else None,
        "startedAt": f"2024-05-01T12:{minute}:07.250Z" if started else None,
        "createdAt": f"2024-05-01T12:{minute}:02.906Z",
        "roomsPerProcess": 4,
        # Most processes expose one port; a few a debug port too, as the spec's example.
        "additionalExposedPorts": (
            [{**port, "transportType": "tcp", "port": 40000 + index, "name": "debug"}]
            if index % 3 == 1
            else []
        ),
        "exposedPort": {**port, "name": "default"} if started and not stopping else None,
        "region": REGION,
        "processId": PROCESS_ID if index == 0 else f"cbfcddd2-{index:04d}-43ae-996c-995fff7bed2e",
        "deploymentId": 1,
        "appId": APP_ID,
    }


def _encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


PROCESS_BODY = _encode(process(0))
LATEST_BODY = _encode([process(i, _STATUSES[i % len(_STATUSES)]) for i in range(10)])

_PREFIX = f"/processes/v2/{APP_ID}/"
_ROUTES: dict[tuple[str, str], tuple[int, bytes | None]] = {
    ("GET", f"{_PREFIX}info/{PROCESS_ID}"): (200, PROCESS_BODY),
    ("GET", f"{_PREFIX}list/latest"): (200, LATEST_BODY),
    ("POST", f"{_PREFIX}create/{REGION}"): (201, PROCESS_BODY),
    ("POST", f"{_PREFIX}stop/{PROCESS_ID}"): (204, None),
}


def _raw_response(status: int, body: bytes | None) -> bytes:
    reason = {200: "OK", 201: "Created", 204: "No Content", 401: "Unauthorized", 404: "Not Found"}
    head = [f"HTTP/1.1 {status} {reason[status]}", "Server: canned"]
    if body is not None:
        head += ["Content-Type: application/json; charset=utf-8", f"Content-Length: {len(body)}"]
    elif status != 204:
        head.append("Content-Length: 0")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


_ANSWERS = {
    (method.encode(), path.encode()): _raw_response(status, body)
    for (method, path), (status, body) in _ROUTES.items()
}


class CannedProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: whole answers prepared in advance.

    It spends a few microseconds per request, so the client, not the server,
    sets the pace, as a remote API would.
    """

    answers = _ANSWERS
    not_found = _raw_response(404, b'{"message":"no such route"}')
    unauthorized = _raw_response(401, b'{"message":"Invalid or missing bearer token"}')
    # Header names are case-insensitive; the benchmark's token is lower case anyway.
    auth = f"\r\nauthorization: bearer {TOKEN}\r\n".lower().encode()

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[: end + 2]
            lowered = head.lower()
            length = 0
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(lowered[at + 17 : lowered.find(b"\r\n", at + 2)])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head[: head.find(b"\r\n")].split(b" ", 2)
            if self.auth not in lowered:
                answer = self.unauthorized
            else:
                answer = self.answers.get((method, path), self.not_found)
            if self.latency > 0:
                asyncio.get_running_loop().call_later(self.latency, self._send, answer)
            else:
                self._send(answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


def make_handler(latency: float) -> Any:
    """The request handler: one dictionary lookup, then the canned answer."""
    auth = f"Bearer {TOKEN}"

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if latency > 0:
            await asyncio.sleep(latency)
        if request.headers.get("Authorization") != auth:
            return web.json_response({"message": "Invalid or missing bearer token"}, status=401)
        route = _ROUTES.get((request.method, request.path))
        if route is None:
            return web.json_response({"message": f"no route {request.path}"}, status=404)
        status, body = route
        if body is None:
            return web.Response(status=status)
        return web.Response(status=status, body=body, content_type="application/json")

    return handle


async def serve(latency: float, port: int, kind: str) -> None:
    loop = asyncio.get_running_loop()
    if kind == "aiohttp":
        runner = web.ServerRunner(web.Server(make_handler(latency), access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        bound = runner.addresses[0][1]
    else:
        server = await loop.create_server(
            lambda: CannedProtocol(latency), "127.0.0.1", port, backlog=4096
        )
        bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    try:
        # Serve until the parent closes our stdin (or kills us).
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        if kind == "aiohttp":
            await runner.cleanup()
        else:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--kind",
        choices=["protocol", "aiohttp"],
        default="protocol",
        help="a minimal asyncio server (default) or an aiohttp.web one",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.latency, args.port, args.kind))


if __name__ == "__main__":
    main()
