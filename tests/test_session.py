"""Session lifecycle and client configuration: open, share, close, refuse after close."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from hostile import APP_ID, TOKEN, Canned, HostileServer
from yarl import URL

from hathora_async import (
    ClientClosedError,
    HathoraClient,
    HathoraError,
    Region,
    RetryPolicy,
    Timeouts,
)
from hathora_async.testing import FakeHathora, Fault


@pytest.fixture
def resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """ResourceWarnings raised while the test runs and at a forced collection after it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found: list[warnings.WarningMessage] = []
        yield found
        gc.collect()
        found.extend(w for w in caught if issubclass(w.category, ResourceWarning))


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait up to a second for ``condition``: servers see a closed socket a turn later."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after 1s: {what}")


async def wait_for_no_connections(fake: FakeHathora) -> None:
    await eventually(lambda: fake.open_connections == 0, "the fake has no open connection")


async def test_closing_releases_every_socket_without_resource_warnings(
    fake: FakeHathora, resource_warnings: list[warnings.WarningMessage]
) -> None:
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
        await asyncio.gather(*(client.processes.get_latest_processes() for _ in range(5)))
        assert fake.open_connections >= 1
        assert not client.closed
    assert client.closed
    del client
    await wait_for_no_connections(fake)
    gc.collect()
    assert resource_warnings == []


async def test_the_resource_warning_check_can_fail(fake: FakeHathora) -> None:
    # Guard for the check above: a session that is never closed is reported.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leaked = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
        await leaked.__aenter__()
        del leaked
        gc.collect()
    assert any(
        issubclass(w.category, ResourceWarning) and "Unclosed client session" in str(w.message)
        for w in caught
    )


async def test_a_client_used_without_async_with_opens_lazily_and_closes(
    fake: FakeHathora, resource_warnings: list[warnings.WarningMessage]
) -> None:
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
    assert await client.processes.get_latest_processes() == []
    await client.aclose()
    await wait_for_no_connections(fake)
    del client
    gc.collect()
    assert resource_warnings == []


async def test_aclose_twice_is_fine(fake: FakeHathora) -> None:
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url)
    async with client:
        await client.processes.get_latest_processes()
    await client.aclose()
    await client.aclose()
    assert client.closed


async def test_a_never_opened_client_closes_cleanly() -> None:
    client = HathoraClient("t", "a", base_url="http://127.0.0.1:9")
    await client.aclose()
    assert client.closed


async def test_use_after_close_raises_before_any_io(fake: FakeHathora) -> None:
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
        await client.processes.get_latest_processes()
    sibling = client.with_options(timeout=5.0)
    before = sum(fake.request_counts.values())
    calls = [
        client.processes.create_process(Region.SEATTLE),
        client.processes.get_latest_processes_with_http_info(),
        client.processes.get_process_info("p"),
        sibling.processes.stop_process("p"),
    ]
    for call in calls:
        with pytest.raises(ClientClosedError, match="closed") as caught:
            await call
        assert isinstance(caught.value, HathoraError)
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert sum(fake.request_counts.values()) == before


async def test_close_during_a_call_ends_it_with_client_closed_error(fake: FakeHathora) -> None:
    fake.faults.add("get_latest_processes", Fault(latency=0.3))
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
        call = asyncio.ensure_future(client.processes.get_latest_processes())
        await eventually(lambda: fake.request_counts["get_latest_processes"] == 1, "call sent")
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await call


async def test_caller_owned_session_stays_open_and_usable(fake: FakeHathora) -> None:
    async with aiohttp.ClientSession() as session:
        async with HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, session=session
        ) as client:
            process = await client.processes.create_process(Region.LONDON)
        assert client.closed
        assert not session.closed
        # Still usable by its owner ...
        async with session.get(
            f"{fake.url}/processes/v2/{fake.app_id}/info/{process.process_id}",
            headers={"Authorization": f"Bearer {fake.token}"},
        ) as response:
            assert response.status == 200
            assert (await response.json())["processId"] == process.process_id
        # ... and by another client.
        async with HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, session=session
        ) as again:
            assert await again.processes.get_process_info(process.process_id) == process
        assert not session.closed
    assert session.closed


