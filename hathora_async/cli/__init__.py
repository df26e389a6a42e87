"""The ``hathora-async`` command line (also ``python -m hathora_async``).

``main`` is the console script's entry point; the modules behind it are
private: ``_parser`` (the grammar), ``_config`` (settings), ``_context``
(what a command runs with), ``_processes``, ``_rooms``, ``_fleet`` and
``_local`` (the commands), ``_output`` (tables and wire JSON), ``_live`` and
``_progress`` (live displays), ``_interrupt`` (signals and what is left
running), ``_exit`` (exit statuses), ``_args`` (value types) and ``_demo``.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: the process's); returns the exit status."""
    from ._main import main as run

    return run(argv)
