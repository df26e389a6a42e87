"""The one request function every endpoint goes through, with its retry loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sys
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import aiohttp
import attrs
from yarl import URL

from . import _constants as C
from ._budget import SendBudget, not_sent, withdraw_close_cancel
from ._convert import DecodeFailure, created_id, loads
from ._dead_loop import release_sockets
from ._redact import Redactor
from ._structgen import fast_constructor
from .errors import (
    ApiError,
    ClientClosedError,
    ClientLoopError,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    RateLimitedError,
    ResponseDecodeError,
    ResponseTooLargeError,
    error_class_for,
)
from .models import ApiResponse
from .retry import RetryPolicy, Timeouts, parse_retry_after

__all__ = ["Endpoint", "CallOptions", "Transport"]

T = TypeVar("T")

logger = logging.getLogger(C.LOGGER_NAME)


def _task_lookup() -> Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]:
    """``asyncio.current_task(loop)`` as one C call: it runs twice on every request.

    On 3.10 and 3.11 ``current_task`` is Python around the running-task table;
    that table's own ``get`` answers the same. From 3.12 it is C already.
    """
    table = getattr(asyncio.tasks, "_current_tasks", None)
    if sys.version_info < (3, 12) and isinstance(table, dict):
        return table.get
    return asyncio.current_task


_current_task = _task_lookup()

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
    ``success`` is the documented success status (any 2xx is accepted).
    ``idempotent`` is False for operations that must never be sent twice
    blindly (creating a billed process). ``creates`` names the answer's key
    holding the id of what the operation creates (``processId``): a failed
    create whose answer still shows it reports it as ``error.process_id``.
    """

    name: str
    method: str
    path: str
    success: int
    decode: Callable[[bytes], T] | None
    idempotent: bool = True
    creates: str | None = None


@attrs.frozen
class CallOptions:
    """Per-client call settings, with what can be computed once computed once."""

    timeouts: Timeouts
    retry: RetryPolicy
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES
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


# An istr: multidict looks it up without case-folding it first.
_CONTENT_ENCODING = aiohttp.hdrs.CONTENT_ENCODING

# The one header a JSON body adds to a session that already has the others.
_JSON_CONTENT: Mapping[str, str] = {"Content-Type": "application/json"}


class _Redacted(dict[str, str]):
    """Request headers whose repr never shows the credential."""

    def __repr__(self) -> str:
        return repr({k: ("<redacted>" if k == "Authorization" else v) for k, v in self.items()})


# Redacts nothing: for transports and helpers built without a token.
_NO_SECRET = Redactor(None)


def _message_of(body: bytes, status: int) -> str:
    try:
        data = loads(body)
    except Exception:  # any parser failure (invalid, too deep): shown as text below
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    text = body[:200].decode("utf-8", "replace").strip()
    return text or f"HTTP {status} with no message"


