"""Fault injection for the fake: scripted (fire N times) and seeded random faults."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Literal

import attrs

__all__ = ["Fault", "FaultPlan"]


@attrs.frozen
class Fault:
    """What goes wrong with one request.

    - ``status``: answer with this error status (and ``{"message": ...}``) without
      acting; ``retry_after`` adds a ``Retry-After`` header (seconds or HTTP date).
      With ``acted``, the server acts first (a gateway's 502 to a create that
      its server made).
    - ``latency``: seconds added before anything else happens.
    - ``drop``: ``"before"`` closes the connection before the server acts,
      ``"after"`` once it has acted (a create then has made its process).
    - ``body``: ``"malformed"`` sends the success status with a body that is not
      JSON; ``"truncated"`` sends part of the real body and closes. Both act first.
    """

    status: int | None = None
    retry_after: str | None = None
    latency: float = 0.0
    drop: Literal["before", "after"] | None = None
    body: Literal["malformed", "truncated"] | None = None
    message: str = "injected fault"
    acted: bool = False

    @property
    def acts(self) -> bool:
        """Whether the server carries the request out under this fault."""
        return (self.status is None or self.acted) and self.drop != "before"


class FaultPlan:
    """The faults waiting for each route (route names are operation names in snake_case)."""

    def __init__(self) -> None:
        self._scripted: dict[str, deque[Fault]] = {}
        self._random: dict[str | None, tuple[float, tuple[Fault, ...], random.Random]] = {}
        # The routes a server serves; when known, a misspelt route is refused
        # rather than silently never firing (a fault test that tests nothing).
        self.routes: set[str] = set()

    def _check(self, route: str | None) -> None:
        if route is not None and self.routes and route not in self.routes:
            known = ", ".join(sorted(self.routes))
            raise ValueError(f"unknown route {route!r}; known routes: {known}")

    def add(self, route: str, fault: Fault, *, times: int = 1) -> None:
        """Make the next ``times`` requests on ``route`` meet ``fault``."""
        self._check(route)
        if times < 1:
            raise ValueError("times must be >= 1")
        self._scripted.setdefault(route, deque()).extend([fault] * times)

    def add_random(
        self,
        route: str | None,
        rate: float,
        faults: Sequence[Fault],
        *,
        seed: int = 0,
    ) -> None:
        """From now on, each request on ``route`` (None: any) meets one of ``faults``
        with probability ``rate``, drawn from a generator seeded with ``seed``."""
        self._check(route)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if not faults:
            raise ValueError("faults must not be empty")
        self._random[route] = (rate, tuple(faults), random.Random(seed))

    def clear(self) -> None:
        """Remove every scripted and random fault."""
        self._scripted.clear()
        self._random.clear()

    def next(self, route: str) -> Fault | None:
        """The fault for the request now arriving on ``route``, if any."""
        queue = self._scripted.get(route)
        if queue:
            return queue.popleft()
        for key in (route, None):
            entry = self._random.get(key)
            if entry is not None:
                rate, faults, rng = entry
                if rng.random() < rate:
                    return rng.choice(faults)
                return None
        return None
