"""Transport hardening (issue 9): bounded reads and decoding, honest errors, caller sessions.

Every test talks HTTP over loopback to the hostile server (tests/hostile.py) or the fake.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from hostile import (
    APP_ID,
    DATA_OPS,
    OPS,
    TOKEN,
    Canned,
    HostileServer,
    Op,
    black_hole,
    bomb,
    hostile_client,
    hostile_server,
    process_json,
)

import hathora_async._convert as convert
import hathora_async._http as http
from hathora_async import (
    ApiError,
    ClientClosedError,
    ClientLoopError,
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    NotFoundError,
    RateLimitedError,
    ResponseDecodeError,
    ResponseTooLargeError,
    RetryPolicy,
)
from hathora_async.testing import FakeHathora

MiB = 1024 * 1024
LOADERS = {"json": convert._loads_json, "orjson": convert._orjson_loads()}


@pytest.fixture(params=sorted(LOADERS))
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the standard library's parser, then with the orjson extra's."""
    loads = LOADERS[request.param]
    if loads is None:
        pytest.skip("orjson is not installed")
    monkeypatch.setattr(convert, "loads", loads)
    monkeypatch.setattr(http, "loads", loads)
    return str(request.param)


def deep(depth: int, shape: str) -> bytes:
    if shape == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# -- 3: any failure while decoding is a typed error ----------------------------------


@pytest.mark.parametrize("op", OPS, ids=str)
@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("shape", ["array", "object"])
async def test_deep_nesting_is_a_typed_error_on_every_endpoint(
    hostile: HostileServer, loader: str, op: Op, depth: int, shape: str
) -> None:
    hostile.answer(Canned(201 if op.creates_process else 200, deep(depth, shape)))
    async with hostile_client(hostile) as client:
        if op.body is None:
            await op.call(client)  # no data to decode: the body is not read as JSON
            return
        with pytest.raises(ResponseDecodeError, match="nested too deeply") as caught:
            await op.call(client)
    assert caught.value.outcome_unknown is op.creates_process
    assert caught.value.process_id is None
    assert len(str(caught.value)) < 2000


@pytest.mark.parametrize("op", OPS, ids=str)
async def test_deep_nesting_in_an_error_body_keeps_the_status(
    hostile: HostileServer, loader: str, op: Op
) -> None:
    hostile.answer(Canned(503, deep(5_000, "object")))
    async with hostile_client(hostile) as client:
        with pytest.raises(ApiError) as caught:
            await op.call(client)
    assert caught.value.status == 503
    assert caught.value.outcome_unknown is op.creates_process


@pytest.mark.parametrize(
    "body",
    [
        b'{"processId": "p-deep", "exposedPort": ' + deep(5_000, "array") + b"}",
        b'{"processId": "p-deep", "status": "running", "roomsAllocated": "\xff\xfe"}',
        json.dumps(process_json(processId="p-deep", createdAt=12)).encode(),
        json.dumps(process_json(processId="p-deep"))[:-40].encode(),
    ],
    ids=["too-deep", "invalid-utf8", "wrong-type", "cut-json"],
)
async def test_an_undecodable_create_answer_names_the_process(
    hostile: HostileServer, loader: str, body: bytes
) -> None:
    hostile.answer(Canned(201, body))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.create_process("Seattle")
    assert caught.value.outcome_unknown is True
    assert caught.value.process_id == "p-deep"
    assert len(hostile.seen) == 1


async def test_two_ids_in_an_unreadable_create_answer_name_none(hostile: HostileServer) -> None:
    body = b'{"processId": "a", "other": {"processId": "b"}, ' + deep(5_000, "array") + b"}"
    hostile.answer(Canned(201, body))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.create_process("Seattle")
    assert caught.value.process_id is None


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RecursionError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        KeyError(),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("op", DATA_OPS, ids=str)
async def test_any_parser_failure_is_a_typed_error(
    hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, failure: Exception, op: Op
) -> None:
    def broken(body: bytes) -> Any:
        raise failure

    monkeypatch.setattr(convert, "loads", broken)
    assert op.body is not None
    hostile.answer(Canned(201 if op.creates_process else 200, op.body))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await op.call(client)
    assert caught.value.outcome_unknown is op.creates_process


