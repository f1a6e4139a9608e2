"""The primary side of the plan's Aurora Global Databases, as they run before pilotlight is deployed.

For each ``kind: aurora-global`` database: the global cluster, the primary (writer) cluster in the primary region
with one writer instance, and the DR region's network for the DR cluster (its DB subnet group and security
groups, under the plan's names and ids). The DR cluster itself is replicate's to create (lambdas/aurora.py
``ensure_secondary``).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from sandbox import adapters_aurora_data
from sandbox import seed as base
from workflows.plan import Plan

ENGINE_VERSIONS = {"aurora-postgresql": "15.4", "aurora-mysql": "8.0.mysql_aurora.3.05.2"}
PRIMARY_INSTANCE_CLASS = "db.r6g.large"


def seed(plan: Plan) -> dict[str, Any]:
    """Create the global clusters and their primaries (instantly; call it inside the sandbox's seeding)."""
    created: dict[str, Any] = {"global_clusters": [], "clusters": [], "instances": []}
    if not plan.aurora_databases:
        return created
    rds = boto3.client("rds", region_name=plan.primary_region)
    for db in plan.aurora_databases:
        version = ENGINE_VERSIONS[db.engine]
        rds.create_global_cluster(GlobalClusterIdentifier=db.global_cluster_identifier, Engine=db.engine,
                                  EngineVersion=version, StorageEncrypted=db.storage_encrypted)
        extra: dict[str, Any] = {}
        if db.storage_encrypted:
            extra["KmsKeyId"] = base._kms_key(plan.primary_region)
        rds.create_db_cluster(
            DBClusterIdentifier=db.identifier, Engine=db.engine, EngineVersion=version,
            GlobalClusterIdentifier=db.global_cluster_identifier, MasterUsername="app",
            MasterUserPassword=base.DB_PASSWORD, StorageEncrypted=db.storage_encrypted, BackupRetentionPeriod=7,
            **extra)
        rds.create_db_instance(DBInstanceIdentifier=f"{db.identifier}-1", DBClusterIdentifier=db.identifier,
                               Engine=db.engine, DBInstanceClass=PRIMARY_INSTANCE_CLASS)
        # The master credentials, as the application keeps them: a secret replicated to the DR region under the
        # same name (the failover's Data API canary uses it there: lambdas/canary.py verify_aurora).
        boto3.client("secretsmanager", region_name=plan.primary_region).create_secret(
            Name=db.credentials_secret_name, AddReplicaRegions=[{"Region": plan.dr_region}],
            SecretString=json.dumps({"engine": "postgres" if db.engine == "aurora-postgresql" else "mysql",
                                     "username": "app", "password": base.DB_PASSWORD,
                                     "dbClusterIdentifier": db.identifier}))
        if db.engine == "aurora-postgresql":
            # The owner uses the RDS Data API: on the primary, and on the DR cluster once replicate creates it
            # (sandbox/adapters_aurora_data.py; the sandbox answers it for aurora-postgresql only).
            adapters_aurora_data.owner_enables(plan.primary_region, db.identifier)
            adapters_aurora_data.owner_enables(plan.dr_region, db.dr_cluster_identifier)
        created["global_clusters"].append(db.global_cluster_identifier)
        created["clusters"].append(db.identifier)
        created["instances"].append(f"{db.identifier}-1")
    created["dr_network"] = seed_dr_network(plan)
    return created


def seed_dr_network(plan: Plan) -> dict[str, Any]:
    """The DB subnet groups and security groups of the DR clusters (existing ones are kept).

    sandbox/seed.py ``seed_dr_network`` does the same for ``plan.rds_databases`` (in a VPC of its own); once it
    covers every database of the plan this function only finds what it made.
    """
    dr = plan.dr_region
    ec2 = boto3.client("ec2", region_name=dr)
    rds = boto3.client("rds", region_name=dr)
    dbs = plan.aurora_databases
    wanted_groups = sorted({d.dr_network.subnet_group.lower() for d in dbs})
    wanted_sgs = sorted({g for d in dbs for g in d.dr_network.security_groups})
    missing_groups = []
    for group in wanted_groups:
        try:
            rds.describe_db_subnet_groups(DBSubnetGroupName=group)
        except rds.exceptions.DBSubnetGroupNotFoundFault:
            missing_groups.append(group)
    existing = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    missing_sgs = [sg for sg in wanted_sgs if sg not in existing]
    vpc = None
    if missing_groups or missing_sgs:
        vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
            {"Key": "Name", "Value": f"{plan.name}-aurora-dr"}]}])["Vpc"]["VpcId"]
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.31.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
                   for i, z in enumerate(zones)]
        for group in missing_groups:
            rds.create_db_subnet_group(DBSubnetGroupName=group, DBSubnetGroupDescription=f"{plan.name} DR clusters",
                                       SubnetIds=subnets)
        for sg in missing_sgs:
            base._security_group(ec2, vpc, sg, f"{plan.name}-aurora-{sg}")
    return {"vpc": vpc, "subnet_groups": wanted_groups, "security_groups": wanted_sgs}
