"""``python -m hathora_async demo --replicas N``: replicas share one Redis, hand over, clean up."""

from __future__ import annotations

import io
import re

import pytest
from redis_server import redis_server

from hathora_async._replicas_demo import run_replicas_demo
from hathora_async.cli._main import main


async def test_the_replicas_demo_shows_one_leader_hands_over_and_stops_everything() -> None:
    out = io.StringIO()
    with redis_server() as server:
        assert await run_replicas_demo(2, server.url, out=out, hold=1.5) == 0
    text = out.getvalue()
    leaders = re.findall(r"leader: (replica-\d)", text)
    assert set(leaders) == {"replica-1", "replica-2"}  # the first left, the other took over
    assert "replica-2 leaves (the last: it stops the pool's processes)" in text
    assert re.search(r"done: \d+ process\(es\) created in all, 0 left running", text)


def test_the_cli_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    with redis_server() as server:
        assert main(["demo", "--replicas", "2", "--redis", server.url]) == 0
    out = capsys.readouterr().out
    assert "2 replica(s) of pool" in out and "0 left running" in out
