"""The ``hathora-async`` console script, run as users run it: a subprocess, against a
standalone fake (``python -m hathora_async.testing``, also a subprocess).

Every run checks that the fake's token appears in none of the output. In CI
(``CI=true``) the installed console script must be the one run; elsewhere,
when it is not installed, ``python -m hathora_async`` (the same program) is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import http.server
import json
import logging
import os
import pty
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import hathora_async
from hathora_async import HathoraClient, ProcessStatus
from hathora_async.cli import main
from hathora_async.testing import FakeHathora, Fault
from hathora_async.testing.__main__ import main as fake_main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(hathora_async.__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ENV_KEYS = ("HATHORA_TOKEN", "HATHORA_APP_ID", "HATHORA_BASE_URL")
# Generous: a loaded 2-core machine can be slow; a passing run takes a fraction of this.
WAIT = 30.0
LIVE = [ProcessStatus.STARTING, ProcessStatus.RUNNING]
# Every key of Hathora's ProcessV2, as the API spells it.
PROCESS_KEYS = {
    "processId",
    "appId",
    "deploymentId",
    "region",
    "status",
    "roomsAllocated",
    "roomsPerProcess",
    "createdAt",
    "startedAt",
    "stoppingAt",
    "terminatedAt",
    "exposedPort",
    "additionalExposedPorts",
}


def _installed_script() -> str | None:
    """The console script installed beside this interpreter, if any."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    if f"{os.name}_user" in sysconfig.get_scheme_names():  # pip install --user
        folders.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    return shutil.which("hathora-async", path=os.pathsep.join(folders))


def _cli() -> list[str]:
    script = _installed_script()
    if script is not None:
        return [script]
    if IN_CI:
        raise RuntimeError(
            "CI=true but the hathora-async console script is not installed beside "
            f"{sys.executable}: run `pip install -e '.[dev]'` first"
        )
    return [sys.executable, "-m", "hathora_async"]


CLI = _cli()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    # The code under test, also when the installed script points at another checkout.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


class Proc:
    """A subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: dict[str, queue.Queue[str | None]] = {
            "out": queue.Queue(),
            "err": queue.Queue(),
        }
        self.text = {"out": "", "err": ""}
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("out", self.popen.stdout), ("err", self.popen.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            self.lines[name].put(line)
        self.lines[name].put(None)

    def wait_for(self, name: str, found: Callable[[str], bool], timeout: float = WAIT) -> str:
        """Block until a line of ``name`` (out or err) satisfies ``found``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines[name].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out; {name} so far: {self.text[name]!r}") from None
            if line is None:
                self.lines[name].put(None)
                raise AssertionError(f"{name} ended; it said: {self.text[name]!r}")
            self.text[name] += line
            if found(line):
                return line

    def finish(self, timeout: float = WAIT) -> Result:
        """Wait for the exit; return everything it printed."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise
        for reader in self.readers:
            reader.join(timeout)
        for name, lines in self.lines.items():
            while not lines.empty():
                self.text[name] += lines.get_nowait() or ""
        for stream in (self.popen.stdout, self.popen.stderr):
            assert stream is not None
            stream.close()
        return Result(code, self.text["out"], self.text["err"])


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@attrs.frozen
class Fake:
    """A fake Hathora served by ``python -m hathora_async.testing`` in a subprocess."""

    proc: Proc | None  # None: served by this process
    url: str
    token: str
    app_id: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def env(self, **extra: str) -> dict[str, str]:
        settings = {"HATHORA_TOKEN": self.token, "HATHORA_APP_ID": self.app_id}
        return _env(**{"HATHORA_BASE_URL": self.url, **settings, **extra})

    def client(self) -> HathoraClient:
        return HathoraClient(self.token, self.app_id, base_url=self.url)


def _start_fake(*flags: str) -> Proc:
    argv = [sys.executable, "-m", "hathora_async.testing", "--port", "0", "--seed", "3", *flags]
    return Proc(argv, _env())


def _ready(proc: Proc) -> Fake:
    values = {}
    for _ in range(3):
        key, _, value = proc.wait_for("out", lambda line: "=" in line).strip().partition("=")
        values[key] = value
    return Fake(proc, values["HATHORA_BASE_URL"], values["HATHORA_TOKEN"], values["HATHORA_APP_ID"])


def _stop_fake(fake: Fake) -> None:
    assert fake.proc is not None
    fake.proc.popen.send_signal(signal.SIGTERM)
    done = fake.proc.finish()
    assert done.code == 0, done.err  # the fake ends cleanly on SIGTERM
    assert "Traceback" not in done.err


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Fake]]:
    # Started together: quick boots for the commands, slow ones for interrupts
    # (processes still starting when the signal lands).
    procs = {
        "quick": _start_fake("--boot-delay", "0.1"),
        "slow": _start_fake("--boot-delay", "120"),
    }
    started = {name: _ready(proc) for name, proc in procs.items()}
    yield started
    for fake in started.values():
        _stop_fake(fake)


@pytest.fixture(scope="module")
def quick(fakes: dict[str, Fake]) -> Fake:
    return fakes["quick"]


@pytest.fixture(scope="module")
def slow(fakes: dict[str, Fake]) -> Fake:
    return fakes["slow"]


def _check_no_token(result: Result, token: str) -> Result:
    assert token not in result.out and token not in result.err
    assert "Traceback" not in result.err, result.err
    return result


async def cli(fake: Fake | None, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run the console script to its end (in a thread: many can run at once)."""
    chosen = env if env is not None else fake.env() if fake is not None else _env()
    proc = Proc([*CLI, *args], chosen)
    result = await asyncio.to_thread(proc.finish)
    return _check_no_token(result, fake.token) if fake is not None else result


