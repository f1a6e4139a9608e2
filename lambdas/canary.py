"""The data plane of the RDS databases: a canary write after promotion, heartbeat rows before.

This function runs in the DR VPC (the plan's subnets and security group), where the promoted databases
are reached at the endpoint ``DescribeDBInstances`` answers, with the master user's credentials read from
Secrets Manager (the instance's RDS-managed secret, ``MasterUserSecret``, when it has one; otherwise the
plan's ``credentials_secret``). Credentials are used to connect and nothing else: no result, message or log
line carries them.

- ``verify_databases``: in each promoted database, create ``pilotlight_canary`` if missing, write a row and
  read it back; and read the newest heartbeat the database holds: the time between the promotion and that
  heartbeat is the data-loss window (RPO as data), reported beside the replica lag read before promotion.
- ``heartbeat``: replicate writes a row to ``pilotlight_heartbeat`` in each primary database on every run
  (unless the plan points at an application table's column, ``heartbeat_column``). The function reaches the
  primary database from the DR VPC: the two VPCs need a route to each other (peering or a transit gateway)
  and the primary's security group must admit the function's.

PostgreSQL only (pg8000, pure Python); another engine's check says it was not verified.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from botocore.exceptions import ClientError

from lambdas import rds
from lambdas.common import CONNECTION_ERRORS, Registry, client, raise_mapped
from lambdas.errors import DataCheckFailed, HeartbeatNotWritten, ResourceNotFound

registry = Registry("canary")
handler = registry.handler

CANARY_TABLE = "pilotlight_canary"
HEARTBEAT_TABLE = "pilotlight_heartbeat"
CONNECT_TIMEOUT = 5


def _credentials(region: str, db: dict[str, Any], secret_name: str) -> tuple[str, str]:
    """The master user and password: the instance's RDS-managed secret, or the plan's secret in ``region``."""
    managed = (db.get("MasterUserSecret") or {}).get("SecretArn")
    secret_id = managed if managed and managed.split(":")[3] == region else secret_name
    try:
        text = client("secretsmanager", region).get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        raise_mapped(exc, f"read the credentials secret {secret_id}")
    value = json.loads(text)
    return str(value["username"]), str(value["password"])


def connect(region: str, identifier: str, secret_name: str) -> Any:
    """A pg8000 session on the instance as its master user (the application's view: the sandbox rehearsal writes
    its rows through it too)."""
    import pg8000.native

    db = rds.describe_instance(client("rds", region), identifier)
    if db is None:
        raise ResourceNotFound(f"DB instance {identifier} does not exist in {region}")
    endpoint = db.get("Endpoint") or {}
    user, password = _credentials(region, db, secret_name)
    return pg8000.native.Connection(user, password=password, host=endpoint["Address"], port=int(endpoint["Port"]),
                                    database=db.get("DBName") or "postgres", timeout=CONNECT_TIMEOUT)


def _sql_error(exc: Exception) -> str:
    """PostgreSQL's message (pg8000 carries the server's fields), never the connection parameters."""
    fields = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
    if fields:
        return f"{fields.get('C', '')} {fields.get('M', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _newest(conn: Any, column: str | None) -> dt.datetime | None:
    table, col = (column.split(".", 1) if column else (HEARTBEAT_TABLE, "beat_at"))
    found = conn.run("SELECT to_regclass(:t) IS NOT NULL", t=f"public.{table}")
    if not found or not found[0][0]:
        return None
    rows = conn.run(f'SELECT max("{col}") FROM public."{table}"')
    value = rows[0][0] if rows else None
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _canary(region: str, item: dict[str, Any], execution: str) -> dict[str, Any]:
    identifier = item["identifier"]
    check: dict[str, Any] = {"check": "canary write", "resource": identifier, "ok": False}
    if item.get("engine", "postgres") != "postgres":
        # Not a failure of the service: this engine gets the control-plane checks only, and the report says so.
        return {**check, "ok": True, "skipped": True,
                "detail": f"not verified as data: no SQL canary for engine {item['engine']} "
                          "(control-plane checks only)"}
    import pg8000.exceptions

    try:
        conn = connect(region, identifier, item["credentials_secret"])
    except (*CONNECTION_ERRORS, OSError) as exc:
        return {**check, "detail": f"cannot connect: {type(exc).__name__}"}
    except pg8000.exceptions.Error as exc:  # authentication, a database that refuses sessions
        return {**check, "detail": f"cannot connect: {_sql_error(exc)}"}
    try:
        marker, now = uuid.uuid4().hex, dt.datetime.now(dt.UTC)
        conn.run(f"CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (id text PRIMARY KEY, written_at timestamptz NOT NULL, "
                 "execution text)")
        conn.run(f"INSERT INTO {CANARY_TABLE} (id, written_at, execution) VALUES (:id, :at, :ex)",
                 id=marker, at=now, ex=execution)
        back = conn.run(f"SELECT id FROM {CANARY_TABLE} WHERE id = :id", id=marker)
        newest = _newest(conn, item.get("heartbeat_column"))
    except pg8000.exceptions.Error as exc:  # a refused write (read-only, permissions) is the check's answer
        return {**check, "detail": f"write refused: {_sql_error(exc)}"}
    finally:
        conn.close()
    ok = bool(back) and back[0][0] == marker
    out = {**check, "ok": ok, "detail": f"wrote and read back row {marker} in {CANARY_TABLE}" if ok
           else f"row {marker} not read back", "row": marker, "written_at": now.isoformat()}
    out["heartbeat"] = _window(newest, item.get("promoted_at"))
    return out


def _window(newest: dt.datetime | None, promoted_at: str | None) -> dict[str, Any]:
    """The data-loss window: from the newest heartbeat the promoted database holds to the promotion."""
    if newest is None:
        return {"newest": None, "data_loss_seconds": None}
    out: dict[str, Any] = {"newest": newest.isoformat(), "data_loss_seconds": None}
    if promoted_at:
        at = dt.datetime.fromisoformat(promoted_at.replace("Z", "+00:00"))
        out["data_loss_seconds"] = round(max(0.0, (at - newest).total_seconds()), 3)
    return out


@registry.action("verify_databases",
                 permissions=["rds:DescribeDBInstances", "secretsmanager:GetSecretValue"],
                 resource={"rds:DescribeDBInstances": ("db", "drill_db", "source_db"),
                           "secretsmanager:GetSecretValue": "db_secret"})
def verify_databases(region: str, databases: list[dict[str, Any]], restored: list[dict[str, Any]] | None = None,
                     execution: str = "", attempt: int = -1) -> dict[str, Any]:
    """A canary write and read in each promoted database; ``done`` when every one succeeds.

    ``databases``: ``identifier``, ``credentials_secret``, ``engine``, ``heartbeat_column``; ``restored``: the
    restore's database results (their ``rpo.at``, when the lag was read just before promotion)."""
    promoted = {r.get("identifier"): (r.get("rpo") or {}).get("at") for r in restored or []}
    checks = [_canary(region, {**d, "promoted_at": promoted.get(d["identifier"])}, execution) for d in databases]
    return {"done": all(c["ok"] for c in checks), "attempt": attempt + 1, "checks": checks}


