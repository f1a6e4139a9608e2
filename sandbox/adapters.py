"""Corrections and additions to moto, so the sandbox answers as AWS does.

Kept out of the product path: the handlers in ``lambdas/`` never know they run here.
"""

from __future__ import annotations

from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.backend import execution as execution_module

from sandbox import responses


def _rds(region: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[DEFAULT_ACCOUNT_ID][region]


def after_promote(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto keeps a promoted cross-region replica linked to its source; AWS unlinks it."""
    if http_response.status_code >= 300:
        return
    region = context["client_region"]
    ident = parsed["DBInstance"]["DBInstanceIdentifier"]
    db = _rds(region).databases.get(ident)
    if db is None or not db.source_db_instance_identifier:
        return
    source_id = db.source_db_instance_identifier
    source_region = source_id.split(":")[3] if source_id.startswith("arn:") else region
    source = _rds(source_region).databases.get(source_id.rsplit(":", 1)[-1])
    if source is not None:
        for ref in (db.db_instance_arn, db.db_instance_identifier):
            if ref in source.replicas:
                source.replicas.remove(ref)
    db.source_db_instance_identifier = None
    db.is_replica = False


def after_create_replica(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto copies the source into the replica (AZ, Multi-AZ); AWS gives the replica its own."""
    if http_response.status_code >= 300:
        return
    region = context["client_region"]
    ident = parsed["DBInstance"]["DBInstanceIdentifier"]
    db = _rds(region).databases.get(ident)
    if db is None:
        return
    request = context.get("pilotlight_params") or {}
    # moto copies the source instance; a replica has its own AZ, Multi-AZ setting and class.
    wanted_az = request.get("AvailabilityZone") or f"{region}a"
    if request.get("AvailabilityZone") or not str(db.availability_zone).startswith(region):
        db.availability_zone = wanted_az
    db.multi_az = str(request.get("MultiAZ", "false")).lower() == "true"
    parsed["DBInstance"]["AvailabilityZone"] = db.availability_zone
    parsed["DBInstance"]["MultiAZ"] = db.multi_az
    # AWS creates every read replica with backups disabled; moto copies the source's retention.
    db.backup_retention_period = 0
    parsed["DBInstance"]["BackupRetentionPeriod"] = 0
    group = context.get("pilotlight_subnet_group")
    if group:  # set aside by before_create_replica: look it up in the replica's own region
        db.db_subnet_group_name = group
        parsed["DBInstance"]["DBSubnetGroup"] = {"DBSubnetGroupName": group,
                                                 "VpcId": db.db_subnet_group.vpc_id}


def after_restore(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto restores a snapshot of a read replica as a replica of the same source, publicly accessible and with
    the source's Multi-AZ setting; AWS restores a standalone instance with what the request asks for."""
    if http_response.status_code >= 300:
        return
    region = context["client_region"]
    db = _rds(region).databases.get(parsed["DBInstance"]["DBInstanceIdentifier"])
    if db is None:
        return
    request = context.get("pilotlight_params") or {}
    source_id = db.source_db_instance_identifier
    if source_id:
        source_region = source_id.split(":")[3] if source_id.startswith("arn:") else region
        source = _rds(source_region).databases.get(source_id.rsplit(":", 1)[-1])
        for ref in (db.db_instance_arn, db.db_instance_identifier):
            if source is not None and ref in source.replicas:
                source.replicas.remove(ref)
        db.source_db_instance_identifier = None
        db.is_replica = False
        parsed["DBInstance"].pop("ReadReplicaSourceDBInstanceIdentifier", None)
    db.multi_az = str(request.get("MultiAZ", "false")).lower() == "true"
    db.publicly_accessible = str(request.get("PubliclyAccessible", "false")).lower() == "true"
    parsed["DBInstance"]["MultiAZ"] = db.multi_az
    parsed["DBInstance"]["PubliclyAccessible"] = db.publicly_accessible


def before_delete(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """moto lists a cross-region replica in its source by ARN but removes it by identifier (and fails)."""
    region = context.get("client_region", "")
    db = _rds(region).databases.get(responses.request_params(params).get("DBInstanceIdentifier", ""))
    source_id = getattr(db, "source_db_instance_identifier", None) if db is not None else None
    if not source_id or not source_id.startswith("arn:") or source_id.split(":")[3] == region:
        return
    source = _rds(source_id.split(":")[3]).databases.get(source_id.rsplit(":", 1)[-1])
    if source is not None and db.db_instance_arn in source.replicas:
        source.replicas[source.replicas.index(db.db_instance_arn)] = db.db_instance_identifier


def stash_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the API parameters in the request context for the ``after-call`` adapters."""
    context["pilotlight_params"] = responses.request_params(params)


def before_create_replica(params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
    """moto looks a cross-region replica's DBSubnetGroupName up in the source's region; AWS in the replica's.

    The name is checked here in the replica's region (DBSubnetGroupNotFoundFault as AWS answers) and set
    aside from the request; :func:`after_create_replica` puts the replica in it.
    """
    stash_params(params, context)
    body = responses.request_params(params)
    region = context.get("client_region", "")
    source = str(body.get("SourceDBInstanceIdentifier", ""))
    group = body.get("DBSubnetGroupName")
    if not group or not source.startswith("arn:") or source.split(":")[3] == region:
        return None
    if str(group).lower() not in _rds(region).subnet_groups:
        return responses.error("DBSubnetGroupNotFoundFault", f"DBSubnetGroup {group} not found.", 404)
    context["pilotlight_subnet_group"] = str(group).lower()
    del body["DBSubnetGroupName"]
    return None


HANDLERS: list[tuple[str, Any]] = [
    ("before-call.rds.CreateDBInstanceReadReplica", before_create_replica),
    ("before-call.rds.DeleteDBInstance", before_delete),
    ("after-call.rds.PromoteReadReplica", after_promote),
    ("after-call.rds.CreateDBInstanceReadReplica", after_create_replica),
    ("before-call.rds.RestoreDBInstanceFromDBSnapshot", stash_params),
    ("after-call.rds.RestoreDBInstanceFromDBSnapshot", after_restore),
]


# moto's interpreter evaluates a Task's TimeoutSeconds on an evaluation stack that another branch
# can touch when a Parallel state is failing; the scheduled event then carries a payload where an
# integer belongs, and GetExecutionHistory cannot be serialised. AWS never records such a value, so
# the history drops it (the timeout itself is in the definition).
_original_history = execution_module.Execution.to_history_output


def _history_output(self: Any) -> Any:
    out = _original_history(self)
    for event in out.get("events", []):
        for key, details in event.items():
            clobbered = isinstance(details, dict) and not isinstance(details.get("timeoutInSeconds", 0), int)
            if key.endswith("EventDetails") and clobbered:
                del details["timeoutInSeconds"]
    return out


# StopExecution's error and cause: AWS keeps them (DescribeExecution, the ExecutionAborted event, the status-change
# event EventBridge gets); moto drops them. Kept here by execution ARN from the request, applied when moto stops it.
_stop_requests: dict[str, tuple[str | None, str | None]] = {}
_original_stop = execution_module.Execution.stop


def before_stop(params: dict[str, Any], **_: Any) -> None:
    """``before-parameter-build``: ``params`` are the API parameters."""
    _stop_requests[str(params.get("executionArn"))] = (params.get("error"), params.get("cause"))


HANDLERS.append(("before-parameter-build.sfn.StopExecution", before_stop))


def _stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
    error, cause = _stop_requests.pop(self.exec_arn, (error, cause))
    if self.exec_status is not None and getattr(self.exec_status, "value", "") == "RUNNING":
        self.error, self.cause = error or None, cause or None
    _original_stop(self, stop_date=stop_date, error=error, cause=cause)
    # A task waiting for its token (an approval) is let go at once, as AWS ends the execution at once;
    # moto leaves it waiting until its timeout, which in modeled time only comes when something else waits.
    worker = getattr(self, "exec_worker", None)
    pool = getattr(getattr(getattr(worker, "env", None), "callback_pool_manager", None), "_pool", None) or {}
    for endpoint in list(pool.values()):
        endpoint.interrupt_all()


# A stopped execution is ABORTED in AWS, whatever its branches do next. moto's interpreter lets the error a
# Map iteration raises as it is aborted (inside a Parallel branch) overwrite the stop, so the execution
# ends FAILED with States.Runtime; the stop is kept here.
_original_set_error = Environment.set_error


def _set_error(self: Any, error: Any) -> None:
    if isinstance(self._program_state, ProgramStopped):
        return
    _original_set_error(self, error)


def install(events: Any) -> None:
    responses.hook(events, HANDLERS, "adapter", where="first")
    execution_module.Execution.to_history_output = _history_output  # type: ignore[method-assign]
    Environment.set_error = _set_error  # type: ignore[method-assign]
    execution_module.Execution.stop = _stop  # type: ignore[method-assign]


def uninstall(events: Any) -> None:
    responses.unhook(events, HANDLERS, "adapter")
    execution_module.Execution.to_history_output = _original_history  # type: ignore[method-assign]
    Environment.set_error = _original_set_error  # type: ignore[method-assign]
    execution_module.Execution.stop = _original_stop  # type: ignore[method-assign]
    _stop_requests.clear()
