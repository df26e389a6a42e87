"""The exception tree. Everything the client raises on purpose is a ``HathoraError``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from . import _constants as C

if TYPE_CHECKING:
    from .models import ConnectionInfoV2, ProcessV2

__all__ = [
    "HathoraError",
    "ClientClosedError",
    "ApiError",
    "BadRequestError",
    "UnauthorizedError",
    "PaymentRequiredError",
    "ForbiddenError",
    "NotFoundError",
    "RequestTimeoutError",
    "UnprocessableEntityError",
    "RateLimitedError",
    "ServerError",
    "HathoraConnectionError",
    "HathoraTimeoutError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "ClientLoopError",
    "ProcessFailedError",
    "ProcessWaitTimeoutError",
    "RoomDestroyedError",
    "RoomWaitTimeoutError",
]


class HathoraError(Exception):
    """Root of every error raised by hathora-async.

    ``outcome_unknown`` is True when the request may have reached the server and
    been acted on although the call failed: only ever set for requests that are
    not safe to repeat (``create_process``). A caller seeing it should reconcile,
    for example with ``get_latest_processes``, before creating again.

    ``attempts`` is how many attempts the call made (1: no retry). ``room_id``
    is set on errors of ``create_room`` (and the room errors): the id the call
    used, so a room an attempt may have made can be looked up. ``process_id``
    is set on a failed ``create_process`` whose answer still named the process
    (for example a 2xx whose body could not be decoded): that process exists.
    """

    outcome_unknown: bool = False
    method: str | None = None
    path: str | None = None
    # How many attempts the call had made when it failed (1: it was not retried).
    attempts: int = 1
    # The room id a failed create_room used (generated or given), to look the room up.
    room_id: str | None = None
    # The process a failed create_process answer named, when it could be read.
    process_id: str | None = None

    def _locate(self, method: str, path: str, *, outcome_unknown: bool) -> None:
        self.method = method
        self.path = path
        self.outcome_unknown = outcome_unknown

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only constructor arguments that the default
        # reduction (``cls(*args)``) cannot pass, so rebuild from the state instead:
        # errors must survive pickling (multiprocessing, concurrent.futures).
        state = {
            key: CIMultiDict(value) if isinstance(value, CIMultiDictProxy) else value
            for key, value in self.__dict__.items()
        }
        return (_restore_error, (type(self), self.args, state))

    def __str__(self) -> str:
        text = super().__str__()
        where = f" ({self.method} {self.path})" if self.method else ""
        unknown = (
            "; the server may have acted on this request: outcome unknown"
            if self.outcome_unknown
            else ""
        )
        return f"{text}{where}{unknown}"


class ClientClosedError(HathoraError, RuntimeError):
    """The client was closed before or while this call ran."""


class ApiError(HathoraError):
    """The server answered with a status the operation does not expect.

    ``message`` is the ``message`` of Hathora's ``{"message": ...}`` error body
    (or a short stand-in when the body is not of that shape), as the server
    sent it; ``body`` is the raw body, cut to a bounded size; ``headers`` the
    answer's headers. In all three the client's own token, if the server
    echoed it, reads ``<redacted>``. ``str(error)`` shows the message cut to
    500 characters with control characters escaped, so a hostile server cannot
    flood or rewrite a log line or terminal.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(f"HTTP {status}: {printable(message, C.MAX_ERROR_MESSAGE_CHARS)}")
        self.status = status
        self.message = message
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body


class BadRequestError(ApiError):
    """HTTP 400."""


class UnauthorizedError(ApiError):
    """HTTP 401: the token is missing, wrong or expired."""


class PaymentRequiredError(ApiError):
    """HTTP 402: the account cannot be billed for this."""


class ForbiddenError(ApiError):
    """HTTP 403."""


class NotFoundError(ApiError):
    """HTTP 404: unknown application, process, room or region."""


class RequestTimeoutError(ApiError):
    """HTTP 408."""


class UnprocessableEntityError(ApiError):
    """HTTP 422."""


