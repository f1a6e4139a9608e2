"""The replicate workflow: keep the pilot light current (runs on a schedule, talks to both regions).

One Parallel state runs the independent branches (AMIs, application versions, RDS replicas (after a
heartbeat row in each primary database), S3 replication, and the routing records with their health checks
(and the health_check cutover's alarm)); each is a Map over the plan's items (the DNS branch has one item and
no Map) and catches its own failure, so one broken branch is reported without hiding what the others did.
The Beanstalk saved configurations come after the Parallel state because they name the newest DR AMI copy
and the DR replica's endpoint.
The output is a summary of created / updated / unchanged / deleted / drift / failed records.
"""

from __future__ import annotations

from typing import Any

from workflows import asl, failures
from workflows.plan import DnsWeights, Plan

# Poll intervals and attempt limits, well above the p95 durations of the latency table
# (CreateImage ~20 min, cross-region CopyImage 50 min, replica creation 45 min, S3 RTC 15 min).
IMAGE_POLL, IMAGE_MAX = 60, 60  # 1 h
COPY_POLL, COPY_MAX = 60, 120  # 2 h
REPLICA_POLL, REPLICA_MAX = 60, 90  # 90 min
TABLE_REPLICA_MAX = 180  # a new replica is filled with the table's items: hours for a large table (3 h)
CANARY_POLL, CANARY_MAX = 10, 90  # 15 min
MACHINE_TIMEOUT = 6 * 3600


def plan_document(plan: Plan) -> dict[str, Any]:
    """What of the plan the workflow needs, baked into the definition."""
    doc = _plan_document(plan)
    for tier in ("aurora", "tables", "compute"):  # only what the plan has: other plans' definitions stay as they were
        if not doc[tier]:
            del doc[tier]
    if plan.routing_records:
        doc["dns_routing"] = dns_routing_document(plan)
    return doc


def dns_routing_document(plan: Plan) -> dict[str, Any]:
    """The routing records (and their health checks) replicate builds ahead of time for the plan's record."""
    assert plan.dns is not None
    loc = plan.dns.primary_location
    check = plan.dns.endpoint_check
    endpoint = {"endpoint": {**check.model_dump(), "port": check.effective_port}} if check else {}
    return {
        "zone_id": plan.dns.hosted_zone_id,
        "record_name": plan.dns.record_name,
        "record_type": plan.dns.record_type,
        "ttl": plan.dns.ttl,
        "routing": plan.dns.routing,
        "primary_location": loc.model_dump() if loc else None,
        **({"weights": (plan.dns.weights or DnsWeights()).model_dump()} if plan.dns.routing == "weighted" else {}),
        "primary_target": plan.dns_primary_target,
        "dr_target": plan.dns_dr_target,
        "alarm": plan.health_check_alarm,
        **endpoint,
    }


