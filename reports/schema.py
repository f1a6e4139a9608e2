"""The shape of a report, as a pydantic model, and its published JSON Schema (``pilotlight schema --report``).

Field names are snake_case and stable: auditors' tooling reads them. A change that renames or removes a
field bumps ``report_version``; adding an optional field does not. Every field is always present in the
JSON (``null`` when it does not apply), so a consumer never has to guess whether a key was forgotten.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_VERSION = 1

ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    """Who or what started the execution, read from its input."""

    source: str | None = Field(description="The input's `source` (e.g. `pilotlight drill`), `alarm` for a run "
                                           "EventBridge started on a CloudWatch alarm, `schedule` for a scheduled run")
    user: str | None = Field(description="The operator named in the input (`requested_by` or `approved_by`)")
    alarm: str | None = Field(description="The alarm whose state change started the run, if any")
    approved_by: str | None = Field(description="Failovers: who approved it (the answer to the approval request, "
                                                "or the operator who started it from the CLI)")


class DrillOptions(_Model):
    keep: bool
    harden: bool
    force: bool


class Rto(_Model):
    """Recovery time, from the execution history's timestamps (modeled time in the sandbox)."""

    seconds: float | None = Field(description="Execution start to the `Service restored` step (verified service); "
                                              "null when service was not restored")
    objective_seconds: int = Field(description="The plan's objectives.rto_minutes, in seconds")
    met: bool = Field(description="seconds <= objective_seconds (false when not restored)")
    copy_seconds: float | None = Field(description="Drills: time the copies took (`Copy DR replica`, `Clone Aurora "
                                      "secondary`); null for failovers")
    less_copy_seconds: float | None = Field(description="Drills: seconds less copy_seconds (a failover promotes the "
                                                        "DR replica itself); null for failovers")
    less_copy_met: bool | None = Field(description="Drills: less_copy_seconds <= objective_seconds")
    hardened_seconds: float | None = Field(description="Failovers: execution start to its successful end (Multi-AZ "
                                                       "and failover class done); null otherwise")


class Rpo(_Model):
    """Recovery point: the DR replica's ReplicaLag read just before promotion (drills: before the copy)."""

    seconds: float | None = Field(description="The largest lag over the databases; null when none was read")
    objective_seconds: int = Field(description="The plan's objectives.rpo_minutes, in seconds")
    met: bool | None = Field(description="seconds <= objective_seconds; null when unknown")
    per_database: dict[str, float | None] = Field(description="DR replica identifier -> lag seconds (null: no "
                                                              "ReplicaLag datapoint)")
    data_loss_seconds: float | None = Field(default=None, description="The largest heartbeat data-loss window "
                                            "over the promoted databases (see data_loss); null when none was measured")
    data_loss: list[DataLoss] = Field(default_factory=list, description="Failovers: the data-loss window each "
                                      "promoted database shows, from the canary check after promotion")


class DataLoss(_Model):
    """RPO as data: the newest write a promoted database holds, against the moment it was promoted."""

    database: str = Field(description="The promoted DR database")
    newest_write: str | None = Field(description="The newest heartbeat row (replicate's `pilotlight_heartbeat`, or "
                                                 "the plan's `heartbeat_column`) the promoted database holds, ISO "
                                                 "8601; null when it holds none")
    seconds: float | None = Field(description="Promotion less newest_write: the window of writes lost; null when "
                                              "either is unknown")


class Probe(_Model):
    """One HTTP(S) GET of the restored service: of a DR environment's URL, then of the plan's DNS name."""

    url: str
    ok: bool = Field(description="It answered the plan's expected status (and body text)")
    status: int | None = Field(description="The HTTP status answered; null when nothing answered")
    seconds: float | None = Field(description="Time the request took")
    detail: str | None = Field(description="What was answered, or why the probe failed")


class CanaryWrite(_Model):
    """One canary write and read-back in a promoted database (a drill: in its copy), as the verification made it."""

    database: str = Field(description="Where the row was written: the promoted database (a failover's DR "
                                      "database, a failback's primary, a drill's copy) or, for the Data API, the "
                                      "Aurora DR cluster (a drill's clone of it)")
    method: Literal["SQL", "RDS Data API"] = Field(description="`SQL`: a PostgreSQL session from the canary function "
                                                               "(RDS instances); `RDS Data API`: ExecuteStatement on "
                                                               "the new Aurora writer")
    ok: bool = Field(description="The row was written and read back (true as well when skipped)")
    skipped: bool = Field(description="No data check for this database (an engine without a SQL canary, such as "
                                      "MySQL, or an Aurora cluster without the Data API): control-plane checks "
                                      "only, not a failure")
    row: str | None = Field(description="The id of the canary row written to `pilotlight_canary` and read back; "
                                        "null when none was written")
    detail: str | None = Field(description="What the check found, or why it failed or was skipped")


