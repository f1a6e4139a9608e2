"""RDS instances backed by real databases: rows, replication with the modeled lag, read-only replicas.

Each RDS instance (not Aurora's) is a database in the sandbox's PostgreSQL server (sandbox/postgres.py),
reached at the endpoint ``DescribeDBInstances`` answers (sandbox/resolver.py maps it to the instance's
forwarder), with the master user and password the instance was created with. Nothing is started until a
client first connects: a plan whose run never opens a database pays no server start.

- A read replica (``CreateDBInstanceReadReplica``, cascading too) shows its source's rows as they were
  ``lag`` modeled seconds ago, where ``lag`` is what CloudWatch's ``ReplicaLag`` answers for it
  (``LatencyModel.replica_lag_seconds`` / ``replica_lag_overrides``). Its database refuses writes with
  PostgreSQL's own error (``cannot execute INSERT in a read-only transaction``): it is created with
  ``default_transaction_read_only = on``.
- The rows a source had are recorded each time a session on it ends (a write can only come from a
  session), stamped with the modeled time; a replica is brought up to date when a session on it starts.
- ``PromoteReadReplica`` stops the copy: the replica keeps the rows its source had ``lag`` seconds
  before the promotion, and accepts writes once the promotion's modeled duration is over.
- A renamed instance (``ModifyDBInstance`` with ``NewDBInstanceIdentifier``) keeps its rows at its new endpoint.
- A snapshot restored as a new instance (``RestoreDBInstanceFromDBSnapshot``) starts with its source
  instance's rows as they are when it is restored (the snapshot's own point in time is not modeled).

Not modeled: replication of roles or of anything outside the ``public`` schema; a session on a replica
that turns ``default_transaction_read_only`` off for itself could write (RDS replicas refuse that too).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, resolver, responses
from sandbox.postgres import Forwarder, Server

Snapshot = list[tuple[str, list[tuple[str, str]], list[list[Any]]]]  # (table, [(column, type)], rows)


@dataclass
class Instance:
    region: str
    identifier: str
    database: str
    username: str
    password: str
    address: str
    port: int
    source: Instance | None = None  # the instance this one replicates from, while it does
    promoted_at: float | None = None
    materialized: bool = False
    read_only: bool = False
    snapshots: list[tuple[float, Snapshot]] = field(default_factory=list)
    forwarder: Forwarder | None = None


class World:
    def __init__(self, latency: Any) -> None:
        self.latency = latency
        self.server = Server()
        self.instances: dict[tuple[str, str], Instance] = {}
        self._lock = threading.RLock()
        self._names = itertools.count(1)
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:  # after a session's capture, before the next: none runs against a stopped server
            self.closed = True
            for inst in self.instances.values():
                if inst.forwarder:
                    inst.forwarder.close()
            self.server.stop()

    def lag(self, inst: Instance) -> float:
        return float(self.latency.replica_lag_overrides.get(inst.identifier, self.latency.replica_lag_seconds))

    def instance(self, region: str, identifier: str) -> Instance:
        return self.instances[(region, identifier.lower())]

    def add(self, region: str, identifier: str, endpoint: dict[str, Any], username: str, password: str,
            source: Instance | None = None, copy_of: Instance | None = None) -> Instance:
        ident = identifier.lower()
        database = re.sub(r"[^a-z0-9_]", "_", f"i{next(self._names)}_{ident}")[:63]
        inst = Instance(region, ident, database, username, password, endpoint["Address"], int(endpoint["Port"]),
                        source=source)
        inst.forwarder = Forwarder(self.server, database, f"{database}__",
                                   before_connect=lambda: self.ready(inst), after_close=lambda: self.capture(inst),
                                   hold=clock.hold)
        with self._lock:
            old = self.instances.pop((region, ident), None)
            if old and old.forwarder:
                old.forwarder.close()
            self.instances[(region, ident)] = inst
            if copy_of is not None:
                seen = self._visible(copy_of, clock.now())
                if seen is not None:
                    inst.snapshots.append((clock.now(), seen))
        resolver.register(inst.address, inst.port, inst.forwarder.port)
        return inst

    def remove(self, region: str, identifier: str) -> None:
        with self._lock:
            inst = self.instances.pop((region, identifier.lower()), None)
        if inst is None:
            return
        resolver.unregister(inst.address, inst.port)
        if inst.forwarder:
            inst.forwarder.close()
        for other in self.instances.values():
            if other.source is inst:
                other.source = None

    # -- rows --------------------------------------------------------------------------------------------------
    def _materialize(self, inst: Instance) -> None:
        if inst.materialized:
            return
        self.server.create_database(inst.database, f"{inst.database}__{inst.username}", inst.password)
        inst.materialized = True
        if inst.source is not None:
            self._set_read_only(inst, True)
        elif inst.snapshots:
            # A promoted replica or a restored copy first opened now: the rows it was given.
            self._load(inst, inst.snapshots[-1][1])

    def _set_read_only(self, inst: Instance, on: bool) -> None:
        admin = self.server.admin()
        try:
            if on:
                admin.run(f'ALTER DATABASE "{inst.database}" SET default_transaction_read_only = on')
            else:
                admin.run(f'ALTER DATABASE "{inst.database}" RESET default_transaction_read_only')
        finally:
            admin.close()
        inst.read_only = on

    def _visible(self, inst: Instance, at: float) -> Snapshot | None:
        """The rows ``inst`` shows at modeled time ``at`` (None: it never had any recorded)."""
        if inst.source is not None and (inst.promoted_at is None or at < inst.promoted_at):
            return self._visible(inst.source, at - self.lag(inst))
        found = None
        for when, snap in inst.snapshots:
            if when <= at:
                found = snap
        return found

    def ready(self, inst: Instance) -> None:
        """Before a session on ``inst``: the server runs, the database exists, a replica's rows are current."""
        with self._lock:
            if self.closed:
                return  # the session finds no server, as a client of a deleted instance would
            self._materialize(inst)
            if inst.source is not None and inst.promoted_at is None:
                rows = self._visible(inst, clock.now())
                if rows is not None:
                    self._load(inst, rows)
            if inst.read_only and inst.promoted_at is not None and not self._promoting(inst):
                self._set_read_only(inst, False)

    def capture(self, inst: Instance) -> None:
        """After a session on a writable instance: record its rows at this modeled time."""
        with self._lock:
            if self.closed or not inst.materialized or inst.read_only:
                return
            rows = self._dump(inst)
            now = clock.now()
            inst.snapshots = [s for s in inst.snapshots if s[0] < now] + [(now, rows)]
            # Older snapshots than the newest one every replica may still need are dropped.
            horizon = now - 3600 * 24
            while len(inst.snapshots) > 1 and inst.snapshots[1][0] <= horizon:
                inst.snapshots.pop(0)

    def _promoting(self, inst: Instance) -> bool:
        if not self.latency.enabled:
            return False
        busy = self.latency.busy(("rds", inst.region, inst.identifier))
        return busy is not None and busy.kind == "rds.promote"

    def promote(self, region: str, identifier: str) -> None:
        """Stop the copy now: the rows seen ``lag`` seconds ago stay; writable once the promotion is over."""
        inst = self.instances.get((region, identifier.lower()))
        if inst is None or inst.source is None:
            return
        with self._lock:
            now = clock.now()
            rows = self._visible(inst, now)
            inst.promoted_at = now
            inst.source = None
            if rows is not None:
                inst.snapshots.append((now, rows))
                if inst.materialized:
                    self._load(inst, rows)

    def _dump(self, inst: Instance) -> Snapshot:
        conn = self.server.admin(inst.database)
        try:
            tables = conn.run("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname")
            out: Snapshot = []
            for (table,) in tables:
                cols = conn.run("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                                "WHERE a.attrelid = :t::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                                "ORDER BY a.attnum", t=f'public."{table}"')
                rows = conn.run(f'SELECT * FROM public."{table}"')
                out.append((table, [(c[0], c[1]) for c in cols], [list(r) for r in rows]))
            return out
        finally:
            conn.close()

    def _load(self, inst: Instance, rows: Snapshot) -> None:
        role = f"{inst.database}__{inst.username}"
        conn = self.server.admin(inst.database)
        try:
            conn.run("SET default_transaction_read_only = off")
            conn.run("BEGIN")
            conn.run("DROP SCHEMA IF EXISTS public CASCADE")
            conn.run(f'CREATE SCHEMA public AUTHORIZATION "{role}"')
            for table, cols, data in rows:
                columns = ", ".join(f'"{name}" {kind}' for name, kind in cols)
                conn.run(f'CREATE TABLE public."{table}" ({columns})')
                conn.run(f'ALTER TABLE public."{table}" OWNER TO "{role}"')
                names = ", ".join(f'"{name}"' for name, _ in cols)
                marks = ", ".join(f":c{i}" for i in range(len(cols)))
                for row in data:
                    conn.run(f'INSERT INTO public."{table}" ({names}) VALUES ({marks})',
                             **{f"c{i}": v for i, v in enumerate(row)})
            conn.run("COMMIT")
        finally:
            conn.close()

    def query(self, region: str, identifier: str, sql: str, **params: Any) -> list[list[Any]]:
        """Run ``sql`` as the server's superuser in the instance's database (tests read rows with it)."""
        inst = self.instance(region, identifier)
        self.ready(inst)
        conn = self.server.admin(inst.database)
        try:
            return [list(r) for r in conn.run(sql, **params)]
        finally:
            conn.close()

    # -- hooks -------------------------------------------------------------------------------------------------
    def hooks(self) -> responses.Hooks:
        return [
            ("before-parameter-build.rds.CreateDBInstance", responses.stash_api_params),
            ("after-call.rds.CreateDBInstance", self._created),
            ("after-call.rds.CreateDBInstanceReadReplica", self._replica_created),
            ("before-parameter-build.rds.RestoreDBInstanceFromDBSnapshot", responses.stash_api_params),
            ("after-call.rds.RestoreDBInstanceFromDBSnapshot", self._restored),
            ("after-call.rds.PromoteReadReplica", self._promoted),
            ("after-call.rds.DeleteDBInstance", self._deleted),
            ("before-parameter-build.rds.ModifyDBInstance", responses.stash_api_params),
            ("after-call.rds.ModifyDBInstance", self._renamed),
        ]

    def _created(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        db = parsed.get("DBInstance") or {}
        if http_response.status_code >= 300 or db.get("DBClusterIdentifier") or not db.get("Endpoint"):
            return  # Aurora instances are their cluster's (sandbox/adapters_aurora.py)
        p = responses.api_params(context)
        self.add(context["client_region"], db["DBInstanceIdentifier"], db["Endpoint"],
                 p.get("MasterUsername") or db.get("MasterUsername") or "postgres", p.get("MasterUserPassword") or "")

    def _source(self, arn_or_id: str, region: str) -> Instance | None:
        if arn_or_id.startswith("arn:"):
            parts = arn_or_id.split(":")
            region, arn_or_id = parts[3], parts[-1]
        return self.instances.get((region, arn_or_id.lower()))

    def _replica_created(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                         **_: Any) -> None:
        db = parsed.get("DBInstance") or {}
        if http_response.status_code >= 300 or not db.get("Endpoint"):
            return
        source = self._source(db.get("ReadReplicaSourceDBInstanceIdentifier") or "", context["client_region"])
        if source is not None:
            self.add(context["client_region"], db["DBInstanceIdentifier"], db["Endpoint"], source.username,
                     source.password, source=source)

    def _restored(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        from moto.rds.models import rds_backends

        db = parsed.get("DBInstance") or {}
        if http_response.status_code >= 300 or not db.get("Endpoint"):
            return
        region = context["client_region"]
        snap_id = responses.api_params(context).get("DBSnapshotIdentifier", "")
        snap = rds_backends[DEFAULT_ACCOUNT_ID][region].database_snapshots.get(snap_id.rsplit(":", 1)[-1])
        origin = self.instances.get((region, snap.database.db_instance_identifier.lower())) if snap else None
        if origin is not None:
            self.add(region, db["DBInstanceIdentifier"], db["Endpoint"], origin.username, origin.password,
                     copy_of=origin)

    def _promoted(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        self.promote(context["client_region"], parsed["DBInstance"]["DBInstanceIdentifier"])

    def _renamed(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """A rename (``NewDBInstanceIdentifier``) keeps the rows: the database answers at the new endpoint."""
        p = responses.api_params(context)
        new, db = p.get("NewDBInstanceIdentifier"), parsed.get("DBInstance") or {}
        if http_response.status_code >= 300 or not new or not db.get("Endpoint"):
            return
        region = context["client_region"]
        with self._lock:
            inst = self.instances.pop((region, str(p["DBInstanceIdentifier"]).lower()), None)
            if inst is None:
                return
            resolver.unregister(inst.address, inst.port)
            inst.identifier, inst.address = new.lower(), db["Endpoint"]["Address"]
            inst.port = int(db["Endpoint"]["Port"])
            self.instances[(region, inst.identifier)] = inst
        if inst.forwarder:
            resolver.register(inst.address, inst.port, inst.forwarder.port)

    def _deleted(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:
            self.remove(context["client_region"], (parsed.get("DBInstance") or {}).get("DBInstanceIdentifier", ""))


def install(events: Any, latency: Any) -> World:
    world = World(latency)
    resolver.install()
    responses.hook(events, world.hooks(), "rds-data")
    return world


def uninstall(events: Any, world: World | None) -> None:
    if world is None:
        return
    responses.unhook(events, world.hooks(), "rds-data")
    with contextlib.suppress(Exception):
        world.close()
    resolver.uninstall()
