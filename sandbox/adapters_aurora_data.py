"""The RDS Data API on the sandbox's Aurora clusters, and their HTTP endpoint (moto keeps neither).

moto 5.2 keeps ``EnableHttpEndpoint`` only for Aurora Serverless v1 clusters of a few engine versions and has no
``EnableHttpEndpoint`` / ``DisableHttpEndpoint`` operations; its ``rds-data`` answers canned results. Here:

- **HTTP endpoint**: ``CreateDBCluster`` and ``ModifyDBCluster`` with ``EnableHttpEndpoint``, and RDS's
  ``EnableHttpEndpoint`` / ``DisableHttpEndpoint`` (``ResourceArn``; an unknown cluster: ``DBClusterNotFoundFault``),
  turn it on or off for any Aurora cluster; ``DescribeDBClusters`` shows ``HttpEndpointEnabled`` accordingly.
  The sandbox's estate (sandbox/seed_aurora.py) has its owner enable it on an ``aurora-postgresql`` primary and on
  the plan's DR cluster as soon as replicate creates it (:func:`owner_enables`), as an owner's automation on RDS's
  cluster-created event would.
- **ExecuteStatement** (``rds-data``) runs the SQL in a PostgreSQL database of its own per cluster and database
  name, in the sandbox's PostgreSQL server (the one behind the RDS instances: sandbox/postgres.py), as the master
  user the secret names, with the Data API's ``:name`` parameters (``typeHint`` ``TIMESTAMP`` as a timestamp). The
  answer has botocore's shape: ``records`` of typed fields (``stringValue``, ``longValue``, ``doubleValue``,
  ``booleanValue``, ``blobValue``, ``isNull``), ``columnMetadata`` when asked, ``numberOfRecordsUpdated``. Refused as
  the Data API refuses: an unknown cluster (``BadRequestException``), the HTTP endpoint off
  (``HttpEndpointNotEnabledException``), a secret that is not there (``BadRequestException``) or whose user or password
  is not the cluster's master user's (``BadRequestException``), a cluster without a writer (a global database's
  secondary: ``InvalidResourceStateException``) or without an available instance (``DatabaseUnavailableException``),
  an SQL error (``DatabaseErrorException`` with PostgreSQL's message).

A clone or a restored snapshot (``RestoreDBClusterToPointInTime``, ``RestoreDBClusterFromSnapshot``: a drill's copy)
has its source's master user, and its HTTP endpoint off until enabled, as in RDS.

Not modeled: replication between a global cluster's members, and a clone's copy of its source's rows (each cluster's
rows are its own); transactions
(``BeginTransaction`` and ``transactionId``), batches, ``formatRecordsAs``; Aurora MySQL (its statements are refused
with ``BadRequestException``: the server is PostgreSQL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import adapters_aurora, responses


@dataclass
class World:
    databases: Any  # sandbox.adapters_rds_data.World: its PostgreSQL server is this module's too
    aurora: Any = None  # sandbox.adapters_aurora.World (operations settled before a statement runs)
    enabled: set[str] = field(default_factory=set)  # cluster ARNs with the HTTP endpoint on
    owner_enabled: set[tuple[str, str]] = field(default_factory=set)  # (region, identifier) enabled once created
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)  # cluster ARN -> (master user, password)
    created: dict[tuple[str, str], str] = field(default_factory=dict)  # (cluster ARN, database) -> PG database
    lock: threading.RLock = field(default_factory=threading.RLock)
    _names: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def server(self) -> Any:
        return self.databases.server

    # -- HTTP endpoint ---------------------------------------------------------------------------------------
    def set_enabled(self, arn: str, on: bool) -> None:
        with self.lock:
            (self.enabled.add if on else self.enabled.discard)(arn)

    def owner_enables(self, region: str, identifier: str) -> None:
        with self.lock:
            self.owner_enabled.add((region, identifier.lower()))
        cluster = adapters_aurora._cluster(identifier, region)
        if cluster is not None:
            self.set_enabled(cluster.db_cluster_arn, True)

    def after_create(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        doc = parsed.get("DBCluster") or {}
        if http_response.status_code >= 300 or not doc.get("DBClusterArn"):
            return
        p, arn, region = responses.api_params(context), doc["DBClusterArn"], context.get("client_region", "")
        if p.get("MasterUsername") and p.get("MasterUserPassword"):
            with self.lock:
                self.credentials[arn] = (str(p["MasterUsername"]), str(p["MasterUserPassword"]))
        if arn not in self.credentials:
            cluster = adapters_aurora._cluster(arn, region)
            if cluster is not None:
                self._master(cluster)  # a secondary's users are its global cluster's, from now on
        wanted = (region, str(doc.get("DBClusterIdentifier", "")).lower()) in self.owner_enabled
        self.set_enabled(arn, bool(p.get("EnableHttpEndpoint")) or wanted)
        doc["HttpEndpointEnabled"] = arn in self.enabled

    def after_restore(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """A clone or a restored snapshot has its source's users (RDS copies them with the data); its HTTP endpoint
        is off, as RDS makes it, until enabled."""
        doc = parsed.get("DBCluster") or {}
        if http_response.status_code >= 300 or not doc.get("DBClusterArn"):
            return
        p, region = responses.api_params(context), context.get("client_region", "")
        source = None
        if p.get("SourceDBClusterIdentifier"):
            source = adapters_aurora._cluster(str(p["SourceDBClusterIdentifier"]), region)
        elif p.get("SnapshotIdentifier"):
            snap = adapters_aurora._rds()[region].cluster_snapshots.get(str(p["SnapshotIdentifier"]))
            source = getattr(snap, "cluster", None)
        master = self._master(source) if source is not None else None
        if master is not None:
            with self.lock:
                self.credentials[doc["DBClusterArn"]] = master
        doc["HttpEndpointEnabled"] = doc["DBClusterArn"] in self.enabled

    def after_modify(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        doc = parsed.get("DBCluster") or {}
        p = responses.api_params(context)
        if http_response.status_code >= 300 or not doc.get("DBClusterArn"):
            return
        if "EnableHttpEndpoint" in p:
            self.set_enabled(doc["DBClusterArn"], bool(p["EnableHttpEndpoint"]))
        doc["HttpEndpointEnabled"] = doc["DBClusterArn"] in self.enabled

    def after_delete(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        arn = (parsed.get("DBCluster") or {}).get("DBClusterArn")
        if http_response.status_code < 300 and arn:
            self.set_enabled(arn, False)

    def after_describe(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        with self.lock:
            for doc in parsed.get("DBClusters") or []:
                doc["HttpEndpointEnabled"] = doc.get("DBClusterArn") in self.enabled

    def _switch(self, context: dict[str, Any], on: bool) -> Any:
        arn = str(responses.api_params(context).get("ResourceArn", ""))
        cluster = adapters_aurora._cluster(arn, context.get("client_region", ""))
        if cluster is None:
            return responses.error("DBClusterNotFoundFault", f"DBCluster {arn} not found.", 404)
        self.set_enabled(cluster.db_cluster_arn, on)
        return responses.ok({"ResourceArn": cluster.db_cluster_arn, "HttpEndpointEnabled": on})

    def before_enable(self, context: dict[str, Any], **_: Any) -> Any:
        return self._switch(context, True)

    def before_disable(self, context: dict[str, Any], **_: Any) -> Any:
        return self._switch(context, False)

    # -- ExecuteStatement ------------------------------------------------------------------------------------
    def _master(self, cluster: Any) -> tuple[str, str] | None:
        """The cluster's master user and password; a secondary's are its global cluster's (it was created without)."""
        with self.lock:
            if cluster.db_cluster_arn in self.credentials:
                return self.credentials[cluster.db_cluster_arn]
            for gc in adapters_aurora._global_clusters().values():
                if cluster in gc.members:
                    for m in gc.members:
                        if m.db_cluster_arn in self.credentials:
                            # Kept: a secondary detached later (RemoveFromGlobalCluster) has the same users.
                            self.credentials[cluster.db_cluster_arn] = self.credentials[m.db_cluster_arn]
                            return self.credentials[m.db_cluster_arn]
        return None

    def before_execute(self, context: dict[str, Any], **_: Any) -> Any:
        p = responses.api_params(context)
        region = context.get("client_region", "")
        arn = str(p.get("resourceArn", ""))
        cluster = adapters_aurora._cluster(arn, region)
        if cluster is None:
            return responses.error("BadRequestException", f"DB cluster {arn} not found", 400)
        if self.aurora is not None:
            self.aurora.settle()
        if cluster.db_cluster_arn not in self.enabled:
            return responses.error("HttpEndpointNotEnabledException",
                                   f"HttpEndpoint is not enabled for cluster {cluster.db_cluster_identifier}. "
                                   "Please refer to https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/"
                                   "data-api.html#data-api.troubleshooting", 400)
        if cluster.engine != "aurora-postgresql":
            return responses.error("BadRequestException",
                                   "the sandbox runs the Data API on aurora-postgresql clusters only, not "
                                   f"{cluster.engine}")
        secret_arn = str(p.get("secretArn", ""))
        found = self._secret(secret_arn, region)
        if found is None:
            return responses.error("BadRequestException", f"Error fetching secret {secret_arn}: Secrets Manager "
                                   "can't find the specified secret, or its value is not a username and password.")
        user, password = found
        master = self._master(cluster)
        if master is None or master != (user, password):
            return responses.error("BadRequestException", f'FATAL: password authentication failed for user "{user}"')
        if any(cluster in gc.members and not cluster.is_writer for gc in adapters_aurora._global_clusters().values()):
            return responses.error("InvalidResourceStateException",
                                   f"The cluster {cluster.db_cluster_arn} has no writer instance: it is a secondary "
                                   "cluster of a global database (the Data API runs statements on a writer only).")
        live = (self.aurora.available_instances(cluster) if self.aurora is not None
                else adapters_aurora._instances(cluster))
        if not live:
            return responses.error("DatabaseUnavailableException",
                                   "The writer instance in the DB cluster isn't available.", 504)
        database = str(p.get("database") or "postgres")
        return self._run(cluster.db_cluster_arn, database, user, str(p.get("sql", "")), p.get("parameters") or [],
                         bool(p.get("includeResultMetadata")))

    def _secret(self, secret_arn: str, region: str) -> tuple[str, str] | None:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[DEFAULT_ACCOUNT_ID][region]
        try:
            value = backend.get_secret_value(secret_arn, None, "AWSCURRENT")  # type: ignore[arg-type]
            doc = json.loads(value.get("SecretString") or "{}")
            return str(doc["username"]), str(doc["password"])
        except Exception:  # any secret the Data API cannot use is refused the same way
            return None

    def _database(self, arn: str, database: str, user: str) -> tuple[str, str]:
        """The PostgreSQL database (created on first use) and owner role behind (cluster, database name)."""
        with self.lock:
            name = self.created.get((arn, database))
            ident = arn.rsplit(":", 1)[-1]
            if name is None:
                name = re.sub(r"[^a-z0-9_]", "_", f"a{next(self._names)}_{ident}_{database}".lower())[:63]
            role = f"{name}__{user}"[:63]
            if (arn, database) not in self.created:
                self.server.create_database(name, role)
                self.created[(arn, database)] = name
            return name, role

    def _run(self, arn: str, database: str, user: str, sql: str, parameters: list[dict[str, Any]],
             metadata: bool) -> Any:
        import pg8000.exceptions

        name, role = self._database(arn, database, user)
        conn = self.server.admin(name)
        try:
            conn.run("SET TIME ZONE 'UTC'")
            conn.run(f'SET ROLE "{role}"')
            rows = conn.run(sql, **{str(q["name"]): _param(q) for q in parameters})
            columns = conn.columns or []
            count = conn.row_count
        except pg8000.exceptions.DatabaseError as exc:
            fields = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            message = f"ERROR: {fields.get('M', exc)}" if fields else f"ERROR: {exc}"
            return responses.error("DatabaseErrorException", message, 400)
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        out: dict[str, Any] = {"numberOfRecordsUpdated": 0 if columns else max(int(count or 0), 0),
                               "generatedFields": []}
        if columns:
            out["records"] = [[_field(v) for v in row] for row in rows or []]
            if metadata:
                out["columnMetadata"] = [{"name": c.get("name", ""), "label": c.get("name", ""),
                                          "typeName": str(c.get("type_oid", "")), "nullable": 1} for c in columns]
        return responses.ok(out)

    def query(self, region: str, identifier: str, sql: str, database: str = "postgres", **params: Any) -> list[Any]:
        """Run ``sql`` as the server's superuser in the cluster's database (tests read rows with it)."""
        cluster = adapters_aurora._cluster(identifier, region)
        if cluster is None:
            raise KeyError(f"no cluster {identifier} in {region}")
        with self.lock:
            name = self.created.get((cluster.db_cluster_arn, database))
        if name is None:
            return []
        conn = self.server.admin(name)
        try:
            return [list(r) for r in conn.run(sql, **params)]
        finally:
            conn.close()


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


