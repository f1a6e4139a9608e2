"""Modeled time for the sandbox: a virtual clock (discrete-event time).

The sandbox runs the very ASL that is deployed to AWS, with the same Wait ``Seconds``, Retry
intervals and timeouts. Modeled time is not wall time: it stands still while anything in the
sandbox is working and, once every activity is waiting, jumps to the earliest pending wake-up.
A five-minute Wait therefore costs no wall time, a Lambda that takes a second of CPU costs no
modeled time, and the same plan gives the same timeline to the second on an idle or a busy machine.

*Activities* (participants) are the threads moto's Step Functions interpreter starts: one per
execution, one per Parallel branch and Map iteration, one per Task with a timeout. Each is active
from the moment it is started until it blocks in one of the interpreter's waits, which this module
replaces with clock-aware ones:

- ``threading.Event`` / ``Condition`` / ``Thread.join`` in the interpreter's modules (Wait states
  wait on an Event with a timeout, Parallel and Map wait on their branches, Task timeouts and
  execution ``TimeoutSeconds`` wait on worker threads, ``.waitForTaskToken`` on a callback Event);
- ``time.sleep`` in Retry back-off (and ``time.time`` around Wait states);
- ``datetime.now`` for execution and history timestamps, and moto's ``utcnow`` for every other
  service's timestamps (AMI creation dates, S3 LastModified, ...), so all of AWS reads one clock.

Code outside the interpreter (a test, the CLI) is an *observer*: it never holds time back, unless
it asks to with :func:`hold`, and :func:`sleep` from an observer waits in modeled time too.
Latency-model adapters schedule work with :func:`call_at` (e.g. an S3 object replicated 15 modeled
seconds after it was written).

*Pacing* is for a human watching: ``pace=N`` lets modeled time run at most N modeled seconds per
wall second. It changes only how long the run takes on the wall, never a modeled figure.

Each patched point is pinned by the moto range in pyproject.toml and covered by tests
(tests/test_clock.py).
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import importlib
import sys
import threading
import time as _time
import types
from collections.abc import Callable, Iterator
from typing import Any

# One lock for all bookkeeping: participants, waiters, the modeled time itself.
_cv = threading.Condition(threading.RLock())
_local = threading.local()

_state: dict[str, Any] = {
    "installed": 0,
    "now": 0.0,  # modeled time, seconds since the epoch
    "active": 0,  # participants that are running (not blocked in a clock-aware wait)
    "holds": 0,  # observers holding time still
    "passive": 0,  # participants in a wait whose timeout is a guard (Task/execution timeouts, task tokens)
    "forced": 0,  # observers advancing time explicitly, past waits for a person
    "pace": None,  # modeled seconds per wall second, None: as fast as the CPU allows
    "anchor_wall": 0.0,
    "anchor_modeled": 0.0,
    "scheduler": None,
    "generation": 0,
}
_timed: list[_Waiter] = []


class _Waiter:
    __slots__ = ("deadline", "woken", "participant", "callback", "notified", "generation", "passive", "forcing")

    def __init__(self, deadline: float | None, participant: bool, callback: Callable[[], None] | None = None):
        self.generation = _state["generation"]
        self.passive = False
        self.forcing = False
        self.deadline = deadline
        self.woken = False
        self.participant = participant
        self.callback = callback
        self.notified = False


# -- reading the clock ------------------------------------------------------------------------------
def now() -> float:
    """Modeled time (seconds since the epoch) while the sandbox runs; wall time otherwise."""
    return _state["now"] if _state["installed"] else _time.time()


def datetime_now() -> _datetime.datetime:
    """Modeled time as an aware UTC datetime."""
    return _datetime.datetime.fromtimestamp(now(), _datetime.UTC)


def utcnow() -> _datetime.datetime:
    """Modeled time as a naive UTC datetime (moto's ``utcnow`` convention)."""
    return _datetime.datetime.fromtimestamp(now(), _datetime.UTC).replace(tzinfo=None)


def set_pace(value: float | None) -> None:
    """Let modeled time run at most ``value`` modeled seconds per wall second (None: unpaced)."""
    if value is not None and value <= 0:
        raise ValueError("pace must be positive")
    with _cv:
        _state["pace"] = float(value) if value else None
        _state["anchor_wall"], _state["anchor_modeled"] = _time.monotonic(), _state["now"]
        _cv.notify_all()


def stats() -> dict[str, Any]:
    """What the scheduler sees (for diagnostics and tests)."""
    with _cv:
        return {"now": _state["now"], "active": _state["active"], "holds": _state["holds"],
                "passive": _state["passive"], "timed": len(_timed), "pace": _state["pace"]}


# -- participants and waiting -----------------------------------------------------------------------
def _participant() -> bool:
    """Is the calling thread an activity of the current sandbox? (Threads of an earlier one are observers.)"""
    return _state["installed"] > 0 and getattr(_local, "generation", None) == _state["generation"]


def _block(deadline: float | None, passive: bool = False) -> _Waiter:
    """Register the calling thread as waiting (caller holds ``_cv``)."""
    waiter = _Waiter(deadline, _participant())
    if waiter.participant:
        _state["active"] -= 1
        if passive:
            waiter.passive = True
            _state["passive"] += 1
    if deadline is not None:
        _timed.append(waiter)
    _cv.notify_all()
    return waiter


def _wake(waiter: _Waiter) -> None:
    """Make a waiter runnable again (caller holds ``_cv``); it counts as active from this moment."""
    if waiter.woken:
        return
    waiter.woken = True
    if waiter.participant and waiter.generation == _state["generation"]:
        _state["active"] += 1
        if waiter.passive:
            _state["passive"] -= 1
    if waiter.forcing:
        _state["forced"] -= 1
    if waiter.deadline is not None:
        with contextlib.suppress(ValueError):
            _timed.remove(waiter)
    _cv.notify_all()


def _await(waiter: _Waiter, wall_timeout: float | None = None) -> None:
    """Wait until woken (caller holds ``_cv``). Observers without a modeled deadline may time out on the wall."""
    end = None if wall_timeout is None else _time.monotonic() + wall_timeout
    while not waiter.woken:
        if end is None:
            _cv.wait()
            continue
        remaining = end - _time.monotonic()
        if remaining <= 0:
            _wake(waiter)
            return
        _cv.wait(remaining)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else _state["now"] + max(0.0, float(timeout))


def sleep(seconds: float) -> None:
    """Sleep in modeled time (from a participant or an observer); outside the sandbox, on the wall."""
    if not _state["installed"]:
        _time.sleep(seconds)
        return
    with _cv:
        _await(_block(_deadline(seconds)))


def charge(seconds: float) -> None:
    """Modeled cost of work done by an activity (e.g. a Lambda invocation); free for observers."""
    if seconds > 0 and _state["installed"] and _participant():
        sleep(seconds)


def wait_until(predicate: Callable[[], Any], *, timeout: float, step: float = 5.0, what: str = "condition") -> Any:
    """An observer's poll in modeled time: check every ``step`` modeled seconds, for at most ``timeout``."""
    deadline = now() + timeout
    while not (result := predicate()):
        if now() >= deadline:
            raise TimeoutError(f"{what} not met after {timeout:g} modeled seconds")
        sleep(step)
    return result


def call_at(when: float, callback: Callable[[], None]) -> None:
    """Run ``callback`` once modeled time reaches ``when`` (in the scheduler, counted as an activity)."""
    with _cv:
        _timed.append(_Waiter(when, False, callback))
        _cv.notify_all()


def call_later(delay: float, callback: Callable[[], None]) -> None:
    call_at(now() + max(0.0, delay), callback)


@contextlib.contextmanager
def hold() -> Iterator[None]:
    """Hold modeled time still while an observer looks or acts (e.g. a test stopping an execution mid-way)."""
    with _cv:
        _state["holds"] += 1
    try:
        yield
    finally:
        with _cv:
            _state["holds"] -= 1
            _cv.notify_all()


def advance(seconds: float) -> None:
    """Let ``seconds`` of modeled time pass, even past a wait for a person (e.g. to let an approval time out)."""
    if not _state["installed"]:
        _time.sleep(seconds)
        return
    with _cv:
        _state["forced"] += 1
        waiter = _block(_deadline(seconds))
        waiter.forcing = True  # released by the very wake-up, so time stops exactly at the end of the advance
        _await(waiter)


# -- the scheduler ----------------------------------------------------------------------------------
def _scheduler(generation: int) -> None:
    with _cv:
        while _state["installed"] and _state["generation"] == generation:
            # A timeout is a guard, not an event: it never drives time forward (unless an observer forces
            # it), but time driven by Wait states, back-offs and modeled work still runs it out, as in AWS.
            drivers = [w.deadline for w in _timed if w.deadline is not None and (not w.passive or _state["forced"])]
            if _state["active"] or _state["holds"] or not drivers:
                _cv.wait()
                continue
            # Time passes every guard on the way to the next driver: the earliest deadline of all comes first.
            target = max(min(w.deadline for w in _timed if w.deadline is not None), _state["now"])
            if _state["pace"]:
                due = _state["anchor_wall"] + (target - _state["anchor_modeled"]) / _state["pace"]
                delay = due - _time.monotonic()
                if delay > 0:
                    _cv.wait(min(delay, 0.5))
                    continue
            _state["now"] = target
            if _state["pace"] and _time.monotonic() - _state["anchor_wall"] > 1.0:
                _state["anchor_wall"], _state["anchor_modeled"] = _time.monotonic(), target
            due_now = sorted((w for w in _timed if w.deadline is not None and w.deadline <= target),
                             key=lambda w: w.deadline or 0.0)
            for waiter in due_now:
                if waiter.callback is None:
                    _wake(waiter)
                    continue
                _timed.remove(waiter)
                _state["active"] += 1
                _cv.release()
                try:
                    waiter.callback()
                except Exception:  # noqa: BLE001 - a failing callback must not stop time for everyone
                    import logging

                    logging.getLogger(__name__).exception("sandbox clock callback failed")
                finally:
                    _cv.acquire()
                    _state["active"] -= 1
                    _cv.notify_all()


# -- clock-aware stand-ins for the interpreter's primitives -----------------------------------------
class Event:
    """``threading.Event`` whose waits count as idle and whose timeouts are modeled seconds."""

    passive = False  # True: the timeout guards against a hang and never drives time forward

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[_Waiter] = []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with _cv:
            self._flag = True
            for waiter in self._waiters:
                waiter.notified = True
                _wake(waiter)
            self._waiters.clear()

    def clear(self) -> None:
        with _cv:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with _cv:
            if self._flag:
                return True
            if not _participant():
                # An observer waits on the wall (it is not part of modeled time).
                waiter = _block(None)
                self._waiters.append(waiter)
                _await(waiter, timeout)
            else:
                waiter = _block(_deadline(timeout), passive=self.passive)
                self._waiters.append(waiter)
                _await(waiter)
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            return self._flag


class TimeoutEvent(Event):
    """An Event waited on with a timeout that guards against a hang: a Task's or an execution's
    ``TimeoutSeconds``, a ``.waitForTaskToken`` callback. Its timeout fires when time driven by other
    activities reaches it, or when an observer forces time with :func:`advance`; alone it drives
    nothing, so a wait for a person (an approval) holds time until the answer comes."""

    passive = True


class Condition:
    """``threading.Condition`` for the interpreter's count-down latch (Parallel branches)."""

    def __init__(self, lock: Any = None) -> None:
        self._lock = lock if lock is not None else threading.RLock()
        self._waiters: list[_Waiter] = []

    def acquire(self, *args: Any) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        with _cv:
            waiter = _block(_deadline(timeout) if _participant() else None)
            self._waiters.append(waiter)
        self._lock.release()
        try:
            with _cv:
                _await(waiter, None if _participant() else timeout)
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        finally:
            self._lock.acquire()
        return waiter.notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        result = predicate()
        while not result:
            if not self.wait(timeout) and timeout is not None:
                return predicate()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        with _cv:
            for waiter in self._waiters[:n]:
                waiter.notified = True
                _wake(waiter)
            del self._waiters[:n]

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all


class Thread(threading.Thread):
    """A participant: active from ``start()`` until it ends or blocks in a clock-aware wait."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock_done = TimeoutEvent()  # join(timeout) is an execution's TimeoutSeconds
        self._clock_counted = False
        self._clock_generation = -1

    def start(self) -> None:
        with _cv:
            _state["active"] += 1
            self._clock_counted = True
            self._clock_generation = _state["generation"]
        try:
            super().start()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        with _cv:
            if self._clock_generation == _state["generation"]:
                _state["active"] -= 1
            _cv.notify_all()

    def run(self) -> None:
        _local.generation = self._clock_generation
        try:
            super().run()
        finally:
            self._clock_done.set()  # wakes joiners, counted active by this very call
            self._release()
            _local.generation = None

    def join(self, timeout: float | None = None) -> None:
        if self._clock_counted:
            self._clock_done.wait(timeout)
            if self._clock_done.is_set() and timeout is None:
                super().join()
        else:
            super().join(timeout)

    def is_alive(self) -> bool:
        if self._clock_counted:
            return not self._clock_done.is_set()
        return super().is_alive()


class _ModuleProxy(types.ModuleType):
    """A module that answers with overrides first, then with the real module's attributes."""

    def __init__(self, real: types.ModuleType, **overrides: Any) -> None:
        super().__init__(real.__name__)
        self.__dict__.update(overrides)
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _ModeledDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _datetime.datetime:  # type: ignore[override]
        moment = _datetime.datetime.fromtimestamp(now(), _datetime.UTC)
        return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)

    @classmethod
    def utcnow(cls) -> _datetime.datetime:  # type: ignore[override]
        return utcnow()