def _plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "primary_region": plan.primary_region,
        "dr_region": plan.dr_region,
        "rpo_minutes": plan.objectives.rpo_minutes,
        "bundle_bucket": plan.dr_bundle_bucket,
        "ami": {
            "retention": plan.ami.retention,
            "max_age_hours": plan.ami.max_age_hours,
            "dr_kms_key_id": plan.ami.dr_kms_key_id,
        },
        "environments": [
            {
                "name": env.name,
                "application": env.application,
                "network": {
                    "vpc_id": env.dr_network.vpc_id,
                    "subnets": list(env.dr_network.subnets),
                    "elb_subnets": list(env.dr_network.elb_subnets or env.dr_network.subnets),
                    "security_groups": list(env.dr_network.security_groups),
                    "key_name": env.dr_network.key_name,
                    "certificate_arns": dict(env.dr_network.certificate_arns),
                },
            }
            for env in plan.environments
        ],
        "databases": [
            {
                "identifier": db.identifier,
                "dr_replica_identifier": db.dr_replica_identifier,
                "dr_network": {
                    "subnet_group": db.dr_network.subnet_group,
                    "security_groups": list(db.dr_network.security_groups),
                },
                "replica_instance_class": db.replica_instance_class,
                "dr_kms_key_id": db.dr_kms_key_id,
                "has_az2": db.az2_replica is not None,
                "heartbeat": {
                    "write": db.heartbeat_column is None and db.engine == "postgres",
                    "identifier": db.identifier,
                    "engine": db.engine,
                    "credentials_secret": db.credentials_secret_name,
                    "heartbeat_column": db.heartbeat_column,
                },
                "az2": (
                    {"identifier": db.az2_replica.identifier, "availability_zone": db.az2_replica.availability_zone}
                    if db.az2_replica
                    else None
                ),
            }
            for db in plan.rds_databases
        ],
        "aurora": [
            {
                "global_cluster": db.global_cluster_identifier,
                "identifier": db.identifier,
                "dr_cluster": db.dr_cluster_identifier,
                "engine": db.engine,
                "instance_class": db.dr_instance_class,
                "headless": db.headless,
                "write_forwarding": db.write_forwarding,
                "subnet_group": db.dr_network.subnet_group,
                "security_groups": list(db.dr_network.security_groups),
                "kms_key_id": db.dr_kms_key_id,
            }
            for db in plan.aurora_databases
        ],
        "tables": [t.name for t in plan.tables],
        "compute": [
            {
                "name": g.name,
                "launch_template": g.launch_template,
                "dr_group_name": g.dr_group_name,
                "dr_launch_template": g.dr_launch_template,
                "subnets": list(g.dr_network.subnets),
                "security_groups": list(g.dr_network.security_groups),
                "instance_profile": g.instance_profile,
                "pilot_size": g.pilot_size,
                "max_size": g.max_size,
                "target_group_arns": list(g.dr_target_group_arns),
            }
            for g in plan.compute
        ],
        "buckets": [
            {
                "source": b.source,
                "destination": b.destination,
                "replicate_delete_markers": b.replicate_delete_markers,
                "role_arn": b.replication_role_arn,
            }
            for b in plan.buckets
        ],
    }


def _keep(source: str, target: str, next_state: str) -> asl.State:
    """Copy a poll result somewhere the next poll loop will not overwrite."""
    return {"Type": "Pass", "InputPath": source, "ResultPath": target, "Next": next_state}


def _map(comment: str, items: str, item_name: str, start: str, states: dict[str, asl.State]) -> asl.State:
    return {
        "Type": "Map",
        "Comment": comment,
        "ItemsPath": items,
        "ItemSelector": {item_name + ".$": "$$.Map.Item.Value", "plan.$": "$.plan"},
        "MaxConcurrency": 0,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": states},
        "End": True,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{comment}Failed"}],
    }


def _failed(comment: str) -> asl.State:
    return {
        "Type": "Pass",
        "Comment": comment,
        "Parameters": {
            "record": {"resource": comment, "status": "failed", "error.$": "$.error.Error", "cause.$": "$.error.Cause"}
        },
        "End": True,
    }


def _branch(comment: str, items: str, item_name: str, start: str, states: dict[str, asl.State]) -> dict[str, Any]:
    return {
        "StartAt": comment,
        "States": {comment: _map(comment, items, item_name, start, states), f"{comment}Failed": _failed(comment)},
    }


