"""The generated fast decoders agree exactly with the explaining cattrs converter.

Production decoding runs functions generated per model (``_structgen``) and
only falls back to the detailed cattrs converter to explain a failure. If the
two ever disagreed, a bad body could slip through, or a good one could fail
with "unexpected structure". So every wire position of every model is mutated
into every JSON type, and both must give the same verdict and the same value.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, get_args, get_origin

import attrs
import pytest

from hathora_async import _convert, models
from hathora_async._convert import DecodeFailure, camel
from hathora_async._structgen import fast_constructor
from hathora_async.models import ApiResponse, OpenEnum, ProcessV2

MODELS = sorted(
    (
        cls
        for cls in vars(models).values()
        if isinstance(cls, type) and attrs.has(cls) and cls is not models.ApiResponse
    ),
    key=lambda cls: cls.__name__,
)
# Values of every JSON type, plus strings that some hooks treat specially.
WRONG: list[Any] = [None, True, False, 0, 7, -1, 1.5, "", "x", "2024-05-01T12:00:00Z", [], {}]
MISSING = object()


def _optional_inner(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        rest = [arg for arg in get_args(tp) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else None
    return None


def sample(tp: Any) -> Any:
    """A valid wire value of ``tp``, with every optional field filled."""
    inner = _optional_inner(tp)
    if inner is not None:
        return sample(inner)
    if get_origin(tp) in (list, tuple):
        return [sample(get_args(tp)[0]), sample(get_args(tp)[0])]
    if attrs.has(tp):
        attrs.resolve_types(tp)
        return {camel(f.name): sample(f.type) for f in attrs.fields(tp)}
    if isinstance(tp, type) and issubclass(tp, OpenEnum):
        return next(iter(tp)).value
    if tp is datetime:
        return "2024-05-01T12:00:07.250Z"
    if tp is bool:
        return True
    if tp is int:
        return 3
    if tp is str:
        return "s-1"
    raise AssertionError(f"no sample for {tp!r}; extend this test for the new type")


def positions(data: Any, tp: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in the wire value ``data`` of ``tp`` (keys and list indexes)."""
    inner = _optional_inner(tp)
    if inner is not None:
        yield from positions(data, inner, path)
    elif attrs.has(tp):
        for field in attrs.fields(tp):
            key = camel(field.name)
            yield (*path, key)
            yield from positions(data[key], field.type, (*path, key))
    elif get_origin(tp) in (list, tuple):
        yield (*path, 1)
        yield from positions(data[1], get_args(tp)[0], (*path, 1))


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(data))
    target = copy
    for step in path[:-1]:
        target = target[step]
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy


def outcome(hook: Any, data: Any, tp: Any) -> tuple[str, Any]:
    try:
        return "ok", hook(data, tp)
    except Exception as exc:
        return "failed", type(exc).__name__


def test_every_model_gets_a_generated_function() -> None:
    for cls in MODELS:
        hook = _convert._fast.get_structure_hook(cls)
        assert hook.__code__.co_filename.startswith("<fast structure of"), cls


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_fast_and_explaining_agree_on_every_mutation(cls: type[Any]) -> None:
    fast = _convert._fast.get_structure_hook(cls)
    good = sample(cls)
    assert outcome(fast, good, cls)[0] == "ok"
    checked = 0
    cases: list[tuple[Any, Any]] = [(("$", value), value) for value in WRONG]
    for path in positions(good, cls):
        cases += [((path, value), replaced(good, path, value)) for value in [*WRONG, MISSING]]
    for where, data in cases:
        verdict, result = outcome(fast, data, cls)
        try:
            expected = ("ok", _convert._explaining.structure(data, cls))
        except Exception:
            expected = ("failed", None)
        assert verdict == expected[0], where
        if verdict == "ok":
            assert result == expected[1], where
            assert type(result) is cls
        else:
            # The failure is explained, never "unexpected structure".
            with pytest.raises(DecodeFailure) as caught:
                _convert.decode(json.dumps(data).encode(), cls)
            assert " @ $" in str(caught.value), where
            assert "unexpected structure" not in str(caught.value), where
        checked += 1
    assert checked > len(WRONG)


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_fast_result_equals_the_attrs_constructor(cls: type[Any]) -> None:
    data = sample(cls)
    built = _convert._fast.get_structure_hook(cls)(data, cls)
    explained = _convert._explaining.structure(data, cls)
    assert built == explained
    assert hash(built) == hash(explained)
    assert repr(built) == repr(explained)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(built, attrs.fields(cls)[0].name, None)