_THREADING = _ModuleProxy(threading, Event=Event, Condition=Condition, Thread=Thread)
# The Task state waits on its worker with the Task's TimeoutSeconds: a guard.
_THREADING_TIMEOUTS = _ModuleProxy(threading, Event=TimeoutEvent, Condition=Condition, Thread=Thread)
_TIME = _ModuleProxy(_time, time=now, sleep=sleep)
_DATETIME = _ModuleProxy(_datetime, datetime=_ModeledDatetime)

_P = "moto.stepfunctions.parser."
# (module, attribute, replacement): every point where the interpreter waits, sleeps or reads the time.
_PATCHES: list[tuple[str, str, Any]] = [
    (_P + "backend.execution_worker", "Thread", Thread),
    (_P + "backend.execution", "datetime", _DATETIME),
    (_P + "asl.component.state.state", "datetime", _DATETIME),  # $$.State.EnteredTime
    (_P + "models", "datetime", _DATETIME),
    (_P + "asl.component.program.program", "threading", _THREADING),
    (_P + "asl.component.state.exec.execute_state", "Thread", Thread),
    (_P + "asl.component.state.exec.execute_state", "threading", _THREADING_TIMEOUTS),
    (_P + "asl.component.state.exec.state_parallel.branch_worker", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_parallel.branches_decl", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_parallel.branches_decl", "datetime", _DATETIME),
    (_P + "asl.component.state.exec.state_map.iteration.inline_iteration_component", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_map.iteration.job", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record", "datetime", _DATETIME),
    (_P + "asl.component.state.exec.state_task.service.state_task_service_callback", "threading", _THREADING),
    (_P + "asl.component.state.exec.state_task.service.state_task_service_callback", "time", _TIME),
    (_P + "asl.component.state.wait.wait_function.wait_function", "time", _TIME),
    (_P + "asl.component.state.wait.wait_function.timestamp", "datetime", _DATETIME),
    (_P + "asl.component.common.retry.retrier_decl", "time", _TIME),
    (_P + "asl.eval.count_down_latch", "threading", _THREADING),
    (_P + "asl.eval.environment", "threading", _THREADING),
    (_P + "asl.eval.callback.callback", "Event", TimeoutEvent),
    (_P + "asl.eval.event.event_manager", "datetime", _DATETIME),
]
_saved: list[tuple[types.ModuleType, str, Any]] = []


