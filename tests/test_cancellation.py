"""Cancelling calls and closing the client mid-call, at every stage, over loopback.

Stages: connecting (a listening socket whose accept queue is full, so the TCP
handshake never completes), waiting for a pool slot, waiting for the answer (a
slow handler) and sleeping between retries (a scripted 503 and a long backoff).
Each must end promptly, leave no socket behind, and leave the client usable
(after a cancellation) or cleanly closed (after ``aclose``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hostile import black_hole

from hathora_async import ClientClosedError, HathoraClient, RetryPolicy, Timeouts
from hathora_async.testing import FakeHathora, Fault

PROMPT = 0.5  # seconds: "promptly", with room for a loaded CI machine

# Long waits everywhere, so that only the cancellation or the close can end a call.
SLOW_RETRY = RetryPolicy(initial_delay=30.0, max_delay=30.0, jitter=False)
LONG = Timeouts(connect=30.0, read=30.0, total=60.0)


@asynccontextmanager
async def client_for(fake: FakeHathora, **kwargs: Any) -> AsyncIterator[HathoraClient]:
    kwargs.setdefault("retry", SLOW_RETRY)
    kwargs.setdefault("timeout", LONG)
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, **kwargs) as client:
        yield client


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def _drained(fake: FakeHathora) -> int:
    for _ in range(200):
        if fake.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    return fake.open_connections


async def _ends_within(task: asyncio.Task[Any], limit: float = PROMPT) -> BaseException | None:
    """Wait for ``task`` to end (at most ``limit`` s); return what it raised."""
    done, _ = await asyncio.wait({task}, timeout=limit)
    assert done, f"the call did not end within {limit}s"
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


# -- cancellation ------------------------------------------------------------------


async def test_cancel_while_connecting() -> None:
    fake = FakeHathora(seed=11)
    with black_hole() as listener:
        port = listener.getsockname()[1]
        async with HathoraClient(
            fake.token,
            fake.app_id,
            base_url=f"http://127.0.0.1:{port}",
            timeout=LONG,
            max_connections=1,
        ) as client:
            call = asyncio.create_task(client.processes.create_process("Seattle"))
            await asyncio.sleep(0.2)
            assert not call.done()
            call.cancel()
            assert isinstance(await _ends_within(call), asyncio.CancelledError)

            # The one pool slot was given back: serve on the socket now, and the
            # same client gets through.
            runner = web.AppRunner(fake.app, handle_signals=False, handler_cancellation=True)
            await runner.setup()
            try:
                await web.SockSite(runner, listener).start()
                process = await asyncio.wait_for(
                    client.processes.create_process("Seattle"), timeout=5
                )
            finally:
                await client.aclose()
                await runner.cleanup()
    assert fake.processes_created == 1
    assert fake.processes()[0]["processId"] == process.process_id


async def test_cancel_while_waiting_for_the_answer(fake: FakeHathora) -> None:
    async with client_for(fake, max_connections=1) as client:
        fake.faults.add("get_latest_processes", Fault(latency=30.0))
        call = asyncio.create_task(client.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
        await asyncio.sleep(0.05)
        call.cancel()
        assert isinstance(await _ends_within(call), asyncio.CancelledError)
        # A half-read answer cannot be reused: the connection is closed, not leaked.
        assert await _drained(fake) == 0
        # And its pool slot (the only one) is free again.
        assert await asyncio.wait_for(client.processes.get_latest_processes(), 5) == []
        assert fake.request_counts["get_latest_processes"] == 2


async def test_cancel_while_sleeping_between_retries(fake: FakeHathora) -> None:
    async with client_for(fake, max_connections=1) as client:
        fake.faults.add("get_latest_processes", Fault(status=503))
        call = asyncio.create_task(client.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
        await asyncio.sleep(0.05)
        assert not call.done()  # sleeping its 30 s backoff
        call.cancel()
        assert isinstance(await _ends_within(call), asyncio.CancelledError)
        # The 503 was read in full, so its connection went back to the pool...
        assert fake.open_connections == 1
        await asyncio.wait_for(client.processes.get_latest_processes(), 5)
        # ...and the next call reused it.
        assert fake.open_connections == 1
        assert fake.request_counts["get_latest_processes"] == 2
    assert await _drained(fake) == 0


async def test_cancel_while_waiting_for_a_pool_slot(fake: FakeHathora) -> None:
    async with client_for(fake, max_connections=1) as client:
        fake.faults.add("get_latest_processes", Fault(latency=0.3))
        first = asyncio.create_task(client.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
        queued = asyncio.create_task(client.processes.get_latest_processes())
        await asyncio.sleep(0.05)
        queued.cancel()
        assert isinstance(await _ends_within(queued), asyncio.CancelledError)
        assert await first == []
        assert fake.request_counts["get_latest_processes"] == 1


async def test_a_timeout_around_a_call_is_not_swallowed(fake: FakeHathora) -> None:
    # The caller's own timeout (a cancellation underneath) stays a timeout.
    async with client_for(fake) as client:
        fake.faults.add("get_latest_processes", Fault(latency=30.0))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.processes.get_latest_processes(), timeout=0.1)
        assert not client.closed
    assert await _drained(fake) == 0


# -- closing the client mid-call ----------------------------------------------------


async def test_close_ends_calls_at_every_stage(fake: FakeHathora) -> None:
    client = HathoraClient(
        fake.token,
        fake.app_id,
        base_url=fake.url,
        retry=SLOW_RETRY,
        timeout=LONG,
        max_connections=2,
    )
    async with client:
        process = await client.processes.create_process("London")
        # Two calls hold the two connections, waiting for slow answers; one more
        # waits for a pool slot; one sleeps its backoff after a 503.
        fake.faults.add("get_process_info", Fault(status=503))
        sleeping = asyncio.create_task(client.processes.get_process_info(process.process_id))
        await _until(lambda: fake.request_counts["get_process_info"] == 1)
        fake.faults.add("get_latest_processes", Fault(latency=30.0), times=3)
        waiting = [asyncio.create_task(client.processes.get_latest_processes()) for _ in range(2)]
        await _until(lambda: fake.request_counts["get_latest_processes"] == 2)
        queued = asyncio.create_task(client.processes.get_latest_processes())
        await asyncio.sleep(0.05)
        calls = [sleeping, *waiting, queued]
        assert not any(call.done() for call in calls)
        started = time.monotonic()
    # ``async with`` closed the client.
    for call in calls:
        error = await _ends_within(call)
        assert isinstance(error, ClientClosedError), repr(error)
        assert error.outcome_unknown is False
    assert time.monotonic() - started < PROMPT
    assert fake.request_counts["get_latest_processes"] == 2
    assert await _drained(fake) == 0
    with pytest.raises(ClientClosedError):
        await client.processes.get_latest_processes()


async def test_close_while_connecting() -> None:
    fake = FakeHathora(seed=12)
    with black_hole() as listener:
        port = listener.getsockname()[1]
        client = HathoraClient(
            fake.token, fake.app_id, base_url=f"http://127.0.0.1:{port}", timeout=LONG
        )
        call = asyncio.create_task(client.processes.get_latest_processes())
        await asyncio.sleep(0.2)
        assert not call.done()
        await client.aclose()
        assert isinstance(await _ends_within(call), ClientClosedError)


async def test_a_create_ended_by_close_says_its_outcome_is_unknown(fake: FakeHathora) -> None:
    async with client_for(fake) as client:
        fake.faults.add("create_process", Fault(latency=30.0))
        call = asyncio.create_task(client.processes.create_process("Seattle"))
        await _until(lambda: fake.request_counts["create_process"] == 1)
        await asyncio.sleep(0.05)
    error = await _ends_within(call)
    assert isinstance(error, ClientClosedError)
    assert error.outcome_unknown is True
    assert fake.request_counts["create_process"] == 1
    assert await _drained(fake) == 0


async def test_closing_the_parent_ends_a_siblings_calls(fake: FakeHathora) -> None:
    async with client_for(fake) as client:
        sibling = client.with_options(timeout=50.0)
        fake.faults.add("get_latest_processes", Fault(latency=30.0))
        call = asyncio.create_task(sibling.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
    assert isinstance(await _ends_within(call), ClientClosedError)
    assert sibling.closed
    assert await _drained(fake) == 0


async def test_close_ends_calls_on_a_session_the_caller_owns(fake: FakeHathora) -> None:
    async with aiohttp.ClientSession() as session:
        client = HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            session=session,
            retry=SLOW_RETRY,
            timeout=LONG,
        )
        fake.faults.add("get_latest_processes", Fault(status=503))
        fake.faults.add("get_latest_processes", Fault(latency=30.0))
        sleeping = asyncio.create_task(client.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
        waiting = asyncio.create_task(client.processes.get_latest_processes())
        await _until(lambda: fake.request_counts["get_latest_processes"] == 2)
        await client.aclose()
        for call in (sleeping, waiting):
            assert isinstance(await _ends_within(call), ClientClosedError)
        # The caller's session is still theirs, open and working.
        assert not session.closed
        async with session.get(f"{fake.url}/processes/v2/{fake.app_id}/list/latest") as r:
            assert r.status == 401
    assert await _drained(fake) == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="needs Task.uncancel (3.11)")
async def test_a_cancel_racing_the_close_stays_a_cancel(fake: FakeHathora) -> None:
    client = HathoraClient(fake.token, fake.app_id, base_url=fake.url, timeout=LONG)
    fake.faults.add("get_latest_processes", Fault(latency=30.0))
    call = asyncio.create_task(client.processes.get_latest_processes())
    await _until(lambda: fake.request_counts["get_latest_processes"] == 1)
    call.cancel()
    await client.aclose()
    assert isinstance(await _ends_within(call), asyncio.CancelledError)
    assert await _drained(fake) == 0


async def test_closing_from_a_retry_sleep_does_not_cancel_the_caller(fake: FakeHathora) -> None:
    # close() from inside the call's own task (here, its injected sleep) must not
    # cancel that task: the call ends with ClientClosedError, the task lives on.
    holder: dict[str, HathoraClient] = {}

    async def close_instead_of_sleeping(delay: float) -> None:
        await holder["client"].aclose()

    client = HathoraClient(
        fake.token, fake.app_id, base_url=fake.url, sleep=close_instead_of_sleeping
    )
    holder["client"] = client
    fake.faults.add("get_latest_processes", Fault(status=503))
    with pytest.raises(ClientClosedError):
        await client.processes.get_latest_processes()
    await asyncio.sleep(0)  # still running: no pending cancellation was left behind
    assert client.closed
