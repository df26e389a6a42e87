"""A real redis-server for tests: random loopback port, no persistence, a temp dir.

Outside CI, a missing ``redis-server`` (Debian package ``redis-server``) or
redis-py skips the tests that need them, saying why; with ``CI=true`` (or
``HATHORA_REQUIRE_REDIS=1``, which .ci/run sets) they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


def require_redis() -> str:
    """The redis-server path; skip (fail in CI) when it or redis-py is missing."""
    path = shutil.which("redis-server")
    missing = None
    if path is None:
        missing = "redis-server not found (Debian: apt-get install -y redis-server)"
    else:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            missing = "redis-py not installed (pip install 'hathora-async[redis]')"
    if missing is not None:
        if os.environ.get("CI") == "true" or os.environ.get("HATHORA_REQUIRE_REDIS") == "1":
            pytest.fail(f"CI=true or HATHORA_REQUIRE_REDIS=1 but {missing}")
        pytest.skip(missing)
    assert path is not None
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``url`` to connect, ``pause``/``resume`` to freeze it."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        start: Callable[[], subprocess.Popen[bytes]],
    ) -> None:
        self.process = process
        self.port = port
        self._start = start
        self.url = f"redis://127.0.0.1:{port}/0"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill it and start it again on the same port: all data lost (no persistence)."""
        self.process.kill()
        self.process.wait()
        self.process = self._start()
        if not _ready(self.port, self.process, timeout=10):
            pytest.fail("redis-server did not restart")


def _ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.02)
    return False


def _spawn(path: str, port: int, tmp: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(path, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", tmp),
            *("--logfile", os.path.join(tmp, "log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start redis-server on a free loopback port; stop it (and its temp dir) after."""
    path = require_redis()
    with tempfile.TemporaryDirectory(prefix="hathora-redis-") as tmp:
        for _ in range(5):  # the free port may be taken before redis binds it
            port = _free_port()
            process = _spawn(path, port, tmp)
            if _ready(port, process, timeout=10):
                break
            process.kill()
            process.wait()
        else:
            pytest.fail("redis-server did not start")
        server = RedisServer(process, port, lambda: _spawn(path, port, tmp))
        try:
            yield server
        finally:
            process = server.process
            process.send_signal(signal.SIGCONT)  # a paused server cannot exit
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
