"""``HathoraClient``: the session manager and the entry point of the library."""

from __future__ import annotations

import asyncio
import ipaddress
import netrc
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import attrs
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from . import _constants as C
from ._budget import RateLimit, RateLimitState, SendBudget
from ._http import CallOptions, Endpoint, Query, Transport, _SecretHeader
from ._paths import segment
from ._recent import RecentCreates
from ._redact import Redactor
from ._watch import ProcessWatcher
from .models import ApiResponse
from .retry import RetryPolicy, Timeouts

if TYPE_CHECKING:
    from .prealloc import Plan, PreallocationEvent, PreallocationResult
    from .processes import ProcessesApi
    from .rooms import RoomsApi

__all__ = ["HathoraClient"]

T = TypeVar("T")


class _Secret:
    """Holds the token so that no repr, log or traceback frame shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def check(self) -> None:
        """Refuse an unusable token, without the token ever being a frame local.

        It travels in an HTTP header: Latin-1 only, no control characters (CR
        and LF would split the header), no surrounding whitespace (a pasted
        newline). The messages never show the token.
        """
        if not isinstance(self._value, str) or not self._value:
            raise ValueError("token must be a non-empty string")
        if self._value != self._value.strip():
            raise ValueError("token has leading or trailing whitespace")
        if _TOKEN_UNSAFE.search(self._value):
            raise ValueError("token contains a control character")
        if not self._value.isascii():
            try:
                self._value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("token contains a character outside Latin-1") from None

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


# C0 controls, DEL and C1 controls: not allowed in a header value.
_TOKEN_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f]")


def _is_loopback(host: str | None) -> bool:
    """Whether ``host`` surely names this machine: a loopback IP, or exactly ``localhost``.

    Not ``*.localhost`` (RFC 6761 lets it resolve to loopback, but resolvers
    and /etc/hosts entries may not), nor ``localhost.``: a name that could
    resolve elsewhere must not receive the token over plain http.
    """
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Whitespace and control characters: yarl would quietly percent-encode them.
_URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _check_raw_url(text: str) -> None:
    """Refuse what yarl would otherwise rewrite silently: spaces, controls, dot-segments.

    A CR/LF (pasted, or injected into a config) would become part of the path;
    a ``..`` or ``%2e%2e`` segment would be resolved away, sending the calls
    somewhere other than the URL given.
    """
    if _URL_UNSAFE.search(text):
        raise ValueError("base_url must not contain whitespace or control characters")
    path = urlsplit(text).path
    if any(unquote(part) in (".", "..") for part in path.split("/")):
        raise ValueError("base_url must not contain '.' or '..' path segments")


def _check_base_url(base_url: str | URL, allow_insecure_http: bool) -> URL:
    _check_raw_url(base_url if isinstance(base_url, str) else str(base_url))
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an absolute http(s) URL, got {str(url.with_user(None))!r}"
            if url.host
            else "base_url must be an absolute http(s) URL"
        )
    if url.query_string or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    if url.raw_user is not None or url.raw_password is not None:
        # Named without echoing the URL: the password must not reach a log.
        raise ValueError(
            f"base_url must not carry credentials (user:password@) for {url.host}; "
            "the client authenticates with its token"
        )
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ValueError(
            "refusing to send the token over plain http to a non-loopback host "
            f"({url.host}); use https, or pass allow_insecure_http=True"
        )
    return url


def _budget(rate_limit: RateLimit | None, clock: Callable[[], float]) -> SendBudget:
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise TypeError(f"rate_limit must be a RateLimit or None, not {rate_limit!r}")
    return SendBudget(rate_limit, clock)


def _clear_text_proxy(url: URL, insecure_ok: bool) -> str | None:
    """Why the environment's proxy (now) must not carry a call to ``url``, or None.

    An https target goes through an http proxy inside a CONNECT tunnel, so the
    token stays inside TLS; an http target (loopback, or ``allow_insecure_http``)
    would hand the token in clear to a proxy that is not on this machine.
    """
    if url.scheme != "http" or insecure_ok or not url.host or proxy_bypass(url.host):
        return None
    proxy = getproxies().get("http")
    proxy_host = URL(proxy).host if proxy else None
    if not proxy or _is_loopback(proxy_host):
        return None
    return (
        f"trust_env=True would send the token over plain http through the proxy "
        f"{proxy_host} (HTTP_PROXY); add {url.host} to NO_PROXY, use https, or pass "
        "allow_insecure_http=True"
    )


def _env_proxy(url: URL, insecure_ok: bool) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) aiohttp's ``trust_env`` would use for ``url``, now.

    Read once, at construction: the client's own session then passes it with
    every request and never reads the environment again, so a later change of
    ``HTTP_PROXY``/``NO_PROXY`` cannot route the token anywhere unchecked.
    """
    reason = _clear_text_proxy(url, insecure_ok)
    if reason is not None:
        raise ValueError(reason)
    try:
        return get_env_proxy_for_url(url)
    except LookupError:  # no proxy for this URL
        return None, None


