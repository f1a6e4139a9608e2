"""The whole fault matrix on the reference plan: every mutating AWS operation of replicate, readiness, the drill
(with its teardown) and the failover x every fault kind, each cell a real run in the sandbox, then a clean
re-run where it failed, judged by the safety invariants and the clean run's end state (sandbox/fault_matrix.py).

Prints one line per cell as it ends, then the matrix (operation x fault kind: recovered / failed-clean /
VIOLATED) and the totals on the last line. Exit status 1 if any cell is VIOLATED.

    .venv/bin/python bench/fault_matrix.py [--plan examples/reference.yaml] [--workflow drill ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import fault_matrix as fm  # noqa: E402
from workflows.plan import load_plan  # noqa: E402

SHORT = {fm.RECOVERED: "recovered", fm.FAILED_CLEAN: "failed-clean", fm.VIOLATED: "VIOLATED"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", default=str(Path(__file__).resolve().parent.parent / "examples" / "reference.yaml"))
    parser.add_argument("--workflow", action="append", choices=fm.WORKFLOWS, help="only these workflows")
    args = parser.parse_args()
    plan = load_plan(args.plan)
    workflows = tuple(args.workflow or fm.WORKFLOWS)
    started = time.monotonic()
    ops, clean = fm.reference_runs(plan, workflows)
    print(f"clean runs: {', '.join(f'{w} {len(ops[w])} mutating operations' for w in workflows)}", flush=True)

    def line(cell: fm.Cell) -> None:
        why = f"  {'; '.join(r[:200] for r in cell.reasons)}" if cell.reasons else ""
        print(f"{cell.op.workflow:<10} {cell.spec:<60} {SHORT[cell.outcome]:<13} {cell.error or '-':<22} "
              f"{cell.seconds:5.1f} s{why}", flush=True)

    cells: list[fm.Cell] = []
    for workflow in workflows:
        cells += fm.run_cells(plan, workflow, fm.cells_for(ops[workflow]), clean[workflow], on_cell=line)
    print()
    kinds = list(fm.MATRIX_KINDS)
    header = f"{'workflow':<10} {'operation':<42}" + "".join(f"{k[:13]:>14}" for k in kinds)
    print(header)
    for workflow in workflows:
        for op in ops[workflow]:
            row = {fm.kind_for(op.service, k): k for k in kinds}
            outcome = {row[c.kind]: SHORT[c.outcome] for c in cells if c.op == op}
            print(f"{workflow:<10} {op.service + ':' + op.operation:<42}"
                  + "".join(f"{outcome.get(k, '-'):>14}" for k in kinds))
    s = fm.summary(cells)
    print(f"\nwall {time.monotonic() - started:.0f} s, median cell {s['median_seconds']} s, passed {s['passed']}, "
          f"failed {s['failed']}")
    print(f"cells {s['cells']} recovered {s[fm.RECOVERED]} failed-clean {s[fm.FAILED_CLEAN]} violated {s[fm.VIOLATED]}")
    return 1 if s[fm.VIOLATED] else 0


if __name__ == "__main__":
    sys.exit(main())
