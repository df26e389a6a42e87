"""Path parameters as single URL segments (pure functions, no I/O)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from yarl import URL

from hathora_async import Region
from hathora_async._paths import segment
from hathora_async.models import coerce_region

HOSTILE_IDS = [
    "a/b",
    "/",
    "a?b=c",
    "a#frag",
    "100%",
    "a%2Fb",
    "%2e%2e",
    "with space",
    "tab\there",
    "ünïcödé-进程-🎮",
    "a..b",
    "..a",
    "a..",
    "...",
    "a/../b",
    "./x",
    "+plus&amp;=;,",
    "'quote\"",
    "back\\slash",
    "nul\x00byte",
]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_segment_is_one_segment_that_decodes_to_the_original(value: str) -> None:
    encoded = segment(value, "process_id")
    # No character that could end or split the segment survives unencoded.
    for reserved in "/?#\\ \t\x00":
        assert reserved not in encoded
    # Every % in the output starts an escape, so a literal % cannot be misread.
    assert all(encoded[i + 1 : i + 3].isalnum() for i, ch in enumerate(encoded) if ch == "%")
    assert unquote(encoded, errors="strict") == value
    # yarl, given the encoded path, keeps it as one segment (no dot-segment resolution).
    url = URL("http://h").with_path(f"/info/{encoded}", encoded=True)
    assert url.raw_parts == ("/", "info", encoded)
    assert url.parts[-1] == value


@pytest.mark.parametrize("value", ["plain-id", "cbfcddd2-0006-43ae-996c-995fff7bed2e", "A_b.c~d"])
def test_segment_leaves_unreserved_characters_alone(value: str) -> None:
    assert segment(value, "process_id") == value


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_segment_refuses_values_servers_would_drop_or_resolve(value: str) -> None:
    with pytest.raises(ValueError, match="process_id must not be empty"):
        segment(value, "process_id")


@pytest.mark.parametrize("value", [None, 42, b"bytes"])
def test_segment_refuses_non_strings(value: object) -> None:
    with pytest.raises(TypeError, match="app_id must be a str"):
        segment(value, "app_id")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (Region.SEATTLE, Region.SEATTLE),
        ("Seattle", Region.SEATTLE),
        ("Los_Angeles", Region.LOS_ANGELES),
        (Region("Dubai"), Region.DUBAI),
    ],
)
def test_coerce_region_accepts_known_regions(given: Region | str, expected: Region) -> None:
    region = coerce_region(given)
    assert region is expected
    assert region.is_known


@pytest.mark.parametrize("name", ["Atlantis", "New_Region_2", "x"])
def test_coerce_region_accepts_well_formed_unknown_names(name: str) -> None:
    region = coerce_region(name)
    assert region.value == name
    assert region == name
    assert not region.is_known


@pytest.mark.parametrize(
    "garbage",
    ["", " ", "a/b", "..", ".", "Seattle ", " Seattle", "Seattle?x", "1Seattle", "Sé", "a" * 65],
)
def test_coerce_region_refuses_garbage(garbage: str) -> None:
    with pytest.raises(ValueError, match="invalid region name"):
        coerce_region(garbage)


def test_coerce_region_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="region must be a Region or str"):
        coerce_region(3)  # type: ignore[arg-type]