def _patch_utcnow() -> None:
    """moto's other services stamp resources with ``moto.core.utils.utcnow``: give them modeled time."""
    from moto.core import utils

    original = _real_utcnow()
    for module in [utils, *(m for n, m in list(sys.modules.items()) if n.startswith("moto.") and m is not None)]:
        if getattr(module, "utcnow", None) is original:
            _saved.append((module, "utcnow", original))
            module.utcnow = utcnow  # type: ignore[attr-defined]


def _real_utcnow() -> Any:
    from moto.core import utils

    saved = [value for module, name, value in _saved if module is utils and name == "utcnow"]
    return saved[0] if saved else utils.utcnow


def patch_modules(prefix: str) -> None:
    """Give already-imported modules under ``prefix`` modeled time for ``datetime.now`` (until uninstall).

    The Lambda handlers read the time as any Lambda does (``datetime.now(UTC)``); in the sandbox
    their clock must be the one every emulated service stamps resources with.
    """
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is _datetime:
                replacement: Any = _DATETIME
            elif value is _datetime.datetime:
                replacement = _ModeledDatetime
            else:
                continue
            _saved.append((module, attribute, value))
            setattr(module, attribute, replacement)


def install(pace_value: float | None = None, start: float | None = None) -> None:
    """Start modeled time at ``start`` (default: now on the wall) and patch the interpreter."""
    with _cv:
        _state["installed"] += 1
        if _state["installed"] > 1:
            return
        # A whole second: the same float rounding of every modeled instant, whatever the start.
        _state["now"] = float(start if start is not None else int(_time.time()))
        _state["active"], _state["holds"], _state["passive"], _state["forced"] = 0, 0, 0, 0
        _timed.clear()
        _state["generation"] += 1
        generation = _state["generation"]
    for module_name, attribute, replacement in _PATCHES:
        module = importlib.import_module(module_name)
        _saved.append((module, attribute, getattr(module, attribute)))
        setattr(module, attribute, replacement)
    _patch_utcnow()
    set_pace(pace_value)
    scheduler = threading.Thread(target=_scheduler, args=(generation,), name="sandbox-clock", daemon=True)
    _state["scheduler"] = scheduler
    scheduler.start()


def uninstall() -> None:
    with _cv:
        _state["installed"] = max(0, _state["installed"] - 1)
        if _state["installed"]:
            return
        _state["generation"] += 1
        # Wake everything still waiting so no interpreter thread sleeps past the sandbox.
        for waiter in list(_timed):
            if waiter.callback is None:
                _wake(waiter)
        _timed.clear()
        _state["pace"] = None
        _cv.notify_all()
    while _saved:
        module, attribute, value = _saved.pop()
        setattr(module, attribute, value)
    scheduler = _state["scheduler"]
    if scheduler is not None:
        scheduler.join(timeout=5)
        _state["scheduler"] = None
