"""``python -m hathora_async.testing``: serve a fake Hathora until interrupted.

``hathora-async fake`` is the same program: it takes the flags added here.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import sys
import time
from typing import Any

from .. import _constants as C
from ..cli._args import attach_values, count, number, port, token
from ..cli._interrupt import catch_signals
from ._fake import FakeHathora
from ._ratelimit import LIMITERS, GatewayLimit

PROG = "python -m hathora_async.testing"

# Flags whose value may be a negative number in any notation (see attach_values).
SIGNED_FLAGS = ("--clock-offset",)

EXIT_CODES_HELP = """\
exit status:
  0    stopped by Ctrl-C, SIGTERM or SIGHUP
  2    usage error, or the address cannot be listened on

A negative --clock-offset is a value, also in exponent form: --clock-offset -5,
--clock-offset=-1e3."""


def _retry_after(text: str) -> int | None:
    """Whole seconds for the fake's Retry-After, or ``none`` for no header."""
    if text.strip().lower() == "none":
        return None
    return count(minimum=0)(text)


class _NeedsRateLimit(argparse.Action):
    """Stores a rate option's value and notes that it was given (see ``check_args``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        given = getattr(namespace, "rate_options_given", [])
        namespace.rate_options_given = [*given, option_string]


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as a usage error, rate options that would be ignored or could not work."""
    given = sorted(set(getattr(args, "rate_options_given", [])))
    if args.rate_limit is None:
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            parser.error(f"{', '.join(given)} {verb} only with --rate-limit, which is not set")
        return
    try:  # the gateway's own checks (rate x window at least 1 for the window limiters)
        GatewayLimit(
            args.rate_limit,
            args.rate_burst,
            args.retry_after,
            time.monotonic,
            limiter=args.rate_limiter,
            window=args.rate_window,
        )
    except ValueError as exc:
        parser.error(str(exc).replace("rate_", "--rate-").replace("retry_after", "--retry-after"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fake's flags, on ``parser`` (this module's own, or ``hathora-async fake``).

    After parsing, call ``args.check_args(args)``: rate options need ``--rate-limit``.
    """
    parser.set_defaults(check_args=functools.partial(check_args, parser))
    seconds = number(minimum=0.0)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port,
        default=C.FAKE_DEFAULT_PORT,
        help=f"port to listen on (default: {C.FAKE_DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--token",
        type=token,
        default=None,
        help="bearer token to accept, without whitespace (default: random)",
    )
    parser.add_argument("--app-id", default=None, help="application id (default: random)")
    parser.add_argument("--boot-delay", type=seconds, default=0.0, help="seconds to running")
    parser.add_argument("--latency", type=seconds, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--boot-failure-rate",
        type=number(minimum=0.0, maximum=1.0),
        default=0.0,
        help="chance a process fails to boot, 0 to 1",
    )
    parser.add_argument("--stop-delay", type=seconds, default=0.0, help="seconds spent stopping")
    parser.add_argument(
        "--idle-timeout",
        type=seconds,
        default=300.0,
        help="seconds without rooms before a process is reaped (0: never)",
    )
    parser.add_argument(
        "--rooms-per-process", type=count(minimum=1), default=4, help="room slots per process"
    )
    parser.add_argument(
        "--read-after-create-lag",
        type=seconds,
        default=0.0,
        help="seconds during which reads of a new process or room answer 404",
    )
    parser.add_argument(
        "--clock-offset",
        type=number(minimum=-C.FAKE_MAX_CLOCK_OFFSET, maximum=C.FAKE_MAX_CLOCK_OFFSET),
        default=0.0,
        help="seconds the fake's clock runs ahead (negative: behind) in timestamps and Date, "
        f"at most {C.FAKE_MAX_CLOCK_OFFSET:.0f} either way",
    )
    parser.add_argument("--seed", type=int, default=None)
    # Rate limit (issue 12): answer 429 like a gateway.
    parser.add_argument(
        "--rate-limit",
        type=number(minimum=0.0, allow_minimum=False),
        default=None,
        help="requests per second per token before answering 429, like a gateway (default: off)",
    )
    parser.add_argument(
        "--rate-burst",
        type=count(minimum=1),
        default=10,
        action=_NeedsRateLimit,
        help="requests allowed at once, with --rate-limit (default: 10)",
    )
    parser.add_argument(
        "--retry-after",
        type=_retry_after,
        default=1,
        action=_NeedsRateLimit,
        help="Retry-After seconds on a 429, or 'none' for no header, with --rate-limit "
        "(default: 1)",
    )
    parser.add_argument(
        "--rate-limiter",
        choices=LIMITERS,
        default="token-bucket",
        action=_NeedsRateLimit,
        help="how --rate-limit counts: a token bucket of --rate-burst, or at most "
        "rate x --rate-window requests (rounded down; at least 1) per sliding or fixed "
        "window (default: token-bucket)",
    )
    parser.add_argument(
        "--rate-window",
        type=number(minimum=0.0, allow_minimum=False),
        default=1.0,
        action=_NeedsRateLimit,
        help="seconds of a window, for the window limiters of --rate-limit (default: 1)",
    )


def _fake(args: argparse.Namespace) -> FakeHathora:
    return FakeHathora(
        boot_delay=args.boot_delay,
        latency=args.latency,
        host=args.host,
        port=args.port,
        token=args.token,
        app_id=args.app_id,
        boot_failure_rate=args.boot_failure_rate,
        stop_delay=args.stop_delay,
        idle_timeout=args.idle_timeout or None,
        rooms_per_process=args.rooms_per_process,
        seed=args.seed,
        read_after_create_lag=args.read_after_create_lag,
        clock_offset=args.clock_offset,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        retry_after=args.retry_after,
        rate_limiter=args.rate_limiter,
        rate_window=args.rate_window,
    )


async def serve(args: argparse.Namespace, prog: str = PROG) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; 0 then, 2 when the address is unusable."""
    fake = _fake(args)
    try:
        await fake.start()
    except OSError as exc:
        # One line, not a traceback, with the flag to change.
        reason = exc.strerror or str(exc)
        if isinstance(exc, socket.gaierror):
            hint = "check --host: a name this machine resolves, or an address like 127.0.0.1"
        else:  # most often the port is taken
            hint = "choose another --port, or --port 0 for any free one"
        where = f"{args.host}:{args.port}"
        print(f"{prog}: cannot listen on {where}: {reason} ({hint})", file=sys.stderr)
        return 2
    try:
        print(f"HATHORA_BASE_URL={fake.url}")
        print(f"HATHORA_TOKEN={fake.token}")
        print(f"HATHORA_APP_ID={fake.app_id}", flush=True)
        stop = asyncio.Event()
        with catch_signals(lambda signum: stop.set()):
            await stop.wait()
    finally:
        await fake.close()
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a fake Hathora Cloud API.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(attach_values(sys.argv[1:] if argv is None else argv, SIGNED_FLAGS))
    args.check_args(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve a fake Hathora as the flags say, until interrupted; returns the exit status."""
    args = _parse(argv)
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:  # before the handlers are in place, or where there are none
        return 0


if __name__ == "__main__":
    sys.exit(main())
