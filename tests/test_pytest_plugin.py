"""The pytest plugin as users meet it: small test files run by pytester, in isolation.

Each inner run loads the plugin with ``-p hathora_async.pytest_plugin`` (also what
the entry point registers, under the same name: loading both is one plugin), and
the async frameworks' plugins through their own entry points (they are test
extras), as a user's run would. Warnings are errors; each fake's URL is recorded,
so the outer test can check that the fake is gone afterwards: no thread left, its
port refusing connections.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from yarl import URL

pytest_plugins = ["pytester"]

PLUGIN = "hathora_async.pytest_plugin"

# Shared by the inner test files: record where the fake served.
RECORD = """
import pathlib

def record(fake):
    with pathlib.Path("urls.txt").open("a") as f:
        f.write(fake.url + "\\n")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(record=RECORD)
    # pytest-asyncio (a test extra, so loaded by its entry point) warns without it.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest("-p", PLUGIN, "-p", "no:cacheprovider", "-W", "error", *args)


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hathora-fake"]


def recorded_urls(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "urls.txt").read_text().split()


def assert_gone(urls: list[str]) -> None:
    """No fake thread alive, and nothing listening where the fakes served."""
    assert fake_threads() == []
    for url in urls:
        parsed = URL(url)
        assert parsed.host is not None and parsed.port is not None
        with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
            probe.connect((parsed.host, parsed.port))


