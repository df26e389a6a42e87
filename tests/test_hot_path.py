"""What the per-call hot path keeps from call to call changes no answer.

Encoded path segments, region segments and request targets are remembered
(bounded) so repeated calls skip the work; headers ride on the session the
client creates. Each shortcut must give exactly what the long way gives, never
keep a bad input, and stay bounded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hostile import APP_ID, TOKEN, Canned, HostileServer, hostile_client
from yarl import URL

from hathora_async import HathoraClient, Region, __version__
from hathora_async import _paths as paths
from hathora_async._http import _MAX_TARGETS, Transport
from hathora_async.models import coerce_region

ROOM = {
    "roomId": "r-1",
    "processId": "p-1",
    "status": "active",
    "additionalExposedPorts": [],
    "exposedPort": {"transportType": "udp", "port": 7777, "host": "h", "name": "default"},
}


@pytest.mark.parametrize(
    "value",
    ["cbfcddd2-0006-43ae-996c-995fff7bed2e", "a/b", "a b", "%2F", "?x#y", "é", "..."],
)
def test_segment_is_the_same_cached_or_not(value: str) -> None:
    paths._ENCODED.clear()
    first = paths.segment(value, "process_id")
    second = paths.segment(value, "process_id")  # from the cache
    assert first == second == quote(value, safe="")
    assert type(second) is str


class Shouty(str):
    """A str subclass: never cached, and encoded as its plain text."""

    def __str__(self) -> str:
        return self.upper()


def test_str_subclasses_are_encoded_but_not_kept() -> None:
    paths._ENCODED.clear()
    assert paths.segment(Shouty("a/b"), "process_id") == "a%2Fb"
    assert type(paths.segment(Region.SEATTLE, "region")) is str
    assert paths._ENCODED == {}


@pytest.mark.parametrize(("value", "error"), [("", ValueError), (".", ValueError), (5, TypeError)])
def test_bad_segments_are_refused_every_time(value: Any, error: type[Exception]) -> None:
    for _ in range(2):
        with pytest.raises(error):
            paths.segment(value, "process_id")
    assert value not in paths._ENCODED


def test_segment_cache_is_bounded() -> None:
    for index in range(3 * paths._MAX_ENCODED):
        assert paths.segment(f"p-{index}", "process_id") == f"p-{index}"
    assert 0 < len(paths._ENCODED) <= paths._MAX_ENCODED


@pytest.mark.parametrize("region", [Region.SEATTLE, "Seattle", "Atlantis", Region("Atlantis")])
def test_region_segment_is_the_same_cached_or_not(region: Region | str) -> None:
    paths._REGIONS.clear()
    expected = paths.segment(coerce_region(region).value, "region")
    assert paths.region_segment(region) == paths.region_segment(region) == expected


@pytest.mark.parametrize(("region", "error"), [("bad/region", ValueError), (7, TypeError)])
def test_bad_regions_are_refused_every_time(region: Any, error: type[Exception]) -> None:
    for _ in range(2):
        with pytest.raises(error):
            paths.region_segment(region)


def test_region_cache_is_bounded() -> None:
    for index in range(2 * paths._MAX_REGIONS):
        paths.region_segment(f"Region_{index}")
    assert len(paths._REGIONS) <= paths._MAX_REGIONS


@pytest.mark.parametrize("app_id", ["app-1", "a/b", "é", "..."])
def test_the_default_app_segment_is_the_same_cached_or_not(app_id: str) -> None:
    client = HathoraClient(TOKEN, app_id)
    for _ in range(2):  # computed, then kept
        assert client._app_segment(None) == quote(app_id, safe="")
    assert client._app_segment("other/app") == "other%2Fapp"  # a call's own app wins
    sibling = client.with_options(app_id="sibling/app")
    assert sibling._app_segment(None) == "sibling%2Fapp"
    assert client.with_options(timeout=3.0)._app_segment(None) == quote(app_id, safe="")
    assert client._app_segment(None) == quote(app_id, safe="")


def test_no_default_app_is_refused_every_time() -> None:
    client = HathoraClient(TOKEN)
    for _ in range(2):
        with pytest.raises(ValueError, match="no app_id"):
            client._app_segment(None)
    assert client._app_segment("app-2") == "app-2"


def test_targets_match_the_long_way_and_stay_bounded() -> None:
    base = URL("https://api.example.com/proxy/")
    transport = Transport(
        base_url=base, headers={}, session=None, max_connections=1, trace_configs=None
    )
    template = "/processes/v2/{}/info/{}"
    path, url = transport._target(template, ("app%2F1", "p-1"))
    assert path == "/proxy/processes/v2/app%2F1/info/p-1"
    assert url == base.with_path(path, encoded=True)
    assert str(url) == "https://api.example.com/proxy/processes/v2/app%2F1/info/p-1"
    assert transport._targets[(template, ("app%2F1", "p-1"))] == (path, url)
    for index in range(2 * _MAX_TARGETS):
        transport._target(template, ("app", f"p-{index}"))
    assert len(transport._targets) <= _MAX_TARGETS


async def test_many_ids_reach_the_right_paths(hostile: HostileServer) -> None:
    hostile.answer(Canned(204))
    ids = [f"p-{index}" for index in range(40)] + ["p-0", "a/b", "p-1"]
    async with hostile_client(hostile) as client:
        for process_id in ids:
            await client.processes.stop_process(process_id)
    assert [seen.raw_path for seen in hostile.seen] == [
        f"/processes/v2/{APP_ID}/stop/{quote(process_id, safe='')}" for process_id in ids
    ]


async def test_json_requests_carry_every_header_once(hostile: HostileServer) -> None:
    # The client's own session carries the common headers; a JSON body adds one.
    hostile.answer(Canned.json(ROOM, 201))
    async with hostile_client(hostile) as client:
        await client.rooms.create_room(Region.SEATTLE)
        await client.rooms.create_room(Region.SEATTLE)
    async with (
        aiohttp.ClientSession() as session,
        HathoraClient(TOKEN, APP_ID, base_url=hostile.url, session=session) as client,
    ):
        await client.rooms.create_room(Region.SEATTLE)
    assert len(hostile.seen) == 3
    for seen in hostile.seen:
        assert seen.header_values("Content-Type") == ["application/json"]
        assert seen.header_values("Authorization") == [f"Bearer {TOKEN}"]
        assert seen.header_values("Accept") == ["application/json"]
        assert seen.header_values("User-Agent") == [f"hathora-async/{__version__}"]
