"""``client.rooms``: every RoomsV2 operation, retry-safe create, and wait_for_room."""

from __future__ import annotations

import asyncio
import json
import re
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import attrs
import pytest
from _schema import schemas, validate_schema
from hostile import APP_ID, Canned, HostileServer, hostile_client

from hathora_async import (
    ActiveRoom,
    ApiError,
    BadRequestError,
    ConnectionInfoV2,
    HathoraClient,
    HathoraTimeoutError,
    NotFoundError,
    Region,
    RetryPolicy,
    Room,
    RoomAllocation,
    RoomConnectionData,
    RoomDestroyedError,
    RoomReadyStatus,
    RoomStatus,
    RoomWaitTimeoutError,
    RoomWithoutAllocations,
    ServerError,
    UnauthorizedError,
)
from hathora_async._convert import DecodeFailure, camel, decoder
from hathora_async.rooms import new_room_id
from hathora_async.testing import FakeHathora, Fault, ManualClock

BOOT = 3.0
GENERATED_ID = re.compile(r"[a-z0-9]{16}")
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.01)


def port_json(port: int = 7777) -> dict[str, Any]:
    return {"transportType": "udp", "port": port, "host": "1.proxy.hathora.dev", "name": "default"}


def connection_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "additionalExposedPorts": [],
        "exposedPort": port_json(),
        "status": "active",
        "roomId": "r1",
    }
    data.update(overrides)
    return data


def room_json(**overrides: Any) -> dict[str, Any]:
    allocation = {
        "unscheduledAt": None,
        "scheduledAt": "2024-05-01T10:00:00Z",
        "processId": "p1",
        "roomAllocationId": "a1",
    }
    data: dict[str, Any] = {
        "currentAllocation": allocation,
        "status": "active",
        "allocations": [allocation],
        "roomConfig": None,
        "roomId": "r1",
        "appId": APP_ID,
    }
    data.update(overrides)
    return data


# -- every operation against the fake -------------------------------------------


async def test_every_operation_through_the_client(fake: FakeHathora, client: HathoraClient) -> None:
    rooms = client.rooms
    created = await rooms.create_room_with_http_info(Region.LONDON, room_config="cfg")
    assert created.status_code == 201
    room = created.data
    assert isinstance(room, RoomConnectionData)
    assert GENERATED_ID.fullmatch(room.room_id)
    assert room.status is RoomReadyStatus.ACTIVE  # boot_delay 0: its process runs at once
    process = fake.process(room.process_id)
    assert room.exposed_port is not None
    assert (room.exposed_port.host, room.exposed_port.port) == (
        process["exposedPort"]["host"],
        process["exposedPort"]["port"],
    )

    info = await rooms.get_room_info_with_http_info(room.room_id)
    assert info.status_code == 200
    assert isinstance(info.data, Room)
    assert (info.data.status, info.data.room_config) == (RoomStatus.ACTIVE, "cfg")
    assert info.data.current_allocation is not None
    assert info.data.current_allocation.process_id == room.process_id
    assert info.data.allocations == (info.data.current_allocation,)

    connection = await rooms.get_connection_info_with_http_info(room.room_id)
    assert connection.status_code == 200
    assert connection.data == ConnectionInfoV2(
        room.room_id, RoomReadyStatus.ACTIVE, (), room.exposed_port
    )

    active = await rooms.get_active_rooms_for_process_with_http_info(room.process_id)
    assert active.status_code == 200
    assert [r.room_id for r in active.data] == [room.room_id]

    updated = await rooms.update_room_config_with_http_info(room.room_id, "cfg-2")
    assert (updated.status_code, updated.data) == (204, None)
    assert (await rooms.get_room_info(room.room_id)).room_config == "cfg-2"

    destroyed = await rooms.destroy_room_with_http_info(room.room_id)
    assert (destroyed.status_code, destroyed.data) == (204, None)
    inactive = await rooms.get_inactive_rooms_for_process_with_http_info(room.process_id)
    assert [(r.room_id, r.status) for r in inactive.data] == [(room.room_id, RoomStatus.DESTROYED)]
    assert await rooms.get_active_rooms_for_process(room.process_id) == []
    assert fake.process(room.process_id)["roomsAllocated"] == 0


