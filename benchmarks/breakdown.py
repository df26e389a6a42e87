"""Where hathora_async's own per-call time goes, layer by layer, without a network.

    python3 benchmarks/breakdown.py

A stub aiohttp session (its ``request`` returns a canned response at once)
stands in for the network, so what is left is the client's own Python work,
hot in the CPU caches. Each row calls one layer deeper into the client's call
path than the row above it; the difference between rows is that layer's cost.
End to end (``bench_calls.py``) the same work costs several times more per
call, as the caches are cold between calls; the proportions hold.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hathora_async import HathoraClient, _convert, processes
from hathora_async._paths import segment
from hathora_async.models import ProcessV2

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import canned_server as canned  # noqa: E402


class _Content:
    async def read(self, n: int = -1) -> bytes:
        return b""


class _Response:
    def __init__(self, status: int, body: bytes | None) -> None:
        self.status = status
        self.headers: dict[str, str] = {}
        self.content_length = len(body) if body is not None else None
        self.content = _Content()
        self._body = body or b""

    async def read(self) -> bytes:
        return self._body


class _Context:
    def __init__(self, response: _Response) -> None:
        self.response = response

    async def __aenter__(self) -> _Response:
        return self.response

    async def __aexit__(self, *exc: object) -> None:
        return None


class StubSession:
    """Just enough of ``aiohttp.ClientSession`` for the client: one canned answer."""

    closed = False
    auth = None  # what the client checks of a caller's session
    connector = None
    trust_env = False

    def __init__(self, status: int, body: bytes | None) -> None:
        self.response = _Response(status, body)

    def request(self, *args: Any, **kwargs: Any) -> _Context:
        return _Context(self.response)

    get = post = request

    async def close(self) -> None:
        return None


Op = Callable[[], Awaitable[Any]]


def _time(fn: Op, calls: int) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        start = time.process_time()
        for _ in range(calls):
            await fn()
        return (time.process_time() - start) / calls * 1e6

    return run


async def _layers(client: HathoraClient, session: StubSession, case: str) -> dict[str, Op]:
    """One row per layer of the call path, for ``case`` (``stop`` or ``info``)."""
    transport, options = client._transport, client._options
    # As with the session the client creates: the headers ride on the session.
    transport._request_headers = None
    endpoint: Any = processes.STOP_PROCESS if case == "stop" else processes.GET_PROCESS_INFO
    segments = (segment(canned.APP_ID, "app_id"), segment(canned.PROCESS_ID, "process_id"))
    url = f"http://127.0.0.1:1/processes/v2/{canned.APP_ID}/{case}/{canned.PROCESS_ID}"
    api, pid = client.processes, canned.PROCESS_ID
    expected = 204 if case == "stop" else 200
    name = "stop_process" if case == "stop" else "get_process_info"
    with_info = getattr(api, f"{name}_with_http_info")
    public = getattr(api, name)

    async def raw() -> Any:
        async with session.post(url) as response:
            if response.status != expected:
                raise RuntimeError(response.status)
            return None if case == "stop" else json.loads(await response.read())

    return {
        f"{case}: raw aiohttp + json.loads (stub)": raw,
        f"{case}: Transport.request (retry loop, URL, read, decode, ApiResponse, tracking)": (
            lambda: transport.request(endpoint, segments, options)
        ),
        f"{case}: {name}_with_http_info (+ path segments)": lambda: with_info(pid),
        f"{case}: {name}": lambda: public(pid),
    }


async def main(calls: int = 20000, rounds: int = 15) -> None:
    _convert.loads = _convert._loads_json  # the default install
    rows: dict[str, Op] = {}
    clients = []
    for case, status, body in (("stop", 204, None), ("info", 200, canned.PROCESS_BODY)):
        session = StubSession(status, body)
        client = HathoraClient(
            canned.TOKEN,
            canned.APP_ID,
            base_url="http://127.0.0.1:1",
            session=session,  # type: ignore[arg-type]
        )
        await client.__aenter__()
        clients.append(client)
        rows.update(await _layers(client, session, case))
    one, one_dict = canned.PROCESS_BODY, json.loads(canned.PROCESS_BODY)
    hook = _convert._fast.get_structure_hook(ProcessV2)

    async def loads() -> Any:
        return json.loads(one)

    async def fast_loads() -> Any:
        return _convert._loads_json(one)

    async def structure() -> Any:
        return hook(one_dict, ProcessV2)

    rows["decode: json.loads(body)"] = loads
    rows["decode: _loads_json(body) (the client's parser)"] = fast_loads
    rows["decode: dict -> ProcessV2 (generated structure function)"] = structure
    best = {name: float("inf") for name in rows}
    for _ in range(rounds):
        for name, fn in rows.items():
            best[name] = min(best[name], await _time(fn, calls)())
    for client in clients:
        await client.aclose()
    print("| layer (each row includes the rows above it, per case) | µs per call, hot |")
    print("|---|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
