"""hathora-async: an async-first client for Hathora Cloud's process API."""

from ._version import __version__
from .client import HathoraClient
from .errors import (
    ApiError,
    BadRequestError,
    ClientClosedError,
    ForbiddenError,
    HathoraConnectionError,
    HathoraError,
    HathoraTimeoutError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseDecodeError,
    ServerError,
    UnauthorizedError,
    UnprocessableEntityError,
)
from .models import (
    ApiResponse,
    ExposedPort,
    OpenEnum,
    ProcessStatus,
    ProcessV2,
    Region,
    TransportType,
)
from .processes import ProcessesApi
from .retry import RetryPolicy, Timeouts

__all__ = [
    "__version__",
    "HathoraClient",
    "ProcessesApi",
    "RetryPolicy",
    "Timeouts",
    "ApiResponse",
    "ExposedPort",
    "OpenEnum",
    "ProcessStatus",
    "ProcessV2",
    "Region",
    "TransportType",
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