class StepReport(_Model):
    """One step of the timeline (the states sharing a step label, as `pilotlight status` shows them)."""

    name: str
    start_seconds: float = Field(description="Seconds from the execution's start")
    end_seconds: float | None = Field(description="null while running")
    duration_seconds: float | None
    status: Literal["running", "done", "failed", "stopped"]
    on_critical_path: bool
    resources: list[str] = Field(description="Resource ids the step's Task states were called with (DB "
                                             "identifiers, environments, record names, zones, buckets, alarms)")
    error: str | None = Field(description="The execution's error, on the step where it failed")
    cause: str | None


class NotReadyCheck(_Model):
    check: str
    resource: str | None
    status: str
    reason: str | None


class ReadinessAtStart(_Model):
    """Readiness as the execution found it."""

    source: Literal["drill", "readiness_execution"] = Field(
        description="`drill`: what the drill itself read when it started (output.drill.readiness); "
                    "`readiness_execution`: the last SUCCEEDED readiness run that ended before the failover started")
    status: str = Field(description="READY, NOT_READY, UNKNOWN, or NONE when readiness had never run")
    at: str | None
    execution_arn: str | None
    score: float | None
    not_ready: list[NotReadyCheck]
    overridden: bool | None = Field(description="Drills: started with --force despite NOT_READY")


class DeletedItem(_Model):
    kind: str
    id: str
    drill: str | None


class LeftItem(_Model):
    kind: str | None
    id: str
    status: str | None


class Teardown(_Model):
    """The drill teardown EventBridge started when the drill ended (its input is that event)."""

    execution_arn: str
    execution_name: str
    status: ExecutionStatus
    started_at: str
    ended_at: str | None
    duration_seconds: float | None
    kept: bool = Field(description="The drill ran with --keep: nothing was deleted on purpose")
    deleted: list[DeletedItem]
    left: int = Field(description="Drill resources the teardown reported it could not remove yet")
    remaining: list[LeftItem]
    error: str | None
    cause: str | None


class TableCount(_Model):
    table: str
    before: int = Field(description="Rows in the DR database when writes stopped")
    after: int = Field(description="Rows in the promoted primary")


class DatabaseCheck(_Model):
    identifier: str = Field(description="The promoted primary")
    source: str = Field(description="The DR database it was a replica of")
    marker_found: bool = Field(description="The marker row written in the DR database is in the primary")
    tables: list[TableCount]


class BucketCheck(_Model):
    source: str = Field(description="The primary bucket")
    destination: str = Field(description="The DR bucket")
    dr_objects: int | None
    primary_objects: int | None
    sample: int | None = Field(description="Objects compared by checksum")
    mismatches: list[str] = Field(description="Keys of the sample whose copies differ")
    ok: bool


class FailbackSwitch(_Model):
    """Failbacks: the switch back to the primary region and its data check."""

    writes_stopped_at: str | None = Field(description="When the approval was answered (writes stopped), ISO 8601")
    restored_at: str | None = Field(description="Verified service on the primary, ISO 8601")
    downtime_seconds: float | None = Field(description="From writes stopped to verified service on the primary")
    resumed: bool = Field(description="An earlier run of the failback had switched back already")
    data_check_ok: bool
    databases: list[DatabaseCheck]
    buckets: list[BucketCheck]


class Report(_Model):
    """A drill, failover or failback execution, as handed to an auditor."""

    report_version: Literal[1] = REPORT_VERSION
    plan: str
    kind: Literal["drill", "failover", "failback"]
    execution_arn: str
    execution_name: str
    state_machine_arn: str
    drill_id: str | None = Field(description="Drills: the id every copy is named and tagged with")
    trigger: Trigger
    options: DrillOptions | None = Field(description="Drills: --keep, --harden, --force as the drill read them")
    started_at: str = Field(description="ISO 8601, UTC")
    ended_at: str | None
    duration_seconds: float | None
    status: ExecutionStatus
    error: str | None
    cause: str | None
    failed_step: str | None
    rto: Rto
    rpo: Rpo
    steps: list[StepReport]
    probes: list[Probe] = Field(default_factory=list, description="The HTTP(S) probes of the verification round "
                                "that restored service (or, when none did, of its last round)")
    canary_writes: list[CanaryWrite] = Field(default_factory=list, description="The canary writes of the "
                                             "verification round that restored service (or, when none did, of the "
                                             "last round made), one per promoted database or drill copy: SQL in "
                                             "each RDS database, the RDS Data API in each Aurora writer")
    critical_path: list[str] = Field(description="Step names from the start to `Service restored`, in order (rule: "
                                                 "reports.model.CRITICAL_PATH_RULE); empty when not restored")
    critical_path_rule: str
    readiness_at_start: ReadinessAtStart | None
    teardown: Teardown | None = Field(description="Drills: null when no teardown has started (yet); always null for "
                                                  "failovers")
    failback: FailbackSwitch | None = Field(default=None, description="Failbacks: the switch back (downtime, data "
                                                                      "check); null for drills and failovers")


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema every report validates against."""
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pilotlight report"
    return schema