# -- 4: the size limit counts decoded bytes ----------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
@pytest.mark.parametrize("op", DATA_OPS, ids=str)
async def test_a_compressed_answer_is_decoded(
    hostile: HostileServer, encoding: str, op: Op
) -> None:
    assert op.body is not None
    hostile.answer(Canned.encoded(op.body, encoding, 201 if op.creates_process else 200))
    async with hostile_client(hostile) as client:
        assert await op.call(client) is not None


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
@pytest.mark.parametrize("status", [200, 503, 404])
async def test_a_bomb_is_refused_at_the_limit_in_bounded_memory(
    hostile: HostileServer, encoding: str, status: int
) -> None:
    # 64 KiB on the wire, 64 MiB inflated.
    hostile.answer(attrs.evolve(bomb(encoding), status=status))
    hostile.answer_next(Canned.json([]))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4, initial_delay=0)) as client:
        await client.processes.get_latest_processes()  # the session and its connection, warm
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError) as caught:
                await client.processes.get_latest_processes()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert caught.value.status == status
    assert caught.value.attempts == 1  # never retried, even a 503
    assert len(hostile.seen) == 2
    assert len(caught.value.body) <= 64 * 1024
    # The default limit is 4 MiB: what is kept, plus aiohttp's buffers, never 64 MiB.
    assert peak < 12 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("status", [200, 503, 404])
async def test_a_plain_body_over_the_limit_is_refused(
    hostile: HostileServer, chunked: bool, status: int
) -> None:
    hostile.answer(Canned(status, b"[" + b" " * (5 * MiB) + b"]", chunked=chunked))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4, initial_delay=0)) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.processes.get_latest_processes()
    assert caught.value.status == status
    assert len(hostile.seen) == 1


@pytest.mark.parametrize("op", OPS, ids=str)
async def test_a_bomb_to_any_endpoint_is_typed_and_not_retried(
    hostile: HostileServer, op: Op
) -> None:
    hostile.answer(bomb("gzip", 8 * MiB))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4, initial_delay=0)) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await op.call(client)
    assert len(hostile.seen) == 1
    assert caught.value.outcome_unknown is op.creates_process


async def test_max_response_bytes_is_configurable(hostile: HostileServer) -> None:
    body = json.dumps([process_json()] * 3).encode()
    hostile.answer(Canned.encoded(body, "gzip"))
    async with hostile_client(hostile, max_response_bytes=len(body) - 1) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.processes.get_latest_processes()
        assert caught.value.limit == len(body) - 1
        roomy = client.with_options(max_response_bytes=len(body))
        assert len(await roomy.processes.get_latest_processes()) == 3
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_response_bytes"):
            hostile_client(hostile, max_response_bytes=bad)


# -- 5: explaining a bad answer is bounded ------------------------------------------


@pytest.mark.parametrize(
    "op", [o for o in DATA_OPS if o.name.startswith(("get_latest", "get_active"))], ids=str
)
async def test_explaining_300000_bad_items_is_bounded(
    hostile: HostileServer, loader: str, op: Op
) -> None:
    body = b"[" + b",".join([b"{}"] * 300_000) + b"]"
    started = time.perf_counter()
    json.loads(body)
    parse = time.perf_counter() - started
    hostile.answer(Canned(200, body))
    async with hostile_client(hostile, timeout=5) as client:
        started = time.perf_counter()
        with pytest.raises(ResponseDecodeError) as caught:
            await asyncio.wait_for(op.call(client), 10)
        elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert len(message) < 2000
    assert "required field missing @ $[0]" in message
    assert "more problems" in message
    # Reading 0.6 MB over loopback plus a few parses; was 91 s.
    assert elapsed < max(1.0, 25 * parse), (elapsed, parse)


async def test_a_huge_bad_value_is_described_briefly(hostile: HostileServer) -> None:
    hostile.answer(Canned.json(process_json(createdAt="\x1b[31m" + "9" * 1_000_000)))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.get_process_info("p-1")
    message = str(caught.value)
    assert len(message) < 2000 and "$.createdAt" in message
    assert "\x1b" not in message


# -- 6 and 7: waiting for a connection; closing with creates in the queue ----------------


