"""Retries, deadlines, Retry-After, logging and transport security, over real loopback HTTP.

Retry waits go through an injected sleep that records each requested delay and
returns at once, so these tests cost milliseconds; only the deadline tests,
which are about real time, spend it (well under a second each).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hostile import Canned, black_hole, hostile_client, hostile_server, process_json

from hathora_async import (
    BadRequestError,
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    NotFoundError,
    ProcessV2,
    RateLimitedError,
    RequestTimeoutError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Timeouts,
    UnauthorizedError,
)
from hathora_async import _constants as C
from hathora_async.testing import FakeHathora, Fault, ManualClock

TOKEN = "tok-SECRET-reliability-7d1f"


class RecordingSleep:
    """An instant sleep that remembers every delay it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@asynccontextmanager
async def client_for(
    fake: FakeHathora, **kwargs: Any
) -> AsyncIterator[tuple[HathoraClient, RecordingSleep]]:
    sleep = kwargs.pop("sleep", None) or RecordingSleep()
    kwargs.setdefault("retry", RetryPolicy(initial_delay=0.01, max_delay=0.05))
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, sleep=sleep, **kwargs
    ) as client:
        yield client, sleep


async def _drained(fake: FakeHathora) -> int:
    """The fake's open connections once they had a moment to close."""
    for _ in range(200):
        if fake.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    return fake.open_connections


# -- the fault table ---------------------------------------------------------

ROUTES = {
    "create": "create_process",
    "list": "get_latest_processes",
    "info": "get_process_info",
    "stop": "stop_process",
}


async def _call(client: HathoraClient, op: str, process_id: str) -> object:
    api = client.processes
    if op == "create":
        return await api.create_process("Seattle")
    if op == "list":
        return await api.get_latest_processes()
    if op == "info":
        return await api.get_process_info(process_id)
    return await api.stop_process(process_id)


OK = None  # expected error class of a call that succeeds


def case(
    op: str,
    faults: list[tuple[Fault, int]],
    error: type[HathoraError] | None,
    requests: int,
    *,
    created: int = 0,
    unknown: bool = False,
    why: str,
) -> Any:
    return pytest.param(op, faults, error, requests, created, unknown, id=why)


def F(**kwargs: Any) -> Fault:
    return Fault(**kwargs)