def spawn(fake: Fake, *args: str) -> Proc:
    """Start the console script and leave it running."""
    return Proc([*CLI, *args], fake.env())


async def live_processes(fake: Fake, regions: list[str]) -> list[str]:
    async with fake.client() as client:
        found = await client.processes.get_latest_processes(status=LIVE, region=regions)
    return [p.process_id for p in found]


async def _stop_live(fake: Fake, regions: list[str], *, expected: int) -> None:
    """Stop what a test left running, after checking it is what the test made."""
    made = await live_processes(fake, regions)
    assert len(made) == expected
    async with fake.client() as client:
        await asyncio.gather(*(client.processes.stop_process(pid) for pid in made))


@pytest.fixture
def inproc(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Result]]:
    """The same program run in this process (``main(argv)``): for the many variants of a
    case a subprocess has covered, at a fraction of the cost."""

    def run(fake: Fake, *args: str, token: str | None = "", app_id: str | None = "") -> Result:
        settings = {
            "HATHORA_BASE_URL": fake.url,
            "HATHORA_TOKEN": fake.token if token == "" else token,
            "HATHORA_APP_ID": fake.app_id if app_id == "" else app_id,
        }
        for key, value in settings.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            code = int(exit.code or 0)
        captured = capsys.readouterr()
        return _check_no_token(Result(code, captured.out, captured.err), fake.token)

    yield run
    logging.getLogger("hathora_async").handlers[:] = [
        h for h in logging.getLogger("hathora_async").handlers if type(h).__name__ != "_LogHandler"
    ]


async def raw_get(fake: Fake, path: str) -> Any:
    """The fake's own JSON for ``path``, read without the client."""
    headers = {"Authorization": f"Bearer {fake.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake.url + path, headers=headers) as r,
    ):
        assert r.status == 200
        return await r.json()


# -- the console script itself --------------------------------------------------------


def test_the_console_script_is_installed() -> None:
    if _installed_script() is None:
        pytest.skip(f"hathora-async is not installed beside {sys.executable} (CI requires it)")
    version = subprocess.run([*CLI, "--version"], capture_output=True, text=True, env=_env())
    assert version.returncode == 0 and hathora_async.__version__ in version.stdout


async def test_help_lists_every_command_the_configuration_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    top = await cli(None, "--help")
    assert top.code == 0
    for command in ("processes", "rooms", "preallocate", "pool", "fake", "demo"):
        assert command in top.out
    with pytest.raises(SystemExit) as exited:
        main(["preallocate", "--help"])
    assert exited.value.code == 0
    prealloc = capsys.readouterr().out
    for text in (top.out, prealloc):
        assert "HATHORA_TOKEN" in text and "HATHORA_APP_ID" in text
        for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
            assert f"\n  {code}" in text
    assert "--concurrency" in prealloc and "--no-wait" in prealloc


# -- processes ------------------------------------------------------------------------


async def test_processes_create_info_list_stop(quick: Fake) -> None:
    created = await cli(
        quick, "processes", "create", "Seattle", "--wait", "--poll-interval", "0.05", "--json"
    )
    assert created.code == 0, created.err
    process = created.json()
    assert set(process) == PROCESS_KEYS and process["status"] == "running"
    pid = process["processId"]
    info, table = await asyncio.gather(
        cli(quick, "processes", "info", pid, "--json"),
        cli(quick, "processes", "list", "--region", "Seattle", "--status", "running"),
    )
    assert info.code == table.code == 0
    # The API's own wire shape: the same data the fake sent.
    assert info.json() == await raw_get(quick, f"/processes/v2/{quick.app_id}/info/{pid}")
    header, _, *rows = table.out.splitlines()
    assert [cell.strip() for cell in header.split("|")[1:4]] == ["process id", "region", "status"]
    assert any(pid in row and "| running" in row for row in rows)
    stopped = await cli(quick, "processes", "stop", pid)
    assert stopped.code == 0 and pid in stopped.out
    async with quick.client() as client:
        after = await client.processes.get_process_info(pid)
    assert after.status in (ProcessStatus.STOPPING, ProcessStatus.STOPPED)


def test_listing_as_json_filters_and_a_stop_prints_nothing(
    quick: Fake, inproc: Callable[..., Result]
) -> None:
    made = json.loads(inproc(quick, "processes", "create", "Dallas", "--json").out)
    listed = inproc(
        quick, "processes", "list", "--json", "--region", "Dallas", "--status", "starting"
    )
    assert [p["processId"] for p in listed.json()] == [made["processId"]]
    assert set(listed.json()[0]) == PROCESS_KEYS
    quiet = inproc(quick, "processes", "stop", made["processId"], "--json")
    assert quiet.code == 0 and quiet.out == ""  # a 204 has no body to print
    waited = inproc(quick, "processes", "wait", made["processId"], "--timeout", "5")
    assert waited.code == 1 and "will not run: it is stopp" in waited.err