def _kept(body: bytes, redactor: Redactor) -> bytes:
    """The part of an answer's body an error keeps, the client's token redacted.

    Redacted before the cut, so a token straddling the cut leaves no head behind.
    """
    return redactor.bytes(body[: C.MAX_ERROR_BODY_BYTES + redactor.overlap])[
        : C.MAX_ERROR_BODY_BYTES
    ]


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    redactor: Redactor = _NO_SECRET,
) -> ApiError:
    """Map an unexpected status and Hathora's ``{"message": ...}`` body to its error.

    Whatever the server echoed of the client's token (``redactor``) is removed
    from the message, the body and the headers the error keeps.
    """
    cls = error_class_for(status)
    kept = _kept(body, redactor)
    # The decoded message too: it may show the token in a JSON escape the body hid.
    message = redactor.text(_message_of(kept, status))
    headers = redactor.headers(headers)
    if cls is RateLimitedError:
        return RateLimitedError(
            status,
            message,
            headers=headers,
            body=kept,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    return cls(status, message, headers=headers, body=kept)


def _transport_error(
    exc: BaseException, redactor: Redactor, connected: bool | None
) -> tuple[HathoraError, bool, bool]:
    """Classify an aiohttp failure: (error, request possibly sent, worth retrying).

    ``connected`` says whether the attempt got a connection (None: not known,
    for a caller's session). Without one nothing was sent, whichever timer
    fired; with one, only the kind of failure can tell. aiohttp's text may
    quote what the server sent (a malformed header echoing the token): the
    token is redacted from the message, and a cause showing it is not chained.
    """
    error, sent, retryable = _classify(exc)
    if connected is False:
        if isinstance(error, HathoraTimeoutError) and sent:
            error = HathoraTimeoutError(f"timed out before a connection was ready: {exc!r}")
        sent = False
    text = str(error.args[0]) if error.args else ""
    if redactor.found_in(text):
        error.args = (redactor.text(text),)
    if _shows_secret(exc, redactor):
        error.__suppress_context__ = True  # the cause withheld: it would show the token
    else:
        error.__cause__ = exc
    return error, sent, retryable


def _shows_secret(exc: BaseException, redactor: Redactor) -> bool:
    """Whether ``exc`` or an exception it chains shows the secret in its text."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if redactor.found_in(repr(current)) or redactor.found_in(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _classify(exc: BaseException) -> tuple[HathoraError, bool, bool]:
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


class _BodyTooLarge(Exception):
    """The body passed the size limit while being read; ``head`` is its start."""

    def __init__(self, status: int, head: bytes) -> None:
        self.status = status
        self.head = head


class _Slots:
    """The connections a transport may use at once; callers beyond them queue here.

    The queue is ours, not aiohttp's, so the client knows a call is waiting for
    a free connection (not connecting, not sent) and bounds that wait by the
    call's deadline instead of reporting it as a connect timeout. FIFO.
    """

    __slots__ = ("free", "limit", "waiters")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.limit = limit
        self.waiters: deque[asyncio.Future[bool]] = deque()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a slot; True once it is held."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(waiter)
        expiry = loop.call_later(max(timeout, 0.0), _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a slot just as the call was cancelled
            raise
        finally:
            expiry.cancel()

    def release(self) -> None:
        """Give the slot to the next caller still waiting, or back to the pool."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.free += 1


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Connector(aiohttp.TCPConnector):
    """The client's own connector: it tells the transport when a request has a connection.

    Only from then on can a request have started to leave the client: a call
    still queued or connecting when it fails (or the client closes) provably
    sent nothing, whichever timer fired. One coroutine frame per call, unlike a
    ``TraceConfig`` (which would build and send trace objects for every signal).

    ``doom()`` names connections (their protocols) never to be used again: one
    that carried an error answer to a create may be closing on the server's
    side (without ``Connection: close``), and a create sent on it (its retry
    after a 429 above all) could be cut off after leaving, its outcome
    unknown. Such a connection is closed when next picked from the pool, and
    another one taken. (aiohttp hands a connection back to its pool as soon as
    an answer is read, before the client sees the status: hence after the fact.)
    """

    def __init__(self, inflight: dict[asyncio.Task[Any], Any], **options: Any) -> None:
        super().__init__(**options)
        # The transport's calls in flight (see Transport._inflight), marked here.
        self._hathora_inflight = inflight
        self._hathora_doomed: weakref.WeakSet[Any] = weakref.WeakSet()
        # Whether the set may be non-empty: one attribute read per call, not a len().
        self._hathora_any_doomed = False

    def doom(self, protocol: Any) -> None:
        """Never hand out the connection of ``protocol`` again."""
        self._hathora_doomed.add(protocol)
        self._hathora_any_doomed = True

    async def connect(
        self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await _connect(self, req, traces, timeout)
        if self._hathora_any_doomed:
            doomed = self._hathora_doomed
            while connection.protocol in doomed:
                doomed.discard(connection.protocol)
                connection.close()
                connection = await _connect(self, req, traces, timeout)
            self._hathora_any_doomed = bool(doomed)
        # No await between the connection and this mark: a cancellation cannot slip in.
        # The running call's attempt has a connection: from now on it may have left.
        # (Inline, and the loop passed: this runs for every request.)
        inflight = self._hathora_inflight
        task = _current_task(self._loop)
        if task in inflight:  # (never None: None is no key)
            protocol = connection.protocol
            # (A protocol may be falsy: aiohttp's has a length.)
            inflight[task] = True if protocol is None else protocol
        return connection


def _unbound(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("no session bound yet")  # (never reached: request() opens first)


# The connector's own connect, without building a ``super()`` on every request.
_connect = aiohttp.TCPConnector.connect


async def _close_when_loop_ends(
    ref: weakref.ref[aiohttp.ClientSession],
) -> AsyncGenerator[None, None]:
    """Close the session when its event loop shuts down.

    ``asyncio.run`` (and every loop shut down by ``loop.shutdown_asyncgens()``)
    closes open async generators before closing the loop: this one then closes
    the client's session inside that loop, so a client left open at the end of
    one ``asyncio.run`` leaks nothing and works again in the next.
    """
    try:
        yield
    finally:
        session = ref()
        if session is not None and not session.closed:
            await session.close()


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
        redactor: Redactor = _NO_SECRET,
        proxy: URL | None = None,
        proxy_auth: aiohttp.BasicAuth | None = None,
        check_proxy: Callable[[], str | None] | None = None,
    ) -> None:
        self.base_url = base_url
        # The send budget (issue 12), shared by every call through this transport.
        self.budget = budget if budget is not None else SendBudget(None, time.monotonic)
        self._base_path = base_url.raw_path.rstrip("/")
        # The client passes the credential already wrapped in ``_SecretHeader``.
        self._headers = _Redacted(headers)
        # What each request passes, built once. A session the client creates
        # carries the headers itself (aiohttp then merges nothing per request);
        # a caller's session gets them with every request (and they win over its own).
        self._request_headers: Mapping[str, str] | None = self._headers
        self._request_json_headers: Mapping[str, str] = _Redacted({**headers, **_JSON_CONTENT})
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._redactor = redactor
        # The proxy (with trust_env) decided once, at construction: the client's
        # own session never reads the environment again (see HathoraClient).
        self._proxy = proxy
        self._proxy_auth = proxy_auth
        # A caller's trust_env session re-reads the environment per request:
        # then the proxy is checked again before each one (a reason, or None).
        self._check_proxy = check_proxy
        # What else each request passes. A caller's session: its defaults must
        # not change what a call means. The client's own session has these
        # settings already (see open()), and each keyword costs aiohttp work on
        # every request: only a proxy, if any, is passed then.
        self._request_options: dict[str, Any] = {
            "proxy": proxy,
            "proxy_auth": proxy_auth,
            "raise_for_status": False,
            "auto_decompress": True,
        }
        # The session's ``request`` with those options bound (see _bind).
        self._send_request: Callable[..., Any] = _unbound
        self._closed = False
        # The loop the session serves, and the generator closing it when that loop ends.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._slots = _Slots(sys.maxsize)
        # Each call's path and URL, kept: the same ids come back call after call.
        self._targets: dict[tuple[str, tuple[str, ...]], tuple[str, URL]] = {}
        # Tasks now inside ``request``, so that ``close()`` can end them wherever
        # they wait (a free connection, connecting, the answer, a pause between
        # attempts), each with whether its attempt may have left the client: on
        # the client's own session, once it has a connection (``_Connector``); on
        # a caller's, which cannot tell, once it holds a connection slot.
        # (The value is the connection's protocol once known: anything but False
        # means possibly sent; see _left.)
        self._inflight: dict[asyncio.Task[Any], Any] = {}
        # The owned connector, told of connections never to reuse (see _Connector).
        self._connector: _Connector | None = None
        self._cancelled_by_close: set[asyncio.Task[Any]] = set()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def open(self) -> aiohttp.ClientSession:
        """The session, created on first use inside the running loop.

        The client's own session is created again in a new loop when the loop
        it served has ended (``asyncio.run`` after ``asyncio.run``).
        """
        if self._closed:
            raise ClientClosedError("the HathoraClient is closed")
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is not loop:
            if not self._owns_session:
                if self._loop is None:
                    self._bind(session, loop)
                    return session
                raise ClientLoopError(
                    "the aiohttp session given to HathoraClient belongs to another event loop"
                )
            if not session.closed and not self._abandon_dead_loop(session):
                raise ClientLoopError(
                    "this HathoraClient's session belongs to another event loop, still "
                    "open (another thread?); use one client per loop, or aclose() it in "
                    "its own loop first"
                )
            session = self._session = None
        if session is None:
            connector = _Connector(
                self._inflight,
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=C.DEFAULT_KEEPALIVE_TIMEOUT,
            )
            self._connector = connector
            self._request_headers = None
            self._request_json_headers = _JSON_CONTENT
            self._request_options = (
                {}
                if self._proxy is None and self._proxy_auth is None
                else {"proxy": self._proxy, "proxy_auth": self._proxy_auth}
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                # Every call passes its own timeout; this bounds the session itself.
                timeout=aiohttp.ClientTimeout(
                    total=C.DEFAULT_TOTAL_TIMEOUT,
                    connect=C.DEFAULT_CONNECT_TIMEOUT,
                    sock_read=C.DEFAULT_READ_TIMEOUT,
                ),
                trace_configs=self._trace_configs,
                # As every request of a caller's session asks (see _request_options).
                raise_for_status=False,
                auto_decompress=True,
                # A bearer-token API client has no use for cookies: never send one back.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Never: the proxy was chosen at construction (and is passed per
                # request); .netrc must not replace the token.
                trust_env=False,
            )
            self._bind(session, loop)
            closer = _close_when_loop_ends(weakref.ref(session))
            # Started here, so the loop tracks it (asyncio's first-iteration hook);
            # it holds no await before its yield, so one step reaches the yield.
            with contextlib.suppress(StopIteration):
                closer.__anext__().send(None)
            self._closer = closer
        return session

    def _abandon_dead_loop(self, session: aiohttp.ClientSession) -> bool:
        """Release the session of a loop closed without closing it; False if that loop lives.

        A loop closed without ``shutdown_asyncgens()`` (``loop.close()`` after
        ``run_until_complete``) never ran the closer: the sockets are closed
        here, directly, and the session marked closed, with no loop.
        """
        loop = self._loop
        if loop is None or not loop.is_closed():
            return False
        release_sockets(session)
        self._closer = None  # its loop is gone: it can never run
        # Calls of that loop can never resume; forget them.
        self._inflight.clear()
        self._cancelled_by_close.clear()
        return True

    def _bind(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        limit = self._max_connections
        if not self._owns_session:
            # Queue no more than the caller's connector admits, and no less.
            connector = session.connector
            limits = [getattr(connector, "limit", 0), getattr(connector, "limit_per_host", 0)]
            limit = min([n for n in limits if n] or [sys.maxsize])
        self._slots = _Slots(limit)
        # Bound once: ``**options`` at the call site would build and unpack a
        # dictionary on every attempt, even an empty one (the usual case).
        options = self._request_options
        self._send_request = (
            functools.partial(session.request, **options) if options else session.request
        )

    async def close(self) -> None:
        """Close the owned session exactly once; end the calls in flight."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        session = self._session
        if (
            session is not None
            and self._owns_session
            and self._loop is not loop
            and not session.closed
            and not self._abandon_dead_loop(session)
        ):
            # Still open: the client stays usable there, to be closed there.
            raise ClientLoopError(
                "this HathoraClient's session belongs to another event loop, still open: "
                "close it there"
            )
        self._closed = True
        current = asyncio.current_task()
        for task in self._inflight:
            if task is not current:
                self._cancelled_by_close.add(task)
                task.cancel()
        # Waits for the budget outside any call (preallocate's turns) end too.
        self.budget.close(self._inflight)
        self._session = None
        closer, self._closer = self._closer, None
        if session is not None and self._owns_session and self._loop is loop:
            await session.close()
        if closer is not None and self._loop is loop:
            await closer.aclose()

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
        # One loop lookup per call: it finds the task and checks the session's loop.
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop:
            session = self.open()
        task = _current_task(loop)
        if task is not None:
            self._inflight[task] = False
        # The attempts run in this frame, not in a coroutine of their own: one
        # frame less on every call.
        try:
            target = self._targets.get((endpoint.path, path_segments))
            if target is None:
                target = self._target(endpoint.path, path_segments)
            path, url = target
            if query:
                url = url.with_query(query)
            headers = self._request_headers if json_body is None else self._request_json_headers
            if self._check_proxy is not None:
                self._refuse_proxy(endpoint, path)
            clock = options.clock
            policy = options.retry
            limit = options.max_response_bytes
            deadline = clock() + options.timeouts.total
            timeout = options.first_attempt_timeout
            # Whether an attempt may have left the client matters only for a create.
            # The client's own connector says when an attempt has a connection; with
            # a caller's session, holding a slot must count as possibly sent.
            owned = self._owns_session
            tracked = task if not endpoint.idempotent and not owned else None
            slots = self._slots
            retries = 0
            # -- send budget (issue 12) --
            budget = self.budget
            write = endpoint.method != "GET"
            refusals = 0  # 429s: refused, so not counted against the retry attempts
            held = False  # the budget holds the next attempt back for the last 429
            last: HathoraError | None = None
            # --
            response: aiohttp.ClientResponse | None = None
            response_headers: Mapping[str, str] | None = None
            while True:
                error: HathoraError
                sent = True
                retryable: bool
                # -- send budget (issue 12): wait for it; nothing is sent before --
                if budget.gated:
                    if not await budget.acquire(write, deadline, options.sleep):
                        if self._closed:
                            self.open()  # raises ClientClosedError: nothing was sent
                        if last is not None:
                            raise_timeout(endpoint, path, last)
                        raise not_sent(endpoint.method, path)
                    timeout = options.attempt_timeout(
                        max(deadline - clock(), C.MIN_BOUNDED_CALL_TIMEOUT)
                    )
                ticket = budget.generation
                # --
                if slots.free > 0:
                    slots.free -= 1
                else:
                    await self._wait_for_slot(slots, endpoint, path, deadline - clock(), retries)
                if tracked is not None:
                    self._inflight[tracked] = True
                try:
                    response = await self._send_request(
                        endpoint.method,
                        url,
                        headers=headers,
                        data=json_body,
                        timeout=timeout,
                        allow_redirects=False,
                    )
                    try:
                        status = response.status
                        response_headers = response.headers
                        if status == 204:
                            body = b""  # No Content has no body, by definition: nothing to read
                        elif (
                            (length := response.content_length) is not None
                            and length <= limit
                            and _CONTENT_ENCODING not in response_headers
                        ):
                            body = await response.read()  # the usual answer, read at once
                        else:
                            # Compressed or of unknown length: counted after decoding.
                            body = await _read_bounded(
                                response, limit, status < 300, self._redactor.overlap
                            )
                    finally:
                        # What ``async with`` on the response does, without its four
                        # coroutines (two to enter, two to leave) on every call.
                        response.release()
                        # Only a request body still being written leaves anything to
                        # wait for (an attribute aiohttp may rename: then always wait).
                        if getattr(response, "_writer", response) is not None:
                            await response.wait_for_close()
                except _BodyTooLarge as exc:
                    status = exc.status
                    error = ResponseTooLargeError(status, limit, _kept(exc.head, self._redactor))
                    # Never retried: another attempt would read (and inflate) it again.
                    retryable = False
                    sent = not (400 <= status < 500 and status != 408)
                except RuntimeError as exc:
                    if not session.closed:
                        raise
                    # A caller-owned session closed under us: nothing was sent.
                    closed = ClientClosedError(
                        "the aiohttp session given to HathoraClient is closed"
                    )
                    closed._locate(endpoint.method, path, outcome_unknown=False)
                    raise closed from exc
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    connected = _left(self._inflight.get(task, False)) if owned and task else None
                    error, sent, retryable = _transport_error(exc, self._redactor, connected)
                    if self._closed:
                        cause = error.__cause__
                        error = ClientClosedError("the HathoraClient was closed during the call")
                        error.__cause__ = cause
                        error.__suppress_context__ = True
                        retryable = False
                    # Safe to resend a create only if it provably never left the client.
                    retryable = retryable and (endpoint.idempotent or not sent)
                    body = b""
                else:
                    if 200 <= status < 300:
                        budget.passed(ticket, write)  # send budget (issue 12)
                        # Decoded here, not in a method of its own: one call less per call.
                        decode = endpoint.decode
                        if decode is None:
                            return _response(status, response_headers, None)
                        try:
                            data = decode(body)
                        except Exception as exc:  # any failure (RecursionError, ...) is typed
                            error = self._decode_error(endpoint, path, status, body, exc)
                            body = b""  # the raw answer: see below
                            response = response_headers = None
                            raise error from None
                        return _response(status, response_headers, data)
                    error = error_from_response(status, response_headers, body, self._redactor)
                    if not endpoint.idempotent and self._connector is not None and task is not None:
                        protocol = self._inflight.get(task, False)
                        if protocol is not True and protocol is not False:
                            self._connector.doom(protocol)
                    # -- send budget (issue 12): a 429 slows (and may pause) every call --
                    if isinstance(error, RateLimitedError):
                        held = budget.refused(
                            ticket, error.retry_after, policy.max_retry_after, write
                        )
                        if budget.enabled and policy.attempts > 1:
                            refusals += 1
                    elif status == 503:
                        # An overloaded gateway's Retry-After pauses every call (capped
                        # as a 429's); a create it answered is still of unknown outcome.
                        held = budget.unavailable(
                            parse_retry_after(error.headers.get("Retry-After")),
                            policy.max_retry_after,
                        )
                    # --
                    # A 429 means the server refused to act: safe to resend even a create.
                    retryable = status in RETRYABLE_STATUSES and (
                        endpoint.idempotent or status == 429
                    )
                    # Only a 4xx other than 408 proves the server did not act; a 3xx
                    # (a 303 above all) or a 5xx may come after it did.
                    sent = not (400 <= status < 500 and status != 408)
                finally:
                    if slots.waiters:
                        slots.release()
                    else:
                        slots.free += 1  # (release() without its call: nobody waits)
                # The raw answer may show the token, and a traceback formatted with
                # capture_locals shows this frame's locals: only the error's redacted copy stays.
                body = b""
                response = response_headers = None
                unknown = sent and not endpoint.idempotent
                error._locate(endpoint.method, path, outcome_unknown=unknown)
                if (
                    unknown
                    and endpoint.creates
                    and isinstance(error, (ApiError, ResponseDecodeError))
                ):
                    error.process_id = created_id(error.body, endpoint.creates)
                retries += 1
                error.attempts = retries
                remaining = deadline - clock()
                # Send budget (issue 12): 429s use no attempts, but when nothing else
                # holds the call back they count for the backoff's growth.
                counted = max(1, retries - refusals)
                delay = self._delay_or_raise(
                    error, retryable, counted, policy, remaining, counted if held else retries
                )
                if task is not None:
                    self._inflight[task] = False  # refused or never sent: nothing made
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
                # A Retry-After paused the budget (a limit's 429, a 503): waiting for it
                # is this call's pause.
                if not held or (isinstance(error, RateLimitedError) and not error.retry_after):
                    await self._pause(delay, options.sleep, endpoint, path)
                held = False
                remaining = deadline - clock()
                if remaining <= 0:
                    raise_timeout(endpoint, path, error)
                last = error  # send budget (issue 12)
                timeout = options.attempt_timeout(remaining)
        except asyncio.CancelledError:
            if task in self._cancelled_by_close and withdraw_close_cancel(task):
                error = ClientClosedError("the HathoraClient was closed during the call")
                path = self._target(endpoint.path, path_segments)[0]
                # Closed mid-call: a create may have reached the server only if
                # it had a connection (not while queued or between attempts).
                unknown = _left(self._inflight.get(task, False)) and not endpoint.idempotent
                error._locate(endpoint.method, path, outcome_unknown=unknown)
                raise error from None
            raise
        finally:
            # (With no task, None: never a key of either, so these do nothing.)
            self._inflight.pop(task, None)  # type: ignore[arg-type]
            if self._cancelled_by_close:  # (only ever filled by close())
                self._cancelled_by_close.discard(task)

    def _target(self, template: str, path_segments: tuple[str, ...]) -> tuple[str, URL]:
        """The path and URL of a call, kept: the same ids come back call after call."""
        path = self._base_path + template.format(*path_segments)
        target = (path, self.base_url.with_path(path, encoded=True))
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[(template, path_segments)] = target
        return target

    def _refuse_proxy(self, endpoint: Endpoint[Any], path: str) -> None:
        """Refuse to send when the environment now names a proxy that would see the token."""
        assert self._check_proxy is not None
        reason = self._check_proxy()
        if reason is not None:
            error = HathoraConnectionError(f"refused before sending: {reason}")
            error._locate(endpoint.method, path, outcome_unknown=False)
            raise error

    async def _wait_for_slot(
        self, slots: _Slots, endpoint: Endpoint[Any], path: str, remaining: float, retries: int
    ) -> None:
        """Queue for a free connection within the call's deadline, or say so."""
        if await slots.wait(remaining):
            return
        error = HathoraTimeoutError(
            f"no free connection within the call's deadline: all {slots.limit} connections "
            f"were busy for {max(remaining, 0.0):.3g}s (raise max_connections, or send fewer "
            "calls at once); the request was never sent"
        )
        error._locate(endpoint.method, path, outcome_unknown=False)
        error.attempts = retries + 1
        raise error

    def _decode_error(
        self, endpoint: Endpoint[Any], path: str, status: int, body: bytes, exc: Exception
    ) -> ResponseDecodeError:
        """The error for a 2xx answer that cannot be decoded, the token redacted."""
        description = str(exc) if isinstance(exc, DecodeFailure) else repr(exc)
        # The description may quote the body: both lose any echo of the token.
        redactor = self._redactor
        error = ResponseDecodeError(status, redactor.text(description), _kept(body, redactor))
        # The server did act (it said so); only the answer is unreadable.
        error._locate(endpoint.method, path, outcome_unknown=not endpoint.idempotent)
        if endpoint.creates is not None:
            error.process_id = created_id(body, endpoint.creates)
        return error

    @staticmethod
    def _delay_or_raise(
        error: HathoraError,
        retryable: bool,
        retries: int,
        policy: RetryPolicy,
        remaining: float,
        backoff: int,
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
        delay = policy.backoff(backoff)
        if delay >= remaining:
            raise error
        return delay

    async def _pause(
        self,
        delay: float,
        sleep: Callable[[float], Awaitable[None]],
        endpoint: Endpoint[Any],
        path: str,
    ) -> None:
        """Sleep between attempts; ``close()`` cancels the sleep (see ``request``)."""
        if not self._closed:
            await sleep(delay)
        if self._closed:
            error = ClientClosedError("the HathoraClient was closed during the call")
            # Between attempts nothing is on its way: the last one was refused or never sent.
            error._locate(endpoint.method, path, outcome_unknown=False)
            raise error


def _left(state: Any) -> bool:
    """Whether an ``_inflight`` state says the attempt may have left the client."""
    return state is not False


def raise_timeout(endpoint: Endpoint[Any], path: str, last: HathoraError) -> NoReturn:
    """The deadline passed between attempts: report it with the last failure."""
    error = HathoraTimeoutError(f"call deadline exceeded; last failure: {_short(last)}")
    error._locate(endpoint.method, path, outcome_unknown=last.outcome_unknown)
    error.attempts = last.attempts
    error.process_id = last.process_id
    raise error from last


def _short(error: HathoraError) -> str:
    if isinstance(error, ApiError):
        return f"HTTP {error.status}"
    return type(error).__name__


async def _read_bounded(
    response: aiohttp.ClientResponse, limit: int, keep_all: bool, overlap: int
) -> bytes:
    """Read the body as decoded (decompressed), refusing it past ``limit`` bytes.

    aiohttp inflates a compressed body piece by piece as it is read, so memory
    stays near ``limit`` whatever the ratio. An error answer (``keep_all``
    False) keeps only its first ``MAX_ERROR_BODY_BYTES`` (and ``overlap`` bytes
    more, for the redaction of a token straddling the cut), but is still read
    to its end (within the limit) so the connection can be reused.
    """
    length = response.content_length
    if length is not None and length > limit and _CONTENT_ENCODING not in response.headers:
        raise _BodyTooLarge(response.status, b"")
    keep = limit if keep_all else C.MAX_ERROR_BODY_BYTES + overlap
    chunks: list[bytes] = []
    kept = 0
    size = 0
    content = response.content
    while chunk := await content.readany():
        size += len(chunk)
        if kept < keep:
            piece = chunk[: keep - kept]
            chunks.append(piece)
            kept += len(piece)
        if size > limit:
            head = b"".join(chunks)[: C.MAX_ERROR_BODY_BYTES + overlap]
            raise _BodyTooLarge(response.status, head)
    return b"".join(chunks)