def test_a_sync_test_gets_a_running_fake_and_its_admin_api(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        import pytest
        from record import record

        from hathora_async import HathoraClient, RetryPolicy, ServerError
        from hathora_async.testing import Fault, ThreadedFake


        async def create(fake):
            async with HathoraClient(
                fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
            ) as client:
                return await client.processes.create_process("Seattle")


        def test_sync(hathora_fake):
            record(hathora_fake)
            assert isinstance(hathora_fake, ThreadedFake)
            process = asyncio.run(create(hathora_fake))
            assert [p["processId"] for p in hathora_fake.processes()] == [process.process_id]
            hathora_fake.set_rooms_allocated(process.process_id, 2)
            assert hathora_fake.process(process.process_id)["roomsAllocated"] == 2
            hathora_fake.faults.add("create_process", Fault(status=500))
            with pytest.raises(ServerError):
                asyncio.run(create(hathora_fake))
            assert hathora_fake.request_counts["create_process"] == 2
            assert hathora_fake.processes_created == 1
            with pytest.raises(ValueError, match="unknown route"):
                hathora_fake.faults.add("create_proces", Fault(status=500))
            with pytest.raises(KeyError):
                hathora_fake.process("nope")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert_gone(recorded_urls(pytester))


def test_an_async_test_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from record import record

        from hathora_async import HathoraClient


        @pytest.mark.asyncio
        async def test_async(hathora_fake):
            record(hathora_fake)
            async with HathoraClient(
                hathora_fake.token, hathora_fake.app_id, base_url=hathora_fake.url
            ) as client:
                created = await client.processes.create_process("Tokyo")
                hathora_fake.fail_process(created.process_id)
                info = await client.processes.get_process_info(created.process_id)
            assert info.status in ("stopping", "stopped")
            assert hathora_fake.request_counts["get_process_info"] == 1
        """
    )
    result = run(pytester, "-o", "asyncio_mode=strict")
    result.assert_outcomes(passed=1)
    assert_gone(recorded_urls(pytester))


def test_an_async_test_under_anyio(pytester: pytest.Pytester) -> None:
    pytest.importorskip("anyio")
    pytester.makepyfile(
        """
        import pytest
        from record import record

        from hathora_async import HathoraClient


        @pytest.fixture
        def anyio_backend():
            return "asyncio"


        @pytest.mark.anyio
        async def test_anyio(hathora_fake):
            record(hathora_fake)
            async with HathoraClient(
                hathora_fake.token, hathora_fake.app_id, base_url=hathora_fake.url
            ) as client:
                room = await client.rooms.create_room("London")
            assert hathora_fake.room(room.room_id)["roomId"] == room.room_id
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert_gone(recorded_urls(pytester))


def test_an_async_test_under_pytest_aiohttp(pytester: pytest.Pytester) -> None:
    # A matchmaker's own aiohttp app under pytest-aiohttp's client, calling the fake.
    pytest.importorskip("pytest_aiohttp")
    pytester.makepyfile(
        """
        from aiohttp import web
        from record import record

        from hathora_async import HathoraClient


        async def test_matchmaker(hathora_fake, aiohttp_client):
            record(hathora_fake)

            async def match(request):
                async with HathoraClient(
                    hathora_fake.token, hathora_fake.app_id, base_url=hathora_fake.url
                ) as client:
                    room = await client.rooms.create_room("Chicago")
                return web.json_response({"roomId": room.room_id})

            app = web.Application()
            app.router.add_post("/match", match)
            client = await aiohttp_client(app)
            answer = await (await client.post("/match")).json()
            assert hathora_fake.room(answer["roomId"])["status"] in ("scheduling", "active")
        """
    )
    result = run(pytester, "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1)
    assert_gone(recorded_urls(pytester))


def test_marker_options_reach_the_fake_and_the_closest_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        import pytest
        from record import record

        from hathora_async import HathoraClient

        pytestmark = pytest.mark.hathora_fake(boot_delay=60.0, seed=3)


        def create(fake):
            async def go():
                async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as c:
                    return await c.processes.create_process("Dallas")
            return asyncio.run(go())


        def test_module_options(hathora_fake):
            record(hathora_fake)
            assert create(hathora_fake).status == "starting"


        @pytest.mark.hathora_fake(boot_delay=0.0, boot_failure_rate=1.0)
        def test_closest_wins(hathora_fake):
            record(hathora_fake)
            process = create(hathora_fake)
            assert hathora_fake.process(process.process_id)["status"] == "failed"


        @pytest.mark.hathora_fake(token="tok-1", app_id="app-1")
        def test_identity(hathora_fake):
            record(hathora_fake)
            assert (hathora_fake.token, hathora_fake.app_id) == ("tok-1", "app-1")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert_gone(recorded_urls(pytester))


def test_bad_marker_options_fail_the_test_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest


        @pytest.mark.hathora_fake(boot_dealy=1.0)
        def test_typo(hathora_fake):
            pass


        @pytest.mark.hathora_fake(0.5)
        def test_positional(hathora_fake):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*unexpected keyword argument 'boot_dealy'*"])
    result.stdout.fnmatch_lines(["*takes keyword arguments only*"])
    assert fake_threads() == []


def test_two_tests_get_two_fakes_and_a_test_can_run_another(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        from record import record

        from hathora_async import HathoraClient
        from hathora_async.testing import ThreadedFake


        async def create(fake, region):
            async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as c:
                return await c.processes.create_process(region)


        def test_first(hathora_fake):
            record(hathora_fake)
            asyncio.run(create(hathora_fake, "Mumbai"))
            assert hathora_fake.processes_created == 1


        def test_second_starts_empty(hathora_fake):
            record(hathora_fake)
            assert hathora_fake.processes() == []


        def test_side_by_side(hathora_fake):
            record(hathora_fake)
            with ThreadedFake(seed=9) as other:
                record(other)
                assert other.port != hathora_fake.port
                asyncio.run(create(other, "Sydney"))
                assert (other.processes_created, hathora_fake.processes_created) == (1, 0)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3)
    urls = recorded_urls(pytester)
    assert len(set(urls)) == 4
    assert_gone(urls)


def test_hathora_env_points_the_environment_at_the_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import os

        from hathora_async import HathoraClient


        def test_env(hathora_env, hathora_fake):
            assert hathora_env is hathora_fake
            assert os.environ["HATHORA_BASE_URL"] == hathora_fake.url
            assert os.environ["HATHORA_APP_ID"] == hathora_fake.app_id
            assert os.environ["HATHORA_TOKEN"] == hathora_fake.token

            async def go():
                async with HathoraClient.from_env() as client:
                    return await client.processes.create_process("Frankfurt")

            process = asyncio.run(go())
            assert hathora_fake.process(process.process_id)["region"] == "Frankfurt"


        def test_env_is_restored():
            assert "HATHORA_BASE_URL" not in os.environ
        """
    )
    monkeypatch.delenv("HATHORA_BASE_URL", raising=False)
    result = run(pytester)
    result.assert_outcomes(passed=2)


def test_loading_the_plugin_twice_is_one_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
    pytester.makepyfile(
        """
        def test_ok(hathora_fake):
            assert hathora_fake.url.startswith("http://127.0.0.1:")
        """
    )
    result = run(pytester, "-p", PLUGIN)
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", PLUGIN, "--markers")
    assert result.stdout.str().count("@pytest.mark.hathora_fake(**options)") == 1


def test_the_package_does_not_import_pytest_and_the_plugin_loads_nothing_more() -> None:
    code = (
        "import sys, threading\n"
        "import hathora_async\n"
        "assert 'pytest' not in sys.modules, 'hathora_async imported pytest'\n"
        "import hathora_async.pytest_plugin\n"
        "assert 'hathora_async.testing' not in sys.modules, 'the plugin imported the fake'\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