async def test_waiting_for_a_free_connection_is_its_own_error_within_the_deadline(
    hostile: HostileServer,
) -> None:
    hostile.answer(attrs.evolve(Canned.json(process_json(), 201), delay=1.0))
    async with hostile_client(hostile, max_connections=1, retry=RetryPolicy(attempts=4)) as client:
        holder = asyncio.ensure_future(
            client.with_options(timeout=5).processes.get_process_info("a")
        )
        await hostile.arrived()
        queued = client.with_options(timeout=0.3)
        started = time.monotonic()
        for call in (
            lambda: queued.processes.get_process_info("b"),
            lambda: queued.processes.create_process("Seattle"),
        ):
            with pytest.raises(HathoraTimeoutError, match="no free connection") as caught:
                await call()
            assert caught.value.outcome_unknown is False
            assert caught.value.attempts == 1
        elapsed = time.monotonic() - started
        await holder
    assert 0.5 <= elapsed < 0.95
    assert len(hostile.seen) == 1  # neither queued call was sent, nor retried


async def test_queued_calls_go_out_as_connections_free_up(hostile: HostileServer) -> None:
    hostile.answer(attrs.evolve(Canned.json(process_json()), delay=0.05))
    async with hostile_client(hostile, max_connections=2) as client:
        results = await asyncio.gather(
            *(client.processes.get_process_info(f"p{i}") for i in range(12))
        )
    assert len(results) == 12 and len(hostile.seen) == 12


async def test_aclose_flags_only_the_creates_that_may_have_left(hostile: HostileServer) -> None:
    hostile.answer(attrs.evolve(Canned.json(process_json(), 201), delay=5.0))
    client = hostile_client(hostile, max_connections=1)
    calls = [asyncio.ensure_future(client.processes.create_process("Seattle")) for _ in range(4)]
    await hostile.arrived()
    await client.aclose()
    errors = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(e, ClientClosedError) for e in errors)
    assert [e.outcome_unknown for e in errors if isinstance(e, HathoraError)] == [
        True,
        False,
        False,
        False,
    ]
    assert len(hostile.seen) == 1


async def test_aclose_during_a_pause_between_attempts_is_not_outcome_unknown(
    hostile: HostileServer,
) -> None:
    hostile.answer(Canned.json({"message": "slow down"}, 429, **{"Retry-After": "10"}))
    policy = RetryPolicy(attempts=3, max_retry_after=30)
    client = hostile_client(hostile, retry=policy, timeout=20)
    call = asyncio.ensure_future(client.processes.create_process("Seattle"))
    await hostile.arrived()
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await call
    assert caught.value.outcome_unknown is False


# -- 8 and 9: a caller's session; cookies ---------------------------------------------


async def test_a_callers_session_defaults_do_not_change_a_call(hostile: HostileServer) -> None:
    async with aiohttp.ClientSession(
        raise_for_status=True,
        headers={"Authorization": "Bearer theirs", "User-Agent": "theirs", "Accept": "text/html"},
        timeout=aiohttp.ClientTimeout(total=0.000001),
        auto_decompress=False,
        base_url="http://127.0.0.1:9/elsewhere/",
    ) as session:
        client = hostile_client(hostile, session=session, retry=RetryPolicy(attempts=4))
        hostile.answer_next(Canned.json({"message": "no"}, 404))
        with pytest.raises(NotFoundError) as missing:
            await client.processes.get_process_info("p-1")
        assert missing.value.attempts == 1
        hostile.answer_next(Canned.json({"message": "later"}, 429), Canned.json({"m": 1}, 429))
        with pytest.raises(RateLimitedError) as limited:
            await client.with_options(retry=RetryPolicy.none()).processes.create_process("Seattle")
        assert limited.value.outcome_unknown is False
        hostile.answer_next(Canned.encoded(json.dumps(process_json()).encode(), "gzip"))
        assert (await client.processes.get_process_info("p-1")).app_id == APP_ID
    request = hostile.seen[-1]
    assert request.header_values("Authorization") == [f"Bearer {TOKEN}"]
    assert request.header_values("User-Agent")[0].startswith("hathora-async/")
    assert request.header_values("Accept") == ["application/json"]


