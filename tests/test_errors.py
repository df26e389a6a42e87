"""Status -> typed error mapping, error payloads kept, transport errors chained."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import aiohttp
import pytest
from hostile import APP_ID, PROCESS_V2_KEYS, Canned, HostileServer, hostile_client, process_json

from hathora_async import (
    ApiError,
    BadRequestError,
    ForbiddenError,
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    Region,
    RequestTimeoutError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    UnauthorizedError,
    UnprocessableEntityError,
)
from hathora_async._constants import MAX_ERROR_BODY_BYTES
from hathora_async._http import error_from_response
from hathora_async.errors import error_class_for
from hathora_async.testing import FakeHathora, Fault

STATUS_CLASSES: list[tuple[int, type[ApiError]]] = [
    (302, ApiError),
    (400, BadRequestError),
    (401, UnauthorizedError),
    (402, PaymentRequiredError),
    (403, ForbiddenError),
    (404, NotFoundError),
    (408, RequestTimeoutError),
    (409, ApiError),
    (418, ApiError),
    (422, UnprocessableEntityError),
    (429, RateLimitedError),
    (500, ServerError),
    (501, ServerError),
    (502, ServerError),
    (503, ServerError),
    (504, ServerError),
    (599, ServerError),
]

Operation = Callable[[HathoraClient], Awaitable[object]]

# (name, call, method, path after /processes/v2/<app>/)
OPERATIONS: list[tuple[str, Operation, str, str]] = [
    ("create", lambda c: c.processes.create_process(Region.SEATTLE), "POST", "create/Seattle"),
    ("latest", lambda c: c.processes.get_latest_processes(), "GET", "list/latest"),
    ("info", lambda c: c.processes.get_process_info("p-1"), "GET", "info/p-1"),
    ("stop", lambda c: c.processes.stop_process("p-1"), "POST", "stop/p-1"),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
@pytest.mark.parametrize(
    ("call", "method", "path"), [op[1:] for op in OPERATIONS], ids=[op[0] for op in OPERATIONS]
)
async def test_status_maps_to_its_class_with_payload_kept(
    hostile: HostileServer,
    status: int,
    cls: type[ApiError],
    call: Operation,
    method: str,
    path: str,
) -> None:
    body = json.dumps({"message": f"it went wrong ({status})"}).encode()
    hostile.answer(Canned(status, body, {"X-Request-Id": "req-42", "Location": "/somewhere/else"}))
    async with hostile_client(hostile) as client:
        with pytest.raises(cls) as caught:
            await call(client)
    error = caught.value
    assert type(error) is cls
    assert isinstance(error, HathoraError)
    assert error.status == status
    assert error.message == f"it went wrong ({status})"
    assert error.headers["X-Request-Id"] == "req-42"
    assert error.body == body
    assert error.method == method
    assert error.path == f"/processes/v2/{APP_ID}/{path}"
    assert str(error).startswith(f"HTTP {status}: it went wrong ({status}) ({method} /processes/")
    # Exactly one request: no retry (policy none) and no redirect followed (302).
    assert [s.raw_path for s in hostile.seen] == [f"/processes/v2/{APP_ID}/{path}"]


@pytest.mark.parametrize(
    ("fault_status", "cls", "operation"),
    [
        (402, PaymentRequiredError, "create"),
        (500, ServerError, "create"),
        (500, ServerError, "stop"),
        (401, UnauthorizedError, "latest"),
        (404, NotFoundError, "info"),
    ],
)
async def test_spec_statuses_from_the_fake(
    fake: FakeHathora, fault_status: int, cls: type[ApiError], operation: str
) -> None:
    # The spec lists 401/402/404/500 for these endpoints; the fake injects them on demand.
    route = {
        "create": "create_process",
        "latest": "get_latest_processes",
        "info": "get_process_info",
        "stop": "stop_process",
    }[operation]
    fake.faults.add(route, Fault(status=fault_status, message=f"fake says {fault_status}"))
    call = next(op[1] for op in OPERATIONS if op[0] == operation)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(cls) as caught:
            await call(client)
    assert type(caught.value) is cls
    assert caught.value.status == fault_status
    assert caught.value.message == f"fake says {fault_status}"
    assert json.loads(caught.value.body) == {"message": f"fake says {fault_status}"}
    assert caught.value.headers["Content-Type"].startswith("application/json")
    assert fake.request_counts[route] == 1
    assert fake.processes_created == 0


async def test_create_failing_with_500_says_the_outcome_is_unknown(
    fake: FakeHathora,
) -> None:
    fake.faults.add("create_process", Fault(status=500))
    fake.faults.add("get_process_info", Fault(status=500))
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(ServerError) as create_error:
            await client.processes.create_process(Region.SEATTLE)
        with pytest.raises(ServerError) as info_error:
            await client.processes.get_process_info("p")
    assert create_error.value.outcome_unknown is True
    assert "outcome unknown" in str(create_error.value)
    assert info_error.value.outcome_unknown is False
    assert "outcome unknown" not in str(info_error.value)


@pytest.mark.parametrize(
    ("canned", "cls", "message"),
    [
        (
            Canned(502, b"<html>Bad Gateway</html>", content_type="text/html"),
            ServerError,
            "<html>Bad Gateway</html>",
        ),
        (Canned(500, b"", content_type=None), ServerError, "HTTP 500 with no message"),
        (Canned(400, b'{"error": "nope"}'), BadRequestError, '{"error": "nope"}'),
        (Canned(404, b'{"message": 17}'), NotFoundError, '{"message": 17}'),
        (Canned(403, b"[1, 2]"), ForbiddenError, "[1, 2]"),
        (Canned(418, b"I'm a teapot\n"), ApiError, "I'm a teapot"),
        (Canned(422, b"\xff\xfe not utf-8"), UnprocessableEntityError, "\ufffd\ufffd not utf-8"),
    ],
)
async def test_error_bodies_not_in_hathoras_shape_still_give_an_api_error(
    hostile: HostileServer, canned: Canned, cls: type[ApiError], message: str
) -> None:
    hostile.answer(canned)
    async with hostile_client(hostile) as client:
        with pytest.raises(cls) as caught:
            await client.processes.get_process_info("p-1")
    assert type(caught.value) is cls
    assert caught.value.status == canned.status
    assert caught.value.message == message
    assert caught.value.body == canned.body


async def test_a_huge_error_body_is_kept_only_up_to_the_bound(hostile: HostileServer) -> None:
    body = json.dumps({"message": "big", "padding": "x" * (2 * MAX_ERROR_BODY_BYTES)}).encode()
    hostile.answer(Canned(500, body))
    async with hostile_client(hostile) as client:
        with pytest.raises(ServerError) as caught:
            await client.processes.get_latest_processes()
    assert caught.value.body == body[:MAX_ERROR_BODY_BYTES]
    # The cut body is no longer JSON: the message falls back to its start.
    assert caught.value.message == body[:200].decode()


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ({"Retry-After": "7"}, 7.0, 7.0),
        ({"Retry-After": "0"}, 0.0, 0.0),
        ({"Retry-After": " 120 "}, 120.0, 120.0),
        ({}, None, None),
        ({"Retry-After": "soon"}, None, None),
    ],
)
async def test_rate_limited_retry_after(
    hostile: HostileServer, header: dict[str, str], low: float | None, high: float | None
) -> None:
    hostile.answer(Canned.json({"message": "slow down"}, status=429, **header))
    async with hostile_client(hostile) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.processes.create_process(Region.SEATTLE)
    assert caught.value.message == "slow down"
    assert caught.value.retry_after == low == high
    assert len(hostile.seen) == 1


async def test_rate_limited_retry_after_as_an_http_date(hostile: HostileServer) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    hostile.answer(
        Canned.json(
            {"message": "later"}, status=429, **{"Retry-After": format_datetime(when, True)}
        )
    )
    async with hostile_client(hostile) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.processes.get_latest_processes()
    assert caught.value.retry_after is not None
    # HTTP dates have one-second resolution.
    assert 28.0 <= caught.value.retry_after <= 30.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(("name", "call", "method", "path"), OPERATIONS)
async def test_connection_refused_is_a_connection_error_with_the_aiohttp_cause(
    name: str, call: Operation, method: str, path: str
) -> None:
    async with HathoraClient(
        "token", "app", base_url=f"http://127.0.0.1:{_closed_port()}", retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(HathoraConnectionError) as caught:
            await call(client)
    error = caught.value
    assert isinstance(error.__cause__, aiohttp.ClientConnectorError)
    assert error.method == method
    assert error.path == f"/processes/v2/app/{path}"
    assert str(error).startswith("cannot connect:")
    # Never sent, so even a create has a known outcome: nothing was created.
    assert error.outcome_unknown is False


async def test_connection_dropped_after_sending_a_create(fake: FakeHathora) -> None:
    fake.faults.add("create_process", Fault(drop="before"))
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.create_process(Region.SEATTLE)
    assert isinstance(caught.value.__cause__, aiohttp.ServerDisconnectedError)
    # The client cannot know the server did not act.
    assert caught.value.outcome_unknown is True
    assert fake.processes_created == 0


async def test_body_cut_short_is_a_connection_error_with_the_payload_cause(
    fake: FakeHathora,
) -> None:
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
    ) as client:
        process = await client.processes.create_process(Region.SEATTLE)
        fake.faults.add("get_process_info", Fault(body="truncated"))
        with pytest.raises(HathoraConnectionError) as caught:
            await client.processes.get_process_info(process.process_id)
    assert isinstance(caught.value.__cause__, aiohttp.ClientPayloadError)
    assert str(caught.value).startswith("response cut short:")


async def test_read_timeout_is_a_timeout_error_with_the_aiohttp_cause(
    fake: FakeHathora,
) -> None:
    fake.faults.add("get_latest_processes", Fault(latency=0.3))
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none(), timeout=0.05
    ) as client:
        with pytest.raises(HathoraTimeoutError) as caught:
            await client.processes.get_latest_processes()
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value.__cause__, asyncio.TimeoutError)


# -- the pure mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), [*STATUS_CLASSES, (399, ApiError), (600, ApiError)])
def test_error_class_for(status: int, cls: type[ApiError]) -> None:
    assert error_class_for(status) is cls


def test_error_from_response_reads_hathoras_message() -> None:
    headers = {"Retry-After": "3", "X-Trace": "t"}
    error = error_from_response(429, headers, b'{"message": "too many"}')
    assert isinstance(error, RateLimitedError)
    assert (error.status, error.message, error.retry_after) == (429, "too many", 3.0)
    assert error.headers == headers
    assert error.body == b'{"message": "too many"}'


def test_process_json_helper_is_itself_valid() -> None:
    # Guard for the helper the error tests rely on: it must be a complete ProcessV2.
    assert set(process_json()) == set(PROCESS_V2_KEYS)


async def test_errors_survive_pickling_and_copying(
    fake: FakeHathora, client: HathoraClient
) -> None:
    # multiprocessing and concurrent.futures pickle exceptions; every field must survive.
    with pytest.raises(NotFoundError) as caught:
        await client.processes.get_process_info("no-such-process")
    errors: list[HathoraError] = [
        caught.value,
        RateLimitedError(429, "slow down", headers={"Retry-After": "3"}, retry_after=3.0),
        ResponseDecodeError(201, "required field missing @ $.appId", b"{}"),
        HathoraConnectionError("cannot connect"),
    ]
    for error in errors:
        for twin in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
            assert type(twin) is type(error)
            assert str(twin) == str(error)
            assert twin.outcome_unknown == error.outcome_unknown
            assert twin.path == error.path
            if isinstance(error, ApiError):
                assert isinstance(twin, ApiError)
                assert (twin.status, twin.message, twin.body) == (
                    error.status,
                    error.message,
                    error.body,
                )
                assert twin.headers.get("Retry-After") == error.headers.get("Retry-After")
                assert twin.headers.get("content-type") == error.headers.get("content-type")
    restored = pickle.loads(pickle.dumps(errors[1]))
    assert isinstance(restored, RateLimitedError) and restored.retry_after == 3.0
    decoded = pickle.loads(pickle.dumps(errors[2]))
    assert isinstance(decoded, ResponseDecodeError) and decoded.description.endswith("$.appId")
