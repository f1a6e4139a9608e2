"""DynamoDB global tables (version 2019.11.21), which moto 5.2 lacks.

moto accepts ``UpdateTable`` with ``ReplicaUpdates`` and ignores them: no replica, no ``Replicas`` in
``DescribeTable``, nothing replicated. Here, on the same event system as the other adapters:

- **Adding a replica.** ``UpdateTable`` with ``ReplicaUpdates=[{"Create": {"RegionName": r}}]`` is
  refused as DynamoDB refuses it (``ValidationException``): a table whose stream is not enabled with
  ``NEW_AND_OLD_IMAGES``; provisioned write capacity without a write auto scaling target ("Table write
  capacity should either be Pay-Per-Request or AutoScaled."); a replica in the table's own region, one
  that already exists, or a table of that name already in ``r``. While the table is not ACTIVE (a
  replica being added or removed) another ``UpdateTable`` is ``ResourceInUseException``. Otherwise
  the table in ``r`` is created at once in moto (same key schema, attributes, indexes, billing, stream)
  and shown ``CREATING``: the source's ``DescribeTable`` has ``TableStatus`` UPDATING and the replica
  ``CREATING``; the new table answers ``DescribeTable`` with ``TableStatus`` CREATING and item calls
  with ``ResourceNotFoundException``. After the modeled creation time (``dynamodb.create_replica``) the
  new replica holds every item of the source (the backfill) and both are ACTIVE. Creation and deletion
  are read lazily, as the latency model reads RDS changes: they drive no modeled time forward.
  A provisioned table's Application Auto Scaling targets are given to the new replica (write auto
  scaling applies to every replica of a global table; read capacity starts as the source's).
- **Removing a replica.** ``{"Delete": {"RegionName": r}}`` shows it ``DELETING`` (the table
  UPDATING) until ``dynamodb.delete_replica`` has passed; then the table in ``r`` is gone.
- **Replication.** An item written (``PutItem``, ``UpdateItem``, ``DeleteItem``, ``BatchWriteItem``,
  ``TransactWriteItems``) to an ACTIVE replica reaches every other ACTIVE replica after the modeled
  replication delay (``dynamodb.replicate``), as it then is in the writer's region; a replicated write
  older than the newest write the receiving replica has seen of that item is dropped (last writer
  wins, by modeled write time; simultaneous writes by region name). Each replication puts a
  ``ReplicationLatency`` datum (milliseconds, dimensions ``TableName`` and ``ReceivingRegion``) in the
  writing region's ``AWS/DynamoDB`` namespace; every write puts a ``ConsumedWriteCapacityUnits`` datum
  (one unit per item, dimension ``TableName``) in the region it was made in.
- Every replica's ``DescribeTable`` (and ``UpdateTable``'s answer) lists the *other* replicas in
  ``Replicas`` and has ``GlobalTableVersion`` 2019.11.21.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, responses

VERSION = "2019.11.21"
_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
_ITEM_CALLS = ("PutItem", "GetItem", "UpdateItem", "DeleteItem", "Query", "Scan")


@dataclass
class Replica:
    region: str
    status: str = "ACTIVE"  # CREATING | ACTIVE | DELETING
    until: float | None = None  # modeled time the creation or deletion ends
    source: str = ""  # the region whose items a new replica is filled with


@dataclass
class World:
    create_delay: Callable[[], float]
    delete_delay: Callable[[], float]
    replicate_delay: Callable[[], float]
    # Told of every ReplicationLatency datum as listener(region, namespace, datum) (e.g. alarm evaluation).
    on_datum: Callable[[str, str, dict[str, Any]], None] | None = None
    # Table name -> region -> replica: the replicas of each global table (the account is moto's one).
    tables: dict[str, dict[str, Replica]] = field(default_factory=dict)
    # (table, region, item key) -> (modeled time, writing region) of the newest write that replica holds:
    # writes are ordered by time, simultaneous ones by region name, so every replica settles on one winner.
    written: dict[tuple[str, str, str], tuple[float, str]] = field(default_factory=dict)
    lock: Any = field(default_factory=threading.RLock)

    def replicas(self, table: str) -> dict[str, Replica]:
        self.settle()
        return self.tables.get(table, {})

    def busy(self, table: str) -> bool:
        return any(r.status != "ACTIVE" for r in self.replicas(table).values())

    def status(self, table: str, region: str) -> str | None:
        replica = self.replicas(table).get(region)
        return replica.status if replica is not None else None

    # -- replica changes ---------------------------------------------------------------------
    def create(self, table: str, source_region: str, region: str) -> None:
        source = _dynamodb(source_region).get_table(table)
        _dynamodb(region).create_table(
            name=table, schema=source.schema, throughput=dict(source.throughput) if source.billing_mode !=
            "PAY_PER_REQUEST" else None, attr=source.attr,
            global_indexes=[g.describe() for g in source.global_indexes] or None,
            indexes=[i.describe() for i in source.indexes] or None,
            streams=dict(source.stream_specification or {}) or None, billing_mode=source.billing_mode,
            sse_specification=None, tags=[], deletion_protection_enabled=False, warm_throughput=None)
        _copy_autoscaling(table, source_region, region)
        with self.lock:
            group = self.tables.setdefault(table, {})
            group.setdefault(source_region, Replica(source_region))
            group[region] = Replica(region, "CREATING", clock.now() + self.create_delay(), source_region)
        self.settle()

    def delete(self, table: str, region: str) -> None:
        with self.lock:
            replica = self.tables[table][region]
            replica.status, replica.until = "DELETING", clock.now() + self.delete_delay()
        self.settle()

    def settle(self) -> None:
        """End the creations and deletions whose modeled time has passed (read lazily, as the latency model
        does: a replica being created drives no time forward, it is done when time has passed its end)."""
        now = clock.now()
        with self.lock:
            for table, group in list(self.tables.items()):
                for region, replica in list(group.items()):
                    if replica.until is None or replica.until > now:
                        continue
                    replica.until = None
                    if replica.status == "CREATING":
                        source, target = _table(replica.source, table), _table(region, table)
                        if source is not None and target is not None:
                            for item in source.all_items():  # the backfill: what the source holds now
                                target.put_item(item.to_json()["Attributes"])
                        replica.status = "ACTIVE"
                    elif replica.status == "DELETING":
                        group.pop(region, None)
                        _dynamodb(region).tables.pop(table, None)
                if len(group) <= 1:
                    self.tables.pop(table, None)  # one replica left: an ordinary table again

    def forget(self, table: str, region: str) -> None:
        """The replica's table was deleted (DeleteTable in its region): it leaves the global table."""
        with self.lock:
            group = self.tables.get(table, {})
            group.pop(region, None)
            if len(group) <= 1:
                self.tables.pop(table, None)

    @staticmethod
    def _after(seconds: float, callback: Callable[[], None]) -> None:
        if seconds <= 0:
            callback()
        else:
            clock.call_later(seconds, callback)

    # -- replication -------------------------------------------------------------------------
    def wrote(self, table: str, region: str, key: dict[str, Any]) -> None:
        """An item of ``table`` was written in ``region``: send it, as it now is, to the other replicas."""
        with self.lock:
            group = self.replicas(table)
            if group.get(region) is None or group[region].status != "ACTIVE":
                return
            at = clock.now()
            ident = _ident(key)
            self.written[(table, region, ident)] = (at, region)
            source = _table(region, table)
            item = _get(source, key) if source is not None else None
            attrs = item.to_json()["Attributes"] if item is not None else None
            targets = [r for r, replica in group.items() if r != region and replica.status == "ACTIVE"]
        for target in targets:
            delay = self.replicate_delay()
            self._after(delay, lambda t=target, d=delay: self._apply(table, region, t, key, attrs, at, d))

    def _apply(self, table: str, source: str, region: str, key: dict[str, Any], attrs: dict[str, Any] | None,
               at: float, delay: float) -> None:
        with self.lock:
            if self.status(table, region) != "ACTIVE":
                return
            target = _table(region, table)
            if target is None:
                return
            ident = _ident(key)
            version = (at, source)
            if self.written.get((table, region, ident), (float("-inf"), "")) > version:
                return  # a newer write of this item is already there: last writer wins
            self.written[(table, region, ident)] = version
            if attrs is None:
                if _get(target, key) is not None:
                    _dynamodb(region).delete_item(table, key)
            else:
                target.put_item(attrs)
        datum = {"MetricName": "ReplicationLatency", "Unit": "Milliseconds", "Value": delay * 1000.0,
                 "Dimensions": [{"Name": "TableName", "Value": table}, {"Name": "ReceivingRegion", "Value": region}]}
        _cloudwatch(source).put_metric_data("AWS/DynamoDB", [dict(datum)])
        if self.on_datum is not None:
            self.on_datum(source, "AWS/DynamoDB", datum)