@registry.action("heartbeat",
                 permissions=["rds:DescribeDBInstances", "secretsmanager:GetSecretValue"],
                 resource={"rds:DescribeDBInstances": "source_db", "secretsmanager:GetSecretValue": "db_secret"})
def heartbeat(region: str, database: dict[str, Any]) -> dict[str, Any]:
    """Write one row to ``pilotlight_heartbeat`` in a primary database; its replicate ``record``.

    ``database``: ``identifier``, ``credentials_secret``, ``engine``, ``heartbeat_column``. A database whose plan
    names a ``heartbeat_column`` (the application's own writes measure the window) or whose engine has no SQL
    canary gets nothing written. A database that cannot be reached or refuses the write raises
    :class:`HeartbeatNotWritten` (replicate records it as failed and goes on)."""
    import pg8000.exceptions

    identifier = database["identifier"]
    resource = f"heartbeat {identifier} ({region})"
    if database.get("heartbeat_column"):
        return {"record": {"resource": resource, "status": "unchanged",
                           "notes": [f"the plan's column {database['heartbeat_column']} measures the window"]}}
    if database.get("engine", "postgres") != "postgres":
        return {"record": {"resource": resource, "status": "unchanged",
                           "notes": [f"no SQL heartbeat for engine {database['engine']}"]}}
    conn = _session(region, identifier, database["credentials_secret"], HeartbeatNotWritten, resource)
    try:
        now = dt.datetime.now(dt.UTC)
        conn.run(f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (beat_at timestamptz NOT NULL)")
        conn.run(f"INSERT INTO {HEARTBEAT_TABLE} (beat_at) VALUES (:at)", at=now)
    except pg8000.exceptions.Error as exc:
        raise HeartbeatNotWritten(f"{resource}: write refused: {_sql_error(exc)}") from exc
    finally:
        conn.close()
    # Evidence, like a replica's lag: the primary took a write now; nothing of the pilot light changed.
    return {"record": {"resource": resource, "status": "verified", "at": now.isoformat(),
                       "notes": [f"wrote a row at {now.isoformat()} to {HEARTBEAT_TABLE}"]}}


# -- failback: the data check ------------------------------------------------------------------------------


def _counts(conn: Any) -> dict[str, int]:
    """Rows of each table of the ``public`` schema, by name (the application's tables and pilotlight's)."""
    tables = [r[0] for r in conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    return {t: int(conn.run(f'SELECT count(*) FROM public."{t}"')[0][0]) for t in tables}


def _data(region: str, item: dict[str, Any], execution: str, mark: bool) -> dict[str, Any]:
    import pg8000.exceptions

    identifier = item["identifier"]
    out: dict[str, Any] = {"resource": identifier, "region": region}
    if item.get("engine", "postgres") != "postgres":
        # No SQL check for this engine: the reverse replica's lag at promotion is the only evidence (reported).
        return {**out, "skipped": f"no SQL data check for engine {item['engine']}", "marker": None,
                "marker_found": True, "rows": {}}
    conn = _session(region, identifier, item["credentials_secret"], DataCheckFailed, f"{identifier} in {region}")
    try:
        if mark:
            conn.run(f"CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (id text PRIMARY KEY, written_at timestamptz "
                     "NOT NULL, execution text)")
            marker = f"failback-{uuid.uuid5(uuid.NAMESPACE_URL, execution + identifier).hex}"
            conn.run(f"INSERT INTO {CANARY_TABLE} (id, written_at, execution) VALUES (:id, :at, :ex) "
                     "ON CONFLICT (id) DO NOTHING", id=marker, at=dt.datetime.now(dt.UTC), ex=execution)
            out["marker"] = marker
        else:
            found = conn.run(f"SELECT count(*) FROM public.{CANARY_TABLE} WHERE id = :id", id=item["marker"]) \
                if _has_table(conn, CANARY_TABLE) else [[0]]
            out["marker"], out["marker_found"] = item["marker"], bool(found[0][0])
        out["rows"] = _counts(conn)
    except pg8000.exceptions.Error as exc:
        raise DataCheckFailed(f"{identifier} in {region}: {_sql_error(exc)}") from exc
    finally:
        conn.close()
    return out


def _session(region: str, identifier: str, secret: str, error: type[Exception], what: str) -> Any:
    """:func:`connect`, or ``error`` naming ``what`` and why (never the credentials)."""
    import pg8000.exceptions

    try:
        return connect(region, identifier, secret)
    except (*CONNECTION_ERRORS, OSError) as exc:
        raise error(f"{what}: cannot connect: {type(exc).__name__}") from exc
    except pg8000.exceptions.Error as exc:
        raise error(f"{what}: cannot connect: {_sql_error(exc)}") from exc


def _has_table(conn: Any, table: str) -> bool:
    found = conn.run("SELECT to_regclass(:t) IS NOT NULL", t=f"public.{table}")
    return bool(found and found[0][0])


_DATA_KINDS = {"rds:DescribeDBInstances": ("db", "source_db"), "secretsmanager:GetSecretValue": "db_secret"}


@registry.action("data_before", permissions=["rds:DescribeDBInstances", "secretsmanager:GetSecretValue"],
                 resource=_DATA_KINDS)
def data_before(region: str, databases: list[dict[str, Any]], execution: str) -> dict[str, Any]:
    """Before the switch back (writes stopped): in each live DR database, a marker row written to
    ``pilotlight_canary`` (one per failback: a re-run writes none) and the rows of every table counted."""
    return {"databases": [_data(region, d, execution, True) for d in databases]}


def _compare(region: str, databases: list[dict[str, Any]], before: dict[str, Any]) -> tuple[list[Any], list[str]]:
    prior = {d["resource"]: d for d in before.get("databases") or []}
    checks: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in databases:
        was = prior.get(item["source"])
        if was is None:
            raise DataCheckFailed(f"no count was taken in {item['source']} before the switch back")
        now = _data(region, {**item, "marker": was["marker"]}, "", False)
        tables = [{"table": t, "before": n, "after": now["rows"].get(t, 0)} for t, n in sorted(was["rows"].items())]
        short = [t for t in tables if t["after"] < t["before"]]
        if not now["marker_found"]:
            problems.append(f"{item['identifier']}: marker row {was['marker']} written in {item['source']} is missing")
        problems += [f"{item['identifier']}: {t['table']} has {t['after']} rows, {item['source']} had {t['before']}"
                     for t in short]
        checks.append({"identifier": item["identifier"], "source": item["source"], "marker": was["marker"],
                       "marker_found": now["marker_found"], "tables": tables, "ok": not short and now["marker_found"]})
    return checks, problems


@registry.action("data_caught_up", permissions=["rds:DescribeDBInstances", "secretsmanager:GetSecretValue"],
                 resource=_DATA_KINDS)
def data_caught_up(region: str, databases: list[dict[str, Any]], before: dict[str, Any],
                   attempt: int = -1) -> dict[str, Any]:
    """Done when each reverse replica (read, not written) shows the marker and the counts taken in the DR
    database: the replication has drained, so the promotion loses nothing."""
    checks, problems = _compare(region, databases, before)
    return {"done": not problems, "attempt": attempt + 1, "databases": checks, "waiting_for": problems}


@registry.action("data_after", permissions=["rds:DescribeDBInstances", "secretsmanager:GetSecretValue"],
                 resource=_DATA_KINDS)
def data_after(region: str, databases: list[dict[str, Any]], before: dict[str, Any]) -> dict[str, Any]:
    """After promotion, before traffic moves back: each promoted primary holds the marker written before and at
    least as many rows in every table as the DR database had; otherwise :class:`DataCheckFailed` naming the
    tables (traffic stays on the DR site)."""
    checks, problems = _compare(region, databases, before)
    if problems:
        raise DataCheckFailed("; ".join(problems))
    return {"ok": True, "databases": checks}
