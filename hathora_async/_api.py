"""The narrow interface the endpoint groups and helpers need of a client.

``processes.py``, ``rooms.py``, ``waiting.py``, ``prealloc.py``, ``_strays.py``
and ``pool.py`` are typed against these protocols, not ``HathoraClient``: they
depend on "something that sends an endpoint's request with call options",
so none of them imports ``client.py`` and the package's imports form no cycle
(``tests/test_import_graph.py`` checks it). ``HathoraClient`` is the one
implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from ._budget import SendBudget
from ._http import CallOptions, Endpoint, Query
from ._recent import RecentCreates
from ._watch import ProcessWatcher
from .models import ApiResponse, ProcessStatus, ProcessV2, Region
from .retry import Timeouts

__all__ = ["ApiClient", "ProcessCalls", "Transport"]

T = TypeVar("T")


class Transport(Protocol):
    """Sends an endpoint's request: what an endpoint group (``client.rooms``) needs."""

    _options: CallOptions  # timeouts, retry, sleep and clock of each call
    _recent: RecentCreates  # what this client created lately (read-after-create grace)
    _watcher: ProcessWatcher  # coalesced polling, shared with siblings (issue 12)

    @property
    def timeouts(self) -> Timeouts:
        """The time limits of each call."""

    def _app_segment(self, app_id: str | None) -> str:
        """``app_id``, else the client's default, as a path segment; ValueError if none."""

    def _call(
        self,
        endpoint: Endpoint[T],
        path_segments: tuple[str, ...],
        *,
        query: Query | None = None,
        json_body: bytes | None = None,
    ) -> Coroutine[Any, Any, ApiResponse[T]]:
        """Send one request of ``endpoint`` and decode its answer."""


class ProcessCalls(Protocol):
    """The ProcessesV2 calls the helpers make (``client.processes``)."""

    async def create_process_with_http_info(
        self, region: Region | str, *, app_id: str | None = None
    ) -> ApiResponse[ProcessV2]: ...

    async def create_process(
        self, region: Region | str, *, app_id: str | None = None
    ) -> ProcessV2: ...

    async def get_latest_processes_with_http_info(
        self,
        *,
        status: Iterable[ProcessStatus | str] | None = None,
        region: Iterable[Region | str] | None = None,
        app_id: str | None = None,
    ) -> ApiResponse[list[ProcessV2]]: ...

    async def get_process_info_with_http_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ApiResponse[ProcessV2]: ...

    async def get_process_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ProcessV2: ...

    async def stop_process(self, process_id: str, *, app_id: str | None = None) -> None: ...


class ApiClient(Transport, Protocol):
    """A client as the helpers (waits, pre-allocation, the warm pool) use it."""

    @property
    def processes(self) -> ProcessCalls:
        """The ProcessesV2 calls."""

    @property
    def closed(self) -> bool:
        """True once the client is closed: no call can succeed."""

    @property
    def _budget(self) -> SendBudget:
        """The send budget, shared with the client's siblings (issue 12)."""

    def with_options(
        self,
        *,
        timeout: Timeouts | float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> ApiClient:
        """A sibling sharing the session, with other time limits or retry sleep."""