async def test_plain_forms_return_the_data(fake: FakeHathora, client: HathoraClient) -> None:
    rooms = client.rooms
    room = await rooms.create_room("Tokyo", room_id="my-room_1")
    assert room.room_id == "my-room_1"
    assert (await rooms.get_room_info("my-room_1")).room_id == "my-room_1"
    assert (await rooms.get_connection_info("my-room_1")).status == "active"
    assert len(await rooms.get_active_rooms_for_process(room.process_id)) == 1
    assert await rooms.get_inactive_rooms_for_process(room.process_id) == []
    assert await rooms.update_room_config("my-room_1", "") is None
    assert await rooms.destroy_room("my-room_1") is None
    assert fake.room("my-room_1")["status"] == "destroyed"


async def test_connection_info_needs_no_token(fake: FakeHathora, client: HathoraClient) -> None:
    room = await client.rooms.create_room("Seattle")
    async with HathoraClient(app_id=fake.app_id, base_url=fake.url) as player:
        info = await player.rooms.get_connection_info(room.room_id)
        assert info.exposed_port == room.exposed_port
        with pytest.raises(UnauthorizedError):
            await player.rooms.get_room_info(room.room_id)


async def test_errors_are_mapped(fake: FakeHathora, client: HathoraClient) -> None:
    rooms = client.rooms
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: rooms.get_room_info("missing"),
        lambda: rooms.get_connection_info("missing"),
        lambda: rooms.destroy_room("missing"),
        lambda: rooms.update_room_config("missing", "x"),
        lambda: rooms.get_active_rooms_for_process("no-such-process"),
        lambda: rooms.get_inactive_rooms_for_process("no-such-process"),
        lambda: rooms.wait_for_room("missing"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as caught:
            await call()
        assert caught.value.status == 404
        assert not isinstance(caught.value, RoomDestroyedError)
    async with HathoraClient("wrong-token", fake.app_id, base_url=fake.url) as stranger:
        with pytest.raises(UnauthorizedError):
            await stranger.rooms.create_room("Seattle")
        with pytest.raises(UnauthorizedError):
            await stranger.rooms.destroy_room("missing")
    assert fake.rooms_created == 0


async def test_reads_and_destroy_are_retried(fake: FakeHathora, client: HathoraClient) -> None:
    room = await client.rooms.create_room("Seattle")
    fake.faults.add("get_connection_info", Fault(status=503))
    fake.faults.add("destroy_room", Fault(drop="after"))
    assert (await client.rooms.get_connection_info(room.room_id)).room_id == room.room_id
    await client.rooms.destroy_room(room.room_id)
    assert fake.request_counts["get_connection_info"] == 2
    # The first destroy acted and its answer was lost; the retry still succeeds.
    assert fake.request_counts["destroy_room"] == 2
    assert fake.room(room.room_id)["status"] == "destroyed"


# -- validation before any I/O --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"room_id": ""}, ValueError),
        ({"room_id": "a/b"}, ValueError),
        ({"room_id": ".."}, ValueError),
        ({"room_id": "space d"}, ValueError),
        ({"room_id": "é"}, ValueError),
        ({"room_id": "x" * 101}, ValueError),
        ({"room_id": 42}, TypeError),
        ({"room_config": "x" * 10_001}, ValueError),
        ({"room_config": b"bytes"}, TypeError),
        ({"region": "No Such/Region"}, ValueError),
        ({"region": 3}, TypeError),
    ],
)
async def test_create_checks_arguments_before_io(
    fake: FakeHathora, client: HathoraClient, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    region = kwargs.pop("region", "Seattle")
    with pytest.raises(error):
        await client.rooms.create_room(region, **kwargs)
    assert sum(fake.request_counts.values()) == 0


async def test_limits_are_inclusive(fake: FakeHathora, client: HathoraClient) -> None:
    longest = "Z" * 100
    await client.rooms.create_room("Seattle", room_id=longest, room_config="c" * 10_000)
    assert fake.room(longest)["roomConfig"] == "c" * 10_000


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.get_room_info("a/b"),
        lambda r: r.get_connection_info(""),
        lambda r: r.destroy_room("../x"),
        lambda r: r.update_room_config("ok", "x" * 10_001),
        lambda r: r.update_room_config("ok", None),
        lambda r: r.wait_for_room("a?b"),
        lambda r: r.wait_for_room("ok", timeout=0),
        lambda r: r.wait_for_room("ok", poll_interval=-1),
        lambda r: r.get_active_rooms_for_process(".."),
    ],
)
async def test_other_operations_check_arguments_before_io(
    fake: FakeHathora, client: HathoraClient, call: Callable[[Any], Awaitable[object]]
) -> None:
    with pytest.raises((ValueError, TypeError)):
        await call(client.rooms)
    assert sum(fake.request_counts.values()) == 0


