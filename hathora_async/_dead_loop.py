"""Releasing the sockets of a session whose event loop was closed under it.

A loop closed without ``shutdown_asyncgens()`` (``loop.close()`` after
``run_until_complete``) leaves the client's session open with its pooled
connections, and neither can be closed the usual way any more: closing a
transport schedules work on its (closed) loop. Their sockets are closed here
directly, and the session is marked closed, so nothing leaks and no
``ResourceWarning`` fires when they are collected.

This reaches into aiohttp's connector (``_conns``, ``_acquired``) and
asyncio's transports (``_sock``; an SSL transport's ``_ssl_protocol``), each
read defensively: on an event loop of another kind (uvloop closes its own
handles with the loop) or a future version lacking them, it does nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp

__all__ = ["release_sockets"]


def release_sockets(session: aiohttp.ClientSession) -> None:
    """Close the sockets of ``session``'s connections and mark it closed, without its loop."""
    connector = session.connector
    protocols: list[Any] = []
    for entries in dict(getattr(connector, "_conns", None) or {}).values():
        protocols.extend(protocol for protocol, _ in entries)
    protocols.extend(getattr(connector, "_acquired", None) or ())
    for protocol in protocols:
        _close_socket(getattr(protocol, "transport", None))
    # session.close() touches no loop once its connector's loop is closed (it
    # only marks itself and the connector closed): run it to completion here.
    closing = session.close()
    try:
        closing.send(None)
    except StopIteration:
        return
    except Exception:  # best effort: the sockets are closed already
        return
    closing.close()  # it wanted to wait on the dead loop: give up


def _close_socket(transport: Any) -> None:
    for _ in range(4):  # an SSL transport wraps the socket transport (once; bounded anyway)
        if transport is None:
            return
        ssl_protocol = getattr(transport, "_ssl_protocol", None)
        if ssl_protocol is not None:
            # Marked closed, so that collecting it does not warn.
            with contextlib.suppress(AttributeError):
                transport._closed = True
            transport = getattr(ssl_protocol, "_transport", None)
            continue
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            # Detached first: the transport then neither warns nor closes it again.
            transport._sock = None
            sock.close()
        return
