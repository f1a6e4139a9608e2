"""IAM steps: check, before a disaster does, that each failover function may make the calls it will make.

Readiness runs :func:`check_permissions` once per function the failover uses (an item of kind
``permissions``). It asks IAM's policy
simulator (``SimulatePrincipalPolicy``) about that function's role, for every IAM action the
failover's steps of that function need and every resource they act on (DR-region ARNs from the
plan, computed when the readiness definition is built). A denied pair is NOT_READY naming the
action and the resource, as AWS ARC's Region switch plan evaluation reports it. The simulator
includes the role's identity policies and permissions boundary; it does not include SCPs or
resource policies, so a READY here is necessary, not sufficient.

The role is read from the function's configuration (``GetFunctionConfiguration``), so no role ARN
is baked into the definition. ARNs in the request carry ``{account}``, filled from the role's ARN.
An action granted only under a condition (e.g. ``cloudwatch:namespace``) is simulated with that
context (``context`` in the check).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import client, raise_mapped
from lambdas.readiness_report import NOT_READY, READY, result

# What the caller's role needs (lambdas/readiness.py declares them on its check action).
PERMISSIONS = ["lambda:GetFunctionConfiguration", "iam:SimulatePrincipalPolicy"]
RESOURCES = {"lambda:GetFunctionConfiguration": "function", "iam:SimulatePrincipalPolicy": "function_role"}

_MAX_RESOURCES = 100  # SimulatePrincipalPolicy takes at most this many resource ARNs per request


def _result(resource: str, status: str, reason: str, **evidence: Any) -> dict[str, Any]:
    return result("permissions", resource, status, reason, **evidence)


def _context_entries(region: str, extra: dict[str, list[str]]) -> list[dict[str, Any]]:
    keys = {"aws:RequestedRegion": [region], **extra}
    return [{"ContextKeyName": k, "ContextKeyValues": [str(v) for v in vals], "ContextKeyType": "string"}
            for k, vals in keys.items()]


def check_permissions(
    region: str, function: str, checks: list[dict[str, Any]], account: str | None = None
) -> dict[str, Any]:
    """Simulate ``checks`` ([{action, resources}]) for ``function``'s role; one readiness result."""
    try:
        role = client("lambda", region).get_function_configuration(FunctionName=function)["Role"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return {"checks": [_result(function, NOT_READY, f"function {function} does not exist in {region}")]}
        raise_mapped(exc, f"read the configuration of {function}")
    acct = account or role.split(":")[4]
    iam = client("iam", region)
    denied: list[dict[str, str]] = []
    simulated = 0
    # One request per context (almost always one per function): the simulator evaluates every action
    # named against every resource named, and only the pairs the failover needs are read from the answer.
    wanted: dict[str, set[tuple[str, str]]] = {}
    contexts: dict[str, dict[str, list[str]]] = {}
    for entry in checks:
        ctx = entry.get("context") or {}
        key = repr(sorted(ctx.items()))
        contexts[key] = ctx
        for resource in entry.get("resources") or ["*"]:
            wanted.setdefault(key, set()).add((entry["action"], resource.replace("{account}", acct)))
    for key, pairs in wanted.items():
        actions = sorted({a for a, _ in pairs})
        resources = sorted({r for _, r in pairs})
        for i in range(0, len(resources), _MAX_RESOURCES):
            batch = resources[i : i + _MAX_RESOURCES]
            try:
                out = iam.simulate_principal_policy(
                    PolicySourceArn=role, ActionNames=actions, ResourceArns=batch,
                    ContextEntries=_context_entries(region, contexts[key]),
                )
            except ClientError as exc:
                raise_mapped(exc, f"simulate {', '.join(actions)} for {role}")
            for evaluation in out["EvaluationResults"]:
                per_resource = evaluation.get("ResourceSpecificResults") or [
                    {"EvalResourceName": evaluation.get("EvalResourceName", "*"),
                     "EvalResourceDecision": evaluation["EvalDecision"]}]
                for res in per_resource:
                    if (evaluation["EvalActionName"], res["EvalResourceName"]) not in pairs:
                        continue  # a resource another action needs: not this action's to have
                    simulated += 1
                    if res["EvalResourceDecision"] != "allowed":
                        denied.append({"action": evaluation["EvalActionName"], "resource": res["EvalResourceName"],
                                       "decision": res["EvalResourceDecision"]})
    if denied:
        first = denied[0]
        more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
        return {"checks": [_result(function, NOT_READY,
                                   f"{role} may not {first['action']} on {first['resource']}{more}",
                                   role=role, denied=denied[:20], simulated=simulated)]}
    return {"checks": [_result(function, READY, f"all {simulated} action/resource pairs the failover needs are "
                               "allowed", role=role, simulated=simulated)]}