def test_generated_room_ids_are_valid_and_distinct() -> None:
    ids = {new_room_id() for _ in range(1000)}
    assert len(ids) == 1000
    for room_id in list(ids)[:50]:
        assert GENERATED_ID.fullmatch(room_id)
        validate_schema("RoomId", room_id)


# -- the retry-safe create -----------------------------------------------------


async def test_a_dropped_create_answer_is_retried_into_one_room(
    fake: FakeHathora, client: HathoraClient
) -> None:
    fake.faults.add("create_room", Fault(drop="after"))
    room = await client.rooms.create_room("Seattle", room_config="cfg")
    # The first attempt made the room; the retry met its id and got that room back.
    assert fake.request_counts["create_room"] == 2
    assert fake.rooms_created == 1
    assert fake.processes_created == 1
    assert GENERATED_ID.fullmatch(room.room_id)
    on_record = fake.room(room.room_id)
    assert on_record["status"] == "active"
    assert on_record["roomConfig"] == "cfg"
    assert room.process_id == on_record["currentAllocation"]["processId"]
    assert room.status == "active"
    assert room.exposed_port is not None
    assert room.exposed_port.port == fake.process(room.process_id)["exposedPort"]["port"]


async def test_a_recovered_create_says_so_in_its_status_code(
    fake: FakeHathora, client: HathoraClient
) -> None:
    fake.faults.add("create_room", Fault(drop="after"))
    response = await client.rooms.create_room_with_http_info("Seattle", room_id="chosen")
    assert response.status_code == 200  # the connection-info read, not the lost 201
    assert response.data.room_id == "chosen"
    assert fake.rooms_created == 1


async def test_a_retried_create_sends_the_same_id(hostile: HostileServer) -> None:
    created = {**connection_json(roomId="x"), "processId": "p1"}
    hostile.answer_next(Canned.json({"message": "busy"}, 503), Canned.json(created, 201))
    async with hostile_client(hostile, retry=RetryPolicy(initial_delay=0.001)) as client:
        room = await client.rooms.create_room(Region.SEATTLE, room_config='{"a":1}')
    assert room.process_id == "p1"
    first, second = hostile.seen
    assert (first.method, first.raw_path.partition("?")[0]) == (
        "POST",
        f"/rooms/v2/{APP_ID}/create",
    )
    sent_ids = [parse_qs(seen.query_string)["roomId"] for seen in (first, second)]
    assert sent_ids[0] == sent_ids[1]
    assert GENERATED_ID.fullmatch(sent_ids[0][0])
    assert first.body == second.body
    assert json.loads(first.body) == {"region": "Seattle", "roomConfig": '{"a":1}'}
    assert first.header_values("Content-Type") == ["application/json"]


