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


# -- Aurora: a canary write and read in the new writer through the RDS Data API ------------------------------
# The Data API (rds-data ExecuteStatement) runs SQL over HTTPS on the cluster's writer instance: no driver, no
# VPC route to the cluster, only the cluster's HTTP endpoint (DescribeDBClusters ``HttpEndpointEnabled``) and the
# master user's secret, which the Data API reads with the caller's secretsmanager:GetSecretValue. A function in a
# VPC reaches the Data API through an interface endpoint (com.amazonaws.<region>.rds-data) or a NAT gateway.

# Answers that mean the Data API is not there for this cluster: not a failure of the service, a check not made.
_HTTP_ENDPOINT_OFF = "HttpEndpointNotEnabledException"
# The engine's own spelling of the canary table (MySQL has no schema of its own for it: pilotlight's database).
_AURORA_SQL = {
    "aurora-postgresql": (
        [f"CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (id text PRIMARY KEY, written_at timestamptz NOT NULL, "
         "execution text)"],
        f"INSERT INTO {CANARY_TABLE} (id, written_at, execution) VALUES (:id, :at, :ex)",
        f"SELECT id FROM {CANARY_TABLE} WHERE id = :id"),
    "aurora-mysql": (
        ["CREATE DATABASE IF NOT EXISTS pilotlight",
         f"CREATE TABLE IF NOT EXISTS pilotlight.{CANARY_TABLE} (id varchar(64) PRIMARY KEY, "
         "written_at datetime(6) NOT NULL, execution varchar(2048))"],
        f"INSERT INTO pilotlight.{CANARY_TABLE} (id, written_at, execution) VALUES (:id, :at, :ex)",
        f"SELECT id FROM pilotlight.{CANARY_TABLE} WHERE id = :id"),
}


def _aws_error(exc: Exception) -> str:
    """What an AWS call answered, in a check's words: the error code, or the connection error's type."""
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else type(exc).__name__


def _aurora_secret(region: str, cluster: dict[str, Any], secret_name: str) -> str:
    """The ARN the Data API reads the master user's credentials from: the cluster's RDS-managed secret, or the plan's
    secret in ``region`` (the Data API takes an ARN; DescribeSecret gives it without reading the value)."""
    managed = (cluster.get("MasterUserSecret") or {}).get("SecretArn")
    if managed and managed.split(":")[3] == region:
        return str(managed)
    described = client("secretsmanager", region).describe_secret(SecretId=secret_name)
    # ARN is optional in DescribeSecret's answer: without it the name goes, and a refusal names the secret.
    return str(described.get("ARN") or secret_name)


def _field(value: dict[str, Any]) -> Any:
    """One typed field of a Data API record (stringValue, longValue, isNull...) as a Python value."""
    if value.get("isNull"):
        return None
    return next(iter(value.values()), None)


