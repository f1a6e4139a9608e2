"""Whether a Beanstalk environment's instances may read its application version's source bundle.

Beanstalk's instances download the bundle with the instance profile's role. The default instance
profile (``aws-elasticbeanstalk-ec2-role``, AWS managed policy ``AWSElasticBeanstalkWebTier``) reads
only ``elasticbeanstalk-*`` buckets, not the plan's DR bundle bucket, so replicate grants the role
``s3:GetObject`` there in the bucket's policy (:func:`grant_bundle_read`) and readiness checks it
(:func:`bundle_read_denial`: the bucket policy, else IAM's policy simulator on the role).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from botocore.exceptions import ClientError

from lambdas.beanstalk_config import LAUNCH
from lambdas.common import aws_errors, client
from lambdas.errors import PreconditionFailed

DEFAULT_INSTANCE_PROFILE = "aws-elasticbeanstalk-ec2-role"  # what Beanstalk's console creates
BUNDLE_READ_SID = "PilotlightInstanceProfilesReadBundles"
IAM_REGION = "us-east-1"  # IAM is global; its endpoint is signed in us-east-1


def instance_profile_of(settings: dict[str, Any] | None) -> str:
    """The instance profile a configuration launches instances with (a name; an ARN's last part)."""
    for opt in (settings or {}).get("OptionSettings") or []:
        if (opt.get("Namespace"), opt.get("OptionName")) == (LAUNCH, "IamInstanceProfile") and opt.get("Value"):
            return str(opt["Value"]).rsplit("/", 1)[-1]
    return DEFAULT_INSTANCE_PROFILE


def instance_profile_roles(profile: str) -> list[str]:
    """ARNs of the roles in an instance profile; PreconditionFailed when there is no such profile."""
    iam = client("iam", IAM_REGION)
    with aws_errors(f"read instance profile {profile}"):
        try:
            roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise
            raise PreconditionFailed(f"instance profile {profile} does not exist") from exc
    return [r["Arn"] for r in roles]


def bucket_policy(s3: Any, bucket: str) -> dict[str, Any] | None:
    """A bucket's policy document; None when it has none."""
    with aws_errors(f"read the policy of {bucket}"):
        try:
            return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchBucketPolicy":
                raise
    return None


def _values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _like(patterns: Any, value: str, *, case: bool = True) -> bool:
    return any(p == "*" or (fnmatch.fnmatchcase(value, p) if case else fnmatch.fnmatchcase(value.lower(), p.lower()))
               for p in _values(patterns))


def policy_grants_read(policy: dict[str, Any] | None, role_arn: str, object_arn: str) -> bool:
    """Does a bucket policy let ``role_arn`` GetObject ``object_arn`` (an Allow naming it, no Deny)?

    Statements with conditions are not counted as granting (their context is unknown here) but a
    Deny that could apply is.
    """
    allowed = False
    for st in _values_list((policy or {}).get("Statement")):
        principal = st.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, dict) else principal
        if aws is None or not (aws == "*" or role_arn in _values(aws)):
            continue
        if "Action" not in st or "Resource" not in st:
            continue
        if not (_like(st["Action"], "s3:GetObject", case=False) and _like(st["Resource"], object_arn)):
            continue
        if st.get("Effect") == "Deny":
            return False
        allowed = allowed or not st.get("Condition")
    return allowed


def _values_list(value: Any) -> list[dict[str, Any]]:
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]


def grant_bundle_read(s3: Any, bucket: str, role_arns: list[str]) -> str:
    """Let the roles GetObject on every bundle in ``bucket`` (one statement of its policy); the outcome.

    ``created`` / ``updated`` / ``unchanged``. Other statements of the policy are kept.
    """
    partition = role_arns[0].split(":")[1] if role_arns else "aws"
    policy = bucket_policy(s3, bucket) or {"Version": "2012-10-17", "Statement": []}
    statements = _values_list(policy.get("Statement"))
    ours = next((st for st in statements if st.get("Sid") == BUNDLE_READ_SID), None)
    principal = (ours or {}).get("Principal")
    granted = set(_values(principal.get("AWS", []))) if isinstance(principal, dict) else set()
    if ours is not None and granted >= set(role_arns):
        return "unchanged"
    statement = {"Sid": BUNDLE_READ_SID, "Effect": "Allow", "Principal": {"AWS": sorted(granted | set(role_arns))},
                 "Action": "s3:GetObject", "Resource": f"arn:{partition}:s3:::{bucket}/*"}
    policy["Statement"] = [st for st in statements if st is not ours] + [statement]
    with aws_errors(f"put the policy of {bucket}"):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return "created" if ours is None else "updated"


def bundle_read_denial(region: str, bundle: dict[str, Any], settings: dict[str, Any] | None) -> tuple[str | None, dict]:
    """Why the instance-profile role of a configuration cannot read a source bundle (None: it can), and evidence.

    Allowed by the bucket's policy naming the role, or else by the role's own policies as IAM's policy
    simulator judges them (SimulatePrincipalPolicy does not simulate resource policies for a role).
    """
    bucket, key = bundle.get("S3Bucket"), bundle.get("S3Key")
    profile = instance_profile_of(settings)
    evidence: dict[str, Any] = {"instance_profile": profile}
    if not bucket or not key:
        return None, evidence
    try:
        roles = instance_profile_roles(profile)
    except PreconditionFailed as exc:
        return str(exc), evidence
    if not roles:
        return f"instance profile {profile} has no role", evidence
    role = roles[0]
    evidence["role"] = role
    object_arn = f"arn:{role.split(':')[1]}:s3:::{bucket}/{key}"
    if policy_grants_read(bucket_policy(client("s3", region), bucket), role, object_arn):
        evidence["allowed_by"] = "bucket policy"
        return None, evidence
    with aws_errors(f"simulate s3:GetObject for {role}"):
        out = client("iam", IAM_REGION).simulate_principal_policy(
            PolicySourceArn=role, ActionNames=["s3:GetObject"], ResourceArns=[object_arn])
    decision = (out.get("EvaluationResults") or [{}])[0].get("EvalDecision", "implicitDeny")
    evidence["decision"] = decision
    if decision == "allowed":
        evidence["allowed_by"] = "identity policy"
        return None, evidence
    name = role.rsplit("/", 1)[-1]
    return (f"role {name} of instance profile {profile} may not s3:GetObject {object_arn} ({decision}): neither "
            f"its policies nor the policy of bucket {bucket} allow it, so the environment cannot deploy the "
            "version (replicate grants it in the bucket policy)"), evidence


# What :func:`bundle_read_denial` calls (lambdas/readiness.py declares them on its check action).
READ_CHECK_PERMISSIONS = ["iam:GetInstanceProfile", "s3:GetBucketPolicy", "iam:SimulatePrincipalPolicy"]
READ_CHECK_RESOURCES: dict[str, str | tuple[str, ...]] = {
    "iam:GetInstanceProfile": "instance_profile", "s3:GetBucketPolicy": "bundle_bucket",
    "iam:SimulatePrincipalPolicy": "instance_role",
}
