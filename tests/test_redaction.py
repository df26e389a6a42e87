"""The bearer token appears nowhere: repr, str, errors, tracebacks, logs. Headers sent."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Awaitable, Callable

import pytest
from hostile import APP_ID, TOKEN, Canned, HostileServer, hostile_client, process_json

from hathora_async import (
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    Region,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    UnauthorizedError,
    __version__,
)
from hathora_async.testing import FakeHathora, Fault

# Retries that cost microseconds, so the retry log lines appear quickly.
FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.001)


def renderings(error: BaseException) -> list[str]:
    """Every way an error commonly ends up in a log or a crash report."""
    return [
        repr(error),
        str(error),
        repr(error.args),
        repr(vars(error)),
        "".join(traceback.format_exception(error)),
        "".join(
            traceback.TracebackException(
                type(error), error, error.__traceback__, capture_locals=True
            ).format()
        ),
    ]


def assert_token_absent(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        # Also no fragment long enough to be useful.
        assert TOKEN[:12] not in text


def test_client_repr_and_str() -> None:
    client = HathoraClient(TOKEN, APP_ID, base_url="http://127.0.0.1:9")
    sibling = client.with_options(app_id="other", timeout=3.0)
    for shown in (repr(client), str(client), repr(sibling), repr(vars(client))):
        assert_token_absent(shown)
    assert repr(client) == (
        "HathoraClient(base_url='http://127.0.0.1:9', app_id='app-hostile', "
        "token=<redacted>, closed=False)"
    )
    assert "app_id='other'" in repr(sibling)
    assert repr(HathoraClient(None, APP_ID, base_url="http://127.0.0.1:9")).count("token=None") == 1


async def test_headers_sent(hostile: HostileServer) -> None:
    hostile.answer_next(
        Canned.json(process_json(), status=201),
        Canned.json([]),
        Canned.json(process_json()),
        Canned(204),
    )
    async with hostile_client(hostile) as client:
        await client.processes.create_process(Region.SEATTLE)
        await client.processes.get_latest_processes(status=["running"])
        await client.processes.get_process_info("p-1")
        await client.processes.stop_process("p-1")
    assert [s.method for s in hostile.seen] == ["POST", "GET", "GET", "POST"]
    for seen in hostile.seen:
        assert seen.header_values("Authorization") == [f"Bearer {TOKEN}"]
        assert seen.header_values("Accept") == ["application/json"]
        assert seen.header_values("User-Agent") == [f"hathora-async/{__version__}"]
        # The token travels in the header only.
        assert TOKEN not in seen.raw_path
        assert seen.body == b""


async def test_no_authorization_header_without_a_token(hostile: HostileServer) -> None:
    hostile.answer(Canned.json([]))
    async with HathoraClient(None, APP_ID, base_url=hostile.url) as client:
        await client.processes.get_latest_processes()
    [seen] = hostile.seen
    assert seen.header_values("Authorization") == []


async def test_401_error_does_not_show_the_token(fake: FakeHathora) -> None:
    # TOKEN is unknown to the fake: it answers 401.
    async with HathoraClient(TOKEN, fake.app_id, base_url=fake.url, retry=FAST_RETRY) as client:
        with pytest.raises(UnauthorizedError) as caught:
            await client.processes.get_process_info("p-1")
    assert_token_absent(*renderings(caught.value))


async def test_500_error_after_retries_does_not_show_the_token(hostile: HostileServer) -> None:
    hostile.answer(Canned.json({"message": "boom"}, status=500))
    async with hostile_client(hostile, retry=FAST_RETRY) as client:
        with pytest.raises(ServerError) as caught:
            await client.processes.get_latest_processes()
    assert len(hostile.seen) == 3
    assert_token_absent(*renderings(caught.value))


async def test_connection_error_does_not_show_the_token() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with HathoraClient(
        TOKEN, APP_ID, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.create_process(Region.SEATTLE)
    # The aiohttp cause is chained, and its frames (aiohttp's own locals) are rendered too.
    assert caught.value.__cause__ is not None
    rendered = renderings(caught.value)
    assert "ClientConnectorError" in rendered[-1]
    assert_token_absent(*rendered)


async def test_timeout_error_does_not_show_the_token(fake: FakeHathora) -> None:
    # (Never bind the token to a local here: capture_locals would show this frame.)
    fake.add_token(TOKEN)
    fake.faults.add("get_process_info", Fault(latency=0.3))
    async with HathoraClient(
        TOKEN, fake.app_id, base_url=fake.url, retry=RetryPolicy.none(), timeout=0.05
    ) as client:
        with pytest.raises(HathoraTimeoutError) as caught:
            await client.processes.get_process_info("p-1")
    assert_token_absent(*renderings(caught.value))


async def test_payload_error_does_not_show_the_token(fake: FakeHathora) -> None:
    fake.add_token(TOKEN)
    async with HathoraClient(
        TOKEN, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        process = await client.processes.create_process(Region.SEATTLE)
        fake.faults.add("get_process_info", Fault(body="truncated"))
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.get_process_info(process.process_id)
    assert_token_absent(*renderings(caught.value))


async def test_decode_error_does_not_show_the_token(hostile: HostileServer) -> None:
    hostile.answer(Canned(200, b'{"processId": 5}'))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.get_process_info("p-1")
    assert_token_absent(*renderings(caught.value))


@pytest.mark.parametrize(
    "build",
    [
        lambda: HathoraClient(TOKEN, APP_ID, base_url="http://example.com"),
        lambda: HathoraClient(TOKEN, APP_ID, max_connections=0),
        lambda: HathoraClient(TOKEN, ".."),
        lambda: HathoraClient(TOKEN, APP_ID, timeout="soon"),  # type: ignore[arg-type]
        lambda: HathoraClient(TOKEN + "\n", APP_ID),
    ],
)
def test_construction_errors_do_not_show_the_token(build: Callable[[], HathoraClient]) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        build()
    assert_token_absent(*renderings(caught.value))


def test_from_env_errors_do_not_show_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATHORA_TOKEN", TOKEN)
    monkeypatch.setenv("HATHORA_BASE_URL", "http://example.com")
    with pytest.raises(ValueError, match="plain http") as caught:
        HathoraClient.from_env()
    assert_token_absent(*renderings(caught.value))


async def _retrying_calls(client: HathoraClient) -> None:
    with pytest.raises(HathoraError):
        await client.processes.get_process_info("p-1")
    await client.processes.get_latest_processes()


@pytest.mark.parametrize("source", ["fake", "closed-port"])
async def test_debug_logs_do_not_show_the_token(
    caplog: pytest.LogCaptureFixture, fake: FakeHathora, source: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="hathora_async")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    fake.add_token(TOKEN)
    call: Callable[[HathoraClient], Awaitable[None]]
    if source == "fake":
        # 503 twice then 500: three attempts, each retry logged; then a 429 then success.
        fake.faults.add("get_process_info", Fault(status=503), times=2)
        fake.faults.add("get_process_info", Fault(status=500))
        fake.faults.add("get_latest_processes", Fault(status=429, retry_after="0"))
        base_url = fake.url
        call = _retrying_calls
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base_url = f"http://127.0.0.1:{s.getsockname()[1]}"

        async def call(client: HathoraClient) -> None:
            with pytest.raises(HathoraConnectionError):
                await client.processes.get_process_info("p-1")

    async with HathoraClient(TOKEN, fake.app_id, base_url=base_url, retry=FAST_RETRY) as client:
        await call(client)
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying ")]
    # The capture is not vacuous: every retry was logged at DEBUG.
    assert len(retries) == (3 if source == "fake" else 2)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert_token_absent(formatter.format(record), repr(record.args), repr(vars(record)))
    assert_token_absent(caplog.text)
