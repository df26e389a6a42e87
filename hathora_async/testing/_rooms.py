"""The fake's rooms: placement on processes with free slots, lives tied to theirs.

A room is placed on a running process of its region with a free slot (the
fullest first, so idle processes stay idle), else on a starting one, else on a
new process; it is ``active`` for connections once its process runs. A room
dies with its process (failed boot, stop, crash): like process lifecycle this
is read from the clock, and ``settle`` records it before any request is served.

Choices where Hathora's documents are silent, kept stable for tests:
- a taken room id is refused with 400 ``Room <id> already exists`` (the spec
  lists no 409 for CreateRoom);
- a destroyed room stays on record: GetRoomInfo returns it with status
  ``destroyed`` and its id stays taken; GetConnectionInfo and UpdateRoomConfig
  answer 404; DestroyRoom answers 204 again, so a retried destroy succeeds;
- rooms are never ``scheduling`` or ``suspended`` (allocation is immediate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from ._state import FakeApp, FakeProcess, World

__all__ = ["PUBLIC_ROUTES", "FakeRoom", "RoomBook", "RoomRoutes"]

# Routes served without a bearer token (Hathora lets game clients poll these).
PUBLIC_ROUTES = frozenset({"get_connection_info"})

ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
ROOM_CONFIG_MAX_LENGTH = 10_000
_ALIVE = ("starting", "running")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

Action = Callable[[web.Request, FakeApp], Awaitable[web.StreamResponse]]


@attrs.define
class FakeAllocation:
    allocation_id: str
    process: FakeProcess
    scheduled: float
    unscheduled: float | None = None


@attrs.define
class FakeRoom:
    room_id: str
    app_id: str
    config: str | None
    allocations: list[FakeAllocation]
    destroyed: float | None = None

    @property
    def created(self) -> float:
        """When the room was created (a clock reading)."""
        return self.allocations[0].scheduled

    @property
    def current(self) -> FakeAllocation | None:
        return None if self.destroyed is not None else self.allocations[-1]


class RoomBook:
    """Every room of the world (ids are global, as on Hathora), and their placement."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.rooms: dict[str, FakeRoom] = {}
        self.created = 0
        self._live: dict[str, FakeRoom] = {}
        self._by_process: dict[str, list[FakeRoom]] = {}

    def settle(self) -> None:
        """Destroy the rooms whose process has died by now, freeing their slots."""
        if not self._live:
            return
        now = self.world.clock()
        for room in list(self._live.values()):
            process = room.allocations[-1].process
            if self.world.status(process, now) not in _ALIVE:
                # A failed boot ends at ready_at; a stop (crash, reaper, API) at stop_at.
                self._end(
                    room, process.stop_at if process.stop_at is not None else process.ready_at
                )

    def new_room_id(self) -> str:
        """A Hathora-style system id: 13 of ``[a-z0-9]``."""
        return "".join(self.world.rng.choice(_ID_ALPHABET) for _ in range(13))

    def find(self, app: FakeApp, room_id: str) -> FakeRoom | None:
        room = self.rooms.get(room_id)
        return room if room is not None and room.app_id == app.app_id else None

    def create(self, app: FakeApp, region: str, room_id: str, config: str | None) -> FakeRoom:
        """Place a new room (the id must be free) and take a slot on its process."""
        process = self._place(app, region)
        now = self.world.clock()
        allocation = FakeAllocation(self.world.new_id(), process, now)
        room = FakeRoom(room_id, app.app_id, config, [allocation])
        self.rooms[room_id] = room
        self._live[room_id] = room
        self._by_process.setdefault(process.process_id, []).append(room)
        self.world.set_rooms_allocated(process, process.rooms_allocated + 1)
        self.created += 1
        return room

    def _place(self, app: FakeApp, region: str) -> FakeProcess:
        now = self.world.clock()
        running: list[FakeProcess] = []
        starting: list[FakeProcess] = []
        for process in app.processes.values():
            if process.region != region or process.rooms_allocated >= process.rooms_per_process:
                continue
            status = self.world.status(process, now)
            if status == "running":
                running.append(process)
            elif status == "starting":
                starting.append(process)
        candidates = running or starting
        if not candidates:
            return self.world.create_process(app, region)
        # The fullest first (the oldest among equals) keeps idle processes idle.
        return max(candidates, key=lambda p: p.rooms_allocated)

    def destroy(self, room: FakeRoom) -> None:
        if room.destroyed is None:
            self._end(room, self.world.clock())

    def _end(self, room: FakeRoom, when: float) -> None:
        allocation = room.allocations[-1]
        allocation.unscheduled = when
        room.destroyed = when
        del self._live[room.room_id]
        process = allocation.process
        self.world.set_rooms_allocated(process, max(0, process.rooms_allocated - 1))

    def on_process(self, process: FakeProcess, *, active: bool) -> list[FakeRoom]:
        """Rooms on ``process`` now (``active``), or that were and are no longer."""
        rooms = self._by_process.get(process.process_id, [])
        return [
            r for r in rooms if (r.current is not None and r.current.process is process) == active
        ]

    # -- wire format -------------------------------------------------------

    def _allocation_json(self, allocation: FakeAllocation) -> dict[str, Any]:
        wall = self.world.wall
        return {
            "unscheduledAt": wall(allocation.unscheduled)
            if allocation.unscheduled is not None
            else None,
            "scheduledAt": wall(allocation.scheduled),
            "processId": allocation.process.process_id,
            "roomAllocationId": allocation.allocation_id,
        }

    def room_json(self, room: FakeRoom, *, allocations: bool = True) -> dict[str, Any]:
        """``Room`` JSON, or ``RoomWithoutAllocations`` without ``allocations``."""
        current = room.current
        data: dict[str, Any] = {
            "currentAllocation": self._allocation_json(current) if current else None,
            "status": "destroyed" if room.destroyed is not None else "active",
            "roomConfig": room.config,
            "roomId": room.room_id,
            "appId": room.app_id,
        }
        if allocations:
            data["allocations"] = [self._allocation_json(a) for a in room.allocations]
        return data

    def connection_json(self, room: FakeRoom, *, with_process: bool = False) -> dict[str, Any]:
        """``ConnectionInfoV2`` JSON of a live room (``RoomConnectionData`` with the process).

        ``exposedPort`` is absent, not null, until the process runs, as on Hathora.
        """
        process = room.allocations[-1].process
        running = self.world.status(process, self.world.clock()) == "running"
        data: dict[str, Any] = {
            "additionalExposedPorts": [],
            "status": "active" if running else "starting",
            "roomId": room.room_id,
        }
        if running:
            data["exposedPort"] = self.world.port_json(process)
        if with_process:
            data["processId"] = process.process_id
        return data


