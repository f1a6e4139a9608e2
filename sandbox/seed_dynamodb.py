"""The plan's DynamoDB tables in the sandbox's primary region, ready to become global tables.

Each table is on-demand (PAY_PER_REQUEST) with a ``NEW_AND_OLD_IMAGES`` stream and a string partition key
``pk``, and holds a few items. Its DR replica is not created here: replicate adds it (lambdas/dynamodb.py).
A table that pins writes to one region has its write-region parameter in both regions, naming the primary
(the application's own setting, which the failover moves to the DR region).
"""

from __future__ import annotations

from typing import Any

import boto3

from workflows.plan import Plan

PARTITION_KEY = "pk"
ITEMS = 3


def seed(plan: Plan) -> dict[str, Any]:
    """Create each plan table in the primary region (an existing one is left as it is)."""
    ddb = boto3.client("dynamodb", region_name=plan.primary_region)
    existing = set(ddb.list_tables().get("TableNames") or [])
    created: list[str] = []
    for table in plan.tables:
        if table.name in existing:
            continue
        ddb.create_table(
            TableName=table.name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        for i in range(ITEMS):
            ddb.put_item(TableName=table.name, Item={PARTITION_KEY: {"S": f"{table.name}-{i}"},
                                                     "seeded": {"BOOL": True}, "n": {"N": str(i)}})
        created.append(table.name)
    parameters = plan.write_region_parameters
    for region in (plan.primary_region, plan.dr_region):
        for name in parameters:
            boto3.client("ssm", region_name=region).put_parameter(Name=name, Value=plan.primary_region,
                                                                  Type="String", Overwrite=True)
    return {"tables": created, "write_region_parameters": parameters}