def _image_states() -> dict[str, asl.State]:
    env = {"plan.$": "$.plan.name", "environment.$": "$.env.name"}
    states: dict[str, asl.State] = {
        "FindInstance": asl.task(
            "Find a running instance", "ami", "find_instance",
            {"region.$": "$.plan.primary_region", "environment.$": "$.env.name"},
            result_path="$.instance", next_state="CreateImage",
        )
    }
    states.update(asl.poll_loop(
        "CreateImage", "Create primary AMI", service="ami",
        act=("create_image", {**env, "region.$": "$.plan.primary_region", "instance_id.$": "$.instance.instance_id",
                              "max_age_hours.$": "$.plan.ami.max_age_hours"}),
        check=("check_image", {"region.$": "$.plan.primary_region", "image_id.$": "$.poll.image_id",
                               "record.$": "$.poll.record"}),
        interval_seconds=IMAGE_POLL, max_attempts=IMAGE_MAX, next_state="KeepSourceImage", what="primary AMI",
    ))
    states["KeepSourceImage"] = _keep("$.poll", "$.source_image", "CopyImage")
    states.update(asl.poll_loop(
        "CopyImage", "Copy AMI to the DR region", service="ami",
        act=("copy_image", {**env, "source_region.$": "$.plan.primary_region", "region.$": "$.plan.dr_region",
                            "image_id.$": "$.source_image.image_id", "kms_key_id.$": "$.plan.ami.dr_kms_key_id"}),
        check=("check_image", {"region.$": "$.plan.dr_region", "image_id.$": "$.poll.image_id",
                               "record.$": "$.poll.record"}),
        interval_seconds=COPY_POLL, max_attempts=COPY_MAX, next_state="KeepDrImage", what="AMI copy",
    ))
    states["KeepDrImage"] = _keep("$.poll", "$.dr_image", "PruneImages")
    states["PruneImages"] = asl.task(
        "Prune DR AMI copies", "ami", "prune_images",
        {**env, "region.$": "$.plan.dr_region", "application.$": "$.env.application",
         "retention.$": "$.plan.ami.retention", "source_region.$": "$.plan.primary_region"},
        result_path="$.prune", next_state="ImageDone",
    )
    states["ImageDone"] = {
        "Type": "Pass",
        "Parameters": {"environment.$": "$.env.name", "source_image.$": "$.source_image",
                       "dr_image.$": "$.dr_image", "prune.$": "$.prune"},
        "End": True,
    }
    return states


def _version_states() -> dict[str, asl.State]:
    return {
        "CopyAppVersion": asl.task(
            "Copy application version", "beanstalk", "copy_app_version",
            {"primary_region.$": "$.plan.primary_region", "dr_region.$": "$.plan.dr_region",
             "application.$": "$.env.application", "environment.$": "$.env.name",
             "bucket.$": "$.plan.bundle_bucket"},
            result_path="$", next_state=None,
        )
    }


def _replica_loop(name: str, step: str, region: str, target: str, extra: dict[str, Any], next_state: str) -> dict:
    ident = f"$.db.{target}"
    return asl.poll_loop(
        name, step, service="rds",
        act=("ensure_replica", {"source_region.$": "$.plan.primary_region", "region.$": region,
                                "source.$": "$.db.identifier", "identifier.$": ident, **extra}),
        check=("check_available", {"region.$": region, "identifier.$": ident, "record.$": "$.poll.record"}),
        interval_seconds=REPLICA_POLL, max_attempts=REPLICA_MAX, next_state=next_state, what=step,
    )


