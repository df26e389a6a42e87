"""The fake's gateway rate limit: a token bucket per bearer token, answering 429."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["GatewayLimit"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GatewayLimit:
    """What an API gateway in front of Hathora does when an app sends too fast.

    Each bearer token (the whole ``Authorization`` header, so a missing or
    wrong one is limited too, as a gateway would) has a bucket of ``burst``
    requests that refills at ``rate`` requests per second. A request finding
    its bucket empty is answered ``429`` with ``{"message": ...}`` and a
    ``Retry-After`` of ``retry_after`` whole seconds (no header when None),
    before it reaches the API. ``clock`` is the fake's clock.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        retry_after: int | None,
        clock: Callable[[], float],
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ValueError(f"rate_limit must be a number > 0, got {rate!r}")
        if not math.isfinite(rate):
            raise ValueError(f"rate_limit must be finite, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"rate_burst must be an int >= 1, got {burst!r}")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise ValueError(f"retry_after must be an int >= 0 or None, got {retry_after!r}")
        self.rate = float(rate)
        self.burst = burst
        self.retry_after = retry_after
        self._clock = clock
        # token -> (tokens left, when last refilled)
        self._buckets: dict[str, tuple[float, float]] = {}
        self.refused = 0
        """Requests answered 429 so far."""
        self.admitted = 0
        """Requests let through so far."""
        body = json.dumps({"message": "Too many requests: rate limit exceeded"}).encode()
        self._body = body

    def admit(self, key: str) -> bool:
        """Take a token from ``key``'s bucket; False when it is empty."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0 - 1e-9:  # a token due now is there, float rounding or not
            self._buckets[key] = (tokens - 1.0, now)
            self.admitted += 1
            return True
        self._buckets[key] = (tokens, now)
        self.refused += 1
        return False

    def refusal(self) -> web.Response:
        """The 429 answer."""
        response = web.Response(body=self._body, status=429, content_type="application/json")
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """An aiohttp middleware answering 429 in front of every route."""
        if self.admit(request.headers.get("Authorization", "")):
            return await handler(request)
        return self.refusal()
