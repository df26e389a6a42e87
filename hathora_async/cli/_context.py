"""What a command runs with: its arguments, a client, its ledger and its output streams."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import attrs

from ..client import HathoraClient
from ._config import open_client
from ._interrupt import Ledger
from ._output import show

__all__ = ["Context", "Runner", "api", "check_access"]

# How the entry point runs any command: its arguments and ledger in, an exit status out.
Runner = Callable[[argparse.Namespace, Ledger], Awaitable[int]]


@attrs.frozen
class Context:
    """An API command's world. Results go to ``out``; progress and messages to ``err``."""

    args: argparse.Namespace
    client: HathoraClient
    ledger: Ledger
    out: TextIO
    err: TextIO

    def show(self, result: Any, model: type[Any]) -> None:
        """Print a result: the wire's JSON with ``--json``, else a table."""
        show(result, self.out, as_json=self.args.json, model=model)

    def done(self, text: str) -> None:
        """Say that an action without an answer body (stop, destroy) succeeded.

        With ``--json`` nothing is printed: the API's answer has no body.
        """
        if not self.args.json:
            print(text, file=self.out)


def api(
    command: Callable[[Context], Awaitable[int]],
    *,
    needs_token: bool = True,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> Runner:
    """Run ``command`` with a client configured from the flags and the environment.

    ``check(args)``, if given, runs first, before any client exists: it raises
    ``ConfigError`` for arguments that must not reach the API.
    """

    async def run(args: argparse.Namespace, ledger: Ledger) -> int:
        if check is not None:
            check(args)
        async with open_client(args, needs_token=needs_token) as client:
            return await command(Context(args, client, ledger, sys.stdout, sys.stderr))

    return run


async def check_access(client: HathoraClient) -> None:
    """One cheap read before creating anything, so a wrong token, app id or URL
    ends the command at once with one clear error instead of one per create."""
    await client.processes.get_latest_processes()