async def test_the_token_can_come_from_a_file_and_is_never_printed(
    quick: Fake, tmp_path: Path, inproc: Callable[..., Result]
) -> None:
    secret = tmp_path / "token"
    secret.write_text(quick.token + "\n")
    env = quick.env()
    del env["HATHORA_TOKEN"]
    listed = await cli(quick, "processes", "list", "--token-file", str(secret), env=env)
    assert listed.code == 0, listed.err
    missing = await asyncio.to_thread(
        inproc, quick, "processes", "list", "--token-file", str(tmp_path / "nope"), token=None
    )
    assert missing.code == 2 and "--token-file" in missing.err


# -- rooms ----------------------------------------------------------------------------


async def test_rooms_create_info_connection_info_list_destroy(
    quick: Fake, inproc: Callable[..., Result]
) -> None:
    created = await cli(
        quick, "rooms", "create", "London", "--config", '{"mode": "duel"}', "--wait",
        "--poll-interval", "0.05", "--json",
    )  # fmt: skip
    assert created.code == 0, created.err
    room = created.json()
    assert room["status"] == "active" and room["exposedPort"]["port"] > 0
    rid, pid = room["roomId"], room["processId"]
    no_token = quick.env()
    del no_token["HATHORA_TOKEN"]
    info, connection, active = await asyncio.gather(
        cli(quick, "rooms", "info", rid, "--json"),
        cli(quick, "rooms", "connection-info", rid, "--json", env=no_token),  # needs no token
        cli(quick, "rooms", "list", pid),
    )
    for result in (info, connection, active):
        assert result.code == 0, result.err
    assert info.json() == await raw_get(quick, f"/rooms/v2/{quick.app_id}/info/{rid}")
    assert connection.json() == await raw_get(
        quick, f"/rooms/v2/{quick.app_id}/connectioninfo/{rid}"
    )
    assert info.json()["roomConfig"] == '{"mode": "duel"}'
    assert rid in active.out and "| active" in active.out
    destroyed = await cli(quick, "rooms", "destroy", rid)
    assert destroyed.code == 0 and rid in destroyed.out
    inactive = await asyncio.to_thread(inproc, quick, "rooms", "list", pid, "--inactive", "--json")
    assert [r["roomId"] for r in inactive.json()] == [rid]
    async with quick.client() as client:
        await client.processes.stop_process(pid)


# -- exit statuses --------------------------------------------------------------------


async def test_exit_1_is_an_api_error_on_stderr_with_nothing_on_stdout(quick: Fake) -> None:
    results = await asyncio.gather(
        cli(quick, "processes", "info", "no-such-process", "--json"),
        cli(quick, "processes", "list", env=quick.env(HATHORA_TOKEN="wrong-token")),
    )
    for result in results:
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("hathora-async: error: HTTP ")
    assert "404" in results[0].err
    assert "401" in results[1].err and "HATHORA_TOKEN" in results[1].err


def test_more_api_errors_exit_1(quick: Fake, inproc: Callable[..., Result]) -> None:
    for args in (("rooms", "info", "no-such-room"), ("processes", "list", "--app-id", "app-x")):
        result = inproc(quick, *args)
        assert result.code == 1 and result.out == "" and "404" in result.err
    # A wrong app id is named as the likely cause.
    assert "HATHORA_APP_ID" in result.err


async def test_exit_2_is_a_usage_or_configuration_error(quick: Fake) -> None:
    no_token = quick.env()
    del no_token["HATHORA_TOKEN"]
    missing, infinite = await asyncio.gather(
        cli(quick, "processes", "list", env=no_token),
        cli(quick, "processes", "wait", "x", "--timeout", "inf"),
    )
    assert missing.code == infinite.code == 2
    assert missing.out == infinite.out == ""
    assert "HATHORA_TOKEN is not set" in missing.err
    assert "finite" in infinite.err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("preallocate", "Seattle"), "REGION=N"),
        (("processes", "wait", "x", "--timeout", "-1"), "must be > 0"),
        (("processes", "info", ".."), "process_id"),  # refused before any I/O
        (("processes", "create", "a/b"), "invalid region"),
        (("rooms", "info", "a b"), "room_id"),
        (("demo", "--regions", "Seattle,Atlantis"), "unknown region"),
        (("demo", "--timeout", "nan"), "finite"),
        (("fake", "--boot-delay", "inf"), "finite"),
        (("fake", "--boot-failure-rate", "2"), "must be <= 1"),
        (("fake", "--port", "70000"), "port"),
        (("fake", "--token", ""), "--token: must not be empty"),
        (("fake", "--token", "two words"), "--token: must not contain whitespace"),
        (("fake", "--token", "tab\there"), "--token: must not contain whitespace"),
        (("fake", "--token", "bell\x07"), "control characters"),
        (("fake", "--clock-offset", "-1e12"), "--clock-offset: must be >="),
        (("fake", "--clock-offset=1e12"), "--clock-offset: must be <="),
        (("processes", "list", "--base-url", "ftp://example"), "base_url"),
        ((), "COMMAND"),
    ],
)
def test_more_usage_errors_exit_2(
    quick: Fake, inproc: Callable[..., Result], args: tuple[str, ...], says: str
) -> None:
    if (
        args[:1] == ("fake",) and "--port" not in args
    ):  # a taken port: a fake that wrongly accepts its flags ends too
        args = (*args, "--port", str(quick.port))
    result = inproc(quick, *args)
    assert result.code == 2 and result.out == "" and says in result.err


