"""Cross-account plans: the role pilotlight assumes in the account that owns each of the plan's regions.

A plan whose primary (or DR) resources live in another AWS account than the deployment names, per side, the
role its functions assume there and where the role's external id is kept::

    accounts:
      primary:
        role_arn: arn:aws:iam::111111111111:role/pilotlight-primary
        external_id_parameter: /pilotlight/shop/primary-external-id

The external id itself is never written in the plan, the rendered ASL or the CloudFormation template: it is an
SSM SecureString parameter in the DR region of the deployment's account, created by the operator (CloudFormation
cannot create SecureString parameters, so the value never passes through a template). The functions receive
the role ARN and the parameter's *name* in one environment variable (:func:`environment`, read by
``lambdas.common``), read the value with ``ssm:GetParameter`` (granted on that parameter only) the first time
they need the role, and pass it to ``sts:AssumeRole`` (granted on the plan's role ARNs only). No side given:
the functions act in their own account, as before. docs/deploy.md has the role's trust policy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from workflows.plan_types import _Model

# The environment variable the functions read (lambdas/common.py ACCOUNTS_ENV): JSON
# {"sts_region": <DR region>, "regions": {<region>: {"role_arn": ..., "external_id_parameter": ...}}}.
ENV = "PILOTLIGHT_ACCOUNTS"

# An IAM role ARN: partition, no region, a 12-digit account, an optional path, a name of at most 64 characters.
_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
# SSM parameter names: letters, digits, _ . - and / for the hierarchy (at most 15 levels), not aws*/ssm*.
_PARAMETER = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,14}$")


class Account(_Model):
    """The role the functions assume in the account that owns one side's region."""

    role_arn: str = Field(
        max_length=2048,
        description="IAM role in the other account (arn:aws:iam::<12-digit account>:role/<name>); its trust policy "
        "admits the deployment's function roles with the condition sts:ExternalId (docs/deploy.md)")
    external_id_parameter: str = Field(
        max_length=1011,
        description="Name of the SSM SecureString parameter, in the DR region of the deployment's account, that "
        "holds the external id the role's trust policy requires (2-1224 characters of letters, digits and "
        "+=,.@:/-). The value is never written in the plan, the ASL or the template")

    @field_validator("role_arn")
    @classmethod
    def _role(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError(f"must be an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>; got {value!r}")
        return value

    @field_validator("external_id_parameter")
    @classmethod
    def _parameter(cls, value: str) -> str:
        if not _PARAMETER.match(value):
            raise ValueError(f"{value!r} is not an SSM parameter name (letters, digits, _ . - and / separating at "
                             "most 15 levels)")
        if value.lstrip("/").lower().startswith(("aws", "ssm")):
            raise ValueError(f"{value!r}: SSM reserves names that begin with aws or ssm")
        return value

    @property
    def account_id(self) -> str:
        return self.role_arn.split(":")[4]


class Accounts(_Model):
    """Per side of the plan, the account its resources live in when it is not the deployment's own."""

    primary: Account | None = Field(default=None, description="The account of the primary region's resources")
    dr: Account | None = Field(default=None, description="The account of the DR region's resources")

    @model_validator(mode="after")
    def _one_side(self) -> Accounts:
        if self.primary is None and self.dr is None:
            raise ValueError("give primary, dr or both (or leave accounts out: the functions' own account)")
        return self


def by_region(plan: Any) -> dict[str, Account]:
    """Region -> the account (role) that owns it, for the sides the plan names."""
    accounts: Accounts | None = plan.accounts
    if accounts is None:
        return {}
    sides = ((plan.primary_region, accounts.primary), (plan.dr_region, accounts.dr))
    return {region: account for region, account in sides if account is not None}


def role_arns(plan: Any) -> list[str]:
    """The roles the functions may assume: exactly the plan's, sorted, each once."""
    return sorted({a.role_arn for a in by_region(plan).values()})


def parameter_arns(plan: Any, *, account: str, partition: str = "aws") -> list[str]:
    """ARNs of the SSM parameters holding the external ids (DR region, the deployment's account)."""
    names = sorted({a.external_id_parameter.lstrip("/") for a in by_region(plan).values()})
    return [f"arn:{partition}:ssm:{plan.dr_region}:{account}:parameter/{name}" for name in names]


def environment(plan: Any) -> dict[str, str]:
    """The functions' environment for a cross-account plan (none for a plan without ``accounts``): role ARNs and
    parameter names only, never an external id."""
    regions = by_region(plan)
    if not regions:
        return {}
    doc = {"sts_region": plan.dr_region,
           "regions": {r: {"role_arn": a.role_arn, "external_id_parameter": a.external_id_parameter}
                       for r, a in sorted(regions.items())}}
    return {ENV: json.dumps(doc, sort_keys=True, separators=(",", ":"))}


def statements(plan: Any, *, account: str, partition: str = "aws") -> list[dict[str, Any]]:
    """What a function that makes clients for the plan's regions needs to act in the other accounts: assume
    exactly the plan's roles, and read exactly the parameters holding their external ids."""
    roles = role_arns(plan)
    if not roles:
        return []
    return [
        {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": roles},
        {"Effect": "Allow", "Action": ["ssm:GetParameter"],
         "Resource": parameter_arns(plan, account=account, partition=partition)},
    ]
