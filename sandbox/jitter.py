"""Retry jitter the sandbox can repeat.

Every Task retries with ``JitterStrategy: FULL`` (workflows/asl.py): each back-off is drawn uniformly between
0 and the computed interval, as Step Functions does. moto's interpreter draws it from the process-wide
``random`` module, so two runs of the same plan with the same faults would differ, and which of two parallel
branches draws first would depend on thread scheduling. Here the draw is a hash of the sandbox's seed and of
where the retry happens in the execution: the state, its entry time and retry count in modeled time, and the
Map item it belongs to. The same plan, faults and seed give the same back-offs, on any machine; a different
seed gives other ones.
"""

from __future__ import annotations

import hashlib
from typing import Any

_saved: list[tuple[Any, Any]] = []


def fraction(seed: int, *where: Any) -> float:
    """A number in [0, 1) determined by ``seed`` and ``where``."""
    digest = hashlib.sha256(repr((seed, *where)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def install(seed: int) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl as module

    decl = module.JitterStrategyDecl
    original = decl._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        if self.jitter_strategy == module.JitterStrategy.NONE:
            return
        interval = env.stack.pop()
        context = env.states.context_object.context_object_data
        state = context.get("State") or {}
        item = (context.get("Map") or {}).get("Item") or {}
        where = (state.get("Name"), str(state.get("EnteredTime")), state.get("RetryCount"), item.get("Index"),
                 interval)
        env.stack.append(interval * fraction(seed, *where))

    _saved.append((decl, original))
    decl._eval_body = _eval_body


def uninstall() -> None:
    while _saved:
        decl, original = _saved.pop()
        decl._eval_body = original