async def test_a_session_with_auth_is_refused_with_a_token(hostile: HostileServer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp 3.14 deprecates auth=
        session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("u", "p"))
    async with session:
        with pytest.raises(ValueError, match="auth"):
            hostile_client(hostile, session=session)


async def test_the_clients_own_session_sends_no_cookie_back(hostile: HostileServer) -> None:
    hostile.answer(Canned(200, json.dumps(process_json()).encode(), {"Set-Cookie": "s=1; Path=/"}))
    async with hostile_client(hostile) as client:
        await client.processes.get_process_info("p-1")
        await client.processes.get_process_info("p-1")
    assert [r.header_values("Cookie") for r in hostile.seen] == [[], []]


# -- 10 and 11: environment, base_url and token checks --------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing-netrc"))
    return monkeypatch


async def test_proxies_from_the_environment_only_with_trust_env(
    hostile: HostileServer, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with hostile_server(Canned.json(process_json())) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        hostile.answer(Canned.json(process_json()))
        async with hostile_client(hostile) as client:
            await client.processes.get_process_info("p-1")
        assert len(hostile.seen) == 1 and proxy.seen == []
        async with hostile_client(hostile, trust_env=True) as client:
            await client.processes.get_process_info("p-1")
        assert len(hostile.seen) == 1 and len(proxy.seen) == 1
        assert proxy.seen[0].raw_path.startswith(hostile.url)  # an absolute-form proxy request


@pytest.mark.parametrize("proxy", ["http://proxy.example:3128", "http://10.1.2.3:8080"])
async def test_trust_env_refuses_a_proxy_that_would_see_the_token_in_clear(
    no_proxy_env: pytest.MonkeyPatch, proxy: str
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy)
    with pytest.raises(ValueError, match="plain http through the proxy") as caught:
        HathoraClient(TOKEN, APP_ID, base_url="http://127.0.0.1:9", trust_env=True)
    assert TOKEN not in str(caught.value)
    # https is tunnelled (CONNECT): the proxy never sees the token.
    no_proxy_env.setenv("HTTPS_PROXY", proxy)
    HathoraClient(TOKEN, APP_ID, base_url="https://api.example", trust_env=True)
    # Bypassed, or explicitly allowed, or trust_env off: fine too.
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    HathoraClient(TOKEN, APP_ID, base_url="http://127.0.0.1:9", trust_env=True)
    no_proxy_env.delenv("NO_PROXY")
    HathoraClient(TOKEN, APP_ID, base_url="http://127.0.0.1:9")
    async with aiohttp.ClientSession(trust_env=True) as session:
        with pytest.raises(ValueError, match="plain http"):
            HathoraClient(TOKEN, APP_ID, base_url="http://127.0.0.1:9", session=session)


async def test_netrc_credentials_never_replace_the_token(
    no_proxy_env: pytest.MonkeyPatch, tmp_path: Path, hostile: HostileServer
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    no_proxy_env.setenv("NETRC", str(netrc))
    hostile.answer(Canned.json(process_json()))
    # The client's own session reads the environment once, for the proxy only.
    async with hostile_client(hostile, trust_env=True) as client:
        await client.processes.get_process_info("p-1")
    assert hostile.seen[0].header_values("Authorization") == [f"Bearer {TOKEN}"]
    # A caller's trust_env session would read .netrc on every request: refused.
    async with aiohttp.ClientSession(trust_env=True) as session:
        with pytest.raises(ValueError, match=r"\.netrc has credentials for 127\.0\.0\.1") as caught:
            HathoraClient(TOKEN, APP_ID, base_url=hostile.url, session=session)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://user:s3cret@127.0.0.1:8080", "https://user:s3cret@api.example", "https://:s3cret@h"],
)
def test_credentials_in_base_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        HathoraClient(TOKEN, APP_ID, base_url=url)
    assert "s3cret" not in str(caught.value) and "s3cret" not in repr(caught.value)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("s3cr\x7fet", "control"),
        ("s3cr\x00et", "control"),
        ("s3cr\x1bet", "control"),
        ("s3cr\x85et", "control"),
        ("s3cr\u0101et", "Latin-1"),
        ("s3cr\u2028et", "Latin-1"),
        (" s3cret", "whitespace"),
        ("s3cret\n", "whitespace"),
        ("s3c\nret", "control"),
    ],
)
def test_an_unusable_token_is_refused_at_construction(token: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        HathoraClient(token, APP_ID, base_url="http://127.0.0.1:9")
    assert "s3c" not in str(caught.value) and "s3c" not in repr(caught.value)


def test_a_latin1_token_is_accepted() -> None:
    assert HathoraClient("tok\xe9n", APP_ID, base_url="http://127.0.0.1:9").closed is False


# -- 12: the server's message, capped and escaped ------------------------------------


@pytest.mark.parametrize("op", OPS, ids=str)
async def test_the_servers_message_is_capped_and_escaped(hostile: HostileServer, op: Op) -> None:
    message = "line one\nline two \x1b[2J\x1b[31mred\r\u202eevil" + "x" * 64_000
    hostile.answer(Canned.json({"message": message}, 400))
    async with hostile_client(hostile) as client:
        with pytest.raises(ApiError) as caught:
            await op.call(client)
    text = str(caught.value)
    assert len(text) < 800
    assert not any(ch in text for ch in "\n\r\x1b\u202e")
    assert "line one\\nline two \\x1b[2J" in text
    assert caught.value.message == message  # the raw message stays available
    assert json.loads(caught.value.body) == {"message": message}  # and the raw body


# -- 13: one client, two asyncio.run() ------------------------------------------------


@pytest.fixture
def fake_in_thread() -> Iterator[FakeHathora]:
    """A fake served from its own thread and loop, so the test can call asyncio.run()."""
    ready = threading.Event()
    stop: list[Callable[[], None]] = []
    served: list[FakeHathora] = []

    async def serve() -> None:
        async with FakeHathora(seed=3) as fake:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            stop.append(lambda: loop.call_soon_threadsafe(done.set))
            served.append(fake)
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert ready.wait(10)
    try:
        yield served[0]
    finally:
        stop[0]()
        thread.join(10)


async def _use(client: HathoraClient) -> None:
    process = await client.processes.create_process("Seattle")
    await client.processes.get_process_info(process.process_id)
    room = await client.rooms.create_room("Seattle")
    await client.rooms.get_connection_info(room.room_id)
    await client.rooms.destroy_room(room.room_id)


def test_one_client_serves_two_asyncio_runs_and_leaks_nothing(
    fake_in_thread: FakeHathora,
) -> None:
    fake = fake_in_thread
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
        asyncio.run(_use(client))
        asyncio.run(_use(client))
        sibling = client.with_options(timeout=5)
        asyncio.run(_use(sibling))
        asyncio.run(client.aclose())
        del client, sibling
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    deadline = time.monotonic() + 2
    while fake.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.open_connections == 0


def test_a_loop_still_open_elsewhere_is_a_clear_error(fake_in_thread: FakeHathora) -> None:
    fake = fake_in_thread
    first = asyncio.new_event_loop()
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
    try:
        first.run_until_complete(_use(client))
        with pytest.raises(ClientLoopError, match="another event loop") as caught:
            asyncio.run(_use(client))
        assert isinstance(caught.value, HathoraError)
    finally:
        first.run_until_complete(client.aclose())
        first.run_until_complete(first.shutdown_asyncgens())
        first.close()


def test_a_callers_session_from_another_loop_is_a_clear_error(fake_in_thread: FakeHathora) -> None:
    fake = fake_in_thread

    async def make() -> tuple[aiohttp.ClientSession, HathoraClient]:
        session = aiohttp.ClientSession()
        client = HathoraClient(fake.token, fake.app_id, base_url=fake.url, session=session)
        await _use(client)
        return session, client

    first = asyncio.new_event_loop()
    try:
        session, client = first.run_until_complete(make())
        with pytest.raises(ClientLoopError):
            asyncio.run(_use(client))
    finally:
        first.run_until_complete(session.close())
        first.close()


# -- 14: any 2xx is success ------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 203])
@pytest.mark.parametrize("op", OPS, ids=str)
async def test_any_2xx_is_success(hostile: HostileServer, op: Op, status: int) -> None:
    hostile.answer(Canned(status, op.body if op.body is not None else b"{}"))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4)) as client:
        result = await op.call(client)
    assert (result is None) is (op.body is None)
    assert len(hostile.seen) == 1


