"""The canary function in the DR VPC: its VpcConfig and the network-interface permissions Lambda needs.

Lambda creates and manages the function's network interfaces with the function's own role (the permissions of
the AWS managed policy AWSLambdaVPCAccessExecutionRole, which grants them on ``*``). Here they are scoped as
far as EC2 allows:

- ``ec2:CreateNetworkInterface`` on network interfaces in the DR region and account, and only in the plan's
  subnets with the plan's security groups (``canary_network``; both are resources of that action);
- ``ec2:DeleteNetworkInterface``, ``ec2:AssignPrivateIpAddresses``, ``ec2:UnassignPrivateIpAddresses`` on
  network interfaces in the DR region and account: Lambda mints their ids, and its documentation asks for
  every interface id to be allowed for DeleteNetworkInterface;
- ``ec2:DescribeNetworkInterfaces``, ``ec2:DescribeSubnets``: Describe actions take no resource, so ``*``.

The resource kinds are :mod:`infra.iam`'s (it adds :data:`RESOURCE_KINDS` to its own); this module never imports
:mod:`infra.iam`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.iam_arns import _Arns

# The one function attached to the DR VPC: it opens SQL sessions to the databases (lambdas/canary.py).
SERVICE = "canary"
CREATE_ACTIONS = ("ec2:CreateNetworkInterface",)
MANAGE_ACTIONS = ("ec2:AssignPrivateIpAddresses", "ec2:DeleteNetworkInterface", "ec2:UnassignPrivateIpAddresses")
DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")
VPC_ACCESS_ACTIONS = (*CREATE_ACTIONS, *MANAGE_ACTIONS, *DESCRIBE_ACTIONS)


def _eni(arns: _Arns) -> list[str]:
    """Network interfaces of the canary function: ids minted by Lambda, in the DR region and account."""
    if arns.plan.canary_network is None:
        return []
    return [arns._arn("ec2", arns.plan.dr_region, "network-interface/*")]


def _subnets(arns: _Arns) -> list[str]:
    """The DR subnets the canary function's interfaces are created in (``canary_network.subnets``)."""
    net = arns.plan.canary_network
    return [arns._arn("ec2", arns.plan.dr_region, f"subnet/{s}") for s in net.subnets] if net else []


def _security_groups(arns: _Arns) -> list[str]:
    """The security groups of the canary function's interfaces (``canary_network.security_groups``)."""
    net = arns.plan.canary_network
    return [arns._arn("ec2", arns.plan.dr_region, f"security-group/{g}") for g in net.security_groups] if net else []


RESOURCE_KINDS: dict[str, Callable[[_Arns], list[str]]] = {
    "canary_eni": _eni, "canary_subnet": _subnets, "canary_security_group": _security_groups,
}


def attached(plan: Any, service: str) -> bool:
    """Whether ``service``'s function runs in the DR VPC."""
    return service == SERVICE and plan.canary_network is not None and bool(plan.rds_databases)


def vpc_config(plan: Any) -> dict[str, list[str]]:
    """The function's ``VpcConfig`` (CloudFormation's property names)."""
    net = plan.canary_network
    return {"SubnetIds": list(net.subnets), "SecurityGroupIds": list(net.security_groups)}


def statements(plan: Any, *, account: str, partition: str = "aws") -> list[dict[str, Any]]:
    """The network-interface permissions of the function's role (JSON form)."""
    arns = _Arns(plan, account, partition)
    eni = _eni(arns)
    return [
        {"Effect": "Allow", "Action": list(CREATE_ACTIONS),
         "Resource": [*eni, *_subnets(arns), *_security_groups(arns)]},
        {"Effect": "Allow", "Action": list(MANAGE_ACTIONS), "Resource": eni},
        {"Effect": "Allow", "Action": list(DESCRIBE_ACTIONS), "Resource": ["*"]},
    ]