FAULT_TABLE = [
    # Reads: transient statuses are retried until the call succeeds.
    case("info", [(F(status=408), 1)], OK, 2, why="read-408-then-ok"),
    case("list", [(F(status=429), 1)], OK, 2, why="read-429-then-ok"),
    case("info", [(F(status=500), 2)], OK, 3, why="read-500x2-then-ok"),
    case("info", [(F(status=502), 1)], OK, 2, why="read-502-then-ok"),
    case("list", [(F(status=503), 3)], OK, 4, why="read-503x3-then-ok-on-last-attempt"),
    case("info", [(F(status=504), 1)], OK, 2, why="read-504-then-ok"),
    # Reads: client errors are final.
    case("info", [(F(status=400), 1)], BadRequestError, 1, why="read-400-not-retried"),
    case("info", [(F(status=401), 1)], UnauthorizedError, 1, why="read-401-not-retried"),
    case("list", [(F(status=404), 1)], NotFoundError, 1, why="read-404-not-retried"),
    # Reads: broken transports are retried. (aiohttp itself may resend an idempotent
    # GET once on a dropped connection; the server's count is the same either way.)
    case("info", [(F(drop="before"), 1)], OK, 2, why="read-drop-before-then-ok"),
    case("info", [(F(drop="after"), 1)], OK, 2, why="read-drop-after-then-ok"),
    case("list", [(F(drop="after"), 2)], OK, 3, why="read-drop-after-x2-then-ok"),
    case("info", [(F(body="truncated"), 1)], OK, 2, why="read-truncated-body-then-ok"),
    # An answer that is complete but unreadable is not a transient failure.
    case("info", [(F(body="malformed"), 1)], ResponseDecodeError, 1, why="read-malformed-final"),
    # Attempts exhausted (4 by default): the last error is the one raised.
    case(
        "info",
        [(F(status=500), 1), (F(status=502), 1), (F(status=503), 1), (F(status=504), 1)],
        ServerError,
        4,
        why="read-attempts-exhausted-last-error",
    ),
    # Create: a 429 proves the server did not act, so it is retried; one process.
    case("create", [(F(status=429), 2)], OK, 3, created=1, why="create-429x2-then-ok"),
    case(
        "create",
        [(F(status=429, retry_after="0"), 1)],
        OK,
        2,
        created=1,
        why="create-429-retry-after-0-then-ok",
    ),
    # Create: anything after the request may have reached the server is final and
    # says the outcome is unknown. Exactly one request, whatever the server did.
    case("create", [(F(status=500), 1)], ServerError, 1, unknown=True, why="create-500"),
    case("create", [(F(status=503), 1)], ServerError, 1, unknown=True, why="create-503"),
    case("create", [(F(status=408), 1)], RequestTimeoutError, 1, unknown=True, why="create-408"),
    case(
        "create",
        [(F(drop="after"), 1)],
        HathoraConnectionError,
        1,
        created=1,
        unknown=True,
        why="create-reset-after-send-acted",
    ),
    case(
        "create",
        [(F(drop="before"), 1)],
        HathoraConnectionError,
        1,
        unknown=True,
        why="create-reset-before-acting-still-unknown",
    ),
    case(
        "create",
        [(F(body="truncated"), 1)],
        HathoraConnectionError,
        1,
        created=1,
        unknown=True,
        why="create-truncated-201",
    ),
    case(
        "create",
        [(F(body="malformed"), 1)],
        ResponseDecodeError,
        1,
        created=1,
        unknown=True,
        why="create-malformed-201",
    ),
    # Create: a client error means the server refused; nothing is unknown.
    case("create", [(F(status=400), 1)], BadRequestError, 1, why="create-400-known-refusal"),
    # Stop: stopping twice is harmless, so it is retried like a read.
    case("stop", [(F(status=500), 1)], OK, 2, why="stop-500-then-ok"),
    case("stop", [(F(status=503), 2)], OK, 3, why="stop-503x2-then-ok"),
    case("stop", [(F(drop="after"), 1)], OK, 2, why="stop-reset-after-then-ok"),
    case("stop", [(F(status=404), 1)], NotFoundError, 1, why="stop-404-not-retried"),
]


@pytest.mark.parametrize(("op", "faults", "error", "requests", "created", "unknown"), FAULT_TABLE)
async def test_fault_table(
    fake: FakeHathora,
    op: str,
    faults: list[tuple[Fault, int]],
    error: type[HathoraError] | None,
    requests: int,
    created: int,
    unknown: bool,
) -> None:
    async with client_for(fake) as (client, _):
        target = await client.processes.create_process("London")
        fake.request_counts.clear()
        before = fake.processes_created
        route = ROUTES[op]
        for fault, times in faults:
            fake.faults.add(route, fault, times=times)

        if error is None:
            result = await _call(client, op, target.process_id)
            if op == "create":
                assert isinstance(result, ProcessV2)
                assert result.process_id in {p["processId"] for p in fake.processes()}
        else:
            with pytest.raises(HathoraError) as caught:
                await _call(client, op, target.process_id)
            assert type(caught.value) is error
            assert caught.value.outcome_unknown is unknown
            assert ("outcome unknown" in str(caught.value)) is unknown
            if faults[-1][0].status is not None:
                assert getattr(caught.value, "status", None) == faults[-1][0].status

        assert fake.request_counts[route] == requests
        assert dict(fake.request_counts) == {route: requests}
        assert fake.processes_created - before == created
        if error is None and op != "create":
            # Every scripted fault was consumed: the retries really went to the server.
            assert fake.faults.next(route) is None


async def test_a_create_is_never_sent_twice_after_it_may_have_acted(fake: FakeHathora) -> None:
    # Even with many attempts allowed and a long deadline.
    async with client_for(fake, retry=RetryPolicy(attempts=10)) as (client, sleep):
        fake.faults.add("create_process", Fault(drop="after"), times=5)
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.create_process("Tokyo")
    assert caught.value.outcome_unknown is True
    assert fake.request_counts["create_process"] == 1
    assert fake.processes_created == 1
    assert sleep.delays == []
    # The caller can find the process the failed call made, as documented.
    async with client_for(fake) as (client, _):
        latest = await client.processes.get_latest_processes(region=["Tokyo"])
    assert [p.process_id for p in latest] == [fake.processes()[0]["processId"]]


