"""The tiers a plan names beside its Beanstalk environments: RDS databases with a cross-region read
replica, Aurora Global Databases, DynamoDB global tables and EC2 Auto Scaling groups.

Each model checks its own fields; rules relating them to the rest of the plan (regions, topology, other
items) are :class:`workflows.plan.Plan`'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from workflows.plan_types import (
    Arn,
    DbClass,
    DbId,
    DbSubnetGroupName,
    IamRoleName,
    InstanceProfileName,
    KmsKey,
    SgId,
    SubnetId,
    _Model,
    unique_values,
)


class Az2Replica(_Model):
    identifier: DbId
    availability_zone: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")


class DbNetwork(_Model):
    """Where the DR read replica runs in the DR region: its DB subnet group and VPC security groups.

    Without them RDS creates a cross-region replica in the DR region's default VPC (or fails when
    there is none), where the DR environment cannot reach it.
    """

    subnet_group: DbSubnetGroupName = Field(
        description="DB subnet group in the DR region, in a VPC the DR environment reaches (stored lower-case by RDS)"
    )
    security_groups: list[SgId] = Field(
        min_length=1, description="VPC security groups of the replica, in the subnet group's VPC"
    )

    @field_validator("subnet_group")
    @classmethod
    def _not_default(cls, value: str) -> str:
        if value.lower() == "default":
            raise ValueError("'default' is RDS's own subnet group (no VPC of yours); name the DR VPC's DB subnet group")
        return value

    @field_validator("security_groups")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_values(value)


def _credentials_secret(description: str) -> Any:
    """The plan's name for the Secrets Manager secret of a database's master user (optional)."""
    return Field(default=None, min_length=1, max_length=512, pattern=r"^[A-Za-z0-9/_+=.@-]+$",
                 description=description)


class _MasterSecret:
    """A database whose master user's secret the canary reads (its model has ``identifier`` and
    ``credentials_secret``): the plan's name for it, else the default."""

    @property
    def credentials_secret_name(self: Any) -> str:
        return str(self.credentials_secret or f"pilotlight/{self.identifier}/master")


class Database(_MasterSecret, _Model):
    """An RDS instance with its cross-region read replica (the pilot light)."""

    kind: Literal["rds"] = Field(default="rds", description="rds (the default) or aurora-global")
    identifier: DbId
    engine: Literal["postgres", "mysql", "mariadb"] = "postgres"
    dr_replica_identifier: DbId
    dr_network: DbNetwork = Field(description="DB subnet group and security groups of the DR replica")
    replica_instance_class: DbClass
    failover_instance_class: DbClass
    multi_az_on_failover: bool = True
    resize_before_cutover: bool = Field(
        default=False,
        description="Resize to the failover class before DNS is cut over (on the critical path) instead of after",
    )
    az2_replica: Az2Replica | None = None
    storage_encrypted: bool = Field(default=False, description="Whether the source instance is encrypted")
    dr_kms_key_id: KmsKey | None = Field(default=None, description="DR-region KMS key for encrypted copies")
    credentials_secret: str | None = _credentials_secret(
        "Secrets Manager secret (name) with the master user's username and password, present in both "
        "regions (a replica secret in the DR region). The failover's canary write and replicate's heartbeat read it; "
        "an instance whose master password RDS manages (MasterUserSecret) uses that secret instead. "
        "Default pilotlight/<identifier>/master")
    heartbeat_column: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$",
        description="table.column (e.g. orders.updated_at) of an application table whose newest value measures the "
        "data-loss window after promotion; default: replicate writes a row to pilotlight_heartbeat on every run")


