"""IAM as the Beanstalk steps need it: the default Beanstalk roles, and ``SimulatePrincipalPolicy``.

- Beanstalk's console creates a service role and an EC2 instance profile with the first
  environment; :func:`ensure_beanstalk_default_roles` does the same in the sandbox (the instance
  profile's role carries the AWS managed policy ``AWSElasticBeanstalkWebTier``, whose S3 grant is
  limited to ``elasticbeanstalk-*`` buckets).
- moto 5.2 does not implement ``iam:SimulatePrincipalPolicy``. :func:`simulate_principal_policy`
  answers it for IAM roles that exist in moto by evaluating their identity policies (inline and
  attached managed ones) for each action and resource: an explicit Deny wins, then any Allow, else
  ``implicitDeny``. Action and resource wildcards are matched; a statement with a ``Condition`` is
  not applied (the sandbox does not know the request context), nor are ``NotAction``/``NotResource``.
  Like AWS, a resource-based policy is not simulated for a role. Roles moto does not know (the
  Lambda functions' own roles) are left to whoever else answers the call.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import urllib.parse
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import responses

SERVICE_ROLE = "aws-elasticbeanstalk-service-role"
INSTANCE_PROFILE = "aws-elasticbeanstalk-ec2-role"  # the profile and its role share the name
WEB_TIER_POLICY = "AWSElasticBeanstalkWebTier"
_lock = threading.Lock()


def _backend() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def _aws_managed_policy_arn(name: str) -> str:
    """Make an AWS managed policy attachable (moto loads none of them unless asked to, for speed)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    backend = _backend()
    arn = f"arn:aws:iam::aws:policy/{name}"
    if arn not in backend.managed_policies:
        data = json.loads(aws_managed_policies_data)[name]
        backend.managed_policies[arn] = AWSManagedPolicy.from_data(name, DEFAULT_ACCOUNT_ID, "us-east-1", data)
    return arn


def ensure_beanstalk_default_roles() -> None:
    """The service role and the EC2 instance profile the Beanstalk console creates (once per account).

    Made in moto's backend directly: this runs inside a CreateEnvironment call, possibly a Lambda's,
    whose own role is not what creates them.
    """
    with _lock:
        backend = _backend()
        names = {r.name for r in backend.roles.values()}
        if SERVICE_ROLE not in names:
            backend.create_role(SERVICE_ROLE, _trust("elasticbeanstalk.amazonaws.com"), "/", None,
                                "Beanstalk service role (sandbox)", [], None)
        if INSTANCE_PROFILE not in names:
            backend.create_role(INSTANCE_PROFILE, _trust("ec2.amazonaws.com"), "/", None,
                                "Beanstalk EC2 role (sandbox)", [], None)
            backend.attach_role_policy(_aws_managed_policy_arn(WEB_TIER_POLICY), INSTANCE_PROFILE)
        if INSTANCE_PROFILE not in backend.instance_profiles:
            backend.create_instance_profile(INSTANCE_PROFILE, "/", [INSTANCE_PROFILE])


# -- SimulatePrincipalPolicy ---------------------------------------------------------------------

def _documents(role: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(policy id, type, document) of every identity policy of a moto role."""
    out = []
    for name, text in role.policies.items():
        out.append((name, "IAM Policy", _parse(text)))
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.is_default), policy.versions[-1])
        kind = "aws-managed" if ":iam::aws:policy/" in arn else "user-managed"
        out.append((policy.name, kind, _parse(version.document)))
    return out


def _parse(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    text = str(text)
    return json.loads(text if text.lstrip().startswith("{") else urllib.parse.unquote(text))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _matches(patterns: Any, value: str, *, case: bool) -> bool:
    for pattern in _as_list(patterns):
        if pattern == "*":
            return True
        if (fnmatch.fnmatchcase(value, pattern) if case else fnmatch.fnmatchcase(value.lower(), pattern.lower())):
            return True
    return False


def evaluate(documents: list[tuple[str, str, dict[str, Any]]], action: str, resource: str) -> tuple[str, list]:
    """(EvalDecision, MatchedStatements) for one action on one resource under identity policies."""
    allowed: list[dict[str, Any]] = []
    for policy_id, kind, doc in documents:
        for statement in _as_list(doc.get("Statement") or []):
            if "Action" not in statement or "Resource" not in statement or statement.get("Condition"):
                continue
            if not _matches(statement["Action"], action, case=False):
                continue
            if not _matches(statement["Resource"], resource, case=True):
                continue
            matched = {"SourcePolicyId": policy_id, "SourcePolicyType": kind}
            if statement.get("Effect") == "Deny":
                return "explicitDeny", [matched]
            allowed.append(matched)
    return ("allowed", allowed) if allowed else ("implicitDeny", [])


def _members(p: dict[str, Any], name: str) -> list[str]:
    """A query-protocol list parameter (``Name.member.N``), in order."""
    prefix = f"{name}.member."
    found = {int(k[len(prefix):]): v for k, v in p.items() if k.startswith(prefix)}
    return [found[i] for i in sorted(found)]


def simulate_principal_policy(params: dict[str, Any], **_: Any) -> Any:
    p = responses.request_params(params)
    source = str(p.get("PolicySourceArn") or "")
    role = next((r for r in _backend().roles.values() if r.arn == source), None)
    if role is None:
        return None  # not a role moto knows (e.g. a function's role): someone else's to answer
    actions = _members(p, "ActionNames")
    resources = _members(p, "ResourceArns") or ["*"]
    documents = _documents(role)
    results = []
    for action in actions:
        for resource in resources:
            decision, matched = evaluate(documents, action, resource)
            results.append({"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": decision,
                            "MatchedStatements": matched, "MissingContextValues": []})
    return responses.ok({"EvaluationResults": results, "IsTruncated": False})


HANDLERS: list[tuple[str, Any]] = [
    ("before-call.iam.SimulatePrincipalPolicy", simulate_principal_policy),
]


def install(events: Any) -> None:
    # First: this answers only for roles moto knows and passes on the rest (the functions' roles,
    # which sandbox/iam_enforce.py answers for).
    responses.hook(events, HANDLERS, "eb-iam", where="first")


def uninstall(events: Any) -> None:
    responses.unhook(events, HANDLERS, "eb-iam")
