"""Failback steps: the way back to the primary region once it answers again, and the pilot light re-armed.

After a failover the application runs in the DR region on the promoted DR database; the old primary is stale.
The failback workflow (workflows/failback.py) calls these actions, each reading the current state first so a
re-run after a failure converges (the same resume rule as the failover):

- ``preconditions``: the primary region answers, the live site is the DR one (the last failover succeeded and
  no failback succeeded since), no failover, drill or other failback of the plan is running. Otherwise
  :class:`FailbackRefused` with the reason, before anything changes.
- ``retire_stale``: the stale primary ``<id>`` is kept, renamed ``<id>-stale-<stamp>`` (never deleted: the
  writes it took before the outage that never reached the DR region are still in it); its in-region read
  replicas (copies of that stale data, nothing of their own) are deleted, replicate makes them again.
- ``reverse_replica``: ``<id>`` again, as a cross-region read replica of the live DR database, of the stale
  primary's class, network, Multi-AZ and KMS key, so its endpoint and the primary environment's settings are
  those of the old primary; ``check_reverse_lag`` waits until its lag is within the plan's RPO.
- ``primary_environment``: the primary Beanstalk environment answers Ready and Green again (it is reused).
- ``promote_reverse``: after the approval, the reverse replica promoted (the switch back's RPO is its lag).
- ``retire_dr`` / ``delete_retired``: the promoted DR database renamed ``<dr>-retired-<stamp>`` so replicate
  can make ``<dr>`` a replica again, then deleted with a final snapshot once that replica is available.
- ``start_replicate``: the pilot light in the original direction: the plan's replicate workflow, run to its end.
- ``terminate_dr_environment``: the DR environment scaled back to nothing (the pilot light has none running).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas import rds as rds_steps
from lambdas.beanstalk_drill import ENVIRONMENT_TEARDOWN
from lambdas.common import Registry, aws_errors, client, raise_mapped
from lambdas.errors import FailbackRefused, PreconditionFailed, ResourceNotFound

registry = Registry("failback")
handler = registry.handler

_DESCRIBE = "rds:DescribeDBInstances"
# The tag on the reverse replica (value: the stamp): a re-run tells it from the stale primary by it.
FAILBACK_TAG = "pilotlight:failback"
# Names RDS allows: 1-63 letters, digits and hyphens; the suffixes below keep plan identifiers of up to 42 chars.
IDENTIFIER_LIMIT = 63


def stale_name(identifier: str, stamp: str) -> str:
    return f"{identifier}-stale-{stamp}"


def retired_name(dr_identifier: str, stamp: str) -> str:
    return f"{dr_identifier}-retired-{stamp}"


def final_snapshot_name(dr_identifier: str, stamp: str) -> str:
    return f"{retired_name(dr_identifier, stamp)}-final"


def _machine(state_machine_arn: str, workflow: str) -> str:
    """The ARN of the plan's ``workflow`` state machine, from this failback's own (``...-failback``)."""
    base, _, _ = state_machine_arn.rpartition("-failback")
    return f"{base}-{workflow}"


def _stamp(moment: Any) -> str:
    if not hasattr(moment, "astimezone"):
        moment = dt.datetime.fromtimestamp(float(moment), dt.UTC)
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%d%H%M")


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def _executions(sfn: Any, machine: str, status: str | None = None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"stateMachineArn": machine, "maxResults": 100}
    if status:
        kwargs["statusFilter"] = status
    try:
        return sfn.list_executions(**kwargs)["executions"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "StateMachineDoesNotExist":
            return []
        raise_mapped(exc, f"list executions of {machine.rsplit(':', 1)[-1]}")
    return []


def _environments(eb: Any, application: str, name: str) -> list[dict[str, Any]]:
    """The environment ``name`` of ``application`` unless terminated (Terminating ones included)."""
    found = eb.describe_environments(ApplicationName=application, EnvironmentNames=[name],
                                     IncludeDeleted=False)["Environments"]
    return [e for e in found if e.get("Status") != "Terminated"]


def _primary_answers(primary_region: str, databases: list[str], environments: list[dict[str, str]]) -> list[str]:
    """What keeps the failback from starting on the primary region's side (empty: it answers)."""
    problems = []
    try:
        rds = client("rds", primary_region, fast=True)
        for identifier in databases:
            rds_steps.describe_instance(rds, identifier)
        eb = client("elasticbeanstalk", primary_region, fast=True)
        for env in environments:
            if not [e for e in _environments(eb, env["application"], env["name"]) if e.get("Status") != "Terminating"]:
                problems.append(
                    f"environment {env['name']} does not exist in {primary_region}: failback reuses the primary "
                    "environment; launch it there (its saved configuration and network are the application's) and "
                    "run failback again")
    except (ClientError, BotoCoreError) as exc:
        problems.append(f"the primary region {primary_region} does not answer ({type(exc).__name__}: {exc})")
    return problems


