"""The fake's RoomsV2: wire format per the schemas, placement, and rooms living with processes.

Wire checks use a plain aiohttp session, so what is validated is exactly what the
fake sends; behaviour checks go through the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from _schema import validate_response, validate_schema

from hathora_async import HathoraClient, NotFoundError, RetryPolicy
from hathora_async.testing import FakeHathora, Fault, ManualClock

BOOT = 10.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slow_fake(clock: ManualClock) -> AsyncIterator[FakeHathora]:
    """A fake whose processes boot in ``BOOT`` seconds of manual time."""
    async with FakeHathora(boot_delay=BOOT, clock=clock, seed=7, rooms_per_process=2) as server:
        yield server


@pytest.fixture
async def slow_client(slow_fake: FakeHathora) -> AsyncIterator[HathoraClient]:
    async with HathoraClient(
        slow_fake.token, slow_fake.app_id, base_url=slow_fake.url, retry=RetryPolicy.none()
    ) as c:
        yield c


class Raw:
    """Plain HTTP to the fake: (status, parsed JSON or None)."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeHathora) -> None:
        self.session = session
        self.base = f"{fake.url}/rooms/v2/{fake.app_id}"
        self.auth = {"Authorization": f"Bearer {fake.token}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        auth: bool = True,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            params=params,
            headers=self.auth if auth else None,
        ) as response:
            raw = await response.read()
            return response.status, (await response.json() if raw else None)


@pytest.fixture
async def raw(slow_fake: FakeHathora) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        yield Raw(session, slow_fake)


async def test_every_operation_answers_as_the_spec_documents(
    raw: Raw, slow_fake: FakeHathora, clock: ManualClock
) -> None:
    status, created = await raw.call(
        "POST", "/create", body={"region": "Seattle", "roomConfig": '{"mode":"duel"}'}
    )
    assert status == 201
    validate_response("CreateRoom", 201, created)
    room_id = created["roomId"]
    process_id = created["processId"]
    # Cold start: the room waits for its new process, exposedPort absent (not null).
    assert created["status"] == "starting"
    assert "exposedPort" not in created

    status, starting = await raw.call("GET", f"/connectioninfo/{room_id}", auth=False)
    assert status == 200
    validate_response("GetConnectionInfo", 200, starting)
    assert starting["status"] == "starting"
    assert "exposedPort" not in starting

    clock.advance(BOOT)
    status, active = await raw.call("GET", f"/connectioninfo/{room_id}", auth=False)
    validate_response("GetConnectionInfo", 200, active)
    assert active["status"] == "active"
    assert active["exposedPort"]["port"] == slow_fake.process(process_id)["exposedPort"]["port"]

    status, info = await raw.call("GET", f"/info/{room_id}")
    assert status == 200
    validate_response("GetRoomInfo", 200, info)
    assert info["status"] == "active"
    assert info["roomConfig"] == '{"mode":"duel"}'
    assert info["currentAllocation"]["processId"] == process_id
    assert info["allocations"] == [info["currentAllocation"]]

    status, listed = await raw.call("GET", f"/list/{process_id}/active")
    assert status == 200
    validate_response("GetActiveRoomsForProcess", 200, listed)
    assert [r["roomId"] for r in listed] == [room_id]
    assert "allocations" not in listed[0]

    status, body = await raw.call("POST", f"/update/{room_id}", body={"roomConfig": "v2"})
    assert (status, body) == (204, None)
    assert slow_fake.room(room_id)["roomConfig"] == "v2"

    status, body = await raw.call("POST", f"/destroy/{room_id}")
    assert (status, body) == (204, None)

    status, destroyed = await raw.call("GET", f"/info/{room_id}")
    validate_response("GetRoomInfo", 200, destroyed)
    assert destroyed["status"] == "destroyed"
    assert destroyed["currentAllocation"] is None
    assert destroyed["allocations"][0]["unscheduledAt"] is not None

    status, inactive = await raw.call("GET", f"/list/{process_id}/inactive")
    validate_response("GetInactiveRoomsForProcess", 200, inactive)
    assert [r["roomId"] for r in inactive] == [room_id]
    status, now_active = await raw.call("GET", f"/list/{process_id}/active")
    assert now_active == []

    status, gone = await raw.call("GET", f"/connectioninfo/{room_id}", auth=False)
    assert status == 404
    validate_response("GetConnectionInfo", 404, gone)


