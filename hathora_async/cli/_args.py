"""argparse value types shared by every command line of the package (the fake's too).

Each raises ``argparse.ArgumentTypeError``, so a bad value is a usage error
(exit status 2) with one line saying why, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Container, Sequence
from typing import TypeVar

from ..models import OpenEnum, ProcessStatus, Region, coerce_region
from ._interrupt import PROG

__all__ = [
    "number",
    "count",
    "port",
    "region",
    "status",
    "known_regions",
    "plan_item",
    "token",
    "attach_values",
]

_E = TypeVar("_E", bound=OpenEnum)


def number(
    *, minimum: float | None = 0.0, maximum: float | None = None, allow_minimum: bool = True
) -> Callable[[str], float]:
    """A finite float in a range (None: unbounded): ``inf``, ``nan`` and values out of
    range are refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value < minimum or (value == minimum and not allow_minimum)):
            relation = ">=" if allow_minimum else ">"
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum:g}, got {text!r}")
        return value

    return parse


def count(*, minimum: int = 1) -> Callable[[str], int]:
    """An integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
        return value

    return parse


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    value = count(minimum=0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}")
    return value


def token(text: str) -> str:
    """A bearer token: not empty, and no whitespace or control characters (an HTTP
    header could not carry them as the client sends them)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError("must not contain whitespace or control characters")
    return text


def attach_values(argv: Sequence[str], flags: Container[str]) -> list[str]:
    """``--flag -1e3`` as ``--flag=-1e3`` for each of ``flags`` followed by a number.

    argparse reads an argument that starts with ``-`` as an option unless it
    is a plain negative number (``-5``, ``-0.5``): ``-1e12`` would be
    "expected one argument". Written ``--flag=-1e12`` it is a value.
    """
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--":
            out.extend([item, *items])
            break
        if item in flags:
            value = next(items, None)
            if value is not None and value.startswith("-") and _is_number(value):
                out.append(f"{item}={value}")
                continue
            out.append(item)
            if value is not None:
                out.append(value)
            continue
        out.append(item)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _squash(name: str) -> str:
    return "".join(c for c in name.casefold() if c.isalnum())


def _known(kind: type[_E], name: str) -> _E | None:
    """The known member ``name`` spells, ignoring case, spaces, ``_`` and ``-``."""
    wanted = _squash(name)
    return next((m for m in kind if _squash(m.value) == wanted), None)


def _warn_unknown(what: str, name: str, kind: type[OpenEnum]) -> None:
    # Hathora adds values over time and the library accepts them: a warning, not an error.
    known = ", ".join(m.value for m in kind)
    print(f"{PROG}: warning: unknown {what} {name!r}, sent as is; known: {known}", file=sys.stderr)


def _region(text: str) -> Region:
    """A region name: a known one (any case), else a well-formed newer one, unwarned."""
    name = text.strip()
    try:
        value = coerce_region(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value if value.is_known else _known(Region, name) or value


def region(text: str) -> Region:
    """A region name: a known one, matched ignoring case (``seattle``: ``Seattle``), or a
    well-formed newer one (Hathora adds regions), accepted with a warning on stderr."""
    value = _region(text)
    if not value.is_known:
        _warn_unknown("region", value.value, Region)
    return value


def status(text: str) -> str:
    """A process status: a known one, matched ignoring case, else sent with a warning."""
    name = text.strip()
    known = _known(ProcessStatus, name)
    if known is not None:
        return known.value
    if not name:
        raise argparse.ArgumentTypeError("empty status")
    _warn_unknown("status", name, ProcessStatus)
    return name


def known_regions(text: str) -> tuple[Region, ...]:
    """A comma-separated list of regions this client knows (any case), without repeats."""
    regions = tuple(dict.fromkeys(_region(name) for name in text.split(",")))
    unknown = [r.value for r in regions if not r.is_known]
    if unknown:
        known = ", ".join(r.value for r in Region)
        raise argparse.ArgumentTypeError(f"unknown region(s) {', '.join(unknown)}; known: {known}")
    return regions


def plan_item(text: str) -> tuple[Region, int]:
    """``REGION=N``: how many processes one region gets."""
    name, equals, amount = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected REGION=N (e.g. Seattle=3), got {text!r}")
    return region(name), count(minimum=0)(amount.strip())
