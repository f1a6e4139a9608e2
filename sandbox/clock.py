"""Modeled time for the sandbox.

The sandbox runs the very ASL that is deployed to AWS, with the same Wait ``Seconds`` and Retry
intervals. To make a 40-minute failover take 40 seconds it compresses time: moto's interpreter
waits ``seconds / scale`` of wall time, and the latency model holds resources busy for
``modeled duration / scale``. Modeled time is wall time multiplied by the scale.

This patches two points of moto's interpreter (Wait states and Retry sleeps); both are pinned
by the moto range in pyproject.toml and covered by tests that measure a Wait and a Retry.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

_lock = threading.Lock()
_scale = 1.0
_installed = 0
_original_wait = wait_function.WaitFunction._wait_interval
_original_time_module = retrier_decl.time


def scale() -> float:
    return _scale


def to_wall(modeled_seconds: float) -> float:
    return modeled_seconds / _scale


def to_modeled(wall_seconds: float) -> float:
    return wall_seconds * _scale


def now() -> float:
    """Wall clock (seconds since the epoch); modeled durations are differences times the scale."""
    return time.time()


def _scaled_wait(self: Any, env: Any, wait_seconds: int) -> None:
    if wait_seconds > 0:
        # program_state_event is set when the execution is stopped, which ends the wait early.
        env.program_state_event.wait(wait_seconds / _scale)


_scaled_time = types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds / _scale), time=time.time)


def install(time_scale: float) -> None:
    global _scale, _installed
    if time_scale <= 0:
        raise ValueError("time scale must be positive")
    with _lock:
        _scale = float(time_scale)
        _installed += 1
        wait_function.WaitFunction._wait_interval = _scaled_wait  # type: ignore[method-assign]
        retrier_decl.time = _scaled_time  # type: ignore[assignment]


def set_scale(time_scale: float) -> None:
    """Change the compression while installed (between workflows: a resource busy now keeps its end time)."""
    global _scale
    if time_scale <= 0:
        raise ValueError("time scale must be positive")
    with _lock:
        _scale = float(time_scale)


def uninstall() -> None:
    global _scale, _installed
    with _lock:
        _installed = max(0, _installed - 1)
        if _installed == 0:
            wait_function.WaitFunction._wait_interval = _original_wait  # type: ignore[method-assign]
            retrier_decl.time = _original_time_module
            _scale = 1.0
