"""The sandbox's PostgreSQL server starts where it can, and its forwarder never stops modeled time for good.

A session holds modeled time while it works, so its writes are recorded at the time they were made. A client
that connects and never speaks, or leaves its connection open and idle, or a forwarder closed with sessions
still open (a sandbox stopped while a client was connected), must let the clock go: the clock is the process's,
and every later execution in the process would wait on it forever. An echo server stands in for PostgreSQL
(the forwarder only relays bytes after the startup packet).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from sandbox import postgres
from sandbox.postgres import PROTOCOL_3, Forwarder


class Holds:
    def __init__(self) -> None:
        self.count = 0
        self.taken = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            self.count += 1
            self.taken += 1
        try:
            yield
        finally:
            with self.lock:
                self.count -= 1


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve(conn: socket.socket) -> None:
        with conn:
            while chunk := conn.recv(65536):
                conn.sendall(chunk)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv, int(srv.getsockname()[1])


def _startup_packet(user: str = "app") -> bytes:
    body = struct.pack("!I", PROTOCOL_3) + b"user\x00" + user.encode() + b"\x00database\x00app\x00\x00"
    return struct.pack("!I", len(body) + 4) + body


def _drain(sock: socket.socket) -> bytes:
    """What the echo sent back until the forwarder closed the connection."""
    out = b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.02)


@pytest.fixture()
def rig(monkeypatch):
    monkeypatch.setattr(postgres, "STARTUP_TIMEOUT", 0.5)
    monkeypatch.setattr(postgres, "IDLE_RELEASE", 0.3)
    srv, port = _echo_server()
    holds, closed = Holds(), []
    fwd = Forwarder(SimpleNamespace(port=port), "i1_db", "i1_db__", after_close=lambda: closed.append(1),
                    hold=holds)
    yield SimpleNamespace(fwd=fwd, holds=holds, closed=closed)
    fwd.close()
    srv.close()


def test_a_client_that_never_sends_its_startup_packet_is_dropped_and_lets_time_go(rig):
    client = socket.create_connection(("127.0.0.1", rig.fwd.port))
    _until(lambda: rig.holds.taken == 1, "the session took the hold")
    _until(lambda: rig.holds.count == 0 and rig.fwd.sessions == 0, "the silent session was dropped")
    assert client.recv(1) == b""  # the forwarder closed it
    client.close()


def test_an_idle_open_session_lets_time_go_and_takes_it_again_at_its_next_byte(rig):
    client = socket.create_connection(("127.0.0.1", rig.fwd.port))
    client.sendall(_startup_packet())
    echoed = client.recv(4096)
    assert b"user\x00i1_db__app\x00database\x00i1_db" in echoed  # the startup packet, rewritten for the instance
    _until(lambda: rig.fwd.sessions == 1, "the session was opened")
    _until(lambda: rig.holds.count == 0, "the idle session let time go")
    assert rig.closed, "the rows were recorded before the hold was let go"
    taken = rig.holds.taken
    client.sendall(b"ping")
    assert client.recv(4096) == b"ping"  # the echo: the session still relays
    assert rig.holds.taken == taken + 1
    _until(lambda: rig.holds.count == 0, "idle again")
    client.close()
    _until(lambda: rig.fwd.sessions == 0, "the session ended with its client")


def test_closing_the_forwarder_ends_its_open_sessions_and_its_listener(rig):
    clients = [socket.create_connection(("127.0.0.1", rig.fwd.port)) for _ in range(3)]
    for c in clients:
        c.sendall(_startup_packet())
    _until(lambda: rig.fwd.sessions == 3, "three sessions open")
    accepting = [t for t in threading.enumerate() if t.name == "pg-forward-i1_db"]
    assert accepting
    rig.fwd.close()
    _until(lambda: rig.fwd.sessions == 0 and rig.holds.count == 0, "every session ended")
    for c in clients:
        _drain(c)  # ends (no timeout): the forwarder closed the connection
        c.close()
    for t in accepting:
        t.join(timeout=5)
        assert not t.is_alive(), "the listener's accept thread ended"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", rig.fwd.port), timeout=1)


@pytest.mark.skipif(postgres.find_bin() is None, reason="PostgreSQL server binaries are not installed")
def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(monkeypatch):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = int(taken.getsockname()[1])
    free = postgres._free_port
    picks = iter([busy])
    monkeypatch.setattr(postgres, "_free_port", lambda: next(picks, None) or free())
    server = postgres.Server()
    try:
        server.start()
        assert server.port != busy
        conn = server.admin()
        assert conn.run("SHOW port") == [[str(server.port)]]
        conn.close()
    finally:
        server.stop()
        taken.close()
