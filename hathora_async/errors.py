"""The exception tree. Everything the client raises on purpose is a ``HathoraError``."""

from __future__ import annotations

from collections.abc import Mapping

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
]


class HathoraError(Exception):
    """Root of every error raised by hathora-async.

    ``outcome_unknown`` is True when the request may have reached the server and
    been acted on although the call failed: only ever set for requests that are
    not safe to repeat (``create_process``). A caller seeing it should reconcile,
    for example with ``get_latest_processes``, before creating again.
    """

    outcome_unknown: bool = False
    method: str | None = None
    path: str | None = None

    def _locate(self, method: str, path: str, *, outcome_unknown: bool) -> None:
        self.method = method
        self.path = path
        self.outcome_unknown = outcome_unknown

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
    (or a short stand-in when the body is not of that shape); ``body`` is the raw
    body, cut to a bounded size.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(f"HTTP {status}: {message}")
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
    """The server's answer could not be decoded into the expected type.

    ``status`` is the HTTP status, ``description`` says what was wrong and
    ``body`` is the raw body (cut to a bounded size).
    """

    def __init__(self, status: int, description: str, body: bytes) -> None:
        super().__init__(f"cannot decode HTTP {status} response: {description}")
        self.status = status
        self.description = description
        self.body = body


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
