"""The command line's grammar: every command, its flags, and the runner it maps to."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .. import _constants as C
from .._version import __version__
from ..models import ProcessStatus, Region
from ..testing.__main__ import EXIT_CODES_HELP as FAKE_EXIT_CODES_HELP
from ..testing.__main__ import add_arguments as add_fake_arguments
from . import _fleet, _processes, _rooms
from ._args import count, known_regions, number, plan_item, region, status
from ._context import Context, Runner, api
from ._exit import EXIT_CODES_HELP
from ._local import run_demo_command, run_fake_command

__all__ = ["build_parser"]

_CONFIG_HELP = f"""\
configuration:
  {C.ENV_TOKEN}     bearer token (or --token-file FILE; never a flag, never printed)
  {C.ENV_APP_ID}    application id (or --app-id)
  {C.ENV_BASE_URL}  API base URL (or --base-url; default {C.DEFAULT_BASE_URL})"""

_Formatter = argparse.RawDescriptionHelpFormatter
if TYPE_CHECKING:
    # argparse's own type of the object add_subparsers() returns.
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _api_flags() -> argparse.ArgumentParser:
    """Flags of every command that calls the API, accepted after the command's name."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("connection and output")
    group.add_argument("--app-id", metavar="ID", help=f"application id (default: ${C.ENV_APP_ID})")
    group.add_argument(
        "--base-url", metavar="URL", help=f"API base URL (default: ${C.ENV_BASE_URL} or Hathora's)"
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"read the bearer token from FILE ('-': stdin) instead of ${C.ENV_TOKEN}",
    )
    group.add_argument(
        "--json", action="store_true", help="print the API's JSON (camelCase) instead of a table"
    )
    return flags


def _seconds(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, default: float, what: str
) -> None:
    """A flag taking a finite number of seconds above 0."""
    parser.add_argument(
        flag,
        type=number(minimum=0.0, allow_minimum=False),
        default=default,
        help=f"{what} (default {default:g})",
    )


def _concurrency(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--concurrency",
        type=count(),
        default=default,
        help=f"requests in flight (default {default})",
    )


def _wait_flags(poll_interval: float) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("waiting")
    _seconds(group, "--timeout", C.DEFAULT_WAIT_TIMEOUT, "seconds to wait")
    _seconds(group, "--poll-interval", poll_interval, "seconds between polls at first")
    return flags


def _plain_flag() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--plain", action="store_true", help="one line per event, even on a terminal"
    )
    return flags