def _respond(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, separators=(",", ":"))
    )


def _refuse(status: int, message: str) -> web.Response:
    return _respond({"message": message}, status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.read())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _config_problem(config: object, required: bool) -> str | None:
    if config is None and not required:
        return None
    if not isinstance(config, str):
        return "roomConfig must be a string"
    if len(config) > ROOM_CONFIG_MAX_LENGTH:
        return f"roomConfig must be at most {ROOM_CONFIG_MAX_LENGTH} characters"
    return None


class RoomRoutes:
    """The RoomsV2 HTTP handlers, over a ``RoomBook``."""

    def __init__(self, book: RoomBook) -> None:
        self.book = book

    def routes(self) -> list[tuple[str, str, str, Action]]:
        """(method, path, route name, action) of every RoomsV2 operation."""
        base = "/rooms/v2/{app_id}"
        return [
            ("POST", f"{base}/create", "create_room", self.create_room),
            ("GET", f"{base}/info/{{room_id}}", "get_room_info", self.get_room_info),
            (
                "GET",
                f"{base}/list/{{process_id}}/active",
                "get_active_rooms_for_process",
                self.get_active_rooms_for_process,
            ),
            (
                "GET",
                f"{base}/list/{{process_id}}/inactive",
                "get_inactive_rooms_for_process",
                self.get_inactive_rooms_for_process,
            ),
            ("POST", f"{base}/destroy/{{room_id}}", "destroy_room", self.destroy_room),
            ("POST", f"{base}/update/{{room_id}}", "update_room_config", self.update_room_config),
            (
                "GET",
                f"{base}/connectioninfo/{{room_id}}",
                "get_connection_info",
                self.get_connection_info,
            ),
        ]

    def _room(
        self, request: web.Request, app: FakeApp, *, read: bool = True
    ) -> FakeRoom | web.Response:
        """The room named by the path; a read does not see it during the lag."""
        room_id = request.match_info["room_id"]
        room = self.book.find(app, room_id)
        if room is None or (read and not self.book.world.visible(room.created)):
            return _refuse(404, f"Room {room_id} not found")
        return room

    async def create_room(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        room_id = request.query.get("roomId")
        if room_id is None:
            room_id = self.book.new_room_id()
        elif not ROOM_ID.fullmatch(room_id):
            return _refuse(400, "roomId must be 1 to 100 of a-z, A-Z, 0-9, '_' and '-'")
        body = await _body(request)
        if body is None or not isinstance(body.get("region"), str):
            return _refuse(400, "body must be a JSON object with a region")
        problem = _config_problem(body.get("roomConfig"), required=False)
        if problem:
            return _refuse(400, problem)
        region = body["region"]
        if region not in self.book.world.regions:
            return _refuse(404, f"Region {region} not found")
        if room_id in self.book.rooms:
            return _refuse(400, f"Room {room_id} already exists")
        room = self.book.create(app, region, room_id, body.get("roomConfig"))
        return _respond(self.book.connection_json(room, with_process=True), 201)

    async def get_room_info(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        room = self._room(request, app)
        if isinstance(room, web.Response):
            return room
        return _respond(self.book.room_json(room))

    async def _rooms_on_process(
        self, request: web.Request, app: FakeApp, *, active: bool
    ) -> web.StreamResponse:
        process_id = request.match_info["process_id"]
        process = app.processes.get(process_id)
        visible = self.book.world.visible
        if process is None or not visible(process.created):
            return _refuse(404, f"Process {process_id} not found")
        rooms = [r for r in self.book.on_process(process, active=active) if visible(r.created)]
        return _respond([self.book.room_json(r, allocations=False) for r in rooms])

    async def get_active_rooms_for_process(
        self, request: web.Request, app: FakeApp
    ) -> web.StreamResponse:
        return await self._rooms_on_process(request, app, active=True)

    async def get_inactive_rooms_for_process(
        self, request: web.Request, app: FakeApp
    ) -> web.StreamResponse:
        return await self._rooms_on_process(request, app, active=False)

    async def destroy_room(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        room = self._room(request, app, read=False)
        if isinstance(room, web.Response):
            return room
        self.book.destroy(room)
        return web.Response(status=204)

    async def update_room_config(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        room = self._room(request, app, read=False)
        if isinstance(room, web.Response):
            return room
        body = await _body(request)
        if body is None:
            return _refuse(400, "body must be a JSON object with a roomConfig")
        problem = _config_problem(body.get("roomConfig"), required=True)
        if problem:
            return _refuse(400, problem)
        if room.destroyed is not None:
            return _refuse(404, f"Room {room.room_id} is destroyed")
        room.config = body["roomConfig"]
        return web.Response(status=204)

    async def get_connection_info(self, request: web.Request, app: FakeApp) -> web.StreamResponse:
        room = self._room(request, app)
        if isinstance(room, web.Response):
            return room
        if room.destroyed is not None:
            return _refuse(404, f"Room {room.room_id} is destroyed")
        return _respond(self.book.connection_json(room))