async def test_a_caller_owned_session_closed_by_its_owner_gives_a_typed_error(
    fake: FakeHathora,
) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, session=session) as client:
        with pytest.raises(ClientClosedError, match="session given to HathoraClient is closed"):
            await client.processes.create_process(Region.LONDON)
    assert fake.request_counts["create_process"] == 0


async def test_caller_owned_session_keeps_its_own_headers(hostile: HostileServer) -> None:
    hostile.answer(Canned.json([]))
    async with (
        aiohttp.ClientSession(headers={"X-Mine": "yes"}) as session,
        HathoraClient(TOKEN, APP_ID, base_url=hostile.url, session=session) as client,
    ):
        await client.processes.get_latest_processes()
    [seen] = hostile.seen
    assert seen.header_values("X-Mine") == ["yes"]
    assert seen.header_values("Authorization") == [f"Bearer {TOKEN}"]


def test_trace_configs_with_a_caller_session_are_refused() -> None:
    # Refused at construction, before the session is ever looked at.
    with pytest.raises(ValueError, match="trace_configs"):
        HathoraClient(
            "t",
            "a",
            base_url="http://127.0.0.1:9",
            session=object(),  # type: ignore[arg-type]
            trace_configs=[aiohttp.TraceConfig()],
        )


async def test_with_options_sibling_shares_the_session(fake: FakeHathora) -> None:
    other = fake.add_app("app-sibling")
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
        sibling = client.with_options(
            app_id=other, retry=RetryPolicy.none(), timeout=Timeouts(total=7.0)
        )
        assert (sibling.app_id, sibling.retry, sibling.timeouts.total) == (
            other,
            RetryPolicy.none(),
            7.0,
        )
        assert (client.app_id, client.retry, client.timeouts) == (
            fake.app_id,
            RetryPolicy(),
            Timeouts(),
        )
        await client.processes.get_latest_processes()
        await sibling.processes.get_latest_processes()
        await client.processes.get_latest_processes()
        # One pool: the three sequential calls reused one kept-alive connection.
        assert fake.open_connections == 1
        assert sibling.base_url == client.base_url
    assert sibling.closed
    with pytest.raises(ClientClosedError):
        await sibling.processes.get_latest_processes()


async def test_closing_a_sibling_closes_the_shared_session(fake: FakeHathora) -> None:
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
        sibling = client.with_options(timeout=3.0)
        await sibling.aclose()
        assert client.closed
        with pytest.raises(ClientClosedError):
            await client.processes.get_latest_processes()


# -- from_env -----------------------------------------------------------------------------


