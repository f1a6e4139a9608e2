"""Name resolution for the sandbox's endpoints: what DNS and the network would do in AWS.

An RDS endpoint (``db.xxxx.us-west-2.rds.amazonaws.com:5432``) and a Beanstalk environment's CNAME
(``app-dr.us-west-2.elasticbeanstalk.com:80``) are served here by loopback listeners (a forwarder to the
sandbox's PostgreSQL server, an HTTP server per environment). While a sandbox runs, ``socket.getaddrinfo``
answers for those names with the listener's loopback address and port, as ``/etc/hosts`` plus a port
mapping would; every other name resolves as usual. A name no table knows can still be answered by a
``fallback`` (the plan's DNS name: Route 53's answer, then the target's listener). Code in ``lambdas/`` opens
sockets to the endpoints AWS returns and never knows.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

_real_getaddrinfo = socket.getaddrinfo
_lock = threading.Lock()
_table: dict[tuple[str, int], int] = {}  # (name, port) -> loopback port
_fallbacks: list[Callable[[str, int], int | None]] = []
_installed = 0


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
        name = host.rstrip(".").lower()
        try:
            number = int(port) if port is not None else 0
        except (TypeError, ValueError):
            number = socket.getservbyname(str(port))
        local = lookup(name, number)
        if local is not None:
            return _real_getaddrinfo("127.0.0.1", local, socket.AF_INET, *args[1:], **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


def lookup(name: str, port: int) -> int | None:
    """The loopback port serving ``name:port``, or None (not a sandbox endpoint)."""
    with _lock:
        found = _table.get((name, port))
        fallbacks = list(_fallbacks)
    if found is not None:
        return found
    for fallback in fallbacks:
        found = fallback(name, port)
        if found is not None:
            return found
    return None


def register(name: str, port: int, local_port: int) -> None:
    with _lock:
        _table[(name.rstrip(".").lower(), port)] = local_port


def unregister(name: str, port: int) -> None:
    with _lock:
        _table.pop((name.rstrip(".").lower(), port), None)


def add_fallback(fallback: Callable[[str, int], int | None]) -> None:
    with _lock:
        _fallbacks.append(fallback)


def install() -> None:
    global _installed
    with _lock:
        _installed += 1
        socket.getaddrinfo = _getaddrinfo


def uninstall() -> None:
    global _installed
    with _lock:
        _installed = max(0, _installed - 1)
        if not _installed:
            socket.getaddrinfo = _real_getaddrinfo
            _table.clear()
            _fallbacks.clear()
