"""The ProcessesV2 operations, as ``client.processes``."""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from . import _constants as C
from ._convert import decoder
from ._http import Endpoint
from ._paths import region_segment, segment
from .errors import HathoraError
from .models import ApiResponse, OpenEnum, ProcessStatus, ProcessV2, Region
from .waiting import wait_for_process

if TYPE_CHECKING:
    from ._api import ApiClient

__all__ = ["ProcessesApi"]

_decode_process = decoder(ProcessV2)

CREATE_PROCESS: Endpoint[ProcessV2] = Endpoint(
    "CreateProcess",
    "POST",
    "/processes/v2/{}/create/{}",
    201,
    _decode_process,
    idempotent=False,
    creates="processId",
)
GET_LATEST_PROCESSES: Endpoint[list[ProcessV2]] = Endpoint(
    "GetLatestProcesses", "GET", "/processes/v2/{}/list/latest", 200, decoder(list[ProcessV2])
)
GET_PROCESS_INFO: Endpoint[ProcessV2] = Endpoint(
    "GetProcessInfo", "GET", "/processes/v2/{}/info/{}", 200, _decode_process
)
# Stopping twice is harmless, so a stop is safe to retry.
STOP_PROCESS: Endpoint[None] = Endpoint(
    "StopProcess", "POST", "/processes/v2/{}/stop/{}", 204, None
)


def _latest_query(
    status: Iterable[ProcessStatus | str] | None, region: Iterable[Region | str] | None
) -> list[tuple[str, str]] | None:
    """GetLatestProcesses' filters as query pairs, or None for none."""
    if status is None and region is None:
        return None
    return (_query_values(status, "status") + _query_values(region, "region")) or None


def _query_values(
    values: Iterable[ProcessStatus | Region | str] | None, name: str
) -> list[tuple[str, str]]:
    if values is None:
        return []
    if isinstance(values, str):
        # A lone string would otherwise be split into characters.
        values = [values]
    pairs = []
    for value in values:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} filter values must be non-empty strings, got {value!r}")
        pairs.append((name, value.value if isinstance(value, OpenEnum) else value))
    return pairs


