"""The plan: one YAML file per application, validated into a frozen pydantic model.

Structural rules live on the fields (types, patterns, ranges); rules that relate fields to
each other live in validators that raise :class:`PlanFieldError` so every problem is reported
with the full path of the field it is about (``databases[0].dr_kms_key_id: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from lambdas import typenames
from workflows.plan_accounts import Accounts
from workflows.plan_canary import CanaryNetwork, canary_network_problems
from workflows.plan_dns import (  # noqa: F401 - re-exported
    Dns,
    DnsWeights,
    EndpointCheck,
    GeoLocation,
    dns_mode_problems,
)
from workflows.plan_tiers import (  # noqa: F401 - re-exported: the plan's models live here for their users
    DATABASE_KINDS,
    AnyDatabase,
    AsgNetwork,
    AuroraGlobalDatabase,
    AutoScalingGroup,
    Az2Replica,
    Capacity,
    Database,
    DbNetwork,
    GlobalTable,
    Probes,
    Topology,
    WriteRegionSetting,
)
from workflows.plan_types import (  # noqa: F401 - re-exported
    Arn,
    BucketName,
    EnvName,
    Fqdn,
    HostedZoneId,
    IamRoleName,
    InstanceProfileName,
    KmsKey,
    Name,
    PlanFieldError,
    Region,
    ScheduleExpr,
    SgId,
    SubnetId,
    VpcId,
    _check_region,
    _Model,
    known_regions,
    unique_values,
)

__all__ = ["Plan", "PlanError", "PlanFieldError", "load_plan", "parse_plan", "plan_json_schema", "read_yaml"]


class PlanError(Exception):
    """A plan that cannot be used; ``problems`` holds one ``field.path: message`` line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class Objectives(_Model):
    rto_minutes: int = Field(ge=1, le=1440, description="Recovery time objective")
    rpo_minutes: int = Field(ge=0, le=1440, description="Recovery point objective")


class DrNetwork(_Model):
    """Where the standby Beanstalk environment runs in the DR region."""

    vpc_id: VpcId
    subnets: list[SubnetId] = Field(min_length=1)
    elb_subnets: list[SubnetId] = Field(default_factory=list, description="Defaults to `subnets`")
    security_groups: list[SgId] = Field(min_length=1)
    key_name: str | None = Field(default=None, min_length=1, max_length=255)
    certificate_arns: dict[Arn, Arn] = Field(
        default_factory=dict, description="Primary-region certificate ARN -> DR-region certificate ARN"
    )

    @field_validator("subnets", "elb_subnets", "security_groups")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_values(value)


class Environment(_Model):
    """An Elastic Beanstalk environment and its standby in the DR region."""

    name: EnvName
    application: str = Field(min_length=1, max_length=100)
    dr_environment_name: EnvName
    dr_cname_prefix: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{2,61}[a-z0-9]$",
        description="CNAME prefix of the DR environment; defaults to dr_environment_name (lower-cased)",
    )
    dr_network: DrNetwork
    encrypted_volumes: bool = Field(
        default=False,
        description="Whether the environment's instances have encrypted EBS volumes (so its AMIs are encrypted "
        "and their DR copies need ami.dr_kms_key_id)",
    )
    service_role: IamRoleName = Field(
        default="aws-elasticbeanstalk-service-role",
        description="Beanstalk service role the DR environment is launched with (the failover may pass only it)",
    )
    instance_profile: InstanceProfileName = Field(
        default="aws-elasticbeanstalk-ec2-role",
        description="EC2 instance profile of the DR environment; its role must be able to read the bundle bucket",
    )
    instance_profile_role: IamRoleName | None = Field(
        default=None,
        description="The role in instance_profile (default: the profile's own name, as the Beanstalk console "
        "creates them)",
    )
    secret_properties: list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]] = (
        Field(default_factory=list, description="Environment properties whose values are secrets: copied to the "
              "DR saved configuration, never shown in logs, reports or output (names like *PASSWORD*, *SECRET*, "
              "*TOKEN* and AWS keys are always treated so)"))

    @field_validator("secret_properties")
    @classmethod
    def _unique_secret_properties(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"secret_properties names {', '.join(repeated)} more than once")
        return names

    @property
    def instance_role(self) -> str:
        return self.instance_profile_role or self.instance_profile

    @property
    def cname_prefix(self) -> str:
        return self.dr_cname_prefix or self.dr_environment_name.lower()

    def dr_cname(self, dr_region: str) -> str:
        return f"{self.cname_prefix}.{dr_region}.elasticbeanstalk.com"


