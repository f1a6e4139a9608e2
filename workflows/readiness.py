"""The readiness workflow: check everything a failover needs, score it, tell someone when it changes.

Runs every 30 minutes (``plan.schedules.readiness``) and on demand (``pilotlight readiness``).
Shape, chosen for the fewest billed state transitions: one Pass that loads the plan, one Map over
the plan's items with a single Task per item (the Lambda runs all checks of that item and returns
one result per check), one report Task. A run costs ``items + 3`` transitions; an item whose
Lambda fails after its retries takes one more (a Pass that records its checks as UNKNOWN).

STANDARD, not EXPRESS: an Express execution cannot be read back with DescribeExecution or
GetExecutionHistory, which ``pilotlight readiness`` follows for progress and the benchmark counts
transitions from, and moto runs only Standard semantics for StartExecution. At about 14
transitions per run the Standard price stays well under the per-plan budget (``bench/readiness.py``
prints it).
"""

from __future__ import annotations

from typing import Any

from lambdas import readiness as checks
from workflows import asl, failover, failures
from workflows.plan import DnsWeights, Plan

MAX_CONCURRENCY = 10  # items checked at once: bounded so a large plan does not burst the AWS APIs
MACHINE_TIMEOUT = 30 * 60  # never outlives the 30-minute schedule


def failover_sha256(plan: Plan, definition: dict[str, Any] | None = None) -> str:
    """The fingerprint of the failover definition this plan renders (see lambdas.readiness.definition_sha256)."""
    return checks.definition_sha256(asl.dumps(definition or failover.build(plan)), plan=plan.name)


def items(plan: Plan) -> list[dict[str, Any]]:
    """One entry per thing to check; the Map runs one Task per entry."""
    out: list[dict[str, Any]] = []
    definition = failover.build(plan)  # fingerprinted, and read for the calls its functions make
    for env in plan.environments:
        net = env.dr_network
        out.append({
            "kind": "environment", "resource": env.name, "application": env.application,
            "network": {"vpc_id": net.vpc_id, "subnets": list(net.subnets),
                        "elb_subnets": list(net.elb_subnets or net.subnets),
                        "security_groups": list(net.security_groups), "key_name": net.key_name,
                        "certificate_arns": dict(net.certificate_arns)},
            # Properties replicate sets in the DR saved configuration (tables pinning writes to one region).
            **({"properties": {p: plan.dr_region for p in plan.write_region_properties}}
               if plan.write_region_properties else {}),
            **({"secret_properties": list(env.secret_properties)} if env.secret_properties else {}),
        })
    for db in plan.rds_databases:
        out.append({
            "kind": "database", "resource": db.identifier, "dr_replica_identifier": db.dr_replica_identifier,
            "dr_network": {"subnet_group": db.dr_network.subnet_group,
                           "security_groups": list(db.dr_network.security_groups)},
            "az2": ({"identifier": db.az2_replica.identifier, "availability_zone": db.az2_replica.availability_zone}
                    if db.az2_replica else None),
        })
    for group in plan.compute:
        out.append({"kind": "asg", "resource": group.name, "name": group.name, "launch_template": group.launch_template,
                    "dr_group_name": group.dr_group_name, "dr_launch_template": group.dr_launch_template,
                    "subnets": list(group.dr_network.subnets), "pilot_size": group.pilot_size,
                    "capacity": group.failover_capacity.model_dump(),
                    "target_group_arns": list(group.dr_target_group_arns)})
    for adb in plan.aurora_databases:
        out.append({"kind": "aurora", "resource": adb.identifier, "global_cluster": adb.global_cluster_identifier,
                    "identifier": adb.identifier, "dr_cluster": adb.dr_cluster_identifier,
                    "dr_instance_class": adb.dr_instance_class, "headless": adb.headless,
                    "write_forwarding": adb.write_forwarding, "failover_instance_class": adb.failover_instance_class})
    for table in plan.tables:
        setting = table.write_region_setting
        out.append({"kind": "table", "resource": table.name, "table": table.name,
                    "capacity_lookback_hours": table.capacity_lookback_hours,
                    "write_region_parameter": setting.ssm_parameter if setting else None})
    for pair in plan.buckets:
        out.append({"kind": "bucket", "resource": f"{pair.source} -> {pair.destination}", "source": pair.source,
                    "destination": pair.destination})
    if plan.dns is not None:
        env = plan.dns_environment
        out.append({"kind": "dns", "resource": plan.dns.record_name, "hosted_zone_id": plan.dns.hosted_zone_id,
                    "record_type": plan.dns.record_type, "cutover": plan.dns.cutover,
                    "environment": env.name if env else None, "dr_target": plan.dns_dr_target,
                    "primary_target": plan.dns_primary_target,
                    **({"routing_records": True, "endpoint_check": plan.dns.endpoint_check is not None,
                        "topology": plan.topology} if plan.routing_records else {}),
                    **({"primary_weight": (plan.dns.weights or DnsWeights()).primary}
                       if plan.dns.routing == "weighted" else {})})
    if plan.environments or plan.rds_databases:
        out.append({"kind": "capacity", "resource": plan.dr_region,
                    "environments": [{"name": e.name, "application": e.application} for e in plan.environments],
                    "databases": [d.dr_replica_identifier for d in plan.rds_databases]})
    from workflows import render  # render imports this module for its BUILDERS

    out.append({"kind": "failover", "resource": render.state_machine_name(plan, "failover"),
                "sha256": failover_sha256(plan, definition)})
    out.extend(permission_items(plan, definition))
    return out


