"""The RoomsV2 operations, as ``client.rooms``."""

from __future__ import annotations

import json
import re
import secrets
import string
from typing import TYPE_CHECKING, Any

import attrs

from . import _constants as C
from ._convert import decoder
from ._http import Endpoint
from ._paths import segment
from .errors import (
    ApiError,
    HathoraError,
    NotFoundError,
    RoomDestroyedError,
    RoomWaitTimeoutError,
)
from .models import (
    ApiResponse,
    ConnectionInfoV2,
    ExposedPort,
    Region,
    Room,
    RoomConnectionData,
    RoomReadyStatus,
    RoomStatus,
    RoomWithoutAllocations,
    coerce_region,
)
from .waiting import TRANSIENT_ERRORS, bounded_client, check_wait_options

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = ["ActiveRoom", "RoomsApi", "new_room_id"]

# The create is made retry-safe by its room id, fixed before the first attempt:
# a repeated create can only meet its own room, never make a second one.
CREATE_ROOM: Endpoint[RoomConnectionData] = Endpoint(
    "CreateRoom", "POST", "/rooms/v2/{}/create", 201, decoder(RoomConnectionData)
)
GET_ROOM_INFO: Endpoint[Room] = Endpoint(
    "GetRoomInfo", "GET", "/rooms/v2/{}/info/{}", 200, decoder(Room)
)
_decode_room_list = decoder(list[RoomWithoutAllocations])
GET_ACTIVE_ROOMS_FOR_PROCESS: Endpoint[list[RoomWithoutAllocations]] = Endpoint(
    "GetActiveRoomsForProcess", "GET", "/rooms/v2/{}/list/{}/active", 200, _decode_room_list
)
GET_INACTIVE_ROOMS_FOR_PROCESS: Endpoint[list[RoomWithoutAllocations]] = Endpoint(
    "GetInactiveRoomsForProcess", "GET", "/rooms/v2/{}/list/{}/inactive", 200, _decode_room_list
)
# Destroying or configuring twice ends in the same state, so both are safe to retry.
DESTROY_ROOM: Endpoint[None] = Endpoint("DestroyRoom", "POST", "/rooms/v2/{}/destroy/{}", 204, None)
UPDATE_ROOM_CONFIG: Endpoint[None] = Endpoint(
    "UpdateRoomConfig", "POST", "/rooms/v2/{}/update/{}", 204, None
)
GET_CONNECTION_INFO: Endpoint[ConnectionInfoV2] = Endpoint(
    "GetConnectionInfo", "GET", "/rooms/v2/{}/connectioninfo/{}", 200, decoder(ConnectionInfoV2)
)

# How Hathora refuses a room id that is taken (400 per the spec; 409 is the HTTP idiom).
_TAKEN_STATUSES = frozenset({400, 409})

