"""A seeded sweep of hostile answers over every endpoint (issue 9).

For each endpoint (processes and rooms) the hostile server answers a shuffled
sequence of bad answers: compression bombs, deep nesting, wrong types, huge
headers, drops, cut bodies, redirects, slow drips, wrong content types, invalid
UTF-8, empty successes, oversized error messages. Every call must end in its
result or a typed ``HathoraError``, within its deadline, in bounded memory; a
failed ``create_process`` must say ``outcome_unknown`` whenever the server may
have acted (anything but a 4xx refusal). A second, seeded part runs ``preallocate``
against an impolite fake (its clock skewed either way, reads lagging creates,
answers lost after it acted, unreadable 201s, refusals) and checks that every
process the server made is in the result. ``HATHORA_SWEEP_SEED`` picks another order.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from collections.abc import Callable

import attrs
import pytest
from hostile import OPS, Canned, Op, bomb, hostile_client, hostile_server

from hathora_async import HathoraClient, HathoraError, Region, RetryPolicy, Timeouts
from hathora_async import _constants as C
from hathora_async.testing import FakeHathora, Fault

SEED = int(os.environ.get("HATHORA_SWEEP_SEED", "9"))
MiB = 1024 * 1024
TIMEOUTS = Timeouts(connect=0.5, read=0.1, total=0.3)
# Loopback under a loaded machine: a call may overrun its deadline by scheduling only.
TIME_MARGIN = 1.0
MEMORY_BOUND = 16 * MiB


@attrs.frozen
class Bad:
    """One hostile answer. ``acted``: the server may have carried the request out."""

    name: str
    make: Callable[[Op], Canned]
    acted: bool = True


def _success_status(op: Op) -> int:
    return 201 if op.creates_process else 200


def _valid(op: Op) -> bytes:
    return op.body if op.body is not None else b"{}"


BAD_ANSWERS = [
    Bad("gzip-bomb", lambda op: attrs.evolve(bomb("gzip"), status=_success_status(op))),
    Bad("deflate-bomb", lambda op: attrs.evolve(bomb("deflate"), status=_success_status(op))),
    Bad("raw-deflate-bomb-503", lambda op: attrs.evolve(bomb("raw-deflate"), status=503)),
    Bad("deep-array", lambda op: Canned(_success_status(op), b"[" * 5000 + b"]" * 5000)),
    Bad(
        "deep-object", lambda op: Canned(_success_status(op), b'{"a":' * 5000 + b"1" + b"}" * 5000)
    ),
    Bad("deep-error-body", lambda op: Canned(500, b'{"message":' * 5000 + b"1" + b"}" * 5000)),
    Bad("wrong-types", lambda op: Canned.json({"processId": 1, "roomId": [], "status": {}})),
    Bad("wrong-shape", lambda op: Canned.json("just a string", _success_status(op))),
    Bad("null", lambda op: Canned.json(None, _success_status(op))),
    Bad("invalid-utf8", lambda op: Canned(_success_status(op), b'{"processId": "\xff\xfe"}')),
    Bad("empty-2xx", lambda op: Canned(_success_status(op), b"")),
    Bad(
        "wrong-content-type",
        lambda op: attrs.evolve(Canned(_success_status(op), _valid(op)), content_type="text/html"),
    ),
    Bad("huge-header", lambda op: Canned(200, _valid(op), {"X-Pad": "p" * 30_000})),
    Bad("many-headers", lambda op: Canned(200, _valid(op), {f"X-H{i}": "v" for i in range(300)})),
    Bad("drop", lambda op: Canned(drop=True)),
    Bad("cut-body", lambda op: Canned(_success_status(op), _valid(op), cut=5)),
    Bad(
        "corrupt-gzip",
        lambda op: Canned(200, b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"}),
    ),
    Bad("redirect-303", lambda op: Canned(303, b"", {"Location": "/elsewhere"})),
    Bad("redirect-307", lambda op: Canned(307, b"", {"Location": "http://169.254.169.254/"})),
    Bad("slow-drip", lambda op: Canned(_success_status(op), _valid(op), drip=0.06, drip_bytes=2)),
    Bad("stalled-drip", lambda op: Canned(_success_status(op), _valid(op), drip=0.2)),
    Bad("slow-headers", lambda op: Canned(_success_status(op), _valid(op), delay=0.5)),
    Bad(
        "huge-message-400",
        lambda op: Canned.json({"message": "\x1b[2J" * 20_000}, 400),
        acted=False,
    ),
    Bad(
        "retry-after-nan-503",
        lambda op: Canned.json({"message": "x"}, 503, **{"Retry-After": "nan"}),
    ),
    Bad("chunked-oversize", lambda op: Canned(200, b"[" + b" " * (5 * MiB) + b"]", chunked=True)),
]


@pytest.mark.parametrize("op", OPS, ids=str)
async def test_hostile_sweep(op: Op) -> None:
    answers = list(BAD_ANSWERS)
    random.Random(f"{SEED}-{op.name}").shuffle(answers)
    policy = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.01)
    tracemalloc.start()
    try:
        async with (
            hostile_server() as server,
            hostile_client(server, timeout=TIMEOUTS, retry=policy) as client,
        ):
            for bad in answers:
                server.answer(bad.make(op))
                sent_before = len(server.seen)
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                started = time.monotonic()
                try:
                    await op.call(client)
                    error = None
                except HathoraError as exc:  # anything else fails the sweep
                    error = exc
                elapsed = time.monotonic() - started
                growth = tracemalloc.get_traced_memory()[1] - base
                where = f"{op.name} / {bad.name} (seed {SEED})"
                assert elapsed < TIMEOUTS.total + TIME_MARGIN, f"{where}: took {elapsed:.2f}s"
                assert growth < MEMORY_BOUND, f"{where}: grew {growth / MiB:.1f} MiB"
                if error is None:
                    continue
                assert len(str(error)) < 2000, where
                assert "\x1b" not in str(error) and "\n" not in str(error), where
                if op.creates_process and len(server.seen) > sent_before:
                    assert error.outcome_unknown is bad.acted, f"{where}: {error!r}"
                elif not op.creates_process:
                    assert error.outcome_unknown is False, where
    finally:
        tracemalloc.stop()


# -- the impolite fake: skew, lag and lost answers around creates ----------------

SKEWS = (-3600.0, -60.0, 0.0, 60.0, 3600.0)
CREATE_FAULTS = (
    Fault(drop="after"),  # acted, answer lost
    Fault(drop="before"),  # not acted
    Fault(body="malformed"),  # acted, 201 unreadable
    Fault(body="truncated"),  # acted, 201 cut short
    Fault(status=429, retry_after="0"),  # refused
    Fault(status=503),  # not acted, but the client cannot know
)
READ_FAULTS = (Fault(status=404), Fault(status=503), Fault(drop="before"))


@pytest.mark.parametrize("case", range(6))
async def test_impolite_fake_sweep_loses_no_process(
    case: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A seeded mix of what a real Hathora does around creates: its clock is not
    # ours (either direction), reads lag a create, answers are lost after the
    # server acted. Whatever happens, every process the server made is in the
    # result: created, or found as a stray.
    rng = random.Random(SEED * 1000 + case)
    monkeypatch.setattr(C, "READ_AFTER_CREATE_GRACE", 1.5)
    lag = rng.choice((0.0, 0.4))
    async with FakeHathora(
        boot_delay=(0.02, 0.1),
        clock_offset=rng.choice(SKEWS),
        read_after_create_lag=lag,
        seed=case,
    ) as fake:
        fake.faults.add_random("create_process", 0.4, CREATE_FAULTS, seed=case)
        fake.faults.add_random("get_process_info", 0.2, READ_FAULTS, seed=case + 1)
        plan = {Region.LONDON: rng.randint(1, 3), Region.TOKYO: rng.randint(1, 3)}
        wait = rng.random() < 0.5
        async with HathoraClient(
            fake.token,
            fake.app_id,
            base_url=fake.url,
            retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02),
        ) as client:
            started = time.monotonic()
            result = await client.preallocate(plan, wait=wait, timeout=10.0)
            elapsed = time.monotonic() - started
        made = {p["processId"] for p in fake.processes()}
    found = set(result.created) | {p.process_id for p in result.strays}
    assert made <= found, f"lost {made - found} (lag={lag}, wait={wait})"
    for failure in result.failed:
        assert isinstance(failure.error, HathoraError)
    # Creates, waits and the stray search (grace window included) stay bounded.
    assert elapsed < 10.0 + C.READ_AFTER_CREATE_GRACE + 5.0