def _heartbeat_states(next_state: str) -> dict[str, asl.State]:
    """A heartbeat row in the primary database (the failover measures the data-loss window from the newest one
    the promoted replica holds), unless the plan names an application column for that. Its failure is a failed
    record of the run; the replicas are still looked after."""
    hb = "$.db.heartbeat"
    task = asl.task(
        "Heartbeat row in the primary database", "canary", "heartbeat",
        {"region.$": "$.plan.primary_region", "database.$": hb}, result_path="$.heartbeat", next_state=next_state)
    task["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "HeartbeatFailed"}]
    return {
        "HeartbeatWanted?": {
            "Type": "Choice",
            "Comment": "Heartbeat row in the primary database",
            "Choices": [{"Variable": f"{hb}.write", "BooleanEquals": True, "Next": "Heartbeat"}],
            "Default": "NoHeartbeat",
        },
        "NoHeartbeat": {"Type": "Pass", "Result": {}, "ResultPath": "$.heartbeat", "Next": next_state},
        "Heartbeat": task,
        "HeartbeatFailed": {
            "Type": "Pass",
            "Comment": "Heartbeat row in the primary database",
            "Parameters": {"record": {
                "resource.$": "States.Format('heartbeat {} ({})', $.db.identifier, $.plan.primary_region)",
                "status": "failed", "error.$": "$.error.Error", "cause.$": "$.error.Cause"}},
            "ResultPath": "$.heartbeat",
            "Next": next_state,
        },
    }


def _database_states() -> dict[str, asl.State]:
    """A heartbeat row first; then the cross-region replica and the in-region AZ2 replica are created side by
    side (both ~20 min)."""
    dr: dict[str, asl.State] = {}
    dr.update(_replica_loop(
        "EnsureDrReplica", "Cross-region read replica", "$.plan.dr_region", "dr_replica_identifier",
        {"instance_class.$": "$.db.replica_instance_class", "kms_key_id.$": "$.db.dr_kms_key_id",
         "subnet_group.$": "$.db.dr_network.subnet_group", "security_groups.$": "$.db.dr_network.security_groups"},
        "KeepDrReplica",
    ))
    dr["KeepDrReplica"] = _keep("$.poll", "$.dr_replica", "ReplicaLag")
    dr["ReplicaLag"] = asl.task(
        "Replica lag against RPO", "rds", "replica_lag",
        {"region.$": "$.plan.dr_region", "identifier.$": "$.db.dr_replica_identifier",
         "rpo_minutes.$": "$.plan.rpo_minutes"},
        result_path="$.lag", next_state="DrReplicaDone",
    )
    dr["DrReplicaDone"] = {
        "Type": "Pass", "Parameters": {"replica.$": "$.dr_replica", "lag.$": "$.lag"}, "End": True,
    }
    az2: dict[str, asl.State] = {
        "Az2Wanted?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.db.has_az2", "BooleanEquals": True, "Next": "EnsureAz2Replica"}],
            "Default": "NoAz2Replica",
        },
        "NoAz2Replica": {"Type": "Pass", "Result": {}, "End": True},
    }
    az2.update(_replica_loop(
        "EnsureAz2Replica", "In-region replica in a second AZ", "$.plan.primary_region", "az2.identifier",
        {"instance_class.$": "$.db.replica_instance_class", "availability_zone.$": "$.db.az2.availability_zone"},
        "Az2ReplicaDone",
    ))
    az2["Az2ReplicaDone"] = {"Type": "Pass", "Parameters": {"replica.$": "$.poll"}, "End": True}
    return {
        **_heartbeat_states("Replicas"),
        "Replicas": {
            "Type": "Parallel",
            "Comment": "Read replicas",
            "Branches": [{"StartAt": "EnsureDrReplica", "States": dr}, {"StartAt": "Az2Wanted?", "States": az2}],
            "ResultPath": "$.replicas",
            "Next": "DatabaseDone",
        },
        "DatabaseDone": {
            "Type": "Pass",
            "Parameters": {"source.$": "$.db.identifier", "heartbeat.$": "$.heartbeat", "dr.$": "$.replicas[0]",
                           "az2.$": "$.replicas[1]"},
            "End": True,
        },
    }


