"""ThreadedFake: a FakeHathora on its own thread and loop, reached from any thread."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from hathora_async import HathoraClient, RetryPolicy, ServerError
from hathora_async.testing import Fault, ThreadedFake


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hathora-fake"]


def test_a_bad_option_raises_in_the_caller_and_leaves_no_thread() -> None:
    with pytest.raises(TypeError, match="boot_dealy"), ThreadedFake(boot_dealy=1):
        pass
    assert fake_threads() == []


def test_a_taken_port_raises_in_the_caller_and_leaves_no_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError), ThreadedFake(port=port):
            pass
    assert fake_threads() == []


def test_stop_closes_the_port_and_ends_the_thread_and_is_idempotent() -> None:
    fake = ThreadedFake(seed=1)
    fake.start()
    port = fake.port
    assert fake_threads() != []
    fake.stop()
    fake.stop()
    assert fake_threads() == []
    with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
        probe.connect(("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="not running"):
        fake.add_app()
    with pytest.raises(RuntimeError, match="already started"):
        fake.start()


def test_errors_of_admin_calls_reach_the_caller() -> None:
    with ThreadedFake() as fake:
        with pytest.raises(KeyError):
            fake.process("nope")
        with pytest.raises(KeyError):
            fake.room("nope")
        with pytest.raises(ValueError, match="rate"):
            fake.faults.add_random(None, 2.0, [Fault(status=500)])


def test_a_call_made_on_the_fakes_own_thread_runs_at_once() -> None:
    # Waiting on its own loop would deadlock: it runs in place instead.
    with ThreadedFake() as fake:
        assert fake.call(lambda _: fake.processes_created) == 0
        assert fake.call(lambda _: threading.current_thread().name) == "hathora-fake"


def test_admin_calls_from_many_threads_at_once() -> None:
    with ThreadedFake(seed=2) as fake:
        with ThreadPoolExecutor(8) as pool:
            apps = set(pool.map(lambda i: fake.add_app(f"app-{i}"), range(50)))
        assert len(apps) == 50


async def test_it_serves_an_async_test_and_its_faults_apply() -> None:
    with ThreadedFake(seed=3) as fake:
        fake.faults.add("create_process", Fault(status=500), times=2)
        async with HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
        ) as client:
            for _ in range(2):
                with pytest.raises(ServerError):
                    await client.processes.create_process("Seattle")
            created = await client.processes.create_process("Seattle")
            rooms = await client.rooms.create_room("Seattle")
        assert fake.request_counts["create_process"] == 3
        assert fake.processes()[0]["processId"] == created.process_id
        assert fake.rooms_created == 1
        assert fake.room(rooms.room_id)["roomId"] == rooms.room_id
        fake.faults.clear()
