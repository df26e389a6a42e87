"""A seeded sweep of hostile answers over every endpoint (issue 9).

For each endpoint (processes and rooms) the hostile server answers a shuffled
sequence of bad answers: compression bombs, deep nesting, wrong types, huge
headers, drops, cut bodies, redirects, slow drips, wrong content types, invalid
UTF-8, empty successes, oversized error messages. Every call must end in its
result or a typed ``HathoraError``, within its deadline, in bounded memory; a
failed ``create_process`` must say ``outcome_unknown`` whenever the server may
have acted (anything but a 4xx refusal). ``HATHORA_SWEEP_SEED`` picks another order.
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

from hathora_async import HathoraError, RetryPolicy, Timeouts

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
