"""A real PostgreSQL server behind the sandbox's RDS instances.

One server per sandbox, started on first need (a plan without RDS pays nothing): ``initdb`` in a
temporary directory owned by an unprivileged user (PostgreSQL refuses to run as root), listening on
127.0.0.1 only, on a free port, with durability off (``fsync``, ``synchronous_commit``,
``full_page_writes``): it holds test data for the life of one process. Each RDS instance is a
database of its own in it, and each instance's master user a role of its own (``<database>__<user>``).

A process stops its servers at exit; one that is killed cannot. Its directory records the owner (PID and
start time), and starting a server reaps the servers whose owner has ended (:func:`reap_stale`): a server
whose owner is alive (a parallel test worker's) is never touched.

Clients reach an instance through a :class:`Forwarder`: a loopback TCP listener per instance that
reads the client's startup packet, rewrites ``database`` to the instance's database and ``user``
to the instance's role, and then relays bytes both ways. The client sees a PostgreSQL server of its
own at the instance's endpoint (sandbox/resolver.py maps the endpoint's name to the listener), with
password authentication (SCRAM) as RDS does; SSL is declined (the server answers ``N``).

The sandbox's own administration (creating databases, copying a replica's rows) uses a superuser
connection over the server's Unix socket.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104
PROTOCOL_3 = 196608
RUN_AS = "nobody"
SUPERUSER = "sandbox_admin"


def find_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the server would not start."""


_RUNNING: set[Server] = set()  # started and not yet stopped, for the exit hook below
PREFIX = "pilotlight-pg-"  # each server's temporary directory: <tmp>/pilotlight-pg-*
OWNER = "owner"  # in that directory: "<pid> <start time>" of the process that started the server


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def owner_record(pid: int) -> str:
    """What a server's directory records of the process ``pid`` that started it: its PID and start time (clock ticks
    after boot), so that a PID reused by another process is not taken for the owner."""
    fields = _stat(pid)
    return f"{pid} {fields[19] if fields else '-'} {_pid_namespace()}"


def _pid_namespace() -> str:
    """This process's PID namespace: a PID recorded in another (a container sharing /tmp) means nothing here."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def _owner_alive(record: str) -> bool:
    parts = record.split()
    try:
        pid = int(parts[0])
    except (IndexError, ValueError):
        return True  # not a record this module wrote: not ours to judge
    if len(parts) >= 3 and parts[2] != _pid_namespace():
        return True  # recorded in another PID namespace: its owner cannot be seen from here
    if not Path("/proc/self/stat").exists():  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    return len(parts) < 2 or parts[1] in ("-", fields[19])  # another start time: the PID was reused


def _stop_postmaster(data: Path) -> None:
    """Stop the postmaster of ``data`` (immediate shutdown, then SIGKILL), if that PID is still that server."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return  # never started, or gone
    if str(data).encode() not in cmdline:
        return  # the PID belongs to another process now
    for sig, seconds in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            fields = _stat(pid)
            if fields is None or fields[0] == "Z":
                return
            time.sleep(0.05)


def reap_stale(tmp: str | None = None) -> list[Path]:
    """Stop and remove the servers whose owner process has ended without stopping them (killed, crashed: no atexit
    ran). A server whose owner is alive (another test worker, another sandbox) is never touched, nor a directory
    without an owner record (being created, or not this module's). Returns the directories removed."""
    reaped = []
    for base in sorted(Path(tmp or tempfile.gettempdir()).glob(PREFIX + "*")):
        try:
            record = (base / OWNER).read_text(encoding="utf-8")
        except OSError:
            continue
        if _owner_alive(record):
            continue
        _stop_postmaster(base / "data")
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


@atexit.register
def _stop_all() -> None:
    """A process that ends without closing its sandbox (a test worker, an interrupted run) stops its servers."""
    for server in list(_RUNNING):
        server.stop()