class BucketPair(_Model):
    source: BucketName
    destination: BucketName
    replicate_delete_markers: bool = False
    replication_role_arn: Arn | None = None



class Alarm(_Model):
    name: str = Field(min_length=1, max_length=255)
    region: Region | None = Field(default=None, description="Defaults to the primary region")

    _region = field_validator("region")(lambda cls, v: v if v is None else _check_region(v))


class Triggers(_Model):
    alarms: list[Alarm] = Field(default_factory=list)
    failover: Literal["automatic", "approval"] = "approval"
    min_interval_minutes: int = Field(default=60, ge=0, le=10080)


class Schedules(_Model):
    replicate: ScheduleExpr = "rate(1 hour)"
    readiness: ScheduleExpr = "rate(30 minutes)"
    drill: ScheduleExpr | None = Field(
        default=None, description="Run a drill on this schedule (e.g. cron(0 10 ? * TUE#1 *)); none by default")
    drill_sweep: ScheduleExpr = Field(
        default="rate(1 day)", description="Remove leftovers of drills that are not running and older than "
        "drills.keep_hours")


class Drills(_Model):
    keep_hours: int = Field(
        default=24, ge=1, le=720,
        description="The sweep removes what is left of a drill that is not running and started longer ago than this")


class AmiPolicy(_Model):
    retention: int = Field(default=3, ge=1, le=100, description="DR copies kept per environment")
    max_age_hours: int = Field(
        default=24, ge=1, le=8760, description="A primary image younger than this is reused, not re-created"
    )
    dr_kms_key_id: KmsKey | None = Field(
        default=None, description="DR-region KMS key for copies of encrypted images"
    )


