"""The bearer token appears nowhere: repr, str, errors, tracebacks, logs. Headers sent."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import traceback
from collections.abc import Awaitable, Callable
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from hostile import (
    APP_ID,
    DATA_OPS,
    OPS,
    TOKEN,
    Canned,
    HostileServer,
    Op,
    hostile_client,
    process_json,
    raw_server,
)

from hathora_async import (
    ApiError,
    ForbiddenError,
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    Region,
    ResponseDecodeError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    UnauthorizedError,
    WarmPool,
    __version__,
)
from hathora_async import _constants as C
from hathora_async._redact import Redactor
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


# -- the token echoed back by a server ----------------------------------------------------
# A gateway or a misconfigured server may answer with the request's Authorization
# header in its message, its body or a header. Whatever the endpoint, status or
# answer shape, the error shows "<redacted>" in its place.

# A token with characters servers escape or encode: "/", "+", "=" and a Latin-1 letter.
ODD_TOKEN = "jwt.eyJ/sub+x=\u00e9.SIG-4f1a9b7c2d8e"


def named_forms(token: str) -> dict[str, str]:
    """Every form of ``token`` an answer may carry that the client must recognise."""
    escaped = json.dumps(token)[1:-1]
    encoded = quote(token, safe="")
    return {
        "raw": token,
        "json": escaped,
        "json-slash": escaped.replace("/", "\\/"),
        "percent": encoded,
        "percent-lower": re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), encoded),
        "plus": quote_plus(token),
    }


def token_forms(token: str) -> list[str]:
    return list(dict.fromkeys(named_forms(token).values()))


def form_bytes(form: str) -> list[bytes]:
    return list(dict.fromkeys([form.encode("latin-1"), form.encode()]))


def assert_secret_absent(token: str, *texts: str) -> None:
    for text in texts:
        for form in token_forms(token):
            assert form not in text
        assert token[:10] not in text


def assert_secret_absent_from_error(token: str, error: BaseException) -> None:
    texts = renderings(error)
    message = getattr(error, "message", None)
    headers = getattr(error, "headers", {})
    texts += [str(message), repr(headers), *headers.values()]
    texts += [str(getattr(error, "description", ""))]
    assert_secret_absent(token, *texts)
    body = getattr(error, "body", b"")
    for form in token_forms(token):
        for raw in form_bytes(form):
            assert raw not in body
    assert token[:10].encode() not in body


def echoing(name: str, status: int, shape: str) -> Canned:
    """An answer echoing form ``name`` of ODD_TOKEN, in a JSON message or as plain text.

    (Tests name the form: a test's locals, shown by capture_locals, must not hold it.)
    """
    form = named_forms(ODD_TOKEN)[name]
    raw = form.encode() if shape == "json" else form.encode("latin-1")
    if shape == "json":
        # Written by hand, so the form is exactly as given (json.dumps would re-escape).
        return Canned(status, b'{"message": "denied: Authorization=Bearer ' + raw + b'"}')
    return Canned(
        status, b"denied\nAuthorization: Bearer " + raw + b"\n", content_type="text/plain"
    )


@pytest.mark.parametrize("op", OPS, ids=str)
async def test_a_token_echoed_in_an_error_message_is_redacted_on_every_endpoint(
    hostile: HostileServer, op: Op
) -> None:
    hostile.answer(Canned.json({"message": f"denied: Authorization=Bearer {TOKEN}"}, status=403))
    async with hostile_client(hostile) as client:
        with pytest.raises(ForbiddenError) as caught:
            await op.call(client)
    assert_secret_absent_from_error(TOKEN, caught.value)
    assert caught.value.message == "denied: Authorization=Bearer <redacted>"
    assert "Bearer <redacted>" in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 408, 409, 422, 429, 500, 502, 503])
async def test_a_token_echoed_with_any_error_status_is_redacted(
    hostile: HostileServer, status: int
) -> None:
    hostile.answer(Canned.json({"message": f"no: {TOKEN}"}, status=status))
    async with hostile_client(hostile, retry=FAST_RETRY) as client:
        with pytest.raises(HathoraError) as caught:
            await client.processes.get_process_info("p-1")
    error: BaseException | None = caught.value
    if status == 429:
        # Refusals are retried until the deadline (the send budget): the deadline
        # error carries the last refusal as its cause.
        assert isinstance(error, HathoraTimeoutError)
        error = error.__cause__
    assert isinstance(error, ApiError)
    assert error.message == "no: <redacted>"
    assert_secret_absent_from_error(TOKEN, caught.value)


@pytest.mark.parametrize("shape", ["json", "text"])
@pytest.mark.parametrize("form", list(named_forms(ODD_TOKEN)))
@pytest.mark.parametrize("op", [OPS[0], OPS[4]], ids=str)  # a process create, a room create
async def test_every_encoding_of_the_token_is_redacted(
    hostile: HostileServer, op: Op, form: str, shape: str
) -> None:
    hostile.answer(echoing(form, 403, shape))
    async with HathoraClient(ODD_TOKEN, APP_ID, base_url=hostile.url, retry=FAST_RETRY) as client:
        with pytest.raises(ForbiddenError) as caught:
            await op.call(client)
    assert_secret_absent_from_error(ODD_TOKEN, caught.value)
    assert "<redacted>" in caught.value.message
    assert b"<redacted>" in caught.value.body


async def test_a_token_in_the_utf8_form_of_a_latin1_header_is_redacted(
    hostile: HostileServer,
) -> None:
    # The header went out as Latin-1; a server answering in UTF-8 re-encodes it.
    hostile.answer(Canned(500, f'{{"message": "{ODD_TOKEN}"}}'.encode()))
    async with HathoraClient(ODD_TOKEN, APP_ID, base_url=hostile.url, retry=FAST_RETRY) as client:
        with pytest.raises(ServerError) as caught:
            await client.processes.create_process("Seattle")
    assert caught.value.body == b'{"message": "<redacted>"}'
    assert_secret_absent_from_error(ODD_TOKEN, caught.value)


def echoing_header(kind: str) -> dict[str, str]:
    """One header echoing the token (built here: the test's locals must not hold it)."""
    return {
        "www-authenticate": {
            "WWW-Authenticate": f'Bearer realm="hathora", error="invalid_token", token="{TOKEN}"'
        },
        "reflected": {"X-Echo-Authorization": f"Bearer {TOKEN}"},
        "percent-encoded": {"X-Echo": quote(f"Bearer {TOKEN}", safe="")},
    }[kind]


@pytest.mark.parametrize("kind", ["www-authenticate", "reflected", "percent-encoded"])
@pytest.mark.parametrize("status", [401, 429, 503])
async def test_a_token_echoed_in_a_header_is_redacted(
    hostile: HostileServer, kind: str, status: int
) -> None:
    hostile.answer(Canned(status, b'{"message": "no"}', echoing_header(kind)))
    async with hostile_client(hostile) as client:
        with pytest.raises(HathoraError) as caught:
            await client.processes.create_process("Seattle")
    kept = caught.value.headers  # type: ignore[attr-defined]
    assert "<redacted>" in kept[next(iter(echoing_header(kind)))]
    assert kept["Content-Type"] == "application/json"  # the other headers are kept as sent
    assert_secret_absent_from_error(TOKEN, caught.value)


def undecodable(kind: str) -> bytes:
    """A success body showing the token that cannot be decoded."""
    token = TOKEN.encode()
    return {
        # Not JSON at all: the description may quote the body.
        "invalid-json": b'{"message": "Bearer ' + token + b'"',
        # JSON of the wrong shape, the token where a timestamp or a port should be.
        "wrong-shape": b'{"createdAt": "%s", "processId": 7, "exposedPort": "%s"}' % (token, token),
        "string": b'"' + token + b'"',
    }[kind]


@pytest.mark.parametrize("op", DATA_OPS, ids=str)
@pytest.mark.parametrize("kind", ["invalid-json", "wrong-shape", "string"])
async def test_a_token_in_a_success_body_that_fails_decoding_is_redacted(
    hostile: HostileServer, op: Op, kind: str
) -> None:
    hostile.answer(Canned(201 if op.creates_process else 200, undecodable(kind)))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await op.call(client)
    assert b"<redacted>" in caught.value.body
    assert_secret_absent_from_error(TOKEN, caught.value)


async def test_a_create_answer_that_fails_decoding_keeps_its_process_id_but_not_the_token(
    hostile: HostileServer,
) -> None:
    hostile.answer(Canned(201, b'{"processId": "p-echo", "createdAt": "' + TOKEN.encode() + b'"}'))
    async with hostile_client(hostile) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await client.processes.create_process("Seattle")
    assert caught.value.process_id == "p-echo"
    assert caught.value.outcome_unknown
    assert_secret_absent_from_error(TOKEN, caught.value)


def straddling(transfer: str, status: int) -> Canned:
    """An error body whose token starts 10 bytes before the cut, sent as ``transfer``."""
    raw = b"x" * (C.MAX_ERROR_BODY_BYTES - 10) + TOKEN.encode() + b" and more" * 100
    return {
        "length": lambda: Canned(status, raw, content_type="text/plain"),
        "chunked": lambda: Canned(status, raw, content_type="text/plain", chunked=True),
        "gzip": lambda: Canned.encoded(raw, "gzip", status),
        "dripped": lambda: Canned(status, raw, chunked=True, drip=0.0, drip_bytes=7919),
    }[transfer]()


@pytest.mark.parametrize("transfer", ["length", "chunked", "gzip", "dripped"])
@pytest.mark.parametrize("status", [403, 500])
async def test_a_token_straddling_the_kept_part_of_a_body_leaves_no_head_behind(
    hostile: HostileServer, transfer: str, status: int
) -> None:
    # The body is cut to MAX_ERROR_BODY_BYTES; the token begins 10 bytes before the cut.
    hostile.answer(straddling(transfer, status))
    async with hostile_client(hostile) as client:
        with pytest.raises(ApiError) as caught:
            await client.processes.get_process_info("p-1")
    assert len(caught.value.body) == C.MAX_ERROR_BODY_BYTES
    assert caught.value.body.endswith(b"x" * 100 + b"<redacted>"[:10])
    assert_secret_absent_from_error(TOKEN, caught.value)


def too_large(encoding: str | None) -> Canned:
    raw = b'{"message": "' + TOKEN.encode() + b'", "pad": "' + b" " * 5000 + b'"}'
    # Without a length (chunked), so the client reads a head before refusing it.
    return Canned(200, raw, chunked=True) if encoding is None else Canned.encoded(raw, encoding)


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_a_token_in_a_body_too_large_is_redacted(
    hostile: HostileServer, encoding: str | None
) -> None:
    hostile.answer(too_large(encoding))
    async with hostile_client(hostile, max_response_bytes=1000) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.processes.get_process_info("p-1")
    assert caught.value.body.startswith(b'{"message": "<redacted>"')
    assert_secret_absent_from_error(TOKEN, caught.value)


def malformed(kind: str) -> bytes:
    """An answer aiohttp's parser refuses, quoting the token in its error."""
    token = TOKEN.encode()
    return {
        "status-code": b"HTTP/1.1 2" + token + b" OK\r\n\r\n",
        "protocol": b"HTTQ/1.1 200 Bearer " + token + b"\r\n\r\n",
        "header-line": b"HTTP/1.1 200 OK\r\nBearer " + token + b"\r\n\r\n",
        "header-value": b"HTTP/1.1 200 OK\r\nX-Echo: Bearer "
        + token
        + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
        "chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz" + token + b"\r\n",
    }[kind]


@pytest.mark.parametrize(
    "kind", ["status-code", "protocol", "header-line", "header-value", "chunk-size"]
)
async def test_a_token_quoted_by_aiohttps_parser_is_redacted(kind: str) -> None:
    # aiohttp's parser errors quote the offending bytes; its exception (the usual
    # cause) is withheld when it shows the token, the text kept redacted.
    async with raw_server(malformed(kind)) as server, hostile_client(server) as client:
        with pytest.raises(HathoraError) as caught:
            await client.processes.get_process_info("p-1")
    assert server.requests == 1
    assert_secret_absent_from_error(TOKEN, caught.value)


async def test_a_parser_error_without_the_token_keeps_its_cause() -> None:
    async with raw_server(b"HTTP/1.1 2xx OK\r\n\r\n") as server, hostile_client(server) as client:
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.get_process_info("p-1")
    assert isinstance(caught.value.__cause__, aiohttp.ClientResponseError)


async def test_a_token_echoed_to_a_warm_pool_is_not_logged(
    caplog: pytest.LogCaptureFixture, hostile: HostileServer
) -> None:
    caplog.set_level(logging.DEBUG, logger="hathora_async")
    warned = asyncio.Event()
    watcher = logging.Handler(logging.WARNING)
    watcher.emit = lambda record: warned.set()  # type: ignore[method-assign]
    logging.getLogger("hathora_async").addHandler(watcher)
    hostile.answer(Canned.json({"message": f"denied: Authorization=Bearer {TOKEN}"}, status=403))
    try:
        async with hostile_client(hostile) as client:
            async with WarmPool(client, {Region.LONDON: 1}, poll_interval=0.05):
                await warned.wait()
            result = await client.preallocate({Region.SEATTLE: 2}, wait=False, reconcile=False)
    finally:
        logging.getLogger("hathora_async").removeHandler(watcher)
    assert any("Bearer <redacted>" in r.getMessage() for r in caplog.records)
    messages = [getattr(f.error, "message", None) for f in result.failed]
    assert messages == ["denied: Authorization=Bearer <redacted>"] * 2
    for failure in result.failed:
        assert_secret_absent_from_error(TOKEN, failure.error)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert_secret_absent(TOKEN, formatter.format(record), repr(record.args))
    assert_secret_absent(TOKEN, caplog.text)


def test_a_client_without_a_token_redacts_nothing() -> None:
    assert Redactor(None).text("Bearer x") == "Bearer x"
    assert Redactor(None).bytes(b"x") == b"x"
    assert repr(Redactor(TOKEN)) == "Redactor(<redacted>)"
