"""Path parameters as URL segments that can never change the route."""

from __future__ import annotations

from urllib.parse import quote

from .models import Region, coerce_region

__all__ = ["segment", "region_segment"]

# Ids already checked and encoded. They repeat from call to call (the app, a
# game server's own process), and a lookup costs a fraction of checking and
# quoting again. Bounded: cleared when full.
_ENCODED: dict[str, str] = {}
_MAX_ENCODED = 1024


def segment(value: str, name: str) -> str:
    """Percent-encode ``value`` as exactly one path segment.

    Everything but unreserved characters is encoded, so ``/``, ``?``, ``#`` and
    ``%`` stay inside the segment. Empty, ``.`` and ``..`` would be dropped or
    resolved by servers and proxies, so they are refused before any I/O.
    """
    exact = type(value) is str
    if exact:
        known = _ENCODED.get(value)
        if known is not None:
            return known
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value in ("", ".", ".."):
        raise ValueError(f"{name} must not be empty, '.' or '..', got {value!r}")
    encoded = quote(value, safe="")  # always a plain str, even for a str subclass
    if exact:
        # Only exact strs are kept: a subclass may compare equal yet mean otherwise.
        if len(_ENCODED) >= _MAX_ENCODED:
            _ENCODED.clear()
        _ENCODED[value] = encoded
    return encoded


# Region names already checked and encoded; a handful in practice.
_REGIONS: dict[str, str] = {}
_MAX_REGIONS = 256


def region_segment(region: Region | str) -> str:
    """``region`` checked as ``coerce_region`` does and encoded as one path segment."""
    cacheable = type(region) is str or type(region) is Region
    if cacheable:
        known = _REGIONS.get(region)
        if known is not None:
            return known
    encoded = segment(coerce_region(region).value, "region")
    # A Region and its name are equal and hash alike: one entry serves both.
    if cacheable and len(_REGIONS) < _MAX_REGIONS:
        _REGIONS[region] = encoded
    return encoded