class Plan(_Model):
    name: Name = Field(description="Lower-case name; prefixes every deployed resource")
    primary_region: Region
    dr_region: Region
    objectives: Objectives
    environments: list[Environment] = Field(default_factory=list)
    databases: list[AnyDatabase] = Field(default_factory=list)
    tables: list[GlobalTable] = Field(default_factory=list, description="DynamoDB global tables")
    compute: list[AutoScalingGroup] = Field(default_factory=list, description="EC2 Auto Scaling groups")
    topology: Topology = Field(
        default="pilot-light",
        description="pilot-light: the DR region runs (almost) nothing until a failover; warm-standby: it runs a "
        "smaller copy that serves no users; active-active: both regions serve, and a failover evacuates the "
        "failed one and scales the other to the whole load")
    buckets: list[BucketPair] = Field(default_factory=list)
    dns: Dns | None = None
    probes: Probes = Field(default_factory=Probes, description="HTTP(S) probes of the restored service")
    canary_network: CanaryNetwork | None = Field(
        default=None, description="DR VPC subnets and security groups of the canary function (SQL canary write, "
        "heartbeat); default: no VPC, so only databases with a public endpoint are reached")
    triggers: Triggers = Field(default_factory=Triggers)
    schedules: Schedules = Field(default_factory=Schedules)
    drills: Drills = Field(default_factory=Drills)
    ami: AmiPolicy = Field(default_factory=AmiPolicy)
    bundle_bucket: BucketName | None = Field(
        default=None,
        description="DR-region bucket for application source bundles (default pilotlight-<name>-bundles-<dr_region>)",
    )
    accounts: Accounts | None = Field(default=None, description="Cross-account: the role to assume in the "
                                      "account of each side (workflows/plan_accounts.py); none: the functions' own")

    _regions = field_validator("primary_region", "dr_region")(lambda cls, v: _check_region(v))

    @model_validator(mode="after")
    def _semantics(self) -> Plan:
        problems: list[PlanFieldError] = []
        if self.primary_region == self.dr_region:
            problems.append(PlanFieldError("dr_region", f"must differ from primary_region ({self.primary_region})"))
        if not (self.environments or self.compute or self.databases or self.tables or self.buckets):
            problems.append(PlanFieldError("environments", "the plan names no environment, database, table or bucket"))
        problems += self._compute_problems()
        problems += _duplicates("environments", [e.name for e in self.environments], "name")
        problems += _duplicates(
            "environments", [e.dr_environment_name for e in self.environments], "dr_environment_name"
        )
        problems += _duplicates("databases", [d.identifier for d in self.databases], "identifier")
        seen_dr: set[str] = set()
        for i, d in enumerate(self.databases):
            field, value = (("dr_replica_identifier", d.dr_replica_identifier) if isinstance(d, Database)
                            else ("dr_cluster_identifier", d.dr_cluster_identifier))
            if value in seen_dr:
                problems.append(PlanFieldError(f"databases[{i}].{field}", f"'{value}' is used twice"))
            seen_dr.add(value)
        problems += _duplicates("tables", [t.name for t in self.tables], "name")
        problems += self._aurora_problems()
        names = [b.source for b in self.buckets] + [b.destination for b in self.buckets]
        for i, bucket in enumerate(self.buckets):
            if bucket.source == bucket.destination:
                problems.append(PlanFieldError(f"buckets[{i}].destination", "must differ from source"))
            elif names.count(bucket.destination) > 1:
                problems.append(PlanFieldError(f"buckets[{i}].destination", f"'{bucket.destination}' is used twice"))
        for i, env in enumerate(self.environments):
            for dst in env.dr_network.certificate_arns.values():
                if _arn_region(dst) not in ("", self.dr_region):
                    problems.append(
                        PlanFieldError(
                            f"environments[{i}].dr_network.certificate_arns",
                            f"{dst} is not in the DR region {self.dr_region}",
                        )
                    )
        for i, env in enumerate(self.environments):
            if env.instance_profile_role is None and len(env.instance_profile) > 64:
                problems.append(PlanFieldError(
                    f"environments[{i}].instance_profile_role",
                    f"required: instance_profile '{env.instance_profile}' is longer than a role name can be, so its "
                    "role cannot share its name",
                ))
            if env.encrypted_volumes and not self.ami.dr_kms_key_id:
                problems.append(
                    PlanFieldError(
                        "ami.dr_kms_key_id",
                        f"required because environments[{i}] ({env.name}) has encrypted_volumes: its AMIs can "
                        f"only be copied to {self.dr_region} with a KMS key in that region",
                    )
                )
        for i, db in enumerate(self.databases):
            path = f"databases[{i}]"
            if not isinstance(db, Database):
                continue
            if db.storage_encrypted and not db.dr_kms_key_id:
                problems.append(
                    PlanFieldError(
                        f"{path}.dr_kms_key_id",
                        "required when storage_encrypted is true: an encrypted source can only be "
                        f"replicated to {self.dr_region} with a KMS key in that region",
                    )
                )
            key_arn = db.dr_kms_key_id if db.dr_kms_key_id and db.dr_kms_key_id.startswith("arn:") else None
            if key_arn and _arn_region(key_arn) != self.dr_region:
                problems.append(
                    PlanFieldError(f"{path}.dr_kms_key_id", f"the key must be in the DR region {self.dr_region}")
                )
            if db.az2_replica and not db.az2_replica.availability_zone.startswith(self.primary_region):
                problems.append(
                    PlanFieldError(
                        f"{path}.az2_replica.availability_zone",
                        f"must be a zone of the primary region {self.primary_region}",
                    )
                )
        key = self.ami.dr_kms_key_id
        if key and key.startswith("arn:") and _arn_region(key) != self.dr_region:
            problems.append(PlanFieldError("ami.dr_kms_key_id", f"the key must be in the DR region {self.dr_region}"))
        if self.dns is not None:
            problems += dns_mode_problems(self.dns)
            targets = (self.dns.primary_target, self.dns.dr_target)
            if not self.environments and None in targets:
                missing = "dns.dr_target" if self.dns.dr_target is None else "dns.primary_target"
                problems.append(PlanFieldError(
                    missing, "required when the plan has no environment: the host names the record points at in "
                    "the primary and the DR region"))
            elif self.environments and any(targets):
                problems.append(PlanFieldError(
                    "dns.dr_target" if self.dns.dr_target else "dns.primary_target",
                    "only for a plan without environments (the record points at the DR environment's CNAME)"))
            elif self.dns.environment and self.dns.environment not in {e.name for e in self.environments}:
                problems.append(
                    PlanFieldError("dns.environment", f"'{self.dns.environment}' is not one of the plan's environments")
                )
        problems += self._drill_name_problems()
        problems += canary_network_problems(self)
        for i, alarm in enumerate(self.triggers.alarms):
            if alarm.region and alarm.region not in (self.primary_region, self.dr_region, "us-east-1"):
                problems.append(
                    PlanFieldError(
                        f"triggers.alarms[{i}].region",
                        "must be the primary region, the DR region or us-east-1 (Route 53 health-check alarms)",
                    )
                )
        if problems:
            raise _MultiFieldError(problems)
        return self

    def _drill_name_problems(self) -> list[PlanFieldError]:
        """A drill names its copies <name cut to fit>-drill-<id>: two names cut to the same text would
        make two copies of one name."""
        from lambdas import drill

        problems = []
        for collection, field, limit, values in (
            ("databases", "dr_replica_identifier", drill.DB_NAME_LIMIT,
             [d.dr_replica_identifier for d in self.rds_databases]),
            ("environments", "dr_environment_name", drill.ENV_NAME_LIMIT,
             [e.dr_environment_name for e in self.environments]),
            ("environments", "dr_cname_prefix", drill.CNAME_LIMIT, [e.cname_prefix for e in self.environments]),
        ):
            seen: dict[str, int] = {}
            for i, value in enumerate(values):
                prefix = drill.name_prefix(value.lower(), limit)
                if prefix in seen:
                    kept = len(prefix) - len(drill.SUFFIX)
                    problems.append(PlanFieldError(
                        f"{collection}[{i}].{field}",
                        f"'{value}' and {collection}[{seen[prefix]}] share their first {kept} "
                        f"characters, which is all a drill copy's name keeps ({prefix}<id>); make them differ earlier"))
                seen.setdefault(prefix, i)
        return problems

    def _compute_problems(self) -> list[PlanFieldError]:
        problems: list[PlanFieldError] = []
        problems += _duplicates("compute", [g.name for g in self.compute], "name")
        problems += _duplicates("compute", [g.dr_group_name for g in self.compute], "dr_group_name")
        for i, group in enumerate(self.compute):
            path = f"compute[{i}]"
            cap = group.failover_capacity
            if (cap.instances is None) == (cap.percent_of_primary is None):
                problems.append(PlanFieldError(f"{path}.failover_capacity",
                                               "give exactly one of instances and percent_of_primary"))
            if self.topology == "pilot-light" and group.pilot_size:
                problems.append(PlanFieldError(
                    f"{path}.pilot_size", f"a pilot light runs no instance in {self.dr_region} before a failover; "
                    "set topology: warm-standby (or active-active) to keep instances running there"))
            if self.topology != "pilot-light" and not group.pilot_size:
                problems.append(PlanFieldError(
                    f"{path}.pilot_size", f"topology {self.topology} keeps instances running in {self.dr_region}: "
                    "give how many (or set topology: pilot-light)"))
            biggest = max(x for x in (cap.instances, cap.minimum, group.pilot_size) if x is not None)
            if group.max_size is not None and group.max_size < biggest:
                problems.append(PlanFieldError(f"{path}.max_size",
                                               f"{group.max_size} is below the capacity the group must reach "
                                               f"({biggest})"))
            for arn in group.dr_target_group_arns:
                if _arn_region(arn) != self.dr_region:
                    problems.append(PlanFieldError(f"{path}.dr_target_group_arns",
                                                   f"{arn} is not in the DR region {self.dr_region}"))
        return problems

    def _aurora_problems(self) -> list[PlanFieldError]:
        problems: list[PlanFieldError] = []
        globals_seen: dict[str, int] = {}
        names = {e.name for e in self.environments}
        for i, db in enumerate(self.databases):
            if not isinstance(db, AuroraGlobalDatabase):
                continue
            path = f"databases[{i}]"
            if db.global_cluster_identifier in globals_seen:
                problems.append(PlanFieldError(
                    f"{path}.global_cluster_identifier",
                    f"'{db.global_cluster_identifier}' is already "
                    f"databases[{globals_seen[db.global_cluster_identifier]}]"))
            globals_seen.setdefault(db.global_cluster_identifier, i)
            if db.identifier == db.dr_cluster_identifier:
                problems.append(PlanFieldError(f"{path}.dr_cluster_identifier", "must differ from identifier"))
            if db.storage_encrypted and not db.dr_kms_key_id:
                problems.append(PlanFieldError(
                    f"{path}.dr_kms_key_id",
                    f"required when storage_encrypted is true: the DR cluster's storage in {self.dr_region} is "
                    "encrypted with a key of that region"))
            if db.dr_kms_key_id and db.dr_kms_key_id.startswith("arn:") and _arn_region(db.dr_kms_key_id) != \
                    self.dr_region:
                problems.append(PlanFieldError(f"{path}.dr_kms_key_id",
                                               f"the key must be in the DR region {self.dr_region}"))
        for i, table in enumerate(self.tables):
            setting = table.write_region_setting
            if setting is None:
                continue
            path = f"tables[{i}].write_region_setting"
            if (setting.ssm_parameter is None) == (setting.environment_property is None):
                problems.append(PlanFieldError(path, "give exactly one of ssm_parameter and environment_property"))
            elif setting.environment_property is not None and not names:
                problems.append(PlanFieldError(
                    f"{path}.environment_property",
                    "the plan has no environment to set it in; use ssm_parameter"))
        return problems

    # Convenience views used by builders and handlers.
    @property
    def rds_databases(self) -> list[Database]:
        """The RDS instances with a cross-region read replica (``kind: rds``)."""
        return [d for d in self.databases if isinstance(d, Database)]

    @property
    def aurora_databases(self) -> list[AuroraGlobalDatabase]:
        """The Aurora Global Databases (``kind: aurora-global``)."""
        return [d for d in self.databases if isinstance(d, AuroraGlobalDatabase)]

    @property
    def write_region_parameters(self) -> list[str]:
        """SSM parameters (DR region) the failover sets to the DR region."""
        return sorted({t.write_region_setting.ssm_parameter for t in self.tables
                       if t.write_region_setting and t.write_region_setting.ssm_parameter})

    @property
    def write_region_properties(self) -> list[str]:
        """Environment properties replicate sets to the DR region in the DR saved configurations."""
        return sorted({t.write_region_setting.environment_property for t in self.tables
                       if t.write_region_setting and t.write_region_setting.environment_property})

    @property
    def dns_environment(self) -> Environment | None:
        if self.dns is None or not self.environments:
            return None
        wanted = self.dns.environment or self.environments[0].name
        return next(e for e in self.environments if e.name == wanted)

    @property
    def dr_bundle_bucket(self) -> str:
        return self.bundle_bucket or f"pilotlight-{self.name}-bundles-{self.dr_region}"[:63].rstrip("-")

    @property
    def dns_dr_target(self) -> str | None:
        if self.dns is not None and self.dns.dr_target:
            return self.dns.dr_target.rstrip(".")
        env = self.dns_environment
        return env.dr_cname(self.dr_region) if env else None

    @property
    def dns_primary_target(self) -> str | None:
        """The primary environment's own CNAME (``<env>.<primary_region>.elasticbeanstalk.com``)."""
        if self.dns is not None and self.dns.primary_target:
            return self.dns.primary_target.rstrip(".")
        env = self.dns_environment
        return f"{env.name.lower()}.{self.primary_region}.elasticbeanstalk.com" if env else None

    @property
    def health_check_cutover(self) -> bool:
        return self.dns is not None and self.dns.cutover == "health_check"

    @property
    def routing_records(self) -> bool:
        """Whether replicate builds a routing record pair (health_check mode, or records mode with a routing policy
        other than failover, which there means one simple record)."""
        return self.dns is not None and (self.dns.cutover == "health_check" or self.dns.routing != "failover")

    @property
    def health_check_alarm(self) -> str | None:
        """The DR-region alarm whose state drives the primary's Route 53 health check (health_check mode)."""
        if not self.health_check_cutover:
            return None
        assert self.dns is not None
        return self.dns.health_check_alarm or f"pilotlight-{self.name}-primary-health"


