"""Where the canary function runs: the DR VPC subnets and security groups of lambdas/canary.py.

The canary function opens SQL sessions to the plan's RDS databases: the failover's canary write in each
promoted replica, replicate's heartbeat row in each primary. RDS databases are usually reachable only inside
their VPC, so the plan names the DR VPC subnets and security groups the function is attached to
(``canary_network``). Without it the function runs outside any VPC (Lambda's default networking) and reaches
only databases with a public endpoint; the failover's canary check then reports ``cannot connect`` for the
others and the service is not verified.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from workflows.plan_types import PlanFieldError, SgId, SubnetId, _Model, unique_values

# AWS Lambda's limits on a function's VPC configuration.
MAX_SUBNETS, MAX_SECURITY_GROUPS = 16, 5


class CanaryNetwork(_Model):
    """The DR VPC subnets and security groups the canary function (lambdas/canary.py) is attached to."""

    subnets: list[SubnetId] = Field(
        min_length=1, max_length=MAX_SUBNETS,
        description="Private subnets of the DR VPC (two or more zones, so one zone's loss leaves the function a "
        "subnet), with a route to the DR databases, to the primary databases (peering or a transit gateway: "
        "replicate's heartbeat) and to the AWS APIs the function calls (RDS, Secrets Manager: a NAT gateway or "
        "VPC endpoints)")
    security_groups: list[SgId] = Field(
        min_length=1, max_length=MAX_SECURITY_GROUPS,
        description="Security groups of the function's network interfaces; the databases' security groups must "
        "admit them on the database port")

    @field_validator("subnets", "security_groups")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return unique_values(value)


def canary_network_problems(plan: Any) -> list[PlanFieldError]:
    """What the plan's ``canary_network`` contradicts: a network for a function the plan does not deploy."""
    if plan.canary_network is not None and not plan.rds_databases:
        return [PlanFieldError("canary_network", "the plan has no RDS database (databases[] of kind rds), so no "
                               "canary function is deployed to attach to these subnets")]
    return []