class _Builder:
    """Adds commands to a subparsers group, each with its runner as ``run``."""

    def __init__(self, group: _Subparsers) -> None:
        self.group = group

    def add(
        self,
        name: str,
        runner: Runner,
        help: str,
        *,
        parents: tuple[argparse.ArgumentParser, ...] = (),
        description: str | None = None,
        epilog: str = EXIT_CODES_HELP,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.group.add_parser(
            name,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
            parents=list(parents),
            formatter_class=_Formatter,
            epilog=epilog,
        )
        parser.set_defaults(run=runner)
        return parser

    def api(
        self,
        name: str,
        command: Callable[[Context], Awaitable[int]],
        help: str,
        *,
        needs_token: bool = True,
        check: Callable[[argparse.Namespace], None] | None = None,
        parents: tuple[argparse.ArgumentParser, ...] = (),
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        parser = self.add(
            name,
            api(command, needs_token=needs_token, check=check),
            help,
            parents=(_api_flags(), *parents),
            description=description,
        )
        parser.epilog = f"{_CONFIG_HELP}\n\n{EXIT_CODES_HELP}"
        return parser


def _group(commands: _Subparsers, name: str, help: str) -> _Builder:
    parser = commands.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
    return _Builder(parser.add_subparsers(dest="action", metavar="ACTION", required=True))


def _processes_commands(commands: _Subparsers) -> None:
    group = _group(commands, "processes", "look at and act on processes (ProcessesV2)")
    wait = _wait_flags(C.DEFAULT_POLL_INTERVAL)
    known = ", ".join(s.value for s in ProcessStatus)
    listing = group.api(
        "list", _processes.list_processes, "the 10 most recent processes, optionally filtered"
    )
    listing.add_argument(
        "--status",
        action="append",
        type=status,
        metavar="S",
        help=f"only this status (repeatable, any case): {known}",
    )
    listing.add_argument(
        "--region", action="append", type=region, metavar="R", help="only this region (repeatable)"
    )
    info = group.api("info", _processes.process_info, "one process")
    info.add_argument("process_id", metavar="ID")
    create = group.api(
        "create",
        _processes.create_process,
        "create a process (billed) without a room",
        parents=(wait,),
        description=(
            "Create a process in REGION (billed), optionally waiting until it runs. "
            "Interrupted, it leaves the process as it is and prints its id."
        ),
    )
    create.add_argument("region", metavar="REGION", type=region)
    create.add_argument("--wait", action="store_true", help="wait until it is running")
    stop = group.api("stop", _processes.stop_process, "stop a process")
    stop.add_argument("process_id", metavar="ID")
    waiting = group.api(
        "wait", _processes.wait_process, "wait until a process is running", parents=(wait,)
    )
    waiting.add_argument("process_id", metavar="ID")


def _rooms_commands(commands: _Subparsers) -> None:
    group = _group(commands, "rooms", "look at and act on rooms (RoomsV2)")
    create = group.api(
        "create",
        _rooms.create_room,
        "create a room",
        parents=(_wait_flags(C.DEFAULT_ROOM_POLL_INTERVAL),),
        description=(
            "Create a room in REGION, optionally waiting until it is active. "
            "Interrupted, it leaves the room as it is and prints its id."
        ),
    )
    create.add_argument("region", metavar="REGION", type=region)
    create.add_argument("--config", metavar="TEXT", help="the room's config (any text)")
    create.add_argument("--room-id", metavar="ID", help="the room's id (default: random)")
    create.add_argument("--wait", action="store_true", help="wait until it is active")
    info = group.api("info", _rooms.room_info, "one room, with its allocations")
    info.add_argument("room_id", metavar="ID")
    connection = group.api(
        "connection-info",
        _rooms.connection_info,
        "where players connect to a room (needs no token)",
        needs_token=False,
    )
    connection.add_argument("room_id", metavar="ID")
    listing = group.api("list", _rooms.list_rooms, "the rooms on a process")
    listing.add_argument("process_id", metavar="PROCESS_ID")
    listing.add_argument(
        "--inactive", action="store_true", help="rooms no longer on it, instead of current ones"
    )
    destroy = group.api("destroy", _rooms.destroy_room, "destroy a room")
    destroy.add_argument("room_id", metavar="ID")


def _fleet_commands(commands: _Builder) -> None:
    prealloc = commands.api(
        "preallocate",
        _fleet.preallocate,
        "create processes across regions at once",
        check=_fleet.confirm_billed,
        parents=(_wait_flags(C.DEFAULT_POLL_INTERVAL), _plain_flag()),
        description=(
            "Create REGION=N processes in each region at once (billed), waiting until each "
            "runs, with live progress on stderr when it is a terminal. Interrupted (Ctrl-C, "
            "SIGTERM, SIGHUP), it stops every process it created, then exits 130. "
            "--json prints {created, ready, starting, failed, strays, ambiguous}. Against a "
            f"non-loopback API, more than {C.PREALLOCATE_REAL_API_MAX_TOTAL} processes in "
            "total need --yes."
        ),
    )
    prealloc.add_argument(
        "--yes",
        action="store_true",
        help=f"against a billed API, create more than {C.PREALLOCATE_REAL_API_MAX_TOTAL} "
        "processes in total",
    )
    prealloc.add_argument("plan", nargs="+", type=plan_item, metavar="REGION=N")
    prealloc.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until each process runs (default: wait)",
    )
    _concurrency(prealloc, C.DEFAULT_PREALLOC_CONCURRENCY)
    pool = commands.api(
        "pool",
        _fleet.pool,
        "keep a warm pool of idle processes until interrupted",
        parents=(_plain_flag(),),
        description=(
            "Keep REGION=N idle running processes in each region, showing the pool on "
            "stderr, until Ctrl-C, SIGTERM or SIGHUP; then stop the idle and starting "
            "processes it made (busy ones host matches and are left), and exit 130. "
            "--json prints each new snapshot as one JSON line on stdout."
        ),
    )
    pool.add_argument("plan", nargs="+", type=plan_item, metavar="REGION=N")
    pool.add_argument("--keep", action="store_true", help="leave its processes running on exit")
    _seconds(
        pool, "--poll-interval", C.DEFAULT_POOL_POLL_INTERVAL, "seconds between the pool's passes"
    )
    _concurrency(pool, C.DEFAULT_POOL_CONCURRENCY)


def _local_commands(commands: _Builder) -> None:
    fake = commands.add(
        "fake",
        run_fake_command,
        "serve a fake Hathora on loopback (as python -m hathora_async.testing)",
        description=(
            "Serve a fake Hathora Cloud API until Ctrl-C or SIGTERM (then exit 0); "
            "prints HATHORA_BASE_URL, HATHORA_TOKEN and HATHORA_APP_ID for it."
        ),
        epilog=FAKE_EXIT_CODES_HELP,
    )
    add_fake_arguments(fake)
    demo = commands.add(
        "demo",
        run_demo_command,
        "pre-allocate processes across all regions, live, then stop them",
        parents=(_plain_flag(),),
        description=(
            "Pre-allocate processes across regions with live progress, print a summary "
            "table, time rooms, then stop every process created (also when interrupted). "
            f"Uses an embedded fake Hathora unless {C.ENV_TOKEN} and {C.ENV_APP_ID} are set: "
            f"then the API at {C.ENV_BASE_URL} (Hathora's by default), whose processes are "
            f"billed, at most {C.DEMO_REAL_API_MAX_PER_REGION} per region unless --yes."
        ),
    )
    demo.add_argument(
        "--per-region", type=count(), default=3, help="processes per region (default 3)"
    )
    demo.add_argument(
        "--regions",
        type=known_regions,
        default=tuple(Region),
        help="comma-separated regions (default: all 14)",
    )
    _concurrency(demo, C.DEFAULT_PREALLOC_CONCURRENCY)
    _seconds(demo, "--timeout", C.DEFAULT_WAIT_TIMEOUT, "seconds each process may take to run")
    demo.add_argument("--seed", type=int, default=7, help="seed of the embedded fake")
    demo.add_argument(
        "--rate-limit",
        type=number(minimum=0.0, allow_minimum=False),
        default=None,
        metavar="PER_SECOND",
        help="the embedded fake answers 429 above this many requests/s, like a gateway "
        "(burst 10, Retry-After: 1): watch the client adapt",
    )
    demo.add_argument(
        "--yes",
        action="store_true",
        help=f"against a billed API, create --per-region even above "
        f"{C.DEMO_REAL_API_MAX_PER_REGION}",
    )
    demo.add_argument(
        "--replicas",
        type=count(),
        default=None,
        help="instead: run N warm-pool replicas sharing one Redis and show which one leads "
        "(needs the redis extra; against the embedded fake)",
    )
    demo.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="the Redis of --replicas (default: start redis-server from PATH)",
    )


def build_parser(prog: str = "hathora-async") -> argparse.ArgumentParser:
    """The command line's parser; each leaf command sets ``run`` (see ``_context.Runner``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="hathora-async: look at and act on Hathora Cloud processes and rooms.",
        formatter_class=_Formatter,
        epilog=f"{_CONFIG_HELP}\n\n{EXIT_CODES_HELP}",
    )
    parser.add_argument("--version", action="version", version=f"hathora-async {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _processes_commands(commands)
    _rooms_commands(commands)
    top = _Builder(commands)
    _fleet_commands(top)
    _local_commands(top)
    return parser
