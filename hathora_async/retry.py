"""Retry policy and timeouts: plain, frozen configuration objects."""

from __future__ import annotations

import math
import random
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import attrs

from . import _constants as C

__all__ = ["RetryPolicy", "Timeouts", "parse_retry_after"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class Timeouts:
    """Time limits of one call, in seconds.

    ``connect`` bounds opening a connection, ``read`` bounds each wait for data
    from the server, and ``total`` is the deadline of the whole call, every retry
    and every wait between retries included.
    """

    connect: float = attrs.field(default=C.DEFAULT_CONNECT_TIMEOUT, validator=_positive)
    read: float = attrs.field(default=C.DEFAULT_READ_TIMEOUT, validator=_positive)
    total: float = attrs.field(default=C.DEFAULT_TOTAL_TIMEOUT, validator=_positive)

    @classmethod
    def coerce(cls, value: Timeouts | float) -> Timeouts:
        """A number means the whole-call deadline; connect and read fit inside it."""
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or Timeouts, not {value!r}")
        total = float(value)
        return cls(
            connect=min(C.DEFAULT_CONNECT_TIMEOUT, total),
            read=min(C.DEFAULT_READ_TIMEOUT, total),
            total=total,
        )


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before trying a call again.

    ``attempts`` counts every try, the first included (1 means no retry). The
    wait before retry *n* is drawn uniformly from ``[0, min(max_delay,
    initial_delay * multiplier ** (n - 1))]`` ("full jitter"), or is that upper
    bound itself when ``jitter`` is False. A ``Retry-After`` from the server is
    honoured instead when it is at most ``max_retry_after``; a longer one, or one
    past the call's deadline, ends the call at once with the error (its
    ``retry_after`` set) instead of sleeping.
    """

    attempts: int = attrs.field(default=C.DEFAULT_RETRY_ATTEMPTS)
    initial_delay: float = attrs.field(
        default=C.DEFAULT_RETRY_INITIAL_DELAY, validator=_non_negative
    )
    multiplier: float = attrs.field(default=C.DEFAULT_RETRY_MULTIPLIER, validator=_positive)
    max_delay: float = attrs.field(default=C.DEFAULT_RETRY_MAX_DELAY, validator=_non_negative)
    max_retry_after: float = attrs.field(default=C.DEFAULT_RETRY_AFTER_CAP, validator=_non_negative)
    jitter: bool = True

    @attempts.validator
    def _check_attempts(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"attempts must be an int >= 1, got {value!r}")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry_number`` (1 for the first retry)."""
        try:
            growth = self.multiplier ** (retry_number - 1)
        except OverflowError:  # thousands of attempts: the cap rules long before
            growth = math.inf
        bound = min(self.max_delay, self.initial_delay * growth)
        if not self.jitter:
            return bound
        return (rng or random).uniform(0.0, bound)


# delta-seconds, extended to a decimal ("1.5"), as servers and gateways send it.
_DELAY_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when it says nothing usable.

    Accepts delta-seconds, a non-negative decimal (``1.5``) or an HTTP date (a
    date in the past means 0). Negative, NaN, infinite and malformed values are
    ignored (None): the retry policy's own backoff applies.
    """
    if not value:
        return None
    text = value.strip()
    # ASCII digits only: str.isdigit and float() also accept "²", "nan" and "inf".
    if _DELAY_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())