def test_a_missing_app_id_is_named(quick: Fake, inproc: Callable[..., Result]) -> None:
    result = inproc(quick, "processes", "list", app_id=None)
    assert result.code == 2 and "HATHORA_APP_ID is not set" in result.err


async def test_exit_3_is_a_timeout_or_a_connection_failure(quick: Fake, slow: Fake) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    async with slow.client() as client:
        booting = await client.processes.create_process("Mumbai")
        unreachable, timed_out = await asyncio.gather(
            cli(quick, "processes", "list", "--base-url", nobody),
            cli(slow, "processes", "wait", booting.process_id, "--timeout", "0.3"),
        )
        await client.processes.stop_process(booting.process_id)
    assert unreachable.code == 3 and unreachable.out == ""
    assert "cannot reach" in unreachable.err
    assert timed_out.code == 3 and timed_out.out == ""
    assert f"process {booting.process_id} not running after 0.3s" in timed_out.err


# -- preallocate ----------------------------------------------------------------------


async def test_preallocate_json_and_a_partial_failure(quick: Fake) -> None:
    fast = ("--poll-interval", "0.05")
    ready, partial = await asyncio.gather(
        cli(quick, "preallocate", "Chicago=2", "Dallas=1", "--json", *fast),
        cli(quick, "preallocate", "Frankfurt=1", "Atlantis=1", *fast),
    )
    assert ready.code == 0, ready.err
    result = ready.json()
    assert set(result) >= {"created", "ready", "failed", "strays"}
    assert len(result["created"]) == 3 and result["failed"] == [] and result["strays"] == []
    assert sorted(p["processId"] for p in result["ready"]) == sorted(result["created"])
    assert all(set(p) == PROCESS_KEYS and p["status"] == "running" for p in result["ready"])
    # Some slots failed (a region the fake does not serve): 4, and the table is printed.
    assert partial.code == 4, partial.err
    assert "| Frankfurt" in partial.out and "| Atlantis" in partial.out
    assert "failed: Atlantis" in partial.err and "404" in partial.err
    await _stop_live(quick, ["Chicago", "Dallas", "Frankfurt"], expected=4)


async def test_preallocate_without_waiting(quick: Fake, inproc: Callable[..., Result]) -> None:
    unwaited = await asyncio.to_thread(
        inproc, quick, "preallocate", "Sao_Paulo=2", "--no-wait", "--json"
    )
    assert unwaited.code == 0, unwaited.err
    assert len(unwaited.json()["starting"]) == 2 and unwaited.json()["ready"] == []
    await _stop_live(quick, ["Sao_Paulo"], expected=2)


async def test_preallocate_json_says_how_each_slot_failed(inproc: Callable[..., Result]) -> None:
    async def failed(flags: tuple[str, ...], *plan: str, **fake: Any) -> list[dict[str, Any]]:
        async with FakeHathora(**fake) as server:
            own = Fake(None, server.url, server.token, server.app_id)
            done = await asyncio.to_thread(inproc, own, "preallocate", *plan, "--json", *flags)
            assert done.code == 4, done.err
            return sorted(done.json()["failed"], key=lambda f: f["region"])

    quick = ("--poll-interval", "0.05")
    refused, booted = await failed(quick, "Seattle=1", "Atlantis=1", boot_failure_rate=1.0)
    assert booted["processId"] and booted["outcomeUnknown"] is False
    assert (booted["httpStatus"], booted["processStatus"]) == (None, "failed")
    assert refused["processId"] is None and "status" not in refused
    assert (refused["httpStatus"], refused["processStatus"]) == (404, None)
    [late] = await failed(("--timeout", "0.3", *quick), "Tokyo=1", boot_delay=120.0)
    assert late["processId"] and (late["httpStatus"], late["processStatus"]) == (None, "starting")


class _Opened(Exception):
    """Raised instead of opening a client: the command got past its checks."""


@pytest.mark.parametrize(
    ("url", "plan", "flags", "refused"),
    [
        ("https://api.example.invalid", ["Seattle=60", "Tokyo=41"], [], True),
        ("https://api.example.invalid", ["Seattle=101"], ["--no-wait"], True),
        ("https://api.example.invalid", ["Seattle=60", "Tokyo=40"], [], False),
        ("https://api.example.invalid", ["Seattle=60", "Tokyo=41"], ["--yes"], False),
        ("http://127.0.0.1:9", ["Seattle=500"], [], False),  # loopback: a fake, not billed
    ],
)
def test_preallocate_refuses_over_100_billed_processes_before_any_io(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    plan: list[str],
    flags: list[str],
    refused: bool,
) -> None:
    def opened(*args: Any, **kwargs: Any) -> None:
        raise _Opened

    monkeypatch.setattr("hathora_async.cli._context.open_client", opened)
    monkeypatch.setenv("HATHORA_TOKEN", "t")
    monkeypatch.setenv("HATHORA_APP_ID", "app-1")
    monkeypatch.setenv("HATHORA_BASE_URL", url)
    if not refused:
        with pytest.raises(_Opened):
            main(["preallocate", *plan, *flags])
        return
    assert main(["preallocate", *plan, *flags]) == 2
    err = capsys.readouterr().err
    assert "refusing to create 101 processes, more than 100" in err and "--yes" in err


