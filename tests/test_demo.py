"""``python -m hathora_async demo``: runs on its own against the embedded fake, then cleans up."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from hathora_async import (
    HathoraClient,
    ProcessStatus,
    RateLimitedError,
    Region,
    RetryPolicy,
    RoomStatus,
)
from hathora_async.cli import main
from hathora_async.cli._demo import DemoSettings, _budget_line, run_demo
from hathora_async.cli._progress import percentile
from hathora_async.testing import FakeHathora, Fault

ENV_KEYS = ("HATHORA_TOKEN", "HATHORA_APP_ID", "HATHORA_BASE_URL")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(extra)
    return env


def _run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hathora_async", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
    )


def _table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 6:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_demo_ends_on_its_own_with_a_summary_and_stops_everything() -> None:
    done = _run("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "embedded fake Hathora" in out
    rows = _table_rows(out)
    assert rows["region"] == ["requested", "running", "failed", "median", "p95"]
    assert {r.value for r in Region} <= set(rows)
    for region in Region:
        requested, running, failed, median, p95 = rows[region.value]
        assert requested == "3"
        assert int(running) + int(failed) == 3
        if int(running):
            assert float(median.rstrip("s")) <= float(p95.rstrip("s")) < 10
    total = rows["total"]
    assert total[0] == "42" and int(total[1]) + int(total[2]) == 42
    assert int(total[1]) > 30  # only a few boot failures
    # Processes that failed to boot have ended: not stopped, and not counted as stopped.
    ended = int(total[2])
    said = f"Stopped {42 - ended} of the 42 processes created"
    assert (f"{said}; {ended} had already ended." if ended else f"{said}.") in out, out
    assert "Processes still alive on the fake: 0" in out
    # Rooms timed warm (landing on a pre-allocated process) and cold (a new process).
    # A cold room whose new process failed to boot (5% do) is timed again, and says so.
    rooms = re.findall(
        r"^\| (\w+)\s+\| (\d+) ms \(pre-allocated\)\s+\| (\d+) ms \(new process(?:, 2nd try)?\)",
        out,
        re.M,
    )
    assert len(rooms) == 3, out
    for _region, warm_ms, cold_ms in rooms:
        assert int(warm_ms) < int(cold_ms)
    # Not a terminal: plain lines, no cursor movement.
    assert "\x1b[" not in out


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    top = _run("--help", timeout=30)
    assert top.returncode == 0 and "demo" in top.stdout
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0 and "--per-region" in capsys.readouterr().out
    assert main([]) == 2 and "demo" in capsys.readouterr().err


def test_bad_flags_and_half_set_credentials_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--regions", "Seattle,Atlantis"])
    assert exited.value.code == 2 and "Atlantis" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--per-region", "0"])
    monkeypatch.setenv("HATHORA_TOKEN", "x")
    monkeypatch.delenv("HATHORA_APP_ID", raising=False)
    assert main(["demo"]) == 2
    assert "HATHORA_APP_ID" in capsys.readouterr().err


async def test_live_mode_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    out = io.StringIO()
    settings = DemoSettings(
        per_region=2,
        regions=(Region.SEATTLE, Region.TOKYO),
        live=True,
        fake_boot_delay=(0.05, 0.2),
        fake_boot_failure_rate=0.0,  # every count below is exact
    )
    assert await run_demo(settings, out) == 0
    text = out.getvalue()
    assert "\x1b[2A" in text  # cursor up over the two region lines
    assert re.search(r"Seattle\s+\[#{2}\]", text)
    assert "Stopped 4 of the 4 processes created." in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile([3.0], 0.95) == 3.0


class _Watch(io.StringIO):
    """Output that signals once a given text is written."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def write(self, s: str) -> int:
        if self.text in s:
            self.seen.set()
        return super().write(s)