async def test_retry_policy_none_turns_retries_off(fake: FakeHathora) -> None:
    async with client_for(fake, retry=RetryPolicy.none()) as (client, sleep):
        fake.faults.add("get_latest_processes", Fault(status=503), times=1)
        with pytest.raises(ServerError):
            await client.processes.get_latest_processes()
        assert fake.request_counts["get_latest_processes"] == 1
        assert sleep.delays == []


async def test_backoff_delays_follow_the_policy(fake: FakeHathora) -> None:
    policy = RetryPolicy(attempts=5, initial_delay=0.5, multiplier=3.0, max_delay=2.0, jitter=False)
    async with client_for(fake, retry=policy) as (client, sleep):
        fake.faults.add("get_latest_processes", Fault(status=502), times=4)
        await client.processes.get_latest_processes()
    assert sleep.delays == [0.5, 1.5, 2.0, 2.0]


# -- Retry-After -------------------------------------------------------------


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(
        datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), usegmt=True
    )


@pytest.mark.parametrize(
    ("route", "status", "header", "low", "high"),
    [
        ("get_process_info", 429, "3", 3.0, 3.0),
        ("get_process_info", 503, "2", 2.0, 2.0),
        ("create_process", 429, "4", 4.0, 4.0),
        # An HTTP date has whole seconds: "6 s from now" is 5 to 6 s away.
        ("get_process_info", 429, "date+6", 4.5, 6.0),
        ("create_process", 429, "date+6", 4.5, 6.0),
    ],
)
async def test_retry_after_is_honoured(
    fake: FakeHathora, route: str, status: int, header: str, low: float, high: float
) -> None:
    value = _http_date(6) if header == "date+6" else header
    clock = ManualClock(1000.0)
    async with client_for(fake, clock=clock) as (client, sleep):
        target = await client.processes.create_process("Chicago")
        fake.request_counts.clear()
        fake.faults.add(route, Fault(status=status, retry_after=value))
        if route == "create_process":
            await client.processes.create_process("Chicago")
        else:
            await client.processes.get_process_info(target.process_id)
    assert len(sleep.delays) == 1
    assert low <= sleep.delays[0] <= high
    assert fake.request_counts[route] == 2
    # The target, plus one process for a create call however often it was sent.
    assert fake.processes_created == (2 if route == "create_process" else 1)


@pytest.mark.parametrize("header", ["30", "date+30"])
async def test_retry_after_above_the_cap_raises_at_once(fake: FakeHathora, header: str) -> None:
    value = _http_date(31) if header == "date+30" else header
    policy = RetryPolicy(max_retry_after=10.0)
    async with client_for(fake, retry=policy, clock=ManualClock()) as (client, sleep):
        fake.faults.add("create_process", Fault(status=429, retry_after=value), times=3)
        with pytest.raises(RateLimitedError) as caught:
            await client.processes.create_process("Dallas")
    assert caught.value.retry_after is not None
    assert 28.5 <= caught.value.retry_after <= 31.0
    assert caught.value.outcome_unknown is False
    assert sleep.delays == []
    assert fake.request_counts["create_process"] == 1
    assert fake.processes_created == 0


async def test_retry_after_past_the_remaining_deadline_raises_at_once(fake: FakeHathora) -> None:
    async with client_for(fake, timeout=5.0, clock=ManualClock()) as (client, sleep):
        fake.faults.add("get_latest_processes", Fault(status=429, retry_after="8"))
        with pytest.raises(RateLimitedError) as caught:
            await client.processes.get_latest_processes()
    assert caught.value.retry_after == 8.0
    assert sleep.delays == []
    assert fake.request_counts["get_latest_processes"] == 1