@pytest.mark.parametrize(
    ("signum", "regions"),
    [
        (signal.SIGINT, ["Tokyo", "Sydney"]),
        (signal.SIGTERM, ["Singapore"]),
        (signal.SIGHUP, ["Johannesburg"]),
    ],
)
async def test_an_interrupted_preallocate_stops_everything_it_created(
    slow: Fake, signum: signal.Signals, regions: list[str]
) -> None:
    plan = [f"{region}=2" for region in regions]
    run = spawn(slow, "preallocate", *plan)
    await asyncio.to_thread(run.wait_for, "err", lambda line: "all creates answered" in line)
    assert len(await live_processes(slow, regions)) == 2 * len(regions)
    run.popen.send_signal(signum)
    done = _check_no_token(await asyncio.to_thread(run.finish), slow.token)
    assert done.code == 130, done.err
    assert done.out == ""
    assert f"nothing it created is left running ({2 * len(regions)} processes created)" in done.err
    assert await live_processes(slow, regions) == []


# -- pool -----------------------------------------------------------------------------


def _filled(line: str) -> bool:
    regions = json.loads(line)["regions"].values()
    return all(r["starting"] + r["idle"] == r["target"] for r in regions)


async def test_an_interrupted_pool_stops_what_it_made(slow: Fake) -> None:
    region = "Dubai"
    run = spawn(slow, "pool", f"{region}=2", "--poll-interval", "0.1", "--json")
    await asyncio.to_thread(run.wait_for, "out", _filled)
    assert len(await live_processes(slow, [region])) == 2
    run.popen.send_signal(signal.SIGINT)
    done = _check_no_token(await asyncio.to_thread(run.finish), slow.token)
    assert done.code == 130, done.err
    assert "nothing it created is left running" in done.err
    assert await live_processes(slow, [region]) == []
    snapshots = [json.loads(line) for line in done.out.splitlines()]
    assert snapshots[0]["regions"][region]["target"] == 2


async def test_a_pool_with_keep_leaves_its_processes_and_names_them(slow: Fake) -> None:
    run = spawn(slow, "pool", "Washington_DC=1", "--poll-interval", "0.1", "--keep", "--json")
    await asyncio.to_thread(run.wait_for, "out", _filled)
    run.popen.send_signal(signal.SIGTERM)
    done = _check_no_token(await asyncio.to_thread(run.finish), slow.token)
    assert done.code == 130, done.err
    left = await live_processes(slow, ["Washington_DC"])
    assert len(left) == 1 and left[0] in done.err and "may still run" in done.err
    async with slow.client() as client:
        await client.processes.stop_process(left[0])


# -- second and third interrupts ------------------------------------------------------


@pytest.fixture
async def slow_stops() -> AsyncIterator[tuple[Fake, FakeHathora]]:
    """A fake in this process (serving while the test waits in threads) whose next four
    stops each take 3 s: a clean-up slow enough to interrupt, everything else at once."""
    async with FakeHathora(boot_delay=120.0, seed=4) as server:
        server.faults.add("stop_process", Fault(latency=3.0), times=4)
        yield Fake(None, server.url, server.token, server.app_id), server


def _alive(server: FakeHathora, region: str) -> list[str]:
    return [
        p["processId"]
        for p in server.processes()
        if p["region"] == region and p["status"] in ("starting", "running")
    ]


async def _interrupt_twice(fake: Fake, server: FakeHathora) -> None:
    run = spawn(fake, "preallocate", "Los_Angeles=2", "--plain")
    await asyncio.to_thread(run.wait_for, "err", lambda line: "all creates answered" in line)
    run.popen.send_signal(signal.SIGINT)
    await asyncio.to_thread(run.wait_for, "err", lambda line: "SIGINT: ending" in line)
    run.popen.send_signal(signal.SIGINT)  # while the stops are under way
    done = _check_no_token(await asyncio.to_thread(run.finish), fake.token)
    assert done.code == 130, done.err
    assert "still stopping what this command created (2 processes not yet stopped)" in done.err
    assert "nothing it created is left running (2 processes created)" in done.err
    assert _alive(server, "Los_Angeles") == []


async def _give_up(run: Proc, fake: Fake, second: signal.Signals = signal.SIGINT) -> Result:
    """Interrupt ``run``, again during its clean-up, and a third time to give it up."""
    run.popen.send_signal(signal.SIGINT)
    await asyncio.to_thread(run.wait_for, "err", lambda line: "SIGINT: ending" in line)
    run.popen.send_signal(second)
    await asyncio.to_thread(run.wait_for, "err", lambda line: "still stopping" in line)
    run.popen.send_signal(signal.SIGINT)
    return _check_no_token(await asyncio.to_thread(run.finish), fake.token)


async def _interrupt_thrice(fake: Fake, server: FakeHathora) -> None:
    run = spawn(fake, "preallocate", "London=2", "--plain")
    await asyncio.to_thread(run.wait_for, "err", lambda line: "all creates answered" in line)
    done = await _give_up(run, fake, signal.SIGTERM)
    assert done.code == 130, done.err
    assert "giving up" in done.err
    # The stops were cut short: both processes still run, named with how to stop them.
    left = _alive(server, "London")
    assert len(left) == 2 and all(pid in done.err for pid in left)
    assert "processes stop ID" in done.err


