"""Exit statuses, and what an error means to the person at the terminal."""

from __future__ import annotations

import enum

from .. import _constants as C
from ..errors import (
    ApiError,
    ForbiddenError,
    HathoraConnectionError,
    HathoraError,
    NotFoundError,
    UnauthorizedError,
    printable,
)
from ..models import Region
from ._interrupt import PROG

__all__ = ["Exit", "EXIT_CODES_HELP", "exit_code_for", "describe", "is_create"]


class Exit(enum.IntEnum):
    """The command line's exit statuses."""

    OK = 0
    API_ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    PARTIAL = 4
    INTERRUPTED = 130


EXIT_CODES_HELP = """\
exit status:
  0    success
  1    API error (the message is on stderr, nothing on stdout)
  2    usage or configuration error (e.g. HATHORA_TOKEN not set)
  3    timeout or connection failure (including a wait that ran out of time)
  4    partial failure (some slots of a pre-allocation failed)
  130  interrupted (Ctrl-C, SIGTERM or SIGHUP), after stopping what the
       command created where the command says it does"""


def exit_code_for(error: HathoraError) -> Exit:
    """3 for timeouts and connection failures, 1 for everything the API said."""
    if isinstance(error, ApiError):
        return Exit.API_ERROR  # a 408 or 504 is still an answer from the API
    if isinstance(error, (HathoraConnectionError, TimeoutError)):
        return Exit.UNREACHABLE
    return Exit.API_ERROR


def describe(
    error: HathoraError,
    *,
    app_id: str | None,
    base_url: str,
    token_source: str | None = None,
) -> str:
    """The error's message, with a hint when the likely cause is a setting.

    ``token_source`` names where the token came from (``--token-file FILE``;
    default ``HATHORA_TOKEN``). The hint quotes settings and ids the user or the
    server chose, so it is escaped like the error's own message.
    """
    hint = _hint(error, app_id, base_url, token_source or C.ENV_TOKEN)
    return f"{error}\n  {printable(hint, C.MAX_ERROR_MESSAGE_CHARS)}" if hint else str(error)


def is_create(error: HathoraError) -> bool:
    """True for an error of a CreateProcess call (``POST .../create/{region}``)."""
    path = error.path or ""
    return error.method == "POST" and path.rsplit("/", 2)[-2:-1] == ["create"]


def _hint(error: HathoraError, app_id: str | None, base_url: str, token_source: str) -> str | None:
    if isinstance(error, UnauthorizedError):
        return f"the token was refused by {base_url}: check {token_source}"
    if isinstance(error, ForbiddenError):
        return f"the token may not act on app {app_id}: check {C.ENV_APP_ID}"
    if isinstance(error, NotFoundError) and (error.path or "").endswith("/list/latest"):
        return f"no app {app_id} at {base_url}: check {C.ENV_APP_ID} or --app-id"
    if isinstance(error, NotFoundError) and is_create(error):
        region = (error.path or "").rsplit("/", 1)[-1]
        known = ", ".join(r.value for r in Region)
        return f"no region {region} for app {app_id} at {base_url}; known regions: {known}"
    if error.room_id is not None and not (isinstance(error, ApiError) and error.status < 500):
        # The create may have reached the server: the room id is the way to find out.
        return f"the room may exist anyway: look with `{PROG} rooms info {error.room_id}`"
    if isinstance(error, HathoraConnectionError):
        return f"cannot reach {base_url}: check {C.ENV_BASE_URL} or --base-url"
    return None
