"""``python -m hathora_async.testing``: serve a fake Hathora until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from ._fake import FakeHathora


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hathora_async.testing", description="Serve a fake Hathora Cloud API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default=None, help="bearer token to accept (default: random)")
    parser.add_argument("--app-id", default=None, help="application id (default: random)")
    parser.add_argument("--boot-delay", type=float, default=0.0, help="seconds to running")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--boot-failure-rate", type=float, default=0.0, help="chance a process fails to boot"
    )
    parser.add_argument("--stop-delay", type=float, default=0.0, help="seconds spent stopping")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="seconds without rooms before a process is reaped (0: never)",
    )
    parser.add_argument(
        "--read-after-create-lag",
        type=float,
        default=0.0,
        help="seconds during which reads of a new process or room answer 404",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        help="seconds the fake's clock runs ahead (negative: behind) in timestamps and Date",
    )
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeHathora(
        boot_delay=args.boot_delay,
        latency=args.latency,
        host=args.host,
        port=args.port,
        token=args.token,
        app_id=args.app_id,
        boot_failure_rate=args.boot_failure_rate,
        stop_delay=args.stop_delay,
        idle_timeout=args.idle_timeout or None,
        seed=args.seed,
        read_after_create_lag=args.read_after_create_lag,
        clock_offset=args.clock_offset,
    )
    async with fake:
        print(f"HATHORA_BASE_URL={fake.url}")
        print(f"HATHORA_TOKEN={fake.token}")
        print(f"HATHORA_APP_ID={fake.app_id}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Serve a fake Hathora as the flags say, until interrupted."""
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