async def test_waits_are_counted_against_the_deadline(fake: FakeHathora) -> None:
    # The injected sleep moves the injected clock: 4 s, 4 s, then only 2 s remain
    # of the 10 s deadline, so the third Retry-After of 4 s ends the call at once.
    clock = ManualClock()
    policy = RetryPolicy(attempts=10)
    async with client_for(fake, timeout=10.0, retry=policy, clock=clock, sleep=clock.sleep) as (
        client,
        _,
    ):
        fake.faults.add("get_latest_processes", Fault(status=503, retry_after="4"), times=5)
        with pytest.raises(ServerError):
            await client.processes.get_latest_processes()
    assert clock() == 8.0
    assert fake.request_counts["get_latest_processes"] == 3


# -- connect failures: the one transport failure a create may retry ------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_create_is_retried_when_the_connection_was_refused() -> None:
    # Nothing listens on the port at first; the server comes up during the backoff.
    port = _free_port()
    fake = FakeHathora(port=port, seed=3)
    delays: list[float] = []

    async def start_server_then_return(delay: float) -> None:
        delays.append(delay)
        await fake.start()

    try:
        async with HathoraClient(
            fake.token,
            fake.app_id,
            base_url=f"http://127.0.0.1:{port}",
            sleep=start_server_then_return,
        ) as client:
            process = await client.processes.create_process("Mumbai")
        assert len(delays) == 1
        assert fake.processes_created == 1
        assert fake.request_counts["create_process"] == 1
        assert fake.processes()[0]["processId"] == process.process_id
    finally:
        await fake.close()


@asynccontextmanager
async def serve_on(fake: FakeHathora, listener: socket.socket) -> AsyncIterator[None]:
    """Serve the fake's app on an existing listening socket."""
    runner = web.AppRunner(fake.app, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    try:
        await web.SockSite(runner, listener).start()
        yield
    finally:
        await runner.cleanup()


async def test_create_is_retried_after_a_connect_timeout() -> None:
    # The first connect hangs (full accept queue) until the connect timeout; the
    # server starts accepting during the backoff, and the create goes through once.
    fake = FakeHathora(seed=4)
    with black_hole() as listener:
        port = listener.getsockname()[1]
        async with AsyncExitStack() as stack:

            async def serve_then_return(delay: float) -> None:
                await stack.enter_async_context(serve_on(fake, listener))

            async with HathoraClient(
                fake.token,
                fake.app_id,
                base_url=f"http://127.0.0.1:{port}",
                timeout=Timeouts(connect=0.2, read=5, total=5),
                sleep=serve_then_return,
            ) as client:
                started = time.monotonic()
                process = await client.processes.create_process("Sydney")
                elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.0
    assert fake.processes_created == 1
    assert fake.request_counts["create_process"] == 1
    assert fake.processes()[0]["processId"] == process.process_id


# -- deadlines against a slow server --------------------------------------------


async def test_a_call_ends_at_its_deadline_against_a_slow_server(fake: FakeHathora) -> None:
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, timeout=0.5) as client:
        fake.faults.add("get_latest_processes", Fault(latency=5.0), times=10)
        started = time.monotonic()
        with pytest.raises(HathoraTimeoutError):
            await client.processes.get_latest_processes()
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2.0
    assert fake.request_counts["get_latest_processes"] == 1
    assert await _drained(fake) == 0


async def test_read_timeout_applies_per_attempt(fake: FakeHathora) -> None:
    timeouts = Timeouts(connect=1.0, read=0.2, total=5.0)
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.01)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, timeout=timeouts, retry=policy
    ) as client:
        fake.faults.add("get_latest_processes", Fault(latency=2.0), times=2)
        started = time.monotonic()
        await client.processes.get_latest_processes()
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.5
    assert fake.request_counts["get_latest_processes"] == 3


async def test_a_create_that_timed_out_reading_is_not_resent(fake: FakeHathora) -> None:
    timeouts = Timeouts(connect=1.0, read=0.2, total=5.0)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, timeout=timeouts
    ) as client:
        fake.faults.add("create_process", Fault(latency=2.0), times=3)
        started = time.monotonic()
        with pytest.raises(HathoraTimeoutError) as caught:
            await client.processes.create_process("London")
        elapsed = time.monotonic() - started
    assert caught.value.outcome_unknown is True
    assert elapsed < 1.0
    assert fake.request_counts["create_process"] == 1