def _aurora_states() -> dict[str, asl.State]:
    """The DR cluster a connected member of the global cluster, with its instance; then its lag."""
    a = "$.aurora"
    states = asl.poll_loop(
        "EnsureSecondary", "Aurora secondary cluster", service="aurora",
        act=("ensure_secondary", {
            "primary_region.$": "$.plan.primary_region", "region.$": "$.plan.dr_region",
            "global_cluster.$": f"{a}.global_cluster", "identifier.$": f"{a}.identifier",
            "dr_cluster.$": f"{a}.dr_cluster", "engine.$": f"{a}.engine", "instance_class.$": f"{a}.instance_class",
            "headless.$": f"{a}.headless", "write_forwarding.$": f"{a}.write_forwarding",
            "subnet_group.$": f"{a}.subnet_group", "security_groups.$": f"{a}.security_groups",
            "kms_key_id.$": f"{a}.kms_key_id"}),
        check=("check_secondary", {"region.$": "$.plan.dr_region", "global_cluster.$": f"{a}.global_cluster",
                                   "dr_cluster.$": f"{a}.dr_cluster", "headless.$": f"{a}.headless",
                                   "record.$": "$.poll.record"}),
        interval_seconds=REPLICA_POLL, max_attempts=REPLICA_MAX, next_state="KeepSecondary",
        what="Aurora secondary cluster")
    states["KeepSecondary"] = _keep("$.poll", "$.secondary", "GlobalLag")
    states["GlobalLag"] = asl.task(
        "Aurora global lag against RPO", "aurora", "global_lag",
        {"region.$": "$.plan.dr_region", "dr_cluster.$": f"{a}.dr_cluster", "rpo_minutes.$": "$.plan.rpo_minutes"},
        result_path="$.lag", next_state="AuroraDone")
    states["AuroraDone"] = {"Type": "Pass", "Parameters": {"secondary.$": "$.secondary", "lag.$": "$.lag"},
                            "End": True}
    return states


def _compute_states() -> dict[str, asl.State]:
    """The primary template's AMI copied to the DR region, the DR template on the copy, the DR group at its
    pilot size (never scaled down)."""
    g = "$.group"
    states: dict[str, asl.State] = {
        "TemplateImage": asl.task(
            "Primary launch template", "autoscaling", "template_image",
            {"region.$": "$.plan.primary_region", "launch_template.$": f"{g}.launch_template"},
            result_path="$.template", next_state="CopyGroupImage"),
    }
    states.update(asl.poll_loop(
        "CopyGroupImage", "Copy AMI to the DR region", service="ami",
        act=("copy_image", {"plan.$": "$.plan.name", "environment.$": f"{g}.name",
                            "source_region.$": "$.plan.primary_region", "region.$": "$.plan.dr_region",
                            "image_id.$": "$.template.image_id", "kms_key_id.$": "$.plan.ami.dr_kms_key_id"}),
        check=("check_image", {"region.$": "$.plan.dr_region", "image_id.$": "$.poll.image_id",
                               "record.$": "$.poll.record"}),
        interval_seconds=COPY_POLL, max_attempts=COPY_MAX, next_state="KeepGroupImage", what="AMI copy"))
    states["KeepGroupImage"] = _keep("$.poll", "$.dr_image", "EnsureLaunchTemplate")
    states["EnsureLaunchTemplate"] = asl.task(
        "DR launch template", "autoscaling", "ensure_launch_template",
        {"primary_region.$": "$.plan.primary_region", "region.$": "$.plan.dr_region", "plan.$": "$.plan.name",
         "launch_template.$": f"{g}.launch_template", "dr_launch_template.$": f"{g}.dr_launch_template",
         "image_id.$": "$.dr_image.image_id", "security_groups.$": f"{g}.security_groups",
         "instance_profile.$": f"{g}.instance_profile"},
        result_path="$.template_record", next_state="EnsureGroup")
    states["EnsureGroup"] = asl.task(
        "DR Auto Scaling group", "autoscaling", "ensure_group",
        {"region.$": "$.plan.dr_region", "plan.$": "$.plan.name", "dr_group_name.$": f"{g}.dr_group_name",
         "dr_launch_template.$": f"{g}.dr_launch_template", "subnets.$": f"{g}.subnets",
         "pilot_size.$": f"{g}.pilot_size", "max_size.$": f"{g}.max_size",
         "target_group_arns.$": f"{g}.target_group_arns"},
        result_path="$.group_record", next_state="GroupDone")
    states["GroupDone"] = {"Type": "Pass", "Parameters": {
        "group.$": f"{g}.dr_group_name", "dr_image.$": "$.dr_image", "template.$": "$.template_record",
        "group_record.$": "$.group_record"}, "End": True}
    return states