@pytest.mark.parametrize("op", DATA_OPS, ids=str)
async def test_an_empty_2xx_to_an_operation_returning_data_is_a_typed_error(
    hostile: HostileServer, op: Op
) -> None:
    hostile.answer(Canned(204, b""))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await op.call(client)
    assert caught.value.outcome_unknown is op.creates_process
    assert len(hostile.seen) == 1


# -- 15: Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        *[("1.5", 1.5), ("0.25", 0.25), ("2", 2.0)],
        *[(ignored, 0.01) for ignored in ("-1", "nan", "inf", "1e400", "soon", "")],
    ],
)
async def test_retry_after_decimal_is_honoured_and_nonsense_ignored(
    hostile: HostileServer, header: str, wait: float
) -> None:
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    policy = RetryPolicy(attempts=2, initial_delay=0.01, jitter=False)
    hostile.answer_next(Canned.json({"message": "busy"}, 503, **{"Retry-After": header}))
    hostile.answer(Canned.json(process_json()))
    async with hostile_client(hostile, retry=policy, sleep=record) as client:
        await client.processes.get_process_info("p-1")
    # A 503's Retry-After is waited out by the send budget (it pauses every call,
    # issue 12), counted from the budget's own reading of the clock: ~1 us early.
    assert waits == [pytest.approx(wait, abs=1e-3)]


