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
        "terminatedAt": f"2024-05-01T12:{minute}:59.512Z" if status in ("stopped", "failed") else None,
        "stoppingAt": f"2024-05-01T12:{minute}:58.001Z" if stopping else None,
        "startedAt": f"2024-05-01T12:{minute}:07.250Z" if started else None,
        "createdAt": f"2024-05-01T12:{minute}:02.906Z",
        "roomsPerProcess": 4,
        # A few processes expose a debug port as well, as the spec's example does.
        "additionalExposedPorts": (
            [{**port, "transportType": "tcp", "port": 40000 + index, "name": "debug"}]
            if index % 3 == 0
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


async def serve(latency: float, port: int) -> None:
    server = web.Server(make_handler(latency), access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    try:
        # Serve until the parent closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.latency, args.port))


if __name__ == "__main__":
    main()