def test_the_schema_check_catches_drift() -> None:
    # The validator is only worth something if wire drift fails it.
    good = {"additionalExposedPorts": [], "status": "starting", "roomId": "abc"}
    validate_schema("ConnectionInfoV2", good)
    with pytest.raises(jsonschema.ValidationError):
        validate_schema("ConnectionInfoV2", {**good, "exposedPort": None})
    with pytest.raises(jsonschema.ValidationError):
        validate_schema("ConnectionInfoV2", {**good, "surprise": 1})
    with pytest.raises(jsonschema.ValidationError):
        validate_response("CreateRoom", 201, good)  # no processId
    # The allOf of RoomConnectionData is one closed object: both parts' keys, no others.
    validate_response("CreateRoom", 201, {**good, "processId": "p"})
    with pytest.raises(jsonschema.ValidationError):
        validate_response("CreateRoom", 201, {**good, "processId": "p", "surprise": 1})
    with pytest.raises(jsonschema.ValidationError):
        validate_schema("RoomId", "has/slash")
    room = {
        "currentAllocation": None,
        "status": "destroyed",
        "allocations": [],
        "roomConfig": None,
        "roomId": "abc",
        "appId": "app",
    }
    validate_schema("Room", room)
    with pytest.raises(jsonschema.ValidationError):
        validate_schema("Room", {**room, "roomConfig": 5})