def test_list_of_processes_agrees_item_by_item() -> None:
    good = [sample(ProcessV2) for _ in range(3)]
    bad = replaced(good, (2, "roomsAllocated"), True)
    assert _convert.structure(good, list[ProcessV2]) == _convert._explaining.structure(
        good, list[ProcessV2]
    )
    with pytest.raises(DecodeFailure, match=r"@ \$\[2\]\.roomsAllocated"):
        _convert.decode(json.dumps(bad).encode(), list[ProcessV2])


def test_fields_with_defaults_may_be_absent() -> None:
    with_default = [
        cls for cls in MODELS if any(f.default is not attrs.NOTHING for f in attrs.fields(cls))
    ]
    if not with_default:
        pytest.skip("no model has a field with a default")
    for cls in with_default:
        data = sample(cls)
        for field in attrs.fields(cls):
            if field.default is not attrs.NOTHING:
                del data[camel(field.name)]
        built = _convert._fast.get_structure_hook(cls)(data, cls)
        assert built == _convert._explaining.structure(data, cls)


# -- classes the generator must not shortcut --------------------------------

calls: list[str] = []


@attrs.frozen
class Validated:
    count: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen
class PostInit:
    name: str

    def __attrs_post_init__(self) -> None:
        calls.append(self.name)


@attrs.frozen(cache_hash=True)
class CachedHash:
    name: str


@attrs.define(slots=False)
class NotSlotted:
    name: str
    when: datetime | None


@attrs.frozen
class Defaults:
    name: str
    tags: tuple[str, ...] = ()
    note: str | None = attrs.field(default=None, kw_only=True)
    items: list[int] = attrs.Factory(list)


def fresh_hook(cls: type[Any]) -> Any:
    return _convert._build(None).get_structure_hook(cls)


def test_validators_still_run() -> None:
    assert fresh_hook(Validated)({"count": 2}) == Validated(2)
    with pytest.raises(ValueError):
        fresh_hook(Validated)({"count": -1})


def test_post_init_still_runs() -> None:
    calls.clear()
    assert fresh_hook(PostInit)({"name": "a"}) == PostInit("a")
    assert calls == ["a", "a"]


def test_cached_hash_slot_is_filled() -> None:
    built = fresh_hook(CachedHash)({"name": "a"})
    assert hash(built) == hash(CachedHash("a"))


def test_dict_classes_are_built_by_their_init() -> None:
    built = fresh_hook(NotSlotted)({"name": "a", "when": "2024-05-01T12:00:00Z"})
    assert built == NotSlotted("a", datetime(2024, 5, 1, 12, tzinfo=timezone.utc))


def test_defaults_keyword_only_fields_and_factories() -> None:
    hook = fresh_hook(Defaults)
    first, second = hook({"name": "a"}), hook({"name": "a"})
    assert first == Defaults("a")
    assert first.items is not second.items  # a fresh list each time, as __init__ makes
    assert hook({"name": "a", "tags": ["x"], "note": "n", "items": [1]}) == Defaults(
        "a", ("x",), [1], note="n"
    )
    with pytest.raises(TypeError):
        hook({"name": "a", "note": 5})