@registry.action(
    "preconditions",
    permissions=["states:ListExecutions", "states:DescribeExecution", _DESCRIBE,
                 "elasticbeanstalk:DescribeEnvironments"],
    resource={"states:ListExecutions": "statemachine", "states:DescribeExecution": "workflow_execution",
              _DESCRIBE: "source_db", "elasticbeanstalk:DescribeEnvironments": "source_environment"},
)
def preconditions(state_machine_arn: str, execution_arn: str, region: str, primary_region: str,
                  databases: list[str], environments: list[dict[str, str]]) -> dict[str, Any]:
    """Refuse (:class:`FailbackRefused`) unless the primary answers, the live site is the DR one and nothing
    else of the plan runs; else the last failover and the ``stamp`` (its start) that names the kept copies."""
    sfn = client("stepfunctions", region)
    with aws_errors("describe this failback"):
        me = sfn.describe_execution(executionArn=execution_arn)
    problems: list[str] = []
    for workflow in ("failover", "drill", "failback"):
        running = [e for e in _executions(sfn, _machine(state_machine_arn, workflow), "RUNNING")
                   if e["executionArn"] != execution_arn]
        if running:
            problems.append(f"a {workflow} of the plan is running ({running[0]['name']}): wait for it to end")
    failovers = sorted(_executions(sfn, _machine(state_machine_arn, "failover"), "SUCCEEDED"),
                       key=lambda e: e["startDate"])
    last = failovers[-1] if failovers else None
    if last is None:
        problems.append("no failover of the plan has succeeded: the live site is the primary one")
    else:
        since = [e for e in _executions(sfn, state_machine_arn, "SUCCEEDED") if e["startDate"] > last["startDate"]]
        if since:
            problems.append(f"failback {since[0]['name']} already returned to the primary after the last failover "
                            f"({last['name']})")
    problems += _primary_answers(primary_region, databases, environments)
    if problems:
        raise FailbackRefused("; ".join(problems))
    assert last is not None
    # The names a failback gives carry the failover's start: every run undoing that failover finds them again.
    return {"failover_execution": last["executionArn"], "failover_started": _iso(last["startDate"]),
            "failover_stopped": _iso(last.get("stopDate")), "stamp": _stamp(last["startDate"]),
            "started": _iso(me["startDate"])}


def _describe(region: str, identifier: str) -> dict[str, Any] | None:
    return rds_steps.describe_instance(client("rds", region), identifier)


def _replicates_from(db: dict[str, Any], source_region: str, source: str) -> bool:
    """Whether ``db`` is a read replica of ``source`` in ``source_region`` (a cross-region source is an ARN)."""
    found = db.get("ReadReplicaSourceDBInstanceIdentifier") or ""
    if found.startswith("arn:"):
        parts = found.split(":")
        return parts[3] == source_region and parts[-1] == source
    return found == source


def _poll(done: bool, attempt: int, **details: Any) -> dict[str, Any]:
    return {"done": done, "attempt": attempt, **details}