def _table_states() -> dict[str, asl.State]:
    """The table's replica in the DR region ACTIVE; then the replication latency."""
    params = {"primary_region.$": "$.plan.primary_region", "region.$": "$.plan.dr_region", "table.$": "$.table"}
    states = asl.poll_loop(
        "EnsureTableReplica", "DynamoDB replica", service="dynamodb",
        act=("ensure_replica", params), check=("check_replica", {**params, "record.$": "$.poll.record"}),
        interval_seconds=REPLICA_POLL, max_attempts=TABLE_REPLICA_MAX, next_state="KeepTableReplica",
        what="DynamoDB replica")
    states["KeepTableReplica"] = _keep("$.poll", "$.replica", "TableLatency")
    states["TableLatency"] = asl.task(
        "Replication latency against RPO", "dynamodb", "replication_latency",
        {**params, "rpo_minutes.$": "$.plan.rpo_minutes"}, result_path="$.lag", next_state="TableDone")
    states["TableDone"] = {"Type": "Pass", "Parameters": {"replica.$": "$.replica", "lag.$": "$.lag"}, "End": True}
    return states


def _bucket_states() -> dict[str, asl.State]:
    pair = {"source.$": "$.bucket.source", "destination.$": "$.bucket.destination"}
    states: dict[str, asl.State] = {
        "EnsureReplication": asl.task(
            "S3 replication rule", "s3", "ensure_replication",
            {**pair, "plan.$": "$.plan.name", "source_region.$": "$.plan.primary_region",
             "dr_region.$": "$.plan.dr_region", "replicate_delete_markers.$": "$.bucket.replicate_delete_markers",
             "role_arn.$": "$.bucket.role_arn"},
            result_path="$.replication", next_state="VerifyCanary",
        )
    }
    # The canary loop fails like every bounded wait; the Parallel around it turns that failure into
    # a record for this bucket, so one late bucket neither stops the workflow nor hides the others.
    canary = asl.poll_loop(
        "Canary", "Replication canary", service="s3",
        act=("put_canary", {"region.$": "$.plan.primary_region", "source.$": "$.bucket.source"}),
        check=("check_canary", {**pair, "source_region.$": "$.plan.primary_region",
                                "dr_region.$": "$.plan.dr_region", "key.$": "$.poll.key"}),
        interval_seconds=CANARY_POLL, max_attempts=CANARY_MAX, next_state="CanaryDone", what="replication canary",
    )
    canary["CanaryDone"] = {"Type": "Pass", "InputPath": "$.poll", "End": True}
    states["VerifyCanary"] = {
        "Type": "Parallel",
        "Comment": "Replication canary",
        "Branches": [{"StartAt": "Canary", "States": canary}],
        "ResultSelector": {"poll.$": "$[0]"},
        "ResultPath": "$.canary",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CanaryLate"}],
        "Next": "BucketDone",
    }
    states["CanaryLate"] = {
        "Type": "Pass",
        "Parameters": {"poll": {"record": {
            "resource.$": "States.Format('canary {} -> {}', $.bucket.source, $.bucket.destination)",
            "status": "failed", "error.$": "$.error.Error", "cause.$": "$.error.Cause"}}},
        "ResultPath": "$.canary",
        "Next": "BucketDone",
    }
    states["BucketDone"] = {
        "Type": "Pass",
        "Parameters": {"source.$": "$.bucket.source", "replication.$": "$.replication", "canary.$": "$.canary.poll"},
        "End": True,
    }
    return states


