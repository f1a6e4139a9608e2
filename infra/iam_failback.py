"""Resource kinds of the failback's steps (lambdas/failback.py), as functions of an :class:`infra.iam_arns._Arns`.

The failback renames the stale primary and the promoted DR database under names derived from the plan's
identifiers (``<id>-stale-<stamp>``, ``<dr>-retired-<stamp>``): the grants name those prefixes, never ``db:*``.
"""

from __future__ import annotations

from infra.iam_arns import _Arns


def _stale_db(arns: _Arns) -> list[str]:
    """The stale primaries a failback keeps, renamed ``<id>-stale-<stamp>`` in the primary region."""
    return [arns._arn("rds", arns.plan.primary_region, f"db:{d.identifier}-stale-*") for d in arns.plan.rds_databases]


def _retired_db(arns: _Arns) -> list[str]:
    """The promoted DR databases a failback retires, ``<dr>-retired-<stamp>``, until the new DR replica serves."""
    return [arns._arn("rds", arns.plan.dr_region, f"db:{d.dr_replica_identifier}-retired-*")
            for d in arns.plan.rds_databases]


def _retired_snapshot(arns: _Arns) -> list[str]:
    """Their final snapshots, ``<dr>-retired-<stamp>-final``."""
    return [arns._arn("rds", arns.plan.dr_region, f"snapshot:{d.dr_replica_identifier}-retired-*")
            for d in arns.plan.rds_databases]


def _primary_subnet_group(arns: _Arns) -> list[str]:
    """The primary region's DB subnet groups: the reverse replica takes the stale primary's, which the plan does
    not name (it is read from the instance), so any group of the primary region (CreateDBInstanceReadReplica
    only uses it; nothing can be changed in it through this grant)."""
    return [arns._arn("rds", arns.plan.primary_region, "subgrp:*")] if arns.plan.rds_databases else []


def _replicate_machine(arns: _Arns) -> list[str]:
    from workflows import render

    return [arns._dr("states", f"stateMachine:{render.state_machine_name(arns.plan, 'replicate')}")]


def _replicate_execution(arns: _Arns) -> list[str]:
    from workflows import render

    return [arns._dr("states", f"execution:{render.state_machine_name(arns.plan, 'replicate')}:fb-*")]


RESOURCE_KINDS = {
    "failback_stale_db": _stale_db,
    "failback_retired_db": _retired_db,
    "failback_retired_snapshot": _retired_snapshot,
    "failback_primary_subnet_group": _primary_subnet_group,
    "failback_replicate_machine": _replicate_machine,
    "failback_replicate_execution": _replicate_execution,
}