def _param(q: dict[str, Any]) -> Any:
    """A Data API parameter's value as pg8000 sends it (a ``TIMESTAMP`` hint as a timestamp)."""
    value = q.get("value") or {}
    if not value or value.get("isNull"):
        return None
    raw = next(iter(value.values()))
    if "stringValue" in value and q.get("typeHint") == "TIMESTAMP" and _TIMESTAMP.match(str(raw)):
        return dt.datetime.fromisoformat(str(raw))
    return raw


def _field(value: Any) -> dict[str, Any]:
    """One column of a row as the Data API answers it (a typed field)."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blobValue": bytes(value)}
    if isinstance(value, dt.datetime):
        return {"stringValue": value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
                if value.tzinfo else value.isoformat(sep=" ")}
    if isinstance(value, decimal.Decimal | dt.date | dt.time):
        return {"stringValue": str(value)}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value, default=str)}


_world: World | None = None


def owner_enables(region: str, identifier: str) -> None:
    """The estate's owner turns the HTTP endpoint on for cluster ``identifier`` in ``region``, now and once created."""
    if _world is not None:
        _world.owner_enables(region, identifier)


def handlers(w: World) -> responses.Hooks:
    out: responses.Hooks = [(f"before-parameter-build.rds.{op}", responses.stash_api_params)
                            for op in ("CreateDBCluster", "ModifyDBCluster", "EnableHttpEndpoint",
                                       "DisableHttpEndpoint", "RestoreDBClusterToPointInTime",
                                       "RestoreDBClusterFromSnapshot")]
    return [*out,
            ("before-parameter-build.rds-data.ExecuteStatement", responses.stash_api_params),
            ("after-call.rds.CreateDBCluster", w.after_create),
            ("after-call.rds.ModifyDBCluster", w.after_modify),
            ("after-call.rds.RestoreDBClusterToPointInTime", w.after_restore),
            ("after-call.rds.RestoreDBClusterFromSnapshot", w.after_restore),
            ("after-call.rds.DeleteDBCluster", w.after_delete),
            ("after-call.rds.DescribeDBClusters", w.after_describe),
            ("before-call.rds.EnableHttpEndpoint", w.before_enable),
            ("before-call.rds.DisableHttpEndpoint", w.before_disable),
            ("before-call.rds-data.ExecuteStatement", w.before_execute)]


def install(events: Any, databases: Any, aurora: Any = None) -> World:
    global _world
    _world = World(databases, aurora)
    responses.hook(events, handlers(_world), "aurora-data")
    return _world


def uninstall(events: Any, world: World | None) -> None:
    global _world
    if world is None:
        return
    responses.unhook(events, handlers(world), "aurora-data")
    _world = None
