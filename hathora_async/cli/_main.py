"""The entry point: parse, run the command under the interrupt rules, map errors to statuses."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ..errors import HathoraError
from ..testing.__main__ import SIGNED_FLAGS
from ._args import attach_values
from ._config import ConfigError, base_url
from ._exit import Exit, describe, exit_code_for
from ._interrupt import PROG, Interrupts, Ledger, catch_signals
from ._live import flush_repeats, install_logging
from ._parser import build_parser

__all__ = ["main"]

# As a Unix tool killed by SIGPIPE would report it (128 + 13).
_BROKEN_PIPE = 141


def _error(text: str) -> None:
    print(f"{PROG}: error: {text}", file=sys.stderr)


async def _run(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    ledger = Ledger()
    interrupts = Interrupts(task, ledger, sys.stderr)
    with catch_signals(interrupts):
        try:
            try:
                return int(await args.run(args, ledger))
            finally:
                flush_repeats()
        except asyncio.CancelledError:
            if not interrupts.count:
                raise
            interrupts.report()
            return Exit.INTERRUPTED
        except ConfigError as exc:
            _error(str(exc))
            return Exit.USAGE
        except HathoraError as exc:
            app_id = getattr(args, "app_id", None) or os.environ.get("HATHORA_APP_ID")
            token_file = getattr(args, "token_file", None)
            source = f"--token-file {token_file}" if token_file is not None else None
            _error(describe(exc, app_id=app_id, base_url=base_url(args), token_source=source))
            if ledger.left():
                print(f"{PROG}: made and left as it is: {' '.join(ledger.left())}", file=sys.stderr)
            return exit_code_for(exc)
        except ValueError as exc:
            # The client checks ids, regions and options before any I/O.
            _error(str(exc))
            return Exit.USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else PROG
    prog = "python -m hathora_async" if argv0 == "__main__.py" else PROG
    parser = build_parser(prog)
    # `fake --clock-offset -1e3`: a negative number is a value, not an option.
    args = parser.parse_args(attach_values(sys.argv[1:] if argv is None else argv, SIGNED_FLAGS))
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    check = getattr(args, "check_args", None)
    if check is not None:  # checks across flags (the fake's rate options)
        check(args)
    install_logging()
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        # Ctrl-C outside the command's run (starting up, shutting down): nothing is running.
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): no traceback, and no second error
        # when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _BROKEN_PIPE