def _rename(rds: Any, identifier: str, new: str) -> None:
    try:
        rds.modify_db_instance(DBInstanceIdentifier=identifier, NewDBInstanceIdentifier=new, ApplyImmediately=True)
    except ClientError as exc:
        raise_mapped(exc, f"rename {identifier} to {new}")


def _ours(db: dict[str, Any] | None, stamp: str) -> bool:
    """Whether ``db`` is the reverse replica this failback made (tagged with its stamp), promoted or not."""
    return db is not None and any(t.get("Key") == FAILBACK_TAG and t.get("Value") == stamp
                                  for t in db.get("TagList") or [])


def _retire_stale(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str,
                  attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    stale = stale_name(identifier, stamp)
    db = rds_steps.describe_instance(rds, identifier)
    kept = rds_steps.describe_instance(rds, stale)
    if db is None or _ours(db, stamp):
        # Renamed; or, on a re-run, the name already holds the reverse replica this failback made.
        done = db is not None or (kept is not None and kept.get("DBInstanceStatus") == "available")
        return _poll(done, attempt, stale=stale, kept=rds_steps.facts(kept) if kept else None)
    live = rds_steps.describe_instance(client("rds", dr_region), dr_identifier)
    if live is None or live.get("ReadReplicaSourceDBInstanceIdentifier"):
        # The one guard that matters most: never rename a primary whose DR database was not promoted.
        raise PreconditionFailed(f"{dr_identifier} in {dr_region} is {'missing' if live is None else 'a replica'}: "
                                 f"the live database is {identifier} in {region}, there is nothing to fail back")
    if db.get("DBInstanceStatus") != "available":
        return _poll(False, attempt, stale=stale, waiting_for=f"{identifier} is {db.get('DBInstanceStatus')}")
    # Its in-region replicas hold nothing of their own; replicate makes them again from the new primary.
    deleted = []
    for replica in db.get("ReadReplicaDBInstanceIdentifiers") or []:
        if replica.startswith("arn:"):
            continue  # another region's: the DR replica was promoted, anything else is not ours to touch
        try:
            rds.delete_db_instance(DBInstanceIdentifier=replica, SkipFinalSnapshot=True)
            deleted.append(replica)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("DBInstanceNotFound", "DBInstanceNotFoundFault",
                                                      "InvalidDBInstanceState"):
                raise_mapped(exc, f"delete {replica}, a read replica of the stale {identifier}")
    if deleted:
        return _poll(False, attempt, stale=stale, deleted_replicas=deleted)
    _rename(rds, identifier, stale)
    return _poll(False, attempt, stale=stale, renamed=True)


_RETIRE = [_DESCRIBE, "rds:ModifyDBInstance", "rds:DeleteDBInstance"]
_RETIRE_KINDS = {_DESCRIBE: ("source_db", "failback_stale_db", "db"),
                 "rds:ModifyDBInstance": ("source_db", "failback_stale_db"),
                 "rds:DeleteDBInstance": "source_db"}


@registry.action("retire_stale", permissions=_RETIRE, resource=_RETIRE_KINDS)
def retire_stale(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str) -> dict[str, Any]:
    """Keep the stale primary, renamed ``<id>-stale-<stamp>``, after deleting its in-region read replicas (they
    would go on copying stale data under the plan's names; replicate makes them again from the new primary).
    Done when the old name is free and the kept copy is available."""
    return _retire_stale(region, identifier, stamp, dr_region, dr_identifier, 0)


@registry.action("check_stale_retired", permissions=_RETIRE, resource=_RETIRE_KINDS)
def check_stale_retired(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str,
                        attempt: int = 0) -> dict[str, Any]:
    """As :func:`retire_stale`, counting the loop's checks."""
    return _retire_stale(region, identifier, stamp, dr_region, dr_identifier, attempt + 1)


def _reverse_params(stale: dict[str, Any], identifier: str, source: dict[str, Any], dr_region: str,
                    plan: str, stamp: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "DBInstanceIdentifier": identifier,
        "SourceDBInstanceIdentifier": source["DBInstanceArn"],
        "SourceRegion": dr_region,
        "DBInstanceClass": stale["DBInstanceClass"],
        "MultiAZ": bool(stale.get("MultiAZ")),
        "PubliclyAccessible": bool(stale.get("PubliclyAccessible")),
        "Tags": [{"Key": "pilotlight:plan", "Value": plan}, {"Key": FAILBACK_TAG, "Value": stamp}],
    }
    group = rds_steps.subnet_group_of(stale)
    if group:
        params["DBSubnetGroupName"] = group
    groups = rds_steps.security_groups_of(stale)
    if groups:
        params["VpcSecurityGroupIds"] = groups
    if source.get("StorageEncrypted"):
        if not stale.get("KmsKeyId"):
            raise PreconditionFailed(f"{source['DBInstanceIdentifier']} is encrypted and the stale primary names no "
                                     f"KMS key to encrypt its replica {identifier} with")
        params["KmsKeyId"] = stale["KmsKeyId"]
    return params


def _reverse(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str, plan: str,
             attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    db = rds_steps.describe_instance(rds, identifier)
    if db is not None:
        if not _ours(db, stamp):
            raise PreconditionFailed(f"{identifier} in {region} is not the reverse replica of this failback (no tag "
                                     f"{FAILBACK_TAG}={stamp}): the stale primary was not renamed")
        # Standalone already: an earlier run of this failback promoted it (the switch back happened).
        switched = not db.get("ReadReplicaSourceDBInstanceIdentifier")
        return _poll(db.get("DBInstanceStatus") in ("available", "backing-up"), attempt, db=rds_steps.facts(db),
                     switched=switched)
    stale = rds_steps.describe_instance(rds, stale_name(identifier, stamp))
    if stale is None:
        raise PreconditionFailed(f"neither {identifier} nor the stale primary {stale_name(identifier, stamp)} "
                                 f"exists in {region}")
    source = rds_steps.describe_instance(client("rds", dr_region), dr_identifier)
    if source is None:
        raise ResourceNotFound(f"the live DR database {dr_identifier} does not exist in {dr_region}")
    if source.get("ReadReplicaSourceDBInstanceIdentifier"):
        raise PreconditionFailed(f"{dr_identifier} in {dr_region} is still a read replica: it is not the live site")
    try:
        out = rds.create_db_instance_read_replica(**_reverse_params(stale, identifier, source, dr_region, plan, stamp))
    except ClientError as exc:
        raise_mapped(exc, f"create the reverse replica {identifier} in {region}")
    return _poll(False, attempt, db=rds_steps.facts(out["DBInstance"]), created=True, switched=False)


_REVERSE = [_DESCRIBE, "rds:CreateDBInstanceReadReplica", "rds:AddTagsToResource", "kms:CreateGrant",
            "kms:DescribeKey"]
_REVERSE_KINDS: dict[str, str | tuple[str, ...]] = {
    _DESCRIBE: ("source_db", "failback_stale_db", "db"),
    # The new replica, its source (the live DR database) and the stale primary's subnet group.
    "rds:CreateDBInstanceReadReplica": ("source_db", "db", "failback_primary_subnet_group"),
    "rds:AddTagsToResource": "source_db",
    # An encrypted replica is encrypted with the primary's own key (grants made as the caller).
    "kms:CreateGrant": "source_key",
    "kms:DescribeKey": "source_key",
}


@registry.action("reverse_replica", permissions=_REVERSE, resource=_REVERSE_KINDS)
def reverse_replica(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str,
                    plan: str) -> dict[str, Any]:
    """``<id>`` in the primary region as a cross-region read replica of the live DR database, shaped as the stale
    primary was (class, subnet group, security groups, Multi-AZ, KMS key). Done when it is available."""
    return _reverse(region, identifier, stamp, dr_region, dr_identifier, plan, 0)


@registry.action("check_reverse_replica", permissions=_REVERSE, resource=_REVERSE_KINDS)
def check_reverse_replica(region: str, identifier: str, stamp: str, dr_region: str, dr_identifier: str,
                          plan: str, attempt: int = 0) -> dict[str, Any]:
    """As :func:`reverse_replica`, counting the loop's checks."""
    return _reverse(region, identifier, stamp, dr_region, dr_identifier, plan, attempt + 1)


@registry.action("check_reverse_lag", permissions=["cloudwatch:GetMetricStatistics", _DESCRIBE],
                 resource={"cloudwatch:GetMetricStatistics": "*", _DESCRIBE: "source_db"})
def check_reverse_lag(region: str, identifier: str, rpo_minutes: int, attempt: int = -1) -> dict[str, Any]:
    """Done when the reverse replica's lag (CloudWatch ReplicaLag) is read and within the plan's RPO: the
    cutover back is offered only then."""
    lag = rds_steps.replica_lag(region, identifier, rpo_minutes)
    return _poll(lag["status"] == "WITHIN_RPO", attempt + 1, lag=lag)


def _environment(region: str, application: str, name: str, attempt: int) -> dict[str, Any]:
    eb = client("elasticbeanstalk", region)
    with aws_errors(f"describe {name} in {region}"):
        live = [e for e in _environments(eb, application, name) if e.get("Status") != "Terminating"]
    if not live:
        raise ResourceNotFound(f"environment {name} does not exist in {region}")
    env = live[0]
    facts = {"name": name, "status": env.get("Status"), "health": env.get("Health"), "cname": env.get("CNAME")}
    return _poll(env.get("Status") == "Ready" and env.get("Health") == "Green", attempt, environment=facts)


@registry.action("primary_environment", permissions=["elasticbeanstalk:DescribeEnvironments"],
                 resource="source_environment")
def primary_environment(region: str, application: str, name: str, attempt: int = -1) -> dict[str, Any]:
    """Done when the primary environment (reused, not launched again) is Ready and Green."""
    return _environment(region, application, name, attempt + 1)


def _promote(region: str, identifier: str, attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    db = rds_steps.describe_instance(rds, identifier)
    if db is None:
        raise ResourceNotFound(f"the reverse replica {identifier} does not exist in {region}")
    promoted_now = False
    if db.get("ReadReplicaSourceDBInstanceIdentifier") and db.get("DBInstanceStatus") == "available":
        try:
            db = rds.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=7)["DBInstance"]
        except ClientError as exc:
            raise_mapped(exc, f"promote {identifier}")
        promoted_now = True
    done = not db.get("ReadReplicaSourceDBInstanceIdentifier") and rds_steps.serving(db) and not promoted_now
    return _poll(done, attempt, promoted_now=promoted_now, db=rds_steps.facts(db))


_PROMOTE = [_DESCRIBE, "rds:PromoteReadReplica"]


@registry.action("promote_reverse", permissions=_PROMOTE, resource="source_db")
def promote_reverse(region: str, identifier: str) -> dict[str, Any]:
    """Promote the reverse replica to the primary database (done at once when it already is standalone)."""
    return _promote(region, identifier, 0)


@registry.action("check_reverse_promoted", permissions=_PROMOTE, resource="source_db")
def check_reverse_promoted(region: str, identifier: str, attempt: int = 0) -> dict[str, Any]:
    """Done when the promoted primary is standalone and serving."""
    return _promote(region, identifier, attempt + 1)


def _retire_dr(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str,
               attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    retired = retired_name(dr_identifier, stamp)
    db = rds_steps.describe_instance(rds, dr_identifier)
    kept = rds_steps.describe_instance(rds, retired)
    if db is None or _replicates_from(db, primary_region, identifier):
        done = db is not None or (kept is not None and kept.get("DBInstanceStatus") == "available")
        return _poll(done, attempt, retired=retired)
    if db.get("DBInstanceStatus") != "available":
        return _poll(False, attempt, retired=retired, waiting_for=f"{dr_identifier} is {db.get('DBInstanceStatus')}")
    _rename(rds, dr_identifier, retired)
    return _poll(False, attempt, retired=retired, renamed=True)


_RETIRE_DR = [_DESCRIBE, "rds:ModifyDBInstance"]
_RETIRE_DR_KINDS = {_DESCRIBE: ("db", "failback_retired_db"), "rds:ModifyDBInstance": ("db", "failback_retired_db")}


@registry.action("retire_dr", permissions=_RETIRE_DR, resource=_RETIRE_DR_KINDS)
def retire_dr(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str) -> dict[str, Any]:
    """Rename the promoted DR database ``<dr>-retired-<stamp>`` (kept until the new DR replica is available), so
    replicate makes ``<dr>`` a read replica of the primary again. Done when the name is free."""
    return _retire_dr(region, dr_identifier, stamp, primary_region, identifier, 0)


@registry.action("check_dr_retired", permissions=_RETIRE_DR, resource=_RETIRE_DR_KINDS)
def check_dr_retired(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str,
                     attempt: int = 0) -> dict[str, Any]:
    """As :func:`retire_dr`, counting the loop's checks."""
    return _retire_dr(region, dr_identifier, stamp, primary_region, identifier, attempt + 1)


def _delete_retired(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str,
                    attempt: int) -> dict[str, Any]:
    rds = client("rds", region)
    retired = retired_name(dr_identifier, stamp)
    replica = rds_steps.describe_instance(rds, dr_identifier)
    if replica is None or not _replicates_from(replica, primary_region, identifier) \
            or replica.get("DBInstanceStatus") != "available":
        # The retired database is the only DR copy of the data until the new replica serves.
        return _poll(False, attempt, retired=retired, waiting_for=f"the new replica {dr_identifier}")
    db = rds_steps.describe_instance(rds, retired)
    if db is None:
        return _poll(True, attempt, retired=retired, final_snapshot=final_snapshot_name(dr_identifier, stamp))
    if db.get("DBInstanceStatus") == "deleting":
        return _poll(False, attempt, retired=retired)
    if db.get("DBInstanceStatus") != "available":
        return _poll(False, attempt, retired=retired, waiting_for=f"{retired} is {db.get('DBInstanceStatus')}")
    try:
        rds.delete_db_instance(DBInstanceIdentifier=retired, SkipFinalSnapshot=False,
                               FinalDBSnapshotIdentifier=final_snapshot_name(dr_identifier, stamp),
                               DeleteAutomatedBackups=False)
    except ClientError as exc:
        raise_mapped(exc, f"delete {retired} with a final snapshot")
    return _poll(False, attempt, retired=retired, final_snapshot=final_snapshot_name(dr_identifier, stamp))


_DELETE = [_DESCRIBE, "rds:DeleteDBInstance", "rds:CreateDBSnapshot"]
_DELETE_KINDS: dict[str, str | tuple[str, ...]] = {
    _DESCRIBE: ("db", "failback_retired_db"), "rds:DeleteDBInstance": "failback_retired_db",
    # The final snapshot is made with the caller's rds:CreateDBSnapshot.
    "rds:CreateDBSnapshot": ("failback_retired_db", "failback_retired_snapshot"),
}


@registry.action("delete_retired", permissions=_DELETE, resource=_DELETE_KINDS)
def delete_retired(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str
                   ) -> dict[str, Any]:
    """Delete the retired DR database with a final snapshot (``<dr>-retired-<stamp>-final``), only once the new
    DR replica of the primary is available. Done when it is gone."""
    return _delete_retired(region, dr_identifier, stamp, primary_region, identifier, 0)


@registry.action("check_retired_deleted", permissions=_DELETE, resource=_DELETE_KINDS)
def check_retired_deleted(region: str, dr_identifier: str, stamp: str, primary_region: str, identifier: str,
                          attempt: int = 0) -> dict[str, Any]:
    """As :func:`delete_retired`, counting the loop's checks."""
    return _delete_retired(region, dr_identifier, stamp, primary_region, identifier, attempt + 1)


def _replicate(state_machine_arn: str, region: str, execution_arn: str, attempt: int, start: bool) -> dict[str, Any]:
    sfn = client("stepfunctions", region)
    machine = _machine(state_machine_arn, "replicate")
    # One replicate run per failback run (a re-run after a failed replicate starts a new one; replicate converges).
    name = f"fb-{execution_arn.rsplit(':', 1)[-1]}"[:80]
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    try:
        found = sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise_mapped(exc, f"describe replicate {name}")
        found = None
    if found is None:
        if not start:
            raise PreconditionFailed(f"replicate {name} was not started")
        with aws_errors(f"start replicate {name}"):
            sfn.start_execution(stateMachineArn=machine, name=name,
                                input=f'{{"source": "pilotlight failback", "failback": "{execution_arn}"}}')
        return _poll(False, attempt, replicate=arn, status="RUNNING")
    status = found["status"]
    if status in ("FAILED", "TIMED_OUT", "ABORTED"):
        raise PreconditionFailed(f"replicate {name} ended {status}: {found.get('error', '')} "
                                 f"{found.get('cause', '')}".strip())
    return _poll(status == "SUCCEEDED", attempt, replicate=arn, status=status)


_REPLICATE = ["states:StartExecution", "states:DescribeExecution"]
_REPLICATE_KINDS = {"states:StartExecution": "failback_replicate_machine",
                    "states:DescribeExecution": "failback_replicate_execution"}


@registry.action("start_replicate", permissions=_REPLICATE, resource=_REPLICATE_KINDS)
def start_replicate(state_machine_arn: str, region: str, execution_arn: str) -> dict[str, Any]:
    """Run the plan's replicate workflow (execution ``fb-<failback execution name>``, found again by the loop's
    checks): the pilot light in the original direction (DR replica, AMIs, saved configurations, S3)."""
    return _replicate(state_machine_arn, region, execution_arn, 0, True)


@registry.action("check_replicate", permissions=_REPLICATE, resource=_REPLICATE_KINDS)
def check_replicate(state_machine_arn: str, region: str, execution_arn: str, attempt: int = 0) -> dict[str, Any]:
    """Done when that replicate run succeeded; one that failed ends the failback with its error."""
    return _replicate(state_machine_arn, region, execution_arn, attempt + 1, False)


def _terminate(region: str, application: str, name: str, attempt: int) -> dict[str, Any]:
    eb = client("elasticbeanstalk", region)
    with aws_errors(f"describe {name} in {region}"):
        live = _environments(eb, application, name)
    if not live:
        return _poll(True, attempt, environment=name, status="Terminated")
    status = live[0].get("Status")
    if status == "Ready":
        with aws_errors(f"terminate {name} in {region}"):
            eb.terminate_environment(EnvironmentName=name, TerminateResources=True)
        status = "Terminating"
    return _poll(False, attempt, environment=name, status=status)


# Beanstalk deletes what the environment built with the caller's permissions (as a drill teardown does).
_TERMINATE = ["elasticbeanstalk:DescribeEnvironments", "elasticbeanstalk:TerminateEnvironment",
              *ENVIRONMENT_TEARDOWN]
_TERMINATE_KINDS: dict[str, str | tuple[str, ...]] = {
    "elasticbeanstalk:DescribeEnvironments": "environment", "elasticbeanstalk:TerminateEnvironment": "environment",
    **ENVIRONMENT_TEARDOWN}


@registry.action("terminate_dr_environment", permissions=_TERMINATE, resource=_TERMINATE_KINDS)
def terminate_dr_environment(region: str, application: str, name: str) -> dict[str, Any]:
    """Terminate the DR environment the failover launched (a pilot light runs none). Done when it is gone."""
    return _terminate(region, application, name, 0)


@registry.action("check_dr_environment_terminated", permissions=_TERMINATE, resource=_TERMINATE_KINDS)
def check_dr_environment_terminated(region: str, application: str, name: str, attempt: int = 0) -> dict[str, Any]:
    """As :func:`terminate_dr_environment`, counting the loop's checks."""
    return _terminate(region, application, name, attempt + 1)
