"""``python -m hathora_async demo``: runs on its own against the embedded fake, then cleans up."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys

import pytest

from hathora_async import Region
from hathora_async.cli import main
from hathora_async.cli._demo import DemoSettings, run_demo
from hathora_async.cli._progress import percentile

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
    assert "Stopped 42 of 42 processes created." in out
    assert "Processes still alive on the fake: 0" in out
    # Rooms timed warm (landing on a pre-allocated process) and cold (a new process).
    rooms = re.findall(
        r"^\| (\w+)\s+\| (\d+) ms \(pre-allocated\)\s+\| (\d+) ms \(new process\)", out, re.M
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
    )
    assert await run_demo(settings, out) == 0
    text = out.getvalue()
    assert "\x1b[2A" in text  # cursor up over the two region lines
    assert re.search(r"Seattle\s+\[[#x]{2}\]", text)
    assert "Stopped 4 of 4 processes created." in text


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
    settings = DemoSettings(per_region=1, live=False, fake_boot_delay=(0.05, 0.1))
    task = asyncio.create_task(run_demo(settings, out))
    await out.seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "Stopped 14 of 14 processes created." in out.getvalue()