def _dynamodb(region: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region]


def _cloudwatch(region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[DEFAULT_ACCOUNT_ID][region]


def _table(region: str, name: str) -> Any:
    return _dynamodb(region).tables.get(name)


def _get(table: Any, key: dict[str, Any]) -> Any:
    return _dynamodb(table.region_name).get_item(table.name, key)


def _ident(key: dict[str, Any]) -> str:
    return repr(sorted((name, sorted(value.items())) for name, value in key.items()))


def _key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    return {name: item[name] for name in table.table_key_attrs if name in item}


def _table_name(value: str) -> str:
    """A TableName parameter may be the table's ARN."""
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


class Adapters:
    def __init__(self, world: World) -> None:
        self.world = world

    def _describe(self, doc: dict[str, Any], region: str) -> None:
        name = doc.get("TableName", "")
        group = self.world.replicas(name)
        if region not in group:
            return
        doc["GlobalTableVersion"] = VERSION
        doc["Replicas"] = [{"RegionName": r, "ReplicaStatus": replica.status}
                           for r, replica in sorted(group.items()) if r != region]
        own = group[region].status
        if own in ("CREATING", "DELETING"):
            doc["TableStatus"] = own
        elif self.world.busy(name):
            doc["TableStatus"] = "UPDATING"

    # UpdateTable ------------------------------------------------------------------------------
    def before_update_table(self, context: dict[str, Any], **_: Any) -> Any:
        p = responses.api_params(context)
        region = context.get("client_region", "")
        name = _table_name(p.get("TableName", ""))
        table = _table(region, name)
        if table is None:
            return None  # moto answers ResourceNotFoundException
        if self.world.busy(name):
            return responses.error("ResourceInUseException",
                                   f"Attempt to change a resource which is still in use: Table is being updated: "
                                   f"{name}")
        for update in p.get("ReplicaUpdates") or []:
            if "Create" in update:
                problem = self._cannot_create(table, region, update["Create"].get("RegionName", ""))
            elif "Delete" in update:
                problem = self._cannot_delete(name, region, update["Delete"].get("RegionName", ""))
            else:
                problem = "Updating a replica's settings (ReplicaUpdates Update) is not modeled by the sandbox."
            if problem:
                return responses.error("ValidationException", problem)
        return None

    def _cannot_create(self, table: Any, region: str, target: str) -> str | None:
        spec = table.stream_specification or {}
        if not spec.get("StreamEnabled") or spec.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            return ("One or more parameter values were invalid: Table must have DynamoDB Streams enabled with "
                    "StreamViewType set to NEW_AND_OLD_IMAGES to add a replica.")
        if table.billing_mode != "PAY_PER_REQUEST" and not _write_autoscaled(region, table.name):
            return "Table write capacity should either be Pay-Per-Request or AutoScaled."
        if target == region:
            return f"Cannot add replica in the same region as the table: {region}"
        if target in self.world.replicas(table.name) or _table(target, table.name) is not None:
            return (f"Failed to create a the new replica of table with name: '{table.name}' because one or more "
                    "replicas already existed as tables.")
        return None

    def _cannot_delete(self, name: str, region: str, target: str) -> str | None:
        if target == region or target not in self.world.replicas(name):
            return "Replica specified in the Replica Update or Replica Delete action of the request was not found."
        return None

    def after_update_table(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                           **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        region = context.get("client_region", "")
        name = _table_name(p.get("TableName", ""))
        for update in p.get("ReplicaUpdates") or []:
            if "Create" in update:
                self.world.create(name, region, update["Create"]["RegionName"])
            elif "Delete" in update:
                self.world.delete(name, update["Delete"]["RegionName"])
        if "TableDescription" in parsed:
            self._describe(parsed["TableDescription"], region)

    # Reading ----------------------------------------------------------------------------------
    def after_describe_table(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                             **_: Any) -> None:
        if http_response.status_code < 300 and "Table" in parsed:
            self._describe(parsed["Table"], context.get("client_region", ""))

    def before_item_call(self, context: dict[str, Any], **_: Any) -> Any:
        """A replica being created cannot be read or written yet."""
        name = _table_name(responses.api_params(context).get("TableName", ""))
        if self.world.status(name, context.get("client_region", "")) == "CREATING":
            return responses.error("ResourceNotFoundException", "Requested resource not found")
        return None

    def after_delete_table(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any],
                           **_: Any) -> None:
        if http_response.status_code < 300:
            name = (parsed.get("TableDescription") or {}).get("TableName", "")
            self.world.forget(name, context.get("client_region", ""))

    # Writing ----------------------------------------------------------------------------------
    def after_write(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        p = responses.api_params(context)
        region = context.get("client_region", "")
        written = _written_keys(model.name, p, region)
        _consumed_writes(region, written)
        for name, key in written:
            if name in self.world.tables:
                self.world.wrote(name, region, key)


def _consumed_writes(region: str, written: list[tuple[str, dict[str, Any]]]) -> None:
    """``ConsumedWriteCapacityUnits`` (AWS/DynamoDB, TableName) for writes made in ``region``: one unit per
    item written, whatever its size (DynamoDB counts one per KB)."""
    counts: dict[str, int] = {}
    for name, _ in written:
        counts[name] = counts.get(name, 0) + 1
    for name, units in counts.items():
        _cloudwatch(region).put_metric_data("AWS/DynamoDB", [{
            "MetricName": "ConsumedWriteCapacityUnits", "Unit": "Count", "Value": float(units),
            "Dimensions": [{"Name": "TableName", "Value": name}]}])


def _written_keys(operation: str, p: dict[str, Any], region: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []

    def add(table_name: str, item: dict[str, Any] | None, key: dict[str, Any] | None) -> None:
        name = _table_name(table_name)
        table = _table(region, name)
        if table is None:
            return
        out.append((name, dict(key) if key is not None else _key_of(table, item or {})))

    if operation == "PutItem":
        add(p.get("TableName", ""), p.get("Item"), None)
    elif operation in ("UpdateItem", "DeleteItem"):
        add(p.get("TableName", ""), None, p.get("Key"))
    elif operation == "BatchWriteItem":
        for name, requests in (p.get("RequestItems") or {}).items():
            for request in requests:
                if "PutRequest" in request:
                    add(name, request["PutRequest"].get("Item"), None)
                elif "DeleteRequest" in request:
                    add(name, None, request["DeleteRequest"].get("Key"))
    elif operation == "TransactWriteItems":
        for entry in p.get("TransactItems") or []:
            if "Put" in entry:
                add(entry["Put"].get("TableName", ""), entry["Put"].get("Item"), None)
            for kind in ("Update", "Delete"):
                if kind in entry:
                    add(entry[kind].get("TableName", ""), None, entry[kind].get("Key"))
    return out


def _write_autoscaled(region: str, name: str) -> bool:
    """Is the table's write capacity under Application Auto Scaling (a scalable target)?"""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    targets = applicationautoscaling_backends[DEFAULT_ACCOUNT_ID][region].targets
    return f"table/{name}" in targets.get("dynamodb:table:WriteCapacityUnits", {})


def _copy_autoscaling(name: str, source_region: str, region: str) -> None:
    """A new replica of a provisioned table gets the table's auto scaling targets (write auto scaling applies to
    every replica of a global table; read capacity starts as the source's, per replica afterwards)."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    source = applicationautoscaling_backends[DEFAULT_ACCOUNT_ID][source_region]
    target = applicationautoscaling_backends[DEFAULT_ACCOUNT_ID][region]
    for dimension in ("dynamodb:table:WriteCapacityUnits", "dynamodb:table:ReadCapacityUnits"):
        found = source.targets.get(dimension, {}).get(f"table/{name}")
        if found is not None:
            target.register_scalable_target("dynamodb", found.resource_id, dimension, found.min_capacity,
                                            found.max_capacity, found.role_arn, found.suspended_state)


def handlers(a: Adapters) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("before-parameter-build.dynamodb.UpdateTable", responses.stash_api_params),
        ("before-call.dynamodb.UpdateTable", a.before_update_table),
        ("after-call.dynamodb.UpdateTable", a.after_update_table),
        ("after-call.dynamodb.DescribeTable", a.after_describe_table),
        ("after-call.dynamodb.DeleteTable", a.after_delete_table),
    ]
    for op in sorted(set(_WRITES) | set(_ITEM_CALLS)):
        out.append((f"before-parameter-build.dynamodb.{op}", responses.stash_api_params))
    for op in _ITEM_CALLS:
        out.append((f"before-call.dynamodb.{op}", a.before_item_call))
    for op in _WRITES:
        out.append((f"after-call.dynamodb.{op}", a.after_write))
    return out


_adapters: Adapters | None = None


def install(events: Any, latency: Any = None, on_datum: Callable[[str, str, dict[str, Any]], None] | None = None
            ) -> World:
    """Register the adapters; delays follow the latency model (none when it is off or absent)."""
    global _adapters
    delay = functools.partial(responses.delay_of, latency)
    world = World(delay("dynamodb.create_replica"), delay("dynamodb.delete_replica"), delay("dynamodb.replicate"),
                  on_datum)
    _adapters = Adapters(world)
    responses.hook(events, handlers(_adapters), "ddb")
    return world


def uninstall(events: Any) -> None:
    global _adapters
    if _adapters is None:
        return
    responses.unhook(events, handlers(_adapters), "ddb")
    _adapters = None
