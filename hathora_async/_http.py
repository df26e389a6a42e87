"""The one request function every endpoint goes through, with its retry loop."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import aiohttp
import attrs
from yarl import URL

from . import _constants as C
from ._budget import SendBudget, not_sent
from ._convert import DecodeFailure, loads
from ._structgen import fast_constructor
from .errors import (
    ApiError,
    ClientClosedError,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    RateLimitedError,
    ResponseDecodeError,
    error_class_for,
)
from .models import ApiResponse
from .retry import RetryPolicy, Timeouts, parse_retry_after

__all__ = ["Endpoint", "CallOptions", "Transport"]

T = TypeVar("T")

logger = logging.getLogger(C.LOGGER_NAME)

# Statuses worth another try for requests that are safe to repeat.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

Query = Sequence[tuple[str, str]]

# Paths and URLs kept per transport: enough for every process a server watches.
_MAX_TARGETS = 1024

# ApiResponse(status_code, headers, data), built without attrs' per-field setattr.
_response: Callable[[int, Mapping[str, str], Any], ApiResponse[Any]] = fast_constructor(ApiResponse)


@attrs.frozen
class Endpoint(Generic[T]):
    """One HTTP operation: how to call it and how to read its success answer.

    ``path`` is a ``str.format`` template filled with encoded path segments.
    ``idempotent`` is False for operations that must never be sent twice
    blindly (creating a billed process).
    """

    name: str
    method: str
    path: str
    success: int
    decode: Callable[[bytes], T] | None
    idempotent: bool = True


@attrs.frozen
class CallOptions:
    """Per-client call settings, with what can be computed once computed once."""

    timeouts: Timeouts
    retry: RetryPolicy
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    first_attempt_timeout: aiohttp.ClientTimeout = attrs.field(init=False)

    @first_attempt_timeout.default
    def _full_timeout(self) -> aiohttp.ClientTimeout:
        return self.attempt_timeout(self.timeouts.total)

    def attempt_timeout(self, remaining: float) -> aiohttp.ClientTimeout:
        """aiohttp's limits for one attempt that must end within ``remaining``."""
        return aiohttp.ClientTimeout(
            total=remaining,
            # Strictly inside the total: a connect that hangs must fail as a connect
            # timeout (provably not sent, so even a create may be retried), never
            # as the total timer, which cannot say whether the request left.
            connect=min(self.timeouts.connect, remaining * 0.9),
            sock_read=min(self.timeouts.read, remaining),
            # aiohttp rounds timeouts above this up to a whole second: a deadline
            # must not fire late, so never round.
            ceil_threshold=math.inf,
        )