# -- timestamps: the 3.11 shortcut reads what the 3.10 path reads -------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:07Z",
        "2024-05-01T12:00:07z",
        "2024-05-01T12:00:07.2Z",
        "2024-05-01T12:00:07.25Z",
        "2024-05-01T12:00:07.250Z",
        "2024-05-01T12:00:07.250123Z",
        "2024-05-01T12:00:07.250123456Z",
        "2024-05-01T12:00:07.250+02:00",
        "2024-05-01T12:00:07.250-07:30",
        "2024-05-01T12:00:07+00:00",
        "2024-05-01T12:00:07",
        "2024-05-01 12:00:07.5Z",
    ],
)
def test_parse_datetime_fast_path_matches_the_portable_path(text: str) -> None:
    fast = _convert.parse_datetime(text)
    portable = _convert._parse_datetime_compat(text)
    if portable.tzinfo is None:
        portable = portable.replace(tzinfo=timezone.utc)
    assert fast == portable
    assert fast.utcoffset() == portable.utcoffset()


@attrs.frozen
class KeywordOnly:
    name: str = attrs.field(kw_only=True)


def test_keyword_only_fields_without_defaults() -> None:
    assert fresh_hook(KeywordOnly)({"name": "a"}) == KeywordOnly(name="a")


def test_fast_constructor_builds_what_init_builds() -> None:
    build = fast_constructor(ApiResponse)
    assert build.__code__.co_filename.startswith("<fast constructor")
    made = build(200, {"X-Id": "1"}, [1])
    assert made == ApiResponse(200, {"X-Id": "1"}, [1])
    assert repr(made) == repr(ApiResponse(200, {"X-Id": "1"}, [1]))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.status_code = 500  # type: ignore[misc]
    # Anything __init__ does beyond filling slots keeps __init__.
    for cls in (Validated, PostInit, CachedHash, NotSlotted, Defaults, KeywordOnly):
        assert fast_constructor(cls) is cls


# -- the parsers answer exactly as json.loads does ---------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"processId": "p-1", "port": 7777, "ok": true, "gone": null}',
        b'[1, -0, 2.5, 1e400, "\\u00e9", "\xc3\xa9"]',
        b'{"n": NaN, "i": -Infinity}',
        b'{"lone": "\\ud800"}',
        b'{"dup": 1, "dup": 2}',
        '{"wide": "utf-16"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"bom": 1}',
        b"",
        b"not json",
        b'{"cut": 1',
        b'{"a": 1}{',
        b"\xff\xfe\xff",
        b' \t\n{"spaced": [ ]}\r\n',
        b'{"spaced": [ ]}\r\n ',
        '{"le": 1}'.encode("utf-16-le"),
        "[1, 2]".encode("utf-32-be"),
        b'{"surrogate": "\xed\xa0\x80"}',
        b'{"bad utf-8": "\xff"}',
        b'{"nul": "\x00"}',
        b"{",
        b"[",
        b"[]",
        b'"text"',
        b"7",
        b"{}extra",
    ],
)
@pytest.mark.parametrize("parser", ["standard", "orjson"])
def test_parsers_answer_as_json_loads_does(body: bytes, parser: str) -> None:
    parse = _convert._loads_json if parser == "standard" else _convert._orjson_loads()
    if parse is None:
        pytest.skip("the orjson extra is not installed")

    def result(loads: Any) -> tuple[str, str, str]:
        try:
            return "ok", repr(loads(body)), ""
        except ValueError as exc:
            return "error", type(exc).__name__, str(exc)

    assert result(parse) == result(json.loads)


@pytest.mark.parametrize("big", [2**63, 2**64, 2**70, -(2**64)])
def test_integers_beyond_64_bits_decode_as_json_reads_them(big: int) -> None:
    # orjson reads these as floats; the decoder must still answer as json does.
    body = sample(ProcessV2)
    body["deploymentId"] = big
    raw = json.dumps(body).encode()
    expected = _convert._explaining.structure(json.loads(raw), ProcessV2)
    saved = _convert.loads
    try:
        for parse in (_convert._loads_json, json.loads, _convert._orjson_loads()):
            if parse is None:
                continue
            _convert.loads = parse
            assert _convert.decode(raw, ProcessV2) == expected
            assert _convert.decode(raw, ProcessV2).deployment_id == big
    finally:
        _convert.loads = saved
