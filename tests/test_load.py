"""Load under random faults: 5,000 calls, 200 at a time, ~10% of requests failing.

Not a benchmark (nothing is timed): it checks that under load and faults every
call ends with a result or a ``HathoraError``, that no create call ever makes
two processes, and that closing the client leaves no connection open.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from hathora_async import (
    HathoraClient,
    HathoraConnectionError,
    HathoraError,
    ProcessV2,
    RateLimit,
    RateLimitedError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
)
from hathora_async.testing import FakeHathora, Fault

CALLS = 5_000
CONCURRENCY = 200
FAULT_RATE = 0.1

FAULTS = [
    Fault(status=429),
    Fault(status=429, retry_after="0"),
    Fault(status=500),
    Fault(status=502),
    Fault(status=503),
    Fault(status=504),
    Fault(drop="before"),
    Fault(drop="after"),
    Fault(body="truncated"),
    Fault(body="malformed"),
    Fault(latency=0.02),
]
# What those faults may surface as once retries are exhausted or not allowed.
INJECTED_ERRORS = (RateLimitedError, ServerError, HathoraConnectionError, ResponseDecodeError)
REGIONS = ["Seattle", "London", "Tokyo", "Frankfurt", "Sao_Paulo"]


async def test_load_with_random_faults() -> None:
    rng = random.Random(2024)
    # Decide every call's operation up front, so the mix does not depend on timing.
    ops = rng.choices(["create", "info", "list", "stop"], weights=[35, 30, 20, 15], k=CALLS)
    created_ids: list[str] = []
    outcomes: Counter[tuple[str, str]] = Counter()
    unknown_creates = 0
    foreign: list[BaseException] = []

    async with FakeHathora(seed=7) as fake:
        fake.faults.add_random(None, FAULT_RATE, FAULTS, seed=99)
        policy = RetryPolicy(attempts=5, initial_delay=0.001, max_delay=0.01)
        client = HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=policy,
            max_connections=CONCURRENCY + 56,
            # Random 429 faults stand for refusals here, not for a rate limit to
            # adapt to (test_ratelimit.py and the benchmark cover that).
            rate_limit=RateLimit(adaptive=False),
        )
        async with client:
            # A few processes to read and stop before the first creates return.
            for region in REGIONS:
                created_ids.append((await client.processes.create_process(region)).process_id)
            seeded = len(created_ids)
            calls = iter(enumerate(ops))

            async def one(index: int, op: str) -> None:
                nonlocal unknown_creates
                api = client.processes
                target = created_ids[index % len(created_ids)]
                try:
                    if op == "create":
                        process = await api.create_process(REGIONS[index % len(REGIONS)])
                        assert isinstance(process, ProcessV2)
                        created_ids.append(process.process_id)
                    elif op == "info":
                        assert (await api.get_process_info(target)).process_id == target
                    elif op == "list":
                        assert len(await api.get_latest_processes()) <= 10
                    else:
                        await api.stop_process(target)
                except HathoraError as error:
                    outcomes[op, type(error).__name__] += 1
                    if op == "create" and error.outcome_unknown:
                        unknown_creates += 1
                except BaseException as error:  # anything else is a bug
                    foreign.append(error)
                else:
                    outcomes[op, "ok"] += 1

            async def worker() -> None:
                for index, op in calls:
                    await one(index, op)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        # The client is closed: the fake must see every connection go.
        for _ in range(300):
            if fake.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        open_after_close = fake.open_connections
        processes_created = fake.processes_created
        fake_ids = {p["processId"] for p in fake.processes()}
        requests = sum(fake.request_counts.values())

    assert foreign == []
    assert sum(outcomes.values()) == CALLS
    create_ok = outcomes["create", "ok"]
    returned = created_ids[seeded:]
    assert len(returned) == create_ok
    # No process was handed out twice, and each one returned really exists.
    assert len(set(created_ids)) == len(created_ids)
    assert set(created_ids) <= fake_ids
    # No create call made two processes: the only processes nobody got back are
    # those of creates reported as outcome unknown.
    assert processes_created - seeded <= create_ok + unknown_creates
    assert processes_created - seeded >= create_ok
    assert open_after_close == 0

    # The faults did happen and were mostly absorbed by retries.
    assert requests > CALLS * 1.05
    ok = sum(n for (_, kind), n in outcomes.items() if kind == "ok")
    assert ok > CALLS * 0.9
    assert unknown_creates > 0
    # The only failures are the injected kinds: never a 404, a 401 or a bug.
    failures = {kind for (_, kind), _n in outcomes.items() if kind != "ok"}
    assert failures <= {cls.__name__ for cls in INJECTED_ERRORS}, outcomes
