"""The failback's DNS step: the plan's record moved back to the primary region, the reverse of the failover's cutover.

:func:`dns_back_states` builds the states (the failback workflow, workflows/failback.py, places them after the
primary environment is serving and before its verification). Per cutover mode:

- ``health_check``: PrimaryHealthy=1 is published in the DR region (``dns.restore_primary_health``); a bounded loop
  reads the alarm behind the primary's Route 53 health check until it is OK (``dns.check_primary_restored``); with
  an endpoint check on the primary's record (a calculated check: the alarm's and the primary endpoint's), a second
  loop asks Route 53 (TestDNSAnswer) until it answers with the primary target (``dns.check_answer``).
- ``records``, a simple record: UPSERT to the primary target, wait INSYNC (:func:`workflows.failover.records_loop`).
- ``records``, latency or geolocation routing: the primary's routing record points at the primary target again with
  its own endpoint health check (``dns.restore_records``), wait INSYNC.
- ``records``, weighted routing: in steps (:data:`WEIGHT_STEPS`, percent of the answers to the primary): at each,
  the weights are set (``dns.set_weights``), the change is waited INSYNC, and the traffic soaks
  (:data:`SOAK_SECONDS`) while the plan's trigger alarms are read every :data:`WATCH_POLL` s (``dns.watch_alarms``).
  The last step sets the plan's own weights (what replicate builds). An alarm in ALARM backs off: the primary's
  weight back to 0 (``dns.evacuate_records``, all traffic to the DR region), wait INSYNC, and the run fails with
  ``FailbackBackedOff`` naming the alarm and step.

Input the states read: ``$.plan.dns`` = ``workflows.failover.plan_document(plan)["dns"]`` plus ``primary_target``
(``plan.dns_primary_target``). Scratch: ``$.poll`` (every poll loop's), ``$.dns_back`` (replaced by the result).

The result, at ``$.dns_back`` (every mode)::

    {"mode": "health_check" | "records",
     "routing": "simple" | "failover" | "latency" | "geolocation" | "weighted",
     "record": "<record name>", "target": "<primary target>",
     "returned_at": "<ISO time the record was back>",
     # health_check:             "alarm": {"name": ..., "state": "OK"}
     #   with an endpoint check: "answer": ["<what Route 53 answers>"]
     # records (simple, latency, geolocation): "change_id": "<Route 53 change id>" | null (already back)
     # weighted:                 "steps": [{"percent": 10, "weights": {"primary": 10, "dr": 90}, "skipped": false,
     #                                      "change_id": ..., "alarms": [{"name", "region", "state"}, ...]}, ...]
    }

Errors: ``WaitTimedOut`` (a loop spent its checks: Route 53 change, alarm, answer), ``FailbackBackedOff`` (weighted:
an alarm during the ramp; the cause names the alarm and the step; DNS is back on the DR region), and the actions'
own (``ResourceNotFound``: the routing records or the health alarm are missing, run replicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lambdas.dns_failback import share
from workflows import asl
from workflows.failover import DNS_FIRST, DNS_MAX, DNS_POLL, records_loop
from workflows.plan import DnsWeights, Plan

STEP = "Return DNS"  # every state's Comment: the timeline's step label
# Weighted routing: the primary's share of the answers at each step, in percent; the last is 100 (the plan's weights).
WEIGHT_STEPS = (10, 50, 100)
# Between two steps: the traffic the step moved meets the primary for this long, its alarms watched (a CloudWatch
# alarm evaluates over 10-60 s periods).
SOAK_SECONDS = 60
WATCH_POLL = 15  # the alarms are read this often during the soak (a step that goes wrong backs off sooner)
BACKED_OFF = "FailbackBackedOff"
# The DR-region alarm back to OK after PrimaryHealthy=1: one evaluation (10-60 s); checks until 10 min.
ALARM_POLL, ALARM_MAX = 5, 120
# Route 53's health checkers acting on it (30-90 s, plus the primary endpoint's check): checks until 15 min.
ANSWER_POLL, ANSWER_MAX = 10, 90
DNS = "$.plan.dns"


def weight_steps(plan: Plan, steps: Sequence[int] = WEIGHT_STEPS) -> list[dict[str, Any]]:
    """The weights of each step: ``[{"percent", "primary", "dr", "final"}]``.

    A step of ``p`` percent sets weights ``p`` / ``100 - p``, unless the plan's own weights give the primary that
    share or less (an active-active plan's 50/50): then, as at the last step (100), the plan's weights.
    """
    assert plan.dns is not None
    if not steps or list(steps) != sorted(set(steps)) or not all(isinstance(p, int) and 0 < p <= 100 for p in steps):
        raise ValueError(f"weighted failback steps must be ascending whole percentages in 1-100, got {list(steps)}")
    if steps[-1] != 100:
        raise ValueError(f"the last weighted failback step must be 100 (the plan's weights), got {list(steps)}")
    weights = plan.dns.weights or DnsWeights()
    planned = share(weights.primary, weights.dr)
    out = []
    for percent in steps:
        final = percent == 100
        primary, dr = (weights.primary, weights.dr) if final or percent >= planned else (percent, 100 - percent)
        out.append({"percent": percent, "primary": primary, "dr": dr, "final": final})
    return out


def _record() -> dict[str, str]:
    return {"zone_id.$": f"{DNS}.hosted_zone_id", "name.$": f"{DNS}.record_name", "record_type.$": f"{DNS}.record_type"}


def _change_loop(name: str, act: tuple[str, dict[str, Any]], next_state: str, what: str) -> dict[str, asl.State]:
    check = ("check_change", {"change_id.$": "$.poll.change_id"})
    return asl.poll_loop(name, STEP, service="dns", act=act, check=check, interval_seconds=DNS_POLL,
                         first_wait_seconds=DNS_FIRST, max_attempts=DNS_MAX, next_state=next_state, what=what)


def _health_check_states(plan: Plan, name: str, done: str) -> tuple[dict[str, asl.State], dict[str, Any]]:
    assert plan.dns is not None
    alarm = {"region": plan.dr_region, "alarm": plan.health_check_alarm}
    states: dict[str, asl.State] = {
        f"{name}Restore": asl.task(STEP, "dns", "restore_primary_health", {"region": plan.dr_region, "plan": plan.name},
                                   result_path="$.dns_back.restored", next_state=f"{name}Alarm"),
    }
    states.update(asl.poll_loop(
        f"{name}Alarm", STEP, service="dns", act=("check_primary_restored", alarm),
        check=("check_primary_restored", alarm), interval_seconds=ALARM_POLL, max_attempts=ALARM_MAX,
        next_state=f"{name}AlarmOk", what="primary health alarm back to OK"))
    endpoint = plan.dns.endpoint_check is not None
    states[f"{name}AlarmOk"] = {"Type": "Pass", "Comment": STEP,
                                "Parameters": {"name": plan.health_check_alarm, "state.$": "$.poll.state"},
                                "ResultPath": "$.dns_back.alarm", "Next": f"{name}Answer" if endpoint else done}
    result: dict[str, Any] = {"alarm.$": "$.dns_back.alarm"}
    if endpoint:
        check = ("check_answer", {**_record(), "expected.$": f"{DNS}.primary_target"})
        states.update(asl.poll_loop(
            f"{name}Answer", STEP, service="dns", act=check, check=check, interval_seconds=ANSWER_POLL,
            max_attempts=ANSWER_MAX, next_state=done, what="Route 53 answering with the primary target"))
        result["answer.$"] = "$.poll.answer"
    return states, result


def _weighted_states(plan: Plan, name: str, done: str, steps: Sequence[int], soak_seconds: int
                     ) -> tuple[dict[str, asl.State], dict[str, Any]]:
    alarms = [{"name": a.name, "region": a.region or plan.primary_region} for a in plan.triggers.alarms]
    ramp = weight_steps(plan, steps)
    checks = max(1, soak_seconds // WATCH_POLL + 1)  # the first at once, the last soak_seconds later
    states: dict[str, asl.State] = {}
    firsts = [f"{name}Step{s['percent']}" for s in ramp]
    for i, step in enumerate(ramp):
        this, following = firsts[i], (firsts[i + 1] if i + 1 < len(ramp) else done)
        label = (f"step {i + 1} of {len(ramp)} ({step['percent']}% of the traffic to the primary: weights primary "
                 f"{step['primary']}, DR {step['dr']})")
        entry = f"$.dns_back.step_{step['percent']}"
        act = {"plan": plan.name, **_record(), "primary": step["primary"], "dr": step["dr"], "final": step["final"]}
        states.update(_change_loop(this, ("set_weights", act), f"{this}Ahead?", f"Route 53 change ({label})"))
        states[f"{this}Ahead?"] = {
            "Type": "Choice", "Comment": STEP,
            "Choices": [{"And": [{"Variable": "$.poll.ahead", "IsPresent": True},
                                 {"Variable": "$.poll.ahead", "BooleanEquals": True}], "Next": f"{this}Skipped"}],
            "Default": f"{this}Applied"}
        states[f"{this}Skipped"] = {
            "Type": "Pass", "Comment": STEP, "ResultPath": entry, "Next": following,
            "Parameters": {"percent": step["percent"], "weights.$": "$.poll.weights", "skipped": True,
                           "change_id": None, "alarms": []}}
        states[f"{this}Applied"] = {
            "Type": "Pass", "Comment": STEP, "ResultPath": entry, "Next": f"{this}Watch",
            "Parameters": {"percent": step["percent"], "weights": {"primary": step["primary"], "dr": step["dr"]},
                           "skipped": False, "change_id.$": "$.poll.change_id"}}
        # The soak: the alarms read at once, then every WATCH_POLL s until soak_seconds have passed; ALARM backs off.
        watch = ("watch_alarms", {"alarms": alarms, "step": label, "checks": checks})
        states.update(asl.poll_loop(f"{this}Watch", STEP, service="dns", act=watch, check=watch,
                                    interval_seconds=WATCH_POLL, max_attempts=checks + 1, next_state=f"{this}Watched",
                                    what=f"alarm watch ({label})"))
        states[f"{this}WatchDone?"]["Choices"].insert(
            0, {"Variable": "$.poll.alarming", "BooleanEquals": True, "Next": f"{name}Alarmed"})
        states[f"{this}Watched"] = {
            "Type": "Pass", "Comment": STEP, "ResultPath": entry, "Next": following,
            "Parameters": {"percent": step["percent"], "weights": {"primary": step["primary"], "dr": step["dr"]},
                           "skipped": False, "change_id.$": f"{entry}.change_id", "alarms.$": "$.poll.alarms"}}
    states[f"{name}Alarmed"] = {
        "Type": "Pass", "Comment": STEP, "ResultPath": "$.dns_back.watch", "Next": f"{name}BackOff",
        "Parameters": {"step.$": "$.poll.step", "in_alarm.$": "$.poll.in_alarm", "alarms.$": "$.poll.alarms",
                       "cause.$": "$.poll.cause"}}
    # Back off: the primary's weight to 0 (the failover's own evacuation), INSYNC, then fail naming alarm and step.
    states.update(records_loop(f"{name}BackOff", STEP, DNS, f"{name}BackedOff", plan=plan.name))
    states[f"{name}BackedOff"] = {"Type": "Fail", "Comment": STEP, "Error": BACKED_OFF,
                                  "CausePath": "$.dns_back.watch.cause"}
    entries = ", ".join(f"$.dns_back.step_{s['percent']}" for s in ramp)
    return states, {"steps.$": f"States.Array({entries})"}


def dns_back_states(plan: Plan, name: str, next_state: str, *, steps: Sequence[int] = WEIGHT_STEPS,
                    soak_seconds: int = SOAK_SECONDS) -> dict[str, asl.State]:
    """The states that move the plan's DNS back to the primary, starting at ``name`` and going to ``next_state``;
    the result at ``$.dns_back`` (see the module's docstring for the input, the result and the errors).

    ``steps`` and ``soak_seconds``: weighted routing's ramp (percent of the answers to the primary) and how long
    each step's alarms are watched (read at once, then every :data:`WATCH_POLL` s). Every state's name starts with
    ``name``.
    """
    if plan.dns is None:
        return {name: {"Type": "Pass", "Comment": STEP, "Result": {"mode": None, "reason": "the plan has no dns"},
                       "ResultPath": "$.dns_back", "Next": next_state}}
    mode = plan.dns.cutover
    routing = plan.dns.routing if plan.routing_records else "simple"
    done = f"{name}Done"
    header: dict[str, Any] = {"mode": mode, "routing": routing, "record.$": f"{DNS}.record_name",
                              "target.$": f"{DNS}.primary_target"}
    states: dict[str, asl.State] = {}
    if mode == "health_check":
        first = f"{name}Restore"
        body, result = _health_check_states(plan, name, done)
    elif routing == "simple":
        # records_loop reads a record document: the plan's, with the primary target for the DR one.
        first = f"{name}Record"
        header.update({"hosted_zone_id.$": f"{DNS}.hosted_zone_id", "record_name.$": f"{DNS}.record_name",
                       "record_type.$": f"{DNS}.record_type", "ttl.$": f"{DNS}.ttl"})
        body = records_loop(first, STEP, "$.dns_back", done)
        result = {"change_id.$": "$.poll.change_id"}
    elif routing == "weighted":
        body, result = _weighted_states(plan, name, done, steps, soak_seconds)
        first = f"{name}Step{steps[0]}"
    else:
        check = plan.dns.endpoint_check
        endpoint = {**check.model_dump(), "port": check.effective_port} if check else None
        first = f"{name}Record"
        act = {"plan": plan.name, **_record(), "routing.$": f"{DNS}.routing",
               "primary_target.$": f"{DNS}.primary_target", "endpoint": endpoint}
        body = _change_loop(first, ("restore_records", act), done, "Route 53 change")
        result = {"change_id.$": "$.poll.change_id"}
    states[name] = {"Type": "Pass", "Comment": STEP, "Parameters": header, "ResultPath": "$.dns_back", "Next": first}
    states.update(body)
    states[done] = {
        "Type": "Pass", "Comment": STEP, "ResultPath": "$.dns_back", "Next": next_state,
        "Parameters": {"mode": mode, "routing": routing, "record.$": f"{DNS}.record_name",
                       "target.$": f"{DNS}.primary_target", "returned_at.$": "$$.State.EnteredTime", **result},
    }
    return states