async def test_the_deadline_covers_every_retry(fake: FakeHathora) -> None:
    timeouts = Timeouts(connect=1.0, read=0.3, total=1.0)
    policy = RetryPolicy(attempts=100, initial_delay=0.02, multiplier=1.0, jitter=False)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, timeout=timeouts, retry=policy
    ) as client:
        fake.faults.add("get_latest_processes", Fault(latency=5.0), times=100)
        started = time.monotonic()
        with pytest.raises(HathoraTimeoutError):
            await client.processes.get_latest_processes()
        elapsed = time.monotonic() - started
    # Retried while time remained, and never past the deadline (plus scheduling slack).
    assert fake.request_counts["get_latest_processes"] >= 3
    assert 0.9 <= elapsed < 1.3
    assert await _drained(fake) == 0


# -- logging --------------------------------------------------------------------


async def test_each_retry_is_logged_at_debug_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hathora_async")
    policy = RetryPolicy(attempts=4, initial_delay=0.25, jitter=False)
    async with (
        FakeHathora(token=TOKEN, seed=2) as fake,
        client_for(fake, retry=policy) as (client, sleep),
    ):
        fake.faults.add("get_latest_processes", Fault(status=503), times=1)
        fake.faults.add("get_latest_processes", Fault(drop="after"), times=2)
        await client.processes.get_latest_processes()
        fake.faults.add("create_process", Fault(status=500))
        with pytest.raises(ServerError) as caught:
            await client.processes.create_process("Seattle")
    retries = [r for r in caplog.records if r.name == "hathora_async" and "retrying" in r.message]
    # 503, then the dropped connection (aiohttp may resend the GET once by itself,
    # so one or two more retries); the failed create is not a retry.
    assert 2 <= len(retries) <= 3
    assert all(r.levelno == logging.DEBUG for r in retries)
    path = f"/processes/v2/{fake.app_id}/list/latest"
    first = retries[0].getMessage()
    assert "GET" in first and path in first
    assert "HTTP 503" in first
    assert "attempt 1 of 4" in first
    assert "0.250s" in first
    second = retries[1].getMessage()
    assert "HathoraConnectionError" in second and "attempt 2 of 4" in second
    assert sleep.delays[: len(retries)] == [0.25, 0.5, 1.0][: len(retries)]
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)


# -- security -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.hathora.dev", "http://10.0.0.5:8080", "http://127.example.com"]
)
async def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        HathoraClient(TOKEN, "app", base_url=url)
    client = HathoraClient(TOKEN, "app", base_url=url, allow_insecure_http=True)
    await client.aclose()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    )
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return SimpleNamespace(cert=cert, key=key)


async def test_tls_verification_is_on_by_default(self_signed: SimpleNamespace) -> None:
    # A server whose certificate no CA vouches for must be refused, before any request.
    fake = FakeHathora(seed=5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed.cert, self_signed.key)
    runner = web.AppRunner(fake.app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        sleep = RecordingSleep()
        async with HathoraClient(
            fake.token, fake.app_id, base_url=f"https://127.0.0.1:{port}", sleep=sleep
        ) as client:
            with pytest.raises(HathoraConnectionError) as caught:
                await client.processes.create_process("Seattle")
            # A certificate failure will not heal by retrying.
            assert sleep.delays == []
        assert isinstance(caught.value.__cause__, aiohttp.ClientSSLError)
        assert fake.request_counts["create_process"] == 0

        # The same server is reachable once the client is told to trust it.
        trusted = ssl.create_default_context(cafile=str(self_signed.cert))
        connector = aiohttp.TCPConnector(ssl=trusted)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            HathoraClient(
                fake.token, fake.app_id, base_url=f"https://127.0.0.1:{port}", session=session
            ) as client,
        ):
            await client.processes.create_process("Seattle")
        assert fake.processes_created == 1
    finally:
        await runner.cleanup()