class Probes(_Model):
    """How the failover checks the service as users see it: an HTTP(S) GET of each DR environment's URL, then of
    the plan's DNS name once that answers."""

    scheme: Literal["http", "https"] = Field(default="http", description="http (the environment URL's port 80) "
                                             "or https (needs a listener on 443 with a certificate for the names)")
    path: str = Field(default="/", pattern=r"^/[^\s]*$", max_length=1024, description="Health path to request")
    expected_status: int = Field(default=200, ge=100, le=599, description="Status a healthy service answers")
    body_contains: str | None = Field(default=None, min_length=1, max_length=256,
                                      description="Text the healthy answer's body must contain")
    timeout_seconds: int = Field(default=5, ge=1, le=30, description="Per request")


class AuroraGlobalDatabase(_MasterSecret, _Model):
    """An Aurora Global Database: the writer cluster in the primary region, a secondary cluster in the DR region.

    Replicate keeps the DR cluster a member of the global cluster with a writer-capable instance (none
    when ``headless``). The failover moves the writer to it: a managed switchover (RPO 0) when the
    primary region answers, otherwise a failover that allows data loss (or detaching the secondary,
    ``ungraceful: detach``); then it hardens the new writer (``failover_instance_class``,
    ``failover_readers``).
    """

    kind: Literal["aurora-global"]
    global_cluster_identifier: DbId = Field(description="The global cluster (GlobalClusterIdentifier)")
    identifier: DbId = Field(description="The primary (writer) DB cluster in the primary region")
    dr_cluster_identifier: DbId = Field(description="The secondary DB cluster in the DR region")
    engine: Literal["aurora-postgresql", "aurora-mysql"] = "aurora-postgresql"
    dr_network: DbNetwork = Field(description="DB subnet group and security groups of the DR cluster")
    dr_instance_class: DbClass = Field(
        description="Class of the DR cluster's instance: writer-capable (not db.serverless unless the cluster "
        "has Serverless v2 capacity), able to take the write load after a failover")
    headless: bool = Field(
        default=False,
        description="Keep the DR cluster without instances (cheaper); the failover then adds one first, which "
        "adds its creation time (about 10 minutes) to the RTO")
    failover_instance_class: DbClass | None = Field(
        default=None, description="After service is restored, resize the new writer to this class (default: keep)")
    failover_readers: int = Field(
        default=0, ge=0, le=15, description="After service is restored, add readers until the DR cluster has this many")
    write_forwarding: bool = Field(
        default=False, description="The DR cluster forwards writes to the primary (readiness checks it is enabled)")
    ungraceful: Literal["failover", "detach"] = Field(
        default="failover",
        description="Without the primary region: FailoverGlobalCluster with AllowDataLoss (the old primary is kept "
        "as a secondary to resynchronize), or RemoveFromGlobalCluster (detach and promote the DR cluster)")
    storage_encrypted: bool = Field(default=False, description="Whether the global cluster's storage is encrypted")
    dr_kms_key_id: KmsKey | None = Field(default=None, description="DR-region KMS key of the DR cluster's storage")
    credentials_secret: str | None = _credentials_secret(
        "Secrets Manager secret (name) with the master user's username and password, present in the DR "
        "region (a replica secret). After a failover the canary write and read in the new writer go through the RDS "
        "Data API with it (where the DR cluster's HTTP endpoint is enabled); a cluster whose master password RDS "
        "manages (MasterUserSecret) uses that secret instead. Default pilotlight/<identifier>/master")


def _database_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "rds"))
    return str(getattr(value, "kind", "rds"))


AnyDatabase = Annotated[
    Annotated[Database, Tag("rds")] | Annotated[AuroraGlobalDatabase, Tag("aurora-global")],
    Discriminator(_database_kind, custom_error_type="database_kind",
                  custom_error_message="kind must be rds or aurora-global"),
]
DATABASE_KINDS = ("rds", "aurora-global")

TableName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
SsmParameterName = Annotated[str, Field(pattern=r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=1011)]
EnvPropertyName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")]