async def test_an_interrupted_demo_stops_what_it_created(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    out = _Watch("all creates answered")
    settings = DemoSettings(per_region=2, live=False, fake_boot_delay=(30.0, 40.0))
    task = asyncio.create_task(run_demo(settings, out))
    await out.seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "Cancelled: stopped 28 of 28 created." in out.getvalue()


async def test_a_demo_interrupted_while_timing_rooms_still_stops_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    # "Done in" is printed just before the rooms are timed on the pre-allocated processes.
    out = _Watch("Done in")
    settings = DemoSettings(
        per_region=1, live=False, fake_boot_delay=(0.05, 0.1), fake_boot_failure_rate=0.0
    )
    task = asyncio.create_task(run_demo(settings, out))
    await out.seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "Stopped 14 of the 14 processes created." in out.getvalue()


async def _someone_elses_match(
    monkeypatch: pytest.MonkeyPatch, rooms_per_process: int
) -> tuple[str, str, FakeHathora]:
    """Run the demo in Seattle against a fake where another user's process already
    hosts their room "livematch1"; returns that process's id and the demo's output."""
    async with FakeHathora(boot_delay=0.05, rooms_per_process=rooms_per_process) as fake:
        async with HathoraClient(fake.token, fake.app_id, base_url=fake.url) as client:
            theirs = await client.processes.create_process(Region.SEATTLE)
            await client.processes.wait_for_process(theirs.process_id, poll_interval=0.05)
            room = await client.rooms.create_room(Region.SEATTLE, room_id="livematch1")
            assert room.process_id == theirs.process_id
            monkeypatch.setenv("HATHORA_TOKEN", fake.token)
            monkeypatch.setenv("HATHORA_APP_ID", fake.app_id)
            monkeypatch.setenv("HATHORA_BASE_URL", str(fake.url))
            out = io.StringIO()
            settings = DemoSettings(per_region=1, regions=(Region.SEATTLE,), live=False)
            assert await run_demo(settings, out) == 0
            after = await client.processes.get_process_info(theirs.process_id)
            assert after.status == ProcessStatus.RUNNING
            match = await client.rooms.get_room_info("livematch1")
            assert match.status == RoomStatus.ACTIVE
            assert match.current_allocation is not None
            assert match.current_allocation.process_id == theirs.process_id
        return theirs.process_id, out.getvalue(), fake


async def test_the_demo_never_stops_a_process_it_did_not_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Room for more: both timed rooms land on the other user's process (the
    # fake fills the fullest first), which the demo used to stop as a "cold start".
    theirs, output, fake = await _someone_elses_match(monkeypatch, rooms_per_process=4)
    rows = _table_rows_3(output)
    assert rows["Seattle"][1].endswith("(landed on an existing process not made by the demo)")
    assert "new process" not in output
    alive = [p["processId"] for p in fake.processes() if p["status"] in ("starting", "running")]
    assert alive == [theirs]


async def test_the_demo_still_stops_the_process_its_cold_room_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Theirs is full: the cold room needs a new process, which the demo made and stops.
    theirs, output, fake = await _someone_elses_match(monkeypatch, rooms_per_process=1)
    rows = _table_rows_3(output)
    assert rows["Seattle"] == [
        rows["Seattle"][0].split(" (")[0] + " (pre-allocated)",
        rows["Seattle"][1].split(" (")[0] + " (new process)",
    ]
    alive = [p["processId"] for p in fake.processes() if p["status"] in ("starting", "running")]
    assert alive == [theirs]


def _table_rows_3(output: str) -> dict[str, list[str]]:
    """The rooms table: region -> (warm cell, cold cell)."""
    rows = {}
    for line in output.split("Time from CreateRoom")[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3:
            rows[cells[0]] = cells[1:]
    return rows


def _failing_boots(monkeypatch: pytest.MonkeyPatch, fake: FakeHathora, *failing: int) -> None:
    """Make the fake's processes created ``failing``-th (1-based) fail to boot."""
    create = fake.world.create_process
    made = 0

    def create_process(*args: Any, **kwargs: Any) -> Any:
        nonlocal made
        made += 1
        process = create(*args, **kwargs)
        process.boot_fails = made in failing
        return process

    monkeypatch.setattr(fake.world, "create_process", create_process)


async def _demo_on(
    monkeypatch: pytest.MonkeyPatch, fake: FakeHathora, per_region: int = 1
) -> tuple[int, str]:
    monkeypatch.setenv("HATHORA_TOKEN", fake.token)
    monkeypatch.setenv("HATHORA_APP_ID", fake.app_id)
    monkeypatch.setenv("HATHORA_BASE_URL", str(fake.url))
    out = io.StringIO()
    settings = DemoSettings(per_region=per_region, regions=(Region.SEATTLE,), live=False)
    return await run_demo(settings, out), out.getvalue()


async def test_a_cold_room_whose_new_process_fails_to_boot_is_timed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Process 1 is pre-allocated; 2 is the cold room's, and fails to boot; 3 is the retry's.
    async with FakeHathora(boot_delay=0.2) as fake:
        _failing_boots(monkeypatch, fake, 2)
        code, output = await _demo_on(monkeypatch, fake)
        assert code == 0, output
        warm, cold = _table_rows_3(output)["Seattle"]
        assert warm.endswith(" ms (pre-allocated)")
        assert re.fullmatch(r"\d+ ms \(new process, 2nd try\)", cold), output
        first, second = (p["processId"] for p in fake.processes()[1:])
        assert f"its new process {first} failed to boot; timed a second room" in output
        assert fake.process(first)["startedAt"] is None  # it never ran
        assert fake.process(second)["status"] in ("stopping", "stopped")  # the demo stopped it


async def test_a_cold_room_is_retried_once_only(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeHathora(boot_delay=0.2) as fake:
        _failing_boots(monkeypatch, fake, 2, 3)
        code, output = await _demo_on(monkeypatch, fake)
        assert code == 0, output
        assert _table_rows_3(output)["Seattle"][1] == "failed: RoomDestroyedError"
        assert fake.processes_created == 3


async def test_processes_that_failed_to_boot_are_not_counted_as_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeHathora(boot_delay=0.2) as fake:
        _failing_boots(monkeypatch, fake, 1)  # one of the three pre-allocated
        code, output = await _demo_on(monkeypatch, fake, per_region=3)
        assert code == 0, output
        assert "Stopped 2 of the 3 processes created; 1 had already ended." in output


async def test_the_demo_says_its_pace_is_a_probe_not_the_servers_limit() -> None:
    # The pace probes above the last limit while calls succeed: the demo must not
    # call it the limit it found (it used to say "now paces at 25.8/s" behind 20/s).
    async with (
        FakeHathora(rate_limit=2.0, rate_burst=1, retry_after=None) as fake,
        HathoraClient(
            fake.token, fake.app_id, base_url=fake.url, retry=RetryPolicy.none()
        ) as client,
    ):
        assert _budget_line(client, 2.0) == "Send budget: never answered 429, not pacing.\n"
        for _ in range(20):
            with contextlib.suppress(RateLimitedError):
                await client.processes.get_latest_processes()
        state = client.rate_limit_state
        assert state.throttled and state.rate is not None
        line = _budget_line(client, 2.0)
        assert f"{state.throttled} answers were 429" in line
        assert f"probing at {state.rate:.1f} requests/s now" in line
        assert "(its pace, not the limit: the fake's is 2/s)" in line
        assert "(its pace, not the limit)" in _budget_line(client)


async def test_against_a_real_app_a_lost_answers_process_is_named_not_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real app may have other clients, and no tag tells their processes from a
    # lost create's: the demo names what its lost answers may have made and leaves
    # it running (on its embedded fake, with no other client, it stops them).
    async with FakeHathora(boot_delay=0.05) as fake:
        fake.faults.add("create_process", Fault(status=502, acted=True))
        code, output = await _demo_on(monkeypatch, fake, per_region=3)
        assert code == 0, output
        assert fake.processes_created == 3
        left = [p["processId"] for p in fake.processes() if p["status"] in ("starting", "running")]
        assert len(left) == 1, output
        assert f"Left running, its own, answer lost (PreallocationResult.strays): {left[0]}" in (
            output
        )
        assert "hathora-async processes stop PROCESS_ID" in output
        assert "Stopped 2 of the 2 processes created; 1 more of lost answers left running" in output