class _MultiFieldError(ValueError):
    def __init__(self, problems: list[PlanFieldError]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def _duplicates(collection: str, values: list[str], field: str) -> list[PlanFieldError]:
    seen: set[str] = set()
    out = []
    for i, value in enumerate(values):
        if value in seen:
            out.append(PlanFieldError(f"{collection}[{i}].{field}", f"'{value}' is used twice"))
        seen.add(value)
    return out


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    # A database's kind (the discriminated union's tag) follows its index; the path a user wrote has none.
    loc = tuple(p for i, p in enumerate(loc) if not (p in DATABASE_KINDS and i and isinstance(loc[i - 1], int)))
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# Why a required field matters, keyed by (top-level collection, field), for fields added to existing plans.
_MISSING_HINTS = {
    ("databases", "dr_network"): ": the DR replica's DB subnet group and VPC security groups in the DR region "
    "({subnet_group: ..., security_groups: [sg-...]}); without them RDS creates the replica in the DR region's "
    "default VPC, out of reach of the DR environment",
}


def _hint_key(loc: tuple[Any, ...]) -> tuple[str, str]:
    names = [str(part) for part in loc if not isinstance(part, int) and part not in DATABASE_KINDS]
    return (names[0], names[-1]) if len(names) == 2 else ("", "")


# pydantic's error type -> what the field wants, in the plan author's words (lambdas/typenames.py).
_TYPE_EXPECTED = {
    **{error: typenames.wanted(python_type, typenames.YAML) for error, python_type in (
        ("int_type", int), ("float_type", float), ("bool_type", bool), ("string_type", str), ("list_type", list),
        ("dict_type", dict))},
    "model_type": "a mapping of fields",
    "model_attributes_type": "a mapping of fields",
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "~"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _loc(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _MultiFieldError):
            for p in cause.problems:
                lines.append(f"{loc + '.' if loc else ''}{p.path}: {p.message}")
            continue
        msg = err["msg"]
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the plan schema; check the spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing" + _MISSING_HINTS.get(_hint_key(err["loc"]), "")
        elif err["type"] == "string_pattern_mismatch":
            msg = f"{err['input']!r} does not match the expected format {err['ctx']['pattern']}"
        elif err["type"] in _TYPE_EXPECTED:
            # Strict types: a boolean or a string is never read as a number, nor a number as a string.
            value = err["input"]
            msg = (f"expected {_TYPE_EXPECTED[err['type']]}, got {_shown(value)} "
                   f"({typenames.kind(value, typenames.YAML)})")
        lines.append(f"{loc or '(plan)'}: {msg}")
    return lines


def parse_plan(data: Any, source: str = "<plan>") -> Plan:
    """Validate an already-loaded document; raises :class:`PlanError` listing every problem."""
    if data is None:
        raise PlanError(source, ["(plan): the document is null (~), expected a mapping of plan fields"])
    if not isinstance(data, dict):
        raise PlanError(source, [f"(plan): expected a mapping of fields at the top level, got {_shown(data)} "
                                 f"({typenames.kind(data, typenames.YAML)})"])
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(source, _problems(exc)) from exc
    except RecursionError as exc:
        raise PlanError(source, ["(plan): nested too deeply to be a plan"]) from exc


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names a key twice: YAML would keep the last silently, and a plan is strict."""


class _PlanLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (``<<`` merges may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so, with its place
                break
            if first is not None:
                raise DuplicateKeyError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {_shown(key)} (first given at line {first.start_mark.line + 1}; "
                    "a plan names each field once)", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """The single YAML document in ``text``; a :class:`PlanError` naming the line for anything else."""
    loader = _PlanLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PlanError(source, ["(plan): the file is empty (no YAML document, only blank lines or comments)"])
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.composer.ComposerError) and exc.context:
            problem = f"{exc.context} (a plan file is one document), {problem}"
        raise PlanError(source, [f"(yaml): {where}{problem}"]) from exc
    except RecursionError as exc:
        raise PlanError(source, ["(yaml): nested too deeply to be a plan"]) from exc
    finally:
        loader.dispose()


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; every failure is a :class:`PlanError`, never a traceback."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(source, ["(file): no such file"]) from None
    except IsADirectoryError:
        raise PlanError(source, ["(file): is a directory, not a plan file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(source, [f"(file): cannot be read: {exc}"]) from exc
    return parse_plan(read_yaml(text, source), source)


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pilotlight plan"
    return schema


def resource_prefix(plan: Plan) -> str:
    return f"pilotlight-{plan.name}"