async def test_trace_configs_are_passed_through(fake: FakeHathora) -> None:
    seen: list[tuple[str, str]] = []

    async def on_request_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        seen.append((params.method, params.url.path))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with client_for(fake, trace_configs=[trace]) as (client, _):
        fake.faults.add("get_latest_processes", Fault(status=503))
        await client.processes.get_latest_processes()
    path = f"/processes/v2/{fake.app_id}/list/latest"
    # One trace event per attempt, the retry included.
    assert seen == [("GET", path), ("GET", path)]


# -- with_options ------------------------------------------------------------------


async def test_with_options_shares_the_session_and_applies_its_own_policy(
    fake: FakeHathora,
) -> None:
    async with client_for(fake, max_connections=1) as (client, _):
        strict = client.with_options(retry=RetryPolicy.none())
        hasty = client.with_options(timeout=0.3)
        assert strict.retry == RetryPolicy.none() and client.retry != strict.retry
        assert hasty.timeouts.total == 0.3 and client.timeouts.total == 30.0

        fake.faults.add("get_latest_processes", Fault(status=503))
        with pytest.raises(ServerError):
            await strict.processes.get_latest_processes()
        fake.faults.add("get_latest_processes", Fault(status=503))
        await client.processes.get_latest_processes()
        assert fake.request_counts["get_latest_processes"] == 3

        fake.faults.add("get_latest_processes", Fault(latency=2.0))
        started = time.monotonic()
        with pytest.raises(HathoraTimeoutError):
            await hasty.processes.get_latest_processes()
        assert time.monotonic() - started < 1.5
        # The parent's 30 s deadline is untouched by the sibling's.
        fake.faults.add("get_latest_processes", Fault(latency=0.4))
        await client.processes.get_latest_processes()

        # One pool of one connection serves all three at once: they share the session.
        for _ in range(100):
            if fake.open_connections <= 1:
                break
            await asyncio.sleep(0.01)
        fake.faults.add("get_latest_processes", Fault(latency=0.05), times=3)
        await asyncio.gather(
            client.processes.get_latest_processes(),
            strict.processes.get_latest_processes(),
            hasty.processes.get_latest_processes(),
        )
        assert fake.open_connections == 1
    assert strict.closed and hasty.closed


async def test_create_whose_connect_hangs_past_a_short_deadline_is_known_not_sent() -> None:
    # With a deadline shorter than the connect timeout, the connect must still fail
    # as a connect timeout (nothing sent), not as the whole-call timer, which
    # could not tell whether the create left: the outcome is known.
    with black_hole() as listener:
        port = listener.getsockname()[1]
        async with HathoraClient(
            "token", "app", base_url=f"http://127.0.0.1:{port}", timeout=1.0
        ) as client:
            started = time.monotonic()
            with pytest.raises(HathoraTimeoutError) as caught:
                await client.processes.create_process("Sydney")
            elapsed = time.monotonic() - started
    assert caught.value.outcome_unknown is False
    assert "outcome unknown" not in str(caught.value)
    assert elapsed < 1.5


@pytest.mark.parametrize("status", [200, 202])
async def test_create_answered_with_another_2xx_returns_the_process(status: int) -> None:
    # Any success-class answer with the process in it is a success: the id is known.
    async with hostile_server() as server:
        server.answer(Canned.json(process_json(), status))
        async with hostile_client(server, retry=RetryPolicy(attempts=5)) as client:
            process = await client.processes.create_process("Seattle")
        assert process.process_id == process_json()["processId"]
        assert len(server.seen) == 1


async def test_create_answered_204_is_outcome_unknown_and_not_resent() -> None:
    async with hostile_server() as server:
        server.answer(Canned(204))
        async with hostile_client(server, retry=RetryPolicy(attempts=5)) as client:
            with pytest.raises(ResponseDecodeError) as caught:
                await client.processes.create_process("Seattle")
        assert caught.value.status == 204
        assert caught.value.outcome_unknown is True
        assert len(server.seen) == 1