async def test_request_bodies_match_the_schemas(hostile: HostileServer) -> None:
    hostile.answer_next(
        Canned.json({**connection_json(), "processId": "p1"}, 201),
        Canned.json({**connection_json(), "processId": "p1"}, 201),
        Canned(204),
    )
    async with hostile_client(hostile) as client:
        await client.rooms.create_room("Seattle")
        await client.rooms.create_room("Seattle", room_config="", room_id="r-9")
        await client.rooms.update_room_config("r-9", "new")
    bare, full, update = hostile.seen
    validate_schema("CreateRoomParams", json.loads(bare.body))
    assert json.loads(bare.body) == {"region": "Seattle"}  # roomConfig is optional, not null
    validate_schema("CreateRoomParams", json.loads(full.body))
    assert parse_qs(full.query_string) == {"roomId": ["r-9"]}
    validate_schema("UpdateRoomConfigParams", json.loads(update.body))
    assert update.raw_path == f"/rooms/v2/{APP_ID}/update/r-9"


async def test_a_taken_id_on_the_first_attempt_is_the_callers_conflict(
    fake: FakeHathora, client: HathoraClient
) -> None:
    await client.rooms.create_room("Seattle", room_id="match-7")
    with pytest.raises(BadRequestError, match="already exists") as caught:
        await client.rooms.create_room("Seattle", room_id="match-7")
    assert caught.value.room_id == "match-7"
    assert caught.value.attempts == 1
    assert fake.request_counts["get_room_info"] == 0  # no lookup: nothing was retried
    assert fake.rooms_created == 1


@pytest.mark.parametrize("status", [400, 409])
async def test_a_conflicting_retry_returns_the_room_its_first_attempt_made(
    hostile: HostileServer, status: int
) -> None:
    hostile.answer_next(
        Canned.json({"message": "oops"}, 502),
        Canned.json({"message": "Room r1 already exists"}, status),
        Canned.json(room_json()),
        Canned.json(connection_json(status="starting", exposedPort=None)),
    )
    async with hostile_client(hostile, retry=RetryPolicy(initial_delay=0.001)) as client:
        room = await client.rooms.create_room("Seattle", room_id="r1")
    assert room == RoomConnectionData("r1", "p1", RoomReadyStatus.STARTING, (), None)
    assert [s.raw_path.split("?")[0] for s in hostile.seen[2:]] == [
        f"/rooms/v2/{APP_ID}/info/r1",
        f"/rooms/v2/{APP_ID}/connectioninfo/r1",
    ]


@pytest.mark.parametrize(
    "lookup",
    [
        Canned.json({"message": "Room r1 not found"}, 404),
        Canned.json(room_json(status="destroyed", currentAllocation=None)),
    ],
)
@pytest.mark.usefixtures("short_grace")  # a 404 is read again within the grace window
async def test_a_conflicting_retry_without_a_live_room_raises_the_conflict(
    hostile: HostileServer, lookup: Canned
) -> None:
    hostile.answer_next(
        Canned.json({"message": "oops"}, 500),
        Canned.json({"message": "invalid region"}, 400),
        lookup,
    )
    async with hostile_client(hostile, retry=RetryPolicy(initial_delay=0.001)) as client:
        with pytest.raises(BadRequestError, match="invalid region") as caught:
            await client.rooms.create_room("Seattle")
    assert caught.value.attempts == 2
    assert caught.value.room_id is not None
    assert GENERATED_ID.fullmatch(caught.value.room_id)
    lookups = {s.raw_path for s in hostile.seen[2:]}
    assert lookups == {f"/rooms/v2/{APP_ID}/info/{caught.value.room_id}"}
    # A destroyed room is an answer; a 404 may be lag, so it is read again (until the grace ends).
    assert (len(hostile.seen) > 3) == (lookup.status == 404)


