"""Create in the sandbox what a plan names, so any valid plan can be rehearsed.

``seed_primary`` builds the primary estate. ``seed_pilot_light`` builds what the replicate
workflow will keep current (the DR replica and the DNS record pointing at the primary).
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import boto3
from moto.core import DEFAULT_ACCOUNT_ID

from workflows.plan import Plan

SOLUTION_STACK = "64bit Amazon Linux 2023 v4.3.0 running Python 3.11"
DB_PASSWORD = "sandbox-only-password"  # never leaves the in-process sandbox


def _engine_defaults(engine: str) -> dict[str, Any]:
    return {"postgres": {"EngineVersion": "16.3", "Port": 5432}, "mysql": {"EngineVersion": "8.0.36", "Port": 3306},
            "mariadb": {"EngineVersion": "10.11.8", "Port": 3306}}[engine]


def seed_primary(plan: Plan, *, encrypted_volumes: bool | None = None) -> dict[str, Any]:
    """The application as it runs in the primary region, plus what the DR region already has (buckets,
    the network of the DR replicas).

    Instance volumes are encrypted when ``encrypted_volumes`` says so (default: when the plan has a
    DR key for images).
    """
    if encrypted_volumes is None:
        encrypted_volumes = any(e.encrypted_volumes for e in plan.environments)
    primary = plan.primary_region
    rds = boto3.client("rds", region_name=primary)
    s3p = boto3.client("s3", region_name=primary)
    s3d = boto3.client("s3", region_name=plan.dr_region)
    cw = boto3.client("cloudwatch", region_name=primary)
    created: dict[str, Any] = {"environments": [], "databases": [], "buckets": [], "alarms": []}

    for db in plan.rds_databases:
        extra = {"KmsKeyId": _kms_key(primary)} if db.storage_encrypted else {}
        rds.create_db_instance(
            DBInstanceIdentifier=db.identifier, Engine=db.engine, DBInstanceClass=db.replica_instance_class,
            MasterUsername="app", MasterUserPassword=DB_PASSWORD, AllocatedStorage=100, MultiAZ=True,
            StorageEncrypted=db.storage_encrypted, BackupRetentionPeriod=7,
            EngineVersion=_engine_defaults(db.engine)["EngineVersion"], **extra,
        )
        created["databases"].append(db.identifier)
        # The master credentials, as the application keeps them: a secret in the primary region, replicated to
        # the DR region under the same name (lambdas/canary.py reads it there).
        endpoint = rds.describe_db_instances(DBInstanceIdentifier=db.identifier)["DBInstances"][0]["Endpoint"]
        boto3.client("secretsmanager", region_name=primary).create_secret(
            Name=db.credentials_secret_name, AddReplicaRegions=[{"Region": plan.dr_region}],
            SecretString=json.dumps({"engine": db.engine, "username": "app", "password": DB_PASSWORD,
                                     "host": endpoint["Address"], "port": endpoint["Port"]}))

    if plan.environments:
        created.update(seed_environments(plan, encrypted_volumes=encrypted_volumes))

    if plan.databases:
        created["dr_network"] = seed_dr_network(plan)
    if plan.aurora_databases:
        from sandbox import seed_aurora

        created["aurora"] = seed_aurora.seed(plan)
    if plan.compute:
        from sandbox import seed_autoscaling

        created["compute"] = seed_autoscaling.seed(plan)
    if plan.tables:
        from sandbox import seed_dynamodb

        created["tables"] = seed_dynamodb.seed(plan)

    for pair in plan.buckets:
        _bucket(s3p, pair.source, primary)
        _bucket(s3d, pair.destination, plan.dr_region)
        created["buckets"].append(pair.source)

    for alarm in plan.triggers.alarms:
        region = alarm.region or primary
        (cw if region == primary else boto3.client("cloudwatch", region_name=region)).put_metric_alarm(
            AlarmName=alarm.name, Namespace="AWS/ElasticBeanstalk", MetricName="ApplicationRequests5xx",
            Statistic="Sum", Period=60, EvaluationPeriods=3, Threshold=50, ComparisonOperator="GreaterThanThreshold",
        )
        created["alarms"].append(alarm.name)

    if plan.dns is not None:
        _hosted_zone(plan)
        assert plan.dns_primary_target is not None  # an environment's CNAME, or dns.primary_target
        boto3.client("route53").change_resource_record_sets(
            HostedZoneId=plan.dns.hosted_zone_id,
            ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": plan.dns.record_name, "Type": plan.dns.record_type, "TTL": plan.dns.ttl,
                "ResourceRecords": [{"Value": plan.dns_primary_target}]}}]},
        )
    return created


def bundle_bucket(plan: Plan) -> str:
    """Where Beanstalk keeps source bundles in the primary region (its per-region default bucket)."""
    return f"elasticbeanstalk-{plan.primary_region}-{DEFAULT_ACCOUNT_ID}"


def seed_environments(plan: Plan, *, encrypted_volumes: bool = False) -> dict[str, Any]:
    """Each Beanstalk environment as it runs: network, a running instance, a deployed application version."""
    primary = plan.primary_region
    eb = boto3.client("elasticbeanstalk", region_name=primary)
    ec2 = boto3.client("ec2", region_name=primary)
    s3 = boto3.client("s3", region_name=primary)
    rds = boto3.client("rds", region_name=primary)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    elb_subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{10 + i}.0/24", AvailabilityZone=z)["Subnet"][
        "SubnetId"] for i, z in enumerate(zones)]
    group = ec2.create_security_group(GroupName=f"{plan.name}-app", Description="app", VpcId=vpc)["GroupId"]
    base_image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bucket = bundle_bucket(plan)
    _bucket(s3, bucket, primary)
    endpoints = [rds.describe_db_instances(DBInstanceIdentifier=db.identifier)["DBInstances"][0]["Endpoint"]
                 for db in plan.rds_databases]
    created: dict[str, Any] = {"environments": [], "instances": [], "versions": []}
    for app in sorted({e.application for e in plan.environments}):
        eb.create_application(ApplicationName=app)
        key = f"{app}/{app}-v1.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
        eb.create_application_version(ApplicationName=app, VersionLabel="v1",
                                      SourceBundle={"S3Bucket": bucket, "S3Key": key})
        created["versions"].append(f"{app}/v1")
    for env in plan.environments:
        ec2.create_key_pair(KeyName=f"{env.name}-key")
        options = [
            ("aws:autoscaling:launchconfiguration", "ImageId", base_image),
            ("aws:autoscaling:launchconfiguration", "EC2KeyName", f"{env.name}-key"),
            ("aws:autoscaling:launchconfiguration", "SecurityGroups", group),
            ("aws:ec2:vpc", "VPCId", vpc),
            ("aws:ec2:vpc", "Subnets", ",".join(subnets)),
            ("aws:ec2:vpc", "ELBSubnets", ",".join(elb_subnets)),
            ("aws:elasticbeanstalk:application:environment", "APP_ENV", "production"),
        ]
        for cert in env.dr_network.certificate_arns:
            options.append(("aws:elbv2:listener:443", "SSLCertificateArns", cert))
        if endpoints:
            options += [("aws:elasticbeanstalk:application:environment", "DB_HOST", endpoints[0]["Address"]),
                        ("aws:elasticbeanstalk:application:environment", "DB_PORT", str(endpoints[0]["Port"]))]
        if plan.buckets:
            options.append(("aws:elasticbeanstalk:application:environment", "ASSETS_BUCKET", plan.buckets[0].source))
        eb.create_environment(
            ApplicationName=env.application, EnvironmentName=env.name, SolutionStackName=SOLUTION_STACK,
            CNAMEPrefix=env.name.lower(), VersionLabel="v1",
            OptionSettings=[{"Namespace": ns, "OptionName": name, "Value": value} for ns, name, value in options],
        )
        instance = ec2.run_instances(
            ImageId=base_image, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnets[0],
            SecurityGroupIds=[group],
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "Encrypted": encrypted_volumes}}],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "elasticbeanstalk:environment-name", "Value": env.name},
                {"Key": "Name", "Value": env.name}]}],
        )["Instances"][0]["InstanceId"]
        created["environments"].append(env.name)
        created["instances"].append(instance)
    return created


def seed_dr_network(plan: Plan) -> dict[str, Any]:
    """What the DR region already has for the replicas: a VPC with subnets in two zones, the plan's DB
    subnet groups in it and its security groups, under the plan's own ids (existing ones are kept)."""
    dr = plan.dr_region
    ec2 = boto3.client("ec2", region_name=dr)
    rds = boto3.client("rds", region_name=dr)
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": "Name", "Value": f"{plan.name}-dr"}]}])["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    groups: list[str] = []
    for group in sorted({d.dr_network.subnet_group.lower() for d in plan.databases}):
        try:
            rds.describe_db_subnet_groups(DBSubnetGroupName=group)
        except rds.exceptions.DBSubnetGroupNotFoundFault:
            rds.create_db_subnet_group(DBSubnetGroupName=group, DBSubnetGroupDescription=f"{plan.name} DR databases",
                                       SubnetIds=subnets)
        groups.append(group)
    existing = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    for sg in sorted({g for d in plan.databases for g in d.dr_network.security_groups} - existing):
        _security_group(ec2, vpc, sg, f"{plan.name}-db-{sg}")
    return {"vpc": vpc, "subnet_groups": groups,
            "security_groups": sorted({g for d in plan.databases for g in d.dr_network.security_groups})}