class WriteRegionSetting(_Model):
    """Where the application reads the region it writes to (plans that pin writes to one region).

    ``ssm_parameter``: a String parameter in the DR region that the failover sets to the DR region.
    ``environment_property``: an environment property of the plan's Beanstalk environments; replicate
    writes the DR region into it in the DR saved configurations, so the DR environment the failover
    launches writes locally.
    """

    ssm_parameter: SsmParameterName | None = None
    environment_property: EnvPropertyName | None = None


class GlobalTable(_Model):
    """A DynamoDB global table (version 2019.11.21) with a replica in the DR region."""

    name: TableName
    write_region_setting: WriteRegionSetting | None = Field(
        default=None, description="For plans that pin writes to one region: what the failover moves to the DR region")
    capacity_lookback_hours: int = Field(
        default=24, ge=1, le=336,
        description="Readiness compares DR capacity with the primary's peak consumed capacity over this window")


AsgName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$", max_length=255)]
LaunchTemplateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9().\/_-]{3,128}$")]


class AsgNetwork(_Model):
    """Where the DR group's instances run in the DR region."""

    subnets: list[SubnetId] = Field(min_length=1, description="DR subnets (one per Availability Zone used)")
    security_groups: list[SgId] = Field(min_length=1, description="DR security groups of the instances")

    @field_validator("subnets", "security_groups")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_values(value)


class Capacity(_Model):
    """How many instances the DR group runs after a failover: a number, or a share of what the primary ran."""

    instances: int | None = Field(default=None, ge=1, le=10000, description="A fixed number of instances")
    percent_of_primary: int | None = Field(
        default=None, ge=1, le=400,
        description="This percentage of the primary group's highest in-service instance count over lookback_hours "
        "(CloudWatch GroupInServiceInstances), rounded up")
    lookback_hours: int = Field(default=24, ge=1, le=336)
    minimum: int = Field(default=1, ge=1, le=10000,
                         description="With percent_of_primary: never fewer than this (the primary may be gone)")


class AutoScalingGroup(_Model):
    """An EC2 Auto Scaling group in the primary region and its counterpart in the DR region.

    Replicate copies the primary launch template's AMI to the DR region and keeps the DR launch template's
    default version on that copy, and keeps the DR group at ``pilot_size`` (0: a pilot light). The failover
    sets the DR group to ``failover_capacity`` and waits for the instances in service and healthy.
    """

    kind: Literal["asg"] = "asg"
    name: AsgName = Field(description="The primary region's group")
    launch_template: LaunchTemplateName = Field(description="The primary group's launch template (its default "
                                                            "version is the one copied)")
    dr_group_name: AsgName = Field(description="The DR region's group (created by replicate when missing)")
    dr_launch_template: LaunchTemplateName = Field(description="The DR region's launch template (created by "
                                                               "replicate when missing)")
    dr_network: AsgNetwork
    instance_profile: InstanceProfileName | None = Field(
        default=None, description="Instance profile of the DR instances (default: the primary template's)")
    instance_profile_role: IamRoleName | None = Field(
        default=None, description="The role in instance_profile (default: the profile's own name, as the EC2 console "
        "creates them); the only role the functions may pass to EC2")
    pilot_size: int = Field(
        default=0, ge=0, le=10000,
        description="Instances the DR group runs before a failover: 0 for a pilot light, more for a warm standby or "
        "an active-active region")
    failover_capacity: Capacity
    dr_target_group_arns: list[Arn] = Field(
        default_factory=list, description="DR load balancer target groups the group registers in; the failover "
        "waits for the capacity to be healthy in each")
    max_size: int | None = Field(default=None, ge=1, le=10000,
                                 description="The DR group's maximum (default: the failover capacity)")

    @field_validator("dr_target_group_arns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_values(value)

    @property
    def instance_role(self) -> str | None:
        """The role the DR instances run with, when the plan says (None: the primary template's profile's)."""
        return self.instance_profile_role or self.instance_profile


Topology = Literal["pilot-light", "warm-standby", "active-active"]