def _aurora_canary(rds: Any, data: Any, region: str, item: dict[str, Any], execution: str) -> dict[str, Any]:
    identifier = item["dr_cluster"]
    check: dict[str, Any] = {"check": "canary write (Data API)", "resource": identifier, "ok": False}
    engine = item.get("engine", "aurora-postgresql")
    try:
        found = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"]
    except (ClientError, *CONNECTION_ERRORS) as exc:
        return {**check, "detail": f"cannot describe the cluster: {_aws_error(exc)}"}
    cluster = found[0] if found else {}
    if not cluster.get("HttpEndpointEnabled"):
        # Not a failure of the service: without the Data API this cluster gets the control-plane checks only.
        return {**check, "ok": True, "skipped": True,
                "detail": f"not verified as data: the RDS Data API (HTTP endpoint) is not enabled on {identifier} "
                          "(control-plane checks only)"}
    if engine not in _AURORA_SQL:
        return {**check, "ok": True, "skipped": True,
                "detail": f"not verified as data: no Data API canary for engine {engine} (control-plane checks only)"}
    try:
        secret_arn = _aurora_secret(region, cluster, item["credentials_secret"])
    except (ClientError, *CONNECTION_ERRORS) as exc:
        return {**check, "detail": f"cannot find the credentials secret {item['credentials_secret']}: "
                                   f"{_aws_error(exc)}"}
    base: dict[str, Any] = {"resourceArn": cluster["DBClusterArn"], "secretArn": secret_arn}
    if engine == "aurora-postgresql":
        base["database"] = cluster.get("DatabaseName") or "postgres"
    elif cluster.get("DatabaseName"):
        base["database"] = cluster["DatabaseName"]
    ddl, insert, select = _AURORA_SQL[engine]
    marker, now = uuid.uuid4().hex, dt.datetime.now(dt.UTC)
    at = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    try:
        for sql in ddl:
            data.execute_statement(**base, sql=sql)
        data.execute_statement(**base, sql=insert, parameters=[
            {"name": "id", "value": {"stringValue": marker}},
            {"name": "at", "value": {"stringValue": at}, "typeHint": "TIMESTAMP"},
            {"name": "ex", "value": {"stringValue": execution}}])
        back = data.execute_statement(**base, sql=select, parameters=[{"name": "id",
                                                                         "value": {"stringValue": marker}}])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == _HTTP_ENDPOINT_OFF or (code == "BadRequestException" and "HttpEndpoint" in message
                                          and "not enabled" in message):
            return {**check, "ok": True, "skipped": True,
                    "detail": f"not verified as data: the RDS Data API answered that the HTTP endpoint of "
                              f"{identifier} is not enabled (control-plane checks only)"}
        # DatabaseResumingException, StatementTimeoutException, a refused write, a denied call: the check's answer,
        # and the poll asks again (a writer that has just moved may still be opening).
        return {**check, "detail": f"refused: {code}: {message}"[:512]}
    except CONNECTION_ERRORS as exc:
        return {**check, "detail": f"the Data API did not answer: {type(exc).__name__}"}
    records = back.get("records") or []
    ok = bool(records) and bool(records[0]) and _field(records[0][0]) == marker
    return {**check, "ok": ok, "row": marker, "written_at": now.isoformat(), "engine": engine,
            "detail": f"wrote and read back row {marker} in {CANARY_TABLE} through the RDS Data API" if ok
            else f"row {marker} not read back through the RDS Data API"}


@registry.action("verify_aurora",
                 permissions=["rds:DescribeDBClusters", "rds-data:ExecuteStatement", "secretsmanager:DescribeSecret",
                              "secretsmanager:GetSecretValue"],
                 # The new DR writer (failover) or the drill's clone of it (drill).
                 resource={"rds:DescribeDBClusters": ("aurora_dr_cluster", "aurora_drill_cluster"),
                           "rds-data:ExecuteStatement": ("aurora_dr_cluster", "aurora_drill_cluster"),
                           "secretsmanager:DescribeSecret": "aurora_secret",
                           "secretsmanager:GetSecretValue": "aurora_secret"})
def verify_aurora(region: str, clusters: list[dict[str, Any]], execution: str = "",
                  attempt: int = -1) -> dict[str, Any]:
    """A canary write and read in each Aurora DR cluster's new writer through the RDS Data API; ``done`` when every
    check is ok. A cluster whose HTTP endpoint is not enabled gets a check that is ``ok`` and ``skipped``, with why.

    ``clusters``: ``dr_cluster``, ``engine``, ``credentials_secret`` (the plan's secret name, used when the cluster
    has no RDS-managed ``MasterUserSecret``). The Data API reads the secret with this function's
    secretsmanager:GetSecretValue; the function never reads its value, and no result carries it."""
    rds, data = client("rds", region), client("rds-data", region)
    checks = [_aurora_canary(rds, data, region, c, execution) for c in clusters]
    return {"done": all(c["ok"] for c in checks), "attempt": attempt + 1, "checks": checks}
