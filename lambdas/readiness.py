"""Readiness checks: does everything a failover needs exist, and is it current?

The readiness workflow maps over the plan's items (an environment, a database, a bucket pair, the
DNS record, the DR region's capacity, the failover workflow itself); the ``check`` action runs the
checks of one item and returns one result per check::

    {"check": "dr-ami", "resource": "shop-prod", "status": "READY" | "NOT_READY" | "UNKNOWN",
     "reason": "...", "evidence": {...ids, ages, values...}}

A check only reads. What it finds missing or wrong is a NOT_READY result naming the resource, not
an error; an AWS error (throttling, access denied) propagates so the workflow retries it, and after
the retries the item's checks are reported UNKNOWN. ``report`` scores the results, publishes the
metrics, keeps the last result in SSM Parameter Store and notifies the plan's topic when the
overall status changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from botocore.exceptions import ClientError

from lambdas import (
    ami,
    beanstalk,
    beanstalk_access,
    dns,
    dns_routing,
    drill,
    iam,
    rds,
    rds_network,
    readiness_aurora,
    readiness_autoscaling,
    readiness_dynamodb,
    readiness_report,
)
from lambdas import s3 as s3_steps
from lambdas.common import Registry, client, raise_mapped
from lambdas.errors import ResourceNotFound
from lambdas.readiness_report import (  # noqa: F401 - the result shape and names the checks share, re-exported
    FAILOVER_IN_PROGRESS,
    METRICS_NAMESPACE,
    NOT_READY,
    READY,
    UNKNOWN,
    flatten,
    overall,
    parameter_name,
    result,
    summary,
)

registry = Registry("readiness")
handler = registry.handler

EC2_VCPU_QUOTA = ("ec2", "L-1216C47A")  # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances
RDS_INSTANCE_QUOTA = ("rds", "L-7B6409FD")  # DB instances
STANDARD_FAMILIES = set("acdhimrtz")  # instance families that count against L-1216C47A
BEANSTALK_DEFAULT_MAX_SIZE = 4  # aws:autoscaling:asg MaxSize when a configuration does not set it
CANARY_LOOKBACK = dt.timedelta(days=7)  # replicate writes a canary every run; older ones are not listed


_now = readiness_report.now


# -- the failover definition's fingerprint ---------------------------------------------------------

def definition_sha256(definition: str, *, plan: str, topic_arn: str | None = None) -> str:
    """sha256 of a state machine definition with the deployment's ARNs mapped back to their placeholders.

    The rendered ASL (``${GuardFunctionArn}``...) and the deployed one (the functions' ARNs) hash the
    same, so a deployed failover can be compared with the one the plan renders; whitespace and key
    order do not count.
    """
    text = re.sub(
        rf"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{{12}}:function:pilotlight-{re.escape(plan)}-([a-z0-9]+)",
        lambda m: "${" + m.group(1).capitalize() + "FunctionArn}",
        definition,
    )
    if topic_arn and not topic_arn.startswith("${"):
        text = text.replace(topic_arn, "${NotificationTopicArn}")
    canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- environments ---------------------------------------------------------------------------------

def _option(settings: dict[str, Any] | None, namespace: str, name: str) -> str | None:
    for opt in (settings or {}).get("OptionSettings") or []:
        if opt.get("Namespace") == namespace and opt.get("OptionName") == name:
            return opt.get("Value")
    return None


def _ami_check(ctx: dict[str, Any], env: str, tpl_name: str, template: dict[str, Any] | None) -> dict[str, Any]:
    dr, max_age = ctx["dr_region"], ctx["ami_max_age_hours"]
    copies = ami.images(client("ec2", dr), ctx["plan"], env, "copy")
    available = [i for i in copies if i.get("State") == "available"]
    if not available:
        states = {i["ImageId"]: i.get("State") for i in copies}
        return result("dr-ami", env, NOT_READY, f"no available DR AMI copy of {env} in {dr}", copies=states)
    newest = max(available, key=ami.created_at)
    image_id = newest["ImageId"]
    age = (_now() - ami.created_at(newest)).total_seconds() / 3600
    evidence = {"image_id": image_id, "age_hours": round(age, 2), "max_age_hours": max_age,
                "source_image": ami._tags(newest).get(ami.TAG_SOURCE)}
    if age > max_age:
        return result("dr-ami", env, NOT_READY, f"newest DR AMI copy {image_id} of {env} is {age:.1f} h old, "
                      f"older than the plan's maximum of {max_age} h", **evidence)
    if template is None:
        return result("dr-ami", env, NOT_READY, f"{image_id} of {env} is not referenced: the DR saved "
                      f"configuration {tpl_name} does not exist in {dr}", **evidence)
    used = _option(template, beanstalk.LAUNCH, "ImageId")
    evidence["referenced_image"] = used
    if used != image_id:
        return result("dr-ami", env, NOT_READY, f"saved configuration {tpl_name} launches {used}, not the newest "
                      f"DR AMI copy {image_id} of {env}", **evidence)
    return result("dr-ami", env, READY, f"{image_id} of {env} is available, {age:.1f} h old (max {max_age} h), "
                  f"and {tpl_name} launches it", **evidence)


def _endpoint_replacements(
    ctx: dict[str, Any], current: dict[str, Any], template: dict[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """Primary value -> DR value inside environment properties, without an API call.

    RDS endpoints have the form ``<identifier>.<suffix>.<region>.rds.amazonaws.com``. A primary
    property naming a plan database is matched with the saved configuration's value for the same
    property, which must name that database's DR replica in the DR region; the replica itself is the
    dr-replica check's business. Bucket names map by the plan. (Replicate looks endpoints up for real.)
    """
    primary, dr = ctx["primary_region"], ctx["dr_region"]
    replicas = {db["identifier"]: db["dr_replica_identifier"] for db in ctx.get("databases") or []}
    in_primary = re.compile(rf"\b([a-z][a-z0-9-]*)\.[a-z0-9]+\.{re.escape(primary)}\.rds\.amazonaws\.com\b")
    saved = {o["OptionName"]: o.get("Value") or "" for o in template.get("OptionSettings") or []
             if o.get("Namespace") == beanstalk.ENV_PROPERTIES}
    replacements: dict[str, str] = {}
    unresolved: list[str] = []
    for opt in current.get("OptionSettings") or []:
        if opt.get("Namespace") != beanstalk.ENV_PROPERTIES:
            continue
        for match in in_primary.finditer(opt.get("Value") or ""):
            replica = replicas.get(match.group(1))
            if replica is None:
                continue
            in_dr = re.search(rf"\b{re.escape(replica)}\.[a-z0-9]+\.{re.escape(dr)}\.rds\.amazonaws\.com\b",
                              saved.get(opt["OptionName"], ""))
            if in_dr:
                replacements[match.group(0)] = in_dr.group(0)
            elif opt["OptionName"] not in saved:
                unresolved.append(match.group(0))
    for pair in ctx.get("buckets") or []:
        replacements[pair["source"]] = pair["destination"]
    return replacements, unresolved


def _configuration_check(
    ctx: dict[str, Any], item: dict[str, Any], tpl_name: str, template: dict[str, Any] | None,
    current: dict[str, Any],
) -> dict[str, Any]:
    env, dr, primary = item["resource"], ctx["dr_region"], ctx["primary_region"]
    if template is None:
        return result("saved-configuration", env, NOT_READY,
                      f"DR saved configuration {item['application']}/{tpl_name} of {env} does not exist in {dr}")
    replacements, unresolved = _endpoint_replacements(ctx, current, template)
    image_id = _option(template, beanstalk.LAUNCH, "ImageId") or ""  # judged by the dr-ami check
    expected, flags = beanstalk.dr_option_settings(
        current.get("OptionSettings") or [], primary_region=primary, image_id=image_id,
        network=item["network"], replacements=replacements, properties=item.get("properties") or None,
    )
    actual = beanstalk.settable(template.get("OptionSettings") or [])
    skipped: list[str] = []
    if unresolved:
        # A property naming a primary endpoint whose DR replica is missing cannot be made regional;
        # the dr-replica check reports that replica, so it is not counted as drift here too.
        def names_unresolved(opt: dict[str, Any]) -> bool:
            return opt["Namespace"] == beanstalk.ENV_PROPERTIES and any(u in opt.get("Value", "") for u in unresolved)

        skipped = sorted(f"{o['Namespace']}:{o['OptionName']}" for o in expected if names_unresolved(o))
        keep = {(o["Namespace"], o["OptionName"]) for o in expected if not names_unresolved(o)}
        expected = [o for o in expected if (o["Namespace"], o["OptionName"]) in keep]
        actual = [o for o in actual if (o["Namespace"], o["OptionName"]) in keep
                  or o["Namespace"] != beanstalk.ENV_PROPERTIES]
    differences = beanstalk.option_drift(expected, actual, item.get("secret_properties") or ())
    platform = beanstalk.dr_platform_arn(current.get("PlatformArn"), dr)
    if platform and template.get("PlatformArn") != platform:
        differences.append(f"PlatformArn: saved {template.get('PlatformArn')!r}, primary implies {platform!r}")
    evidence = {"template": tpl_name, "compared": len(expected), "differences": differences, "flags": flags,
                "not_compared": skipped}
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        return result("saved-configuration", env, NOT_READY, f"saved configuration {tpl_name} has drifted from "
                      f"{env}: {len(differences)} option(s) differ: {shown}", **evidence)
    return result("saved-configuration", env, READY, f"{tpl_name} matches the current configuration of {env} "
                  f"({len(expected)} options, regional values rewritten)", **evidence)


def _dr_template(ctx: dict[str, Any], eb: Any, application: str, env: str) -> tuple[str, dict[str, Any] | None]:
    """The DR saved configuration a failover would launch (its name; the stable name when there is none)."""
    found = beanstalk.find_template(eb, application, ctx["plan"], env, newest=False)
    return found if found else (beanstalk.template_name(ctx["plan"], env), None)


def _version_check(ctx: dict[str, Any], item: dict[str, Any], primary_env: dict[str, Any],
                   settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The running version exists in DR, and the instances of the DR environment (``settings``: its saved
    configuration) may read its source bundle."""
    env, app, dr = item["resource"], item["application"], ctx["dr_region"]
    label = primary_env.get("VersionLabel")
    if not label:
        return result("app-version", env, NOT_READY, f"primary environment {env} runs no application version")
    try:
        found = client("elasticbeanstalk", dr).describe_application_versions(
            ApplicationName=app, VersionLabels=[label])["ApplicationVersions"]
    except ClientError as exc:
        raise_mapped(exc, f"describe version {label} in {dr}")
    if not found:
        return result("app-version", env, NOT_READY, f"application version {app}/{label} that {env} runs does "
                      f"not exist in {dr}", version=label)
    status = found[0].get("Status")
    if status == "FAILED":
        return result("app-version", env, NOT_READY, f"application version {app}/{label} in {dr} is FAILED",
                      version=label, status=status)
    bundle = found[0].get("SourceBundle") or {}
    location = f"s3://{bundle.get('S3Bucket')}/{bundle.get('S3Key')}"
    denial, access = beanstalk_access.bundle_read_denial(dr, bundle, settings)
    if denial:
        return result("app-version", env, NOT_READY, f"{app}/{label} exists in {dr} but its bundle {location} is "
                      f"not readable by the DR environment's instances: {denial}", version=label, status=status,
                      bundle=location, access=access)
    return result("app-version", env, READY, f"{app}/{label} (running in {env}) exists in {dr}, its bundle readable "
                  f"by instance profile {access['instance_profile']}", version=label, status=status, bundle=location,
                  access=access)


def check_environment(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    env, app = item["resource"], item["application"]
    primary = ctx["primary_region"]
    tpl_name, template = _dr_template(ctx, client("elasticbeanstalk", ctx["dr_region"]), app, env)
    eb = client("elasticbeanstalk", primary)
    try:
        envs = eb.describe_environments(ApplicationName=app, EnvironmentNames=[env])["Environments"]
    except ClientError as exc:
        raise_mapped(exc, f"describe {env}")
    checks = [_ami_check(ctx, env, tpl_name, template)]
    if not envs:
        gone = f"primary environment {env} does not exist in {primary}"
        return checks + [result("saved-configuration", env, UNKNOWN, gone), result("app-version", env, UNKNOWN, gone)]
    try:
        current = eb.describe_configuration_settings(ApplicationName=app, EnvironmentName=env)[
            "ConfigurationSettings"][0]
    except ClientError as exc:
        raise_mapped(exc, f"read configuration of {env}")
    checks.append(_configuration_check(ctx, item, tpl_name, template, current))
    checks.append(_version_check(ctx, item, envs[0], template or current))
    return checks


# -- databases ------------------------------------------------------------------------------------

def _replica_check(
    check: str, region: str, identifier: str, source: str, source_region: str, rpo_minutes: int,
    availability_zone: str | None = None,
) -> dict[str, Any]:
    db = rds.describe_instance(client("rds", region), identifier)
    if db is None:
        return result(check, identifier, NOT_READY, f"replica {identifier} does not exist in {region}")
    facts = rds.facts(db)
    evidence: dict[str, Any] = {"status": facts["status"], "replica_source": facts["replica_source"],
                                "availability_zone": facts["availability_zone"]}
    source_ref = facts["replica_source"] or ""
    source_ok = source_ref.rsplit(":", 1)[-1] == source and (
        not source_ref.startswith("arn:") or source_ref.split(":")[3] == source_region)
    if not source_ok:
        return result(check, identifier, NOT_READY, f"{identifier} in {region} replicates from "
                      f"{source_ref or 'nothing (it is standalone)'}, not {source} in {source_region}", **evidence)
    if facts["status"] != "available":
        return result(check, identifier, NOT_READY, f"replica {identifier} in {region} is {facts['status']}, "
                      "not available", **evidence)
    if availability_zone and facts["availability_zone"] != availability_zone:
        return result(check, identifier, NOT_READY, f"replica {identifier} is in {facts['availability_zone']}, "
                      f"the plan says {availability_zone}", **evidence)
    lag = rds.replica_lag(region, identifier, rpo_minutes)
    evidence.update(lag_seconds=lag["lag_seconds"], rpo_seconds=lag["rpo_seconds"])
    if lag["lag_seconds"] is None:
        return result(check, identifier, UNKNOWN, f"no ReplicaLag datapoints for {identifier} in {region} in the "
                      "last 5 minutes", **evidence)
    if lag["lag_seconds"] > lag["rpo_seconds"]:
        return result(check, identifier, NOT_READY, f"replica {identifier} lags {lag['lag_seconds']:g} s behind "
                      f"{source}, above the RPO of {lag['rpo_seconds']} s", **evidence)
    return result(check, identifier, READY, f"{identifier} replicates from {source}, available, lag "
                  f"{lag['lag_seconds']:g} s (RPO {lag['rpo_seconds']} s)", **evidence)


def check_database(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    rpo, primary = ctx["rpo_minutes"], ctx["primary_region"]
    checks = [_replica_check("dr-replica", ctx["dr_region"], item["dr_replica_identifier"], item["resource"],
                             primary, rpo)]
    if item.get("dr_network"):
        checks.append(rds_network.network_check(ctx["dr_region"], item["dr_replica_identifier"], item["dr_network"]))
    if item.get("az2"):
        checks.append(_replica_check("az2-replica", primary, item["az2"]["identifier"], item["resource"], primary,
                                     rpo, availability_zone=item["az2"]["availability_zone"]))
    return checks


# -- buckets --------------------------------------------------------------------------------------

def _rule_check(s3: Any, resource: str, source: str, destination: str) -> dict[str, Any]:
    try:
        config = s3.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ReplicationConfigurationNotFoundError":
            raise_mapped(exc, f"read replication of {source}")
        return result("s3-replication", resource, NOT_READY, f"bucket {source} has no replication configuration")
    target = f"arn:aws:s3:::{destination}"
    rules = [r for r in config.get("Rules") or [] if (r.get("Destination") or {}).get("Bucket", "").endswith(
        f":::{destination}")]
    if not rules:
        return result("s3-replication", resource, NOT_READY, f"no replication rule of {source} targets {destination}",
                      rules=[r.get("ID") for r in config.get("Rules") or []])
    enabled = [r for r in rules if r.get("Status") == "Enabled"]
    evidence = {"rules": {r.get("ID"): r.get("Status") for r in rules}, "role": config.get("Role"),
                "destination": target}
    if not enabled:
        return result("s3-replication", resource, NOT_READY, f"replication rule {rules[0].get('ID')} of {source} -> "
                      f"{destination} is {rules[0].get('Status')}", **evidence)
    return result("s3-replication", resource, READY, f"rule {enabled[0].get('ID')} replicates {source} to "
                  f"{destination}", **evidence)


def _versioning_check(s3: Any, s3d: Any, resource: str, source: str, destination: str) -> dict[str, Any]:
    states = {}
    for bucket, cl in ((source, s3), (destination, s3d)):
        try:
            states[bucket] = cl.get_bucket_versioning(Bucket=bucket).get("Status") or "never enabled"
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucket":
                raise_mapped(exc, f"read versioning of {bucket}")
            states[bucket] = "bucket missing"
    off = [f"{b} ({s})" for b, s in states.items() if s != "Enabled"]
    if off:
        return result("s3-versioning", resource, NOT_READY, "versioning is not enabled on " + ", ".join(off),
                      versioning=states)
    return result("s3-versioning", resource, READY, f"versioning is enabled on {source} and {destination}",
                  versioning=states)


def _canary_check(
    s3: Any, s3d: Any, resource: str, source: str, destination: str, rpo_seconds: int
) -> dict[str, Any]:
    since = f"{s3_steps.CANARY_PREFIX}{_now() - CANARY_LOOKBACK:%Y%m%dT%H%M%S}"
    try:
        listed = s3.list_objects_v2(Bucket=source, Prefix=s3_steps.CANARY_PREFIX, StartAfter=since).get("Contents")
    except ClientError as exc:
        raise_mapped(exc, f"list canaries in {source}")
    if not listed:
        return result("s3-canary", resource, UNKNOWN, f"no replication canary written to {source} in the last "
                      f"{CANARY_LOOKBACK.days} days (the replicate workflow writes one per run)")
    newest = max(listed, key=lambda o: o["Key"])  # keys are UTC timestamps
    key = newest["Key"]
    try:
        head = s3.head_object(Bucket=source, Key=key)
    except ClientError as exc:
        raise_mapped(exc, f"read canary {key} in {source}")
    status = head.get("ReplicationStatus", "NONE")
    written = head["LastModified"]
    evidence: dict[str, Any] = {"key": key, "replication_status": status, "rpo_seconds": rpo_seconds,
                                "written_at": written.isoformat()}
    if status == "FAILED":
        return result("s3-canary", resource, NOT_READY, f"replication of canary {key} from {source} to {destination} "
                      "FAILED", **evidence)
    if status != "COMPLETED":
        waited = (_now() - written).total_seconds()
        evidence["pending_seconds"] = round(waited, 1)
        if waited > rpo_seconds:
            return result("s3-canary", resource, NOT_READY, f"canary {key} of {source} is {status} after "
                          f"{waited:.0f} s, above the RPO of {rpo_seconds} s", **evidence)
        return result("s3-canary", resource, READY, f"canary {key} of {source} is {status}, {waited:.0f} s "
                      f"old (RPO {rpo_seconds} s)", **evidence)
    try:
        copy = s3d.head_object(Bucket=destination, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise_mapped(exc, f"read canary {key} in {destination}")
        return result("s3-canary", resource, NOT_READY, f"canary {key} shows COMPLETED in {source} but is missing "
                      f"from {destination}", **evidence)
    delay = max(0.0, (copy["LastModified"] - written).total_seconds())
    evidence["replication_seconds"] = delay
    if delay > rpo_seconds:
        return result("s3-canary", resource, NOT_READY, f"canary {key} took {delay:.0f} s to reach {destination}, "
                      f"above the RPO of {rpo_seconds} s", **evidence)
    return result("s3-canary", resource, READY, f"canary {key} reached {destination} in {delay:.0f} s "
                  f"(RPO {rpo_seconds} s)", **evidence)


def check_bucket(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    source, destination, resource = item["source"], item["destination"], item["resource"]
    s3, s3d = client("s3", ctx["primary_region"]), client("s3", ctx["dr_region"])
    return [
        _rule_check(s3, resource, source, destination),
        _versioning_check(s3, s3d, resource, source, destination),
        _canary_check(s3, s3d, resource, source, destination, ctx["rpo_minutes"] * 60),
    ]


# -- DNS ------------------------------------------------------------------------------------------

def check_dns(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    name, zone, rtype = item["resource"], item["hosted_zone_id"], item["record_type"]
    r53 = client("route53", "us-east-1")  # Route 53's control plane
    if item["cutover"] == "health_check" or item.get("routing_records"):
        return _routing_records(r53, ctx, item)
    if item.get("environment") is None:  # a plan without environments names the primary's host (dns.primary_target)
        expected = item["primary_target"]
    else:
        eb = client("elasticbeanstalk", ctx["primary_region"])
        try:
            envs = eb.describe_environments(EnvironmentNames=[item["environment"]])["Environments"]
        except ClientError as exc:
            raise_mapped(exc, f"describe {item['environment']}")
        if not envs or not envs[0].get("CNAME"):
            return [result("dns-record", name, UNKNOWN, f"primary environment {item['environment']} has no CNAME "
                           "to compare the record with")]
        expected = envs[0]["CNAME"]
    try:
        values = dns.current_values(r53, zone, name, rtype)
    except ResourceNotFound:
        return [result("dns-record", name, NOT_READY, f"hosted zone {zone} of {name} does not exist")]
    evidence = {"zone": zone, "values": values, "expected": expected, "dr_target": item["dr_target"]}
    if values is None:
        return [result("dns-record", name, NOT_READY, f"record {name} ({rtype}) does not exist in zone {zone}",
                       **evidence)]
    if values != [expected]:
        return [result("dns-record", name, NOT_READY, f"record {name} points at {', '.join(values)}, not the "
                       f"primary {item.get('environment') or 'target'} ({expected})", **evidence)]
    return [result("dns-record", name, READY, f"{name} points at {expected}; failover repoints it to "
                   f"{item['dr_target']}", **evidence)]


def _routing_records(r53: Any, ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The routing pair replicate builds (lambdas.dns_routing.routing_records), whatever the policy: the primary
    record (``...-primary``, with the failover's health check in health_check mode) and the DR one at the DR
    target; with an endpoint check, each carries one, and ``dns-health-checks`` reports what Route 53's
    checkers say of each region (the DR region must be healthy unless it is a pilot light, which runs nothing
    to answer until a failover)."""
    name, zone = item["resource"], item["hosted_zone_id"]
    try:
        sets = dns_routing.record_sets(r53, zone, name, item["record_type"])
    except ResourceNotFound:
        return [result("dns-record", name, NOT_READY, f"hosted zone {zone} of {name} does not exist")]
    records = dns_routing.by_side(ctx["plan"], sets)
    primary, dr = records.get(dns_routing.PRIMARY), records.get(dns_routing.DR)
    values = [r["Value"] for r in (dr or {}).get("ResourceRecords", [])]
    evidence = {"zone": zone, "routing_records": sorted(str(s.get("SetIdentifier")) for s in sets if
                                                        s.get("SetIdentifier")), "dr_values": values}
    need_primary_check = item["cutover"] == "health_check" or item.get("endpoint_check")
    if primary is None or (need_primary_check and not primary.get("HealthCheckId")):
        return [result("dns-record", name, NOT_READY, f"{name} has no primary routing record"
                       + (" with a health check" if need_primary_check else "") + ": replicate builds it", **evidence)]
    primary_values = [r["Value"] for r in primary.get("ResourceRecords", [])]
    if item.get("primary_target") and primary_values != [item["primary_target"]]:
        return [result("dns-record", name, NOT_READY, f"the primary routing record of {name} points at "
                       f"{', '.join(primary_values) or 'nothing'}, not {item['primary_target']} (a failover "
                       "evacuated the primary; it stays so until a failback)", primary_values=primary_values,
                       **evidence)]
    weight = primary.get("Weight")
    if item.get("primary_weight") and weight is not None and int(weight) == 0:
        return [result("dns-record", name, NOT_READY, f"the primary routing record of {name} has weight 0, not the "
                       f"plan's {item['primary_weight']} (a failover evacuated the primary; it stays so until a "
                       "failback)", primary_weight=weight, **evidence)]
    if values != [item["dr_target"]]:
        return [result("dns-record", name, NOT_READY, f"the DR routing record of {name} points at "
                       f"{', '.join(values) or 'nothing'}, not {item['dr_target']}", **evidence)]
    if item.get("endpoint_check") and not dr.get("HealthCheckId"):  # type: ignore[union-attr]
        return [result("dns-record", name, NOT_READY, f"the DR routing record of {name} has no health check: "
                       "replicate adds the DR endpoint's", **evidence)]
    out = [result("dns-record", name, READY, f"{name} has its primary (health-checked) and DR ({values[0]}) "
                  "routing records", **evidence)]
    if item.get("endpoint_check"):
        out.append(_health_checks(r53, item, primary, dr))  # type: ignore[arg-type]
    return out


def _health_checks(r53: Any, item: dict[str, Any], primary: dict[str, Any], dr: dict[str, Any]) -> dict[str, Any]:
    name = item["resource"]
    seen = {}
    for side, record in (("primary", primary), ("dr", dr)):
        healthy, report = dns_routing.status(r53, record["HealthCheckId"])
        seen[side] = {"health_check": record["HealthCheckId"], "healthy": healthy, "report": report}
    evidence = {"regions": seen, "topology": item.get("topology")}
    if seen["primary"]["healthy"] is False:
        return result("dns-health-checks", name, NOT_READY, f"the primary's health check is failing "
                      f"({seen['primary']['report']}): Route 53 is not sending clients to the primary", **evidence)
    dr_live = item.get("topology") in ("warm-standby", "active-active")
    if dr_live and seen["dr"]["healthy"] is False:
        return result("dns-health-checks", name, NOT_READY, f"the DR endpoint {item['dr_target']} is failing its "
                      f"health check ({seen['dr']['report']}) though the {item['topology']} DR region should "
                      "answer: a failover would send clients to an unhealthy region", **evidence)
    if None in (seen["primary"]["healthy"], seen["dr"]["healthy"] if dr_live else True):
        return result("dns-health-checks", name, UNKNOWN, "Route 53's checkers have not reported yet", **evidence)
    dr_words = ("healthy" if seen["dr"]["healthy"] else
                "not answering yet, as a pilot light (it answers once the failover scales it up)")
    return result("dns-health-checks", name, READY, f"the primary endpoint is healthy; the DR endpoint "
                  f"{item['dr_target']} is {dr_words}", **evidence)


# -- capacity in the DR region --------------------------------------------------------------------

def _quota(region: str, service_code: str, quota_code: str) -> float:
    try:
        return float(client("service-quotas", region).get_service_quota(
            ServiceCode=service_code, QuotaCode=quota_code)["Quota"]["Value"])
    except ClientError as exc:
        raise_mapped(exc, f"read quota {service_code}/{quota_code} in {region}")
    return 0.0


def _ec2_capacity(ctx: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    dr = ctx["dr_region"]
    eb, ec2 = client("elasticbeanstalk", dr), client("ec2", dr)
    launches: dict[str, tuple[str, int]] = {}
    missing: list[str] = []
    for env in item["environments"]:
        tpl_name, template = _dr_template(ctx, eb, env["application"], env["name"])
        instance_type = _option(template, beanstalk.LAUNCH, "InstanceType")
        if template is None or not instance_type:
            missing.append(tpl_name)
            continue
        max_size = int(_option(template, "aws:autoscaling:asg", "MaxSize") or BEANSTALK_DEFAULT_MAX_SIZE)
        launches[env["name"]] = (instance_type, max_size)
    if missing:
        return result("ec2-capacity", dr, UNKNOWN,
                      f"cannot size the failover: no instance type in {', '.join(missing)}")
    try:
        running = [i["InstanceType"] for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
            for r in page["Reservations"] for i in r["Instances"]]
        types = sorted({t for t, _ in launches.values()} | set(running))
        vcpus = {t["InstanceType"]: t["VCpuInfo"]["DefaultVCpus"]
                 for t in ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]} if types else {}
    except ClientError as exc:
        raise_mapped(exc, f"describe instances in {dr}")
    in_use = sum(vcpus.get(t, 0) for t in running if t[:1] in STANDARD_FAMILIES)
    need = sum(vcpus.get(t, 0) * n for t, n in launches.values() if t[:1] in STANDARD_FAMILIES)
    quota = _quota(dr, *EC2_VCPU_QUOTA)
    detail = ", ".join(f"{env}: {n} x {t} ({vcpus.get(t, 0)} vCPU)" for env, (t, n) in sorted(launches.items()))
    evidence = {"quota_code": EC2_VCPU_QUOTA[1], "quota_vcpus": quota, "in_use_vcpus": in_use,
                "failover_vcpus": need, "launches": detail}
    if in_use + need > quota:
        return result("ec2-capacity", dr, NOT_READY, f"EC2 on-demand standard vCPU quota in {dr} is {quota:g}; the "
                      f"failover launches up to {need} vCPUs ({detail}) on top of {in_use} in use", **evidence)
    return result("ec2-capacity", dr, READY, f"{in_use + need} of {quota:g} on-demand standard vCPUs in {dr} "
                  f"after the failover launches {need} ({detail})", **evidence)


def _rds_capacity(ctx: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    dr = ctx["dr_region"]
    try:
        present = {db["DBInstanceIdentifier"] for page in client("rds", dr).get_paginator(
            "describe_db_instances").paginate() for db in page["DBInstances"]}
    except ClientError as exc:
        raise_mapped(exc, f"list DB instances in {dr}")
    missing = [ident for ident in item["databases"] if ident not in present]
    need = len(present) + len(missing)
    quota = _quota(dr, *RDS_INSTANCE_QUOTA)
    evidence = {"quota_code": RDS_INSTANCE_QUOTA[1], "quota_instances": quota, "in_use": len(present),
                "replicas_missing": missing}
    if need > quota:
        return result("rds-capacity", dr, NOT_READY, f"RDS DB instances quota in {dr} is {quota:g}; {len(present)} "
                      f"exist and the plan needs {len(missing)} more", **evidence)
    return result("rds-capacity", dr, READY, f"{need} of {quota:g} DB instances in {dr} (promotion creates none)",
                  **evidence)


def check_capacity(ctx: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    if item.get("environments"):
        checks.append(_ec2_capacity(ctx, item))
    if item.get("databases"):
        checks.append(_rds_capacity(ctx, item))
    return checks


# -- the failover workflow itself -----------------------------------------------------------------

def check_failover(ctx: dict[str, Any], item: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    name, dr = item["resource"], ctx["dr_region"]
    arn = run["machine"].rsplit(":", 1)[0] + ":" + name  # a sibling of the readiness state machine
    sfn = client("stepfunctions", dr)
    try:
        deployed = sfn.describe_state_machine(stateMachineArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("StateMachineDoesNotExist", "ResourceNotFound"):
            return [result("failover-definition", name, NOT_READY, f"state machine {name} is not deployed in {dr}")]
        raise_mapped(exc, f"describe {name}")
    got = definition_sha256(deployed["definition"], plan=ctx["plan"], topic_arn=ctx.get("topic_arn"))
    trigger = run.get("trigger") if isinstance(run.get("trigger"), dict) else {}
    local = trigger.get("expected_failover_sha256")
    evidence = {"deployed_sha256": got, "deployed_with_sha256": item["sha256"], "local_plan_sha256": local,
                "updated": str(deployed.get("updateDate") or deployed.get("creationDate") or "")}
    if got != item["sha256"]:
        return [result("failover-definition", name, NOT_READY, f"deployed {name} differs from the definition this "
                       "plan renders (changed outside a deploy, or readiness deployed without it): redeploy",
                       **evidence)]
    if local and local != got:
        return [result("failover-definition", name, NOT_READY, f"deployed {name} is out of date: the local plan "
                       "renders a different failover (changed but not deployed)", **evidence)]
    return [result("failover-definition", name, READY, f"deployed {name} matches the plan's failover definition "
                   f"(sha256 {got[:12]})", **evidence)]


_KINDS = {"environment": check_environment, "database": check_database, "bucket": check_bucket,
          "dns": check_dns, "capacity": check_capacity, "aurora": readiness_aurora.check_aurora,
          "table": readiness_dynamodb.check_table, "asg": readiness_autoscaling.check_group}
_PERMISSIONS = ["ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes",
                "elasticbeanstalk:DescribeConfigurationSettings", "elasticbeanstalk:DescribeEnvironments",
                "elasticbeanstalk:DescribeApplicationVersions", "rds:DescribeDBInstances",
                "cloudwatch:GetMetricStatistics", "s3:GetReplicationConfiguration", "s3:GetBucketVersioning",
                "s3:ListBucket", "s3:GetObject", "route53:ListResourceRecordSets", "route53:GetHealthCheckStatus",
                "servicequotas:GetServiceQuota",
                "states:DescribeStateMachine", *rds_network.NETWORK_PERMISSIONS, *iam.PERMISSIONS,
                *beanstalk_access.READ_CHECK_PERMISSIONS, *readiness_aurora.PERMISSIONS,
                *readiness_dynamodb.PERMISSIONS, *readiness_autoscaling.PERMISSIONS]


@registry.action(
    "check",
    permissions=list(dict.fromkeys(_PERMISSIONS)),
    resource={**readiness_aurora.RESOURCES, **readiness_dynamodb.RESOURCES, **readiness_autoscaling.RESOURCES,
              "elasticbeanstalk:DescribeConfigurationSettings": ("source_environment", "configurationtemplate"),
              "elasticbeanstalk:DescribeEnvironments": "source_environment",
              "elasticbeanstalk:DescribeApplicationVersions": "applicationversion",
              # Listing the DR region's instances (the quota check) needs the region's db:* resources.
              "rds:DescribeDBInstances": "*", "rds:DescribeDBSubnetGroups": "dr_subnet_group",
              "s3:GetReplicationConfiguration": "bucket", "s3:GetBucketVersioning": "bucket",
              "s3:ListBucket": "bucket", "s3:GetObject": "canary_object",
              "route53:ListResourceRecordSets": "hostedzone", "route53:GetHealthCheckStatus": "healthcheck",
              "states:DescribeStateMachine": "statemachine",
              **iam.RESOURCES, **beanstalk_access.READ_CHECK_RESOURCES,
              # Simulated: the failover functions' roles and the DR instance profile's role (bundle access).
              "iam:SimulatePrincipalPolicy": (iam.RESOURCES["iam:SimulatePrincipalPolicy"], "instance_role")},
)
def check(item: dict[str, Any], context: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the checks of one plan item; one result per check (READY / NOT_READY / UNKNOWN)."""
    kind = item["kind"]
    if kind == "failover":
        return {"checks": check_failover(context, item, run or {})}
    if kind == "permissions":
        return iam.check_permissions(context["dr_region"], item["function"], item["checks"])
    return {"checks": _KINDS[kind](context, item)}


# -- report ---------------------------------------------------------------------------------------

@registry.action(
    "report",
    permissions=["cloudwatch:PutMetricData", "ssm:GetParameter", "ssm:PutParameter", "sns:Publish",
                 "states:ListExecutions"],
    resource={"ssm:GetParameter": "ssm_parameter", "ssm:PutParameter": "ssm_parameter", "sns:Publish": "topic",
              "states:ListExecutions": "failover_statemachine"},
)
def report(plan: str, region: str, topic_arn: str, results: list[dict[str, Any]],
           execution: str | None = None, state_machine_arn: str | None = None) -> dict[str, Any]:
    """Score the checks, publish the metrics, keep the result, notify when the overall status changed.

    While a failover of the plan runs, the checks see the estate mid-change (a replica being promoted, DNS
    moving): the run reports FAILOVER_IN_PROGRESS, naming the failover, and scores, keeps and notifies nothing.
    """
    if state_machine_arn:
        failovers = drill.running_executions(client("stepfunctions", region),
                                             drill.machine_arn(state_machine_arn, plan, "failover"))
        if failovers:
            return readiness_report.during_failover(plan, results, execution, failovers)
    return readiness_report.publish(plan, region, topic_arn, results, execution)
