"""The fake's in-memory world: apps and processes living on a clock.

Lifecycle is computed from the clock when asked, not advanced by timers, so a
``ManualClock`` moves every process at once and tests need no sleeping.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

__all__ = ["REGIONS", "FakeProcess", "FakeApp", "World"]

REGIONS = (
    "Seattle",
    "Los_Angeles",
    "Washington_DC",
    "Chicago",
    "London",
    "Frankfurt",
    "Mumbai",
    "Singapore",
    "Tokyo",
    "Sydney",
    "Sao_Paulo",
    "Dallas",
    "Johannesburg",
    "Dubai",
)

Delay = float | tuple[float, float]


def sample(delay: Delay, rng: random.Random) -> float:
    """A fixed delay, or one drawn uniformly from ``(low, high)``."""
    if isinstance(delay, tuple):
        low, high = delay
        return rng.uniform(low, high)
    return float(delay)


@attrs.define
class FakeProcess:
    """One fake process. Times are clock readings (seconds)."""

    process_id: str
    app_id: str
    deployment_id: int
    region: str
    rooms_per_process: int
    created: float
    ready_at: float
    boot_fails: bool
    host: str
    port: int
    transport_type: str
    rooms_allocated: int = 0
    # When the process stopped being busy (rooms went to 0); reaping counts from here.
    idle_since: float | None = None
    stop_at: float | None = None

    def settle(self, now: float, idle_timeout: float | None) -> None:
        """Record an idle reaping that has come due by ``now``."""
        if self.stop_at is not None or self.boot_fails or idle_timeout is None:
            return
        if self.rooms_allocated == 0:
            since = max(self.ready_at, self.idle_since if self.idle_since is not None else 0.0)
            if now >= since + idle_timeout:
                self.stop_at = since + idle_timeout

    def status(self, now: float, stop_delay: float) -> str:
        if self.stop_at is not None and now >= self.stop_at:
            return "stopped" if now >= self.stop_at + stop_delay else "stopping"
        if now < self.ready_at:
            return "starting"
        return "failed" if self.boot_fails else "running"


@attrs.define
class FakeApp:
    app_id: str
    deployment_id: int = 1
    processes: dict[str, FakeProcess] = attrs.Factory(dict)


class World:
    """Apps, tokens and processes, with the lifecycle settings of the fake."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        boot_delay: Delay,
        boot_failure_rate: float,
        stop_delay: float,
        idle_timeout: float | None,
        rooms_per_process: int,
        transport_type: str,
        exposed_host: str,
        regions: tuple[str, ...],
        seed: int | None,
        read_after_create_lag: float = 0.0,
        clock_offset: float = 0.0,
    ) -> None:
        self.clock = clock
        self.read_after_create_lag = read_after_create_lag
        self.clock_offset = clock_offset
        self.boot_delay = boot_delay
        self.boot_failure_rate = boot_failure_rate
        self.stop_delay = stop_delay
        self.idle_timeout = idle_timeout
        self.rooms_per_process = rooms_per_process
        self.transport_type = transport_type
        self.exposed_host = exposed_host
        self.regions = regions
        self.rng = random.Random(seed)
        self.apps: dict[str, FakeApp] = {}
        self.tokens: set[str] = set()
        self.processes_created = 0
        self._next_port = 30000
        self._epoch = datetime.now(timezone.utc)
        self._t0 = clock()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def wall_time(self, t: float) -> datetime:
        """The clock reading ``t`` on the fake's wall clock (``clock_offset`` applied)."""
        return self._epoch + timedelta(seconds=t - self._t0 + self.clock_offset)

    def wall(self, t: float) -> str:
        """The clock reading ``t`` as an RFC 3339 UTC timestamp."""
        return self.wall_time(t).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def visible(self, created: float) -> bool:
        """Whether reads see a thing created at clock reading ``created`` yet."""
        return self.clock() - created >= self.read_after_create_lag

    def add_app(self, app_id: str | None = None) -> str:
        app_id = app_id or f"app-{self.new_id()}"
        self.apps.setdefault(app_id, FakeApp(app_id))
        return app_id

    def add_token(self, token: str | None = None) -> str:
        token = token or f"fake-token-{self.new_id()}"
        self.tokens.add(token)
        return token

    def create_process(self, app: FakeApp, region: str) -> FakeProcess:
        now = self.clock()
        self._next_port += 1
        process = FakeProcess(
            process_id=self.new_id(),
            app_id=app.app_id,
            deployment_id=app.deployment_id,
            region=region,
            rooms_per_process=self.rooms_per_process,
            created=now,
            ready_at=now + sample(self.boot_delay, self.rng),
            boot_fails=self.rng.random() < self.boot_failure_rate,
            host=self.exposed_host,
            port=self._next_port,
            transport_type=self.transport_type,
        )
        app.processes[process.process_id] = process
        self.processes_created += 1
        return process

    def stop_process(self, process: FakeProcess) -> None:
        now = self.clock()
        process.settle(now, self.idle_timeout)
        if process.stop_at is None:
            process.stop_at = now

    def set_rooms_allocated(self, process: FakeProcess, rooms: int) -> None:
        now = self.clock()
        process.settle(now, self.idle_timeout)
        if rooms == 0 and process.rooms_allocated != 0:
            process.idle_since = now
        process.rooms_allocated = rooms

    def status(self, process: FakeProcess, now: float) -> str:
        """The process's status at ``now``, an idle reaping come due recorded first."""
        process.settle(now, self.idle_timeout)
        return process.status(now, self.stop_delay)

    @staticmethod
    def port_json(process: FakeProcess) -> dict[str, Any]:
        """The process's default port as Hathora's ``ExposedPort`` JSON object."""
        return {
            "transportType": process.transport_type,
            "port": process.port,
            "host": process.host,
            "name": "default",
        }

    def render(self, process: FakeProcess) -> dict[str, Any]:
        """The process as Hathora's ``ProcessV2`` JSON object: every key, always."""
        now = self.clock()
        status = self.status(process, now)
        started = process.ready_at if not process.boot_fails and now >= process.ready_at else None
        if process.stop_at is not None and process.stop_at < process.ready_at:
            started = None
        stopping_at = process.stop_at if status in ("stopping", "stopped") else None
        terminated: float | None = None
        if status == "stopped" and process.stop_at is not None:
            terminated = process.stop_at + self.stop_delay
        elif status == "failed":
            terminated = process.ready_at
        port = None
        if status in ("running", "stopping") and started is not None:
            port = self.port_json(process)
        return {
            "status": status,
            "roomsAllocated": process.rooms_allocated,
            "terminatedAt": self.wall(terminated) if terminated is not None else None,
            "stoppingAt": self.wall(stopping_at) if stopping_at is not None else None,
            "startedAt": self.wall(started) if started is not None else None,
            "createdAt": self.wall(process.created),
            "roomsPerProcess": process.rooms_per_process,
            "additionalExposedPorts": [],
            "exposedPort": port,
            "region": process.region,
            "processId": process.process_id,
            "deploymentId": process.deployment_id,
            "appId": process.app_id,
        }