class Server:
    """One PostgreSQL server in a temporary directory, run as an unprivileged user."""

    def __init__(self) -> None:
        self.bin = find_bin()
        self.dir: Path | None = None
        self.port = 0
        self.started_seconds = 0.0  # wall time initdb + start took
        self._lock = threading.Lock()
        self._stopped = False  # for good: a late session must not start a server nobody will stop

    @property
    def running(self) -> bool:
        return self.dir is not None

    def start(self) -> None:
        with self._lock:
            if self.dir is not None:
                return
            if self._stopped:
                raise PostgresUnavailable("the sandbox's PostgreSQL server was stopped with its sandbox")
            if self.bin is None:
                raise PostgresUnavailable("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres); "
                                          "install Debian's postgresql package")
            began = time.monotonic()
            with contextlib.suppress(OSError):
                reap_stale()  # what processes that were killed left running
            base = Path(tempfile.mkdtemp(prefix=PREFIX))
            (base / OWNER).write_text(owner_record(os.getpid()), encoding="utf-8")
            user = pwd.getpwuid(os.getuid()).pw_name if os.getuid() else RUN_AS
            if os.getuid() == 0:
                entry = pwd.getpwnam(RUN_AS)
                os.chown(base, entry.pw_uid, entry.pw_gid)
            data = base / "data"
            self.port = _free_port()
            self._run([str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "scram-sha-256",
                       "--auth-local=trust", "-E", "UTF8", "--no-sync", "--no-instructions"], user)
            conf = {"listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{base}'",
                    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "100",
                    "shared_buffers": "16MB", "log_min_messages": "fatal", "logging_collector": "off"}
            with open(data / "postgresql.conf", "a", encoding="utf-8") as f:
                f.writelines(f"{k} = {v}\n" for k, v in conf.items())
            for attempt in range(3):
                # The port was free when picked; another process may bind it before the server does (parallel
                # test workers open hundreds of loopback sockets): then a new port (a later line wins).
                try:
                    self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-s",
                               "start"], user)
                    break
                except PostgresUnavailable:
                    if attempt == 2:
                        raise
                    self.port = _free_port()
                    with open(data / "postgresql.conf", "a", encoding="utf-8") as f:
                        f.write(f"port = {self.port}\n")
            self.dir = base
            self._user = user
            self.started_seconds = time.monotonic() - began
            _RUNNING.add(self)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self.dir is None or self.bin is None:
                return
            # Stopping what is gone already (a reaped directory) is no error: the exit hook stops every server.
            with contextlib.suppress(subprocess.SubprocessError, OSError, PostgresUnavailable):
                self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "-s",
                           "stop"], self._user)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            _RUNNING.discard(self)

    def _run(self, argv: list[str], user: str) -> None:
        name = Path(argv[0]).name
        if os.getuid() == 0:
            argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/")
        if out.returncode != 0:
            raise PostgresUnavailable(f"{name} failed: {out.stderr.strip() or out.stdout.strip()}")

    def create_database(self, name: str, owner: str, password: str | None = None) -> None:
        """A role ``owner`` (able to log in with ``password``; without one, a role to ``SET ROLE`` to) and a database
        ``name`` it owns."""
        from pg8000.native import literal

        login = f"LOGIN PASSWORD {literal(password)}" if password is not None else "NOLOGIN"
        admin = self.admin()
        try:
            admin.run(f'CREATE ROLE "{owner}" {login}')
            admin.run(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        finally:
            admin.close()

    def admin(self, database: str = "postgres") -> Any:
        """A superuser connection over the Unix socket (autocommit)."""
        import pg8000.native

        self.start()
        assert self.dir is not None
        return pg8000.native.Connection(SUPERUSER, database=database, unix_sock=str(self.dir / f".s.PGSQL.{self.port}"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("client closed during startup")
        buf += chunk
    return buf


# A client has this long (wall seconds) to send its startup packet; then the session is dropped.
STARTUP_TIMEOUT = 10.0
# A session that moves no byte for this long (wall seconds) lets modeled time go on until its next byte.
IDLE_RELEASE = 1.0


class _Busy:
    """Modeled time held while a session works, let go while it idles.

    A session holds time from its first byte, so its writes are recorded at the modeled time they were made; a
    session left open and idle (a client that never closed its connection) must not stop the clock for every later
    execution in the process, so after :data:`IDLE_RELEASE` without traffic the hold is let go (``on_idle`` runs
    first: the sandbox records the rows as they are at that moment) and taken again at the next byte.
    """

    def __init__(self, hold: Callable[[], Any], on_idle: Callable[[], None] | None) -> None:
        self._hold = hold
        self._on_idle = on_idle
        self._held: Any = None
        self._lock = threading.Lock()
        self.last = time.monotonic()

    def on(self) -> None:
        self.last = time.monotonic()
        with self._lock:
            if self._held is None:
                self._held = self._hold()
                self._held.__enter__()

    def off(self, idle: bool = False) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held is None:
                return
            try:
                if idle and self._on_idle:
                    self._on_idle()
            finally:
                held.__exit__(None, None, None)

    def idle(self) -> bool:
        return time.monotonic() - self.last >= IDLE_RELEASE


class Forwarder:
    """A loopback listener for one instance: rewrites the startup packet's database and user, then relays.

    ``before_connect()`` runs before each session reaches the server (the sandbox brings a replica's rows
    up to date there); ``after_close()`` after a session ends, or when it has been idle for
    :data:`IDLE_RELEASE` (the sandbox notes that a source may have changed). :meth:`close` ends the listener
    and every open session.
    """

    def __init__(self, server: Server, database: str, role_prefix: str,
                 before_connect: Callable[[], None] | None = None,
                 after_close: Callable[[], None] | None = None,
                 hold: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.server = server
        self.hold = hold
        self.database = database
        self.role_prefix = role_prefix
        self.before_connect = before_connect
        self.after_close = after_close
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        self._sessions: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"pg-forward-{database}", daemon=True).start()

    def close(self) -> None:
        """Stop listening and end every open session (a blocked ``accept`` wakes only on ``shutdown``)."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions)
        for s in (self._sock, *sessions):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._sessions.add(client)
            threading.Thread(target=self._session, args=(client,), name=f"pg-session-{self.database}",
                             daemon=True).start()

    def _session(self, client: socket.socket) -> None:
        # Modeled time stands still while a session works: its writes are recorded at the time they were made.
        busy = _Busy(self.hold, self.after_close)
        busy.on()
        try:
            self._relay_session(client, busy)
        finally:
            busy.off()
            with self._lock:
                self._sessions.discard(client)

    def _relay_session(self, client: socket.socket, busy: _Busy) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(STARTUP_TIMEOUT)
            startup = self._startup(client)
            if startup is None:
                return
            client.settimeout(None)
            if self.before_connect:
                self.before_connect()
            upstream = socket.create_connection(("127.0.0.1", self.server.port))
            upstream.sendall(startup)
            _relay(client, upstream, busy)
        except (OSError, ConnectionError):
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()
            if self.after_close:
                self.after_close()

    def _startup(self, client: socket.socket) -> bytes | None:
        while True:
            length = struct.unpack("!I", _recv_exact(client, 4))[0]
            body = _recv_exact(client, length - 4)
            code = struct.unpack("!I", body[:4])[0]
            if code in (SSL_REQUEST, GSS_REQUEST):
                client.sendall(b"N")  # no SSL here: the client goes on in plain text (or gives up, if it must have it)
                continue
            if code != PROTOCOL_3:
                return None
            fields = body[4:].split(b"\x00")
            params = dict(zip(fields[0:-2:2], fields[1:-2:2], strict=True))
            user = params.get(b"user", b"").decode()
            params[b"user"] = f"{self.role_prefix}{user}".encode()
            params[b"database"] = self.database.encode()
            payload = struct.pack("!I", PROTOCOL_3) + b"".join(k + b"\x00" + v + b"\x00" for k, v in params.items())
            payload += b"\x00"
            return struct.pack("!I", len(payload) + 4) + payload


def _relay(a: socket.socket, b: socket.socket, busy: _Busy) -> None:
    """Bytes both ways until both sides have closed; time held while they flow (see :class:`_Busy`)."""
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([src], [], [], IDLE_RELEASE / 2)
                if not ready:
                    if busy.idle():
                        busy.off(idle=True)
                    continue
                chunk = src.recv(65536)
                if not chunk:
                    return
                busy.on()
                dst.sendall(chunk)
        except (OSError, ValueError):  # ValueError: select on a socket the other pump has closed
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()