async def test_a_failed_create_names_the_room_id_it_used(
    fake: FakeHathora, client: HathoraClient
) -> None:
    fake.faults.add("create_room", Fault(status=500), times=10)
    with pytest.raises(ServerError) as caught:
        await client.rooms.create_room("Seattle")
    assert caught.value.attempts == client.retry.attempts
    assert caught.value.room_id is not None
    # Retrying with that id is safe: nothing was made, so it is created now.
    fake.faults.clear()
    room = await client.rooms.create_room("Seattle", room_id=caught.value.room_id)
    assert room.room_id == caught.value.room_id


def clock_spent_by_the_retry(fake: FakeHathora, spent: float) -> Callable[[], float]:
    """Real time, plus ``spent`` seconds once a create's retry has reached ``fake``.

    As if the create had used that much of its deadline before the lookup.
    """

    def now() -> float:
        return time.monotonic() + (spent if fake.request_counts["create_room"] >= 2 else 0.0)

    return now


async def test_a_create_out_of_time_raises_the_conflict_without_a_lookup(
    fake: FakeHathora,
) -> None:
    fake.faults.add("create_room", Fault(drop="after"))
    clock = clock_spent_by_the_retry(fake, 5.0)
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, timeout=5.0, retry=FAST, clock=clock
    ) as client:
        with pytest.raises(BadRequestError, match="already exists") as caught:
            await client.rooms.create_room("Seattle")
    assert caught.value.attempts == 2
    # A lookup could only overrun the call's deadline: none is made.
    assert fake.request_counts["get_room_info"] == 0
    assert fake.request_counts["get_connection_info"] == 0
    # The error names the id, so the room the first attempt made can be found.
    assert caught.value.room_id is not None
    assert fake.room(caught.value.room_id)["status"] == "active"


async def test_the_lookup_after_a_refused_retry_ends_by_the_create_deadline(
    fake: FakeHathora,
) -> None:
    fake.faults.add("create_room", Fault(drop="after"))
    fake.faults.add("get_room_info", Fault(latency=10.0))
    clock = clock_spent_by_the_retry(fake, 4.7)  # 0.3 s of the 5 s deadline left
    loop = asyncio.get_running_loop()
    async with HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, timeout=5.0, retry=FAST, clock=clock
    ) as client:
        started = loop.time()
        with pytest.raises(HathoraTimeoutError) as caught:
            await client.rooms.create_room("Seattle")
        took = loop.time() - started
    # The read got what was left of the create's deadline, not a deadline of its own.
    assert 0.2 < took < 2.0
    assert caught.value.room_id is not None
    assert fake.request_counts["get_room_info"] == 1
    assert fake.request_counts["get_connection_info"] == 0


async def test_decoding_tolerates_hathora_variants(hostile: HostileServer) -> None:
    # exposedPort null instead of absent, a newer status, an unknown field.
    hostile.answer(
        Canned.json(connection_json(status="draining", exposedPort=None, shiny=True)),
    )
    async with hostile_client(hostile) as client:
        info = await client.rooms.get_connection_info("r1")
    assert info.exposed_port is None
    assert info.status == "draining"
    assert not info.status.is_known


@pytest.mark.parametrize("model", [ConnectionInfoV2, RoomConnectionData])
def test_an_absent_exposed_port_decodes_as_none(model: type[Any]) -> None:
    decode = decoder(model)
    starting = {**connection_json(status="starting"), "processId": "p1"}
    del starting["exposedPort"]
    assert decode(json.dumps(starting).encode()).exposed_port is None
    assert decode(json.dumps({**starting, "exposedPort": None}).encode()).exposed_port is None
    active = decode(json.dumps({**starting, "exposedPort": port_json(9)}).encode())
    assert active.exposed_port.port == 9
    # Required keys stay required: the error names the missing wire key.
    del starting["roomId"]
    with pytest.raises(DecodeFailure, match="roomId"):
        decode(json.dumps(starting).encode())


