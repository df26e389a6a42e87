"""Path parameters as URL segments that can never change the route."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

__all__ = ["segment"]


@lru_cache(maxsize=1024)
def _quote(value: str) -> str:
    # Ids repeat from call to call (the app, a game server's own process), and a
    # cache hit costs a tenth of quoting again. quote() always returns a plain
    # str, whatever str subclass it was given.
    return quote(value, safe="")


def segment(value: str, name: str) -> str:
    """Percent-encode ``value`` as exactly one path segment.

    Everything but unreserved characters is encoded, so ``/``, ``?``, ``#`` and
    ``%`` stay inside the segment. Empty, ``.`` and ``..`` would be dropped or
    resolved by servers and proxies, so they are refused before any I/O.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value in ("", ".", ".."):
        raise ValueError(f"{name} must not be empty, '.' or '..', got {value!r}")
    return _quote(value)