def failover_actions(definition: dict[str, Any]) -> dict[str, set[str]]:
    """Service -> the actions of lambdas/<service>.py the failover's Task states call."""
    used: dict[str, set[str]] = {}
    for _, state in asl.iter_states(definition["States"]):
        if state.get("Type") != "Task":
            continue
        params = state.get("Parameters") or {}
        target = str(params.get("FunctionName") or state.get("Resource", ""))
        action = params.get("action") or (params.get("Payload") or {}).get("action")
        if target.startswith("${") and target.endswith("FunctionArn}") and action:
            used.setdefault(target[2:-len("FunctionArn}")].lower(), set()).add(action)
    return used


def permission_items(plan: Plan, definition: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One item per function the failover uses: every IAM action its steps need, on every resource.

    Resources are the plan's own ARNs (as the role is granted them), with ``{account}`` for the
    account the readiness function fills in; a grant narrowed by a condition is simulated with it.
    """
    # infra.iam holds the resource kinds -> ARNs rules the roles are built from; imported here, not at
    # the top, because it reads workflows.render for the plan's state machine and function names.
    from infra import iam as plan_iam
    from workflows import render

    extra = {"topic": [asl.NOTIFICATION_TOPIC], "key": []}
    out = []
    for service, actions in sorted(failover_actions(definition or failover.build(plan)).items()):
        registry = plan_iam.registry_for(service)
        needs: dict[str, set[str]] = {}
        context: dict[str, dict[str, list[str]]] = {}
        for name in sorted(actions):
            action = registry.actions[name]
            for perm in action.permissions:
                kinds = action.resource_for(perm)
                if perm in plan_iam.UNSCOPED_WITH_CONDITION:
                    for entries in plan_iam.UNSCOPED_WITH_CONDITION[perm].values():
                        context[perm] = {k: plan_iam.as_values(v) for k, v in entries.items()}
                    needs.setdefault(perm, set()).add("*")
                    continue
                if "*" in kinds or (not plan_iam.is_mutating(perm) and plan_iam.no_resource_level(perm)):
                    needs.setdefault(perm, set()).add("*")
                    continue
                for kind in kinds:
                    for arn in plan_iam.resource_arns(plan, kind, account="{account}", extra=extra):
                        needs.setdefault(perm, set()).update(arn.arns if isinstance(arn, plan_iam.Scoped) else [arn])
        checks = [{"action": perm, "resources": sorted(arns), **({"context": context[perm]} if perm in context else {})}
                  for perm, arns in sorted(needs.items())]
        name = render.function_name(plan, service)
        out.append({"kind": "permissions", "resource": name, "function": name, "checks": checks})
    return out


def plan_document(plan: Plan) -> dict[str, Any]:
    """What of the plan the checks need, baked into the definition (a plan change shows as a diff)."""
    return {
        "name": plan.name,
        "context": {
            "plan": plan.name,
            "primary_region": plan.primary_region,
            "dr_region": plan.dr_region,
            "rpo_minutes": plan.objectives.rpo_minutes,
            "ami_max_age_hours": plan.ami.max_age_hours,
            "topic_arn": asl.NOTIFICATION_TOPIC,
            "databases": [{"identifier": d.identifier, "dr_replica_identifier": d.dr_replica_identifier}
                          for d in plan.rds_databases],
            "buckets": [{"source": b.source, "destination": b.destination} for b in plan.buckets],
        },
        "items": items(plan),
    }


def build(plan: Plan) -> dict[str, Any]:
    check = asl.task(
        "Readiness checks", "readiness", "check",
        {"item.$": "$.item", "context.$": "$.context", "run.$": "$.run"},
        result_path="$", next_state=None,
    )
    check["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CheckFailed"}]
    states: dict[str, asl.State] = {
        "LoadPlan": {
            "Type": "Pass",
            "Comment": "Load plan",
            "Parameters": {"plan": plan_document(plan), "run": {"trigger.$": "$", "machine.$": "$$.StateMachine.Id"}},
            "Next": "Checks",
        },
        "Checks": {
            "Type": "Map",
            "Comment": "Readiness checks",
            "ItemsPath": "$.plan.items",
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "context.$": "$.plan.context", "run.$": "$.run"},
            "MaxConcurrency": MAX_CONCURRENCY,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Check",
                "States": {
                    "Check": check,
                    # Only entered when an item's Lambda fails after its retries: its checks are UNKNOWN.
                    "CheckFailed": {
                        "Type": "Pass",
                        "Comment": "Readiness checks",
                        "Parameters": {"failed": {"kind.$": "$.item.kind", "resource.$": "$.item.resource",
                                                  "error.$": "$.error.Error", "cause.$": "$.error.Cause"}},
                        "End": True,
                    },
                },
            },
            # Only the results go on: the plan document (large for a large plan) is not carried into the
            # report's input, which keeps a 200-resource plan well under the 256 KB payload limit.
            "ResultPath": "$.results",
            "OutputPath": "$.results",
            "Next": "Report",
        },
        "Report": asl.task(
            "Score and report", "readiness", "report",
            {"plan": plan.name, "region": plan.dr_region, "topic_arn": asl.NOTIFICATION_TOPIC,
             "results.$": "$", "execution.$": "$$.Execution.Id", "state_machine_arn.$": "$$.StateMachine.Id"},
            result_path="$", next_state=None,
        ),
    }
    failures.add_record(states, plan, "readiness", list_input=("Report",))  # its input: the checks' results
    return asl.machine(f"pilotlight readiness for plan {plan.name}", "LoadPlan", states, MACHINE_TIMEOUT)


STATUS_ORDER = {checks.NOT_READY: 0, checks.UNKNOWN: 1, checks.READY: 2}


def readiness_table(output: dict[str, Any]) -> str:
    """A readable table of a readiness result (the report step's document): not-ready rows first."""
    rows = [("CHECK", "RESOURCE", "STATUS", "REASON")]
    for c in sorted(output.get("checks") or [], key=lambda c: STATUS_ORDER.get(c["status"], 1)):
        rows.append((c["check"], c["resource"], c["status"], c["reason"]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    lines.append("")
    score = output.get("score")
    if output.get("status") == checks.FAILOVER_IN_PROGRESS:
        lines.append(str(output.get("reason", "")))
    lines.append(f"plan {output.get('plan', '?')}: {output.get('status', '?')}, score "
                 f"{output.get('ready', 0)}/{output.get('total', 0)}"
                 + (f" ({score * 100:.0f}%)" if isinstance(score, int | float) else ""))
    return "\n".join(lines)
