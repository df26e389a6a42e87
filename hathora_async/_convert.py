"""Wire (camelCase JSON) to model conversion, built once at import.

Two cattrs converters share one set of strict hooks. The fast one runs without
detailed validation, and structures attrs models with functions generated once
per class that check those same rules inline (``_structgen``); only when it
fails does the explaining one decode the same data again, to say precisely what
was wrong (path and expected type).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar, get_args

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _constants as C
from ._structgen import _sequence_container, fast_attrs_hook
from .models import OpenEnum

T = TypeVar("T")

__all__ = [
    "camel",
    "loads",
    "structure",
    "decode",
    "DecodeFailure",
    "created_id",
    "unstructure",
]


_json_decoder = json.JSONDecoder()
# The C scanner the decoder runs (an attribute typeshed does not declare).
_scan_json: Callable[[str, int], tuple[Any, int]] = getattr(_json_decoder, "scan_once")  # noqa: B009


def _loads_json(body: bytes) -> Any:
    """``json.loads(body)``, without its per-call overhead for the usual answer.

    The usual answer is a UTF-8 object or array with nothing after it. For it,
    ``json.loads`` would detect the encoding, decode, and run this same scanner
    from the first character; anything else (a BOM, UTF-16 or 32, invalid
    UTF-8, another start, trailing text, an error) takes ``json``'s own path,
    so results and error messages are the same.
    """
    if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return json.loads(body)
        try:
            data, end = _scan_json(text, 0)
        except StopIteration:
            return _json_decoder.decode(text)
        if end == len(text):
            return data
        return _json_decoder.decode(text)
    return json.loads(body)


# The first orjson that limits nesting when parsing (1024 levels).
_ORJSON_SAFE = (3, 9, 15)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _orjson_loads() -> Callable[[bytes], Any] | None:
    """A parser using orjson, when the optional ``orjson`` extra is installed."""
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return None
    if _version(getattr(orjson, "__version__", "0")) < _ORJSON_SAFE:
        # Older orjson has no nesting limit: a deep body crashes the process
        # (CVE-2024-27454). The standard library raises RecursionError instead.
        return None
    fast = orjson.loads

    def loads_with_orjson(body: bytes) -> Any:
        try:
            return fast(body)
        except ValueError:
            # orjson refuses a few bodies the standard library reads (NaN, UTF-16,
            # a BOM): json has the last word, so neither results nor error
            # messages depend on the extra. (It also reads integers beyond 64
            # bits as floats; ``decoder`` re-reads with json when that matters.)
            return json.loads(body)

    return loads_with_orjson


# orjson, when installed, is faster still (most on long lists); the answers are the same.
loads: Callable[[bytes], Any] = _orjson_loads() or _loads_json


class DecodeFailure(Exception):
    """Raised by ``decode``; carries a readable description of the problem."""


def camel(name: str) -> str:
    """``rooms_per_process`` -> ``roomsPerProcess``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _structure_str(value: Any, _: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: Any, _: Any) -> int:
    # bool is an int subclass in Python but not an integer in JSON.
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _structure_bool(value: Any, _: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


# Python 3.11's fromisoformat reads RFC 3339 as sent ("Z", any fraction length).
_READS_RFC3339 = sys.version_info >= (3, 11)


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime (naive means UTC)."""
    if _READS_RFC3339:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = _parse_datetime_compat(value)
    else:
        parsed = _parse_datetime_compat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _parse_datetime_compat(value: str) -> datetime:
    text = value
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _parse_datetime_slow(text)


def _parse_datetime_slow(text: str) -> datetime:
    # Python 3.10's fromisoformat accepts only 3 or 6 fractional digits.
    date_part, dot, rest = text.partition(".")
    if not dot:
        raise ValueError(f"invalid timestamp {text!r}")
    digits = rest
    offset = ""
    for sign in ("+", "-"):
        if sign in rest:
            digits, _, tail = rest.partition(sign)
            offset = sign + tail
            break
    if not digits.isdigit():
        raise ValueError(f"invalid timestamp {text!r}")
    return datetime.fromisoformat(f"{date_part}.{digits[:6].ljust(6, '0')}{offset}")


def _structure_datetime(value: Any, _: Any) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an RFC 3339 timestamp string, got {type(value).__name__}")
    return parse_datetime(value)


def _structure_open_enum(value: Any, cls: type[OpenEnum]) -> OpenEnum:
    if type(value) is not str:
        raise TypeError(f"expected a string for {cls.__name__}, got {type(value).__name__}")
    return cls(value)


def _sequence_hook(
    converter: cattrs.Converter, tp: Any, container: type[Any], fast: cattrs.Converter | None
) -> Callable[[Any, Any], Any]:
    item_hook = converter.get_structure_hook(get_args(tp)[0])
    item_type = get_args(tp)[0]
    fast_item = fast.get_structure_hook(item_type) if fast is not None else item_hook

    def structure_sequence(value: Any, _: Any) -> Any:
        # Strict: a JSON object or string must not be iterated as if it were an array.
        if type(value) is not list:
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return container([item_hook(item, item_type) for item in value])

    def explain_sequence(value: Any, _: Any) -> Any:
        # As above, but says which item failed, so the path reads `$.ports[1].port`.
        # Bounded: valid items take the fast path, and the first few failures
        # are explained, not every one of a hostile server's 300,000.
        if type(value) is not list:
            raise TypeError(f"expected an array, got {type(value).__name__}")
        errors: list[Exception] = []
        results = []
        for index, item in enumerate(value):
            try:
                results.append(fast_item(item, item_type))
                continue
            except Exception:  # explained by the detailed hook just below
                pass
            try:
                results.append(item_hook(item, item_type))
            except Exception as exc:  # collected and reported
                note = IterableValidationNote(f"Structuring item @ index {index}", index, item_type)
                # Exception notes are 3.11+; cattrs reads the attribute on 3.10 too.
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
                errors.append(exc)
                if len(errors) >= C.MAX_EXPLAINED_PROBLEMS:
                    break
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return container(results)

    return explain_sequence if fast is not None else structure_sequence


def _attrs_hook(converter: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
    structure_fn = make_dict_structure_fn(cls, converter, **renames)  # type: ignore[arg-type]

    def structure_object(value: Any, tp: Any) -> Any:
        if type(value) is not dict:
            raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        return structure_fn(value, tp)

    return structure_object


# The types whose hooks above accept only that exact type: the generated fast
# functions check them inline instead of calling the hook.
_EXACT: tuple[type[Any], ...] = (str, int, bool)


def _build(fast: cattrs.Converter | None) -> cattrs.Converter:
    """The fast converter (``fast`` None), or the explaining one, which uses ``fast``."""
    detailed = fast is not None
    converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    # Class registrations dispatch on the most specific class in the MRO, so the
    # open enums (str subclasses) get their own hook, not the str one.
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(OpenEnum, _structure_open_enum)
    converter.register_structure_hook_factory(
        lambda tp: _sequence_container(tp) is tuple,
        lambda tp: _sequence_hook(converter, tp, tuple, fast),
    )
    converter.register_structure_hook_factory(
        lambda tp: _sequence_container(tp) is list,
        lambda tp: _sequence_hook(converter, tp, list, fast),
    )
    if detailed:
        converter.register_structure_hook_factory(
            attrs.has, lambda cls: _attrs_hook(converter, cls)
        )
    else:
        converter.register_structure_hook_factory(
            attrs.has,
            lambda cls: fast_attrs_hook(
                converter, cls, rename=camel, exact=_EXACT, parse_datetime=parse_datetime
            ),
        )
    return converter


_fast = _build(None)
_explaining = _build(_fast)


def explain(data: Any, tp: Any) -> str:
    """Say why ``data`` does not structure as ``tp`` (path and reason).

    Bounded whatever the data: the first few problems, each line cut short.
    """
    try:
        _explaining.structure(data, tp)
    except Exception as exc:  # any failure is what we describe
        if isinstance(exc, cattrs.BaseValidationError):
            lines = cattrs.transform_error(exc, path="$", format_exception=_describe)
        else:
            lines = [f"{exc} @ $"]
        shown = [_wire_path(line) for line in lines[: C.MAX_EXPLAINED_PROBLEMS]]
        if len(lines) > len(shown):
            shown.append(f"and {len(lines) - len(shown)} more problems")
        return "; ".join(shown)
    return "unexpected structure"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _describe(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return f"invalid value for {getattr(tp, '__name__', tp)}"


_SNAKE_SEGMENT = re.compile(r"\.([a-z][a-z0-9_]*)")


def _wire_path(line: str) -> str:
    # Report the JSON (camelCase) names the server sent, not attribute names;
    # a long reason (it may quote the value) is cut, the path kept.
    head, at, path = line.rpartition(" @ ")
    if not at:
        return _shorten(line, C.MAX_EXPLAINED_LINE_CHARS)
    path = _SNAKE_SEGMENT.sub(lambda m: "." + camel(m.group(1)), path)
    return f"{_shorten(head, C.MAX_EXPLAINED_LINE_CHARS)} @ {path}"


def structure(data: Any, tp: type[T]) -> T:
    """Structure already-parsed JSON into ``tp``; raise DecodeFailure with a reason."""
    try:
        return _fast.structure(data, tp)
    except Exception:  # re-decoded below to explain why
        raise DecodeFailure(explain(data, tp)) from None


def decoder(tp: Any) -> Callable[[bytes], Any]:
    """A bytes -> ``tp`` function with the structure hook looked up once."""
    hook = _fast.get_structure_hook(tp)

    def decode_bytes(body: bytes) -> Any:
        try:
            data = loads(body)
        except Exception as exc:  # any parser failure: invalid, too deep, too big
            raise DecodeFailure(f"body is not valid JSON: {_parse_failure(exc)}") from None
        try:
            return hook(data, tp)
        except Exception:  # decoded again below, to explain why
            pass
        try:
            if loads is not _loads_json:
                # orjson reads integers beyond 64 bits as floats: the standard
                # library's reading decides, so no answer depends on the extra.
                data = _loads_json(body)
                try:
                    return hook(data, tp)
                except Exception:  # explained below
                    pass
            reason = explain(data, tp)
        except Exception as exc:  # e.g. nesting orjson parses but json does not
            reason = f"body is not valid JSON: {_parse_failure(exc)}"
        raise DecodeFailure(reason)

    return decode_bytes


def _parse_failure(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to parse"
    return _shorten(str(exc), C.MAX_EXPLAINED_LINE_CHARS) or type(exc).__name__


# "processId": "<id>" anywhere in a body too broken to parse (bounded: no nesting).
_ID_FIELD = r'"%s"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]{1,%d})"'


def created_id(body: bytes, key: str) -> str | None:
    """The id a create's answer names under ``key``, when it can be read safely.

    From the top-level object when the body parses; otherwise (too deep,
    invalid UTF-8 elsewhere, cut short) from the one ``"key": "..."`` pair the
    raw bytes hold, if they hold exactly one distinct value.
    """
    try:
        data = loads(body)
    except Exception:  # read from the raw bytes below
        data = None
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= C.MAX_PROCESS_ID_CHARS:
            return value
        return None
    pattern = re.compile((_ID_FIELD % (re.escape(key), C.MAX_PROCESS_ID_CHARS)).encode())
    found = {match.group(1) for match in pattern.finditer(body)}
    if len(found) != 1:
        return None
    try:
        return found.pop().decode()
    except UnicodeDecodeError:
        return None


def decode(body: bytes, tp: type[T]) -> T:
    """Decode a JSON body into ``tp``."""
    result: T = decoder(tp)(body)
    return result


# -- models back to the wire ---------------------------------------------------


def format_datetime(value: datetime) -> str:
    """An aware datetime as Hathora writes it: RFC 3339 in UTC, ``...T12:00:00.123Z``.

    Microseconds are kept when the value has them (a millisecond reading stays
    as milliseconds, so the fake's answers come back out unchanged).
    """
    utc = value.astimezone(timezone.utc).replace(tzinfo=None)
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.isoformat(timespec=spec) + "Z"


def _unstructure_attrs(converter: cattrs.Converter, cls: type[Any]) -> Callable[[Any], Any]:
    # The same renaming as decoding. A field whose default is None is optional
    # on the wire (absent, not null, when unset): ``ConnectionInfoV2.exposedPort``.
    renames = {
        a.name: override(rename=camel(a.name), omit_if_default=a.default is None)
        for a in attrs.fields(cls)
    }
    return make_dict_unstructure_fn(cls, converter, **renames)  # type: ignore[arg-type]


def _build_unstructure() -> cattrs.Converter:
    converter = cattrs.Converter(unstruct_collection_overrides={tuple: list})
    converter.register_unstructure_hook(datetime, format_datetime)
    converter.register_unstructure_hook(OpenEnum, lambda member: member.value)
    converter.register_unstructure_hook_factory(
        attrs.has, lambda cls: _unstructure_attrs(converter, cls)
    )
    return converter


_unstructuring = _build_unstructure()


def unstructure(value: Any) -> Any:
    """A model (or a list of them) as the wire's JSON-ready data: camelCase, RFC 3339 times."""
    return _unstructuring.unstructure(value)