@pytest.mark.parametrize(
    ("model", "schema_name"),
    [
        (Room, "Room"),
        (RoomAllocation, "RoomAllocation"),
        (RoomWithoutAllocations, "RoomWithoutAllocations"),
        (ConnectionInfoV2, "ConnectionInfoV2"),
        (RoomConnectionData, "RoomConnectionData"),
    ],
)
def test_room_models_follow_the_schemas_field_by_field(model: type[Any], schema_name: str) -> None:
    schema = schemas().defs[schema_name]
    properties, required = schema["properties"], set(schema["required"])
    hints = typing.get_type_hints(model)
    fields = {camel(f.name): f for f in attrs.fields(model)}
    assert set(fields) == set(properties)
    for wire_name, field in fields.items():
        optional = type(None) in typing.get_args(hints[field.name])
        nullable = {"type": "null"} in properties[wire_name].get("anyOf", [])
        absent_ok = wire_name not in required
        # Nullable keys are Optional; keys that may be absent are Optional with a default.
        assert optional is (nullable or absent_ok), wire_name
        assert (field.default is not attrs.NOTHING) is absent_ok, wire_name


def test_a_create_answer_without_process_id_is_refused() -> None:
    with pytest.raises(DecodeFailure, match="processId"):
        decoder(RoomConnectionData)(json.dumps(connection_json()).encode())


# -- wait_for_room -------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def booting(clock: ManualClock) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    """A fake booting processes in ``BOOT`` manual seconds, and a client on its clock."""
    async with (
        FakeHathora(boot_delay=BOOT, clock=clock, seed=11) as fake,
        HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=RetryPolicy.none(),
            sleep=clock.sleep,
            clock=clock,
        ) as client,
    ):
        yield fake, client


