"""Where the command line's settings come from, and what it says it talks to.

The token is read only from ``HATHORA_TOKEN`` or ``--token-file`` (a flag
would show in ``ps``), goes straight into the client, and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from yarl import URL

from .. import _constants as C
from ..client import HathoraClient, _is_loopback, _Secret

__all__ = ["ConfigError", "open_client", "describe_target", "is_local", "base_url"]


class ConfigError(Exception):
    """A missing or unusable setting: exit status 2, the message names what to set."""


def _read_token_file(path: str) -> _Secret:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        # The error names the file and the reason, never its contents.
        raise ConfigError(f"cannot read --token-file {path}: {exc.__class__.__name__}") from None
    secret = _Secret(text.strip())
    try:
        secret.check()
    except ValueError as exc:
        raise ConfigError(f"--token-file {path}: {exc}") from None
    return secret


def _token(args: argparse.Namespace, required: bool) -> _Secret | None:
    path = getattr(args, "token_file", None)
    if path is not None:
        return _read_token_file(path)
    if os.environ.get(C.ENV_TOKEN):
        return _Secret(os.environ[C.ENV_TOKEN])
    if required:
        raise ConfigError(f"{C.ENV_TOKEN} is not set (or pass --token-file FILE)")
    return None


def base_url(args: argparse.Namespace) -> str:
    """The API's base URL: ``--base-url``, else ``HATHORA_BASE_URL``, else Hathora's."""
    return getattr(args, "base_url", None) or os.environ.get(C.ENV_BASE_URL) or C.DEFAULT_BASE_URL


def open_client(args: argparse.Namespace, *, needs_token: bool = True) -> HathoraClient:
    """A client configured from the flags and the environment (flags win)."""
    app_id = getattr(args, "app_id", None) or os.environ.get(C.ENV_APP_ID)
    if not app_id:
        raise ConfigError(f"{C.ENV_APP_ID} is not set (or pass --app-id ID)")
    token = _token(args, needs_token)
    try:
        # The constructor accepts the wrapped token, so no frame holds it in clear.
        return HathoraClient(token, app_id, base_url=base_url(args))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def is_local(url: str | URL) -> bool:
    """True for a loopback URL: a fake or a proxy on this machine, never billed Hathora."""
    return _is_loopback(URL(url).host)


def describe_target(url: str | URL) -> str:
    """What the commands really talk to, for a user about to create processes."""
    shown = str(url).rstrip("/")
    if is_local(url):
        return f"a local server at {shown} (not Hathora Cloud: nothing is billed)"
    if shown == C.DEFAULT_BASE_URL:
        return f"the real Hathora API at {shown}: these processes are billed"
    return f"the API at {shown}: if it is Hathora Cloud, these processes are billed"