async def test_a_second_interrupt_lets_the_clean_up_finish_a_third_gives_up(
    slow_stops: tuple[Fake, FakeHathora],
) -> None:
    # Both at once, in different regions: each spends its time waiting on the slow stops.
    await asyncio.gather(_interrupt_twice(*slow_stops), _interrupt_thrice(*slow_stops))


async def test_a_demo_whose_clean_up_is_given_up_names_what_is_left_once_on_stderr(
    slow_stops: tuple[Fake, FakeHathora],
) -> None:
    fake, server = slow_stops
    run = spawn(fake, "demo", "--regions", "Mumbai", "--per-region", "2", "--plain")
    await asyncio.to_thread(run.wait_for, "out", lambda line: "all creates answered" in line)
    done = await _give_up(run, fake)
    assert done.code == 130, done.err
    left = _alive(server, "Mumbai")
    assert len(left) == 2
    for pid in left:  # once, with how to stop it; not in the demo's own output
        assert done.err.count(pid) == 1 and pid not in done.out, (done.out, done.err)
    assert "processes stop ID" in done.err
    async with fake.client() as client:
        await asyncio.gather(*(client.processes.stop_process(pid) for pid in left))


async def test_a_pool_leaves_busy_processes_on_purpose_and_names_those_it_could_not_stop() -> None:
    async with FakeHathora(boot_delay=0.05, seed=5) as server:
        fake = Fake(None, server.url, server.token, server.app_id)
        run = spawn(fake, "pool", "Dubai=1", "--poll-interval", "0.05", "--json")
        first = json.loads(await asyncio.to_thread(run.wait_for, "out", _idle_filled))
        assert first["regions"]["Dubai"]["idle"] == 1
        [busy] = _alive(server, "Dubai")
        server.set_rooms_allocated(busy, 1)  # a match landed on it
        await asyncio.to_thread(
            run.wait_for, "out", lambda line: _idle_filled(line) and '"busy": 1' in line
        )
        [idle] = [pid for pid in _alive(server, "Dubai") if pid != busy]
        server.faults.add("stop_process", Fault(status=400))  # the exit's stop of the idle one
        run.popen.send_signal(signal.SIGINT)
        done = _check_no_token(await asyncio.to_thread(run.finish), fake.token)
        assert done.code == 130, done.err
        assert sorted(_alive(server, "Dubai")) == sorted([busy, idle])
        hosting, _, rest = done.err.partition("left running on purpose: ")
        assert "1 process this command created hosts matches" in hosting
        assert rest.startswith(busy) and done.err.count(busy) == 1, done.err
        assert f"1 process this command created may still run: {idle}" in done.err
        assert "processes stop ID" in rest.split(busy, 1)[1]


def _idle_filled(line: str) -> bool:
    regions = json.loads(line)["regions"].values()
    return all(r["idle"] == r["target"] for r in regions)


# -- fake and demo --------------------------------------------------------------------


async def test_the_fake_command_serves_until_sigterm_and_explains_a_taken_port(
    quick: Fake,
) -> None:
    run = Proc([*CLI, "fake", "--port", "0"], _env())
    own = await asyncio.to_thread(_ready, run)
    taken = await cli(None, "fake", "--port", str(quick.port))
    assert taken.code == 2 and "Traceback" not in taken.err
    assert f"cannot listen on 127.0.0.1:{quick.port}" in taken.err and "--port" in taken.err
    async with own.client() as client:
        assert await client.processes.get_latest_processes() == []
    _stop_fake(own)


