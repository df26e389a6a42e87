"""pytest plugin: a fake Hathora per test, with no conftest.

Installed with the package (the ``pytest11`` entry point), so these are there in
any test file of a project that has hathora-async installed:

- ``hathora_fake``: a running ``ThreadedFake`` (``.url``, ``.token``, ``.app_id``,
  its admin methods and ``.faults``), stopped after the test. It serves from its
  own thread and loop, so it works in sync tests and in async tests under
  pytest-asyncio, anyio or pytest-aiohttp alike.
- ``hathora_env``: the same fake, with ``HATHORA_TOKEN``, ``HATHORA_APP_ID`` and
  ``HATHORA_BASE_URL`` set to it for the test.
- ``@pytest.mark.hathora_fake(**options)``: ``FakeHathora`` keyword arguments for
  the test's fake, e.g. ``boot_delay=0.5, boot_failure_rate=0.1``. Markers on a
  class or module apply too; the closest one wins per option.

Loading this module is cheap and has no side effect: the fake (and aiohttp) are
imported when a test first asks for one. Without the entry point (e.g. with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load it with ``-p hathora_async.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._constants import ENV_APP_ID, ENV_BASE_URL, ENV_TOKEN

if TYPE_CHECKING:
    from .testing import ThreadedFake

__all__ = ["hathora_env", "hathora_fake", "pytest_configure"]

MARKER = "hathora_fake"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): FakeHathora keyword arguments for the test's hathora_fake "
        "fixture, e.g. boot_delay=0.5, boot_failure_rate=0.1",
    )


def _options(node: pytest.Item) -> dict[str, Any]:
    options: dict[str, Any] = {}
    # iter_markers yields the closest first: apply the farthest first so it loses.
    for marker in reversed(list(node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes keyword arguments only "
                f"(FakeHathora's), got {marker.args!r} on {node.nodeid}"
            )
        options.update(marker.kwargs)
    return options


@pytest.fixture
def hathora_fake(request: pytest.FixtureRequest) -> Iterator[ThreadedFake]:
    """A fake Hathora serving on loopback for this test, on its own thread and loop.

    Point a client at ``hathora_fake.url`` with ``.token`` and ``.app_id``. Admin
    and fault calls (``.processes()``, ``.faults.add(...)``) are thread-safe.
    Options come from ``@pytest.mark.hathora_fake(...)``.
    """
    from .testing import ThreadedFake

    node = request.node
    assert isinstance(node, pytest.Item)
    with ThreadedFake(**_options(node)) as fake:
        yield fake


@pytest.fixture
def hathora_env(hathora_fake: ThreadedFake, monkeypatch: pytest.MonkeyPatch) -> ThreadedFake:
    """``hathora_fake``, with HATHORA_TOKEN, HATHORA_APP_ID and HATHORA_BASE_URL set to it."""
    monkeypatch.setenv(ENV_TOKEN, hathora_fake.token)
    monkeypatch.setenv(ENV_APP_ID, hathora_fake.app_id)
    monkeypatch.setenv(ENV_BASE_URL, hathora_fake.url)
    return hathora_fake
