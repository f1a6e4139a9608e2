"""Fault injection: make an AWS operation fail a given number of times, as AWS would."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from sandbox import responses

_ids = itertools.count()


@dataclass
class Fault:
    event: str
    unique_id: str
    code: str
    message: str
    status: int
    remaining: int | None  # None: every call
    hits: int = 0


class Faults:
    def __init__(self, events: Any) -> None:
        self._events = events
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        service: str,
        operation: str,
        code: str,
        message: str = "injected by the sandbox",
        *,
        times: int | None = 1,
        status: int = 400,
    ) -> Fault:
        """``service`` is botocore's event name for it (``rds``, ``route53``, ``elastic-beanstalk``)."""
        fault = Fault(
            f"before-call.{service}.{operation}", f"pilotlight-fault-{next(_ids)}", code, message, status, times
        )

        def fail(**_: Any) -> Any:
            with self._lock:
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        return None
                    fault.remaining -= 1
                fault.hits += 1
            return responses.error(fault.code, fault.message, fault.status)

        self._events.register_first(fault.event, fail, unique_id=fault.unique_id)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        for fault in self._faults:
            self._events.unregister(fault.event, unique_id=fault.unique_id)
        self._faults.clear()
