"""Shared fixtures: a fake Hathora on loopback and a client pointed at it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hostile import HostileServer, hostile_server

from hathora_async import HathoraClient, RetryPolicy
from hathora_async import _constants as C
from hathora_async.testing import FakeHathora

# Beside the repository (../shared/spec), or where HATHORA_SPEC says.
SPEC_PATH = Path(
    os.environ.get("HATHORA_SPEC")
    or Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "hathora-openapi.json"
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeHathora]:
    async with FakeHathora(seed=1) as server:
        yield server


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """READ_AFTER_CREATE_GRACE cut to 0.3 s.

    For tests where a create with an unknown outcome made nothing: the search
    for its process would otherwise go on for the full grace window.
    """
    monkeypatch.setattr(C, "READ_AFTER_CREATE_GRACE", 0.3)
    return 0.3


@pytest.fixture
async def client(fake: FakeHathora) -> AsyncIterator[HathoraClient]:
    # Fast retries so that retry paths cost milliseconds, not seconds.
    policy = RetryPolicy(initial_delay=0.001, max_delay=0.01)
    async with HathoraClient(fake.token, fake.app_id, base_url=fake.url, retry=policy) as c:
        yield c


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """Hathora's OpenAPI document, read from the shared folder beside the repo.

    Only tests/test_schema_drift.py needs it (the rest of the suite validates against
    the committed tests/schemas/). A user's clone may lack it: then skip, saying why.
    CI sets HATHORA_REQUIRE_SPEC=1 so that a missing spec fails instead.
    """
    if not SPEC_PATH.is_file():
        if os.environ.get("HATHORA_REQUIRE_SPEC") == "1":
            pytest.fail(f"HATHORA_REQUIRE_SPEC=1 but {SPEC_PATH} is missing")
        pytest.skip(f"Hathora's OpenAPI spec not found at {SPEC_PATH}")
    with SPEC_PATH.open() as f:
        document: dict[str, Any] = json.load(f)
    return document


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    """A hostile server (tests/hostile.py): canned answers, every raw request recorded."""
    async with hostile_server() as server:
        yield server
