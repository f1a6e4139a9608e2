"""A slice of the fault matrix (sandbox/fault_matrix.py; the whole matrix: bench/fault_matrix.py).

The rows come from clean runs of the reference plan, recorded; the slice is a fixed sample of the cells, a
few per workflow, chosen to cover every fault kind. Each cell runs the real state machine with the fault,
re-runs it clean where it failed, and must end recovered or failed-clean: a named error, every safety
invariant held, the clean run's end state reached.
"""

from __future__ import annotations

import random

import pytest

from sandbox import fault_matrix as fm
from tests.conftest import REFERENCE
from workflows.plan import load_plan

# Cells per workflow in the slice, and the sample's seed: the same cells every run.
SLICE = {"drill": 4, "readiness": 1, "replicate": 1, "failover": 1}
SEED = 16


@pytest.fixture(scope="module")
def reference():
    plan = load_plan(REFERENCE)
    ops, clean = fm.reference_runs(plan)
    return plan, ops, clean


def sample(ops: dict[str, list[fm.Operation]]) -> dict[str, list[fm.Cell]]:
    rng = random.Random(SEED)
    kinds = list(fm.MATRIX_KINDS)
    rng.shuffle(kinds)
    out, k = {}, 0
    for workflow, count in SLICE.items():
        cells = []
        for op in rng.sample(ops[workflow], count):
            cells.append(fm.Cell(op, fm.kind_for(op.service, kinds[k % len(kinds)])))
            k += 1
        out[workflow] = cells
    return out


def test_the_rows_are_the_mutating_calls_each_workflow_makes(reference):
    _, ops, _ = reference
    names = {w: {f"{o.service}:{o.operation}" for o in rows} for w, rows in ops.items()}
    assert {"rds:CreateDBInstanceReadReplica", "ec2:CopyImage", "s3:PutBucketReplication"} <= names["replicate"]
    assert {"rds:PromoteReadReplica", "elasticbeanstalk:CreateEnvironment",
            "route53:ChangeResourceRecordSets"} <= names["failover"]
    assert {"rds:CreateDBInstanceReadReplica", "rds:DeleteDBInstance"} <= names["drill"]  # the teardown's too
    assert not any(n.split(":")[1].startswith(("Describe", "List", "Get")) for rows in names.values() for n in rows)


def test_the_slice_covers_every_fault_kind(reference):
    _, ops, _ = reference
    cells = [c for cells in sample(ops).values() for c in cells]
    assert len(cells) == sum(SLICE.values())
    assert {fm.kind_for("rds", k) for k in fm.MATRIX_KINDS} <= {fm.kind_for("rds", c.kind) if c.kind not in (
        "RequestLimitExceeded", "TooManyRequestsException") else "Throttling" for c in cells}


@pytest.mark.parametrize("workflow", list(SLICE))
def test_every_cell_recovers_or_fails_clean(reference, workflow):
    plan, ops, clean = reference
    cells = fm.run_cells(plan, workflow, sample(ops)[workflow], clean[workflow])
    for cell in cells:
        assert cell.outcome in (fm.RECOVERED, fm.FAILED_CLEAN), (cell.spec, cell.reasons)
        assert cell.hits >= 1, cell.spec
        if cell.outcome == fm.FAILED_CLEAN:
            assert cell.error and not cell.error.startswith("States."), cell.spec
