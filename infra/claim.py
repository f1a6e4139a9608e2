"""The failover claim table: one item per plan naming the failover that acts (lambdas/guard.py ``claim``).

Two failovers started in the same instant may each not be listed to the other by Step Functions'
ListExecutions (eventually consistent); a conditional PutItem on this table is atomic, so exactly one of
them claims the plan. On-demand (a few writes a year cost nothing when idle), encrypted with the
DynamoDB-owned key (it holds execution ARNs only), point-in-time recovery on as every table of the
deployment. Removed with the stack: an item outlives nothing but its failover, and a claim left by an
ended failover is taken over by the next one.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from lambdas import guard
from workflows.plan import Plan


def table(scope: Construct, plan: Plan) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        "FailoverClaim",
        table_name=guard.claim_table(plan.name),
        partition_key=dynamodb.Attribute(name=guard.CLAIM_KEY, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True),
        removal_policy=RemovalPolicy.DESTROY,
    )