@pytest.mark.parametrize(
    ("params", "body", "status", "message"),
    [
        ({"roomId": "bad/id"}, {"region": "Seattle"}, 400, "roomId"),
        ({"roomId": "x" * 101}, {"region": "Seattle"}, 400, "roomId"),
        (None, {"roomConfig": "x"}, 400, "region"),
        (None, {"region": "Seattle", "roomConfig": "x" * 10_001}, 400, "roomConfig"),
        (None, {"region": "Seattle", "roomConfig": 7}, 400, "roomConfig"),
        (None, {"region": "Atlantis"}, 404, "Region Atlantis"),
    ],
)
async def test_create_refuses_bad_requests(
    raw: Raw,
    slow_fake: FakeHathora,
    params: dict[str, str] | None,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    answer, error = await raw.call("POST", "/create", body=body, params=params)
    assert answer == status
    validate_response("CreateRoom", status, error)
    assert message in error["message"]
    assert slow_fake.rooms_created == 0


async def test_a_taken_room_id_is_refused_with_400(raw: Raw, slow_fake: FakeHathora) -> None:
    params = {"roomId": "match-42"}
    assert (await raw.call("POST", "/create", body={"region": "Tokyo"}, params=params))[0] == 201
    status, error = await raw.call("POST", "/create", body={"region": "Tokyo"}, params=params)
    assert status == 400
    validate_response("CreateRoom", 400, error)
    assert error["message"] == "Room match-42 already exists"
    assert slow_fake.rooms_created == 1


async def test_room_ids_are_global_but_rooms_are_per_app(raw: Raw, slow_fake: FakeHathora) -> None:
    other = slow_fake.add_app()
    status, _ = await raw.call("POST", "/create", body={"region": "Tokyo"}, params={"roomId": "r1"})
    assert status == 201
    other_base = f"{slow_fake.url}/rooms/v2/{other}"
    async with raw.session.get(f"{other_base}/info/r1", headers=raw.auth) as response:
        assert response.status == 404
    async with raw.session.post(
        f"{other_base}/create", params={"roomId": "r1"}, json={"region": "Tokyo"}, headers=raw.auth
    ) as response:
        assert response.status == 400


async def test_only_connection_info_is_open_without_a_token(raw: Raw) -> None:
    status, created = await raw.call("POST", "/create", body={"region": "Dubai"})
    room_id, process_id = created["roomId"], created["processId"]
    assert (await raw.call("GET", f"/connectioninfo/{room_id}", auth=False))[0] == 200
    for method, path, body in [
        ("POST", "/create", {"region": "Dubai"}),
        ("GET", f"/info/{room_id}", None),
        ("GET", f"/list/{process_id}/active", None),
        ("GET", f"/list/{process_id}/inactive", None),
        ("POST", f"/update/{room_id}", {"roomConfig": "x"}),
        ("POST", f"/destroy/{room_id}", None),
    ]:
        status, error = await raw.call(method, path, body=body, auth=False)
        assert status == 401, path
        assert error == {"message": "Invalid or missing bearer token"}


async def test_unknown_rooms_and_processes_are_404(raw: Raw) -> None:
    for operation, method, path in [
        ("GetRoomInfo", "GET", "/info/nope"),
        ("GetConnectionInfo", "GET", "/connectioninfo/nope"),
        ("DestroyRoom", "POST", "/destroy/nope"),
        ("GetActiveRoomsForProcess", "GET", "/list/nope/active"),
        ("GetInactiveRoomsForProcess", "GET", "/list/nope/inactive"),
    ]:
        status, error = await raw.call(method, path)
        assert status == 404, path
        validate_response(operation, 404, error)
    status, _ = await raw.call("POST", "/update/nope", body={"roomConfig": "x"})
    assert status == 404


async def test_destroy_twice_succeeds_but_a_destroyed_room_takes_no_update(raw: Raw) -> None:
    _, created = await raw.call("POST", "/create", body={"region": "London"})
    room_id = created["roomId"]
    assert (await raw.call("POST", f"/destroy/{room_id}"))[0] == 204
    assert (await raw.call("POST", f"/destroy/{room_id}"))[0] == 204
    status, error = await raw.call("POST", f"/update/{room_id}", body={"roomConfig": "x"})
    assert (status, error) == (404, {"message": f"Room {room_id} is destroyed"})
    status, error = await raw.call("POST", f"/update/{room_id}", body={"roomConfig": 1})
    assert status == 400


@pytest.mark.parametrize(
    ("route", "method", "path"),
    [
        ("create_room", "POST", "/create"),
        ("get_room_info", "GET", "/info/{room}"),
        ("get_active_rooms_for_process", "GET", "/list/{process}/active"),
        ("get_inactive_rooms_for_process", "GET", "/list/{process}/inactive"),
        ("destroy_room", "POST", "/destroy/{room}"),
        ("update_room_config", "POST", "/update/{room}"),
        ("get_connection_info", "GET", "/connectioninfo/{room}"),
    ],
)
async def test_faults_reach_every_room_route_by_its_operation_name(
    raw: Raw, slow_fake: FakeHathora, route: str, method: str, path: str
) -> None:
    _, created = await raw.call("POST", "/create", body={"region": "Mumbai"})
    slow_fake.faults.add(route, Fault(status=503, message="injected"))
    target = path.format(room=created["roomId"], process=created["processId"])
    body = {"region": "Mumbai", "roomConfig": "x"} if method == "POST" else None
    status, error = await raw.call(method, target, body=body)
    assert (status, error) == (503, {"message": "injected"})
    assert slow_fake.request_counts[route] == (2 if route == "create_room" else 1)
    # The fault fired once; the route works again.
    status, _ = await raw.call(method, target, body=body)
    assert status < 300


async def test_rooms_fill_preallocated_processes_before_a_new_one_starts(
    slow_fake: FakeHathora, slow_client: HathoraClient, clock: ManualClock
) -> None:
    # Two pre-allocated processes in Seattle, one elsewhere (must not be used).
    warm = [await slow_client.processes.create_process("Seattle") for _ in range(2)]
    elsewhere = await slow_client.processes.create_process("Chicago")
    clock.advance(BOOT)
    for process in [*warm, elsewhere]:
        running = await slow_client.processes.get_process_info(process.process_id)
        assert running.status == "running"
    warm_ids = {p.process_id for p in warm}
    created_before = slow_fake.processes_created

    # 2 processes x 2 slots: four rooms, all instantly active on warm processes.
    rooms = [await slow_client.rooms.create_room("Seattle") for _ in range(4)]
    assert {r.process_id for r in rooms} == warm_ids
    assert all(r.status == "active" and r.exposed_port is not None for r in rooms)
    assert slow_fake.processes_created == created_before
    # Packed: the first process fills up before the second is used.
    assert rooms[0].process_id == rooms[1].process_id != rooms[2].process_id
    for process in warm:
        info = await slow_client.processes.get_process_info(process.process_id)
        assert (info.rooms_allocated, info.rooms_per_process) == (2, 2)
        active = await slow_client.rooms.get_active_rooms_for_process(process.process_id)
        assert len(active) == 2
    chicago = await slow_client.processes.get_process_info(elsewhere.process_id)
    assert chicago.rooms_allocated == 0

    # All full: the fifth room starts a new process and waits for it.
    cold = await slow_client.rooms.create_room("Seattle")
    assert slow_fake.processes_created == created_before + 1
    assert cold.process_id not in warm_ids
    assert cold.status == "starting" and cold.exposed_port is None
    new = await slow_client.processes.get_process_info(cold.process_id)
    assert (new.status, new.region, new.rooms_allocated) == ("starting", "Seattle", 1)

    # A sixth room shares the starting process rather than starting a third.
    sixth = await slow_client.rooms.create_room("Seattle")
    assert sixth.process_id == cold.process_id
    assert slow_fake.processes_created == created_before + 1

    # Freeing a slot on a warm process makes it the first choice again.
    await slow_client.rooms.destroy_room(rooms[0].room_id)
    freed = await slow_client.processes.get_process_info(rooms[0].process_id)
    assert freed.rooms_allocated == 1
    again = await slow_client.rooms.create_room("Seattle")
    assert again.process_id == rooms[0].process_id
    assert again.status == "active"


async def test_stopping_a_process_destroys_its_rooms(
    slow_fake: FakeHathora, slow_client: HathoraClient, clock: ManualClock
) -> None:
    rooms = slow_client.rooms
    first = await rooms.create_room("Sydney")
    second = await rooms.create_room("Sydney")
    assert first.process_id == second.process_id
    clock.advance(BOOT + 1)
    await slow_client.processes.stop_process(first.process_id)

    for room in (first, second):
        with pytest.raises(NotFoundError):
            await rooms.get_connection_info(room.room_id)
        info = await rooms.get_room_info(room.room_id)
        assert info.status == "destroyed"
        assert info.current_allocation is None
        assert info.allocations[0].unscheduled_at is not None
    assert await rooms.get_active_rooms_for_process(first.process_id) == []
    inactive = await rooms.get_inactive_rooms_for_process(first.process_id)
    assert {r.room_id for r in inactive} == {first.room_id, second.room_id}
    stopped = await slow_client.processes.get_process_info(first.process_id)
    assert stopped.rooms_allocated == 0


async def test_a_failed_boot_destroys_the_rooms_waiting_on_it(clock: ManualClock) -> None:
    async with (
        FakeHathora(boot_delay=BOOT, boot_failure_rate=1.0, clock=clock, seed=3) as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client,
    ):
        room = await client.rooms.create_room("Frankfurt")
        assert (await client.rooms.get_connection_info(room.room_id)).status == "starting"
        clock.advance(BOOT)
        with pytest.raises(NotFoundError):
            await client.rooms.get_connection_info(room.room_id)
        assert fake.room(room.room_id)["status"] == "destroyed"
        assert fake.process(room.process_id)["status"] == "failed"


async def test_a_freed_process_is_reaped_only_after_a_full_idle_timeout(
    clock: ManualClock,
) -> None:
    async with (
        FakeHathora(boot_delay=1.0, idle_timeout=30.0, clock=clock, seed=5) as fake,
        HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client,
    ):
        process = await client.processes.create_process("Dallas")
        clock.advance(1.0)
        room = await client.rooms.create_room("Dallas")
        assert room.process_id == process.process_id
        clock.advance(100.0)  # busy: never reaped, however long
        assert (await client.processes.get_process_info(process.process_id)).status == "running"
        await client.rooms.destroy_room(room.room_id)
        clock.advance(29.0)
        idle = await client.processes.get_process_info(process.process_id)
        assert (idle.status, idle.rooms_allocated) == ("running", 0)
        clock.advance(1.0)
        assert (await client.processes.get_process_info(process.process_id)).status == "stopped"
        # A room for Dallas now needs a new process.
        later = await client.rooms.create_room("Dallas")
        assert later.process_id != process.process_id