def _security_group(ec2: Any, vpc: str, group_id: str, name: str) -> None:
    """A security group under the id the plan names (moto mints random ids)."""
    from moto.ec2.models import security_groups

    with mock.patch.object(security_groups, "random_security_group_id", return_value=group_id):
        ec2.create_security_group(GroupName=name, Description="pilotlight sandbox DR database", VpcId=vpc)


def seed_pilot_light(plan: Plan) -> dict[str, Any]:
    """The DR read replicas, as the replicate workflow would leave them."""
    dr = boto3.client("rds", region_name=plan.dr_region)
    src = boto3.client("rds", region_name=plan.primary_region)
    replicas = []
    for db in plan.rds_databases:
        source_arn = src.describe_db_instances(DBInstanceIdentifier=db.identifier)["DBInstances"][0]["DBInstanceArn"]
        extra = {"KmsKeyId": db.dr_kms_key_id} if db.storage_encrypted and db.dr_kms_key_id else {}
        dr.create_db_instance_read_replica(
            DBInstanceIdentifier=db.dr_replica_identifier, SourceDBInstanceIdentifier=source_arn,
            DBInstanceClass=db.replica_instance_class, SourceRegion=plan.primary_region,
            DBSubnetGroupName=db.dr_network.subnet_group.lower(),
            VpcSecurityGroupIds=list(db.dr_network.security_groups), **extra,
        )
        replicas.append(db.dr_replica_identifier)
    return {"replicas": replicas}


def _bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)


def _kms_key(region: str) -> str:
    return boto3.client("kms", region_name=region).create_key(Description="pilotlight sandbox source key")[
        "KeyMetadata"]["Arn"]


def _hosted_zone(plan: Plan) -> None:
    """Create the plan's hosted zone under the plan's own zone id."""
    from moto.route53.models import HostedZoneIdentifier
    from moto.utilities.id_generator import moto_id_manager

    assert plan.dns is not None
    zone_name = plan.dns.record_name.split(".", 1)[1]
    ident = HostedZoneIdentifier(DEFAULT_ACCOUNT_ID, zone_name + ".", None)
    moto_id_manager.set_custom_id(ident, plan.dns.hosted_zone_id)
    try:
        boto3.client("route53").create_hosted_zone(Name=zone_name + ".", CallerReference=f"pilotlight-{plan.name}")
    finally:
        moto_id_manager.unset_custom_id(ident)