class ProcessesApi:
    """Hathora's ProcessesV2 API. Reached as ``client.processes``.

    ``app_id`` defaults to the client's.

    Every call may raise, besides the errors each method names:
    ``UnauthorizedError`` (401: the token was refused), ``RateLimitedError``
    (429) and ``ServerError`` (5xx) once retries are spent,
    ``HathoraConnectionError``, ``HathoraTimeoutError`` (no answer within the
    client's ``timeouts``, in seconds), ``ResponseDecodeError`` (an answer
    that does not fit the model) and ``ClientClosedError``. All derive from
    ``HathoraError``; ``ApiError`` subclasses carry ``status`` and ``message``.
    """

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    # The plain methods call the transport themselves rather than awaiting their
    # ``_with_http_info`` twin: a coroutine less to create, and to resume through
    # at every suspension, on every call.

    def _ids(self, process_id: str, app_id: str | None) -> tuple[str, str]:
        """The encoded (app, process) path segments of a call on one process."""
        return (self._client._app_segment(app_id), segment(process_id, "process_id"))

    async def create_process_with_http_info(
        self, region: Region | str, *, app_id: str | None = None
    ) -> ApiResponse[ProcessV2]:
        """Like ``create_process`` (``POST /processes/v2/{appId}/create/{region}``),
        returning status code (201), headers and data."""
        call = self._create(region, app_id)
        try:
            response = await call
        except HathoraError as exc:
            self._made(exc.process_id)
            raise
        self._made(response.data.process_id)
        return response

    async def create_process(self, region: Region | str, *, app_id: str | None = None) -> ProcessV2:
        """Create a process in ``region`` without a room (pre-allocation).

        ``POST /processes/v2/{appId}/create/{region}``. Returns the new
        ``ProcessV2``, usually ``starting``: see ``wait_for_process``. Raises
        ``PaymentRequiredError`` (402: billing), ``NotFoundError`` (404: no such
        app, or a region it cannot use) and ``ValueError`` for a malformed
        region before any I/O.

        Billed, and not idempotent: it is retried only when the server provably
        did not act. An error with ``outcome_unknown`` True means a process may
        exist; reconcile with ``get_latest_processes`` before creating again.
        """
        # As ``create_process_with_http_info``, without awaiting through it (see _ids),
        # and ``_create`` inline: a call less on every create.
        client = self._client
        call = client._call(CREATE_PROCESS, (client._app_segment(app_id), region_segment(region)))
        try:
            process = (await call).data
        except HathoraError as exc:
            self._made(exc.process_id)
            raise
        client._recent.note("process", process.process_id)  # (_made, inline)
        return process

    def _create(
        self, region: Region | str, app_id: str | None
    ) -> Coroutine[Any, Any, ApiResponse[ProcessV2]]:
        """The transport's CreateProcess call; the region and app checked first."""
        app = self._client._app_segment(app_id)
        return self._client._call(CREATE_PROCESS, (app, region_segment(region)))

    def _made(self, process_id: str | None) -> None:
        """Note a process this client made (None: nothing known to be made).

        Reads may not see it for a while: a 404 for it soon after is lag (see
        the waits). A failed create whose answer still named it was made too.
        """
        if process_id is not None:
            self._client._recent.note("process", process_id)

    async def get_latest_processes_with_http_info(
        self,
        *,
        status: Iterable[ProcessStatus | str] | None = None,
        region: Iterable[Region | str] | None = None,
        app_id: str | None = None,
    ) -> ApiResponse[list[ProcessV2]]:
        """Like ``get_latest_processes`` (``GET /processes/v2/{appId}/list/latest``),
        returning status code (200), headers and data."""
        app = self._client._app_segment(app_id)
        query = _latest_query(status, region)
        return await self._client._call(GET_LATEST_PROCESSES, (app,), query=query)

    async def get_latest_processes(
        self,
        *,
        status: Iterable[ProcessStatus | str] | None = None,
        region: Iterable[Region | str] | None = None,
        app_id: str | None = None,
    ) -> list[ProcessV2]:
        """The 10 most recent processes, optionally filtered by status and region.

        ``GET /processes/v2/{appId}/list/latest``. Returns a list of
        ``ProcessV2``, newest first (empty when none match). Each filter is an
        iterable; values are sent as repeated query keys. Raises
        ``NotFoundError`` (404: no such app) and ``ValueError`` for an empty or
        non-string filter value.
        """
        # The transport's call awaited here, not through the ``_with_http_info``
        # coroutine: one frame less to create and to resume through on every call.
        app = self._client._app_segment(app_id)
        query = _latest_query(status, region)
        return (await self._client._call(GET_LATEST_PROCESSES, (app,), query=query)).data

    async def get_process_info_with_http_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ApiResponse[ProcessV2]:
        """Like ``get_process_info`` (``GET /processes/v2/{appId}/info/{processId}``),
        returning status code (200), headers and data."""
        return await self._client._call(GET_PROCESS_INFO, self._ids(process_id, app_id))

    async def get_process_info(self, process_id: str, *, app_id: str | None = None) -> ProcessV2:
        """One process, as a ``ProcessV2`` (status, rooms, timestamps, ports).

        ``GET /processes/v2/{appId}/info/{processId}``. Raises ``NotFoundError``
        (404: no such process or app) and ``ValueError`` for a malformed id.
        """
        return (await self._client._call(GET_PROCESS_INFO, self._ids(process_id, app_id))).data

    async def stop_process_with_http_info(
        self, process_id: str, *, app_id: str | None = None
    ) -> ApiResponse[None]:
        """Like ``stop_process`` (``POST /processes/v2/{appId}/stop/{processId}``),
        returning status code (204) and headers (``data`` is None)."""
        return await self._client._call(STOP_PROCESS, self._ids(process_id, app_id))

    async def stop_process(self, process_id: str, *, app_id: str | None = None) -> None:
        """Stop a process immediately; returns None.

        ``POST /processes/v2/{appId}/stop/{processId}``. Stopping twice is
        harmless, so it is retried. Raises ``NotFoundError`` (404: no such
        process or app) and ``ValueError`` for a malformed id.
        """
        await self._client._call(STOP_PROCESS, self._ids(process_id, app_id))

    async def wait_for_process(
        self,
        process_id: str,
        *,
        timeout: float = C.DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = C.DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = C.DEFAULT_MAX_POLL_INTERVAL,
        app_id: str | None = None,
    ) -> ProcessV2:
        """Poll a process until it is ``running`` and return it (a ``ProcessV2``).

        Polls ``GET /processes/v2/{appId}/info/{processId}``. Times are in
        seconds (defaults: ``timeout`` 105, ``poll_interval`` 1,
        ``max_poll_interval`` 5).

        Raises ``ProcessFailedError`` (with the last ``ProcessV2``) as soon as it
        is ``failed``, ``draining``, ``stopping`` or ``stopped``, and
        ``ProcessWaitTimeoutError`` once ``timeout`` seconds pass (the default is
        a little above Hathora's 100 s port-binding deadline). Polls start
        ``poll_interval`` apart and grow 1.5x per poll up to
        ``max_poll_interval``; network errors, 429s and 5xx answers are polled
        through until the deadline. So is a 404 for a process this client (or
        a sibling) created less than ``READ_AFTER_CREATE_GRACE`` (15 s) ago:
        Hathora's reads can lag behind its creates. Any other 404 raises
        ``NotFoundError``. Cancelling it stops it at once.
        """
        return await wait_for_process(
            self._client,
            process_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            app_id=app_id,
        )