# -- 16: redirects ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("op", OPS, ids=str)
async def test_a_redirect_is_never_followed_and_a_create_may_have_acted(
    hostile: HostileServer, op: Op, status: int
) -> None:
    hostile.answer(Canned(status, b"", {"Location": f"{hostile.url}/elsewhere"}))
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(ApiError) as caught:
            await op.call(client)
    assert caught.value.status == status
    assert caught.value.outcome_unknown is op.creates_process
    assert [r.raw_path for r in hostile.seen if "elsewhere" in r.raw_path] == []
    assert len(hostile.seen) == 1


# -- transport failures stay typed -------------------------------------------------------


@pytest.mark.parametrize(
    "canned",
    [
        Canned(200, b"{}", {"X-Huge": "a" * 20_000}),
        Canned(200, b'{"a": 1}', cut=3),
        Canned(200, b"", drop=True),
        Canned(200, b"\x1f\x8b\x08 not gzip", {"Content-Encoding": "gzip"}),
    ],
    ids=["huge-header", "cut", "drop", "corrupt-gzip"],
)
async def test_a_broken_answer_to_a_create_is_typed_and_outcome_unknown(
    hostile: HostileServer, canned: Canned
) -> None:
    hostile.answer(canned)
    async with hostile_client(hostile, retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.create_process("Seattle")
    assert caught.value.outcome_unknown is True
    assert len(hostile.seen) == 1


# -- the proxy is decided once (trust_env) ---------------------------------------------
# With trust_env aiohttp would re-read HTTP_PROXY/NO_PROXY on every request, after
# the construction-time check. "0.0.0.0" stands in for a proxy elsewhere: the check
# does not count it as loopback, yet a connection to it stays on this machine.


@pytest.mark.parametrize("change", ["proxy-set", "proxy-elsewhere-set", "bypass-dropped"])
async def test_the_environment_is_not_read_again_after_construction(
    hostile: HostileServer, no_proxy_env: pytest.MonkeyPatch, change: str
) -> None:
    hostile.answer(Canned.json(process_json()))
    async with hostile_server(Canned.json(process_json())) as proxy:
        elsewhere = f"http://0.0.0.0:{proxy.url.rsplit(':', 1)[1]}"
        if change == "bypass-dropped":
            no_proxy_env.setenv("HTTP_PROXY", elsewhere)
            no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        async with hostile_client(hostile, trust_env=True) as client:
            if change == "bypass-dropped":
                no_proxy_env.delenv("NO_PROXY")
            else:
                no_proxy_env.setenv("HTTP_PROXY", proxy.url if change == "proxy-set" else elsewhere)
            await client.processes.get_process_info("p-1")
            await client.processes.create_process("Seattle")
        assert proxy.seen == []
    assert len(hostile.seen) == 2


async def test_the_proxy_chosen_at_construction_stays_the_one_used(
    hostile: HostileServer, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with (
        hostile_server(Canned.json(process_json())) as chosen,
        hostile_server(Canned.json(process_json())) as later,
    ):
        no_proxy_env.setenv("HTTP_PROXY", chosen.url)
        async with hostile_client(hostile, trust_env=True) as client:
            no_proxy_env.setenv("HTTP_PROXY", later.url)
            await client.processes.get_process_info("p-1")
            no_proxy_env.delenv("HTTP_PROXY")
            await client.processes.get_process_info("p-1")
        assert len(chosen.seen) == 2 and later.seen == []
        assert all(s.raw_path.startswith(hostile.url) for s in chosen.seen)
    assert hostile.seen == []


async def test_a_callers_trust_env_session_is_checked_again_before_each_call(
    hostile: HostileServer, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # aiohttp reads the environment per request for such a session: the client
    # re-checks it before each call and refuses, sending nothing.
    hostile.answer(Canned.json(process_json()))
    async with (
        hostile_server(Canned.json(process_json())) as proxy,
        aiohttp.ClientSession(trust_env=True) as session,
    ):
        port = proxy.url.rsplit(":", 1)[1]
        client = hostile_client(hostile, session=session)
        await client.processes.get_process_info("p-1")
        no_proxy_env.setenv("HTTP_PROXY", f"http://0.0.0.0:{port}")
        for call in (
            client.processes.create_process("Seattle"),
            client.rooms.get_connection_info("r1"),
        ):
            with pytest.raises(HathoraConnectionError, match="plain http through the proxy") as e:
                await call
            assert e.value.outcome_unknown is False
            assert TOKEN not in str(e.value)
        assert proxy.seen == []
        # A proxy on this machine is fine, as at construction.
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        await client.processes.get_process_info("p-1")
        assert len(proxy.seen) == 1
    assert len(hostile.seen) == 1


# -- a loop closed under the client --------------------------------------------------------
# A loop closed without shutdown_asyncgens() (run_until_complete, then close) never
# ran the client's closer: its sockets are closed directly, and the client goes on.


def _wait_until_closed_by_the_server(fake: FakeHathora) -> None:
    deadline = time.monotonic() + 5
    while fake.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)


async def _create_several(client: HathoraClient) -> None:
    # At once: several pooled connections.
    await asyncio.gather(*(client.processes.create_process("Seattle") for _ in range(5)))


@pytest.mark.parametrize("then", ["aclose", "call-then-aclose", "sibling-aclose"])
def test_a_client_whose_loop_was_closed_without_shutdown_recovers_and_leaks_nothing(
    fake_in_thread: FakeHathora, then: str
) -> None:
    fake = fake_in_thread
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
        first = asyncio.new_event_loop()
        first.run_until_complete(_create_several(client))
        first.close()  # no shutdown_asyncgens: the client's session is left open
        assert fake.open_connections >= 1
        if then == "call-then-aclose":
            asyncio.run(_use(client))  # a fresh session in the new loop
        closer = client.with_options(timeout=5) if then == "sibling-aclose" else client
        asyncio.run(closer.aclose())
        assert client.closed
        # Closed by the client, not left to the garbage collector.
        _wait_until_closed_by_the_server(fake)
        assert fake.open_connections == 0
        del client, closer, first
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_closed_loops_client_can_be_closed_from_a_plain_new_loop(
    fake_in_thread: FakeHathora,
) -> None:
    fake = fake_in_thread
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
    first = asyncio.new_event_loop()
    first.run_until_complete(_use(client))
    first.close()
    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(_use(client))
        second.run_until_complete(client.aclose())
        second.run_until_complete(client.aclose())  # twice is fine
    finally:
        second.close()
    with pytest.raises(ClientClosedError):
        asyncio.run(_use(client))
    _wait_until_closed_by_the_server(fake)
    assert fake.open_connections == 0


def test_aclose_from_another_loop_while_the_first_lives_leaves_the_client_usable_there(
    fake_in_thread: FakeHathora,
) -> None:
    fake = fake_in_thread
    first = asyncio.new_event_loop()
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
    try:
        first.run_until_complete(_use(client))
        with pytest.raises(ClientLoopError, match="close it there"):
            asyncio.run(client.aclose())
        assert not client.closed
        first.run_until_complete(_use(client))  # still works in its own loop
    finally:
        first.run_until_complete(client.aclose())
        first.run_until_complete(first.shutdown_asyncgens())
        first.close()
    assert client.closed


# -- aclose() flags "outcome unknown" only for creates that had a connection ------------


@pytest.mark.parametrize("max_connections", [3, 100])
async def test_aclose_does_not_flag_creates_still_connecting(max_connections: int) -> None:
    # A connect that hangs (a full accept queue): nothing can have been sent.
    with black_hole() as listener:
        port = listener.getsockname()[1]
        client = HathoraClient(
            TOKEN, APP_ID, base_url=f"http://127.0.0.1:{port}", max_connections=max_connections
        )
        calls = [
            asyncio.ensure_future(client.processes.create_process("Seattle")) for _ in range(6)
        ]
        await asyncio.sleep(0.2)
        assert not any(call.done() for call in calls)
        await client.aclose()
        errors = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(e, ClientClosedError) for e in errors)
    assert [e.outcome_unknown for e in errors if isinstance(e, HathoraError)] == [False] * 6


async def test_aclose_on_a_callers_session_counts_a_connecting_create_as_possibly_sent() -> None:
    # A caller's session cannot say when a connection is ready: the conservative rule.
    with black_hole() as listener:
        port = listener.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            client = HathoraClient(
                TOKEN, APP_ID, base_url=f"http://127.0.0.1:{port}", session=session
            )
            call = asyncio.ensure_future(client.processes.create_process("Seattle"))
            await asyncio.sleep(0.2)
            await client.aclose()
            with pytest.raises(ClientClosedError) as caught:
                await call
    assert caught.value.outcome_unknown is True


@pytest.mark.parametrize("max_connections", [10, 100])
@pytest.mark.parametrize("close_after", [0.0, 0.001, 0.02, 0.1])
async def test_aclose_during_many_creates_flags_every_create_the_server_got(
    max_connections: int, close_after: float
) -> None:
    async with FakeHathora(latency=0.2) as fake:
        client = HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, max_connections=max_connections
        )
        calls = [
            asyncio.ensure_future(client.processes.create_process("Seattle")) for _ in range(300)
        ]
        await asyncio.sleep(close_after)
        await client.aclose()
        results = await asyncio.gather(*calls, return_exceptions=True)
        unknown = sum(isinstance(r, HathoraError) and r.outcome_unknown for r in results)
        returned = sum(not isinstance(r, BaseException) for r in results)
        assert all(isinstance(r, ClientClosedError) for r in results if isinstance(r, Exception))
        # Every create the server got is returned or flagged; none that never had a
        # connection is flagged (at most one per connection).
        received = fake.request_counts["create_process"]
        assert received <= returned + unknown
        assert unknown <= max_connections
        if close_after == 0.0:
            # Closed before any connect could complete (one loop step): none flagged.
            assert unknown == received == 0
        # (The fake makes a process for each create it got, the client gone or not.)
        for _ in range(1000):
            if fake.processes_created >= received:
                break
            await asyncio.sleep(0.01)
        assert fake.processes_created == received


async def test_a_create_whose_total_timer_fires_while_connecting_is_known_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whichever timer fires (a sluggish loop can let the total one win): with no
    # connection, nothing was sent. Here only the total timer exists.
    def total_only(self: http.CallOptions, remaining: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=remaining, ceil_threshold=float("inf"))

    monkeypatch.setattr(http.CallOptions, "attempt_timeout", total_only)
    with black_hole() as listener:
        port = listener.getsockname()[1]
        async with HathoraClient(
            TOKEN, APP_ID, base_url=f"http://127.0.0.1:{port}", timeout=0.3
        ) as client:
            with pytest.raises(HathoraTimeoutError) as caught:
                await client.processes.create_process("Seattle")
    assert caught.value.outcome_unknown is False
    assert "outcome unknown" not in str(caught.value)