def _check_callers_session(url: URL, has_token: bool, insecure_ok: bool) -> None:
    """Refuse a caller's ``trust_env`` session that would leak or replace the token now.

    Such a session re-reads the environment per request, so the proxy is also
    checked again before each call (see ``Transport``).
    """
    reason = _clear_text_proxy(url, insecure_ok)
    if reason is not None:
        raise ValueError(reason)
    if has_token and url.host and _netrc_has(url.host):
        raise ValueError(
            f"trust_env=True: .netrc has credentials for {url.host}, which aiohttp would "
            "send in place of the token; remove them, or leave trust_env off"
        )


def _netrc_has(host: str) -> bool:
    """Whether aiohttp (with trust_env) would find .netrc credentials for ``host``."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False  # aiohttp skips an unreadable file too


def _check_size(max_response_bytes: int) -> None:
    if (
        isinstance(max_response_bytes, bool)
        or not isinstance(max_response_bytes, int)
        or max_response_bytes < 1
    ):
        raise ValueError(f"max_response_bytes must be an int >= 1, got {max_response_bytes!r}")


class HathoraClient:
    """An async client for Hathora Cloud, owning one pooled aiohttp session.

    Use it as an async context manager::

        async with HathoraClient(token=..., app_id=...) as client:
            process = await client.processes.create_process(Region.SEATTLE)

    ``app_id`` is the default application of every call; each call may pass its
    own. ``timeout`` is the deadline of a whole call in seconds (retries
    included), or a ``Timeouts``; ``retry`` is a ``RetryPolicy``. Pass
    ``session`` to use an aiohttp session you own: the client then never closes
    it, and its defaults do not change a call (the client's headers, timeout,
    ``raise_for_status=False`` and decompression win per request). Plain http is
    refused for non-loopback hosts unless ``allow_insecure_http`` is True, so
    the token never travels in clear text; ``base_url`` must not carry
    ``user:password@``.

    ``max_connections`` bounds the connections open at once; calls beyond it
    wait for a free one within their deadline (a ``HathoraTimeoutError`` says so
    when none came). ``max_response_bytes`` bounds every answer's body after
    decompression (default 4 MiB): a larger one raises
    ``ResponseTooLargeError``, never retried. ``trust_env`` (off by default)
    takes the proxy from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (and its
    credentials from ``.netrc``) as aiohttp would, once, at construction: the
    client's session then uses that proxy for every call and never reads the
    environment again (nor ``.netrc`` credentials for the API host).
    Construction refuses a proxy that would see the token in clear (an http
    target). A caller's ``session`` with ``trust_env`` re-reads the environment
    per request (aiohttp does): its proxy is then checked again before each
    call, which fails with ``HathoraConnectionError`` (nothing sent) if the
    token would now go in clear. Whatever a server echoes of the token in an
    answer shows as ``<redacted>`` in every error (message, body, headers).
    ``sleep`` and ``clock`` (a monotonic clock in seconds) can be replaced, for
    example to make retry tests instant. ``rate_limit`` sets the send budget
    shared by every call of this client and its siblings (a ``RateLimit``;
    the default adapts to the server's 429s; None turns it off): see
    ``RateLimit`` and ``rate_limit_state``.
    """

    processes: ProcessesApi
    rooms: RoomsApi

    def __init__(
        self,
        token: str | None = None,
        app_id: str | None = None,
        *,
        base_url: str | URL = C.DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeouts | float | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = C.DEFAULT_MAX_CONNECTIONS,
        max_response_bytes: int = C.DEFAULT_MAX_RESPONSE_BYTES,
        allow_insecure_http: bool = False,
        trust_env: bool = False,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 (frozen, so shared safely)
    ) -> None:
        # Wrap (this cannot fail) and rebind at once, so that no local of this
        # frame, shown by a traceback formatted with capture_locals, holds the token.
        # from_env passes a _Secret already, so its frame never holds it either.
        secret = token if isinstance(token, _Secret) else None if token is None else _Secret(token)
        token = None
        if secret is not None:
            secret.check()
        if app_id is not None:
            segment(app_id, "app_id")
        if isinstance(max_connections, bool) or max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if session is not None and trace_configs:
            raise ValueError("trace_configs apply only to the session the client creates")
        if session is not None and trust_env:
            raise ValueError("trust_env applies only to the session the client creates")
        if session is not None and secret is not None and session.auth is not None:
            raise ValueError("the session's auth= would clash with the token: drop one")
        _check_size(max_response_bytes)
        url = _check_base_url(base_url, allow_insecure_http)
        proxy, proxy_auth = _env_proxy(url, allow_insecure_http) if trust_env else (None, None)
        check_proxy: Callable[[], str | None] | None = None
        if session is not None and session.trust_env:
            _check_callers_session(url, secret is not None, allow_insecure_http)
            if url.scheme == "http" and not allow_insecure_http:

                def check_proxy() -> str | None:
                    return _clear_text_proxy(url, allow_insecure_http)

        headers = {"Accept": "application/json", "User-Agent": C.USER_AGENT}
        if secret is not None:
            headers["Authorization"] = _SecretHeader(f"Bearer {secret.reveal()}")
        self._token = secret
        self._app_id = app_id
        self._app_encoded: str | None = None  # see _app_segment
        self._transport = Transport(
            base_url=url,
            headers=headers,
            session=session,
            max_connections=max_connections,
            trace_configs=trace_configs,
            budget=_budget(rate_limit, clock),
            # Built from the token inside the call: no local of this frame holds it.
            redactor=Redactor(secret.reveal() if secret is not None else None),
            proxy=proxy,
            proxy_auth=proxy_auth,
            check_proxy=check_proxy,
        )
        self._options = CallOptions(
            timeouts=Timeouts() if timeout is None else Timeouts.coerce(timeout),
            retry=retry if retry is not None else RetryPolicy(),
            sleep=sleep,
            clock=clock,
            max_response_bytes=max_response_bytes,
        )
        self._recent = RecentCreates(clock)
        self._watcher = ProcessWatcher()  # coalesced polling (issue 12)
        self._bind_apis()

    def _bind_apis(self) -> None:
        from .processes import ProcessesApi
        from .rooms import RoomsApi

        self.processes = ProcessesApi(self)
        self.rooms = RoomsApi(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> HathoraClient:
        """Build a client from ``HATHORA_TOKEN``, ``HATHORA_APP_ID`` and ``HATHORA_BASE_URL``.

        Keyword arguments are passed on to the constructor and win over the
        environment.
        """
        if "token" not in kwargs:
            if not os.environ.get(C.ENV_TOKEN):
                raise ValueError(f"{C.ENV_TOKEN} is not set")
            # Wrapped at once: no local of this frame holds the plain token.
            kwargs["token"] = _Secret(os.environ[C.ENV_TOKEN])
        if os.environ.get(C.ENV_APP_ID):
            kwargs.setdefault("app_id", os.environ[C.ENV_APP_ID])
        if os.environ.get(C.ENV_BASE_URL):
            kwargs.setdefault("base_url", os.environ[C.ENV_BASE_URL])
        return cls(**kwargs)

    def with_options(
        self,
        *,
        timeout: Timeouts | float | None = None,
        retry: RetryPolicy | None = None,
        app_id: str | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        max_response_bytes: int | None = None,
    ) -> HathoraClient:
        """A sibling client sharing this one's session, with other call settings.

        ``sleep`` replaces the wait between retries; ``max_response_bytes`` the
        limit on answers. The sibling is closed when this client is (they share
        one session); closing the sibling closes the shared session too.
        """
        options = self._options
        if max_response_bytes is not None:
            _check_size(max_response_bytes)
            options = attrs.evolve(options, max_response_bytes=max_response_bytes)
        if timeout is not None:
            options = attrs.evolve(options, timeouts=Timeouts.coerce(timeout))
        if retry is not None:
            options = attrs.evolve(options, retry=retry)
        if sleep is not None:
            options = attrs.evolve(options, sleep=sleep)
        if app_id is not None:
            segment(app_id, "app_id")
        sibling = object.__new__(HathoraClient)
        sibling._token = self._token
        sibling._app_id = app_id if app_id is not None else self._app_id
        sibling._app_encoded = None
        sibling._transport = self._transport
        sibling._options = options
        sibling._recent = self._recent
        sibling._watcher = self._watcher
        sibling._bind_apis()
        return sibling

    @property
    def app_id(self) -> str | None:
        """The default application id of calls."""
        return self._app_id

    @property
    def base_url(self) -> URL:
        """The API's base URL."""
        return self._transport.base_url

    @property
    def timeouts(self) -> Timeouts:
        """The time limits of each call."""
        return self._options.timeouts

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of each call."""
        return self._options.retry

    @property
    def _budget(self) -> SendBudget:
        return self._transport.budget

    @property
    def rate_limit_state(self) -> RateLimitState:
        """The send budget now: pace, 429s seen, pause (shared with siblings; no I/O)."""
        return self._transport.budget.state()

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has run."""
        return self._transport.closed

    async def __aenter__(self) -> HathoraClient:
        self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (unless the caller owns it). Safe to call twice.

        Calls still in flight end with ``ClientClosedError``.
        """
        await self._transport.close()

    def __repr__(self) -> str:
        if not hasattr(self, "_options"):
            # A constructor that raised, as a traceback with capture_locals shows it.
            return "HathoraClient(<not constructed>)"
        return (
            f"HathoraClient(base_url={str(self._transport.base_url)!r}, "
            f"app_id={self._app_id!r}, token={'<redacted>' if self._token else None}, "
            f"closed={self.closed})"
        )

    async def preallocate(
        self,
        plan: Plan,
        *,
        concurrency: int = C.DEFAULT_PREALLOC_CONCURRENCY,
        per_region_concurrency: int | None = None,
        wait: bool = True,
        timeout: float = C.DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = C.DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = C.DEFAULT_MAX_POLL_INTERVAL,
        on_event: Callable[[PreallocationEvent], None] | None = None,
        reconcile: bool = True,
        stop_on_cancel: bool = True,
        app_id: str | None = None,
    ) -> PreallocationResult:
        """Create processes across regions at once, e.g. ``{Region.SEATTLE: 5}``.

        Sends ``POST /processes/v2/{appId}/create/{region}`` per slot, polls
        ``GET /processes/v2/{appId}/info/{processId}`` (with ``wait``), reads
        ``GET /processes/v2/{appId}/list/latest`` to reconcile and sends
        ``POST /processes/v2/{appId}/stop/{processId}`` when cancelled. Returns
        a ``PreallocationResult`` (``ready`` and ``starting``: ``ProcessV2`` per
        region; ``failed``: ``PreallocationFailure`` each with its typed
        ``HathoraError``; ``created``, ``stopped``: ids; ``strays``). Times are
        in seconds (defaults: ``timeout`` 105, ``poll_interval`` 1,
        ``max_poll_interval`` 5; ``concurrency`` 32). API errors are in the
        result, never raised; a malformed plan or option raises ``ValueError``
        before any I/O, a closed client ``ClientClosedError``.

        At most ``concurrency`` requests are in flight (and at most
        ``per_region_concurrency`` per region). With ``wait`` each process is
        polled until ``running`` (``timeout`` seconds each, counted from its
        create; see ``processes.wait_for_process``). Failures are part of the
        ``PreallocationResult``, not raised; with ``reconcile``, a region where
        a create's outcome is unknown is listed at once to find the process it
        may have made (``result.strays``). Listings show a region's 10 newest
        processes (per status, once a region's are all newer), so with
        ``reconcile`` at most 6 creates of this call in a region may make
        processes newer than one not yet known, fewer by the other clients'
        processes a look showed newer than it (3 places are left for others'
        made between two looks): further creates there wait until it is
        known, and while such a process is looked for, the region's creates
        pause. Processes carry no client tag, so when a look shows more
        unknown processes in the window than the region's lost creates, or a
        listing too full to reach back to the send, no guess is made: all
        those candidates go to ``result.ambiguous`` (some are this call's,
        some another client's; logged at WARNING with their ids) and
        ``result.strays`` keeps only unambiguous finds. When no other client
        creates in the app, a matchmaker stops both. When others do, it
        should stop neither blindly (Hathora's idle timeout ends this call's):
        another client's process can be in ``strays`` if a lost create made
        nothing, or if its process did not show yet in a lagging listing while
        the other's did; ours is then missed (a known limit). The guarantee:
        a lost create's process is in ``strays`` or ``ambiguous`` unless
        Hathora's listings lag past ``READ_AFTER_CREATE_GRACE`` (15 s), or
        other clients made more than 3 processes in its region after it that
        no look saw first (then a WARNING says it may be out of sight), or
        (the known limit) other clients create in its region while listings lag.
        ``on_event`` (a plain function)
        hears ``PreallocationEvent``s as they happen: ``created`` the moment
        each create returns, then ``running`` or ``failed``.

        On cancellation, creates already sent are let finish (bounded by the
        call timeout) so no process goes unreported, a create waiting to retry
        (refused so far, so nothing made) is not sent again, waits end at once,
        and with ``stop_on_cancel`` every process created so far is stopped
        before ``CancelledError`` propagates; either way each was first
        reported to ``on_event`` as ``created``. Every created process not
        stopped is logged at WARNING, and the ``CancelledError`` raised out of
        this call carries the partial ``PreallocationResult`` as
        ``preallocation`` (``created``, ``stopped``, ``failed`` so far)::

            try:
                result = await client.preallocate(plan, stop_on_cancel=False)
            except asyncio.CancelledError as cancelled:
                keep(cancelled.preallocation.created)
                raise

        Catch it around this ``await``: on Python 3.10 whoever awaits the
        *task* gets a fresh ``CancelledError`` (this one is its ``__context__``).
        """
        from .prealloc import _Preallocation

        run = _Preallocation(
            self,
            plan,
            concurrency=concurrency,
            per_region_concurrency=per_region_concurrency,
            wait=wait,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            on_event=on_event,
            reconcile=reconcile,
            stop_on_cancel=stop_on_cancel,
            app_id=app_id,
        )
        return await run.run()

    def _app_segment(self, app_id: str | None) -> str:
        if app_id is None:
            # The default app's segment, checked and encoded once: nearly every call asks.
            encoded = self._app_encoded
            if encoded is None:
                if self._app_id is None:
                    raise ValueError("no app_id: pass app_id= to the call or to HathoraClient")
                encoded = self._app_encoded = segment(self._app_id, "app_id")
            return encoded
        return segment(app_id, "app_id")

    def _call(
        self,
        endpoint: Endpoint[T],
        path_segments: tuple[str, ...],
        *,
        query: Query | None = None,
        json_body: bytes | None = None,
    ) -> Coroutine[Any, Any, ApiResponse[T]]:
        # The transport's coroutine itself: one frame less on every call.
        return self._transport.request(
            endpoint, path_segments, self._options, query=query, json_body=json_body
        )