async def test_from_env(fake: FakeHathora, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATHORA_TOKEN", fake.token)
    monkeypatch.setenv("HATHORA_APP_ID", fake.app_id)
    monkeypatch.setenv("HATHORA_BASE_URL", fake.url)
    async with HathoraClient.from_env() as client:
        assert client.app_id == fake.app_id
        assert str(client.base_url) == fake.url
        process = await client.processes.create_process(Region.TOKYO)
    assert process.app_id == fake.app_id


async def test_from_env_keywords_win(fake: FakeHathora, monkeypatch: pytest.MonkeyPatch) -> None:
    other = fake.add_app("app-kw")
    monkeypatch.setenv("HATHORA_TOKEN", "not-the-token")
    monkeypatch.setenv("HATHORA_APP_ID", fake.app_id)
    monkeypatch.setenv("HATHORA_BASE_URL", "http://127.0.0.1:9")
    async with HathoraClient.from_env(token=fake.token, app_id=other, base_url=fake.url) as client:
        assert client.app_id == other
        assert await client.processes.get_latest_processes() == []


def test_from_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATHORA_TOKEN", "t")
    monkeypatch.delenv("HATHORA_APP_ID", raising=False)
    monkeypatch.delenv("HATHORA_BASE_URL", raising=False)
    client = HathoraClient.from_env()
    assert client.app_id is None
    assert str(client.base_url) == "https://api.hathora.dev"


@pytest.mark.parametrize("value", [None, ""])
def test_from_env_without_a_token(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("HATHORA_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HATHORA_TOKEN", value)
    monkeypatch.setenv("HATHORA_APP_ID", "app")
    with pytest.raises(ValueError, match="HATHORA_TOKEN is not set"):
        HathoraClient.from_env()


# -- base_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.5:8080",
        "http://[2001:db8::1]/",
        "http://localhostx",
        # Only literal loopback IPs and exactly "localhost" are trusted by name:
        # these may resolve anywhere (a resolver, /etc/hosts, a search domain).
        "http://game.localhost",
        "http://evil.localhost:1",
        "http://localhost.:1",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="refusing to send the token over plain http"):
        HathoraClient("t", "a", base_url=url)
    client = HathoraClient("t", "a", base_url=url, allow_insecure_http=True)
    assert client.base_url.scheme == "http"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "http://127.0.0.1",
        "http://127.8.9.10:1",
        "http://[::1]:8080",
        "HTTP://LOCALHOST:1",
        "https://api.hathora.dev",
        "https://10.0.0.5",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert HathoraClient("t", "a", base_url=url).base_url.host is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://api.hathora.dev", "absolute http"),
        ("api.hathora.dev", "absolute http"),
        ("https://api.hathora.dev/?x=1", "query or fragment"),
        ("https://api.hathora.dev/#top", "query or fragment"),
    ],
)
def test_malformed_base_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HathoraClient("t", "a", base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.hathora.dev/\r\nX: y",
        "https://api.hathora.dev/\nX-Injected: 1",
        "https://api.hathora.dev/a b",
        "https://api.hathora.dev\t/",
        " https://api.hathora.dev",
        "https://api.hathora.dev/ ",
        "https://api.hathora.dev/\x00",
        "https://api.hathora.dev/\x7f",
        "https://api.hathora.dev/\x85",
        "https://api.hathora.dev/\u2028",
        "https://api.hathora.dev/\u00a0x",
    ],
)
def test_base_urls_with_whitespace_or_control_characters_are_refused(url: str) -> None:
    # yarl would percent-encode them into the path (CR LF became "/X:%20y"), not refuse.
    with pytest.raises(ValueError, match="whitespace or control characters"):
        HathoraClient("t", "a", base_url=url)


@pytest.mark.parametrize(
    "path",
    ["/..", "/../evil", "/%2e%2e/evil", "/%2E%2E/evil", "/.%2e/evil", "/a/./b", "/%2e/b", "/a/.."],
)
def test_base_urls_with_dot_segments_are_refused(path: str) -> None:
    # yarl would resolve them: "/%2e%2e/evil" became "/evil", another path than given.
    for base in ("https://api.hathora.dev", "http://127.0.0.1:1"):
        with pytest.raises(ValueError, match="path segments"):
            HathoraClient("t", "a", base_url=base + path)
        with pytest.raises(ValueError, match="path segments"):
            HathoraClient("t", "a", base_url=URL(base + path, encoded=True))


@pytest.mark.parametrize("path", ["/v1..2", "/.well-known", "/a.b/c", "/..."])
def test_base_urls_with_dots_inside_segments_are_kept(path: str) -> None:
    client = HathoraClient("t", "a", base_url="https://api.hathora.dev" + path)
    assert client.base_url.raw_path == path


@pytest.mark.parametrize(
    ("suffix", "prefix"), [("", ""), ("/", ""), ("/proxy", "/proxy"), ("/proxy/", "/proxy")]
)
async def test_base_url_path_prefix(hostile: HostileServer, suffix: str, prefix: str) -> None:
    hostile.answer(Canned.json([]))
    async with HathoraClient(TOKEN, APP_ID, base_url=hostile.url + suffix) as client:
        await client.processes.get_latest_processes()
    assert [s.raw_path for s in hostile.seen] == [f"{prefix}/processes/v2/{APP_ID}/list/latest"]


@pytest.mark.parametrize(
    "options",
    [{"max_connections": 0}, {"max_connections": True}, {"timeout": 0}, {"timeout": -1.0}],
)
def test_bad_options_are_refused_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HathoraClient("t", "a", base_url="http://127.0.0.1:9", **options)  # type: ignore[arg-type]
