"""The four ProcessesV2 operations over loopback: against the fake and a recording server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hostile import APP_ID, Canned, HostileServer, hostile_client, process_json

from hathora_async import (
    ApiResponse,
    ExposedPort,
    HathoraClient,
    NotFoundError,
    ProcessStatus,
    ProcessV2,
    Region,
    RetryPolicy,
    TransportType,
    UnauthorizedError,
)
from hathora_async.testing import FakeHathora, Fault, ManualClock


@contextlib.asynccontextmanager
async def serve(**fake_options: Any) -> AsyncIterator[tuple[FakeHathora, HathoraClient]]:
    """A fake with ``fake_options`` and a non-retrying client of it."""
    async with (
        FakeHathora(seed=3, **fake_options) as fake,
        HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
        ) as client,
    ):
        yield fake, client


def total_requests(fake: FakeHathora) -> int:
    return sum(fake.request_counts.values())


# -- the four operations and their with_http_info forms ----------------------------------


async def test_create_process_returns_the_new_process(
    fake: FakeHathora, client: HathoraClient
) -> None:
    process = await client.processes.create_process(Region.FRANKFURT)
    assert isinstance(process, ProcessV2)
    assert process.app_id == fake.app_id
    assert process.region is Region.FRANKFURT
    # boot_delay is 0 in the shared fixture: the process is running at once.
    assert process.status is ProcessStatus.RUNNING
    assert process.rooms_allocated == 0
    assert process.rooms_per_process == 4
    assert process.deployment_id == 1
    assert process.exposed_port == ExposedPort(TransportType.UDP, 30001, "localhost", "default")
    assert process.additional_exposed_ports == ()
    assert process.stopping_at is None and process.terminated_at is None
    assert [p["processId"] for p in fake.processes()] == [process.process_id]
    assert fake.request_counts["create_process"] == 1


async def test_create_process_with_http_info(fake: FakeHathora, client: HathoraClient) -> None:
    response = await client.processes.create_process_with_http_info("Tokyo")
    assert isinstance(response, ApiResponse)
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Content-Length"]) > 0
    assert response.data.region is Region.TOKYO
    assert fake.process(response.data.process_id)["region"] == "Tokyo"


async def test_get_process_info_and_its_http_info_form(
    fake: FakeHathora, client: HathoraClient
) -> None:
    created = await client.processes.create_process(Region.SEATTLE)
    info = await client.processes.get_process_info(created.process_id)
    assert info == created
    response = await client.processes.get_process_info_with_http_info(created.process_id)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.data == created
    assert fake.request_counts["get_process_info"] == 2


async def test_get_latest_processes_and_its_http_info_form(
    fake: FakeHathora, client: HathoraClient
) -> None:
    first = await client.processes.create_process(Region.SEATTLE)
    second = await client.processes.create_process(Region.LONDON)
    latest = await client.processes.get_latest_processes()
    assert latest == [second, first]
    response = await client.processes.get_latest_processes_with_http_info()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.data == [second, first]


async def test_get_latest_processes_of_an_empty_app(client: HathoraClient) -> None:
    assert await client.processes.get_latest_processes() == []


async def test_stop_process_and_its_http_info_form(
    fake: FakeHathora, client: HathoraClient
) -> None:
    one = await client.processes.create_process(Region.SEATTLE)
    two = await client.processes.create_process(Region.SEATTLE)
    await client.processes.stop_process(one.process_id)
    response = await client.processes.stop_process_with_http_info(two.process_id)
    assert response.status_code == 204
    assert response.data is None
    assert response.headers.get("Content-Length", "0") == "0"
    for process in (one, two):
        # The fake's stop_delay is 0: stopped at once.
        info = await client.processes.get_process_info(process.process_id)
        assert info.status is ProcessStatus.STOPPED
        assert info.stopping_at is not None and info.terminated_at is not None
    assert fake.request_counts["stop_process"] == 2


# -- app_id: client default, per-call override, missing --------------------------------


async def test_per_call_app_id_overrides_the_client_default(
    fake: FakeHathora, client: HathoraClient
) -> None:
    other = fake.add_app("app-other")
    process = await client.processes.create_process(Region.DALLAS, app_id=other)
    assert process.app_id == other
    assert [p["processId"] for p in fake.processes(other)] == [process.process_id]
    assert fake.processes() == []
    # The default app does not know the process; the other app does.
    with pytest.raises(NotFoundError):
        await client.processes.get_process_info(process.process_id)
    info = await client.processes.get_process_info(process.process_id, app_id=other)
    assert info == process
    assert await client.processes.get_latest_processes(app_id=other) == [process]
    assert await client.processes.get_latest_processes() == []
    await client.processes.stop_process(process.process_id, app_id=other)
    assert fake.process(process.process_id)["status"] == "stopped"


async def test_with_options_app_id_becomes_the_sibling_default(
    fake: FakeHathora, client: HathoraClient
) -> None:
    other = fake.add_app("app-sibling")
    sibling = client.with_options(app_id=other)
    process = await sibling.processes.create_process(Region.MUMBAI)
    assert process.app_id == other
    assert client.app_id == fake.app_id
    assert sibling.app_id == other


def _every_operation() -> list[Callable[[HathoraClient], Awaitable[object]]]:
    return [
        lambda c: c.processes.create_process(Region.SEATTLE),
        lambda c: c.processes.create_process_with_http_info(Region.SEATTLE),
        lambda c: c.processes.get_latest_processes(),
        lambda c: c.processes.get_latest_processes_with_http_info(),
        lambda c: c.processes.get_process_info("p-1"),
        lambda c: c.processes.get_process_info_with_http_info("p-1"),
        lambda c: c.processes.stop_process("p-1"),
        lambda c: c.processes.stop_process_with_http_info("p-1"),
    ]


@pytest.mark.parametrize("operation", _every_operation())
async def test_missing_app_id_raises_before_any_io(
    fake: FakeHathora, operation: Callable[[HathoraClient], Awaitable[object]]
) -> None:
    async with HathoraClient(fake.token, base_url=fake.url) as client:
        assert client.app_id is None
        with pytest.raises(ValueError, match="no app_id"):
            await operation(client)
    assert total_requests(fake) == 0


# -- query serialisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected_query"),
    [
        (
            {"status": [ProcessStatus.RUNNING, "starting"], "region": [Region.SEATTLE]},
            "status=running&status=starting&region=Seattle",
        ),
        ({"status": "running"}, "status=running"),
        ({"region": Region.LOS_ANGELES}, "region=Los_Angeles"),
        ({"region": "Sao_Paulo"}, "region=Sao_Paulo"),
        ({"status": (s for s in ["stopped", "failed"])}, "status=stopped&status=failed"),
        (
            {"region": ["Seattle", "London", "Seattle"]},
            "region=Seattle&region=London&region=Seattle",
        ),
        ({"status": ["a&b=c", "x y"]}, "status=a%26b%3Dc&status=x+y"),
        ({"status": ProcessStatus("hibernating")}, "status=hibernating"),
        ({"status": [], "region": []}, ""),
        ({"status": None, "region": None}, ""),
        ({}, ""),
        ({"status": [], "region": ["Tokyo"]}, "region=Tokyo"),
    ],
)
async def test_query_as_received_by_the_server(
    hostile: HostileServer, filters: dict[str, Any], expected_query: str
) -> None:
    hostile.answer(Canned.json([]))
    async with hostile_client(hostile) as client:
        assert await client.processes.get_latest_processes(**filters) == []
    [seen] = hostile.seen
    assert seen.method == "GET"
    assert seen.raw_path.partition("?")[0] == f"/processes/v2/{APP_ID}/list/latest"
    assert seen.query_string == expected_query
    # No dangling "?" when there is nothing to send.
    assert ("?" in seen.raw_path) == bool(expected_query)


@pytest.mark.parametrize("bad", [[""], ["running", ""], [1], "", [None]])
async def test_bad_filter_values_raise_before_any_io(
    fake: FakeHathora, client: HathoraClient, bad: Any
) -> None:
    with pytest.raises(ValueError, match="filter values must be non-empty strings"):
        await client.processes.get_latest_processes(status=bad)
    with pytest.raises(ValueError, match="filter values must be non-empty strings"):
        await client.processes.get_latest_processes(region=bad)
    assert total_requests(fake) == 0


def ids(processes: list[ProcessV2]) -> list[str]:
    return [p.process_id for p in processes]


async def test_filters_select_processes_on_the_fake() -> None:
    clock = ManualClock()
    async with serve(boot_delay=10.0, clock=clock) as (_, client):
        seattle_old = await client.processes.create_process(Region.SEATTLE)
        london_old = await client.processes.create_process(Region.LONDON)
        clock.advance(10.0)  # both running now
        seattle_new = await client.processes.create_process(Region.SEATTLE)  # starting
        await client.processes.stop_process(london_old.process_id)  # stopped

        running = await client.processes.get_latest_processes(status=[ProcessStatus.RUNNING])
        assert ids(running) == [seattle_old.process_id]
        live = await client.processes.get_latest_processes(status=["running", "starting"])
        assert ids(live) == [seattle_new.process_id, seattle_old.process_id]
        in_london = await client.processes.get_latest_processes(region=[Region.LONDON])
        assert ids(in_london) == [london_old.process_id]
        assert in_london[0].status is ProcessStatus.STOPPED
        both = await client.processes.get_latest_processes(
            status=[ProcessStatus.STARTING], region=[Region.SEATTLE, Region.LONDON]
        )
        assert ids(both) == [seattle_new.process_id]
        none = await client.processes.get_latest_processes(
            status=["running"], region=[Region.LONDON]
        )
        assert none == []
        unfiltered = await client.processes.get_latest_processes(status=[], region=None)
        assert len(unfiltered) == 3


# -- hostile path ids ---------------------------------------------------------------------

HOSTILE_IDS = [
    "a/b",
    "/",
    "?",
    "#",
    "%",
    "a?status=running#x",
    "%2F",
    "a%2Fb",
    "with space",
    "ünïcödé-进程",
    "a..b",
    "..hidden",
    "trailing..",
    "a/../../b",
    "+&=;",
]


@pytest.mark.parametrize("process_id", HOSTILE_IDS)
async def test_hostile_process_id_arrives_as_one_exact_segment(
    hostile: HostileServer, process_id: str
) -> None:
    hostile.answer_next(Canned.json(process_json(processId=process_id)), Canned(204))
    async with hostile_client(hostile) as client:
        info = await client.processes.get_process_info(process_id)
        await client.processes.stop_process(process_id)
    assert info.process_id == process_id
    info_seen, stop_seen = hostile.seen
    for seen, verb in ((info_seen, "info"), (stop_seen, "stop")):
        assert seen.query_string == ""
        assert seen.path_segments[:4] == ["processes", "v2", APP_ID, verb]
        assert len(seen.path_segments) == 5
        assert seen.segment(4) == process_id
        assert seen.path_segments[4] == quote(process_id, safe="")
    assert info_seen.method == "GET"
    assert stop_seen.method == "POST"


@pytest.mark.parametrize("app_id", ["my/app", "app?x=1", "app#1", "100%", "ápp", "a..b"])
async def test_hostile_app_id_arrives_as_one_exact_segment(
    hostile: HostileServer, app_id: str
) -> None:
    hostile.answer(Canned.json([]))
    async with hostile_client(hostile) as client:
        await client.processes.get_latest_processes(app_id=app_id, status=["running"])
    [seen] = hostile.seen
    assert len(seen.path_segments) == 5
    assert seen.segment(2) == app_id
    assert seen.path_segments[3:] == ["list", "latest"]
    assert seen.query_string == "status=running"


@pytest.mark.parametrize("process_id", ["a/b", "?x", "#", "%2F", "with space", "ünï", "a..b"])
async def test_hostile_process_id_reaches_the_fake_intact(
    client: HathoraClient, process_id: str
) -> None:
    # The fake's 404 names the id it decoded from the info route: same route, same id.
    with pytest.raises(NotFoundError) as caught:
        await client.processes.get_process_info(process_id)
    assert caught.value.message == f"Process {process_id} not found"


@pytest.mark.parametrize("bad", ["", ".", ".."])
async def test_empty_and_dot_ids_raise_before_any_io(hostile: HostileServer, bad: str) -> None:
    async with hostile_client(hostile) as client:
        with pytest.raises(ValueError, match="process_id must not be empty"):
            await client.processes.get_process_info(bad)
        with pytest.raises(ValueError, match="process_id must not be empty"):
            await client.processes.stop_process_with_http_info(bad)
        with pytest.raises(ValueError, match="app_id must not be empty"):
            await client.processes.get_latest_processes(app_id=bad)
        with pytest.raises(ValueError, match="app_id must not be empty"):
            await client.processes.create_process(Region.SEATTLE, app_id=bad)
    assert hostile.seen == []


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_empty_and_dot_app_ids_refused_by_the_constructor(bad: str) -> None:
    with pytest.raises(ValueError, match="app_id must not be empty"):
        HathoraClient("token", bad)


# -- create_process region validation -----------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (Region.SEATTLE, "Seattle"),
        ("Washington_DC", "Washington_DC"),
        (Region.JOHANNESBURG, "Johannesburg"),
        ("Dubai", "Dubai"),
    ],
)
async def test_create_process_sends_the_region_as_one_segment(
    hostile: HostileServer, region: Region | str, expected: str
) -> None:
    hostile.answer(Canned.json(process_json(region=expected), status=201))
    async with hostile_client(hostile) as client:
        process = await client.processes.create_process(region)
    assert process.region == expected and process.region.is_known
    [seen] = hostile.seen
    assert seen.method == "POST"
    assert seen.raw_path == f"/processes/v2/{APP_ID}/create/{expected}"
    assert seen.body == b""


@pytest.mark.parametrize("region", ["Atlantis", Region("Atlantis")])
async def test_unknown_well_formed_region_is_sent_and_the_fake_says_404(
    fake: FakeHathora, client: HathoraClient, region: Region | str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.processes.create_process(region)
    assert caught.value.status == 404
    assert caught.value.message == "Region Atlantis not found"
    assert fake.request_counts["create_process"] == 1
    assert fake.processes_created == 0


@pytest.mark.parametrize("garbage", ["", " ", "a/b", "..", ".", "Seattle/../x", "Seattle?"])
async def test_garbage_region_raises_before_any_io(
    fake: FakeHathora, client: HathoraClient, garbage: str
) -> None:
    with pytest.raises(ValueError, match="invalid region name"):
        await client.processes.create_process(garbage)
    with pytest.raises(ValueError, match="invalid region name"):
        await client.processes.create_process_with_http_info(garbage)
    assert total_requests(fake) == 0


# -- the fake -----------------------------------------------------------------------------


async def test_fake_answers_401_without_a_valid_bearer_token(fake: FakeHathora) -> None:
    for token in (None, "not-the-token"):
        async with HathoraClient(
            token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
        ) as client:
            with pytest.raises(UnauthorizedError) as caught:
                await client.processes.get_latest_processes()
            assert caught.value.message == "Invalid or missing bearer token"
    # Right token, wrong scheme: still refused.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{fake.url}/processes/v2/{fake.app_id}/list/latest",
            headers={"Authorization": f"Basic {fake.token}"},
        ) as response,
    ):
        assert response.status == 401
        assert await response.json() == {"message": "Invalid or missing bearer token"}
    assert fake.processes_created == 0


async def test_fake_answers_404_for_unknown_app_and_process(client: HathoraClient) -> None:
    with pytest.raises(NotFoundError) as unknown_app:
        await client.processes.create_process(Region.SEATTLE, app_id="app-nope")
    assert unknown_app.value.message == "App app-nope not found"
    with pytest.raises(NotFoundError) as unknown_process:
        await client.processes.stop_process("no-such-process")
    assert unknown_process.value.message == "Process no-such-process not found"


async def test_fake_latest_is_the_ten_most_recent_newest_first(client: HathoraClient) -> None:
    created = [await client.processes.create_process(Region.SEATTLE) for _ in range(12)]
    latest = await client.processes.get_latest_processes()
    assert [p.process_id for p in latest] == [p.process_id for p in reversed(created[2:])]


async def test_fake_lifecycle_starting_then_running_after_boot_delay() -> None:
    clock = ManualClock()
    async with serve(boot_delay=5.0, clock=clock, transport_type="tcp") as (_, client):
        process = await client.processes.create_process(Region.SEATTLE)
        assert process.status is ProcessStatus.STARTING
        assert process.exposed_port is None and process.started_at is None
        clock.advance(4.9)
        still = await client.processes.get_process_info(process.process_id)
        assert still.status is ProcessStatus.STARTING and still.exposed_port is None
        clock.advance(0.1)
        running = await client.processes.get_process_info(process.process_id)
        assert running.status is ProcessStatus.RUNNING
        assert running.started_at == process.created_at + timedelta(seconds=5)
        assert running.exposed_port is not None
        assert running.exposed_port.transport_type is TransportType.TCP
        assert running.exposed_port.host == "localhost"
        assert running.exposed_port.port > 0


async def test_fake_stop_goes_through_stopping_to_stopped() -> None:
    clock = ManualClock()
    async with serve(stop_delay=3.0, clock=clock) as (_, client):
        process = await client.processes.create_process(Region.LONDON)
        clock.advance(1.0)
        await client.processes.stop_process(process.process_id)
        stopping = await client.processes.get_process_info(process.process_id)
        assert stopping.status is ProcessStatus.STOPPING
        assert stopping.stopping_at == process.created_at + timedelta(seconds=1)
        assert stopping.terminated_at is None
        clock.advance(3.0)
        stopped = await client.processes.get_process_info(process.process_id)
        assert stopped.status is ProcessStatus.STOPPED
        assert stopped.stopping_at == stopping.stopping_at
        assert stopped.terminated_at == stopping.stopping_at + timedelta(seconds=3)
        assert stopped.exposed_port is None


async def test_fake_boot_failure_ends_failed() -> None:
    clock = ManualClock()
    async with serve(boot_delay=2.0, boot_failure_rate=1.0, clock=clock) as (_, client):
        process = await client.processes.create_process(Region.SYDNEY)
        assert process.status is ProcessStatus.STARTING
        clock.advance(2.0)
        failed = await client.processes.get_process_info(process.process_id)
        assert failed.status is ProcessStatus.FAILED
        assert failed.started_at is None and failed.exposed_port is None
        assert failed.terminated_at == process.created_at + timedelta(seconds=2)


async def test_fake_extra_apps_and_tokens(fake: FakeHathora) -> None:
    token = fake.add_token("second-token")
    app = fake.add_app("second-app")
    assert (token, app) == ("second-token", "second-app")
    async with HathoraClient(token, app, base_url=fake.url) as client:
        mine = await client.processes.create_process(Region.CHICAGO)
        assert mine.app_id == "second-app"
        # The first app's token works on the second app too (tokens are global here).
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as first:
            theirs = await first.processes.create_process(Region.CHICAGO)
            assert await first.processes.get_latest_processes() == [theirs]
        assert await client.processes.get_latest_processes() == [mine]
        with pytest.raises(NotFoundError):
            await client.processes.get_process_info(theirs.process_id)


async def test_fake_cli_serves_on_a_free_port() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hathora_async.testing",
        "--port",
        "0",
        "--token",
        "cli-token",
        "--app-id",
        "cli-app",
        "--stop-delay",
        "60",
        "--idle-timeout",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip() for _ in range(3)
        ]
        settings = dict(line.split("=", 1) for line in lines)
        assert settings["HATHORA_TOKEN"] == "cli-token"
        assert settings["HATHORA_APP_ID"] == "cli-app"
        assert settings["HATHORA_BASE_URL"].startswith("http://127.0.0.1:")
        assert not settings["HATHORA_BASE_URL"].endswith(":0")
        async with HathoraClient(
            "cli-token", "cli-app", base_url=settings["HATHORA_BASE_URL"]
        ) as client:
            process = await client.processes.create_process(Region.SEATTLE)
            assert process.app_id == "cli-app"
            assert await client.processes.get_latest_processes() == [process]
            await client.processes.stop_process(process.process_id)
            stopping = await client.processes.get_process_info(process.process_id)
            assert stopping.status is ProcessStatus.STOPPING  # --stop-delay took effect
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None


async def test_a_fault_on_a_misspelt_route_is_refused(fake: FakeHathora) -> None:
    # A fault that can never fire would make a user's fault test pass vacuously.
    with pytest.raises(ValueError, match=r"unknown route 'create'.*create_process"):
        fake.faults.add("create", Fault(status=500))
    with pytest.raises(ValueError, match="unknown route"):
        fake.faults.add_random("get_process", 0.5, [Fault(status=500)])
    with pytest.raises(ValueError, match="times"):
        fake.faults.add("create_process", Fault(status=500), times=0)
    fake.faults.add("create_room", Fault(status=500))  # rooms routes are known too
    fake.faults.add_random(None, 0.1, [Fault(status=503)])  # None: every route