def _dns_routing_branch(plan: Plan) -> dict[str, Any]:
    """The plan's routing records and the health checks they carry, one task each, in order:

    health_check mode: the DR-region alarm -> the health check on it -> (with an endpoint check: each region's
    endpoint check and the primary's calculated check) -> the records; records mode: (the endpoint checks ->)
    the records. A single item (the plan's record), so no Map: each task catches into the branch's failed record.
    """
    assert plan.dns is not None
    dns = "$.plan.dns_routing"
    states: dict[str, asl.State] = {}
    order: list[str] = []
    primary_check: str | None = None
    if plan.health_check_cutover:
        states["EnsureHealthAlarm"] = asl.task(
            "DR-region alarm behind the primary's health check", "dns", "ensure_health_alarm",
            {"region.$": "$.plan.dr_region", "plan.$": "$.plan.name", "alarm.$": f"{dns}.alarm"},
            result_path="$.alarm", next_state="EnsureHealthCheck",
        )
        states["EnsureHealthCheck"] = asl.task(
            "Route 53 health check on the alarm", "dns", "ensure_health_check",
            {"plan.$": "$.plan.name", "alarm_region.$": "$.plan.dr_region", "alarm.$": f"{dns}.alarm"},
            result_path="$.health_check", next_state=None,
        )
        order += ["EnsureHealthAlarm", "EnsureHealthCheck"]
        primary_check = "$.health_check.health_check_id"
    dr_check: str | None = None
    if plan.dns.endpoint_check is not None:
        params = {"plan.$": "$.plan.name", "primary_target.$": f"{dns}.primary_target",
                  "dr_target.$": f"{dns}.dr_target", "endpoint.$": f"{dns}.endpoint"}
        if primary_check:
            params["alarm_check_id.$"] = primary_check
        states["EnsureEndpointChecks"] = asl.task(
            "Route 53 health check of each region's endpoint", "dns", "ensure_endpoint_checks", params,
            result_path="$.endpoints", next_state=None,
        )
        order.append("EnsureEndpointChecks")
        primary_check, dr_check = "$.endpoints.primary_record", "$.endpoints.dr"
    record_params = {
        "plan.$": "$.plan.name", "zone_id.$": f"{dns}.zone_id", "name.$": f"{dns}.record_name",
        "record_type.$": f"{dns}.record_type", "ttl.$": f"{dns}.ttl", "routing.$": f"{dns}.routing",
        "primary_target.$": f"{dns}.primary_target", "dr_target.$": f"{dns}.dr_target",
        "primary_region.$": "$.plan.primary_region", "dr_region.$": "$.plan.dr_region",
        "primary_location.$": f"{dns}.primary_location",
        **({"health_check_id.$": primary_check} if primary_check else {"health_check_id": None}),
        **({"dr_health_check_id.$": dr_check} if dr_check else {}),
        **({"weights.$": f"{dns}.weights"} if plan.dns.routing == "weighted" else {}),
    }
    states["EnsureRoutingRecords"] = asl.task(
        "Routing records with their health checks", "dns", "ensure_routing_records", record_params,
        result_path="$.routing", next_state="DnsRoutingDone",
    )
    order.append("EnsureRoutingRecords")
    for name, following in zip(order, order[1:], strict=False):
        states[name]["Next"] = following
        states[name].pop("End", None)
    done = {"alarm.$": "$.alarm", "health_check.$": "$.health_check"} if plan.health_check_cutover else {}
    if plan.dns.endpoint_check is not None:
        done["endpoints.$"] = "$.endpoints"
    done["routing.$"] = "$.routing"
    states["DnsRoutingDone"] = {"Type": "Pass", "Parameters": done, "End": True}
    states["DnsRoutingFailed"] = _failed("DnsRouting")
    for name in order:
        states[name]["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "DnsRoutingFailed"}]
    return {"StartAt": order[0], "States": states}


def _configuration_states(plan: Plan) -> dict[str, asl.State]:
    params = {"plan.$": "$.plan.name", "primary_region.$": "$.plan.primary_region", "dr_region.$": "$.plan.dr_region",
              "application.$": "$.env.application", "environment.$": "$.env.name", "network.$": "$.env.network",
              "databases.$": "$.plan.databases", "buckets.$": "$.plan.buckets"}
    if plan.write_region_properties:
        # Tables that pin writes to one region: the DR environment writes in the DR region from its launch.
        params["properties"] = {name: plan.dr_region for name in plan.write_region_properties}
    return {
        "SaveConfiguration": asl.task(
            "Beanstalk DR saved configuration", "beanstalk", "save_configuration", params,
            result_path="$", next_state=None,
        )
    }


def build(plan: Plan) -> dict[str, Any]:
    branches = []
    if plan.environments:
        branches.append(_branch("Images", "$.plan.environments", "env", "FindInstance", _image_states()))
        branches.append(_branch("AppVersions", "$.plan.environments", "env", "CopyAppVersion", _version_states()))
    if plan.rds_databases:
        branches.append(_branch("Databases", "$.plan.databases", "db", "HeartbeatWanted?", _database_states()))
    if plan.compute:
        branches.append(_branch("Compute", "$.plan.compute", "group", "TemplateImage", _compute_states()))
    if plan.aurora_databases:
        branches.append(_branch("Aurora", "$.plan.aurora", "aurora", "EnsureSecondary", _aurora_states()))
    if plan.tables:
        branches.append(_branch("Tables", "$.plan.tables", "table", "EnsureTableReplica", _table_states()))
    if plan.buckets:
        branches.append(_branch("Buckets", "$.plan.buckets", "bucket", "EnsureReplication", _bucket_states()))
    if plan.routing_records:
        branches.append(_dns_routing_branch(plan))
    after_parallel = "Configurations" if plan.environments else "Summary"
    states: dict[str, asl.State] = {
        "LoadPlan": {
            "Type": "Pass",
            "Comment": "Load plan",
            "Parameters": {"plan": plan_document(plan), "trigger.$": "$"},
            "Next": "Replicate",
        },
        "Replicate": {
            "Type": "Parallel",
            "Comment": "Independent branches",
            "Branches": branches,
            "ResultPath": "$.branches",
            "Next": after_parallel,
        },
    }
    if plan.environments:
        configurations = _map("Configurations", "$.plan.environments", "env", "SaveConfiguration",
                              _configuration_states(plan))
        del configurations["End"]
        configurations.update({"ResultPath": "$.configurations", "Next": "Summary"})
        configurations["Catch"][0]["Next"] = "ConfigurationsFailed"
        states["Configurations"] = configurations
        failed = _failed("Configurations")
        del failed["End"]
        failed.update({"ResultPath": "$.configurations", "Next": "Summary"})
        failed["Parameters"] = {"record": failed["Parameters"]["record"]}
        states["ConfigurationsFailed"] = failed
    states["Summary"] = asl.task(
        "Summary", "report", "summarise_replicate",
        {"plan.$": "$.plan.name", "topic_arn": asl.NOTIFICATION_TOPIC, "region.$": "$.plan.dr_region",
         "execution.$": "$$.Execution.Id", "results": {"branches.$": "$.branches",
                                             **({"configurations.$": "$.configurations"} if plan.environments
                                                else {})}},
        result_path="$", next_state=None,
    )
    # A failed branch is a record of the summary (the others go on); what fails beyond that ends the run.
    failures.add_record(states, plan, "replicate")
    return asl.machine(f"pilotlight replicate for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)


def replicate_summary_table(output: dict[str, Any]) -> str:
    """A readable table of a replicate execution's output (the Summary step's document)."""
    rows = [("STATUS", "RESOURCE", "DETAIL")]
    order = ("failed", "drift", "created", "updated", "deleted", "verified", "unknown", "unchanged")
    for status in order:
        for rec in output.get(status) or []:
            detail = rec.get("cause") or "; ".join(rec.get("flags") or rec.get("drift") or rec.get("changes")
                                                   or rec.get("notes") or [])
            if not detail and rec.get("lag_seconds") is not None:
                detail = f"lag {rec['lag_seconds']:g} s (RPO {rec.get('rpo_seconds')} s)"
            rows.append((status, str(rec.get("resource", "")), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
    counts = output.get("counts") or {}
    total = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
    lines.append("")
    lines.append(f"plan {output.get('plan', '?')}: {total or 'nothing to report'}")
    return "\n".join(lines)