def test_the_fakes_own_command_line_explains_a_taken_port(
    quick: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fake_main(["--port", str(quick.port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{quick.port}" in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["--clock-offset", "-1e3"], ["--clock-offset", "-5"]])
@pytest.mark.parametrize("own", [True, False])
def test_the_fake_takes_a_negative_clock_offset_in_any_notation(
    quick: Fake, capsys: pytest.CaptureFixture[str], flags: list[str], own: bool
) -> None:
    # Parsed, then refused only for the port taken: the value was a value, not an option.
    argv = [*flags, "--port", str(quick.port)]
    code = fake_main(argv) if own else main(["fake", *argv])
    err = capsys.readouterr().err
    assert code == 2 and "cannot listen" in err and "expected one argument" not in err


def test_an_unresolvable_host_names_the_host_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "no-such-host.invalid":  # as a resolver says it, without asking one
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert fake_main(["--host", "no-such-host.invalid", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on no-such-host.invalid:0: Name or service not known" in err
    assert "check --host" in err and "--port" not in err


@pytest.mark.parametrize("own", [True, False])
def test_the_fakes_help_shows_its_default_port_and_only_its_exit_statuses(
    capsys: pytest.CaptureFixture[str], own: bool
) -> None:
    with pytest.raises(SystemExit) as exited:
        fake_main(["--help"]) if own else main(["fake", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "(default: 8080; 0: any free port)" in text
    statuses = re.findall(r"^  (\d+) ", text.split("exit status:")[1], re.M)
    assert statuses == ["0", "2"]


async def test_the_demo_stops_early_on_a_refused_token(quick: Fake) -> None:
    refused = await cli(quick, "demo", env=quick.env(HATHORA_TOKEN="wrong-token"))
    assert refused.code == 1
    assert refused.err.count("error:") == 1 and "401" in refused.err
    assert "Pre-allocating" not in refused.out  # nothing was attempted


async def test_the_demo_says_when_it_talks_to_a_local_server(quick: Fake) -> None:
    done = await cli(quick, "demo", "--per-region", "2", "--regions", "Seattle", "--plain")
    assert done.code == 0, done.err
    assert f"Using a local server at {quick.url}" in done.out
    assert "real Hathora API" not in done.out
    assert "Pre-allocating 2 processes" in done.out  # no cap: nothing is billed
    assert "Stopped 2 of the 2 processes created." in done.out


async def test_sigterm_during_the_demo_stops_what_it_created() -> None:
    run = Proc([*CLI, "demo", "--per-region", "1", "--plain"], _env())
    await asyncio.to_thread(run.wait_for, "out", lambda line: "all creates answered" in line)
    run.popen.send_signal(signal.SIGTERM)
    done = await asyncio.to_thread(run.finish)
    assert done.code == 130, done.err
    assert "Cancelled: stopped 14 of 14 created." in done.out
    assert "nothing it created is left running (14 processes created)" in done.err


# -- a server that echoes the token back in its errors ---------------------------------

ECHO_TOKEN = "s3cret-echo-token-Zq9"
# Every command that reads an error answer, by the API call it fails on first.
ECHOED_COMMANDS = [
    ("processes", "info", "p-1"),
    ("processes", "list"),
    ("processes", "create", "Seattle"),
    ("rooms", "info", "r-1"),
    ("preallocate", "Seattle=1"),
]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status named by the path's first segment and
    the request's Authorization header, bare token too, in the message."""

    def _answer(self) -> None:
        auth = self.headers.get("Authorization", "")
        status = int(self.path.split("/")[1])
        message = f"bad auth: {auth} / raw {auth.split()[-1] if auth else ''}"
        body = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def _echoing(url: str, status: int, app_id: str = "app-1") -> Fake:
    return Fake(None, f"{url}/{status}", ECHO_TOKEN, app_id)


async def test_the_console_script_never_prints_a_token_the_server_echoes(echo: str) -> None:
    # 500s are retried: each command in its own subprocess, all at once.
    fake = _echoing(echo, 500)
    results = await asyncio.gather(*(cli(fake, *args) for args in ECHOED_COMMANDS))
    for result in results:  # cli() asserts the token is in neither stream
        assert result.code == 1 and "HTTP 500" in result.err


@pytest.mark.parametrize("status", [400, 401, 404])
@pytest.mark.parametrize("args", ECHOED_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_no_command_prints_a_token_the_server_echoes(
    echo: str, inproc: Callable[..., Result], status: int, args: tuple[str, ...]
) -> None:
    result = inproc(_echoing(echo, status), *args)  # asserts the token is absent
    assert result.code == 1 and f"HTTP {status}" in result.err and result.out == ""


def test_a_hint_escapes_control_characters_like_the_error(
    echo: str, inproc: Callable[..., Result]
) -> None:
    # The hint quotes the app id; an escape sequence in it must not reach the terminal.
    app_id = "app\x1b[2J\x1b]0;pwned\x07-1"
    result = inproc(_echoing(echo, 404, app_id), "processes", "list")
    assert result.code == 1 and "no app app\\x1b[2J\\x1b]0;pwned\\x07-1" in result.err
    assert "\x1b" not in result.err and "\x07" not in result.err


def test_a_refused_token_names_the_token_file_it_came_from(
    echo: str, inproc: Callable[..., Result], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(ECHO_TOKEN)
    fake = _echoing(echo, 401)
    result = inproc(fake, "processes", "list", "--token-file", str(token_file), token=None)
    assert result.code == 1 and f"check --token-file {token_file}" in result.err
    assert "HATHORA_TOKEN" not in result.err
    assert "check HATHORA_TOKEN" in inproc(fake, "processes", "list").err


# -- the live display measures the terminal it draws on ---------------------------------


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end closed (Linux)
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _on_a_terminal(argv: list[str], env: dict[str, str], columns: int) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with stderr on a pty ``columns`` wide, stdout a pipe; return the
    status, what reached the terminal, and stdout."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env
        )
        os.close(slave)
        slave = -1
        reader = concurrent.futures.ThreadPoolExecutor(1)
        drawn = reader.submit(_read_all, master)
        out, _ = popen.communicate(timeout=WAIT)
        reader.shutdown()
        return popen.returncode, drawn.result(), out
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


async def test_live_progress_fits_a_narrow_terminal_on_stderr_with_stdout_piped(
    quick: Fake,
) -> None:
    # stderr is a 36-column terminal; stdout a pipe, whose "size" (80x24) must not be used.
    columns = 36
    env = quick.env(TERM="xterm")
    env.pop("LINES", None)
    argv = [*CLI, "preallocate", "Seattle=2", "Frankfurt=1", "Washington_DC=1"]
    code, drawn, out = await asyncio.to_thread(_on_a_terminal, argv, env, columns)
    assert code == 0
    text = drawn.decode()
    assert "\x1b[" in text  # drawn live, in place
    assert ECHO_TOKEN not in text and quick.token not in text
    lines = [re.sub(r"\x1b\[[0-9]*[A-Za-z]", "", line) for line in text.splitlines()]
    block = [line.strip("\r") for line in lines if "running" in line]
    assert block and all(len(line) <= columns - 1 for line in block), block
    assert "| Seattle" in out.decode()  # the summary still went to stdout
    await _stop_live(quick, ["Seattle", "Frankfurt", "Washington_DC"], expected=4)


# -- regions and statuses: matched ignoring case, unknown ones warned about -------------


def test_a_region_or_status_in_another_case_is_the_known_one(
    quick: Fake, inproc: Callable[..., Result]
) -> None:
    made = inproc(quick, "processes", "create", "seattle", "--wait", "--json")
    assert made.code == 0 and made.err == "", made.err
    process_id = made.json()["processId"]
    assert made.json()["region"] == "Seattle"
    listed = inproc(quick, "processes", "list", "--region", "SEATTLE", "--status", "Running")
    assert listed.code == 0 and listed.err == "" and process_id in listed.out
    assert inproc(quick, "processes", "stop", process_id).code == 0


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("processes", "list", "--region", "Atlantis"), "region 'Atlantis'"),
        (("processes", "list", "--status", "Sleeping"), "status 'Sleeping'"),
    ],
)
def test_an_unknown_region_or_status_is_sent_with_a_warning_naming_the_known_ones(
    quick: Fake, inproc: Callable[..., Result], args: tuple[str, ...], what: str
) -> None:
    result = inproc(quick, *args)
    assert result.code == 0
    assert f"warning: unknown {what}, sent as is; known: " in result.err
    assert ("Seattle" if "region" in what else "running") in result.err


def test_preallocate_in_a_missing_region_is_an_api_error_said_once(
    quick: Fake, inproc: Callable[..., Result]
) -> None:
    result = inproc(quick, "preallocate", "Atlantis=3", "--plain")
    assert result.code == 1, result.err
    failed = [line for line in result.err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].endswith("(repeated 3 times)")
    assert "Region Atlantis not found" in failed[0]


def test_a_region_given_twice_is_a_usage_error(quick: Fake, inproc: Callable[..., Result]) -> None:
    for command in ("preallocate", "pool"):
        result = inproc(quick, command, "Seattle=1", "seattle=2")
        assert result.code == 2 and "region Seattle given twice" in result.err


async def test_a_pool_in_a_missing_region_ends_with_one_error(quick: Fake) -> None:
    # It used to retry forever, one identical warning per pass.
    result = await cli(
        quick, "pool", "Atlantis=1", "Frankfurt=1", "--plain", "--poll-interval", "0.2"
    )
    assert result.code == 1, result.err
    assert "warning: unknown region 'Atlantis'" in result.err
    assert "error: HTTP 404: Region Atlantis not found" in result.err
    assert "no region Atlantis for app" in result.err
    assert result.err.count("Region Atlantis not found") <= 3  # warning, error: not forever
    assert await live_processes(quick, ["Frankfurt"]) == []  # what it made is stopped


def test_identical_warnings_are_collapsed(
    quick: Fake, inproc: Callable[..., Result], capsys: pytest.CaptureFixture[str]
) -> None:
    from hathora_async.cli._live import flush_repeats, install_logging

    install_logging()
    logger = logging.getLogger("hathora_async")
    for _ in range(4):
        logger.warning("warm pool: HTTP 503: busy")
    logger.warning("something else")
    logger.warning("something else")
    flush_repeats()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "hathora-async: warning: warm pool: HTTP 503: busy",
        "hathora-async: (the line above repeated 3 more times)",
        "hathora-async: warning: something else",
        "hathora-async: (the line above repeated 1 more times)",
    ]


async def test_a_create_interrupted_in_flight_says_a_process_may_exist() -> None:
    async with FakeHathora(boot_delay=120.0) as server:
        # The create's answer takes 5 s: the interrupt lands while it is in flight.
        server.faults.add("create_process", Fault(latency=5.0), times=1)
        fake = Fake(None, server.url, server.token, server.app_id)
        proc = spawn(fake, "processes", "create", "seattle")
        deadline = time.monotonic() + WAIT
        while not server.request_counts["create_process"]:
            assert time.monotonic() < deadline, "the create was never sent"
            await asyncio.sleep(0.02)
        proc.popen.send_signal(signal.SIGINT)
        done = _check_no_token(await asyncio.to_thread(proc.finish), fake.token)
        assert done.code == 130 and done.out == ""
        assert "a process may exist in Seattle (outcome unknown)" in done.err
        assert "hathora-async processes list --region Seattle" in done.err
        for process in server.processes():  # what the create made, if anything
            async with fake.client() as client:
                await client.processes.stop_process(process["processId"])


def test_the_cli_hides_only_warnings_marked_as_listing_what_was_left_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command names what it left once itself: the library's marked list is not
    printed again, yet a warning that merely reads like it (no marker) still is."""
    from hathora_async.cli import _live

    _live.install_logging()
    logger = logging.getLogger("hathora_async")
    text = "preallocate ended early (%s); %d process(es) it created were not stopped: %s"
    logger.warning(
        text, "CancelledError", 1, "p-marked", extra={"hathora_left_running": ("p-marked",)}
    )
    logger.warning(text, "CancelledError", 1, "p-unmarked")
    logger.warning("an unrelated warning")
    _live.flush_repeats()
    err = capsys.readouterr().err
    assert "p-marked" not in err
    assert "p-unmarked" in err
    assert "an unrelated warning" in err
