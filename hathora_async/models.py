"""Typed models of Hathora's wire schemas (snake_case here, camelCase on the wire)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Generic, TypeVar

import attrs

__all__ = [
    "OpenEnum",
    "Region",
    "ProcessStatus",
    "TransportType",
    "ExposedPort",
    "ProcessV2",
    "ApiResponse",
    "RoomStatus",
    "RoomReadyStatus",
    "RoomAllocation",
    "Room",
    "RoomWithoutAllocations",
    "ConnectionInfoV2",
    "RoomConnectionData",
]

T = TypeVar("T")

_OpenEnumT = TypeVar("_OpenEnumT", bound="OpenEnum")


class OpenEnum(str, enum.Enum):
    """A string enum that also accepts values it does not know.

    Hathora adds enum values over time (regions, statuses). ``Region("Atlantis")``
    returns a pseudo-member whose ``value`` is the raw string, so decoding a newer
    server's answer never fails; ``is_known`` tells the two apart. Pseudo-members
    compare equal to their string and to each other.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenEnum | None:
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """True when this value is one this version of the client was built with."""
        # By identity: a pseudo-member spelled like a member's name ("SEATTLE") is not it.
        return type(self).__members__.get(self._name_) is self

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class Region(OpenEnum):
    """A Hathora region. Unknown (newer) region names are accepted as pseudo-members."""

    SEATTLE = "Seattle"
    LOS_ANGELES = "Los_Angeles"
    WASHINGTON_DC = "Washington_DC"
    CHICAGO = "Chicago"
    LONDON = "London"
    FRANKFURT = "Frankfurt"
    MUMBAI = "Mumbai"
    SINGAPORE = "Singapore"
    TOKYO = "Tokyo"
    SYDNEY = "Sydney"
    SAO_PAULO = "Sao_Paulo"
    DALLAS = "Dallas"
    JOHANNESBURG = "Johannesburg"
    DUBAI = "Dubai"


class ProcessStatus(OpenEnum):
    """Lifecycle status of a process."""

    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class TransportType(OpenEnum):
    """Protocol of an exposed port."""

    TCP = "tcp"
    UDP = "udp"
    TLS = "tls"


# A region name as it may appear in a URL path: what Hathora's names look like.
_REGION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def coerce_region(region: Region | str) -> Region:
    """Validate a caller's region before any I/O.

    Known names, ``Region`` members and well-formed newer names are accepted;
    anything that is not a plausible region name raises ``ValueError``.
    """
    if not isinstance(region, str):
        raise TypeError(f"region must be a Region or str, not {type(region).__name__}")
    value = region.value if isinstance(region, Region) else region
    if not _REGION_NAME.fullmatch(value):
        raise ValueError(f"invalid region name {value!r}")
    return Region(value)


@attrs.frozen
class ExposedPort:
    """Connection details of a port a process exposes."""

    transport_type: TransportType
    port: int
    host: str
    name: str


@attrs.frozen
class ProcessV2:
    """A runtime instance of a game server (Hathora ``ProcessV2``).

    Timestamps are timezone-aware. ``exposed_port`` is None until the process
    has bound its port; ``additional_exposed_ports`` holds at most two more.
    """

    process_id: str
    app_id: str
    deployment_id: int
    region: Region
    status: ProcessStatus
    rooms_allocated: int
    rooms_per_process: int
    created_at: datetime
    started_at: datetime | None
    stopping_at: datetime | None
    terminated_at: datetime | None
    exposed_port: ExposedPort | None
    additional_exposed_ports: tuple[ExposedPort, ...]


@attrs.frozen
class ApiResponse(Generic[T]):
    """The full answer of a ``*_with_http_info`` call."""

    status_code: int
    headers: Mapping[str, str]
    data: T


class RoomStatus(OpenEnum):
    """Allocation status of a room (``Room.status``)."""

    SCHEDULING = "scheduling"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DESTROYED = "destroyed"


class RoomReadyStatus(OpenEnum):
    """Whether a room accepts connections yet (``ConnectionInfoV2.status``)."""

    STARTING = "starting"
    ACTIVE = "active"


@attrs.frozen
class RoomAllocation:
    """One placement of a room on a process; ``unscheduled_at`` is None while it lasts."""

    room_allocation_id: str
    process_id: str
    scheduled_at: datetime
    unscheduled_at: datetime | None


@attrs.frozen
class Room:
    """A game session or match, with its current and past allocations."""

    room_id: str
    app_id: str
    status: RoomStatus
    room_config: str | None
    current_allocation: RoomAllocation | None
    allocations: tuple[RoomAllocation, ...]


@attrs.frozen
class RoomWithoutAllocations:
    """A room as the per-process room lists return it (no allocation history)."""

    room_id: str
    app_id: str
    status: RoomStatus
    room_config: str | None
    current_allocation: RoomAllocation | None


@attrs.frozen
class ConnectionInfoV2:
    """Where players connect to a room.

    ``exposed_port`` is None (absent on the wire) until ``status`` is ``active``.
    """

    room_id: str
    status: RoomReadyStatus
    additional_exposed_ports: tuple[ExposedPort, ...]
    exposed_port: ExposedPort | None = None


@attrs.frozen
class RoomConnectionData:
    """The answer of ``create_room``: connection info plus the hosting process."""

    room_id: str
    process_id: str
    status: RoomReadyStatus
    additional_exposed_ports: tuple[ExposedPort, ...]
    exposed_port: ExposedPort | None = None