class _SecretHeader(str):
    """A header value (the credential) whose repr is redacted.

    aiohttp copies header values into its own multidicts, and those show up as
    frame locals in tracebacks formatted with ``capture_locals=True``; the value
    itself must hide, wherever it is copied to.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


# The one header a JSON body adds to a session that already has the others.
_JSON_CONTENT: Mapping[str, str] = {"Content-Type": "application/json"}


class _Redacted(dict[str, str]):
    """Request headers whose repr never shows the credential."""

    def __repr__(self) -> str:
        return repr({k: ("<redacted>" if k == "Authorization" else v) for k, v in self.items()})


def _message_of(body: bytes, status: int) -> str:
    try:
        data = loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    text = body[:200].decode("utf-8", "replace").strip()
    return text or f"HTTP {status} with no message"


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    """Map an unexpected status and Hathora's ``{"message": ...}`` body to its error."""
    cls = error_class_for(status)
    kept = body[: C.MAX_ERROR_BODY_BYTES]
    message = _message_of(kept, status)
    if cls is RateLimitedError:
        return RateLimitedError(
            status,
            message,
            headers=headers,
            body=kept,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    return cls(status, message, headers=headers, body=kept)


def _transport_error(exc: BaseException) -> tuple[HathoraError, bool, bool]:
    """Classify an aiohttp failure: (error, request possibly sent, worth retrying)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return HathoraTimeoutError(f"timed out connecting: {exc}"), False, True
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return HathoraConnectionError(f"TLS failure: {exc}"), False, False
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HathoraConnectionError(f"cannot connect: {exc}"), False, True
    if isinstance(exc, asyncio.TimeoutError):
        return HathoraTimeoutError(f"timed out waiting for the response: {exc!r}"), True, True
    if isinstance(exc, aiohttp.ClientPayloadError):
        return HathoraConnectionError(f"response cut short: {exc}"), True, True
    return HathoraConnectionError(f"connection failed: {exc!r}"), True, True


class Transport:
    """One pooled aiohttp session, shared by a client and its ``with_options`` siblings."""

    def __init__(
        self,
        *,
        base_url: URL,
        headers: Mapping[str, str],
        session: aiohttp.ClientSession | None,
        max_connections: int,
        trace_configs: Sequence[aiohttp.TraceConfig] | None,
        budget: SendBudget | None = None,
    ) -> None:
        self.base_url = base_url
        # The send budget (issue 12), shared by every call through this transport.
        self.budget = budget if budget is not None else SendBudget(None, time.monotonic)
        self._base_path = base_url.raw_path.rstrip("/")
        # The client passes the credential already wrapped in ``_SecretHeader``.
        self._headers = _Redacted(headers)
        # What each request passes, built once. A session the client creates
        # carries the headers itself (aiohttp then merges nothing per request);
        # a caller's session gets them with every request.
        self._request_headers: Mapping[str, str] | None = self._headers
        self._request_json_headers: Mapping[str, str] = _Redacted({**headers, **_JSON_CONTENT})
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._closed = False
        # Each call's path and URL, kept: the same ids come back call after call.
        self._targets: dict[tuple[str, tuple[str, ...]], tuple[str, URL]] = {}
        # Tasks now inside ``request``, so that ``close()`` can end them wherever
        # they wait (connecting, a pool slot, the answer, a pause between attempts).
        self._inflight: set[asyncio.Task[Any]] = set()
        self._cancelled_by_close: set[asyncio.Task[Any]] = set()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def open(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop."""
        if self._closed:
            raise ClientClosedError("the HathoraClient is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=C.DEFAULT_KEEPALIVE_TIMEOUT,
            )
            self._request_headers = None
            self._request_json_headers = _JSON_CONTENT
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                # Every call passes its own timeout; this bounds the session itself.
                timeout=aiohttp.ClientTimeout(
                    total=C.DEFAULT_TOTAL_TIMEOUT,
                    connect=C.DEFAULT_CONNECT_TIMEOUT,
                    sock_read=C.DEFAULT_READ_TIMEOUT,
                ),
                trace_configs=self._trace_configs,
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the owned session exactly once; end the calls in flight."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in self._inflight:
            if task is not current:
                self._cancelled_by_close.add(task)
                task.cancel()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def request(
        self,
        endpoint: Endpoint[T],
        path_segments: tuple[str, ...],
        options: CallOptions,
        *,
        query: Query | None = None,
        json_body: bytes | None = None,
    ) -> ApiResponse[T]:
        """Send ``endpoint`` with retries per ``options``; decode or raise a typed error.

        ``path_segments`` must already be encoded (see ``_paths.segment``).
        """
        task = asyncio.current_task()
        if task is None:
            return await self._send(endpoint, path_segments, options, query, json_body)
        self._inflight.add(task)
        try:
            return await self._send(endpoint, path_segments, options, query, json_body)
        except asyncio.CancelledError:
            # Cancelled while waiting for the send budget: this attempt was not sent.
            unsent = self.budget.forget(task)
            if task in self._cancelled_by_close and _only_cancelled_by_close(task):
                error = ClientClosedError("the HathoraClient was closed during the call")
                path = self._target(endpoint.path, path_segments)[0]
                # Closed mid-call: a create may or may not have reached the server.
                unknown = not endpoint.idempotent and not unsent
                error._locate(endpoint.method, path, outcome_unknown=unknown)
                raise error from None
            raise
        finally:
            self._inflight.discard(task)
            self._cancelled_by_close.discard(task)

    def _target(self, template: str, path_segments: tuple[str, ...]) -> tuple[str, URL]:
        """The path and URL of a call, kept: the same ids come back call after call."""
        path = self._base_path + template.format(*path_segments)
        target = (path, self.base_url.with_path(path, encoded=True))
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[(template, path_segments)] = target
        return target

    async def _send(
        self,
        endpoint: Endpoint[T],
        path_segments: tuple[str, ...],
        options: CallOptions,
        query: Query | None,
        json_body: bytes | None,
    ) -> ApiResponse[T]:
        session = self._session
        if session is None:
            session = self.open()
        target = self._targets.get((endpoint.path, path_segments))
        if target is None:
            target = self._target(endpoint.path, path_segments)
        path, url = target
        if query:
            url = url.with_query(query)
        headers = self._request_headers if json_body is None else self._request_json_headers
        clock = options.clock
        policy = options.retry
        deadline = clock() + options.timeouts.total
        timeout = options.first_attempt_timeout
        retries = 0
        # -- send budget (issue 12) --
        budget = self.budget
        write = endpoint.method != "GET"
        refusals = 0  # 429s: refused, so not counted against the retry attempts
        last: HathoraError | None = None
        # --
        while True:
            error: HathoraError
            sent = True
            retryable: bool
            # -- send budget (issue 12): wait for it; nothing is sent before --
            if budget.gated:
                if not await budget.acquire(write, deadline, options.sleep):
                    if last is not None:
                        raise_timeout(endpoint, path, last)
                    raise not_sent(endpoint.method, path)
                timeout = options.attempt_timeout(
                    max(deadline - clock(), C.MIN_BOUNDED_CALL_TIMEOUT)
                )
            ticket = budget.generation
            # --
            try:
                async with session.request(
                    endpoint.method,
                    url,
                    headers=headers,
                    data=json_body,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    if status == 204:
                        body = b""  # No Content has no body, by definition: nothing to read
                    elif (length := response.content_length) is not None and (
                        length <= C.MAX_RESPONSE_BYTES
                    ):
                        body = await response.read()  # the usual answer, read at once
                    else:
                        body = await _read_bounded(response)
                    response_headers = response.headers
            except RuntimeError as exc:
                if not session.closed:
                    raise
                # A caller-owned session closed under us: nothing was sent.
                closed = ClientClosedError("the aiohttp session given to HathoraClient is closed")
                closed._locate(endpoint.method, path, outcome_unknown=False)
                raise closed from exc
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error, sent, retryable = _transport_error(exc)
                if self._closed:
                    error = ClientClosedError("the HathoraClient was closed during the call")
                    retryable = False
                error.__cause__ = exc
                # Safe to resend a create only if it provably never left the client.
                retryable = retryable and (endpoint.idempotent or not sent)
            else:
                if status == endpoint.success:
                    budget.passed(ticket)  # send budget (issue 12)
                    return self._success(endpoint, path, status, response_headers, body)
                error = error_from_response(status, response_headers, body)
                # -- send budget (issue 12): a 429 slows (and may pause) every call --
                if isinstance(error, RateLimitedError):
                    budget.refused(ticket, error.retry_after, policy.max_retry_after)
                    if budget.enabled and policy.attempts > 1:
                        refusals += 1
                # --
                # A 429 means the server refused to act: safe to resend even a create.
                retryable = status in RETRYABLE_STATUSES and (endpoint.idempotent or status == 429)
                # A 2xx other than the expected one most likely did act (a 200 or
                # 202 to a create); only 4xx other than 408 prove it did not.
                sent = status == 408 or status >= 500 or 200 <= status < 300
            unknown = sent and not endpoint.idempotent
            error._locate(endpoint.method, path, outcome_unknown=unknown)
            retries += 1
            error.attempts = retries
            remaining = deadline - clock()
            counted = max(1, retries - refusals)  # send budget (issue 12)
            delay = self._delay_or_raise(error, retryable, counted, policy, remaining)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "retrying %s %s after %s (attempt %d of %d) in %.3fs",
                    endpoint.method,
                    path,
                    _short(error),
                    retries,
                    policy.attempts,
                    delay,
                )
            # A 429's Retry-After paused the budget: waiting for it is this call's pause.
            if not (budget.enabled and isinstance(error, RateLimitedError) and error.retry_after):
                await self._pause(delay, options.sleep)
            remaining = deadline - clock()
            if remaining <= 0:
                raise_timeout(endpoint, path, error)
            last = error  # send budget (issue 12)
            timeout = options.attempt_timeout(remaining)

    def _success(
        self,
        endpoint: Endpoint[T],
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> ApiResponse[T]:
        decode = endpoint.decode
        if decode is None:
            return _response(status, headers, None)
        try:
            data = decode(body)
        except DecodeFailure as exc:
            error = ResponseDecodeError(status, str(exc), body[: C.MAX_ERROR_BODY_BYTES])
            # The server did act (it said so); only the answer is unreadable.
            error._locate(endpoint.method, path, outcome_unknown=not endpoint.idempotent)
            raise error from None
        return _response(status, headers, data)

    @staticmethod
    def _delay_or_raise(
        error: HathoraError,
        retryable: bool,
        retries: int,
        policy: RetryPolicy,
        remaining: float,
    ) -> float:
        if not retryable or retries >= policy.attempts:
            raise error
        retry_after: float | None = None
        if isinstance(error, RateLimitedError):
            retry_after = error.retry_after  # parsed when the answer was read
        elif isinstance(error, ApiError):
            retry_after = parse_retry_after(error.headers.get("Retry-After"))
        if retry_after is not None:
            if retry_after > policy.max_retry_after or retry_after >= remaining:
                # Waiting that long is the caller's decision, not ours.
                raise error
            return retry_after
        delay = policy.backoff(retries)
        if delay >= remaining:
            raise error
        return delay

    async def _pause(self, delay: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Sleep between attempts; ``close()`` cancels the sleep (see ``request``)."""
        if not self._closed:
            await sleep(delay)
        if self._closed:
            raise ClientClosedError("the HathoraClient was closed during the call")


def _only_cancelled_by_close(task: asyncio.Task[Any]) -> bool:
    """Withdraw close()'s cancellation; True if nobody else cancelled the task too."""
    uncancel = getattr(task, "uncancel", None)
    # Python 3.10 cannot tell cancellations apart: the close is the likely one.
    return uncancel is None or uncancel() == 0


def raise_timeout(endpoint: Endpoint[Any], path: str, last: HathoraError) -> NoReturn:
    """The deadline passed between attempts: report it with the last failure."""
    error = HathoraTimeoutError(f"call deadline exceeded; last failure: {_short(last)}")
    error._locate(endpoint.method, path, outcome_unknown=last.outcome_unknown)
    error.attempts = last.attempts
    raise error from last


def _short(error: HathoraError) -> str:
    if isinstance(error, ApiError):
        return f"HTTP {error.status}"
    return type(error).__name__


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """A body too large for one ``read()``, or of unknown length, read within the limit."""
    length = response.content_length
    if length is not None:
        raise aiohttp.ClientPayloadError(f"response of {length} bytes exceeds the limit")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(65536):
        size += len(chunk)
        if size > C.MAX_RESPONSE_BYTES:
            raise aiohttp.ClientPayloadError("response exceeds the size limit")
        chunks.append(chunk)
    return b"".join(chunks)