async def test_with_options_sleep_replaces_the_wait_between_retries(fake: FakeHathora) -> None:
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    policy = RetryPolicy(attempts=3, initial_delay=0.5, jitter=False)
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, retry=policy) as client:
        fake.faults.add("get_latest_processes", Fault(status=503), times=2)
        assert await client.with_options(sleep=record).processes.get_latest_processes() == []
    assert waits == [0.5, 1.0]
    assert fake.request_counts["get_latest_processes"] == 3


# -- keep-alive: never send a create on a connection the server is closing -------------
# A request sent on a pooled connection as the server closes it is cut off after
# leaving: a create's outcome is then unknown. The hostile server cuts off requests
# arriving on a connection it would be closing.

# Node's default keepAliveTimeout (seconds), the shortest of common servers' idle timeouts.
NODE_IDLE_TIMEOUT = 5.0


async def test_the_keep_alive_is_shorter_than_common_servers_idle_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Scaled down tenfold: the server closes connections idle for 0.5 s, the client
    # keeps one idle at most a tenth of its real default; the pause exceeds both.
    scale = 0.1
    monkeypatch.setattr(C, "DEFAULT_KEEPALIVE_TIMEOUT", C.DEFAULT_KEEPALIVE_TIMEOUT * scale)
    async with hostile_server(
        Canned.json(process_json(), 201), idle_timeout=NODE_IDLE_TIMEOUT * scale
    ) as server:
        async with hostile_client(server) as client:
            await client.processes.create_process("Seattle")
            await asyncio.sleep(NODE_IDLE_TIMEOUT * scale + 0.1)
            await client.processes.create_process("Seattle")  # on a fresh connection
        assert server.cut_off == 0
        assert server.connections == 2


async def test_a_connection_idle_past_the_servers_timeout_cuts_a_create_off() -> None:
    # The hostile mode the test above relies on: a reused stale connection is cut off.
    async with hostile_server(Canned.json(process_json(), 201), idle_timeout=0.1) as server:
        async with hostile_client(server) as client:
            await client.processes.create_process("Seattle")
            await asyncio.sleep(0.2)
            with pytest.raises(HathoraConnectionError) as caught:
                await client.processes.create_process("Seattle")
        assert caught.value.outcome_unknown is True
        assert server.cut_off == 1


@pytest.mark.parametrize("status", [429, 503, 500])
async def test_a_creates_retry_after_an_error_answer_goes_out_on_a_fresh_connection(
    status: int,
) -> None:
    # The server closes a connection after an error answer, without saying so.
    async with hostile_server(close_after_error=True) as server:
        server.answer_next(
            Canned.json({"message": "later"}, status, **{"Retry-After": "0.05"}),
            Canned.json(process_json(), 201),
        )
        policy = RetryPolicy(attempts=2, initial_delay=0.05, max_delay=0.05)
        async with hostile_client(server, retry=policy) as client:
            if status == 429:
                await client.processes.create_process("Seattle")
                assert len(server.seen) == 2
            else:
                # A 5xx create is never resent (it may have acted): the next create
                # is a new call, which must not meet the doomed connection either.
                with pytest.raises(ServerError):
                    await client.processes.create_process("Seattle")
                await client.processes.create_process("Seattle")
        assert server.cut_off == 0
        assert server.connections == 2


@pytest.mark.parametrize("status", [400, 404, 409])
async def test_a_create_after_a_refused_create_goes_out_on_a_fresh_connection(
    status: int,
) -> None:
    async with hostile_server(close_after_error=True) as server:
        server.answer_next(Canned.json({"message": "no"}, status), Canned.json(process_json(), 201))
        async with hostile_client(server) as client:
            with pytest.raises(HathoraError):
                await client.processes.create_process("Seattle")
            process = await client.processes.create_process("Seattle")
        assert process.process_id == process_json()["processId"]
        assert server.cut_off == 0 and server.connections == 2


async def test_reads_keep_their_connection_after_an_error_answer() -> None:
    # Only creates pay for a fresh connection: a read is safe to resend anyway.
    async with hostile_server(Canned.json(process_json())) as server:
        server.answer_next(Canned.json({"message": "no"}, 404))
        async with hostile_client(server) as client:
            with pytest.raises(NotFoundError):
                await client.processes.get_process_info("p-1")
            await client.processes.get_process_info("p-1")
        assert server.connections == 1