async def test_wait_for_room_on_a_cold_start(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    fake, client = booting
    room = await client.rooms.create_room("Seattle")
    assert room.status == "starting"
    active = await client.rooms.wait_for_room(room.room_id, poll_interval=0.5)
    assert isinstance(active, ActiveRoom)
    assert clock() == BOOT
    process = fake.process(room.process_id)
    assert (active.host, active.port) == (
        process["exposedPort"]["host"],
        process["exposedPort"]["port"],
    )
    # One immediate poll, then one per 0.5 s until the 3 s boot ends.
    assert fake.request_counts["get_connection_info"] == 1 + int(BOOT / 0.5)


async def test_wait_for_room_on_a_warm_process_returns_at_once(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    fake, client = booting
    await client.processes.create_process("Seattle")
    clock.advance(BOOT)
    room = await client.rooms.create_room("Seattle")
    assert room.status == "active"
    active = await client.rooms.wait_for_room(room.room_id)
    assert active.room_id == room.room_id
    assert clock() == BOOT  # no sleep at all
    assert fake.request_counts["get_connection_info"] == 1


async def test_wait_for_room_times_out(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    _, client = booting
    room = await client.rooms.create_room("Seattle")
    with pytest.raises(RoomWaitTimeoutError) as caught:
        await client.rooms.wait_for_room(room.room_id, timeout=2.0, poll_interval=0.5)
    assert isinstance(caught.value, TimeoutError)
    assert clock() == 2.0
    assert caught.value.room_id == room.room_id
    assert caught.value.connection_info is not None
    assert caught.value.connection_info.status == "starting"
    assert "not active after 2s" in str(caught.value)


async def test_wait_for_room_sees_its_process_die(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    fake, client = booting
    room = await client.rooms.create_room("Seattle")
    sleeps = 0

    async def sleep_then_crash(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        await clock.sleep(seconds)
        if sleeps == 2:
            fake.fail_process(room.process_id)

    crashing = HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, sleep=sleep_then_crash, clock=clock
    )
    async with crashing:
        with pytest.raises(RoomDestroyedError) as caught:
            await crashing.rooms.wait_for_room(room.room_id, poll_interval=0.5)
    assert caught.value.room_id == room.room_id
    assert isinstance(caught.value.__cause__, NotFoundError)
    assert fake.request_counts["get_connection_info"] == 3


async def test_wait_for_an_already_destroyed_room(
    booting: tuple[FakeHathora, HathoraClient],
) -> None:
    fake, client = booting
    room = await client.rooms.create_room("Seattle")
    await client.rooms.destroy_room(room.room_id)
    with pytest.raises(RoomDestroyedError):
        await client.rooms.wait_for_room(room.room_id)
    # Without a token the room's record cannot be read: the 404 stands.
    async with HathoraClient(app_id=fake.app_id, base_url=fake.url) as player:
        with pytest.raises(NotFoundError) as caught:
            await player.rooms.wait_for_room(room.room_id)
        assert not isinstance(caught.value, RoomDestroyedError)


async def test_the_destroyed_check_ends_by_the_wait_deadline(
    fake: FakeHathora, client: HathoraClient
) -> None:
    # The 404 is answered at once; the check of the room's record hangs.
    fake.faults.add("get_room_info", Fault(latency=10.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotFoundError) as caught:
        await client.rooms.wait_for_room("never-made", timeout=0.3)
    took = loop.time() - started
    assert 0.2 < took < 2.0  # the wait's 0.3 s, not the client's 30 s call deadline
    assert not isinstance(caught.value, RoomDestroyedError)
    assert fake.request_counts["get_room_info"] == 1


async def test_wait_for_room_polls_through_server_trouble(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    fake, client = booting
    room = await client.rooms.create_room("Seattle")
    fake.faults.add("get_connection_info", Fault(status=503), times=3)
    active = await client.rooms.wait_for_room(room.room_id, poll_interval=1.0)
    assert active.room_id == room.room_id
    assert fake.request_counts["get_connection_info"] == 4
    assert clock() == BOOT


async def test_wait_for_room_timeout_keeps_the_last_error(
    booting: tuple[FakeHathora, HathoraClient], clock: ManualClock
) -> None:
    fake, client = booting
    fake.faults.add("get_connection_info", Fault(status=503), times=100)
    with pytest.raises(RoomWaitTimeoutError) as caught:
        await client.rooms.wait_for_room("anything", timeout=1.0, poll_interval=0.25)
    assert caught.value.connection_info is None
    assert isinstance(caught.value.__cause__, ServerError)


async def test_wait_for_room_stops_on_a_hard_error(
    booting: tuple[FakeHathora, HathoraClient],
) -> None:
    fake, client = booting
    room = await client.rooms.create_room("Seattle")
    fake.faults.add("get_connection_info", Fault(status=402))
    with pytest.raises(ApiError) as caught:
        await client.rooms.wait_for_room(room.room_id)
    assert caught.value.status == 402
    assert fake.request_counts["get_connection_info"] == 1


async def test_wait_for_room_stops_at_once_when_cancelled() -> None:
    sleeping = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()  # between two polls: a poll has come back
        await asyncio.sleep(seconds)

    async with (
        FakeHathora(boot_delay=60.0, latency=0.02) as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url, sleep=sleep) as client,
    ):
        room = await client.rooms.create_room("Seattle")
        task = asyncio.create_task(client.rooms.wait_for_room(room.room_id, poll_interval=0.01))
        await asyncio.wait_for(sleeping.wait(), 5)
        sleeping.clear()
        await asyncio.wait_for(sleeping.wait(), 5)
        await asyncio.sleep(0.005)  # most likely mid-poll now: the fake answers in 20 ms
        loop = asyncio.get_running_loop()
        started = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.time() - started < 0.5
        polls = fake.request_counts["get_connection_info"]
        assert polls >= 2
        await asyncio.sleep(0.05)
        assert fake.request_counts["get_connection_info"] == polls  # no poll after cancel
        # The client still works: the cancelled poll left the pool usable.
        assert (await client.rooms.get_connection_info(room.room_id)).status == "starting"