class RateLimitedError(ApiError):
    """HTTP 429. ``retry_after`` is the server's requested wait in seconds, or None."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers, body=body)
        self.retry_after = retry_after


class ServerError(ApiError):
    """HTTP 5xx."""


class HathoraConnectionError(HathoraError):
    """The request could not be completed at the transport level.

    The aiohttp exception is chained as ``__cause__``.
    """


class HathoraTimeoutError(HathoraError, TimeoutError):
    """The call ran past its deadline (connect, read, or the whole call)."""


class ResponseDecodeError(HathoraError):
    """The server's answer could not be read or decoded into the expected type.

    ``status`` is the HTTP status, ``description`` says what was wrong (bounded
    in length, control characters escaped) and ``body`` is the raw body (cut to
    a bounded size). Raised for any failure of the decoding, whatever its kind
    (invalid JSON or UTF-8, wrong types, nesting too deep to parse, ...).
    """

    def __init__(self, status: int, description: str, body: bytes) -> None:
        description = printable(description, C.MAX_DECODE_DESCRIPTION_CHARS)
        super().__init__(f"cannot decode HTTP {status} response: {description}")
        self.status = status
        self.description = description
        self.body = body


class ResponseTooLargeError(ResponseDecodeError):
    """The answer's body, once decompressed, is larger than ``max_response_bytes``.

    Never retried: reading it was stopped at the limit. ``body`` holds its first
    bytes (bounded); ``limit`` is the limit in bytes.
    """

    def __init__(self, status: int, limit: int, body: bytes) -> None:
        super().__init__(
            status, f"the body exceeds max_response_bytes ({limit} bytes, after decoding)", body
        )
        self.limit = limit


class ClientLoopError(HathoraError, RuntimeError):
    """The client was used from an event loop it cannot serve.

    Its own session is re-created when a previous loop has ended (for example
    one ``asyncio.run`` after another); this is raised when the session's loop
    is still alive elsewhere (another thread), or for a caller's session whose
    loop has ended.
    """


class ProcessFailedError(HathoraError):
    """A process awaited to run turned ``failed``, ``draining``, ``stopping`` or ``stopped``.

    It will never run. ``process`` is its last observed state.
    """

    def __init__(self, process: ProcessV2) -> None:
        super().__init__(f"process {process.process_id} will not run: it is {process.status.value}")
        self.process = process
        self.process_id = process.process_id
        self.status = process.status


class ProcessWaitTimeoutError(HathoraError, TimeoutError):
    """A process was not ``running`` within the wait's ``timeout`` (seconds).

    ``process`` is its last observed state (None if it was never read); the
    last polling error, if any, is chained as ``__cause__``.
    """

    def __init__(self, process_id: str, timeout: float, process: ProcessV2 | None) -> None:
        seen = f" (last seen {process.status.value})" if process is not None else ""
        super().__init__(f"process {process_id} not running after {timeout:g}s{seen}")
        self.process_id = process_id
        self.timeout = timeout
        self.process = process


class RoomDestroyedError(HathoraError):
    """A room awaited to become active was destroyed (or its process stopped) meanwhile.

    It will never become active. The 404 that showed it is chained as ``__cause__``.
    """

    def __init__(self, room_id: str) -> None:
        super().__init__(f"room {room_id} was destroyed before it became active")
        self.room_id = room_id


class RoomWaitTimeoutError(HathoraError, TimeoutError):
    """A room was not ``active`` within the wait's ``timeout`` (seconds).

    ``connection_info`` is its last observed state (None if it was never read);
    the last polling error, if any, is chained as ``__cause__``.
    """

    def __init__(
        self, room_id: str, timeout: float, connection_info: ConnectionInfoV2 | None
    ) -> None:
        seen = f" (last seen {connection_info.status.value})" if connection_info else ""
        super().__init__(f"room {room_id} not active after {timeout:g}s{seen}")
        self.room_id = room_id
        self.timeout = timeout
        self.connection_info = connection_info


# Control characters (C0, DEL, C1) and the line and bidirectional-override marks
# that can rewrite how a log line or terminal shows text, each as an escape.
_UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}
_UNPRINTABLE.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(text: str, limit: int) -> str:
    """``text`` safe for one log line: control characters escaped, at most ~``limit`` chars."""
    escaped = text.translate(_UNPRINTABLE)
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(escaped) - limit} more characters)"


STATUS_ERRORS: Mapping[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: PaymentRequiredError,
    403: ForbiddenError,
    404: NotFoundError,
    408: RequestTimeoutError,
    422: UnprocessableEntityError,
    429: RateLimitedError,
}


def error_class_for(status: int) -> type[ApiError]:
    """The exception class for an unexpected HTTP status."""
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    if 500 <= status <= 599:
        return ServerError
    return ApiError


def _restore_error(
    cls: type[HathoraError], args: tuple[Any, ...], state: dict[str, Any]
) -> HathoraError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