_ROOM_ID = re.compile(r"[A-Za-z0-9_-]+")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_room_id() -> str:
    """A fresh random room id, valid per Hathora's ``RoomId`` schema."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(C.GENERATED_ROOM_ID_LENGTH))


def _room_id(room_id: str) -> str:
    """Validate a room id before any I/O; the pattern leaves nothing to percent-encode."""
    if not isinstance(room_id, str):
        raise TypeError(f"room_id must be a str, not {type(room_id).__name__}")
    if len(room_id) > C.ROOM_ID_MAX_LENGTH or not _ROOM_ID.fullmatch(room_id):
        raise ValueError(
            f"room_id must be 1 to {C.ROOM_ID_MAX_LENGTH} of A-Z, a-z, 0-9, '_' and '-', "
            f"got {room_id[:120]!r}"
        )
    return room_id


def _room_config(room_config: str) -> str:
    if not isinstance(room_config, str):
        raise TypeError(f"room_config must be a str, not {type(room_config).__name__}")
    if len(room_config) > C.ROOM_CONFIG_MAX_LENGTH:
        raise ValueError(
            f"room_config is {len(room_config)} characters; the limit is {C.ROOM_CONFIG_MAX_LENGTH}"
        )
    return room_config


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@attrs.frozen
class ActiveRoom:
    """A room ready for players, as ``wait_for_room`` returns it."""

    room_id: str
    exposed_port: ExposedPort
    additional_exposed_ports: tuple[ExposedPort, ...]

    @property
    def host(self) -> str:
        """Host players connect to."""
        return self.exposed_port.host

    @property
    def port(self) -> int:
        """Port players connect to."""
        return self.exposed_port.port


class RoomsApi:
    """Hathora's RoomsV2 API. Reached as ``client.rooms``.

    Room ids are checked against the spec (1 to 100 of ``[A-Za-z0-9_-]``) before
    any I/O, so a malformed id raises ``ValueError`` instead of a request.
    ``app_id`` defaults to the client's.

    Every call may raise, besides the errors each method names:
    ``UnauthorizedError`` (401: the token was refused), ``RateLimitedError``
    (429) and ``ServerError`` (5xx) once retries are spent,
    ``HathoraConnectionError``, ``HathoraTimeoutError`` (no answer within the
    client's ``timeouts``, in seconds), ``ResponseDecodeError`` (an answer
    that does not fit the model) and ``ClientClosedError``. All derive from
    ``HathoraError``; ``ApiError`` subclasses carry ``status`` and ``message``.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def create_room_with_http_info(
        self,
        region: Region | str,
        *,
        room_config: str | None = None,
        room_id: str | None = None,
        app_id: str | None = None,
    ) -> ApiResponse[RoomConnectionData]:
        """Like ``create_room`` (``POST /rooms/v2/{appId}/create``),
        returning status code (201), headers and data.

        When the room is recovered after a refused retry (see ``create_room``),
        the status code and headers are those of the connection-info read (200).
        """
        # The recovery reads share the create's deadline: the call as a whole is bounded.
        deadline = self._client._options.clock() + self._client.timeouts.total
        app = self._client._app_segment(app_id)
        body: dict[str, Any] = {"region": coerce_region(region).value}
        if room_config is not None:
            body["roomConfig"] = _room_config(room_config)
        chosen = _room_id(room_id) if room_id is not None else new_room_id()
        try:
            response = await self._create(app, chosen, _json(body), app_id, deadline)
        except HathoraError as exc:
            exc.room_id = chosen
            raise
        # Reads may not see it for a while: a 404 for it soon after is lag (see wait_for_room).
        self._client._recent.note("room", chosen)
        return response

    async def _create(
        self, app: str, room_id: str, body: bytes, app_id: str | None, deadline: float
    ) -> ApiResponse[RoomConnectionData]:
        try:
            return await self._client._call(
                CREATE_ROOM, (app,), query=(("roomId", room_id),), json_body=body
            )
        except ApiError as exc:
            # Only a retry can meet a room made by this call's own earlier attempt.
            if exc.status not in _TAKEN_STATUSES or exc.attempts < 2:
                raise
            recovered = await self._recover(room_id, app_id, deadline)
            if recovered is None:
                raise
            return recovered

    async def create_room(
        self,
        region: Region | str,
        *,
        room_config: str | None = None,
        room_id: str | None = None,
        app_id: str | None = None,
    ) -> RoomConnectionData:
        """Create a room in ``region``; returns its connection data and process.

        ``POST /rooms/v2/{appId}/create``. Returns a ``RoomConnectionData``
        (``room_id``, ``process_id``, ``status``, ``exposed_port`` once active).
        Raises ``BadRequestError`` (400: e.g. the id is taken),
        ``PaymentRequiredError`` (402), ``ForbiddenError`` (403),
        ``NotFoundError`` (404: no such app, or a region it cannot use) and
        ``ValueError`` for a malformed region, id or config before any I/O.

        The room lands on a process with a free slot (a pre-allocated one
        answers at once) or on a new process, in which case its status is
        ``starting`` until that process boots: see ``wait_for_room``.
        ``room_config`` is any string up to 10,000 characters.

        The room id is the idempotency key. Without ``room_id`` the client picks
        a random one before the first attempt and sends it on every retry, so
        retries (on 5xx, timeouts, dropped connections) can never make two
        rooms; if a retry is refused because the id is taken, the room made by
        the earlier attempt is looked up and returned (within the same call
        deadline, the client's ``timeouts.total``). A given ``room_id`` that
        is already taken on the first attempt raises the server's error
        (``BadRequestError``). When the call fails, the error's ``room_id`` is
        the id it used: an attempt may still have made the room, so look it up
        (``get_connection_info``) before creating another.
        """
        response = await self.create_room_with_http_info(
            region, room_config=room_config, room_id=room_id, app_id=app_id
        )
        return response.data

    async def _recover(
        self, room_id: str, app_id: str | None, deadline: float
    ) -> ApiResponse[RoomConnectionData] | None:
        """The live room ``room_id`` as a create would have answered, or None.

        The id is taken, so a 404 may be read lag: the reads are tried again
        while the call is within ``READ_AFTER_CREATE_GRACE`` of its start and
        its deadline. None when that deadline leaves no time for a read.
        """
        clock = self._client._options.clock
        # The call started one timeouts.total before its deadline.
        lag_until = deadline - self._client.timeouts.total + C.READ_AFTER_CREATE_GRACE
        while True:
            try:
                rooms = self._before(deadline)
                if rooms is None:
                    return None
                room = await rooms.get_room_info(room_id, app_id=app_id)
                allocation = room.current_allocation
                if allocation is None or room.status == RoomStatus.DESTROYED:
                    return None
                rooms = self._before(deadline)
                if rooms is None:
                    return None
                response = await rooms.get_connection_info_with_http_info(room_id, app_id=app_id)
            except NotFoundError:
                left = min(deadline - C.MIN_BOUNDED_CALL_TIMEOUT, lag_until) - clock()
                if left <= 0:
                    return None
                await self._client._options.sleep(min(C.DEFAULT_ROOM_POLL_INTERVAL, left))
                continue
            info = response.data
            data = RoomConnectionData(
                room_id=info.room_id,
                process_id=allocation.process_id,
                status=info.status,
                additional_exposed_ports=info.additional_exposed_ports,
                exposed_port=info.exposed_port,
            )
            return ApiResponse(response.status_code, response.headers, data)

    def _before(self, deadline: float) -> RoomsApi | None:
        """These operations bounded to end by ``deadline``; None if no call fits."""
        if deadline - self._client._options.clock() < C.MIN_BOUNDED_CALL_TIMEOUT:
            return None
        return RoomsApi(bounded_client(self._client, deadline))

    async def get_room_info_with_http_info(
        self, room_id: str, *, app_id: str | None = None
    ) -> ApiResponse[Room]:
        """Like ``get_room_info`` (``GET /rooms/v2/{appId}/info/{roomId}``),
        returning status code (200), headers and data."""
        app = self._client._app_segment(app_id)
        return await self._client._call(GET_ROOM_INFO, (app, _room_id(room_id)))

    async def get_room_info(self, room_id: str, *, app_id: str | None = None) -> Room:
        """A ``Room``: its status, config, current and past allocations.

        ``GET /rooms/v2/{appId}/info/{roomId}``. Raises ``NotFoundError`` (404:
        no such room or app).
        """
        return (await self.get_room_info_with_http_info(room_id, app_id=app_id)).data

    async def get_active_rooms_for_process_with_http_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ApiResponse[list[RoomWithoutAllocations]]:
        """Like ``get_active_rooms_for_process``, returning status code (200), headers
        and data (``GET /rooms/v2/{appId}/list/{processId}/active``)."""
        app = self._client._app_segment(app_id)
        where = segment(process_id, "process_id")
        return await self._client._call(GET_ACTIVE_ROOMS_FOR_PROCESS, (app, where))

    async def get_active_rooms_for_process(
        self, process_id: str, *, app_id: str | None = None
    ) -> list[RoomWithoutAllocations]:
        """The rooms allocated on a process now, as ``RoomWithoutAllocations``.

        ``GET /rooms/v2/{appId}/list/{processId}/active``. Raises
        ``NotFoundError`` (404: no such process or app).
        """
        response = await self.get_active_rooms_for_process_with_http_info(process_id, app_id=app_id)
        return response.data

    async def get_inactive_rooms_for_process_with_http_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ApiResponse[list[RoomWithoutAllocations]]:
        """Like ``get_inactive_rooms_for_process``, returning status code (200), headers
        and data (``GET /rooms/v2/{appId}/list/{processId}/inactive``)."""
        app = self._client._app_segment(app_id)
        where = segment(process_id, "process_id")
        return await self._client._call(GET_INACTIVE_ROOMS_FOR_PROCESS, (app, where))

    async def get_inactive_rooms_for_process(
        self, process_id: str, *, app_id: str | None = None
    ) -> list[RoomWithoutAllocations]:
        """The rooms that were allocated on a process and no longer are.

        ``GET /rooms/v2/{appId}/list/{processId}/inactive``. Returns
        ``RoomWithoutAllocations``. Raises ``NotFoundError`` (404: no such
        process or app).
        """
        response = await self.get_inactive_rooms_for_process_with_http_info(
            process_id, app_id=app_id
        )
        return response.data

    async def destroy_room_with_http_info(
        self, room_id: str, *, app_id: str | None = None
    ) -> ApiResponse[None]:
        """Like ``destroy_room`` (``POST /rooms/v2/{appId}/destroy/{roomId}``),
        returning status code (204), headers (``data`` is None)."""
        app = self._client._app_segment(app_id)
        return await self._client._call(DESTROY_ROOM, (app, _room_id(room_id)))

    async def destroy_room(self, room_id: str, *, app_id: str | None = None) -> None:
        """Destroy a room, freeing its slot on its process; returns None.

        ``POST /rooms/v2/{appId}/destroy/{roomId}``. Raises ``NotFoundError``
        (404: no such room or app).
        """
        await self.destroy_room_with_http_info(room_id, app_id=app_id)

    async def update_room_config_with_http_info(
        self, room_id: str, room_config: str, *, app_id: str | None = None
    ) -> ApiResponse[None]:
        """Like ``update_room_config`` (``POST /rooms/v2/{appId}/update/{roomId}``),
        returning status code (204), headers (``data`` is None)."""
        app = self._client._app_segment(app_id)
        rid = _room_id(room_id)
        body = _json({"roomConfig": _room_config(room_config)})
        return await self._client._call(UPDATE_ROOM_CONFIG, (app, rid), json_body=body)

    async def update_room_config(
        self, room_id: str, room_config: str, *, app_id: str | None = None
    ) -> None:
        """Replace a room's config (any string up to 10,000 characters); returns None.

        ``POST /rooms/v2/{appId}/update/{roomId}``. Raises ``NotFoundError``
        (404: no such room or app) and ``ValueError`` for a config too long.
        """
        await self.update_room_config_with_http_info(room_id, room_config, app_id=app_id)

    async def get_connection_info_with_http_info(
        self, room_id: str, *, app_id: str | None = None
    ) -> ApiResponse[ConnectionInfoV2]:
        """Like ``get_connection_info`` (``GET /rooms/v2/{appId}/connectioninfo/{roomId}``),
        returning status code (200), headers and data."""
        app = self._client._app_segment(app_id)
        return await self._client._call(GET_CONNECTION_INFO, (app, _room_id(room_id)))

    async def get_connection_info(
        self, room_id: str, *, app_id: str | None = None
    ) -> ConnectionInfoV2:
        """Where to connect to a room. Needs no token: a client built without one works.

        ``GET /rooms/v2/{appId}/connectioninfo/{roomId}``. Returns a
        ``ConnectionInfoV2``; ``exposed_port`` is None while the room is
        ``starting``. Raises ``BadRequestError`` (400), ``PaymentRequiredError``
        (402) and ``NotFoundError`` (404: no such room, or destroyed).
        """
        return (await self.get_connection_info_with_http_info(room_id, app_id=app_id)).data

    async def wait_for_room(
        self,
        room_id: str,
        *,
        timeout: float = C.DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = C.DEFAULT_ROOM_POLL_INTERVAL,
        app_id: str | None = None,
    ) -> ActiveRoom:
        """Poll a room's connection info until it is ``active``; return where to connect.

        Polls ``GET /rooms/v2/{appId}/connectioninfo/{roomId}``; returns an
        ``ActiveRoom`` (``host``, ``port``). Times are in seconds (defaults:
        ``timeout`` 105, ``poll_interval`` 0.5).

        The first poll is immediate (a room on a running process is active at
        once), then one every ``poll_interval`` seconds. Raises
        ``RoomDestroyedError`` when the room disappears (its process failed or
        stopped, or it was destroyed), ``RoomWaitTimeoutError`` once ``timeout``
        seconds pass (the default is a little above Hathora's 100 s
        port-binding deadline), and ``NotFoundError`` for a room that never
        existed. Network errors, 429s and 5xx answers are polled through until
        the deadline. So is a 404 for a room this client (or a sibling) created
        less than ``READ_AFTER_CREATE_GRACE`` (15 s) ago and has not seen yet:
        Hathora's reads can lag behind its creates. Cancelling it stops it at
        once.
        """
        timeout, poll_interval, _ = check_wait_options(timeout, poll_interval, poll_interval)
        self._client._app_segment(app_id)
        rid = _room_id(room_id)
        clock = self._client._options.clock
        deadline = clock() + timeout
        lag_until = self._client._recent.lag_until("room", rid)
        last: ConnectionInfoV2 | None = None
        last_error: HathoraError | None = None
        while True:
            try:
                info = await self._poll(rid, app_id, deadline)
            except NotFoundError as exc:
                if last is None and lag_until is not None and clock() < lag_until:
                    last_error = exc  # made lately by this client: not visible yet
                # Gone after being seen, or still on record as destroyed: it was destroyed.
                elif last is not None or await self._is_destroyed(rid, app_id, deadline):
                    raise RoomDestroyedError(rid) from exc
                else:
                    raise
            except TRANSIENT_ERRORS as exc:
                last_error = exc
            else:
                last, last_error = info, None
                if info.status == RoomReadyStatus.ACTIVE and info.exposed_port is not None:
                    return ActiveRoom(
                        info.room_id, info.exposed_port, info.additional_exposed_ports
                    )
            remaining = deadline - clock()
            if remaining <= 0:
                raise RoomWaitTimeoutError(rid, timeout, last) from last_error
            await self._client._options.sleep(min(poll_interval, remaining))

    async def _poll(self, room_id: str, app_id: str | None, deadline: float) -> ConnectionInfoV2:
        rooms = RoomsApi(bounded_client(self._client, deadline))
        return await rooms.get_connection_info(room_id, app_id=app_id)

    async def _is_destroyed(self, room_id: str, app_id: str | None, deadline: float) -> bool:
        # Needs the token; without one (a player's client) the 404 stands as is.
        # Bounded by the wait like a poll; a read that fails or runs out of time
        # leaves the 404 standing too.
        try:
            room = await RoomsApi(bounded_client(self._client, deadline)).get_room_info(
                room_id, app_id=app_id
            )
        except HathoraError:
            return False
        return room.status == RoomStatus.DESTROYED
